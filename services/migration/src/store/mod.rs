//! The migration service's database: the imported PSC snapshot of each organization (accounts,
//! users, deals with their products and team), the history of imports, user migration
//! outcomes, deal migration runs and results.
//!
//! - [`import`]: writing a streamed export in one transaction, a batch at a time: a failure
//!   leaves the previous snapshot as it was. Rows are matched by id; a changed one is updated,
//!   a new one added, and a row absent from a later export is kept (PSC-EXPORT.md, "Re-import").
//! - [`runs`]: deal migration runs, the leased work of their workers, and the results.
//! - [`locks`]: one import at a time per organization, across replicas.
//! - [`entities`], [`migration`]: the tables and their schema migrations.
//!
//! Reads that may span a whole snapshot page by id or are counted by the database, so that
//! memory stays flat however many deals an organization has.

pub mod entities;
mod import;
mod locks;
pub mod migration;
mod runs;

pub use runs::StartRefused;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::eligibility::Facts;
use crate::psc::Issue;
use crate::psc::files::{Account, Deal, DealProduct, TeamMember, User};
use entities::{account, deal, import as import_row, part, user, user_migration};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("stored row {0} is corrupt: {1}")]
    Corrupt(String, String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A deal of the snapshot with what belongs to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDeal {
    pub deal: Deal,
    pub products: Vec<DealProduct>,
    pub team: Vec<TeamMember>,
}

/// What one import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    pub id: String,
    pub accounts: u64,
    pub users: u64,
    pub deals_added: u64,
    pub deals_updated: u64,
    pub deals_unchanged: u64,
    pub products: u64,
    pub team_members: u64,
    /// The first errors of each file (see [`crate::psc::ErrorList`])...
    pub errors: Vec<Issue>,
    /// ...and per file how many more there were (imports before the cap have none).
    #[serde(default)]
    pub unlisted_errors: std::collections::BTreeMap<String, u64>,
    pub warnings: Vec<Issue>,
}

/// How many deals of the snapshot share these facts.
#[derive(Debug, Clone, PartialEq)]
pub struct FactCount {
    pub account_id: String,
    pub facts: Facts,
    pub migrated: bool,
    pub deals: i64,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// Where this replica's next lease looks: which organization's turn it is, and after which
    /// deal in each (see `runs`).
    lease_turns: std::sync::Arc<std::sync::Mutex<runs::LeaseTurns>>,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// An enum as its column value (its serde name, e.g. `Open`).
fn label<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A column value back as its enum.
fn unlabel<T: serde::de::DeserializeOwned>(row: &str, v: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
        .map_err(|e| StoreError::Corrupt(row.to_owned(), e.to_string()))
}

/// SQL: whether the deal row of `psc_deals` has migrated.
const MIGRATED: &str = "EXISTS (SELECT 1 FROM deal_results r WHERE r.organization = psc_deals.organization \
     AND r.deal_id = psc_deals.deal_id AND r.state = 'MIGRATED')";

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            lease_turns: Default::default(),
        }
    }

    /// The organization's PSC accounts with their MPN corrections, by account id.
    pub async fn accounts(&self, organization: Uuid) -> Result<Vec<(Account, Option<String>)>> {
        Ok(account::Entity::find()
            .filter(account::Column::Organization.eq(organization.to_string()))
            .order_by_asc(account::Column::AccountId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                (
                    Account {
                        id: m.account_id,
                        name: m.name,
                        mpn_id: m.mpn_id,
                    },
                    m.corrected_mpn_id,
                )
            })
            .collect())
    }

    /// Records an admin's correction of an account's MPN association; `false` when the
    /// snapshot has no such account.
    pub async fn correct_mpn(
        &self,
        organization: Uuid,
        account_id: &str,
        mpn_id: &str,
    ) -> Result<bool> {
        use sea_orm::sea_query::Expr;
        let done = account::Entity::update_many()
            .col_expr(account::Column::CorrectedMpnId, Expr::value(mpn_id))
            .filter(account::Column::Organization.eq(organization.to_string()))
            .filter(account::Column::AccountId.eq(account_id))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    pub async fn users(&self, organization: Uuid) -> Result<Vec<User>> {
        user::Entity::find()
            .filter(user::Column::Organization.eq(organization.to_string()))
            .order_by_asc(user::Column::Email)
            .order_by_asc(user::Column::AccountId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                serde_json::from_str(&m.record_json)
                    .map_err(|e| StoreError::Corrupt(m.email.clone(), e.to_string()))
            })
            .collect()
    }

    /// Deals by id, from `after` on, at most `limit`; with `unmigrated`, only those that have
    /// not migrated.
    pub async fn deals(
        &self,
        organization: Uuid,
        after: Option<&str>,
        limit: u64,
        unmigrated: bool,
    ) -> Result<Vec<SnapshotDeal>> {
        let mut q =
            deal::Entity::find().filter(deal::Column::Organization.eq(organization.to_string()));
        if let Some(after) = after {
            q = q.filter(deal::Column::DealId.gt(after));
        }
        if unmigrated {
            q = q.filter(Expr::cust(format!("NOT {MIGRATED}")));
        }
        let rows = q
            .order_by_asc(deal::Column::DealId)
            .limit(limit)
            .all(&self.db)
            .await?;
        self.with_parts(organization, rows).await
    }

    /// The deals of `ids` that the snapshot has, by id.
    pub async fn deals_by_ids(
        &self,
        organization: Uuid,
        ids: &[&str],
    ) -> Result<Vec<SnapshotDeal>> {
        let rows = deal::Entity::find()
            .filter(deal::Column::Organization.eq(organization.to_string()))
            .filter(deal::Column::DealId.is_in(ids.iter().copied()))
            .order_by_asc(deal::Column::DealId)
            .all(&self.db)
            .await?;
        self.with_parts(organization, rows).await
    }

    /// The deal rows with their products and team, fetched in one query.
    async fn with_parts(
        &self,
        organization: Uuid,
        rows: Vec<deal::Model>,
    ) -> Result<Vec<SnapshotDeal>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let parts = part::Entity::find()
            .filter(part::Column::Organization.eq(organization.to_string()))
            .filter(part::Column::DealId.is_in(rows.iter().map(|r| r.deal_id.as_str())))
            .order_by_asc(part::Column::Line)
            .all(&self.db)
            .await?;
        let mut deals: Vec<SnapshotDeal> = rows
            .into_iter()
            .map(|m| {
                serde_json::from_str(&m.record_json)
                    .map(|deal| SnapshotDeal {
                        deal,
                        products: Vec::new(),
                        team: Vec::new(),
                    })
                    .map_err(|e| StoreError::Corrupt(m.deal_id.clone(), e.to_string()))
            })
            .collect::<Result<_>>()?;
        let at: HashMap<String, usize> = deals
            .iter()
            .enumerate()
            .map(|(i, d)| (d.deal.id.clone(), i))
            .collect();
        for p in parts {
            let Some(&i) = at.get(&p.deal_id) else {
                continue;
            };
            let corrupt =
                |e: serde_json::Error| StoreError::Corrupt(p.deal_id.clone(), e.to_string());
            if p.kind == "product" {
                deals[i]
                    .products
                    .push(serde_json::from_str(&p.record_json).map_err(corrupt)?);
            } else {
                deals[i]
                    .team
                    .push(serde_json::from_str(&p.record_json).map_err(corrupt)?);
            }
        }
        Ok(deals)
    }

    /// The organization's latest run and its deals counted by account, eligibility facts and whether migrated, read
    /// in one snapshot of the database (PostgreSQL: a repeatable-read transaction; SQLite has
    /// one writer), so that the migrated deals counted are exactly those the run's counts have.
    pub async fn status_snapshot(
        &self,
        organization: Uuid,
    ) -> Result<(Option<entities::deal_run::Model>, Vec<FactCount>)> {
        use sea_orm::{AccessMode, IsolationLevel};
        let postgres = self.db.get_database_backend() == sea_orm::DbBackend::Postgres;
        let txn = if postgres {
            cosell_platform::db::begin_with(
                &self.db,
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        } else {
            cosell_platform::db::begin(&self.db).await?
        };
        let run = entities::deal_run::Entity::find()
            .filter(entities::deal_run::Column::Organization.eq(organization.to_string()))
            .order_by_desc(entities::deal_run::Column::CreateTime)
            .one(&txn)
            .await?;
        let counts = self
            .fact_groups(&txn, organization, true)
            .await?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        txn.commit().await?;
        Ok((run, counts))
    }

    /// The organization's deals grouped by account and eligibility facts (and, with
    /// `split_migrated`, whether migrated), each group with its row as selected. A join, not a
    /// lookup per deal: a million deals are counted in one pass over each table.
    async fn fact_groups(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        organization: Uuid,
        split_migrated: bool,
    ) -> Result<Vec<(CountRow, FactCount)>> {
        use sea_orm::sea_query::{Alias, ExprTrait, Query};
        let d = |c: deal::Column| Expr::col((deal::Entity, c));
        let mut q = Query::select();
        q.columns([
            (deal::Entity, deal::Column::AccountId),
            (deal::Entity, deal::Column::Status),
            (deal::Entity, deal::Column::Registration),
            (deal::Entity, deal::Column::Program),
        ])
        .expr_as(before_cutoff(), Alias::new("before_cutoff"))
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("deals"))
        .from(deal::Entity)
        .and_where(d(deal::Column::Organization).eq(organization.to_string()))
        .group_by_columns([
            (deal::Entity, deal::Column::AccountId),
            (deal::Entity, deal::Column::Status),
            (deal::Entity, deal::Column::Registration),
            (deal::Entity, deal::Column::Program),
        ])
        .add_group_by([Expr::cust("before_cutoff")]);
        if split_migrated {
            use entities::deal_result;
            let r = |c: deal_result::Column| Expr::col((deal_result::Entity, c));
            q.left_join(
                deal_result::Entity,
                r(deal_result::Column::Organization)
                    .equals((deal::Entity, deal::Column::Organization))
                    .and(
                        r(deal_result::Column::DealId).equals((deal::Entity, deal::Column::DealId)),
                    )
                    .and(r(deal_result::Column::State).eq("MIGRATED")),
            )
            .expr_as(
                Expr::case(r(deal_result::Column::DealId).is_null(), 0).finally(1),
                Alias::new("is_migrated"),
            )
            .add_group_by([Expr::cust("is_migrated")]);
        } else {
            q.expr_as(Expr::val(0), Alias::new("is_migrated"));
        }
        let backend = self.db.get_database_backend();
        deal::Entity::find()
            .from_raw_sql(backend.build(&q))
            .into_model::<CountRow>()
            .all(conn)
            .await?
            .into_iter()
            .map(|r| {
                let count = FactCount {
                    facts: facts(
                        &r.account_id,
                        &r.status,
                        r.before_cutoff,
                        &r.registration,
                        &r.program,
                    )?,
                    account_id: r.account_id.clone(),
                    migrated: r.is_migrated != 0,
                    deals: r.deals,
                };
                Ok((r, count))
            })
            .collect()
    }

    /// The organization's imports, newest first.
    pub async fn imports(&self, organization: Uuid) -> Result<Vec<(DateTime<Utc>, ImportSummary)>> {
        import_row::Entity::find()
            .filter(import_row::Column::Organization.eq(organization.to_string()))
            .order_by_desc(import_row::Column::CreateTime)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                serde_json::from_str(&m.summary_json)
                    .map(|s| (m.create_time, s))
                    .map_err(|e| StoreError::Corrupt(m.id.clone(), e.to_string()))
            })
            .collect()
    }

    /// The user migration outcomes recorded so far, by (email, account id).
    pub async fn user_outcomes(
        &self,
        organization: Uuid,
    ) -> Result<HashMap<(String, String), user_migration::Model>> {
        Ok(user_migration::Entity::find()
            .filter(user_migration::Column::Organization.eq(organization.to_string()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| ((m.email.clone(), m.account_id.clone()), m))
            .collect())
    }

    /// Records a row's outcome.
    pub async fn save_user_outcome(&self, row: user_migration::Model) -> Result<()> {
        use sea_orm::IntoActiveModel;
        user_migration::Entity::insert(row.into_active_model())
            .on_conflict(
                OnConflict::columns([
                    user_migration::Column::Organization,
                    user_migration::Column::Email,
                    user_migration::Column::AccountId,
                ])
                .update_columns([
                    user_migration::Column::Status,
                    user_migration::Column::Error,
                    user_migration::Column::ErrorMessage,
                    user_migration::Column::PcUser,
                    user_migration::Column::PcAssignment,
                ])
                .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }
}

/// How many deals share facts, as counted (integers: SQLite has no booleans).
#[derive(sea_orm::FromQueryResult)]
pub(crate) struct CountRow {
    account_id: String,
    status: String,
    registration: String,
    program: String,
    before_cutoff: i32,
    is_migrated: i32,
    deals: i64,
}

/// SQL: 1 when the deal was created before the 2020 cut-off, else 0.
fn before_cutoff() -> Expr {
    use sea_orm::sea_query::ExprTrait;
    Expr::case(
        Expr::col(deal::Column::Created).lt(crate::eligibility::cutoff()),
        1,
    )
    .finally(0)
    .into()
}

/// Facts from their columns.
fn facts(row: &str, status: &str, before: i32, registration: &str, program: &str) -> Result<Facts> {
    Ok(Facts {
        status: unlabel(row, status)?,
        before_2020: before != 0,
        registration: unlabel(row, registration)?,
        program: unlabel(row, program)?,
    })
}

/// Whether a database error is a unique-index violation.
fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Db(db) if cosell_platform::db::is_unique_violation(db))
}
