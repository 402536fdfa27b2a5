//! An RFC 4180 reader for the PSC export, streaming and written for it: it knows which values
//! were quoted (only unquoted ones are trimmed), on which line each record starts (a quoted value
//! may span lines), and it never panics on any input; a record too wide or not UTF-8 is an error
//! of that record, and reading goes on with the next.

use std::io::{BufRead, ErrorKind};

/// Largest value accepted (PSC-EXPORT.md): larger ones make the record bad.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

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

pub struct Reader<R> {
    input: R,
    /// The line the next byte is on.
    line: u64,
    started: bool,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: 1,
            started: false,
            done: false,
        }
    }

    fn next_byte(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let Some(&b) = buf.first() else {
                return Ok(None);
            };
            self.input.consume(1);
            return Ok(Some(b));
        }
    }

    fn peek_byte(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            match self.input.fill_buf() {
                Ok(b) => return Ok(b.first().copied()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next record; `None` at the end. Blank lines are skipped.
    pub fn next_record(&mut self) -> Option<std::io::Result<Result<Record, BadRecord>>> {
        loop {
            match self.read_raw() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(None) => return None,
                Ok(Some((line, fields))) => {
                    // A blank line is one unquoted empty value.
                    if fields.len() == 1
                        && !fields[0].1
                        && fields[0].0.iter().all(|b| *b == b' ' || *b == b'\t')
                    {
                        continue;
                    }
                    return Some(Ok(to_record(line, fields)));
                }
            }
        }
    }

    /// One record's raw values (bytes, quoted?), and the line it started on.
    #[allow(clippy::type_complexity)]
    fn read_raw(&mut self) -> std::io::Result<Option<(u64, Vec<(Vec<u8>, bool)>)>> {
        if self.done {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            // A byte-order mark is not data.
            let buf = self.input.fill_buf()?;
            if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                self.input.consume(3);
            }
        }
        if self.peek_byte()?.is_none() {
            self.done = true;
            return Ok(None);
        }
        let line = self.line;
        let mut fields = Vec::new();
        let mut value = Vec::new();
        let mut quoted = false;
        let mut in_quotes = false;
        loop {
            let Some(b) = self.next_byte()? else {
                // End of input ends the record (an unclosed quote takes the rest as data).
                fields.push((value, quoted));
                self.done = true;
                return Ok(Some((line, fields)));
            };
            if in_quotes {
                match b {
                    b'"' if self.peek_byte()? == Some(b'"') => {
                        self.next_byte()?;
                        value.push(b'"');
                    }
                    b'"' => in_quotes = false,
                    b'\n' => {
                        self.line += 1;
                        value.push(b);
                    }
                    _ => value.push(b),
                }
                continue;
            }
            match b {
                b',' => {
                    fields.push((std::mem::take(&mut value), quoted));
                    quoted = false;
                }
                b'\n' => {
                    self.line += 1;
                    if value.last() == Some(&b'\r') {
                        value.pop();
                    }
                    fields.push((value, quoted));
                    return Ok(Some((line, fields)));
                }
                // A quote opens quoting at the start of a value (spaces before it aside).
                b'"' if !quoted && value.iter().all(|c| *c == b' ' || *c == b'\t') => {
                    value.clear();
                    quoted = true;
                    in_quotes = true;
                }
                // Spaces after a closing quote are not data (nor is the CR of a CRLF).
                b' ' | b'\t' | b'\r' if quoted => {}
                _ => value.push(b),
            }
        }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = std::io::Result<Result<Record, BadRecord>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

fn to_record(line: u64, fields: Vec<(Vec<u8>, bool)>) -> Result<Record, BadRecord> {
    let mut values = Vec::with_capacity(fields.len());
    for (i, (bytes, quoted)) in fields.into_iter().enumerate() {
        let bad = |reason: String| BadRecord {
            line,
            position: Some(i + 1),
            reason,
        };
        if bytes.len() > MAX_FIELD_BYTES {
            return Err(bad(format!(
                "the value is {} bytes long; at most {MAX_FIELD_BYTES} are accepted",
                bytes.len()
            )));
        }
        let mut text = String::from_utf8(bytes).map_err(|e| {
            bad(format!(
                "the value is not valid UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        if !quoted {
            // A trailing CR of a quoted-then-CRLF record or stray spaces are not data.
            let trimmed = text.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
            if trimmed.len() != text.len() {
                text = trimmed.to_owned();
            }
        }
        values.push(text);
    }
    Ok(Record { line, values })
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
    }
}
