//! The pool's connections to PostgreSQL: a large statement is sent at once, and bulk writes
//! leave nothing prepared behind, nor does a pool that plans each execution.
//!
//! Without TCP_NODELAY, the last part of a statement bigger than a TCP segment waits for the
//! server to acknowledge the rest, and the server delays that acknowledgement by Linux's minimum
//! of 40 ms: a PSC import's batch of 500 deals then took 40 ms more than its work (80 ms more
//! here, for 5 ms of it), and an import of 100,000 deals three times as long (sqlx 0.9.0 stopped
//! setting the option; 0.9.1 sets it again).

use std::time::{Duration, Instant};

use cosell_testkit::{DATABASE_URL_VAR, TestDb};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// A statement of 400 KB, several segments even on loopback (64 KiB), answered by one number.
fn large_statement() -> Statement {
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT length($1::text) AS n",
        ["x".repeat(400_000).into()],
    )
}

#[tokio::test]
async fn a_large_statement_is_not_held_back_for_the_servers_delayed_ack() {
    // SQLite has no connection to hold back; CI runs this on PostgreSQL.
    let Ok(admin) = std::env::var(DATABASE_URL_VAR) else {
        return;
    };
    let db = TestDb::postgres(&admin).await.unwrap();
    let pool = cosell_platform::db::connect(&db.url).await.unwrap();
    // A new connection acknowledges its first segments at once (Linux's quick-ack mode), so
    // the delay shows only once the connection has carried some traffic: twenty statements
    // first, then twenty timed. With sqlx 0.9.0, 11 of 20 took 44 ms or more here (the others
    // 2-3 ms); with 0.9.1 none took more than 3 ms.
    let mut times = Vec::new();
    for i in 0..40 {
        let started = Instant::now();
        let row = pool
            .query_one_raw(large_statement())
            .await
            .unwrap()
            .unwrap();
        if i >= 20 {
            times.push(started.elapsed());
        }
        assert_eq!(row.try_get::<i32>("", "n").unwrap(), 400_000);
    }
    // A busy machine may make a few slow; the delay makes most of them slow.
    let delayed = times
        .iter()
        .filter(|t| **t >= Duration::from_millis(40))
        .count();
    assert!(
        delayed <= 4,
        "{delayed} of 20 statements of 400 KB took 40 ms or more ({times:?}): the connection \
         waits for delayed acknowledgements (TCP_NODELAY off?)"
    );
}

fn insert(rows: std::ops::Range<i32>) -> Statement {
    let placeholders: Vec<String> = (1..=rows.len()).map(|i| format!("(${i})")).collect();
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("INSERT INTO t VALUES {}", placeholders.join(", ")),
        rows.map(sea_orm::Value::from),
    )
}

#[tokio::test]
async fn bulk_writes_are_all_or_nothing_and_leave_nothing_prepared() {
    let Ok(admin) = std::env::var(DATABASE_URL_VAR) else {
        return;
    };
    let db = TestDb::postgres(&admin).await.unwrap();
    // One connection, so that every statement here runs on the one whose statements are read.
    let one = sea_orm::sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let pool = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(one);
    pool.execute_unprepared("CREATE TABLE t (x int PRIMARY KEY)")
        .await
        .unwrap();
    // Through sea-orm, a write is kept prepared on it...
    pool.execute_raw(insert(0..3)).await.unwrap();
    assert_eq!(session(&pool).await.1, 1);
    // ...a bulk write is not, however many shapes it has.
    cosell_platform::db::write_unprepared(&pool, vec![insert(3..5), insert(5..10)])
        .await
        .unwrap();
    assert_eq!(session(&pool).await.1, 1);
    // A statement that fails takes the earlier ones with it.
    let e = cosell_platform::db::write_unprepared(&pool, vec![insert(10..12), insert(9..11)])
        .await
        .unwrap_err();
    assert!(cosell_platform::db::is_unique_violation(&e), "{e}");
    let n: i64 = pool
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM t",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    assert_eq!(n, 10, "0..10 written, 10..12 rolled back");
}

/// The backend serving this read, and the named statements inserting into `t` it keeps
/// prepared.
async fn session(db: &impl ConnectionTrait) -> (i32, i64) {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_backend_pid() AS pid, (SELECT count(*) FROM pg_prepared_statements \
             WHERE statement LIKE 'INSERT INTO t %') AS n",
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get("", "pid").unwrap(),
        row.try_get("", "n").unwrap(),
    )
}

#[tokio::test]
async fn a_pool_planning_each_execution_keeps_nothing_prepared_once_a_connection_is_back() {
    let Ok(admin) = std::env::var(DATABASE_URL_VAR) else {
        return;
    };
    let db = TestDb::postgres(&admin).await.unwrap();
    // One connection per pool, so that the read after the transaction runs on its connection
    // (this binary's other tests use their pools one statement at a time).
    cosell_platform::db::set_pool_size(1);
    for (planning, kept_after) in [
        (cosell_platform::db::Planning::Cached, 1),
        (cosell_platform::db::Planning::EachExecution, 0),
    ] {
        let pool = cosell_platform::db::connect_with(&db.url, planning)
            .await
            .unwrap();
        pool.execute_unprepared("DROP TABLE IF EXISTS t; CREATE TABLE t (x int PRIMARY KEY)")
            .await
            .unwrap();
        // While a transaction holds the connection, a statement it repeats (an import's
        // batches) is prepared once...
        let txn = cosell_platform::db::begin(&pool).await.unwrap();
        txn.execute_raw(insert(0..3)).await.unwrap();
        txn.execute_raw(insert(3..6)).await.unwrap();
        let (backend, kept) = session(&txn).await;
        assert_eq!(kept, 1, "{planning:?}: one shape, prepared once");
        txn.commit().await.unwrap();
        // ...and once the connection is back in the pool, a pool planning each execution has
        // closed it.
        let (after, kept) = session(&pool).await;
        assert_eq!(after, backend, "{planning:?}: the same connection");
        assert_eq!(
            kept, kept_after,
            "{planning:?}: kept after the connection came back"
        );
    }
}
