//! The legal-form table (`data/legal-forms.csv`): each form as people write it (`Ltd.`,
//! `Limited`, `Gesellschaft mit beschränkter Haftung`), the country it belongs to (`*`: many),
//! whether it leads or trails a name, and its one canonical token (`ltd`, `gmbh`); an empty
//! token marks words that say nothing about who the entity is (`(publ)`, `in liquidazione`).
//! Search treats every one-word form as optional; the name key ([`super::name_key`]) reduces
//! the forms of a name to their tokens.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use super::normalize::words;

/// The table as shipped.
const TABLE: &str = include_str!("../../data/legal-forms.csv");

/// Where in a name a form stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum At {
    Start = 0,
    End = 1,
}

/// One row: the form's normalized words and its token (empty: the words are dropped).
#[derive(Debug, Clone)]
pub struct Form {
    pub words: Vec<String>,
    pub token: String,
}

/// The table, indexed for the two uses.
pub struct LegalForms {
    /// Forms by country (or `*`), where they stand and the word at the name's edge (a leading
    /// form's first word, a trailing one's last), each list longest first: a name's key looks
    /// up its edge word instead of trying every form of its country.
    by_edge: HashMap<String, [HashMap<String, Vec<Form>>; 2]>,
    /// Every one-word trailing form and every token, of any country: what search may leave out.
    one_word: Vec<String>,
}

/// A row that could not be read, for the table's own test.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRow {
    pub line: usize,
    pub reason: String,
}

impl LegalForms {
    /// Parses a table in the `data/legal-forms.csv` layout.
    pub fn parse(text: &str) -> Result<Self, BadRow> {
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let mut by_edge: HashMap<String, [HashMap<String, Vec<Form>>; 2]> = HashMap::new();
        let mut one_word: HashSet<String> = HashSet::new();
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let bad = |reason: String| BadRow { line, reason };
            let record = record.map_err(|e| bad(e.to_string()))?;
            let field = |n: usize| record.get(n).unwrap_or("").trim();
            let country = field(0);
            if !(country == "*"
                || (country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())))
            {
                return Err(bad(format!(
                    "country `{country}` is not `*` or an ISO code"
                )));
            }
            let at = match field(1) {
                "start" => At::Start,
                "end" => At::End,
                other => return Err(bad(format!("at `{other}` is not `start` or `end`"))),
            };
            let form_words = words(field(2));
            if form_words.is_empty() {
                return Err(bad(format!("form `{}` has no words", field(2))));
            }
            let token = field(3).to_owned();
            if !token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                return Err(bad(format!("token `{token}` is not lower-case ASCII")));
            }
            if at == At::End && !token.is_empty() {
                if form_words.len() == 1 {
                    one_word.insert(form_words[0].clone());
                }
                one_word.insert(token.clone());
            }
            let edge = match at {
                At::Start => form_words[0].clone(),
                At::End => form_words[form_words.len() - 1].clone(),
            };
            by_edge.entry(country.to_owned()).or_default()[at as usize]
                .entry(edge)
                .or_default()
                .push(Form {
                    words: form_words,
                    token,
                });
        }
        for forms in by_edge.values_mut().flatten().flat_map(|m| m.values_mut()) {
            forms.sort_by_key(|f| std::cmp::Reverse(f.words.len()));
        }
        let mut one_word: Vec<String> = one_word.into_iter().collect();
        one_word.sort();
        Ok(Self { by_edge, one_word })
    }

    /// The forms that may stand at `at` of a name of `country` whose word there is `edge`: the
    /// country's own, then the `*` ones, each longest first.
    pub fn forms(&self, country: &str, at: At, edge: &str) -> impl Iterator<Item = &Form> {
        let of = move |c: &str| self.by_edge.get(c).and_then(|m| m[at as usize].get(edge));
        of(country).into_iter().chain(of("*")).flatten()
    }

    /// Whether a normalized word is a trailing legal form (of any country).
    pub fn is_form(&self, word: &str) -> bool {
        self.one_word
            .binary_search_by(|f| f.as_str().cmp(word))
            .is_ok()
    }

    /// Whether a normalized word could still become a trailing legal form as the user types on.
    pub fn could_be_form(&self, prefix: &str) -> bool {
        let at = self.one_word.partition_point(|f| f.as_str() < prefix);
        self.one_word.get(at).is_some_and(|f| f.starts_with(prefix))
    }
}

/// The table as shipped (checked by its test; a bad row there fails the build's tests, not a
/// running service).
pub static LEGAL_FORMS: LazyLock<LegalForms> =
    LazyLock::new(|| LegalForms::parse(TABLE).unwrap_or_else(|e| panic!("legal-forms.csv: {e:?}")));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses() {
        let forms = LegalForms::parse(TABLE).unwrap();
        assert!(forms.is_form("ltd"));
        assert!(forms.is_form("limited"));
        assert!(forms.is_form("gmbh"));
        assert!(!forms.is_form("fund"));
        assert!(forms.could_be_form("lim"));
        assert!(!forms.could_be_form("fundx"));
    }

    #[test]
    fn bad_rows_name_their_line() {
        let bad = |text: &str| LegalForms::parse(text).err().unwrap().line;
        let header = "country,at,form,canonical,meaning\n";
        assert_eq!(
            bad(&format!("{header}*,end,Ltd,ltd,x\nxx,end,Ltd,ltd,x\n")),
            3
        );
        assert_eq!(bad(&format!("{header}*,middle,Ltd,ltd,x\n")), 2);
        assert_eq!(bad(&format!("{header}*,end,...,ltd,x\n")), 2);
        assert_eq!(bad(&format!("{header}*,end,Ltd,Ltd.,x\n")), 2);
    }
}
