//! The pool's connections to PostgreSQL send a large statement at once.
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
