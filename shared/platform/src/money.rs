//! Money as exact minor units (hundredths), never floats: the decimal amounts of the API and of
//! the PSC export parse to and print from them the same way in every service.

/// Largest amount accepted: 10^15 minor units (ten trillion in a 2-decimal currency).
const MAX_CENTS: i64 = 1_000_000_000_000_000;

/// `"1250"`, `"1250.5"`, `"1250.50"` -> 125050 cents. No sign, no exponent, no separators.
pub fn parse_amount(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a decimal amount like `1250` or `1250.50`");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if text.starts_with('-') {
            "must not be negative".into()
        } else {
            bad()
        });
    }
    if text.contains('.') && (fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    if fraction.len() > 2 {
        return Err("has more than 2 decimal places".into());
    }
    let too_large = || "is too large (at most 10,000,000,000,000)".to_string();
    let whole: i64 = whole.parse().map_err(|_| too_large())?;
    let fraction: i64 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
    let cents = whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(fraction))
        .filter(|c| *c <= MAX_CENTS)
        .ok_or_else(too_large)?;
    Ok(cents)
}

/// 125050 -> `"1250.50"`; whole amounts print without decimals (`"1250"`).
pub fn format_cents(cents: i64) -> String {
    if cents % 100 == 0 {
        (cents / 100).to_string()
    } else {
        format!("{}.{:02}", cents / 100, cents % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("1250"), Ok(125_000));
        assert_eq!(parse_amount("1250.5"), Ok(125_050));
        assert_eq!(parse_amount("0.05"), Ok(5));
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1.234",
            "1e3",
            "1,000",
            " 1",
            "99999999999999999999",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
        assert_eq!(format_cents(125_050), "1250.50");
        assert_eq!(format_cents(125_000), "1250");
        assert_eq!(format_cents(5), "0.05");
    }

    proptest! {
        #[test]
        fn amount_round_trips(cents in 0i64..MAX_CENTS) {
            prop_assert_eq!(parse_amount(&format_cents(cents)), Ok(cents));
        }

        #[test]
        fn amount_parser_never_panics(s in ".{0,30}") {
            let _ = parse_amount(&s);
        }
    }
}
