//! The rows a benchmark hands to the one benchmark table (`cargo run -p cosell-bench`).
//!
//! Each benchmark prints its figures as it always has and, when `COSELL_BENCH_REPORT` names a
//! file, also appends to it one JSON object per line for each figure that has a target or a
//! baseline measured in the same run:
//!
//! ```json
//! {"bench": "deals/api", "figure": "referral get through gRPC, c16",
//!  "measured": "9,116/s, p50 1.2 ms, p99 3.5 ms", "value": 9116.0, "unit": "/s",
//!  "baseline": "floor 1/(1/trivial + 1/plain select): 19,456/s", "baseline_value": 19456.0,
//!  "ratio": 0.47, "ratio_text": "0.47", "target": ">= 0.7 (issue 19)", "met": false}
//! ```
//!
//! `bench`, `figure` and `measured` are always there; the others are `null` when a figure has
//! none. The benchmark itself says whether its target is met, since only it knows how the target
//! reads (a ratio's floor, a p99's ceiling, every event delivered). Without the variable nothing
//! is written.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::Figures;

/// The file the rows are appended to (set by `cosell-bench` for each benchmark it runs).
pub const REPORT_VAR: &str = "COSELL_BENCH_REPORT";

/// One figure of the table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// What was measured, with its size (`directory search through gRPC, c16, 1,000,000
    /// entities`).
    pub figure: String,
    /// The figure as a reader wants it (`9,116/s, p99 3.5 ms`).
    pub measured: String,
    /// The figure the ratio is of, and its unit (`/s`, `s`, `us`, `MB`, `recall`).
    pub value: Option<(f64, String)>,
    /// The baseline of the same run, named (`plain SQL inserts: 9,142/s`).
    pub baseline: Option<String>,
    /// The baseline's value, in the unit of `value`.
    pub baseline_value: Option<f64>,
    /// The ratio the target is on, and how it is shown (`0.29 (p99 4.2x)`).
    pub ratio: Option<(f64, String)>,
    /// The target, and where it comes from (`>= 0.7 (issue 19)`), and whether it was met.
    pub target: Option<(String, bool)>,
}

impl Row {
    pub fn new(figure: impl Into<String>, measured: impl Into<String>) -> Self {
        Row {
            figure: figure.into(),
            measured: measured.into(),
            ..Row::default()
        }
    }

    pub fn value(mut self, value: f64, unit: &str) -> Self {
        self.value = Some((value, unit.to_owned()));
        self
    }

    pub fn baseline(mut self, text: impl Into<String>) -> Self {
        self.baseline = Some(text.into());
        self
    }

    pub fn baseline_value(mut self, value: f64) -> Self {
        self.baseline_value = Some(value);
        self
    }

    /// The ratio, shown with two decimals.
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = Some((ratio, format!("{ratio:.2}")));
        self
    }

    /// The ratio, shown as `text` (`753x`, `0.29 (p99 4.2x)`).
    pub fn ratio_shown(mut self, ratio: f64, text: impl Into<String>) -> Self {
        self.ratio = Some((ratio, text.into()));
        self
    }

    pub fn target(mut self, text: impl Into<String>, met: bool) -> Self {
        self.target = Some((text.into(), met));
        self
    }

    fn json(&self, bench: &str) -> serde_json::Value {
        serde_json::json!({
            "bench": bench,
            "figure": self.figure,
            "measured": self.measured,
            "value": self.value.as_ref().map(|v| v.0),
            "unit": self.value.as_ref().map(|v| v.1.clone()),
            "baseline": self.baseline,
            "baseline_value": self.baseline_value,
            "ratio": self.ratio.as_ref().map(|r| r.0),
            "ratio_text": self.ratio.as_ref().map(|r| r.1.clone()),
            "target": self.target.as_ref().map(|t| t.0.clone()),
            "met": self.target.as_ref().map(|t| t.1),
        })
    }
}

/// Where one benchmark's rows go.
#[derive(Debug, Clone)]
pub struct Report {
    /// The benchmark's name in the table (`deals/api`).
    bench: &'static str,
    /// `COSELL_BENCH_REPORT`'s file; `None`: rows are dropped.
    file: Option<PathBuf>,
}

impl Report {
    /// The report of benchmark `bench`, to the file `COSELL_BENCH_REPORT` names, if any.
    pub fn from_env(bench: &'static str) -> Self {
        Report {
            bench,
            file: std::env::var_os(REPORT_VAR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// Appends `row` (one line, written at once, so that rows of benchmarks sharing the file
    /// do not interleave).
    pub fn add(&self, row: Row) -> std::io::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut line = row.json(self.bench).to_string();
        line.push('\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .write_all(line.as_bytes())
    }
}

/// `12345.6` -> `12,346`.
pub fn thousands(n: f64) -> String {
    if !n.is_finite() {
        return format!("{n}");
    }
    let digits = format!("{:.0}", n.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// `12,346/s`.
pub fn rate(per_sec: f64) -> String {
    format!("{}/s", thousands(per_sec))
}

/// `865 us`, `1.57 ms`, `12.3 ms`, `36.1 s`.
pub fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} us")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.1} s", us / 1e6)
    }
}

/// `9,116/s, p50 1.25 ms, p99 3.50 ms`.
pub fn figures(f: &Figures) -> String {
    format!(
        "{}, p50 {}, p99 {}",
        rate(f.rate),
        duration(f.p50),
        duration(f.p99)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_in_the_docs() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(-12_345.0), "-12,345");
        assert_eq!(rate(9_116.4), "9,116/s");
        assert_eq!(duration(Duration::from_micros(865)), "865 us");
        assert_eq!(duration(Duration::from_micros(1_570)), "1.57 ms");
        assert_eq!(duration(Duration::from_micros(21_500)), "21.5 ms");
        assert_eq!(duration(Duration::from_millis(36_100)), "36.1 s");
    }

    #[test]
    fn a_row_is_one_json_object_with_every_field() {
        let row = Row::new("get", "9,116/s")
            .value(9_116.0, "/s")
            .baseline("floor: 19,456/s")
            .baseline_value(19_456.0)
            .ratio(9_116.0 / 19_456.0)
            .target(">= 0.7 (issue 19)", false);
        let json = row.json("deals/api");
        assert_eq!(json["bench"], "deals/api");
        assert_eq!(json["ratio_text"], "0.47");
        assert_eq!(json["met"], false);
        assert_eq!(json["unit"], "/s");
        let bare = Row::new("sweeper", "95.4 s").json("deals/feed");
        assert!(bare["target"].is_null() && bare["met"].is_null() && bare["ratio"].is_null());
    }
}
