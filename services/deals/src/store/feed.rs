//! The change feed's table (SPEC 3.6): events appended in the transaction of their change
//! ([`append`]), numbered after commit by one sequencer at a time ([`Store::sequence`]), read
//! by position within a reader's visibility ([`Store::events_after`]), pruned after the
//! retention ([`Store::prune_events`]).
//!
//! A writer does not wait for its events' numbers: it wakes this process's sequencer task
//! ([`Store::run_sequencer`]) and answers. Readers that must see what was committed before
//! them (ListEvents, the start of a watch, the sweeper before it prunes) ask for a run first;
//! one run serves every writer and reader waiting then, so numbering costs a few statements
//! per batch of commits, not per commit.
//!
//! Why positions are given after commit: a PostgreSQL sequence hands out numbers in the order
//! transactions start, and they commit in another order, so a reader that had seen 12 could
//! later find an 11 it never gets. Here a change's events wait in `event_queue`; the sequencer
//! (under an advisory lock on PostgreSQL, the database's write lock on SQLite) moves the
//! committed ones into `events`, numbered after the highest number given so far, and commits
//! them all at once. A reader reads `events` only, whose rows appear in order and are never
//! followed by a smaller number: a cursor is then a plain number, and resuming after it loses
//! and repeats nothing. `events` is only appended to (and pruned): numbering rows in place
//! left a dead copy of each behind, which every later run read again.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use uuid::Uuid;

use super::{Result, Store, StoreError};
use crate::domain::Party;
use crate::domain::event::EventKind;

/// The least time between two runs of the sequencer task (the most an event waits for its
/// number, beyond the run itself, when nobody reads the feed; readers ask for a run).
const SEQUENCER_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);
/// Rows numbered per sequencer statement.
const SEQUENCE_BATCH: u64 = 5_000;
/// The advisory lock of the sequencer on PostgreSQL (any number no other code uses).
const SEQUENCER_LOCK: i64 = 0x00C0_5E11_FEED;

/// An event to append with its change.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventKind,
    pub referral: Uuid,
    pub organization: Uuid,
    pub mpn_location: Option<String>,
    pub party: Party,
    /// Whether platform users may read the referral (not PRIVATE).
    pub shared: bool,
    pub actor: String,
    pub time: DateTime<Utc>,
    pub changed_fields: Vec<String>,
    /// The referral after the change, an encoded `cosell.deals.v1.Referral`.
    pub snapshot: Vec<u8>,
}

/// An event as read from the feed.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub position: i64,
    pub kind: EventKind,
    pub referral: Uuid,
    pub organization: Uuid,
    pub mpn_location: Option<String>,
    pub party: Party,
    /// Whether platform users may read the referral (not PRIVATE).
    pub shared: bool,
    pub actor: String,
    pub time: DateTime<Utc>,
    pub changed_fields: Vec<String>,
    pub snapshot: Vec<u8>,
}

/// Whose events a reader may see: GetReferral's rule, as a condition of the query.
#[derive(Debug, Clone)]
pub enum Visibility {
    /// A partner organization's referrals; with `locations`, only those MPN locations'.
    Partner {
        organization: Uuid,
        locations: Option<Vec<String>>,
    },
    /// The platform's referrals and the partners' shared ones.
    Platform,
    /// Every event (the notification deriver inside the service).
    All,
}

impl Visibility {
    /// Whether `e` is one of the events this reader may see: the condition
    /// [`Store::events_after`] puts in its query, for events already read (the watches'
    /// shared reader hands every event to every watch).
    pub fn admits(&self, e: &StoredEvent) -> bool {
        match self {
            Visibility::Partner {
                organization,
                locations,
            } => {
                e.organization == *organization
                    && e.party == Party::Partner
                    && locations.as_ref().is_none_or(|ls| {
                        e.mpn_location
                            .as_ref()
                            .is_some_and(|l| ls.iter().any(|x| x == l))
                    })
            }
            Visibility::Platform => e.party == Party::Platform || e.shared,
            Visibility::All => true,
        }
    }
}

/// The sequencer's state in this process: callers after a commit wait for a run that started
/// after their commit, and one run serves all who wait for it.
#[derive(Debug)]
pub struct Feed {
    /// The highest ticket a finished run covers, held while a run is in progress.
    covered: tokio::sync::Mutex<u64>,
    /// One ticket per commit waiting to be numbered.
    tickets: AtomicU64,
    /// The highest position numbered so far (by this process): watchers wake on a change.
    pub head: tokio::sync::watch::Sender<i64>,
    /// Set by each commit that appended events: the sequencer task's wake-up.
    committed: tokio::sync::Notify,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            covered: tokio::sync::Mutex::new(0),
            tickets: AtomicU64::new(0),
            head: tokio::sync::watch::channel(0).0,
            committed: tokio::sync::Notify::new(),
        }
    }
}

/// The columns of a queued event, and of a numbered one but its position.
const COLUMNS: &str = "id, kind, referral_id, organization, mpn_location, party, shared, actor, \
     event_time, changed_fields, snapshot";

/// The statements that queue `events` for the sequencer (written with their change).
pub(super) fn queue_inserts(events: &[NewEvent]) -> Vec<sea_orm::sea_query::InsertStatement> {
    use sea_orm::sea_query::{Alias, Query};
    // 11 values per row: far below PostgreSQL's 65,535 bound parameters.
    events
        .chunks(500)
        .map(|chunk| {
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new("event_queue"))
                .columns(COLUMNS.split(", ").map(Alias::new));
            for e in chunk {
                insert.values_panic([
                    Uuid::now_v7().to_string().into(),
                    e.kind.as_str().into(),
                    e.referral.to_string().into(),
                    e.organization.to_string().into(),
                    e.mpn_location.clone().into(),
                    e.party.as_str().into(),
                    e.shared.into(),
                    e.actor.clone().into(),
                    e.time.into(),
                    e.changed_fields.join(",").into(),
                    e.snapshot.clone().into(),
                ]);
            }
            insert
        })
        .collect()
}

/// `$1`-style placeholders as the backend wants them (SQLite reads `?1`).
pub(super) fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The position the next run numbers after: the highest given (or pruned, once every event
/// is pruned).
const HEAD_SQL: &str = "SELECT COALESCE(MAX(e.position),
    (SELECT MAX(f.position) FROM feed_state f WHERE f.name = 'pruned_through'), 0) FROM events e";

/// Moves up to [`SEQUENCE_BATCH`] queued events into the feed, numbered in the order of their ids
/// (time-ordered) after [`HEAD_SQL`]; how many.
async fn move_queued(db: &DatabaseConnection) -> Result<u64> {
    let oldest = format!("SELECT id FROM event_queue ORDER BY id LIMIT {SEQUENCE_BATCH}");
    let numbered = |from: &str| {
        format!(
            "INSERT INTO events (position, {COLUMNS})
             SELECT ({HEAD_SQL}) + ROW_NUMBER() OVER (ORDER BY id), {COLUMNS} FROM {from}"
        )
    };
    Ok(match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = cosell_platform::db::begin(db).await?;
            txn.execute_raw(statement(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                vec![SEQUENCER_LOCK.into()],
            ))
            .await?;
            // One statement: the rows it deletes are the rows it numbers.
            let moved = txn
                .execute_unprepared(&format!(
                    "WITH moved AS (DELETE FROM event_queue WHERE id IN ({oldest}) RETURNING *) {}",
                    numbered("moved")
                ))
                .await?
                .rows_affected();
            txn.commit().await?;
            moved
        }
        // SQLite has one writer at a time: nothing commits between the two statements.
        _ => {
            let txn = cosell_platform::db::begin(db).await?;
            let moved = txn
                .execute_unprepared(&numbered(&format!(
                    "(SELECT * FROM event_queue ORDER BY id LIMIT {SEQUENCE_BATCH})"
                )))
                .await?
                .rows_affected();
            txn.execute_unprepared(&format!("DELETE FROM event_queue WHERE id IN ({oldest})"))
                .await?;
            txn.commit().await?;
            moved
        }
    })
}

impl Store {
    /// Tells the sequencer task that events were committed (after each write that appended
    /// some): they are numbered soon, without the writer waiting.
    pub(super) fn committed(&self) {
        self.feed.committed.notify_one();
    }

    /// Numbers what commits wake it for until `ending` turns true. A failed run (the database
    /// away) is retried after a pause; what stays unnumbered meanwhile is numbered by the next
    /// run, or by a reader's [`Store::sequence`].
    pub async fn run_sequencer(&self, mut ending: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = self.feed.committed.notified() => {}
                _ = ending.wait_for(|end| *end) => return,
            }
            if let Err(e) = self.sequence().await {
                tracing::warn!(error = ?e, "numbering the change feed failed; retrying");
                self.feed.committed.notify_one();
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            // Under load, one run per pause numbers every commit of the pause: a few runs a
            // second instead of one per commit, and the writers keep the database's time.
            tokio::time::sleep(SEQUENCER_PAUSE).await;
        }
    }

    /// Numbers what was committed before this call: a run that starts after it, shared with
    /// every other caller waiting then. Readers call it before reading what they must not miss;
    /// [`Store::sequence_orphans`] numbers what a process that died between its commit and
    /// its run left behind.
    pub async fn sequence(&self) -> Result<()> {
        let mine = self.feed.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.feed.covered.lock().await;
        if *covered >= mine {
            return Ok(());
        }
        let upto = self.feed.tickets.load(Ordering::SeqCst);
        self.sequence_now().await?;
        *covered = upto;
        Ok(())
    }

    /// Numbers whatever is committed and unnumbered (the sweeper's periodic pass).
    pub async fn sequence_orphans(&self) -> Result<()> {
        let _run = self.feed.covered.lock().await;
        self.sequence_now().await
    }

    async fn sequence_now(&self) -> Result<()> {
        while move_queued(&self.db).await? >= SEQUENCE_BATCH {}
        let head = self.feed_head().await?;
        self.feed.head.send_if_modified(|h| {
            let newer = head > *h;
            *h = (*h).max(head);
            newer
        });
        Ok(())
    }

    /// The feed's sequencer state (for watchers: its `head` wakes them).
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// The highest position numbered (by any replica), or how far the feed was pruned when
    /// it is empty.
    pub async fn feed_head(&self) -> Result<i64> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                format!("SELECT ({HEAD_SQL}) AS head"),
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "head"))
            .transpose()?
            .unwrap_or(0))
    }

    /// The position up to which events were pruned: a cursor before it is out of range.
    pub async fn pruned_through(&self) -> Result<i64> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT position FROM feed_state WHERE name = 'pruned_through'",
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "position"))
            .transpose()?
            .unwrap_or(0))
    }

    /// Up to `limit` numbered events after `after` that `who` may see, in order.
    pub async fn events_after(
        &self,
        who: &Visibility,
        after: i64,
        limit: u64,
    ) -> Result<Vec<StoredEvent>> {
        let backend = self.db.get_database_backend();
        let mut sql = String::from(
            "SELECT position, kind, referral_id, organization, mpn_location, party, shared, \
             actor, event_time, changed_fields, snapshot FROM events WHERE position > $1",
        );
        let mut values: Vec<Value> = vec![after.into()];
        match who {
            Visibility::Partner {
                organization,
                locations,
            } => {
                values.push(organization.to_string().into());
                sql.push_str(" AND organization = $2 AND party = 'PARTNER'");
                if let Some(locations) = locations {
                    let mut marks = Vec::new();
                    for l in locations {
                        values.push(l.clone().into());
                        marks.push(format!("${}", values.len()));
                    }
                    if marks.is_empty() {
                        return Ok(Vec::new());
                    }
                    sql.push_str(&format!(" AND mpn_location IN ({})", marks.join(", ")));
                }
            }
            Visibility::Platform => sql.push_str(" AND (party = 'PLATFORM' OR shared)"),
            Visibility::All => {}
        }
        values.push((limit as i64).into());
        sql.push_str(&format!(" ORDER BY position LIMIT ${}", values.len()));
        let rows = self
            .db
            .query_all_raw(statement(backend, &sql, values))
            .await?;
        rows.iter().map(read_event).collect()
    }

    /// Deletes the events older than `before` (and records how far, for OUT_OF_RANGE);
    /// returns how many went.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64> {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(statement(
                backend,
                "SELECT MAX(position) AS upto FROM events WHERE event_time < $1",
                vec![before.into()],
            ))
            .await?;
        let Some(upto) = row.and_then(|r| r.try_get::<Option<i64>>("", "upto").ok().flatten())
        else {
            return Ok(0);
        };
        let txn = cosell_platform::db::begin(&self.db).await?;
        txn.execute_raw(statement(
            backend,
            "INSERT INTO feed_state (name, position) VALUES ('pruned_through', $1)
             ON CONFLICT (name) DO UPDATE SET position =
               CASE WHEN feed_state.position > excluded.position
                    THEN feed_state.position ELSE excluded.position END",
            vec![upto.into()],
        ))
        .await?;
        let gone = txn
            .execute_raw(statement(
                backend,
                "DELETE FROM events WHERE position <= $1",
                vec![upto.into()],
            ))
            .await?
            .rows_affected();
        txn.commit().await?;
        Ok(gone)
    }

    /// Announces `event` (EXPIRING_SOON) once per referral, whichever replica comes first: the
    /// notice's row and the event in one transaction. `false`: announced before.
    pub async fn notice_expiring(&self, event: &NewEvent) -> Result<bool> {
        let backend = self.db.get_database_backend();
        let txn = cosell_platform::db::begin(&self.db).await?;
        let fresh = txn
            .execute_raw(statement(
                backend,
                "INSERT INTO expiry_notices (referral_id, notice_time) VALUES ($1, $2)
                 ON CONFLICT (referral_id) DO NOTHING",
                vec![event.referral.to_string().into(), event.time.into()],
            ))
            .await?
            .rows_affected()
            == 1;
        if fresh {
            for insert in queue_inserts(std::slice::from_ref(event)) {
                txn.execute(&insert).await?;
            }
        }
        txn.commit().await?;
        if fresh {
            self.committed();
        }
        Ok(fresh)
    }
}

fn read_event(row: &sea_orm::QueryResult) -> Result<StoredEvent> {
    let corrupt = |what: &str| StoreError::Corrupt("events".into(), what.to_owned());
    let kind: String = row.try_get("", "kind")?;
    let referral: String = row.try_get("", "referral_id")?;
    let organization: String = row.try_get("", "organization")?;
    let party: String = row.try_get("", "party")?;
    let fields: String = row.try_get("", "changed_fields")?;
    Ok(StoredEvent {
        position: row.try_get("", "position")?,
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt(&kind))?,
        referral: Uuid::parse_str(&referral).map_err(|_| corrupt(&referral))?,
        organization: Uuid::parse_str(&organization).map_err(|_| corrupt(&organization))?,
        mpn_location: row.try_get("", "mpn_location")?,
        party: Party::parse(&party).ok_or_else(|| corrupt(&party))?,
        shared: row.try_get("", "shared")?,
        actor: row.try_get("", "actor")?,
        time: row.try_get("", "event_time")?,
        changed_fields: fields
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        snapshot: row.try_get("", "snapshot")?,
    })
}
