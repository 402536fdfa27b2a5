//! `cosell_platform::db::begin` on PostgreSQL (here, where a fresh database per test is at
//! hand): a transaction cut short while it starts leaves no connection of the pool inside it.
//! Without `COSELL_TEST_DATABASE_URL`, checks nothing (SQLite has no such pool state).

use std::time::Duration;

use cosell_platform::db::{begin, connect};
use cosell_testkit::{DATABASE_URL_VAR, TestDb, cut_short};
use sea_orm::ConnectionTrait;

/// BEGINs cut short at every point (as when a client goes away), each followed by a write of
/// its own: none of the writes goes to a connection left inside a transaction, where it would
/// be lost when that transaction ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_begin_leaves_no_transaction_open_in_the_pool() {
    let Ok(admin_url) = std::env::var(DATABASE_URL_VAR) else {
        return;
    };
    let test_db = TestDb::postgres(&admin_url).await.unwrap();
    let db = connect(&test_db.url).await.unwrap();
    db.execute_unprepared("CREATE TABLE t (x INTEGER)")
        .await
        .unwrap();
    for i in 0..400u64 {
        // BEGIN sent, then dropped 0 to 400 us later: before, at or after the server's answer.
        cut_short(begin(&db), Duration::from_micros(i));
        // Then a write of its own, to be committed at once whatever connection it gets.
        db.execute_unprepared(&format!("INSERT INTO t VALUES ({i})"))
            .await
            .unwrap();
    }
    db.close().await.unwrap();
    let other = connect(&test_db.url).await.unwrap();
    let row = other
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM t",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.try_get::<i64>("", "n").unwrap(),
        400,
        "every write is there"
    );
    other.close().await.unwrap();
}
