//! Bulk loading: CSV in the GLEIF golden-copy layout, plain or gzip, read as a stream in
//! bounded memory. A parser thread turns bytes into entities and row errors; the async side
//! writes batches to the database, then to the index, and reports progress.

use std::io::{BufRead, BufReader, Read};

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::domain::{self, Entity};
use crate::follow;
use crate::index::SearchIndex;
use crate::store::Store;

/// Rows written per database transaction and index batch.
const BATCH: usize = 5000;
/// Row errors reported per load; the rest are counted only.
pub const MAX_REPORTED_ERRORS: usize = 1000;
/// Rows between index commits during a load.
const COMMIT_EVERY: u64 = 100_000;
/// Longest legal name accepted.
const MAX_NAME_CHARS: usize = 1000;
/// Longest address parts accepted: what a referral's customer address (`cosell.deals.v1.Address`)
/// documents, so that a referral whose customer comes from here can be sent back as read.
const MAX_ADDRESS_LINE_CHARS: usize = 500;
const MAX_CITY_CHARS: usize = 200;
const MAX_REGION_CHARS: usize = 200;
const MAX_POSTAL_CODE_CHARS: usize = 50;

const LEI: &str = "LEI";
const LEGAL_NAME: &str = "Entity.LegalName";
const LINE1: &str = "Entity.LegalAddress.FirstAddressLine";
const CITY: &str = "Entity.LegalAddress.City";
const REGION: &str = "Entity.LegalAddress.Region";
const COUNTRY: &str = "Entity.LegalAddress.Country";
const POSTAL: &str = "Entity.LegalAddress.PostalCode";
/// Our own column: the address was made up (the sample data).
const GENERATED: &str = "Cosell.AddressGenerated";
/// GLEIF's other names: `Entity.OtherEntityNames.OtherEntityName.1`, `.2`, ... (its `.type`
/// and `.xmllang` columns are not names).
const OTHER_NAME: &str = "Entity.OtherEntityNames.OtherEntityName.";
/// Other-name columns read; GLEIF's golden copy has 5.
const MAX_OTHER_NAMES: usize = 10;

/// A row that was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub column: String,
    pub reason: String,
}

/// A file that cannot be read at all (no usable header).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

/// Where each known column is in the file.
struct Columns {
    count: usize,
    lei: usize,
    name: usize,
    line1: Option<usize>,
    city: Option<usize>,
    region: Option<usize>,
    country: Option<usize>,
    postal: Option<usize>,
    generated: Option<usize>,
    other_names: Vec<(usize, String)>,
}

/// What the parser yields.
#[derive(Debug)]
pub enum Row {
    Entity(Entity),
    Error(RowError),
}

/// Entities from a CSV byte stream (gzip recognized by its magic bytes).
pub struct Rows {
    reader: csv::Reader<Box<dyn Read + Send>>,
    columns: Columns,
    record: csv::ByteRecord,
}

impl Rows {
    pub fn new(input: impl Read + Send + 'static) -> Result<Self, FileError> {
        let mut buffered = BufReader::with_capacity(256 * 1024, input);
        let head = buffered
            .fill_buf()
            .map_err(|e| FileError(format!("cannot read the file: {e}")))?;
        let input: Box<dyn Read + Send> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(BufReader::with_capacity(
                256 * 1024,
                flate2::bufread::MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(input);
        let header = reader
            .byte_headers()
            .map_err(|e| FileError(format!("cannot read the header row: {e}")))?
            .clone();
        let names: Vec<String> = header
            .iter()
            .map(|h| {
                String::from_utf8_lossy(h)
                    .trim()
                    .trim_start_matches('\u{feff}')
                    .to_owned()
            })
            .collect();
        let find = |col: &str| names.iter().position(|n| n.eq_ignore_ascii_case(col));
        let required = |col: &str| {
            find(col).ok_or_else(|| {
                FileError(format!(
                    "the header row has no `{col}` column (found: {})",
                    names.join(", ")
                ))
            })
        };
        let columns = Columns {
            count: names.len(),
            lei: required(LEI)?,
            name: required(LEGAL_NAME)?,
            line1: find(LINE1),
            city: find(CITY),
            region: find(REGION),
            country: find(COUNTRY),
            postal: find(POSTAL),
            generated: find(GENERATED),
            other_names: names
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    n.get(..OTHER_NAME.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(OTHER_NAME))
                        && n[OTHER_NAME.len()..].bytes().all(|b| b.is_ascii_digit())
                        && n.len() > OTHER_NAME.len()
                })
                .map(|(i, n)| (i, n.clone()))
                .take(MAX_OTHER_NAMES)
                .collect(),
        };
        Ok(Self {
            reader,
            columns,
            record: csv::ByteRecord::new(),
        })
    }

    fn parse(&self, line: u64) -> Result<Entity, RowError> {
        let c = &self.columns;
        let r = &self.record;
        let err = |column: &str, reason: String| RowError {
            line,
            column: column.to_owned(),
            reason,
        };
        if r.len() != c.count {
            return Err(err(
                "",
                format!("has {} fields; the header has {}", r.len(), c.count),
            ));
        }
        let text = |idx: Option<usize>, column: &str| -> Result<String, RowError> {
            match idx {
                None => Ok(String::new()),
                Some(i) => std::str::from_utf8(&r[i])
                    .map(|s| s.trim().to_owned())
                    .map_err(|_| err(column, "is not valid UTF-8".into())),
            }
        };
        let lei = text(Some(c.lei), LEI)?;
        if !domain::valid_lei(&lei) {
            return Err(err(
                LEI,
                format!("`{lei}` is not an LEI (20 upper-case letters and digits)"),
            ));
        }
        let legal_name = text(Some(c.name), LEGAL_NAME)?;
        if legal_name.is_empty() {
            return Err(err(LEGAL_NAME, "is empty".into()));
        }
        if legal_name.chars().count() > MAX_NAME_CHARS {
            return Err(err(
                LEGAL_NAME,
                format!("is longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        let country = domain::country(&text(c.country, COUNTRY)?).map_err(|e| err(COUNTRY, e))?;
        let generated =
            domain::flag(&text(c.generated, GENERATED)?).map_err(|e| err(GENERATED, e))?;
        let bounded = |idx: Option<usize>, column: &str, max: usize| {
            let value = text(idx, column)?;
            if value.chars().count() > max {
                return Err(err(column, format!("is longer than {max} characters")));
            }
            Ok(value)
        };
        let line1 = bounded(c.line1, LINE1, MAX_ADDRESS_LINE_CHARS)?;
        let city = bounded(c.city, CITY, MAX_CITY_CHARS)?;
        let region = bounded(c.region, REGION, MAX_REGION_CHARS)?;
        let postal_code = bounded(c.postal, POSTAL, MAX_POSTAL_CODE_CHARS)?;
        let mut other_names = Vec::new();
        for (i, column) in &c.other_names {
            let name = bounded(Some(*i), column, MAX_NAME_CHARS)?;
            if !name.is_empty() {
                other_names.push(name);
            }
        }
        Ok(Entity {
            id: lei,
            legal_name,
            other_names,
            address_lines: if line1.is_empty() {
                Vec::new()
            } else {
                vec![line1]
            },
            city,
            region,
            postal_code,
            country,
            address_generated: generated,
        })
    }
}

impl Iterator for Rows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        loop {
            let line = self.reader.position().line() + 1;
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) => {
                    // Blank lines are nothing.
                    if self.record.len() == 1 && self.record[0].is_empty() {
                        continue;
                    }
                    let line = self.record.position().map(|p| p.line()).unwrap_or(line);
                    return Some(match self.parse(line) {
                        Ok(e) => Row::Entity(e),
                        Err(e) => Row::Error(e),
                    });
                }
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(line);
                    // An I/O error (a broken gzip stream, say) ends the file; a CSV error ends
                    // only the row.
                    let fatal = matches!(e.kind(), csv::ErrorKind::Io(_));
                    let row = Row::Error(RowError {
                        line,
                        column: String::new(),
                        reason: format!("unreadable: {e}"),
                    });
                    if fatal {
                        self.record.clear();
                        self.reader = csv::Reader::from_reader(Box::new(std::io::empty()));
                    }
                    return Some(row);
                }
            }
        }
    }
}

/// Turns a channel of byte chunks into a blocking reader, for the parser thread.
pub struct ChunkReader {
    chunks: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    pub fn new(chunks: mpsc::Receiver<Vec<u8>>) -> Self {
        Self {
            chunks,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.chunks.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Progress of a load, sent after every batch and once at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub rows_read: u64,
    pub loaded: u64,
    pub failed: u64,
    /// Errors since the previous report.
    pub errors: Vec<RowError>,
    pub done: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("the load was cancelled")]
    Cancelled,
    #[error("indexing task failed: {0}")]
    Indexing(String),
}

/// Loads the CSV arriving on `chunks`, writing the database and then the index batch by batch,
/// and sends progress on `progress`. Returns the final progress.
pub async fn load(
    store: &Store,
    index: &Arc<SearchIndex>,
    chunks: mpsc::Receiver<Vec<u8>>,
    progress: mpsc::Sender<Progress>,
) -> Result<Progress, LoadError> {
    let (batches_tx, mut batches) =
        mpsc::channel::<Result<(Vec<Entity>, Vec<RowError>, u64), FileError>>(2);
    let parser = tokio::task::spawn_blocking(move || {
        let rows = match Rows::new(ChunkReader::new(chunks)) {
            Ok(rows) => rows,
            Err(e) => {
                let _ = batches_tx.blocking_send(Err(e));
                return;
            }
        };
        let mut entities = Vec::with_capacity(BATCH);
        let mut errors = Vec::new();
        let mut read = 0u64;
        for row in rows {
            read += 1;
            match row {
                Row::Entity(e) => entities.push(e),
                Row::Error(e) => errors.push(e),
            }
            if entities.len() >= BATCH || errors.len() >= BATCH {
                let batch = (
                    std::mem::take(&mut entities),
                    std::mem::take(&mut errors),
                    read,
                );
                if batches_tx.blocking_send(Ok(batch)).is_err() {
                    return;
                }
            }
        }
        let _ = batches_tx.blocking_send(Ok((entities, errors, read)));
    });

    let mut state = Progress::default();
    let mut reported = 0usize;
    // Where the time goes, for the log line at the end.
    let (mut db_time, mut index_time) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    // The generations this load wrote since the index's last commit: a commit catches up only
    // with the others (another replica's rows; see `follow`).
    let mut own: Vec<i64> = Vec::new();
    while let Some(batch) = batches.recv().await {
        let (mut entities, errors, read) = batch?;
        state.rows_read = read;
        state.failed += errors.len() as u64;
        let room = MAX_REPORTED_ERRORS.saturating_sub(reported);
        let report: Vec<RowError> = errors.into_iter().take(room).collect();
        reported += report.len();
        if !entities.is_empty() {
            // The same id twice in one batch: the later row wins, as it would across batches.
            dedup_keep_last(&mut entities);
            // The database and the index take the batch at the same time (the index commits
            // only below, after the database has it, so it never claims rows the database
            // lacks).
            let batch = Arc::new(entities);
            let (to_index, to_store) = (batch.clone(), batch.clone());
            let indexer = index.clone();
            let indexing = tokio::task::spawn_blocking(move || {
                let t = std::time::Instant::now();
                indexer.upsert(&to_index).map(|()| t.elapsed())
            });
            let t = std::time::Instant::now();
            let stored = store.upsert(&to_store).await;
            db_time += t.elapsed();
            index_time += indexing
                .await
                .map_err(|e| LoadError::Indexing(e.to_string()))??;
            let generation = match stored {
                Ok(g) => g,
                Err(e) => {
                    // The index must not keep what the database refused.
                    index.rollback()?;
                    return Err(e.into());
                }
            };
            own.push(generation);
            let entities = batch;
            let before = state.loaded;
            state.loaded += entities.len() as u64;
            // A long load becomes searchable as it goes, and a crash loses little index work
            // (the database is ahead then, and the next start catches up).
            if before / COMMIT_EVERY != state.loaded / COMMIT_EVERY {
                follow::catch_up(store, index, generation, &own).await?;
                own.clear();
            }
        }
        let update = Progress {
            errors: report,
            ..state.clone()
        };
        if progress.send(update).await.is_err() {
            // What is stored stays stored (loads are idempotent); the index catches up with it.
            follow::catch_up(store, index, store.generation().await?, &own).await?;
            return Err(LoadError::Cancelled);
        }
    }
    let _ = parser.await;
    let generation = store.generation().await?;
    let t = std::time::Instant::now();
    follow::catch_up(store, index, generation, &own).await?;
    index_time += t.elapsed();
    compact_in_background(index.clone());
    tracing::info!(
        rows = state.rows_read,
        loaded = state.loaded,
        db_secs = db_time.as_secs_f64(),
        index_secs = index_time.as_secs_f64(),
        "directory load finished"
    );
    state.done = true;
    let _ = progress.send(state.clone()).await;
    Ok(Progress {
        errors: Vec::new(),
        ..state
    })
}

/// Merges the index's segments after a load, off the caller's path: searches are faster on one
/// segment, and the merge of a large load takes seconds.
pub fn compact_in_background(index: Arc<SearchIndex>) {
    tokio::task::spawn_blocking(move || {
        let t = std::time::Instant::now();
        match index.compact() {
            Ok(()) => tracing::info!(
                secs = t.elapsed().as_secs_f64(),
                segments = index.segments(),
                "directory index compacted"
            ),
            Err(e) => tracing::warn!(error = %e, "directory index compaction failed"),
        }
    });
}

fn dedup_keep_last(entities: &mut Vec<Entity>) {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Entity> = entities
        .drain(..)
        .rev()
        .filter(|e| seen.insert(e.id.clone()))
        .collect();
    out.reverse();
    *entities = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<Vec<Row>, FileError> {
        Ok(Rows::new(std::io::Cursor::new(bytes.to_vec()))?.collect())
    }

    const HEADER: &str = "LEI,Entity.LegalName,Entity.LegalAddress.Country,Entity.EntityCategory\n";

    #[test]
    fn good_and_bad_rows() {
        let csv = format!(
            "{HEADER}\
             529900T8BM49AURSDO55,Siemens AG,DE,GENERAL\n\
             BADLEI,Broken,DE,GENERAL\n\
             5493001KJTIIGC8Y1R12,,US,GENERAL\n\
             5493001KJTIIGC8Y1R13,Too,Many,Fields,Here\n\
             5493001KJTIIGC8Y1R14,\"Quoted, Name\",ZZ,GENERAL\n\
             \n\
             5493001KJTIIGC8Y1R15,\"Müller, \"\"Quoted\"\"\nGmbH\",de,GENERAL\n"
        );
        let rows = parse(csv.as_bytes()).unwrap();
        let summary: Vec<String> = rows
            .iter()
            .map(|r| match r {
                Row::Entity(e) => format!("ok {} {} {}", e.id, e.legal_name, e.country),
                Row::Error(e) => format!("line {} {}: {}", e.line, e.column, e.reason),
            })
            .collect();
        assert_eq!(summary[0], "ok 529900T8BM49AURSDO55 Siemens AG DE");
        assert!(
            summary[1].starts_with("line 3 LEI: `BADLEI` is not an LEI"),
            "{}",
            summary[1]
        );
        assert_eq!(summary[2], "line 4 Entity.LegalName: is empty");
        assert_eq!(summary[3], "line 5 : has 5 fields; the header has 4");
        assert!(
            summary[4].starts_with("line 6 Entity.LegalAddress.Country: `ZZ`"),
            "{}",
            summary[4]
        );
        assert_eq!(
            summary[5],
            "ok 5493001KJTIIGC8Y1R15 Müller, \"Quoted\"\nGmbH DE"
        );
        assert_eq!(rows.len(), 6);
    }

    #[test]
    fn invalid_utf8_names_the_column() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"529900T8BM49AURSDO55,Bad \xff name,DE,GENERAL\n");
        let rows = parse(&bytes).unwrap();
        assert!(
            matches!(&rows[0], Row::Error(e) if e.line == 2 && e.column == LEGAL_NAME && e.reason.contains("UTF-8"))
        );
    }

    #[test]
    fn address_parts_are_bounded_as_a_referral_takes_them() {
        let header = "LEI,Entity.LegalName,Entity.LegalAddress.FirstAddressLine,\
                      Entity.LegalAddress.City,Entity.LegalAddress.Region,\
                      Entity.LegalAddress.PostalCode,Entity.LegalAddress.Country\n";
        let row = |line: usize, city: usize, region: usize, postal: usize| {
            format!(
                "529900T8BM49AURSDO55,Siemens AG,{},{},{},{},DE\n",
                "l".repeat(line),
                "ü".repeat(city),
                "r".repeat(region),
                "9".repeat(postal)
            )
        };
        let csv = [
            header.to_owned(),
            row(500, 200, 200, 50),
            row(501, 1, 1, 1),
            row(1, 201, 1, 1),
            row(1, 1, 201, 1),
            row(1, 1, 1, 51),
        ]
        .concat();
        let rows = parse(csv.as_bytes()).unwrap();
        assert!(matches!(&rows[0], Row::Entity(e) if e.city.chars().count() == 200));
        let refused: Vec<(String, String)> = rows[1..]
            .iter()
            .map(|r| match r {
                Row::Error(e) => (e.column.clone(), e.reason.clone()),
                Row::Entity(e) => panic!("loaded {e:?}"),
            })
            .collect();
        assert_eq!(
            refused,
            [
                (LINE1.into(), "is longer than 500 characters".into()),
                (CITY.into(), "is longer than 200 characters".into()),
                (REGION.into(), "is longer than 200 characters".into()),
                (POSTAL.into(), "is longer than 50 characters".into()),
            ]
        );
    }

    #[test]
    fn gzip_and_bom_are_understood() {
        use std::io::Write;
        let csv = format!("\u{feff}{HEADER}529900T8BM49AURSDO55,Siemens AG,DE,GENERAL\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(csv.as_bytes()).unwrap();
        let rows = parse(&gz.finish().unwrap()).unwrap();
        assert!(matches!(&rows[0], Row::Entity(e) if e.legal_name == "Siemens AG"));
    }

    #[test]
    fn gleif_other_names_are_read_and_their_type_columns_are_not() {
        let csv = "LEI,Entity.LegalName,Entity.OtherEntityNames.OtherEntityName.1,\
                   Entity.OtherEntityNames.OtherEntityName.1.type,\
                   Entity.OtherEntityNames.OtherEntityName.2,Entity.LegalAddress.Country\n\
                   529900T8BM49AURSDO55,Siemens Aktiengesellschaft,Siemens AG,\
                   TRADING_OR_OPERATING_NAME,,DE\n";
        let rows = parse(csv.as_bytes()).unwrap();
        let Row::Entity(e) = &rows[0] else {
            panic!("{rows:?}")
        };
        assert_eq!(e.other_names, vec!["Siemens AG"]);
    }

    #[test]
    fn a_missing_required_column_rejects_the_file() {
        let e = parse(b"Name,Country\nX,DE\n").err().unwrap();
        assert!(e.0.contains("`LEI`"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut input = HEADER.as_bytes().to_vec();
            input.extend(bytes);
            if let Ok(rows) = Rows::new(std::io::Cursor::new(input)) {
                for _ in rows {}
            }
        }
    }
}
