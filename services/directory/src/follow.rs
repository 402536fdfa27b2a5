//! Replicas follow the database: every directory process keeps its own index, and loads may go
//! through any of them, so each index catches up with the rows other processes wrote.
//!
//! The index records the database generation it holds (`SearchIndex::generation`): every row
//! of a generation up to it is indexed. Catching up to a newer generation `upto` reads only the
//! rows last written by a generation after it (each row carries its generation, see the
//! store), leaving out the generations this process indexed itself while it loaded them. A
//! follower task does that every [`crate::Config::follow_every`]; a load does it before each of
//! its commits, so that a commit never claims another replica's rows it has not indexed.

use std::sync::Arc;
use std::time::Duration;

use crate::Directory;
use crate::index::SearchIndex;
use crate::store::Store;

/// Rows read per page while catching up.
const PAGE: u64 = 5000;

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("directory database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("directory index: {0}")]
    Index(#[from] tantivy::TantivyError),
}

impl From<FollowError> for crate::load::LoadError {
    fn from(e: FollowError) -> Self {
        match e {
            FollowError::Database(e) => Self::Storage(e),
            FollowError::Index(e) => Self::Index(e),
        }
    }
}

/// Indexes the rows written after the index's generation up to `upto`, except those of the
/// generations in `own` (indexed already by the caller), and commits the index at `upto`.
/// Returns how many rows were read. The caller holds the directory's load lock.
pub async fn catch_up(
    store: &Store,
    index: &SearchIndex,
    upto: i64,
    own: &[i64],
) -> Result<usize, FollowError> {
    let since = index.generation().unwrap_or(0);
    let mut read = 0;
    // Nothing to read when this process wrote every generation in between itself.
    let covered = (since + 1..=upto).all(|g| own.contains(&g));
    if !covered {
        let mut after: Option<String> = None;
        loop {
            let page = store
                .changed(since, upto, own, after.as_deref(), PAGE)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id.clone());
            read += page.len();
            index.upsert(&page)?;
        }
    }
    index.commit(upto)?;
    Ok(read)
}

/// Follows the database until the directory is dropped: every `every`, when another process
/// moved the generation on, catches the index up. A database that cannot be reached is tried
/// again at the next tick. The task holds the directory (and so its index writer) only while
/// it catches up, so that dropping a directory lets its index go at once.
pub fn spawn_follower(directory: &Arc<Directory>, every: Duration) {
    let store = directory.store.clone();
    let directory = Arc::downgrade(directory);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let upto = match store.generation().await {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(error = %e, "the directory cannot read its generation; trying again");
                    continue;
                }
            };
            let Some(d) = directory.upgrade() else {
                return;
            };
            if d.index.generation().is_some_and(|g| g >= upto) {
                continue;
            }
            if let Err(e) = follow_once(&d).await {
                tracing::warn!(error = %e, "the directory index could not catch up; trying again");
            }
        }
    });
}

/// Catches the index up with the database's generation, under the directory's load lock (a
/// load of this process catches up as it commits).
pub async fn follow_once(d: &Directory) -> Result<usize, FollowError> {
    let _one_at_a_time = d.load_lock.lock().await;
    let upto = d.store.generation().await?;
    if d.index.generation().is_some_and(|g| g >= upto) {
        return Ok(0);
    }
    let read = catch_up(&d.store, &d.index, upto, &[]).await?;
    tracing::info!(generation = upto, rows = read, "directory index caught up");
    Ok(read)
}
