//! Hot single statements (reads, and writes that commit alone) on PostgreSQL connections of
//! their own, outside sqlx's pool: the lane.
//!
//! sqlx's pool sends a Sync to the server on every release of a connection and waits for its
//! answer (to flush a rollback a cancelled call may have left behind; it cannot be turned off):
//! a second round trip for every single statement, which in the deals benchmark's gets was a
//! tenth of the process's CPU and as much again in PostgreSQL, and as much in its creates. A
//! statement outside a transaction needs no such flush: PostgreSQL has committed or rolled it
//! back by the time it answers, and a connection whose statement did not run to its end (the
//! call was cancelled, or it failed) is closed here instead of going back, so that only a
//! connection known to be idle at the server is reused.
//!
//! Each statement is planned once per connection (`plan_cache_mode=force_generic_plan`, whatever
//! the pool does). PostgreSQL otherwise keeps planning a prepared statement anew while it judges
//! a plan for the values cheaper: it did so for every page of the deals list (0.4 ms of planning
//! for 0.1 ms of execution, a third of the server's CPU in the benchmark's lists), and a lane
//! statement (a read by key, a page of an index in its order) has the best plan for its shape
//! whatever its values.
//!
//! For statements outside any transaction. On SQLite (one connection, no round trips) they go
//! through the service's own pool.

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgRow, PgSeverity};
use sea_orm::sqlx::{self, ConnectOptions as _};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement};
use sea_query_sqlx::SqlxValues;

/// Connections a lane keeps at most, and statements it runs at once; more wait, in order.
///
/// Twice the cores: a read is either at the server or being decoded here, and a PostgreSQL
/// backend is a process of its own, so more reads at once than the machine can run only move
/// the queue from this semaphore into the kernel's scheduler, where it forms a tail. In the
/// deals benchmark (2 cores, 16 clients, pages of 50) lists from the store had a p99 of 15 ms
/// with 16 connections and 6 ms with 4, at the same throughput; 2 lost a fifth of it. Its
/// creates, whose inserts share the lane, were faster on these 4 connections than on 16 of
/// their own (5,200/s against 3,954-4,891/s), though each commit waits for its flush. At most
/// 16, so that a large machine does not take a share of the server's `max_connections` it
/// cannot plan for.
pub fn lane_connections() -> usize {
    (2 * crate::cores()).min(16)
}

/// Single statements of one service, on connections of their own where the database is
/// PostgreSQL.
pub struct Lane {
    db: DatabaseConnection,
    pg: Option<PgLane>,
}

struct PgLane {
    options: PgConnectOptions,
    idle: parking_lot::Mutex<Vec<PgConnection>>,
    permits: tokio::sync::Semaphore,
}

impl Lane {
    /// A lane beside `db`'s pool, connecting as it does (same server and options, but for the
    /// planning: see the module's comment); connections are opened when first needed.
    pub fn new(db: &DatabaseConnection) -> Self {
        let connections = lane_connections();
        let pg = (db.get_database_backend() == DbBackend::Postgres).then(|| PgLane {
            options: (*db.get_postgres_connection_pool().connect_options())
                .clone()
                .options([("plan_cache_mode", "force_generic_plan")]),
            idle: parking_lot::Mutex::new(Vec::with_capacity(connections)),
            permits: tokio::sync::Semaphore::new(connections),
        });
        Self { db: db.clone(), pg }
    }

    /// Every row `statement` returns; for reads, which go again on a new connection when the
    /// idle one they were given had ended (a write goes through [`Lane::execute`]).
    pub async fn all(&self, statement: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        let _turn = self.turn().await;
        self.all_in_turn(statement).await
    }

    /// Runs one statement that writes, outside any transaction: PostgreSQL commits it by itself
    /// before it answers. A connection found to have ended retries the statement on a new one
    /// only when `repeatable`: the end may have come after the commit, so a statement is
    /// repeatable when a second run cannot write twice (a unique key refuses it).
    pub async fn execute(&self, statement: &Statement, repeatable: bool) -> Result<(), DbErr> {
        match &self.pg {
            None => self.db.execute_raw(statement.clone()).await.map(drop),
            Some(lane) => {
                let _turn = lane.permit().await;
                lane.fetch_all_holding(statement, repeatable)
                    .await
                    .map(drop)
                    .map_err(super::query_error)
            }
        }
    }

    /// The first row `statement` returns; for statements that select by key.
    pub async fn one(&self, statement: &Statement) -> Result<Option<QueryResult>, DbErr> {
        Ok(self.all(statement).await?.into_iter().next())
    }

    /// Waits for a turn on the lane's connections (`None` on SQLite, where there are none):
    /// what [`batched`](super::batched) holds while it gathers the reads that queued meanwhile.
    pub(super) async fn turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match &self.pg {
            None => None,
            Some(lane) => Some(lane.permit().await),
        }
    }

    /// [`Lane::all`] for a caller that holds a [`Lane::turn`].
    pub(super) async fn all_in_turn(
        &self,
        statement: &Statement,
    ) -> Result<Vec<QueryResult>, DbErr> {
        match &self.pg {
            None => self.db.query_all_raw(statement.clone()).await,
            Some(lane) => Ok(lane
                .fetch_all_holding(statement, true)
                .await
                .map_err(super::query_error)?
                .into_iter()
                .map(QueryResult::from)
                .collect()),
        }
    }

    /// Whether reads run on connections of their own (PostgreSQL), where several can share one
    /// statement; on SQLite each read is one statement on the service's pool.
    pub fn is_separate(&self) -> bool {
        self.pg.is_some()
    }

    /// Connections open and idle in the lane (0 on SQLite).
    pub fn idle_connections(&self) -> usize {
        self.pg.as_ref().map_or(0, |lane| lane.idle.lock().len())
    }
}

impl PgLane {
    /// A turn to run one statement: while it is held, a connection of the lane is this caller's.
    async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// Runs `statement` on an idle connection or a new one, again on a new one if the idle one
    /// had ended and `retry` says it may; the caller holds a permit.
    async fn fetch_all_holding(
        &self,
        statement: &Statement,
        retry: bool,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        // A connection is owned by this future while it works: if the future is dropped (the
        // call was cancelled), so is the connection, closed with whatever it was in the middle of.
        let reused = self.idle.lock().pop();
        if let Some(mut conn) = reused {
            match run(&mut conn, statement).await {
                Ok(rows) => {
                    self.idle.lock().push(conn);
                    return Ok(rows);
                }
                // The connection ended while idle (the server restarted or was told to end it, a
                // proxy timed it out): a read may be tried again, once, on a new one.
                Err(e) if retry && connection_lost(&e) => {
                    tracing::debug!(error = %e, "a lane connection ended; reconnecting")
                }
                // The statement's own failure; the connection, in doubt, is not kept.
                Err(e) => return Err(e),
            }
        }
        let mut conn = self.options.connect().await?;
        let rows = run(&mut conn, statement).await?;
        self.idle.lock().push(conn);
        Ok(rows)
    }
}

/// Whether `e` says the connection is gone rather than that the statement failed: an I/O or
/// protocol error, or the server's FATAL message as it ends a session (57P01 on
/// `pg_terminate_backend` or a fast shutdown).
fn connection_lost(e: &sqlx::Error) -> bool {
    match e.as_database_error() {
        None => true,
        Some(d) => d
            .try_downcast_ref::<PgDatabaseError>()
            .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
    }
}

async fn run(conn: &mut PgConnection, statement: &Statement) -> Result<Vec<PgRow>, sqlx::Error> {
    let values = SqlxValues(
        statement
            .values
            .clone()
            .unwrap_or(sea_orm::sea_query::Values(Vec::new())),
    );
    sqlx::query_with(sqlx::AssertSqlSafe(statement.sql.as_str()), values)
        .fetch_all(conn)
        .await
}
