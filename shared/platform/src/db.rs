//! Database access: one URL picks PostgreSQL (`postgres://...`) or SQLite (`sqlite://file?mode=rwc`,
//! `sqlite::memory:`), and each service's schema migrations run at start.
//!
//! - [`reads`]: hot single-statement reads on PostgreSQL connections outside the pool.
//! - [`batched`]: reads by key that arrive together, answered by one statement on that lane.
//! - [`write_unprepared`]: bulk writes in one transaction, none of them left prepared.

pub mod batched;
pub mod lane;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    AccessMode, ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    IsolationLevel, Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

/// Whether a URL names an in-memory SQLite database, which lives only as long as its one
/// connection.
fn is_sqlite_memory(url: &str) -> bool {
    url.starts_with("sqlite::memory:") || url.contains("mode=memory")
}

/// Connections a service's pool to PostgreSQL keeps at most, unless `--database-pool-size`
/// (`COSELL_DATABASE_POOL_SIZE`) says otherwise.
pub const POOL_SIZE: u32 = 32;

/// The pool size a binary's `--database-pool-size` chose (0: none chose).
static CHOSEN_POOL_SIZE: AtomicU32 = AtomicU32::new(0);

/// Sets the pool size of every pool this process opens from now on: the binaries pass their
/// `--database-pool-size` (`crate::config::ServerArgs`), which clap has checked.
pub fn set_pool_size(n: u32) {
    CHOSEN_POOL_SIZE.store(n.clamp(1, 1000), Ordering::Relaxed);
}

/// The pool size: the one [`set_pool_size`] chose, else `COSELL_DATABASE_POOL_SIZE` (1 to
/// 1,000; for services started in process, as the tests do), else [`POOL_SIZE`]. Every process
/// of every service on one PostgreSQL server takes its share of the server's
/// `max_connections`, so an operator running several replicas (or a test suite running several
/// servers at once) sets it lower. A variable that is not a number in range is ignored, with a
/// warning.
pub fn pool_size() -> u32 {
    match CHOSEN_POOL_SIZE.load(Ordering::Relaxed) {
        0 => {}
        n => return n,
    }
    match std::env::var("COSELL_DATABASE_POOL_SIZE") {
        Err(_) => POOL_SIZE,
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                tracing::warn!(value = %v, "COSELL_DATABASE_POOL_SIZE is not a number from 1 to 1,000; using {POOL_SIZE}");
                POOL_SIZE
            }
        },
    }
}

/// A pooled connection idle at least this long is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// How PostgreSQL plans a service's statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// PostgreSQL's default: a statement run often gets a generic plan, kept by the connection.
    Cached,
    /// Each execution planned for its values and the tables as they are then, and no statement
    /// kept prepared once its connection goes back to the pool: for a service whose statements
    /// are few and large (hundreds of ids at a time) and whose tables grow by thousands of rows
    /// in one go, where a plan cached while a table was small would later scan it whole.
    /// Planning costs a fraction of such a statement.
    EachExecution,
}

/// Opens a pool on `url`. SQLite files get WAL, a busy timeout and foreign keys, so that readers
/// never block the writer and a busy file waits instead of failing.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    connect_with(url, Planning::Cached).await
}

/// [`connect`], with statements planned as `planning` says.
pub async fn connect_with(url: &str, planning: Planning) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        // sqlx pings a connection on every checkout by default: one more round trip to the
        // database per statement, which on a busy service costs about as much as the statement.
        // Only a connection idle long enough to have been dropped (by the server, a proxy or a
        // firewall) is checked; one in steady use proves itself alive by its last statement.
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
    let memory = url.starts_with("sqlite:") && is_sqlite_memory(url);
    if url.starts_with("sqlite:") {
        options.map_sqlx_sqlite_opts(move |o: SqliteConnectOptions| {
            let o = o
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .create_if_missing(true);
            if memory {
                o
            } else {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
            }
        });
        if memory {
            // One connection, kept open for as long as it can be (see keep_memory_database).
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None::<Duration>)
                .max_lifetime(None::<Duration>);
        } else {
            // SQLite has one writer at a time, and a read transaction that later writes can fail
            // with SQLITE_BUSY whatever the timeout; one connection serializes them instead.
            options.max_connections(1);
        }
    } else {
        let after_use: AfterUse = match planning {
            Planning::Cached => shrink_after_use,
            Planning::EachExecution => forget_after_use,
        };
        options
            .max_connections(pool_size())
            .min_connections(1)
            .map_sqlx_postgres_pool_opts(move |o| o.after_release(after_use));
        if planning == Planning::EachExecution {
            options
                .map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_custom_plan")]));
        }
    }
    let db = Database::connect(options).await?;
    if memory {
        keep_memory_database(&db).await?;
    }
    Ok(db)
}

/// What a pool does with a PostgreSQL connection given back to it before it is reused.
type AfterUse = for<'c> fn(
    &'c mut sea_orm::sqlx::PgConnection,
    sea_orm::sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'c, Result<bool, sea_orm::sqlx::Error>>;

/// Gives back what a pooled PostgreSQL connection's buffers grew to for one large statement
/// or result (a migrated batch's insert is hundreds of KB) when the connection goes back to
/// the pool: sqlx keeps them at their largest otherwise, up to the largest message each of the
/// 32 connections ever carried. Buffers at their default size (8 KiB) are left as they are, so
/// the small statements of steady traffic pay nothing for it.
fn shrink_after_use(
    conn: &mut sea_orm::sqlx::PgConnection,
    _: sea_orm::sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sea_orm::sqlx::Error>> {
    use sea_orm::sqlx::Connection as _;
    conn.shrink_buffers();
    Box::pin(std::future::ready(Ok(true)))
}

/// [`shrink_after_use`], and the connection's prepared statements closed (here and at the
/// server), for [`Planning::EachExecution`]: they are planned anew with each run anyway, and a
/// kept multi-row statement (hundreds of rows' parameters) held over 100 KB in each connection
/// that ran it, and more in its PostgreSQL backend, for as long as the connection lived: most
/// of what the migration service still held after a migration (heaptrack). Statements stay
/// prepared while a connection is out, so that a transaction repeating one (an import's
/// batches) parses it once; not keeping any at all (`statement_cache_capacity(0)`) made a
/// 100,000-deal import a seventh slower. A connection whose statements could not be closed is
/// dropped (the hook's error), not reused.
fn forget_after_use(
    conn: &mut sea_orm::sqlx::PgConnection,
    _: sea_orm::sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sea_orm::sqlx::Error>> {
    use sea_orm::sqlx::Connection as _;
    conn.shrink_buffers();
    Box::pin(async move {
        conn.clear_cached_statements().await?;
        Ok(true)
    })
}

/// An in-memory SQLite database lives as long as a connection to it is open, and the pool
/// replaces its one connection now and then (sqlx closes a connection that a cancelled request
/// left in doubt): a second connection, outside the pool and never used, keeps the database
/// until the pool is closed or dropped.
async fn keep_memory_database(db: &DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::sqlx::ConnectOptions as _;
    let pool = db.get_sqlite_connection_pool();
    let keeper = pool
        .connect_options()
        .connect()
        .await
        .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    let closed = pool.close_event();
    tokio::spawn(async move {
        closed.await;
        drop(keeper);
    });
    Ok(())
}

/// Opens `url` and brings its schema up to date with `M`.
pub async fn connect_and_migrate<M: MigratorTrait>(url: &str) -> Result<DatabaseConnection, DbErr> {
    connect_and_migrate_with::<M>(url, Planning::Cached).await
}

/// [`connect_and_migrate`], with statements planned as `planning` says.
pub async fn connect_and_migrate_with<M: MigratorTrait>(
    url: &str,
    planning: Planning,
) -> Result<DatabaseConnection, DbErr> {
    let db = connect_with(url, planning).await?;
    M::up(&db, None).await?;
    Ok(db)
}

/// The SQLite URL of a service's file inside the data directory.
pub fn sqlite_file_url(data_dir: &std::path::Path, service: &str) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join(format!("{service}.db")).display()
    )
}

/// Refreshes PostgreSQL's statistics of `tables` after a bulk write (SQLite: nothing). Until
/// autovacuum gets there, up to minutes later, the planner goes on planning with what it saw of
/// them before, and a table that grew from a few rows to thousands is scanned whole where one
/// index lookup would do. A table another session is analyzing (ANALYZE holds its lock to the
/// end of that session's transaction) is skipped rather than waited for.
pub async fn analyze(db: &impl sea_orm::ConnectionTrait, tables: &[&str]) -> Result<(), DbErr> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres || tables.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = tables.iter().map(|t| format!("\"{t}\"")).collect();
    db.execute_unprepared(&format!("ANALYZE (SKIP_LOCKED) {}", quoted.join(", ")))
        .await?;
    Ok(())
}

/// Starts a transaction; use it instead of `begin()`. sqlx leaks an open transaction into the
/// pool when a BEGIN is dropped before the server has answered (its rollback guard goes by a
/// depth not yet counted): the connection then runs the autocommit statements of whoever
/// borrows it next inside that transaction, their writes lost when it ends, and after one
/// failure refuses them all ("current transaction is aborted"). A gRPC call whose client goes
/// away has its handler dropped at any await, so the BEGIN runs on a task of its own, out of
/// that reach; a transaction no one is left to take is rolled back when dropped.
pub async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    begin_with(db, None, None).await
}

/// [`begin`] with an isolation level and access mode.
pub async fn begin_with(
    db: &DatabaseConnection,
    isolation: Option<IsolationLevel>,
    access: Option<AccessMode>,
) -> Result<DatabaseTransaction, DbErr> {
    let db = db.clone();
    #[allow(clippy::disallowed_methods)] // the one place it is called, on a task of its own
    tokio::spawn(async move { db.begin_with_config(isolation, access).await })
        .await
        .map_err(|e| DbErr::Custom(format!("BEGIN did not finish: {e}")))?
}

/// [`begin`] for a raw sqlx PostgreSQL pool.
pub async fn begin_postgres(
    pool: &sea_orm::sqlx::PgPool,
) -> Result<sea_orm::sqlx::Transaction<'static, sea_orm::sqlx::Postgres>, sea_orm::sqlx::Error> {
    let pool = pool.clone();
    #[allow(clippy::disallowed_methods)] // the one place it is called, on a task of its own
    tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|e| sea_orm::sqlx::Error::Protocol(format!("BEGIN did not finish: {e}")))?
}

/// Runs `statements` (writes without results) in one PostgreSQL transaction, all or nothing,
/// each parsed for this execution only. sea-orm prepares every statement and keeps it in the
/// connection's cache, which suits the few shapes a service runs again and again but not bulk
/// writes, whose statements differ in their number of rows: each kept one holds its SQL text
/// and the type of each of its thousands of parameters, on each of the pool's connections.
/// After a 100,000-deal migration the deals service held 45 MiB of them, which stayed for as
/// long as the process (heaptrack, 2026-12-07).
pub async fn write_unprepared(
    db: &DatabaseConnection,
    statements: Vec<Statement>,
) -> Result<(), DbErr> {
    use sea_orm::sqlx;
    let mut tx = begin_postgres(db.get_postgres_connection_pool())
        .await
        .map_err(query_error)?;
    for s in statements {
        let values =
            sea_query_sqlx::SqlxValues(s.values.unwrap_or(sea_orm::sea_query::Values(Vec::new())));
        // A failure drops `tx`, which rolls the transaction back.
        sqlx::query_with(sqlx::AssertSqlSafe(s.sql), values)
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(query_error)?;
    }
    tx.commit().await.map_err(query_error)
}

/// A statement's failure reported by sqlx itself (on a row or connection sea-orm did not
/// handle), as sea-orm reports its own.
pub fn query_error(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(sea_orm::RuntimeErr::SqlxError(e.into()))
}

/// Whether a database error is PostgreSQL's deadlock (40P01) or serialization failure (40001):
/// the transaction was rolled back because of a concurrent one, and may be tried again.
pub fn is_deadlock(e: &DbErr) -> bool {
    let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(sqlx))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(sqlx))) = e
    else {
        return false;
    };
    sqlx.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// Whether a database error means the database cannot be reached right now (refused or broken
/// connections, a pool that cannot hand one out, a server shutting down or restarting): the
/// call may succeed when retried, so callers hear `UNAVAILABLE`, not `INTERNAL`.
pub fn is_unavailable(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as X;
    let sqlx = match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(x))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(x)) => x,
        _ => return false,
    };
    match sqlx.as_ref() {
        X::Io(_) | X::Tls(_) | X::PoolTimedOut | X::PoolClosed | X::WorkerCrashed => true,
        X::Protocol(_) => true,
        // Class 08: connection exception; 57P01-57P03: the server is shutting down or
        // starting; 53300: too many connections.
        X::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
        _ => false,
    }
}

/// Whether a database error is a unique-index violation (PostgreSQL or SQLite): how a store
/// learns that a concurrent writer inserted the same key first.
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnectionTrait;

    #[tokio::test]
    async fn an_in_memory_database_outlives_its_pools_connection() {
        let db = connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7)")
            .await
            .unwrap();
        // What sqlx does to a connection a cancelled request left in doubt.
        let pool = db.get_sqlite_connection_pool();
        pool.acquire().await.unwrap().close().await.unwrap();
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT x FROM t",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i32>("", "x").unwrap(), 7);

        // Two in-memory databases are two databases.
        let other = connect("sqlite::memory:").await.unwrap();
        let missing = other.execute_unprepared("SELECT x FROM t").await;
        assert!(missing.is_err(), "{missing:?}");
    }
}
