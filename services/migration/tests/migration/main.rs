//! Integration tests of the migration service over fresh databases (PostgreSQL when
//! `COSELL_TEST_DATABASE_URL` is set, else in-memory SQLite).

mod api;
mod crash;
mod faults;
mod harness;
mod import;
mod limits;
mod locks;
mod replicas;
mod report;
mod runs;
mod sellers;
mod story;
mod traces;
mod uploads;
mod wizard;

/// The number `sql` (a `SELECT COUNT(*) AS n ...`) counts on `db`.
async fn count(db: &impl sea_orm::ConnectionTrait, sql: &str) -> i64 {
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        sql,
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get::<i64>("", "n")
    .unwrap()
}
