//! Durations in configuration, written the way an operator says them: `30s`, `10m`, `2h`,
//! `14d` (a whole number and one unit). Used as a clap value parser (`value_parser =
//! cosell_platform::duration::parse`), so a bad value is refused at start with the flag named.

use std::time::Duration;

/// Longest duration accepted: ten years, far past any expiry or retention, and small enough
/// that adding it to a date never overflows.
const MAX_SECS: u64 = 10 * 366 * 86_400;

/// Parses `<number><unit>`, unit one of `s`, `m`, `h`, `d`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. 30s, 10m, 2h or 14d"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number (e.g. 14d)"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("`{unit}` is not a unit: use s, m, h or d")),
    };
    let secs = n
        .checked_mul(unit_secs)
        .filter(|s| *s <= MAX_SECS)
        .ok_or_else(|| format!("`{text}` is longer than ten years"))?;
    Ok(Duration::from_secs(secs))
}

/// The same, as a chrono duration (what times are computed with).
pub fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_unit() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_is_not_one_number_and_one_unit() {
        for bad in ["", "14", "d", "1.5h", "-1d", "3w", "1d2h", "99999999999d"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(n in 0u64..3_000, unit in prop::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600), ("d", 86_400)])) {
            prop_assert_eq!(parse(&format!("{n}{}", unit.0)), Ok(Duration::from_secs(n * unit.1)));
        }

        #[test]
        fn never_panics(text in ".{0,20}") {
            let _ = parse(&text);
        }
    }
}
