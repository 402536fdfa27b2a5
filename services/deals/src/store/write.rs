//! Writes that commit together in one round trip. A new referral is three inserts (the
//! referrals, the change feed's events, the insights' counters); in a transaction that is five
//! round trips to the database (with BEGIN and COMMIT), and creates spent more time waiting on
//! them than computing. On PostgreSQL the inserts go as one statement instead, the first ones
//! as data-modifying `WITH` parts of the last: a single statement commits entirely or not at
//! all, as the transaction did, and it runs on the lane's connections, which spare it the
//! pool's release round trip. SQLite, which has no such statements, keeps the transaction,
//! and so do bulk writes ([`in_one_transaction`]).

use cosell_platform::db::lane::Lane;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::Result;

/// Runs `statements` (inserts without RETURNING) so that all of them or none are written;
/// `repeatable` as [`Lane::execute`] says.
pub(super) async fn all_or_nothing(
    db: &DatabaseConnection,
    lane: &Lane,
    statements: Vec<Statement>,
    repeatable: bool,
) -> Result<()> {
    // PostgreSQL takes at most 65,535 values per statement.
    let values: usize = statements
        .iter()
        .map(|s| s.values.as_ref().map_or(0, |v| v.0.len()))
        .sum();
    if db.get_database_backend() == DbBackend::Postgres && values <= 65_535 {
        lane.execute(&one_statement(statements), repeatable).await?;
        return Ok(());
    }
    in_one_transaction(db, statements).await
}

/// Runs `statements` (inserts without RETURNING) in one transaction. On PostgreSQL none of them
/// is kept prepared: bulk writes (a migrated batch's) differ in their numbers of rows, and each
/// one kept would hold its thousands of parameters' types on every connection of the pool
/// (`cosell_platform::db::write_unprepared`).
pub(super) async fn in_one_transaction(
    db: &DatabaseConnection,
    statements: Vec<Statement>,
) -> Result<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        cosell_platform::db::write_unprepared(db, statements).await?;
        return Ok(());
    }
    let txn = cosell_platform::db::begin(db).await?;
    for s in statements {
        if let Err(e) = txn.execute_raw(s).await {
            txn.rollback().await?;
            return Err(e.into());
        }
    }
    txn.commit().await?;
    Ok(())
}

/// `WITH w0 AS (s0), w1 AS (s1) sN` with the placeholders of each part renumbered after the
/// previous parts' values.
fn one_statement(statements: Vec<Statement>) -> Statement {
    let mut parts = Vec::new();
    let mut values = Vec::new();
    for s in statements {
        parts.push(shift_placeholders(&s.sql, values.len()));
        values.extend(s.values.map(|v| v.0).unwrap_or_default());
    }
    let last = parts.pop().unwrap_or_default();
    let sql = if parts.is_empty() {
        last
    } else {
        let with: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| format!("w{i} AS ({p})"))
            .collect();
        format!("WITH {} {last}", with.join(", "))
    };
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// `sql` with each `$n` placeholder (outside quoted text) made `$(n + by)`.
fn shift_placeholders(sql: &str, by: usize) -> String {
    if by == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    n.push(d);
                }
                let n: usize = n.parse().expect("digits");
                out.push_str(&format!("${}", n + by));
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_move_past_earlier_values_but_not_inside_quotes() {
        assert_eq!(
            shift_placeholders(r#"INSERT INTO "t" ("a$1") VALUES ($1, $2, '$3')"#, 10),
            r#"INSERT INTO "t" ("a$1") VALUES ($11, $12, '$3')"#
        );
        assert_eq!(shift_placeholders("VALUES ($1)", 0), "VALUES ($1)");
    }

    #[test]
    fn inserts_become_one_statement_with_every_value_in_order() {
        let s = |sql: &str, v: Vec<sea_orm::Value>| {
            Statement::from_sql_and_values(DbBackend::Postgres, sql, v)
        };
        let one = one_statement(vec![
            s("INSERT INTO a VALUES ($1, $2)", vec![1.into(), 2.into()]),
            s("INSERT INTO b VALUES ($1)", vec![3.into()]),
            s("INSERT INTO c VALUES ($1)", vec![4.into()]),
        ]);
        assert_eq!(
            one.sql,
            "WITH w0 AS (INSERT INTO a VALUES ($1, $2)), w1 AS (INSERT INTO b VALUES ($3)) \
             INSERT INTO c VALUES ($4)"
        );
        assert_eq!(
            one.values.unwrap().0,
            vec![1.into(), 2.into(), 3.into(), 4.into()]
        );
    }
}
