//! How names are compared: the same normalization for what is indexed and what is typed, so
//! that case, accents (`Müller` = `Muller`), punctuation (`S.A.` = `SA`) and legal-form suffixes
//! (`Inc`, `GmbH`, `Ltd`, ..., from the legal-form table) never decide a match.

use super::legal_forms::LEGAL_FORMS;
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RawTokenizer, SimpleTokenizer, TextAnalyzer, TokenStream,
};

/// Whether a normalized word is a trailing legal form of some country (the legal-form table's
/// one-word forms and tokens).
pub fn is_legal_form(word: &str) -> bool {
    LEGAL_FORMS.is_form(word)
}

/// Whether a normalized word could still become a legal form as the user types on.
pub fn could_be_legal_form(prefix: &str) -> bool {
    LEGAL_FORMS.could_be_form(prefix)
}

/// Folds the whole text before it is cut into words: compatibility decomposition in lower case
/// without the marks (`Müller` → `muller`, `ΠΡΟΪΟΝΤΩΝ` → `προιοντων`, `Fund™` → `fundtm`), then
/// ASCII folding of what has no decomposition (`ø` → `o`, `ß` → `ss`). A symbol that folds to letters
/// thus joins its word the same way whether the user typed the symbol or its letters.
fn fold(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    // Lower-cased before the ASCII folding, which folds some lower-case letters but not their
    // capitals (`ȿ` → `s`, `Ȿ` unchanged): folded first, `Ȿ` became `ȿ` and only a second pass
    // made it `s`, so that a name and its own normalized words did not match.
    let decomposed: String = text
        .nfkd()
        .flat_map(char::to_lowercase)
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        // Greek's word-final sigma is the same letter as `σ` (`to_lowercase` of `Σ` gives `σ`
        // wherever it stands; text typed in lower case has `ς`).
        .map(|c| if c == 'ς' { 'σ' } else { c })
        .collect();
    FOLDER.with_borrow_mut(|folder| {
        let mut stream = folder.token_stream(&decomposed);
        let mut out = String::with_capacity(text.len());
        while stream.advance() {
            out.push_str(&stream.token().text);
        }
        out
    })
}

thread_local! {
    // Built once per thread: building an analyzer costs more than running it on a name.
    static FOLDER: std::cell::RefCell<TextAnalyzer> = std::cell::RefCell::new(
        TextAnalyzer::builder(RawTokenizer::default()).filter(AsciiFoldingFilter).build(),
    );
    static ANALYZER: std::cell::RefCell<TextAnalyzer> = std::cell::RefCell::new(
        TextAnalyzer::builder(SimpleTokenizer::default()).filter(LowerCaser).build(),
    );
}

/// Lower-case ASCII words of `text`. Dots and apostrophes inside a word join its parts (`S.A.`
/// is `sa`, `O'Brien` is `obrien`); every other non-alphanumeric character separates words.
pub fn words(text: &str) -> Vec<String> {
    let folded = fold(text);
    let mut joined = String::with_capacity(folded.len());
    let chars: Vec<char> = folded.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let joiner = matches!(c, '.' | '\'' | '’');
        let between = i > 0
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        let after_initial = c == '.' && i > 0 && chars[i - 1].is_alphanumeric();
        if joiner && (between || after_initial) {
            continue;
        }
        joined.push(c);
    }
    ANALYZER.with_borrow_mut(|analyzer| {
        let mut stream = analyzer.token_stream(&joined);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    })
}

/// The words of a name as matched: [`words`] without trailing legal forms (unless nothing else
/// would be left).
pub fn name_words(text: &str) -> Vec<String> {
    without_legal_suffix(&words(text)).to_vec()
}

/// The leading words of an already normalized name, without its trailing legal forms (unless
/// nothing else would be left).
pub fn without_legal_suffix(words: &[String]) -> &[String] {
    let mut end = words.len();
    while end > 1 && is_legal_form(&words[end - 1]) {
        end -= 1;
    }
    &words[..end]
}

/// Prefixes of a word from 1 character up to `max`, for prefix matching by exact term.
pub fn prefixes(word: &str, max: usize) -> impl Iterator<Item = &str> {
    word.char_indices()
        .map(|(i, c)| &word[..i + c.len_utf8()])
        .take(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn case_accents_punctuation() {
        assert_eq!(
            words("Müller GmbH & Co. KG"),
            vec!["muller", "gmbh", "co", "kg"]
        );
        assert_eq!(words("S.A. Industrias"), vec!["sa", "industrias"]);
        assert_eq!(words("O'Brien-Smith Ltd."), vec!["obrien", "smith", "ltd"]);
        assert_eq!(
            words("  ÉLECTRICITÉ   de France "),
            vec!["electricite", "de", "france"]
        );
    }

    #[test]
    fn trailing_legal_forms_are_dropped() {
        assert_eq!(name_words("Müller GmbH & Co. KG"), vec!["muller"]);
        assert_eq!(
            name_words("Contoso Holdings Pty Ltd"),
            vec!["contoso", "holdings"]
        );
        assert_eq!(
            name_words("Banco Santander, S.A."),
            vec!["banco", "santander"]
        );
        assert_eq!(
            name_words("Fidelity Advisor Leveraged Company Stock Fund"),
            vec![
                "fidelity",
                "advisor",
                "leveraged",
                "company",
                "stock",
                "fund"
            ]
        );
        // A name that is nothing but a legal form keeps it.
        assert_eq!(name_words("Limited"), vec!["limited"]);
    }

    #[test]
    fn capitals_fold_as_their_lower_case() {
        // Found by the property below: ASCII folding knows `ȿ` but not `Ȿ`.
        assert_eq!(words("Ȿ"), vec!["s"]);
        assert_eq!(words("ȿ"), vec!["s"]);
        assert_eq!(words("İSTANBUL Holding"), vec!["istanbul", "holding"]);
        assert_eq!(words("ΑΝΩΝΥΜΟΣ"), words("ανωνυμος"));
    }

    #[test]
    fn prefixes_of_a_word() {
        assert_eq!(
            prefixes("abcd", 3).collect::<Vec<_>>(),
            vec!["a", "ab", "abc"]
        );
    }

    proptest! {
        #[test]
        fn normalization_is_lower_case_and_stable(s in ".{0,80}") {
            let w = words(&s);
            for word in &w {
                prop_assert!(!word.is_empty());
                // Lower case as far as Unicode has a lower case (`🄰` has none).
                prop_assert_eq!(&word.to_lowercase(), word);
                prop_assert!(!word.chars().any(char::is_whitespace));
            }
            // Normalizing normalized text changes nothing.
            prop_assert_eq!(words(&w.join(" ")), w);
        }
    }
}
