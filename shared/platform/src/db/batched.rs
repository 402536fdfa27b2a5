//! Reads by key that share one statement when they arrive together.
//!
//! A read by key on PostgreSQL costs the server a statement of its own (bind, execute, a
//! wake-up of the backend, a reply) whatever few rows it returns, and on a busy machine that
//! overhead, not the index lookup, is most of its work: a statement for 4 keys costs about a
//! third more than one for 1 key, not four times as much. [`Batched`] lets reads that wait for a
//! connection of the [`Lane`] at the same moment go as one statement: whoever gets a turn
//! takes every read queued by then (up to [`MOST`]) and hands each its rows. A read that finds a
//! connection free goes at once, alone, so nothing waits for company: batches form only where
//! reads would have queued anyway.
//!
//! The statement answers for all of its keys at once: each row carries, in the column
//! [`POSITION`], the 1-based position of the key it belongs to. When it fails, or when the read
//! that took a batch is cancelled, each read of that batch is run again alone, so that each
//! caller gets its own answer or its own error. On SQLite (no lane) every read runs alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use sea_orm::{DbErr, QueryResult, Statement};
use tokio::sync::oneshot;

use super::lane::Lane;

/// The column of a batched statement's rows that says whose they are: the 1-based position of
/// their key among the statement's keys.
pub const POSITION: &str = "batch_position";

/// Keys one statement answers for at most. Each number of keys is a statement shape of its own,
/// prepared once per connection of the lane.
pub const MOST: usize = 16;

/// Makes the statement for a set of keys.
type MakeStatement<K> = Box<dyn Fn(&[K]) -> Statement + Send + Sync>;

/// One read waiting for a statement: its key, and where its rows go (`None`: run alone).
struct Job<K> {
    key: K,
    answer: oneshot::Sender<Option<Vec<QueryResult>>>,
}

/// Reads by key of one kind (one statement for any number of keys) on a [`Lane`].
pub struct Batched<K> {
    lane: Arc<Lane>,
    queue: Mutex<Vec<Job<K>>>,
    statement: MakeStatement<K>,
    /// Keys answered by shared statements, and those statements.
    shared: AtomicU64,
    statements: AtomicU64,
    /// Turns taken that found nothing left to run.
    idle_turns: AtomicU64,
}

impl<K: Clone + Send + 'static> Batched<K> {
    /// `statement(keys)` selects the rows of every key of `keys` (1 to [`MOST`] of them), each
    /// row with its key's position in the column [`POSITION`].
    pub fn new(
        lane: Arc<Lane>,
        statement: impl Fn(&[K]) -> Statement + Send + Sync + 'static,
    ) -> Self {
        Self {
            lane,
            queue: Mutex::new(Vec::new()),
            statement: Box::new(statement),
            shared: AtomicU64::new(0),
            statements: AtomicU64::new(0),
            idle_turns: AtomicU64::new(0),
        }
    }

    /// Reads answered by a statement run for a turn so far, and how many statements that took:
    /// their quotient is how many reads a statement answered on average. Reads run alone (on
    /// SQLite, or after a failed batch) count in neither.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.shared.load(Ordering::Relaxed),
            self.statements.load(Ordering::Relaxed),
        )
    }

    /// Turns taken that found every queued read taken already: at most one per read, since a
    /// read that finds nothing left waits for its answer alone.
    pub fn idle_turns(&self) -> u64 {
        self.idle_turns.load(Ordering::Relaxed)
    }

    /// The rows of `key`, read alone or with the other keys asked for at the same moment.
    pub async fn get(&self, key: K) -> Result<Vec<QueryResult>, DbErr> {
        if !self.lane.is_separate() {
            return self.alone(key).await;
        }
        let (answer, mut rows) = oneshot::channel();
        self.queue.lock().push(Job {
            key: key.clone(),
            answer,
        });
        loop {
            // Either another read's turn answers this one, or this one gets a turn first.
            let turn = tokio::select! {
                biased;
                answered = &mut rows => return self.answered(answered, key).await,
                turn = self.lane.turn() => turn,
            };
            let jobs: Vec<Job<K>> = {
                let mut queue = self.queue.lock();
                queue.retain(|job| !job.answer.is_closed());
                let n = queue.len().min(MOST);
                queue.drain(..n).collect()
            };
            if jobs.is_empty() {
                // This read was taken by a turn still running: its answer is all that is left
                // to wait for (waiting for turns again would take and return them in a loop).
                self.idle_turns.fetch_add(1, Ordering::Relaxed);
                drop(turn);
                return self.answered(rows.await, key).await;
            }
            // This read's statement, or the first reads queued before it (then it waits on).
            self.run(jobs).await;
            drop(turn);
        }
    }

    /// What a read does with the answer a turn sent it.
    async fn answered(
        &self,
        answered: Result<Option<Vec<QueryResult>>, oneshot::error::RecvError>,
        key: K,
    ) -> Result<Vec<QueryResult>, DbErr> {
        match answered {
            Ok(Some(rows)) => Ok(rows),
            // The batch failed, or the read that ran it was cancelled.
            Ok(None) | Err(_) => self.alone(key).await,
        }
    }

    /// Runs one statement for `jobs` and hands each its rows; on failure, each runs alone.
    async fn run(&self, jobs: Vec<Job<K>>) {
        let keys: Vec<K> = jobs.iter().map(|job| job.key.clone()).collect();
        let statement = (self.statement)(&keys);
        let mut by_position: HashMap<i32, Vec<QueryResult>> = HashMap::new();
        let read = match self.lane.all_in_turn(&statement).await {
            Ok(rows) => rows.into_iter().try_for_each(|row| {
                let position: i32 = row.try_get("", POSITION)?;
                by_position.entry(position).or_default().push(row);
                Ok::<_, DbErr>(())
            }),
            Err(e) => Err(e),
        };
        if let Err(e) = read {
            tracing::debug!(error = %e, keys = keys.len(), "a batched read failed; each runs alone");
            for job in jobs {
                let _ = job.answer.send(None);
            }
            return;
        }
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.shared.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        for (i, job) in jobs.into_iter().enumerate() {
            let rows = by_position.remove(&(i as i32 + 1)).unwrap_or_default();
            let _ = job.answer.send(Some(rows));
        }
    }

    async fn alone(&self, key: K) -> Result<Vec<QueryResult>, DbErr> {
        self.lane
            .all(&(self.statement)(std::slice::from_ref(&key)))
            .await
    }
}
