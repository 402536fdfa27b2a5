//! Checked values: money (exact minor units, never floats), ISO 4217 currencies, dates,
//! contacts and emails; and how the contract's code enums are stored (by name, so that the
//! stored JSON stays readable and survives renumbering).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Active ISO 4217 codes (2026), sorted for binary search.
const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP",
    "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD",
    "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY",
    "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD",
    "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK",
    "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG",
    "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
    "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// An amount of money in minor units (hundredths) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub currency: String,
    pub cents: i64,
}

impl Money {
    pub fn parse(currency: &str, amount: &str) -> Result<Self, (&'static str, String)> {
        let currency = parse_currency(currency).map_err(|e| ("currency_code", e))?;
        let cents = parse_amount(amount).map_err(|e| ("amount", e))?;
        Ok(Money { currency, cents })
    }

    pub fn amount(&self) -> String {
        format_cents(self.cents)
    }
}

pub fn parse_currency(code: &str) -> Result<String, String> {
    if CURRENCIES.binary_search(&code).is_ok() {
        Ok(code.to_owned())
    } else if code.is_empty() {
        Err("is required (an ISO 4217 code such as `USD`)".into())
    } else {
        Err(format!(
            "`{code}` is not an ISO 4217 currency code (upper case, e.g. `USD`, `EUR`)"
        ))
    }
}

pub use cosell_platform::money::{format_cents, parse_amount};

/// `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date in the form YYYY-MM-DD"))
}

/// A person: customer contact, team member or platform seller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
}

impl Contact {
    /// Every part given (what D6 asks of a team member).
    pub fn complete(&self) -> bool {
        [&self.first_name, &self.last_name, &self.email, &self.phone]
            .iter()
            .all(|s| !s.trim().is_empty())
    }

    /// Checks what is given: an email (required) of a valid shape, a phone of digits and the
    /// usual punctuation, and no part longer than 200 characters. Problems as (field, reason).
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("email", &self.email),
            ("phone", &self.phone),
        ] {
            if value.chars().count() > 200 {
                problems.push((field, "is longer than 200 characters".to_string()));
            }
        }
        if let Err(e) = check_email(&self.email) {
            problems.push(("email", e));
        }
        let phone_ok = self
            .phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            && (self.phone.is_empty() || self.phone.chars().any(|c| c.is_ascii_digit()));
        if !phone_ok {
            problems.push(("phone", format!("`{}` is not a phone number", self.phone)));
        }
        problems
    }
}

/// `local@domain.tld`, without spaces.
pub fn check_email(email: &str) -> Result<(), String> {
    if email.is_empty() {
        return Err("is required".into());
    }
    if cosell_platform::email::is_address(email) {
        Ok(())
    } else {
        Err(format!("`{email}` is not an email address"))
    }
}

/// Serde helpers storing a prost enum by its name.
macro_rules! by_name {
    ($module:ident, $ty:ty) => {
        pub mod $module {
            use serde::{Deserialize, Deserializer, Serializer};

            pub fn serialize<S: Serializer>(v: &$ty, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(v.as_str_name())
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let name = String::deserialize(d)?;
                <$ty>::from_str_name(&name).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {}: {name}", stringify!($ty)))
                })
            }
        }
    };
}

by_name!(size_code, cosell_proto::deals::CustomerSize);
by_name!(assistance_code, cosell_proto::deals::AssistanceCode);
by_name!(solution_kind, cosell_proto::deals::SolutionKind);
by_name!(candidate_reason, cosell_proto::deals::CandidateReason);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_sorted_for_binary_search() {
        assert!(CURRENCIES.windows(2).all(|w| w[0] < w[1]));
        assert!(parse_currency("EUR").is_ok());
        assert!(parse_currency("eur").is_err());
        assert!(parse_currency("XYZ").is_err());
    }

    #[test]
    fn emails_and_contacts() {
        assert!(check_email("ada@contoso.com").is_ok());
        for bad in [
            "",
            "ada",
            "ada@contoso",
            "@contoso.com",
            "a b@c.com",
            "a@b@c.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        let c = Contact {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: "ada@contoso.com".into(),
            phone: "+1 (425) 555-0100".into(),
        };
        assert!(c.check().is_empty());
        assert!(c.complete());
        let bad = Contact {
            phone: "call me".into(),
            ..c
        };
        assert_eq!(bad.check()[0].0, "phone");
    }
}
