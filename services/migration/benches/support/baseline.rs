//! The benchmark's baseline: what PostgreSQL alone takes for the export's deal rows.

use std::path::Path;
use std::time::{Duration, Instant};

use cosell_testkit::TestDb;
use sea_orm::ConnectionTrait;

/// The same deals written straight into a PostgreSQL table, 500 rows per INSERT: what the
/// database alone takes for these rows.
pub async fn baseline(admin: &str, export: &Path) -> anyhow::Result<Duration> {
    let db = TestDb::postgres(admin).await?;
    let conn = cosell_platform::db::connect(&db.url).await?;
    conn.execute_unprepared(
        "CREATE TABLE deals (id text PRIMARY KEY, organization text NOT NULL, record_json text NOT NULL)",
    )
    .await?;
    use std::io::BufRead;
    let file = std::io::BufReader::new(std::fs::File::open(export.join("deals.csv"))?);
    let mut lines = file.lines().skip(1);
    let started = Instant::now();
    loop {
        let chunk: Vec<String> = lines.by_ref().take(500).collect::<Result<_, _>>()?;
        if chunk.is_empty() {
            break;
        }
        let mut values = Vec::with_capacity(chunk.len() * 3);
        let mut placeholders = Vec::with_capacity(chunk.len());
        for (i, line) in chunk.iter().enumerate() {
            let id = line.split(',').next().unwrap_or_default();
            placeholders.push(format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3));
            values.push(sea_orm::Value::from(id.to_owned()));
            values.push(sea_orm::Value::from("contoso".to_owned()));
            values.push(sea_orm::Value::from(serde_json::to_string(
                &line.split(',').collect::<Vec<_>>(),
            )?));
        }
        conn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            format!("INSERT INTO deals VALUES {}", placeholders.join(", ")),
            values,
        ))
        .await?;
    }
    Ok(started.elapsed())
}
