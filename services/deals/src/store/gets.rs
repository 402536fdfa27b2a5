//! GetReferral's read: a referral and whether the caller marked it a favorite, in one
//! statement. On PostgreSQL the gets that wait for a read connection at the same moment share
//! one statement ([`cosell_platform::db::batched`]): a statement's own overhead, not its lookup
//! by key, is most of what a get costs the database.

use std::sync::Arc;

use cosell_platform::db::batched::{self, Batched};
use cosell_platform::db::lane::Lane;
use sea_orm::sea_query::{Alias, Expr};
use sea_orm::{DatabaseConnection, DbBackend, EntityName, EntityTrait, QuerySelect};
use sea_orm::{QueryTrait, Statement};
use uuid::Uuid;

use super::entities::referral;
use super::{Result, Store, favorite_of, with_favorite};
use crate::domain::Referral;

/// The statements of [`Store::get_for`], built once: building one per call cost about as much
/// CPU as decoding the row it returns.
pub(super) struct Gets {
    /// One referral's SQL: binds the principal, then the id.
    one: String,
    /// On PostgreSQL: the gets that come together.
    batched: Option<Batched<(Uuid, String)>>,
}

impl Gets {
    pub(super) fn new(db: &DatabaseConnection, lane: &Arc<Lane>) -> Self {
        let backend = db.get_database_backend();
        let batched = lane.is_separate().then(|| {
            let shapes: Vec<Arc<str>> = (1..=batched::MOST).map(|n| many_sql(n).into()).collect();
            Batched::new(lane.clone(), move |keys: &[(Uuid, String)]| {
                let values = keys
                    .iter()
                    .flat_map(|(id, principal)| [id.to_string().into(), principal.as_str().into()]);
                Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    &*shapes[keys.len() - 1],
                    values.collect::<Vec<sea_orm::Value>>(),
                )
            })
        });
        Self {
            one: one_statement(backend, "", "").sql,
            batched,
        }
    }
}

impl Store {
    /// A referral and whether it is a favorite of `principal` (the common read: GetReferral).
    pub async fn get_for(&self, id: Uuid, principal: &str) -> Result<Option<(Referral, bool)>> {
        let rows = match &self.gets.batched {
            Some(batched) => batched.get((id, principal.to_owned())).await?,
            None => {
                let statement = Statement::from_sql_and_values(
                    self.db.get_database_backend(),
                    &self.gets.one,
                    [principal.into(), id.to_string().into()],
                );
                self.lane.all(&statement).await?
            }
        };
        rows.first().map(with_favorite).transpose()
    }

    /// Gets answered by shared statements so far and those statements (`None` on SQLite, where
    /// each get is a statement of its own).
    pub fn gets_shared(&self) -> Option<(u64, u64)> {
        self.gets.batched.as_ref().map(Batched::counts)
    }
}

/// One referral with its `favorite` column; binds `principal`, then `id`.
fn one_statement(backend: DbBackend, principal: &str, id: &str) -> Statement {
    referral::Entity::find_by_id(id.to_owned())
        .column_as(favorite_of(principal), "favorite")
        .build(backend)
}

/// The referrals of `n` (id, principal) pairs, bound in that order, each row with its
/// `favorite` column for its pair's principal and then the pair's position (1-based) in
/// [`batched::POSITION`]. PostgreSQL only.
fn many_sql(n: usize) -> String {
    let select = referral::Entity::find()
        .column_as(
            favorite_of(Expr::col((Alias::new("q"), Alias::new("principal")))),
            "favorite",
        )
        .column_as(
            Expr::col((Alias::new("q"), Alias::new("position"))),
            batched::POSITION,
        )
        .build(DbBackend::Postgres)
        .sql;
    let from = format!(r#" FROM "{}""#, referral::Entity.table_name());
    let list = select
        .strip_suffix(&from)
        .expect("a select of every referral ends with its FROM");
    let pairs: Vec<String> = (0..n)
        .map(|i| format!("(${}, ${}, {})", 2 * i + 1, 2 * i + 2, i + 1))
        .collect();
    format!(
        r#"{list} FROM (VALUES {}) AS "q" ("id", "principal", "position") JOIN "referrals" ON "referrals"."id" = "q"."id""#,
        pairs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_binds_the_principal_then_the_id() {
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            let s = one_statement(backend, "users/p", "r-1");
            assert_eq!(
                s.values.map(|v| v.0),
                Some(vec!["users/p".into(), "r-1".into()]),
                "{backend:?}: {}",
                s.sql
            );
        }
    }

    #[test]
    fn many_joins_each_pair_with_its_position() {
        let sql = many_sql(2);
        assert!(
            sql.ends_with(
                r#"FROM (VALUES ($1, $2, 1), ($3, $4, 2)) AS "q" ("id", "principal", "position") JOIN "referrals" ON "referrals"."id" = "q"."id""#
            ),
            "{sql}"
        );
        assert!(
            sql.contains(r#""favorites"."principal" = "q"."principal""#)
                || sql.contains(r#""principal" = "q"."principal""#),
            "{sql}"
        );
        assert!(
            sql.contains(r#""q"."position" AS "batch_position""#),
            "{sql}"
        );
    }
}
