//! Reads by key that share statements (`cosell_platform::db::batched`), on PostgreSQL: many at
//! once, each caller gets its own rows, and fewer statements run than reads; on SQLite each
//! runs alone.

use std::sync::Arc;

use cosell_platform::db::batched::{Batched, POSITION};
use cosell_platform::db::lane::Lane;
use cosell_testkit::{DATABASE_URL_VAR, TestDb};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// The rows of `keys`: a key has as many rows as its number's last digit (0 to 9).
fn statement(keys: &[String]) -> Statement {
    statement_after(keys, 0.0)
}

/// [`statement`], answered after `seconds`.
fn statement_after(keys: &[String], seconds: f64) -> Statement {
    let pairs: Vec<String> = (0..keys.len())
        .map(|i| format!("(${}, {})", i + 1, i + 1))
        .collect();
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "SELECT t.k, t.n, q.p AS {POSITION} FROM (SELECT pg_sleep({seconds})) AS s, \
             (VALUES {}) AS q (k, p) JOIN t ON t.k = q.k ORDER BY t.n",
            pairs.join(", ")
        ),
        keys.iter()
            .map(|k| k.as_str().into())
            .collect::<Vec<sea_orm::Value>>(),
    )
}

/// A lane on a new PostgreSQL database holding table `t` as `rows` fills it (an INSERT's
/// SELECT or VALUES); `None` without PostgreSQL (SQLite has no lane; CI runs these on
/// PostgreSQL). The database lives as long as the returned guard.
async fn lane_over(rows: &str) -> Option<(TestDb, Arc<Lane>)> {
    let admin = std::env::var(DATABASE_URL_VAR).ok()?;
    let db = TestDb::postgres(&admin).await.unwrap();
    let pool = cosell_platform::db::connect(&db.url).await.unwrap();
    pool.execute_unprepared(&format!(
        "CREATE TABLE t (k text NOT NULL, n int NOT NULL); INSERT INTO t {rows}"
    ))
    .await
    .unwrap();
    Some((db, Arc::new(Lane::new(&pool))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_share_statements_and_each_gets_its_own_rows() {
    let Some((_db, lane)) = lane_over(
        "SELECT 'k' || i, j FROM generate_series(0, 199) i, generate_series(1, i % 10) j",
    )
    .await
    else {
        return;
    };
    let batched = Arc::new(Batched::new(lane, statement));
    let reads = 400;
    let tasks: Vec<_> = (0..reads)
        .map(|i| {
            let batched = batched.clone();
            tokio::spawn(async move {
                // Keys 200..: none of their rows exist.
                let key = i % 250;
                let rows = batched.get(format!("k{key}")).await.unwrap();
                let got: Vec<(String, i32)> = rows
                    .iter()
                    .map(|r| (r.try_get("", "k").unwrap(), r.try_get("", "n").unwrap()))
                    .collect();
                let want: Vec<(String, i32)> = if key < 200 {
                    (1..=key % 10).map(|n| (format!("k{key}"), n)).collect()
                } else {
                    Vec::new()
                };
                assert_eq!(got, want, "key k{key}");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (shared, statements) = batched.counts();
    assert_eq!(
        shared, reads as u64,
        "every read was answered by a statement of the lane"
    );
    assert!(
        statements < shared / 2,
        "{shared} reads took {statements} statements: 400 at once should share"
    );
}

#[tokio::test]
async fn a_read_alone_goes_at_once() {
    let Some((_db, lane)) = lane_over("VALUES ('a', 1)").await else {
        return;
    };
    let batched = Batched::new(lane, statement);
    for _ in 0..3 {
        assert_eq!(batched.get("a".to_string()).await.unwrap().len(), 1);
    }
    assert_eq!(
        batched.counts(),
        (3, 3),
        "one read at a time: one statement each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_taken_by_another_turn_waits_for_its_answer() {
    let Some((_db, lane)) = lane_over("VALUES ('a', 1)").await else {
        return;
    };
    // Statements that take 100 ms: the reads a turn took wait that long while connections are
    // free. Each may find its read taken once; taking turns again and again is a busy loop.
    let batched = Arc::new(Batched::new(lane, |keys: &[String]| {
        statement_after(keys, 0.1)
    }));
    let reads = 48;
    for _ in 0..3 {
        let tasks: Vec<_> = (0..reads / 3)
            .map(|_| {
                let batched = batched.clone();
                tokio::spawn(async move { batched.get("a".to_string()).await.unwrap().len() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
    }
    assert!(
        batched.idle_turns() <= reads,
        "{} turns found nothing to run for {reads} reads",
        batched.idle_turns()
    );
}

/// On SQLite (no lane of its own) every read runs alone, as one statement for its one key on
/// the service's pool, and each still gets its own rows when many arrive at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_each_read_runs_alone_and_gets_its_own_rows() {
    let db = TestDb::sqlite();
    let pool = cosell_platform::db::connect(&db.url).await.unwrap();
    pool.execute_unprepared(
        "CREATE TABLE t (k text NOT NULL, n int NOT NULL); \
         INSERT INTO t VALUES ('a', 1), ('b', 1), ('b', 2), ('c', 1), ('c', 2), ('c', 3)",
    )
    .await
    .unwrap();
    let lane = Arc::new(Lane::new(&pool));
    assert!(
        !lane.is_separate(),
        "SQLite reads run on the service's pool"
    );
    let batched = Arc::new(Batched::new(lane, |keys: &[String]| {
        let pairs: Vec<String> = (1..=keys.len()).map(|p| format!("(?, {p})")).collect();
        Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!(
                "WITH q (k, p) AS (VALUES {}) SELECT t.k, t.n, q.p AS {POSITION} \
                 FROM q JOIN t ON t.k = q.k ORDER BY t.n",
                pairs.join(", ")
            ),
            keys.iter()
                .map(|k| k.as_str().into())
                .collect::<Vec<sea_orm::Value>>(),
        )
    }));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let batched = batched.clone();
            tokio::spawn(async move {
                // Keys a, b, c have 1, 2, 3 rows; d has none.
                let (key, count) = [("a", 1), ("b", 2), ("c", 3), ("d", 0)][i % 4];
                let rows = batched.get(key.to_string()).await.unwrap();
                let got: Vec<(String, i32, i32)> = rows
                    .iter()
                    .map(|r| {
                        (
                            r.try_get("", "k").unwrap(),
                            r.try_get("", "n").unwrap(),
                            r.try_get("", POSITION).unwrap(),
                        )
                    })
                    .collect();
                let want: Vec<(String, i32, i32)> =
                    (1..=count).map(|n| (key.to_string(), n, 1)).collect();
                assert_eq!(got, want, "key {key}");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(batched.counts(), (0, 0), "no statement answered two reads");
}
