//! An RFC 4180 reader for the PSC export, streaming and written for it: it knows which values
//! were quoted (only unquoted ones are trimmed), on which line each record starts (a quoted value
//! may span lines), and it never panics on any input; a record too wide or not UTF-8 is an error
//! of that record, and reading goes on with the next.
//!
//! Memory is bounded whatever the input ([`Limits`]): the reader holds one record at a time, in
//! one buffer of its values' bytes and one list of where each value ends. A value over 64 KiB, a
//! record over 1 MiB or with more than 1,000 values is an error of that record as soon as the
//! limit is passed; the rest of the record is then read past without being kept.
//!
//! Why not `csv-core` (which parses into buffers the caller sizes, the other way to bound it):
//! it cannot say whether a value was quoted, it keeps spaces after a closing quote as data, and
//! it takes a quote after leading spaces as data; the export's rules (PSC-EXPORT.md) and the
//! tests below want all three the other way. The state machine here is as small as the
//! wrapper those would need.

use std::io::{BufRead, ErrorKind};

/// Largest value accepted (PSC-EXPORT.md): larger ones make the record bad.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Largest record accepted: the bytes of its values, as read (quotes and separators aside).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Most values a record may have (the widest PSC file has 28 columns).
pub const MAX_VALUES: usize = 1000;

/// What one record may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one value.
    pub value_bytes: usize,
    /// Bytes of one record's values together.
    pub record_bytes: usize,
    /// Values of one record.
    pub values: usize,
}

impl Limits {
    /// The export's limits.
    pub const PSC: Limits = Limits {
        value_bytes: MAX_FIELD_BYTES,
        record_bytes: MAX_RECORD_BYTES,
        values: MAX_VALUES,
    };
}

/// One record: its values and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: u64,
    pub values: Vec<String>,
}

/// What is wrong with one record; reading goes on after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub line: u64,
    /// 1-based position of the value at fault, when one is.
    pub position: Option<usize>,
    pub reason: String,
}

/// Where the reader is within a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a value, or after blanks only (which are never part of a value: an
    /// unquoted value is trimmed, and a quote after them opens quoting).
    Start,
    /// In an unquoted value.
    Unquoted,
    /// Inside quotes.
    Quoted,
    /// Inside quotes, just after a quote: a second one is data, anything else closes them.
    QuotedQuote,
    /// After the closing quote.
    Closed,
}

pub struct Reader<R> {
    input: R,
    /// The line the next byte is on.
    line: u64,
    started: bool,
    done: bool,
    /// A record has begun and not ended.
    in_record: bool,
    record: Parser,
}

/// The record being read.
struct Parser {
    limits: Limits,
    /// Its values' bytes one after another...
    data: Vec<u8>,
    /// ...and, per value ended so far, where it ends in `data` and whether it was quoted.
    ends: Vec<(usize, bool)>,
    state: State,
    /// The current value was quoted.
    quoted: bool,
    /// The line it starts on.
    line: u64,
    /// It went past a limit (and was reported): it is read to its end and not kept.
    skipping: bool,
}

/// What one byte did to the record.
enum Step {
    More,
    /// The record ended (a line break outside quotes).
    End,
    /// The record went past a limit: this error.
    Over(BadRecord),
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Self::with_limits(input, Limits::PSC)
    }

    /// A reader that holds no more than `limits` allow (each at least 1).
    pub fn with_limits(input: R, limits: Limits) -> Self {
        Self {
            input,
            line: 1,
            started: false,
            done: false,
            in_record: false,
            record: Parser {
                limits: Limits {
                    value_bytes: limits.value_bytes.max(1),
                    record_bytes: limits.record_bytes.max(1),
                    values: limits.values.max(1),
                },
                data: Vec::new(),
                ends: Vec::new(),
                state: State::Start,
                quoted: false,
                line: 1,
                skipping: false,
            },
        }
    }

    /// How much the reader's buffers have room for: bytes of values, and values.
    pub fn buffered(&self) -> (usize, usize) {
        (self.record.data.capacity(), self.record.ends.capacity())
    }

    /// The next record; `None` at the end. Blank lines are skipped.
    pub fn next_record(&mut self) -> Option<std::io::Result<Result<Record, BadRecord>>> {
        match self.read_raw() {
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
            Ok(None) => None,
            Ok(Some(Err(bad))) => Some(Ok(Err(bad))),
            Ok(Some(Ok(()))) => Some(Ok(self.record.to_record())),
        }
    }

    /// Reads to the end of the next record that is not blank (`Ok(())`: it is in the parser),
    /// or to the first limit a record passes (its error; the rest of it is skipped on the next
    /// call).
    fn read_raw(&mut self) -> std::io::Result<Option<Result<(), BadRecord>>> {
        if !self.started {
            self.started = true;
            // A byte-order mark is not data.
            let buf = fill(&mut self.input)?;
            if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                self.input.consume(3);
            }
        }
        loop {
            if self.done {
                return Ok(None);
            }
            let buf = fill(&mut self.input)?;
            if buf.is_empty() {
                // End of input ends the record (an unclosed quote takes the rest as data).
                self.done = true;
                if !self.in_record || self.record.skipping {
                    return Ok(None);
                }
                self.record.end_value();
                return Ok((!self.record.blank()).then_some(Ok(())));
            }
            if !self.in_record {
                self.in_record = true;
                self.record.begin(self.line);
            }
            let mut used = 0;
            let mut outcome = None;
            for &b in buf {
                used += 1;
                if b == b'\n' {
                    self.line += 1;
                }
                match self.record.step(b) {
                    Step::More => {}
                    Step::End => {
                        self.in_record = false;
                        if !self.record.skipping && !self.record.blank() {
                            outcome = Some(Ok(()));
                        }
                        break;
                    }
                    Step::Over(bad) => {
                        self.record.skipping = true;
                        outcome = Some(Err(bad));
                        break;
                    }
                }
            }
            self.input.consume(used);
            if outcome.is_some() {
                return Ok(outcome);
            }
        }
    }
}

impl Parser {
    fn begin(&mut self, line: u64) {
        self.data.clear();
        self.ends.clear();
        self.state = State::Start;
        self.quoted = false;
        self.line = line;
        self.skipping = false;
    }

    /// Whether the record, ended, is a blank line: one unquoted value of blanks only.
    fn blank(&self) -> bool {
        matches!(self.ends.as_slice(), [(_, false)])
            && self.data.iter().all(|b| *b == b' ' || *b == b'\t')
    }

    /// One byte of the record.
    fn step(&mut self, b: u8) -> Step {
        match self.state {
            State::Start => match b {
                b',' => self.next_value(),
                b'\n' => self.end_record(),
                b'"' => {
                    self.quoted = true;
                    self.state = State::Quoted;
                    Step::More
                }
                b' ' | b'\t' => Step::More,
                _ => {
                    self.state = State::Unquoted;
                    self.push(b)
                }
            },
            State::Unquoted => match b {
                b',' => self.next_value(),
                b'\n' => self.end_record(),
                _ => self.push(b),
            },
            State::Quoted => match b {
                b'"' => {
                    self.state = State::QuotedQuote;
                    Step::More
                }
                _ => self.push(b),
            },
            State::QuotedQuote => {
                if b == b'"' {
                    self.state = State::Quoted;
                    self.push(b)
                } else {
                    self.state = State::Closed;
                    self.step(b)
                }
            }
            State::Closed => match b {
                b',' => self.next_value(),
                b'\n' => self.end_record(),
                // Spaces after a closing quote are not data (nor is the CR of a CRLF).
                b' ' | b'\t' | b'\r' => Step::More,
                _ => self.push(b),
            },
        }
    }

    /// Keeps one byte of the current value, unless that passes a limit.
    fn push(&mut self, b: u8) -> Step {
        if self.skipping {
            return Step::More;
        }
        let start = self.ends.last().map_or(0, |&(end, _)| end);
        let limit = self.limits.value_bytes;
        if self.data.len() - start >= limit {
            let position = Some(self.ends.len() + 1);
            return Step::Over(self.bad(
                position,
                format!("the value is more than {limit} bytes long; at most {limit} are accepted"),
            ));
        }
        let limit = self.limits.record_bytes;
        if self.data.len() >= limit {
            return Step::Over(self.bad(
                None,
                format!(
                    "the record's values take more than {limit} bytes; at most {limit} are accepted"
                ),
            ));
        }
        grow(&mut self.data, limit);
        self.data.push(b);
        Step::More
    }

    /// Ends the current value and starts the next one, unless that is one value too many.
    fn next_value(&mut self) -> Step {
        let mut step = Step::More;
        if !self.skipping {
            let limit = self.limits.values;
            if self.ends.len() + 1 >= limit {
                step =
                    Step::Over(self.bad(None, format!("the record has more than {limit} values")));
            } else {
                self.end_value();
            }
        }
        // The separator is read either way: the skipping follows the next value's quotes.
        self.state = State::Start;
        self.quoted = false;
        step
    }

    fn end_record(&mut self) -> Step {
        if !self.skipping {
            // The CR of a CRLF is not data (even one left inside quotes).
            let start = self.ends.last().map_or(0, |&(end, _)| end);
            if self.data.len() > start && self.data.last() == Some(&b'\r') {
                self.data.pop();
            }
            self.end_value();
        }
        Step::End
    }

    fn end_value(&mut self) {
        grow(&mut self.ends, self.limits.values);
        self.ends.push((self.data.len(), self.quoted));
        self.state = State::Start;
        self.quoted = false;
    }

    fn bad(&self, position: Option<usize>, reason: String) -> BadRecord {
        BadRecord {
            line: self.line,
            position,
            reason: format!("{reason}; the record is skipped"),
        }
    }

    fn to_record(&self) -> Result<Record, BadRecord> {
        let line = self.line;
        let mut values = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for (i, &(end, quoted)) in self.ends.iter().enumerate() {
            let bytes = &self.data[start..end];
            start = end;
            let text = std::str::from_utf8(bytes).map_err(|e| BadRecord {
                line,
                position: Some(i + 1),
                reason: format!("the value is not valid UTF-8 (byte {})", e.valid_up_to()),
            })?;
            // A trailing CR of a quoted-then-CRLF record or stray spaces are not data.
            let text = if quoted {
                text
            } else {
                text.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r')
            };
            values.push(text.to_owned());
        }
        Ok(Record { line, values })
    }
}

/// The input's next bytes, retried when interrupted.
fn fill<R: BufRead>(input: &mut R) -> std::io::Result<&[u8]> {
    loop {
        match input.fill_buf() {
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    input.fill_buf()
}

/// Makes room for one more item without ever holding room for more than `max`.
fn grow<T>(v: &mut Vec<T>, max: usize) {
    if v.len() == v.capacity() {
        let wanted = (v.capacity() * 2).max(64).min(max.max(1));
        v.reserve_exact(wanted.saturating_sub(v.len()).max(1));
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = std::io::Result<Result<Record, BadRecord>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(input: &[u8]) -> Vec<Result<Record, BadRecord>> {
        Reader::new(input).map(|r| r.unwrap()).collect()
    }

    fn values(input: &str) -> Vec<Vec<String>> {
        read(input.as_bytes())
            .into_iter()
            .map(|r| r.unwrap().values)
            .collect()
    }

    #[test]
    fn quotes_commas_line_breaks_and_doubled_quotes_are_data() {
        let rows = read(b"a,b\r\n\"x, y\",\"say \"\"hi\"\"\nthere\"\r\nlast,one\n");
        let rows: Vec<Record> = rows.into_iter().map(Result::unwrap).collect();
        assert_eq!(rows[1].values, ["x, y", "say \"hi\"\nthere"]);
        assert_eq!(rows[1].line, 2);
        assert_eq!(rows[2].line, 4, "the quoted line break counts");
        assert_eq!(rows[2].values, ["last", "one"]);
    }

    #[test]
    fn bom_blank_lines_and_trimming() {
        assert_eq!(
            values("\u{feff}a,b\n\n  x , \"  kept  \" \n   \nz,\n"),
            [vec!["a", "b"], vec!["x", "  kept  "], vec!["z", ""]]
        );
    }

    #[test]
    fn no_final_line_break_and_unclosed_quote() {
        assert_eq!(values("a,b\nc,d"), [vec!["a", "b"], vec!["c", "d"]]);
        assert_eq!(values("a,\"open\nrest"), [vec!["a", "open\nrest"]]);
    }

    #[test]
    fn bad_utf8_and_huge_values_spoil_only_their_record() {
        let mut input = b"a,b\n\xff\xfe,x\nok,1\n".to_vec();
        input.extend(format!("{},y\nok,2\n", "z".repeat(MAX_FIELD_BYTES + 1)).as_bytes());
        let rows = read(&input);
        assert_eq!(rows.len(), 5);
        let bad = rows[1].clone().unwrap_err();
        assert_eq!((bad.line, bad.position), (2, Some(1)));
        assert!(bad.reason.contains("UTF-8"));
        assert_eq!(rows[2].clone().unwrap().values, ["ok", "1"]);
        assert!(rows[3].clone().unwrap_err().reason.contains("bytes long"));
        assert_eq!(rows[4].clone().unwrap().values, ["ok", "2"]);
    }

    /// Reads `input` with `limits`, checking after each record that the buffers stay within
    /// them.
    fn read_within(input: &[u8], limits: Limits) -> Vec<Result<Record, BadRecord>> {
        let mut reader = Reader::with_limits(input, limits);
        let mut out = Vec::new();
        while let Some(r) = reader.next_record() {
            out.push(r.unwrap());
            let (bytes, values) = reader.buffered();
            assert!(bytes <= limits.record_bytes, "{bytes} bytes held");
            assert!(values <= limits.values, "room for {values} values");
        }
        out
    }

    #[test]
    fn a_value_of_64_kib_is_read_and_one_byte_more_is_not() {
        let at = "v".repeat(MAX_FIELD_BYTES);
        let over = "w".repeat(MAX_FIELD_BYTES + 1);
        let input = format!("a,{at}\nb,\"{over}\"\nc,d\n");
        let rows = read_within(input.as_bytes(), Limits::PSC);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].clone().unwrap().values[1].len(), MAX_FIELD_BYTES);
        let bad = rows[1].clone().unwrap_err();
        assert_eq!((bad.line, bad.position), (2, Some(2)));
        assert!(bad.reason.contains("65536 bytes"), "{}", bad.reason);
        assert_eq!(rows[2].clone().unwrap().values, ["c", "d"]);
    }

    #[test]
    fn a_record_over_1_mib_is_an_error_and_the_next_one_is_read() {
        // 20 values of 60 KiB: each within its limit, 1.2 MiB together; one of them spans
        // lines inside quotes, which the skipping must follow.
        let value = "x".repeat(60 * 1024);
        let mut big = vec![value.clone(); 19];
        big.push(format!("\"{value}\n,still the same value\""));
        let input = format!("h1,h2\n{}\nnext,row\n", big.join(","));
        let rows = read_within(input.as_bytes(), Limits::PSC);
        assert_eq!(rows.len(), 3);
        let bad = rows[1].clone().unwrap_err();
        assert_eq!((bad.line, bad.position), (2, None));
        assert!(bad.reason.contains("1048576 bytes"), "{}", bad.reason);
        let next = rows[2].clone().unwrap();
        assert_eq!(
            (next.line, next.values),
            (4, vec!["next".into(), "row".into()])
        );
    }

    #[test]
    fn a_record_of_more_than_1000_values_is_an_error() {
        let at = vec!["v"; MAX_VALUES].join(",");
        let over = vec![""; MAX_VALUES + 1].join(",");
        let input = format!("{at}\n{over}\nlast\n");
        let rows = read_within(input.as_bytes(), Limits::PSC);
        assert_eq!(rows[0].clone().unwrap().values.len(), MAX_VALUES);
        let bad = rows[1].clone().unwrap_err();
        assert_eq!((bad.line, bad.position), (2, None));
        assert!(
            bad.reason.contains("more than 1000 values"),
            "{}",
            bad.reason
        );
        assert_eq!(rows[2].clone().unwrap().values, ["last"]);
    }

    #[test]
    fn a_line_of_8_mib_of_commas_holds_no_more_than_the_limits() {
        // The attack in small: one record of nothing but separators.
        let mut input = vec![b','; 8 << 20];
        input.extend_from_slice(b"\nok\n");
        let rows = read_within(&input, Limits::PSC);
        assert_eq!(rows.len(), 2);
        assert!(rows[0].is_err());
        assert_eq!(rows[1].clone().unwrap().values, ["ok"]);
    }

    #[test]
    fn the_error_comes_when_the_limit_is_passed_not_at_the_end_of_the_record() {
        // A reader over an endless record: the error arrives after about the limit's bytes.
        let endless = std::io::BufReader::new(std::io::repeat(b'z'));
        let limits = Limits {
            value_bytes: 1000,
            ..Limits::PSC
        };
        let bad = Reader::with_limits(endless, limits)
            .next_record()
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!((bad.line, bad.position), (1, Some(1)));
    }

    /// Runs of one byte each: long inputs made of few choices.
    fn runs(max_run: usize) -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            Just(b'a'),
            Just(b','),
            Just(b'"'),
            Just(b'\n'),
            Just(b'\r'),
            Just(b' '),
            Just(b'\t'),
            Just(0xC3),
            Just(0xA9),
        ];
        proptest::collection::vec((byte, 1..max_run), 0..24).prop_map(|runs| {
            runs.into_iter()
                .flat_map(|(b, n)| std::iter::repeat_n(b, n))
                .collect()
        })
    }

    fn small_limits() -> impl Strategy<Value = Limits> {
        (1usize..8, 1usize..24, 1usize..6).prop_map(|(value_bytes, record_bytes, values)| Limits {
            value_bytes,
            record_bytes,
            values,
        })
    }

    /// Where each record starts, and what it is (the reason of an error aside).
    fn outline(rows: &[Result<Record, BadRecord>]) -> Vec<(u64, Option<Vec<String>>)> {
        rows.iter()
            .map(|r| match r {
                Ok(r) => (r.line, Some(r.values.clone())),
                Err(b) => (b.line, None),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(input in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = read(&input);
        }

        #[test]
        fn never_panics_on_csv_like_text(input in "[a-z\",\r\n \u{feff}é]{0,200}") {
            let _ = read(input.as_bytes());
        }

        #[test]
        fn written_records_read_back(rows in proptest::collection::vec(
            proptest::collection::vec("[a-z ,\"\n]{0,12}", 1..5), 1..6)) {
            let mut text = String::new();
            for row in &rows {
                let line: Vec<String> = row.iter().map(|v| format!("\"{}\"", v.replace('"', "\"\""))).collect();
                text.push_str(&line.join(","));
                text.push_str("\r\n");
            }
            let back: Vec<Vec<String>> = read(text.as_bytes()).into_iter().map(|r| r.unwrap().values).collect();
            prop_assert_eq!(back, rows);
        }

        #[test]
        fn buffers_stay_within_the_limits_and_no_record_is_lost(input in runs(40), limits in small_limits()) {
            let limited = read_within(&input, limits);
            let unlimited = read_within(&input, Limits {
                value_bytes: usize::MAX,
                record_bytes: usize::MAX,
                values: usize::MAX,
            });
            // The same records start on the same lines: a record past a limit is one error,
            // and reading goes on exactly where the record ends.
            let (a, b) = (outline(&limited), outline(&unlimited));
            prop_assert_eq!(a.len(), b.len());
            for ((line, kept), (line_all, all)) in a.iter().zip(&b) {
                prop_assert_eq!(line, line_all);
                if kept.is_some() {
                    prop_assert_eq!(kept, all, "a record within the limits reads the same");
                }
            }
        }

        #[test]
        fn the_limits_decide_exactly_which_records_are_errors(
            input in "[ab,\"\n]{0,80}",
            limits in small_limits(),
        ) {
            // Without blanks and CRs nothing is trimmed: a record's values are what it holds.
            let limited = read_within(input.as_bytes(), limits);
            let unlimited = read_within(input.as_bytes(), Limits {
                value_bytes: usize::MAX,
                record_bytes: usize::MAX,
                values: usize::MAX,
            });
            for (got, all) in limited.iter().zip(&unlimited) {
                let all = all.clone().unwrap();
                let fits = all.values.len() <= limits.values
                    && all.values.iter().all(|v| v.len() <= limits.value_bytes)
                    && all.values.iter().map(String::len).sum::<usize>() <= limits.record_bytes;
                prop_assert_eq!(got.is_ok(), fits, "{:?} under {:?}", all, limits);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn long_inputs_hold_no_more_than_the_export_limits(input in runs(400_000)) {
            let _ = read_within(&input, Limits::PSC);
        }
    }
}
