//! `cosell_platform::db::lane::Lane` on PostgreSQL: statements on connections outside the pool
//! give each read its own answer whatever happened to the reads before it (cut short, failed,
//! their connection killed by the server), and each write is committed once or reported.
//! Without `COSELL_TEST_DATABASE_URL`, checks only the SQLite path.

use std::time::Duration;

use cosell_platform::db::connect;
use cosell_platform::db::lane::{Lane, lane_connections};
use cosell_testkit::{DATABASE_URL_VAR, TestDb, cut_short};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// A table of 1,000 rows whose `v` is `k * 10`.
async fn table(db: &DatabaseConnection) {
    db.execute_unprepared("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        .await
        .unwrap();
    let values: Vec<String> = (0..1000).map(|k| format!("({k}, {})", k * 10)).collect();
    db.execute_unprepared(&format!("INSERT INTO t VALUES {}", values.join(", ")))
        .await
        .unwrap();
}

fn by_key(backend: DbBackend, k: i32) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => "SELECT v FROM t WHERE k = $1",
        _ => "SELECT v FROM t WHERE k = ?",
    };
    Statement::from_sql_and_values(backend, sql, [k.into()])
}

async fn value_of(lane: &Lane, backend: DbBackend, k: i32) -> Option<i32> {
    lane.one(&by_key(backend, k))
        .await
        .unwrap()
        .map(|row| row.try_get::<i32>("", "v").unwrap())
}

async fn postgres() -> Option<(TestDb, DatabaseConnection)> {
    let admin_url = std::env::var(DATABASE_URL_VAR).ok()?;
    let test_db = TestDb::postgres(&admin_url).await.unwrap();
    let db = connect(&test_db.url).await.unwrap();
    table(&db).await;
    Some((test_db, db))
}

/// Reads cut short at every point of their round trip (as when a client goes away), each
/// followed by a whole read of another key: every whole read gets its own row, never what a
/// connection still held of a read before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_read_leaves_nothing_for_the_next() {
    let Some((_test_db, db)) = postgres().await else {
        return;
    };
    let lane = Lane::new(&db);
    for i in 0..400i32 {
        let cut = by_key(DbBackend::Postgres, i);
        cut_short(lane.all(&cut), Duration::from_micros(i as u64));
        let k = 999 - i;
        assert_eq!(
            value_of(&lane, DbBackend::Postgres, k).await,
            Some(k * 10),
            "read {i}"
        );
    }
    assert!(lane.idle_connections() <= lane_connections());
}

/// Reads at once from more tasks than the lane has connections: each gets its own answer, and
/// the lane keeps no more connections than its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_each_get_their_own_row() {
    let Some((_test_db, db)) = postgres().await else {
        return;
    };
    let lane = std::sync::Arc::new(Lane::new(&db));
    let tasks: Vec<_> = (0..64i32)
        .map(|t| {
            let lane = lane.clone();
            tokio::spawn(async move {
                for j in 0..50 {
                    let k = (t * 50 + j) % 1000;
                    assert_eq!(value_of(&lane, DbBackend::Postgres, k).await, Some(k * 10));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let idle = lane.idle_connections();
    assert!(
        (1..=lane_connections()).contains(&idle),
        "{idle} idle connections"
    );
}

/// The server ends the lane's idle connections (a restart, an administrator, a proxy's
/// timeout): the next read still answers, on a new connection. A failing statement is reported
/// as the database's error, and the read after it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_killed_connections_and_failed_statements() {
    let Some((test_db, db)) = postgres().await else {
        return;
    };
    let lane = Lane::new(&db);
    assert_eq!(value_of(&lane, DbBackend::Postgres, 7).await, Some(70));
    assert_eq!(lane.idle_connections(), 1);
    kill_other_sessions(&test_db).await;
    assert_eq!(value_of(&lane, DbBackend::Postgres, 8).await, Some(80));

    let failing = Statement::from_string(DbBackend::Postgres, "SELECT 1 / (k - k) AS v FROM t");
    let e = lane.all(&failing).await.unwrap_err();
    assert!(e.to_string().contains("division by zero"), "{e}");
    assert_eq!(value_of(&lane, DbBackend::Postgres, 9).await, Some(90));
    assert_eq!(value_of(&lane, DbBackend::Postgres, 1000).await, None);
}

fn insert(k: i32) -> Statement {
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO t (k, v) VALUES ($1, $2)",
        [k.into(), (k * 10).into()],
    )
}

async fn kill_other_sessions(test_db: &TestDb) {
    let killer = connect(&test_db.url).await.unwrap();
    killer
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A write on the lane is committed when it answers (the pool sees it at once); one the
/// database refuses is its error (a unique violation, as the deals service's idempotency
/// keys need to see it) and leaves nothing behind for the next statement. When the server
/// ended the idle connection, a repeatable write goes again on a new one, and one that is not
/// is reported as the lost connection, never silently run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_commit_once_or_fail_with_their_error() {
    let Some((test_db, db)) = postgres().await else {
        return;
    };
    let lane = Lane::new(&db);
    lane.execute(&insert(1000), false).await.unwrap();
    let seen = db
        .query_one_raw(by_key(DbBackend::Postgres, 1000))
        .await
        .unwrap();
    assert_eq!(seen.unwrap().try_get::<i32>("", "v").unwrap(), 10_000);

    let e = lane.execute(&insert(1000), true).await.unwrap_err();
    assert!(cosell_platform::db::is_unique_violation(&e), "{e}");
    assert_eq!(
        value_of(&lane, DbBackend::Postgres, 1000).await,
        Some(10_000)
    );

    kill_other_sessions(&test_db).await;
    lane.execute(&insert(1001), true).await.unwrap();
    assert_eq!(
        value_of(&lane, DbBackend::Postgres, 1001).await,
        Some(10_010)
    );

    kill_other_sessions(&test_db).await;
    let e = lane.execute(&insert(1002), false).await.unwrap_err();
    assert!(cosell_platform::db::is_unavailable(&e), "{e}");
    assert_eq!(value_of(&lane, DbBackend::Postgres, 1002).await, None);
    lane.execute(&insert(1002), false).await.unwrap();
    assert_eq!(
        value_of(&lane, DbBackend::Postgres, 1002).await,
        Some(10_020)
    );
}

/// On SQLite the lane reads through the service's own pool.
#[tokio::test]
async fn on_sqlite_reads_go_through_the_pool() {
    let db = connect("sqlite::memory:").await.unwrap();
    table(&db).await;
    let lane = Lane::new(&db);
    assert_eq!(value_of(&lane, DbBackend::Sqlite, 42).await, Some(420));
    assert_eq!(value_of(&lane, DbBackend::Sqlite, 1000).await, None);
    assert_eq!(lane.idle_connections(), 0);
}

/// The lane's statements are planned once per connection (generic plans), also beside a pool
/// told to plan every execution: after its first execution a statement is not planned again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lane_statements_are_planned_once() {
    let Some((test_db, _db)) = postgres().await else {
        return;
    };
    let db = cosell_platform::db::connect_with(
        &test_db.url,
        cosell_platform::db::Planning::EachExecution,
    )
    .await
    .unwrap();
    let lane = Lane::new(&db);
    let setting = Statement::from_string(
        DbBackend::Postgres,
        "SELECT current_setting('plan_cache_mode') AS v",
    );
    let row = lane.one(&setting).await.unwrap().unwrap();
    assert_eq!(
        row.try_get::<String>("", "v").unwrap(),
        "force_generic_plan"
    );
    // The pool itself still plans every execution.
    let row = db.query_one_raw(setting.clone()).await.unwrap().unwrap();
    assert_eq!(row.try_get::<String>("", "v").unwrap(), "force_custom_plan");
    for k in 0..10 {
        assert_eq!(value_of(&lane, DbBackend::Postgres, k).await, Some(k * 10));
    }
    // Every read above ran on the lane's one connection, as the one prepared statement whose
    // plans PostgreSQL counts for its session.
    let plans = Statement::from_string(
        DbBackend::Postgres,
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE statement = 'SELECT v FROM t WHERE k = $1'",
    );
    let row = lane.one(&plans).await.unwrap().unwrap();
    assert_eq!(row.try_get::<i64>("", "custom_plans").unwrap(), 0);
    assert_eq!(row.try_get::<i64>("", "generic_plans").unwrap(), 10);
}
