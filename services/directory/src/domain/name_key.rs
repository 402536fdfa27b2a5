//! The name key: what two names of one entity have in common however a person writes them.
//! Case, accents, compatibility forms and punctuation are folded by [`words`]; spacing goes
//! (`H.W. Machine Tools`, `HW Machine Tools` and `H W Machine-Tools` are one key); a leading or
//! trailing `The` and the word `and` go (`&` is punctuation); and the legal forms at either end
//! are reduced to their canonical tokens by the legal-form table of the entity's country, as a
//! set (`Müller GmbH & Co. KG` → base `muller`, forms {co, gmbh, kg}).
//!
//! Matching compares the whole key when the customer's name carries a legal form, and the
//! base alone when it does not (`Trinity Distribution Services` for `..., Inc.`).

use std::collections::BTreeSet;

use super::legal_forms::{At, LEGAL_FORMS, LegalForms};
use super::normalize::words;

/// A name reduced to what identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameKey {
    /// The name's words without legal forms, run together.
    pub base: String,
    /// The canonical tokens of its legal forms.
    pub forms: BTreeSet<String>,
}

impl NameKey {
    /// The key of `name` for an entity or customer in `country`.
    pub fn of(name: &str, country: &str) -> Self {
        Self::of_words(&words(name), country)
    }

    /// The key of a name already cut into normalized [`words`] (indexing has them).
    pub fn of_words(all: &[String], country: &str) -> Self {
        let table: &LegalForms = &LEGAL_FORMS;
        let mut rest: &[String] = all;
        let mut forms = BTreeSet::new();
        loop {
            let before = rest.len();
            rest = strip_article(rest);
            for at in [At::End, At::Start] {
                // A name that is nothing but a legal form keeps its last word.
                let edge = match at {
                    At::End => rest.last(),
                    At::Start => rest.first(),
                };
                let Some(edge) = edge else { break };
                if let Some(form) = table.forms(country, at, edge).find(|f| {
                    f.words.len() < rest.len()
                        && match at {
                            At::End => rest.ends_with(&f.words),
                            At::Start => rest.starts_with(&f.words),
                        }
                }) {
                    if !form.token.is_empty() {
                        forms.insert(form.token.clone());
                    }
                    rest = match at {
                        At::End => &rest[..rest.len() - form.words.len()],
                        At::Start => &rest[form.words.len()..],
                    };
                }
            }
            if rest.len() == before {
                break;
            }
        }
        let base = rest
            .iter()
            .filter(|w| w.as_str() != "and")
            .map(String::as_str)
            .collect::<String>();
        Self { base, forms }
    }

    /// The whole key as one indexed term: `base|form form`.
    pub fn full(&self) -> String {
        let forms: Vec<&str> = self.forms.iter().map(String::as_str).collect();
        format!("{}|{}", self.base, forms.join(" "))
    }

    pub fn has_forms(&self) -> bool {
        !self.forms.is_empty()
    }
}

/// Without a leading or trailing `the` (unless nothing else is left).
fn strip_article(mut words: &[String]) -> &[String] {
    if words.len() > 1 && words[0] == "the" {
        words = &words[1..];
    }
    if words.len() > 1 && words[words.len() - 1] == "the" {
        words = &words[..words.len() - 1];
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, country: &str) -> (String, Vec<String>) {
        let k = NameKey::of(name, country);
        (k.base, k.forms.into_iter().collect())
    }

    fn same(a: &str, b: &str, country: &str) {
        assert_eq!(key(a, country), key(b, country), "{a} / {b}");
    }

    #[test]
    fn spellings_of_one_form_are_one_key() {
        same("Contoso Ltd", "CONTOSO LIMITED", "GB");
        same("Contoso LTD.", "Contoso, Limited", "GB");
        same("Müller AG", "Müller Aktiengesellschaft", "DE");
        same(
            "Müller GmbH",
            "Muller Gesellschaft mit beschränkter Haftung",
            "DE",
        );
        same(
            "Northwind Traders Inc",
            "Northwind Traders, Incorporated",
            "US",
        );
        same(
            "Société Générale S.A.",
            "Societe Generale Société anonyme",
            "FR",
        );
    }

    #[test]
    fn punctuation_spacing_and_articles_fold() {
        same("H.W. Machine Tools Ltd", "HW Machine Tools Ltd", "GB");
        same("H W Machine-Tools Ltd", "HW Machine Tools Ltd", "GB");
        same("The Coca-Cola Company", "Coca Cola Co.", "US");
        same("Coca-Cola Company, The", "Coca Cola Co.", "US");
        same("Johnson & Johnson", "Johnson and Johnson", "US");
    }

    /// Every row of the shipped table, after (or before) a name in its country (a `*` row in a
    /// country with no rows of its own), comes out as its own token and leaves the name whole:
    /// no row is shadowed by another, none eats into the name.
    #[test]
    fn every_row_of_the_table_is_its_token() {
        let table = include_str!("../../data/legal-forms.csv");
        let mut rows = csv::Reader::from_reader(table.as_bytes());
        let mut wrong = Vec::new();
        let mut checked = 0;
        for row in rows.records() {
            let row = row.unwrap();
            let (country, at, form, token) = (&row[0], &row[1], &row[2], &row[3]);
            let country = if country == "*" { "ZZ" } else { country };
            let name = match at {
                "start" => format!("{form} Contoso Example"),
                _ => format!("Contoso Example {form}"),
            };
            let (base, forms) = key(&name, country);
            let want: Vec<String> = Some(token.to_owned())
                .filter(|t| !t.is_empty())
                .into_iter()
                .collect();
            if base != "contosoexample" || forms != want {
                wrong.push(format!(
                    "{country} {at} `{form}`: {base} {forms:?}, not {want:?}"
                ));
            }
            checked += 1;
        }
        assert!(checked > 1000, "{checked} rows");
        assert!(
            wrong.is_empty(),
            "{} rows:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }

    #[test]
    fn forms_are_a_set_and_the_base_stays() {
        let (base, forms) = key("Müller GmbH & Co. KG", "DE");
        assert_eq!(base, "muller");
        assert!(forms.contains(&"gmbh".to_owned()), "{forms:?}");
        // A missing form leaves the base.
        assert_eq!(
            key("Trinity Distribution Services", "US").0,
            key("Trinity Distribution Services, Inc.", "US").0
        );
        // Different forms are different keys.
        assert_ne!(key("Acme Inc", "US"), key("Acme LLC", "US"));
        // A name that is only a form keeps it.
        assert_eq!(key("Limited", "GB").0, "limited");
        // The table's country: a leading `PT` is a form in Indonesia only.
        assert_eq!(key("PT Bank Mandiri", "ID").0, "bankmandiri");
        assert_eq!(key("PT Bank Mandiri", "US").0, "ptbankmandiri");
    }
}
