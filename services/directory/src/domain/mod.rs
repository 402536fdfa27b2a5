//! The directory domain: legal entities, how a CSV row becomes one, and how names are compared.
//!
//! - [`normalize`]: the word normalization shared by indexing and querying.
//! - [`legal_forms`]: the legal-form table (`data/legal-forms.csv`).
//! - [`name_key`]: a name reduced to what identifies it, for linking customers confidently.

pub mod legal_forms;
pub mod name_key;
pub mod normalize;

use serde::{Deserialize, Serialize};

/// A legal entity as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// The LEI for GLEIF entities.
    pub id: String,
    pub legal_name: String,
    pub other_names: Vec<String>,
    pub address_lines: Vec<String>,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case; empty when the source has none.
    pub country: String,
    /// The address was made up (the sample data), never the customer's real one.
    pub address_generated: bool,
}

/// An ISO 17442 LEI: 20 upper-case letters and digits.
pub fn valid_lei(s: &str) -> bool {
    s.len() == 20
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Parses a country code: empty, or a known ISO 3166-1 alpha-2 code (any case).
pub fn country(s: &str) -> Result<String, String> {
    let c = s.trim().to_ascii_uppercase();
    if c.is_empty() || cosell_platform::countries::is_known(&c) {
        Ok(c)
    } else {
        Err(format!("`{s}` is not an ISO 3166-1 alpha-2 country code"))
    }
}

/// Parses a flag column: true/false, yes/no, 1/0, y/n, empty (false).
pub fn flag(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "y" => Ok(true),
        "false" | "no" | "0" | "n" | "" => Ok(false),
        _ => Err(format!("`{s}` is not a boolean (true/false)")),
    }
}
