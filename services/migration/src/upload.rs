//! An uploaded PSC export on its way to the reader: each uploaded file is spooled to a
//! temporary folder as its chunks arrive (memory holds one message), and a zip is unpacked
//! there, so that the reader streams the bundle from disk. The folder goes when the upload
//! is dropped, refused or not.
//!
//! What an upload may take ([`Limits`]) is checked as the bytes arrive and as they inflate,
//! never from the sizes a zip declares (a bomb's lie): 1 GiB sent, 2 GiB of the bundle's files
//! unpacked, and no entry inflating to more than 200 times the compressed bytes it has used
//! (checked once it has inflated 1 MiB). A generated export of a million deals is 332 MB of
//! CSV and compresses 14 to 26 times, file by file. Before the zip's directory is read, its
//! size is bounded too (at most 1,000 entries, 1 MiB of directory), as the zip crate holds all
//! of it in memory.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cosell_platform::ApiError;
use cosell_platform::error::FieldViolation;
use tokio::io::AsyncWriteExt;

use crate::psc::{Folder, Issue, Source};

/// The files a bundle may hold.
pub const BUNDLE_FILES: &[&str] = &[
    "accounts.csv",
    "users.csv",
    "deals.csv",
    "deal_products.csv",
    "deal_team.csv",
];

/// Largest upload accepted: the bytes sent, all files together.
pub const MAX_UPLOAD_BYTES: u64 = 1 << 30;
/// Largest bundle accepted once unpacked: the bundle's files together.
pub const MAX_UNPACKED_BYTES: u64 = 2 << 30;
/// Largest ratio of a zip entry's unpacked bytes to the compressed bytes they came from.
pub const MAX_RATIO: u64 = 200;
/// Files one upload may send (a bundle is five CSV files, or one zip).
pub const MAX_FILES: usize = 16;
/// Entries a zip may list.
pub const MAX_ZIP_ENTRIES: u64 = 1000;

/// What an upload may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes sent.
    pub upload_bytes: u64,
    /// Bytes of the bundle's files once unpacked.
    pub unpacked_bytes: u64,
    /// Unpacked bytes per compressed byte of a zip entry...
    pub ratio: u64,
    /// ...checked once the entry has inflated this many bytes (a small file may compress
    /// well and harms nobody).
    pub ratio_after: u64,
    /// Entries a zip may list, and bytes its directory may take.
    pub zip_entries: u64,
    pub zip_directory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            upload_bytes: MAX_UPLOAD_BYTES,
            unpacked_bytes: MAX_UNPACKED_BYTES,
            ratio: MAX_RATIO,
            ratio_after: 1 << 20,
            zip_entries: MAX_ZIP_ENTRIES,
            zip_directory_bytes: 1 << 20,
        }
    }
}

/// `INVALID_ARGUMENT`, reason `EXPORT_TOO_LARGE`: the upload (`file`, and the zip's `entry`)
/// goes past a limit.
fn too_large(file: &str, entry: Option<&str>, why: String) -> ApiError {
    let mut e = ApiError::new(
        tonic::Code::InvalidArgument,
        "EXPORT_TOO_LARGE",
        format!("{why}; nothing of the upload is imported"),
    )
    .with_metadata("file", file);
    if let Some(entry) = entry {
        e = e.with_metadata("entry", entry);
    }
    e.details.field_violations.push(FieldViolation {
        field: "file_name".into(),
        description: why,
    });
    e
}

fn size_name(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// The bundle's own name for a file: `Deals.csv`, `export\deals.csv` and `deals.csv` alike.
fn bundle_name(name: &str) -> Option<&'static str> {
    let base = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    BUNDLE_FILES.iter().copied().find(|f| *f == base)
}

/// An upload being received.
pub struct Spool {
    dir: tempfile::TempDir,
    limits: Limits,
    /// Each uploaded file's name as sent, and where it is spooled (named by position: a sent
    /// name never becomes a path).
    files: Vec<(String, PathBuf)>,
    open: Option<tokio::fs::File>,
    total: u64,
}

/// An unpacked upload: the bundle's files in a folder that lives as long as this.
pub struct Unpacked {
    _dir: tempfile::TempDir,
    folder: Folder,
}

impl Source for Unpacked {
    fn open(&self, name: &str) -> std::io::Result<Option<Box<dyn BufRead + '_>>> {
        self.folder.open(name)
    }
}

fn spool_failed(e: std::io::Error) -> ApiError {
    ApiError::internal(format!("cannot spool the upload: {e}"))
}

impl Spool {
    pub fn new(limits: Limits) -> Result<Self, ApiError> {
        Ok(Self {
            dir: tempfile::Builder::new()
                .prefix("cosell-psc-upload-")
                .tempdir()
                .map_err(spool_failed)?,
            limits,
            files: Vec::new(),
            open: None,
            total: 0,
        })
    }

    /// Appends one message's chunk to its file. A file's chunks come one after another.
    pub async fn add(&mut self, file_name: &str, chunk: &[u8]) -> Result<(), ApiError> {
        self.total += chunk.len() as u64;
        if self.total > self.limits.upload_bytes {
            return Err(too_large(
                file_name,
                None,
                format!(
                    "the upload is larger than {} (at `{file_name}`)",
                    size_name(self.limits.upload_bytes)
                ),
            ));
        }
        if file_name.trim().is_empty() {
            return Err(ApiError::invalid_field(
                "file_name",
                "is required in every message",
            ));
        }
        let same = self.files.last().is_some_and(|(n, _)| n == file_name);
        if !same {
            if self.files.iter().any(|(n, _)| n == file_name) {
                return Err(ApiError::invalid_field(
                    "file_name",
                    format!(
                        "`{file_name}` was sent in two parts; send each file's chunks one after another"
                    ),
                ));
            }
            if self.files.len() == MAX_FILES {
                return Err(ApiError::invalid_field(
                    "file_name",
                    format!("an upload sends at most {MAX_FILES} files"),
                ));
            }
            self.close().await?;
            let path = self.dir.path().join(format!("upload-{}", self.files.len()));
            self.open = Some(tokio::fs::File::create(&path).await.map_err(spool_failed)?);
            self.files.push((file_name.to_owned(), path));
        }
        if let Some(f) = self.open.as_mut() {
            f.write_all(chunk).await.map_err(spool_failed)?;
        }
        Ok(())
    }

    /// Where the upload is spooled.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    async fn close(&mut self) -> Result<(), ApiError> {
        if let Some(mut f) = self.open.take() {
            f.flush().await.map_err(spool_failed)?;
        }
        Ok(())
    }

    /// The bundle's files: CSV files by name, or the CSV files inside a zip (by their base
    /// name, in any folder of it); anything else is a warning. Dropping the future stops the
    /// unpacking at its next block and removes what it wrote.
    pub async fn finish(mut self) -> Result<(Unpacked, Vec<Issue>), ApiError> {
        self.close().await?;
        let cancel = Arc::new(AtomicBool::new(false));
        let _stop = CancelOnDrop(cancel.clone());
        tokio::task::spawn_blocking(move || unpack(self.dir, &self.files, &self.limits, &cancel))
            .await
            .map_err(ApiError::internal)?
    }
}

/// Sets its flag when dropped: the blocking unpacking stops when its caller went away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn unpack(
    dir: tempfile::TempDir,
    uploads: &[(String, PathBuf)],
    limits: &Limits,
    cancel: &AtomicBool,
) -> Result<(Unpacked, Vec<Issue>), ApiError> {
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&bundle).map_err(spool_failed)?;
    let mut warnings = Vec::new();
    let warn = |file: &str, reason: &str| Issue {
        file: file.to_owned(),
        line: 0,
        column: String::new(),
        id: String::new(),
        reason: reason.to_owned(),
    };
    let taken = |file: &str| -> Result<PathBuf, ApiError> {
        let path = bundle.join(file);
        if path.exists() {
            return Err(ApiError::invalid_field(
                "file_name",
                format!("the bundle holds `{file}` twice"),
            ));
        }
        Ok(path)
    };
    let mut total = 0u64;
    for (name, path) in uploads {
        if name.to_ascii_lowercase().ends_with(".zip") {
            let bad_zip = |e: &dyn std::fmt::Display| {
                ApiError::invalid_field("file_name", format!("`{name}` is not a readable zip: {e}"))
            };
            let (entries, directory) = directory_bounds(path).map_err(spool_failed)?;
            if entries > limits.zip_entries || directory > limits.zip_directory_bytes {
                return Err(too_large(
                    name,
                    None,
                    format!(
                        "`{name}` lists more than {} files or {} of them",
                        limits.zip_entries,
                        size_name(limits.zip_directory_bytes)
                    ),
                ));
            }
            let file = std::fs::File::open(path).map_err(spool_failed)?;
            let mut zip =
                zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| bad_zip(&e))?;
            for i in 0..zip.len() {
                let mut entry = zip.by_index_raw(i).map_err(|e| bad_zip(&e))?;
                if entry.is_dir() {
                    continue;
                }
                let inner = entry.name().map_err(|e| bad_zip(&e))?.into_owned();
                let Some(file) = bundle_name(&inner) else {
                    warnings.push(warn(&inner, "not a file of a PSC export; ignored"));
                    continue;
                };
                if entry.encrypted() {
                    return Err(ApiError::invalid_field(
                        "file_name",
                        format!("`{inner}` in `{name}` is encrypted; send it unencrypted"),
                    ));
                }
                let crc = entry.crc32();
                let deflated = match entry.compression() {
                    zip::CompressionMethod::Stored => false,
                    zip::CompressionMethod::Deflated => true,
                    other => {
                        return Err(ApiError::invalid_field(
                            "file_name",
                            format!(
                                "`{inner}` in `{name}` is compressed with {other:?}; \
                                 only deflate (what every zip tool makes) is read"
                            ),
                        ));
                    }
                };
                let out = taken(file)?;
                let mut sink = Sink {
                    out: std::io::BufWriter::new(
                        std::fs::File::create(&out).map_err(spool_failed)?,
                    ),
                    crc: flate2::Crc::new(),
                    total: &mut total,
                    limits,
                    cancel,
                    zip: name,
                    entry: &inner,
                };
                if deflated {
                    sink.inflate(&mut flate2::read::DeflateDecoder::new(&mut entry))?;
                } else {
                    sink.copy(&mut entry)?;
                }
                if sink.crc.sum() != crc {
                    return Err(ApiError::invalid_field(
                        "file_name",
                        format!("`{inner}` in `{name}` is damaged (its checksum does not match)"),
                    ));
                }
                sink.out.flush().map_err(spool_failed)?;
            }
        } else if let Some(file) = bundle_name(name) {
            total += std::fs::metadata(path).map_err(spool_failed)?.len();
            if total > limits.unpacked_bytes {
                return Err(too_large(
                    name,
                    None,
                    format!(
                        "the bundle is larger than {} (at `{name}`)",
                        size_name(limits.unpacked_bytes)
                    ),
                ));
            }
            std::fs::rename(path, taken(file)?).map_err(spool_failed)?;
        } else {
            warnings.push(warn(name, "not a file of a PSC export; ignored"));
        }
    }
    Ok((
        Unpacked {
            _dir: dir,
            folder: Folder(bundle),
        },
        warnings,
    ))
}

/// Where one zip entry is unpacked to, with the limits checked block by block.
struct Sink<'a> {
    out: std::io::BufWriter<std::fs::File>,
    crc: flate2::Crc,
    /// Bytes of the bundle unpacked so far, this entry's included.
    total: &'a mut u64,
    limits: &'a Limits,
    cancel: &'a AtomicBool,
    zip: &'a str,
    entry: &'a str,
}

impl Sink<'_> {
    fn inflate<R: Read>(
        &mut self,
        inflater: &mut flate2::read::DeflateDecoder<R>,
    ) -> Result<(), ApiError> {
        let mut block = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = match inflater.read(&mut block) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ApiError::invalid_field(
                        "file_name",
                        format!("`{}` in `{}` cannot be unpacked: {e}", self.entry, self.zip),
                    ));
                }
            };
            if n == 0 {
                return Ok(());
            }
            written += n as u64;
            let used = inflater.total_in().max(1);
            if written > self.limits.ratio_after && written > used * self.limits.ratio {
                return Err(too_large(
                    self.zip,
                    Some(self.entry),
                    format!(
                        "`{}` in `{}` inflates to more than {} times its compressed size",
                        self.entry, self.zip, self.limits.ratio
                    ),
                ));
            }
            self.write(&block[..n])?;
        }
    }

    fn copy(&mut self, from: &mut impl Read) -> Result<(), ApiError> {
        let mut block = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut block) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(spool_failed(e)),
            };
            if n == 0 {
                return Ok(());
            }
            self.write(&block[..n])?;
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable(
                "UPLOAD_CANCELLED",
                "the upload was cancelled while it was unpacked",
            ));
        }
        *self.total += bytes.len() as u64;
        if *self.total > self.limits.unpacked_bytes {
            return Err(too_large(
                self.zip,
                Some(self.entry),
                format!(
                    "the bundle is larger than {} once unpacked (at `{}` in `{}`)",
                    size_name(self.limits.unpacked_bytes),
                    self.entry,
                    self.zip
                ),
            ));
        }
        self.crc.update(bytes);
        self.out.write_all(bytes).map_err(spool_failed)
    }
}

/// Upper bounds of what reading the zip at `path` holds in memory, whichever of its end
/// records a reader settles on: the entries of its central directory and their bytes (every
/// directory entry starts with its signature, so the headers found by signature bound those a
/// reader can take), and the largest entry count a zip64 end record near the end declares (a
/// reader sizes its tables by it). One pass over the file, 64 KiB at a time.
fn directory_bounds(path: &Path) -> std::io::Result<(u64, u64)> {
    const ENTRY: &[u8; 4] = b"PK\x01\x02";
    const END64: &[u8; 4] = b"PK\x06\x06";
    /// Bytes a header's fields of interest reach past its signature.
    const REACH: usize = 48;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    // A zip64 end record is used only when it ends at the locator right before the end
    // record, which is within the last 64 KiB (and its comment).
    let tail = len.saturating_sub(22 + 20 + (1 << 16));
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut window: Vec<u8> = Vec::with_capacity((64 << 10) + REACH);
    let mut offset = 0u64; // of window[0] in the file
    let mut block = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut block)?;
        window.extend_from_slice(&block[..n]);
        let end = n == 0;
        // Signatures whose fields are all in the window (or all there is, at the end).
        let scan = if end {
            window.len().saturating_sub(3)
        } else {
            window.len().saturating_sub(REACH)
        };
        let u16_at = |i: usize| {
            window
                .get(i..i + 2)
                .map_or(0, |b| u64::from(u16::from_le_bytes([b[0], b[1]])))
        };
        let u64_at = |i: usize| {
            window
                .get(i..i + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        };
        for i in 0..scan {
            if window[i] != b'P' {
                continue;
            }
            let sig = &window[i..i + 4];
            if sig == ENTRY {
                entries += 1;
                bytes += 46 + u16_at(i + 28) + u16_at(i + 30) + u16_at(i + 32);
            } else if sig == END64 {
                let ends_at = (offset + i as u64)
                    .saturating_add(12)
                    .saturating_add(u64_at(i + 4));
                if ends_at >= tail.saturating_sub(20) && ends_at <= len {
                    entries = entries.max(u64_at(i + 24)).max(u64_at(i + 32));
                }
            }
        }
        if end {
            return Ok((entries, bytes));
        }
        window.drain(..scan);
        offset += scan as u64;
    }
}

#[cfg(test)]
mod tests;
