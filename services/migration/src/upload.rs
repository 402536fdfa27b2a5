//! An uploaded PSC export on its way to the reader: each uploaded file is spooled to a
//! temporary folder as its chunks arrive (memory holds one message), and a zip is unpacked
//! there, so that the reader streams the bundle from disk. The folder goes when the upload
//! is dropped.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use cosell_platform::ApiError;
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

/// Largest upload accepted (all files together, and again once a zip is unpacked).
pub const MAX_UPLOAD_BYTES: u64 = 1024 * 1024 * 1024;

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
    pub fn new() -> Result<Self, ApiError> {
        Ok(Self {
            dir: tempfile::Builder::new()
                .prefix("cosell-psc-upload-")
                .tempdir()
                .map_err(spool_failed)?,
            files: Vec::new(),
            open: None,
            total: 0,
        })
    }

    /// Appends one message's chunk to its file. A file's chunks come one after another.
    pub async fn add(&mut self, file_name: &str, chunk: &[u8]) -> Result<(), ApiError> {
        self.total += chunk.len() as u64;
        if self.total > MAX_UPLOAD_BYTES {
            return Err(ApiError::invalid_field(
                "chunk",
                "the bundle is larger than 1 GiB",
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

    async fn close(&mut self) -> Result<(), ApiError> {
        if let Some(mut f) = self.open.take() {
            f.flush().await.map_err(spool_failed)?;
        }
        Ok(())
    }

    /// The bundle's files: CSV files by name, or the CSV files inside a zip (by their base
    /// name, in any folder of it); anything else is a warning.
    pub async fn finish(mut self) -> Result<(Unpacked, Vec<Issue>), ApiError> {
        self.close().await?;
        tokio::task::spawn_blocking(move || unpack(self.dir, &self.files))
            .await
            .map_err(ApiError::internal)?
    }
}

fn unpack(
    dir: tempfile::TempDir,
    uploads: &[(String, PathBuf)],
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
            let file = std::fs::File::open(path).map_err(spool_failed)?;
            let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
                ApiError::invalid_field("file_name", format!("`{name}` is not a readable zip: {e}"))
            })?;
            for i in 0..zip.len() {
                let mut entry = zip
                    .by_index(i)
                    .map_err(|e| ApiError::invalid_field("file_name", format!("`{name}`: {e}")))?;
                if entry.is_dir() {
                    continue;
                }
                let inner = entry
                    .name()
                    .map_err(|e| ApiError::invalid_field("file_name", format!("`{name}`: {e}")))?
                    .into_owned();
                let Some(file) = bundle_name(&inner) else {
                    warnings.push(warn(&inner, "not a file of a PSC export; ignored"));
                    continue;
                };
                let out = taken(file)?;
                // Written no further than what is left of the limit: a small zip may expand
                // hugely.
                let room = MAX_UPLOAD_BYTES.saturating_sub(total) + 1;
                total += copy_to(&mut entry.by_ref().take(room), &out).map_err(|e| {
                    ApiError::invalid_field("file_name", format!("`{inner}` in `{name}`: {e}"))
                })?;
                if total > MAX_UPLOAD_BYTES {
                    return Err(ApiError::invalid_field(
                        "chunk",
                        "the bundle is larger than 1 GiB (uncompressed)",
                    ));
                }
            }
        } else if let Some(file) = bundle_name(name) {
            total += std::fs::metadata(path).map_err(spool_failed)?.len();
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

fn copy_to(from: &mut impl Read, to: &Path) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(to)?);
    let n = std::io::copy(from, &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(n)
}
