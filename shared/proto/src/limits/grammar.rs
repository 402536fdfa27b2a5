//! The grammar of input limits in proto field comments, read by `build.rs` (which generates the
//! checks) and compiled into the library only for its tests.
//!
//! A limit is the phrase `at most N characters` (Unicode scalar values), `at most N bytes`,
//! `at most N items` or `at most N words` (runs of letters and digits), anywhere in a field's
//! leading comment; N may carry thousands separators (`1,024`) and the unit may be singular
//! (`at most 1 item`). Other `at most` phrases (`at most 2 decimal places`, `At most this many`)
//! are prose, not limits. A field may carry several: `at most 50 items, each at most 100
//! characters`; `at most 200 characters and 10 words` is prose for the second, so write `at
//! most 200 characters and at most 10 words`.

/// The limits one comment documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `at most N items`: the length of a repeated field.
    pub items: Option<usize>,
    /// `at most N characters`: a string's (or each element's) length in Unicode scalar values.
    pub chars: Option<usize>,
    /// `at most N bytes`: a string's (UTF-8) or bytes field's (or each element's) length.
    pub bytes: Option<usize>,
    /// `at most N words`: how many runs of letters and digits a string (or each element) holds.
    pub words: Option<usize>,
}

/// Reads the limits of a comment. A unit given twice is an error: which one would hold?
pub fn parse(comment: &str) -> Result<Limits, String> {
    let words: Vec<&str> = comment.split_whitespace().collect();
    let mut limits = Limits::default();
    for (i, window) in words.windows(4).enumerate() {
        let [at, most, number, unit] = window else {
            continue;
        };
        let at = at.trim_start_matches(|c: char| c.is_ascii_punctuation());
        if !at.eq_ignore_ascii_case("at") || *most != "most" {
            continue;
        }
        let Some(n) = number_of(number) else {
            continue;
        };
        let unit = unit.trim_end_matches(|c: char| c.is_ascii_punctuation());
        let slot = match unit {
            "characters" | "character" => &mut limits.chars,
            "bytes" | "byte" => &mut limits.bytes,
            "items" | "item" => &mut limits.items,
            "words" | "word" => &mut limits.words,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!(
                "`at most ... {unit}` is given twice (word {}): which limit holds?",
                i + 1
            ));
        }
        *slot = Some(n);
    }
    if limits.chars.is_some() && limits.bytes.is_some() {
        return Err("gives both a character and a byte limit: give one".into());
    }
    Ok(limits)
}

/// `200`, `1,024`, `10,000`: digits, optionally grouped by three with commas.
fn number_of(word: &str) -> Option<usize> {
    let mut groups = word.split(',');
    let first = groups.next()?;
    if first.is_empty() || (first.len() > 3 && word.contains(',')) {
        return None;
    }
    let mut digits = String::from(first);
    for g in groups {
        if g.len() != 3 {
            return None;
        }
        digits.push_str(g);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(items: Option<usize>, chars: Option<usize>, bytes: Option<usize>) -> Limits {
        Limits {
            items,
            chars,
            bytes,
            words: None,
        }
    }

    #[test]
    fn reads_the_phrases() {
        assert_eq!(
            parse("Optional. First name, at most 100 characters."),
            Ok(limits(None, Some(100), None))
        );
        assert_eq!(
            parse("Why (required, at most 2,000 characters); the partner sees it."),
            Ok(limits(None, Some(2000), None))
        );
        assert_eq!(
            parse("The ids. At most 50 items,\n each at most 100 characters."),
            Ok(limits(Some(50), Some(100), None))
        );
        assert_eq!(
            parse("A compact JWT (at most 16,384 bytes)"),
            Ok(limits(None, None, Some(16384)))
        );
        assert_eq!(
            parse("Notes (at most 10,000 characters)."),
            Ok(limits(None, Some(10_000), None))
        );
        assert_eq!(
            parse("What to find (at most 200 characters and at most 10 words)."),
            Ok(Limits {
                words: Some(10),
                ..limits(None, Some(200), None)
            })
        );
        assert_eq!(parse("at most 1 item"), Ok(limits(Some(1), None, None)));
    }

    #[test]
    fn prose_is_not_a_limit() {
        for prose in [
            "At most this many (default 50, at most 500).",
            "Decimal amount; not negative, at most 2 decimal places.",
            "The next bytes of the file (at most 4 MiB per message).",
            "at most 1,0000 characters",
            "at most ,100 characters",
            "at most 1000,000 characters",
            "",
        ] {
            assert_eq!(parse(prose), Ok(Limits::default()), "{prose}");
        }
    }

    #[test]
    fn ambiguity_is_an_error() {
        assert!(parse("at most 10 characters, or at most 20 characters").is_err());
        assert!(parse("at most 10 characters and at most 40 bytes").is_err());
    }

    proptest! {
        #[test]
        fn any_number_reads_back(n in 0usize..10_000_000, grouped: bool) {
            let text = if grouped { with_separators(n) } else { n.to_string() };
            let comment = format!("Something (at most {text} characters).");
            prop_assert_eq!(parse(&comment), Ok(limits(None, Some(n), None)));
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = parse(&s);
        }
    }

    fn with_separators(n: usize) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
}
