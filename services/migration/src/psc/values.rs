//! Value rules of the PSC export (PSC-EXPORT.md): booleans, enums, timestamps, dates, decimals.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// `Deal Id`, `deal_id`, `DEALID` -> `dealid`: how header names and enum values are compared.
pub fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// `true/false`, `yes/no`, `1/0`, `y/n`, any case.
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "y" => Ok(true),
        "false" | "no" | "0" | "n" => Ok(false),
        _ => Err(format!(
            "`{text}` is not a boolean (true/false, yes/no, 1/0, y/n)"
        )),
    }
}

/// One of `names` (case-insensitive, spaces ignored): its index.
pub fn one_of(text: &str, names: &[&str]) -> Result<usize, String> {
    let folded = fold(text);
    names
        .iter()
        .position(|n| fold(n) == folded)
        .ok_or_else(|| format!("`{text}` is not one of {}", names.join(", ")))
}

/// RFC 3339 (any offset, kept as the UTC instant), or `YYYY-MM-DD HH:MM:SS` taken as UTC.
pub fn timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc())
        .map_err(|_| {
            format!(
                "`{text}` is not a timestamp (RFC 3339 like 2021-03-05T14:30:00+01:00, or YYYY-MM-DD HH:MM:SS in UTC)"
            )
        })
}

/// `YYYY-MM-DD`.
pub fn date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date (YYYY-MM-DD)"))
}

/// A non-negative decimal with `.` as separator and at most 2 decimals: its hundredths.
pub use cosell_platform::money::parse_amount as cents;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folding_and_enums() {
        assert_eq!(fold("Deal Id"), "dealid");
        assert_eq!(fold("deal_id"), fold("DEALID"));
        assert_eq!(
            one_of("Deal manager", &["Admin", "DealManager", "Seller"]),
            Ok(1)
        );
        assert!(one_of("Owner", &["Admin"]).is_err());
    }

    #[test]
    fn booleans() {
        for t in ["true", "YES", "1", "y"] {
            assert_eq!(boolean(t), Ok(true));
        }
        for f in ["False", "no", "0", "N"] {
            assert_eq!(boolean(f), Ok(false));
        }
        assert!(boolean("maybe").is_err());
    }

    #[test]
    fn timestamps_around_the_2020_boundary() {
        let boundary = timestamp("2020-01-01T00:00:00Z").unwrap();
        assert!(timestamp("2019-12-31T23:59:59Z").unwrap() < boundary);
        assert_eq!(timestamp("2020-01-01 00:00:00").unwrap(), boundary);
        // 00:30 in Paris on New Year's Day is still 2019 in UTC.
        assert!(timestamp("2020-01-01T00:30:00+01:00").unwrap() < boundary);
        // 23:30 on New Year's Eve in New York is already 2020 in UTC.
        assert!(timestamp("2019-12-31T23:30:00-05:00").unwrap() >= boundary);
        assert!(timestamp("31/12/2019").is_err());
    }

    #[test]
    fn amounts() {
        assert_eq!(cents("1250"), Ok(125_000));
        assert_eq!(cents("1250.5"), Ok(125_050));
        for bad in ["", "-1", "1,000", "1.234", "1e3", ".5", "1."] {
            assert!(cents(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,40}") {
            let _ = (boolean(&s), timestamp(&s), date(&s), cents(&s), one_of(&s, &["Open", "Won"]));
        }
    }
}
