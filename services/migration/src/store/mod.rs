//! The migration service's database: the imported PSC snapshot of each organization (accounts,
//! users, deals with their products and team) and the history of imports.
//!
//! An import is one transaction: a failure leaves the previous snapshot as it was. Rows are
//! matched by id; an unchanged row is not rewritten, a changed one is updated, a new one added,
//! and a row absent from a later export is kept (PSC-EXPORT.md, "Re-import").

pub mod entities;
pub mod migration;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::psc::files::{Account, Deal, DealProduct, TeamMember, User};
use crate::psc::{Bundle, Issue};
use entities::{account, cutover, deal, deal_result, deal_run, import, user, user_migration};

/// Rows written per statement.
const BATCH: usize = 500;

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
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Imports a bundle into `organization`'s snapshot, in one transaction.
    pub async fn import(&self, organization: Uuid, bundle: &Bundle) -> Result<ImportSummary> {
        let org = organization.to_string();
        let mut summary = ImportSummary {
            id: Uuid::now_v7().to_string(),
            accounts: bundle.accounts.len() as u64,
            users: bundle.users.len() as u64,
            products: bundle.products.len() as u64,
            team_members: bundle.team.len() as u64,
            errors: bundle.errors.clone(),
            warnings: bundle.warnings.clone(),
            ..Default::default()
        };
        let txn = self.db.begin().await?;
        for chunk in bundle.accounts.chunks(BATCH) {
            account::Entity::insert_many(chunk.iter().map(|a: &Account| account::ActiveModel {
                organization: Set(org.clone()),
                account_id: Set(a.id.clone()),
                name: Set(a.name.clone()),
                mpn_id: Set(a.mpn_id.clone()),
                corrected_mpn_id: sea_orm::ActiveValue::NotSet,
            }))
            .on_conflict(
                OnConflict::columns([account::Column::Organization, account::Column::AccountId])
                    .update_columns([account::Column::Name, account::Column::MpnId])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        for chunk in bundle.users.chunks(BATCH) {
            user::Entity::insert_many(chunk.iter().map(|u: &User| user::ActiveModel {
                organization: Set(org.clone()),
                email: Set(u.email.clone()),
                account_id: Set(u.account_id.clone()),
                record_json: Set(json(u)),
            }))
            .on_conflict(
                OnConflict::columns([
                    user::Column::Organization,
                    user::Column::Email,
                    user::Column::AccountId,
                ])
                .update_columns([user::Column::RecordJson])
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        // Products and team members belong to their deal's record.
        let mut products: HashMap<&str, Vec<DealProduct>> = HashMap::new();
        for p in &bundle.products {
            products.entry(&p.deal_id).or_default().push(p.clone());
        }
        let mut team: HashMap<&str, Vec<TeamMember>> = HashMap::new();
        for t in &bundle.team {
            team.entry(&t.deal_id).or_default().push(t.clone());
        }
        for chunk in bundle.deals.chunks(BATCH) {
            let existing: HashMap<String, String> = deal::Entity::find()
                .filter(deal::Column::Organization.eq(org.as_str()))
                .filter(deal::Column::DealId.is_in(chunk.iter().map(|d| d.id.as_str())))
                .all(&txn)
                .await?
                .into_iter()
                .map(|m| (m.deal_id, m.record_json))
                .collect();
            let mut rows = Vec::new();
            for d in chunk {
                let record = SnapshotDeal {
                    deal: d.clone(),
                    products: products.remove(d.id.as_str()).unwrap_or_default(),
                    team: team.remove(d.id.as_str()).unwrap_or_default(),
                };
                let record_json = json(&record);
                match existing.get(&d.id) {
                    Some(old) if *old == record_json => {
                        summary.deals_unchanged += 1;
                        continue;
                    }
                    Some(_) => summary.deals_updated += 1,
                    None => summary.deals_added += 1,
                }
                rows.push(deal::ActiveModel {
                    organization: Set(org.clone()),
                    deal_id: Set(d.id.clone()),
                    account_id: Set(d.account_id.clone()),
                    status: Set(format!("{:?}", d.status)),
                    created: Set(d.created),
                    record_json: Set(record_json),
                });
            }
            if rows.is_empty() {
                continue;
            }
            deal::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([deal::Column::Organization, deal::Column::DealId])
                        .update_columns([
                            deal::Column::AccountId,
                            deal::Column::Status,
                            deal::Column::Created,
                            deal::Column::RecordJson,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        import::Entity::insert(import::ActiveModel {
            id: Set(summary.id.clone()),
            organization: Set(org),
            create_time: Set(Utc::now()),
            summary_json: Set(json(&summary)),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(summary)
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

    /// Deals by id, from `after` on, at most `limit`.
    pub async fn deals(
        &self,
        organization: Uuid,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<SnapshotDeal>> {
        use sea_orm::QuerySelect;
        let mut q =
            deal::Entity::find().filter(deal::Column::Organization.eq(organization.to_string()));
        if let Some(after) = after {
            q = q.filter(deal::Column::DealId.gt(after));
        }
        q.order_by_asc(deal::Column::DealId)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                serde_json::from_str(&m.record_json)
                    .map_err(|e| StoreError::Corrupt(m.deal_id.clone(), e.to_string()))
            })
            .collect()
    }

    /// The organization's imports, newest first.
    pub async fn imports(&self, organization: Uuid) -> Result<Vec<(DateTime<Utc>, ImportSummary)>> {
        import::Entity::find()
            .filter(import::Column::Organization.eq(organization.to_string()))
            .order_by_desc(import::Column::CreateTime)
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

    // --- the cut-over ---

    pub async fn cutover(&self, organization: Uuid) -> Result<Option<cutover::Model>> {
        Ok(cutover::Entity::find_by_id(organization.to_string())
            .one(&self.db)
            .await?)
    }

    pub async fn set_cutover(&self, row: cutover::Model) -> Result<()> {
        use sea_orm::IntoActiveModel;
        cutover::Entity::insert(row.into_active_model())
            .on_conflict(
                OnConflict::column(cutover::Column::Organization)
                    .update_columns([
                        cutover::Column::Routed,
                        cutover::Column::SwitchTime,
                        cutover::Column::SwitchedBy,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    // --- deal migration runs ---

    /// The organization's run in progress, if any.
    pub async fn active_run(&self, organization: Uuid) -> Result<Option<deal_run::Model>> {
        Ok(deal_run::Entity::find()
            .filter(deal_run::Column::Organization.eq(organization.to_string()))
            .filter(deal_run::Column::FinishTime.is_null())
            .one(&self.db)
            .await?)
    }

    /// The organization's latest run.
    pub async fn latest_run(&self, organization: Uuid) -> Result<Option<deal_run::Model>> {
        Ok(deal_run::Entity::find()
            .filter(deal_run::Column::Organization.eq(organization.to_string()))
            .order_by_desc(deal_run::Column::CreateTime)
            .one(&self.db)
            .await?)
    }

    /// Starts a run over `deals` (id, name): each becomes PENDING work of it, in one transaction.
    /// `Ok(None)`: another run of the organization is unfinished (nothing was changed). A deal
    /// migrated already is never made PENDING again.
    pub async fn start_run(
        &self,
        organization: Uuid,
        deals: &[(String, String)],
    ) -> Result<Option<deal_run::Model>> {
        let org = organization.to_string();
        let run = deal_run::Model {
            id: Uuid::now_v7().to_string(),
            organization: org.clone(),
            create_time: Utc::now(),
            finish_time: None,
            active: Some("ACTIVE".into()),
        };
        let txn = self.db.begin().await?;
        use sea_orm::IntoActiveModel;
        if let Err(e) = deal_run::Entity::insert(run.clone().into_active_model())
            .exec_without_returning(&txn)
            .await
        {
            txn.rollback().await?;
            let e = StoreError::Db(e);
            return if is_unique_violation(&e) {
                Ok(None)
            } else {
                Err(e)
            };
        }
        for chunk in deals.chunks(BATCH) {
            deal_result::Entity::insert_many(chunk.iter().map(|(id, name)| {
                deal_result::Model {
                    organization: org.clone(),
                    deal_id: id.clone(),
                    run_id: run.id.clone(),
                    state: "PENDING".into(),
                    lease_owner: String::new(),
                    lease_until: None,
                    deal_name: name.clone(),
                    engagement: String::new(),
                    referral: String::new(),
                    deal_type: String::new(),
                    direction: String::new(),
                    error: String::new(),
                    notes: String::new(),
                }
                .into_active_model()
            }))
            .on_conflict(
                OnConflict::columns([
                    deal_result::Column::Organization,
                    deal_result::Column::DealId,
                ])
                .update_columns([
                    deal_result::Column::RunId,
                    deal_result::Column::State,
                    deal_result::Column::LeaseOwner,
                    deal_result::Column::LeaseUntil,
                    deal_result::Column::DealName,
                    deal_result::Column::Error,
                ])
                .action_and_where(sea_orm::sea_query::ExprTrait::ne(
                    sea_orm::sea_query::Expr::col((
                        deal_result::Entity,
                        deal_result::Column::State,
                    )),
                    "MIGRATED",
                ))
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(Some(run))
    }

    /// Leases up to `limit` PENDING deals whose lease is free or expired, for `lease` from now.
    pub async fn lease(
        &self,
        owner: &str,
        limit: u64,
        lease: chrono::Duration,
    ) -> Result<Vec<deal_result::Model>> {
        use sea_orm::QuerySelect;
        use sea_orm::sea_query::Expr;
        let now = Utc::now();
        let candidates = deal_result::Entity::find()
            .filter(deal_result::Column::State.eq("PENDING"))
            .filter(
                sea_orm::Condition::any()
                    .add(deal_result::Column::LeaseUntil.is_null())
                    .add(deal_result::Column::LeaseUntil.lt(now)),
            )
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut leased = Vec::new();
        for c in candidates {
            // Taken only if nobody else took it meanwhile: the same condition, row by row.
            let done = deal_result::Entity::update_many()
                .col_expr(deal_result::Column::LeaseOwner, Expr::value(owner))
                .col_expr(deal_result::Column::LeaseUntil, Expr::value(now + lease))
                .filter(deal_result::Column::Organization.eq(c.organization.as_str()))
                .filter(deal_result::Column::DealId.eq(c.deal_id.as_str()))
                .filter(deal_result::Column::State.eq("PENDING"))
                .filter(
                    sea_orm::Condition::any()
                        .add(deal_result::Column::LeaseUntil.is_null())
                        .add(deal_result::Column::LeaseUntil.lt(now)),
                )
                .exec(&self.db)
                .await?;
            if done.rows_affected == 1 {
                leased.push(c);
            }
        }
        Ok(leased)
    }

    /// Gives back every PENDING deal `owner` leased; how many.
    pub async fn release_leases(&self, owner: &str) -> Result<u64> {
        use sea_orm::sea_query::Expr;
        let done = deal_result::Entity::update_many()
            .col_expr(deal_result::Column::LeaseOwner, Expr::value(""))
            .col_expr(
                deal_result::Column::LeaseUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(deal_result::Column::LeaseOwner.eq(owner))
            .filter(deal_result::Column::State.eq("PENDING"))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected)
    }

    /// Records a leased deal's outcome (only while `owner` holds it); `false` when it no longer
    /// did (its lease expired and another worker took the deal).
    pub async fn finish_deal(&self, owner: &str, result: deal_result::Model) -> Result<bool> {
        use sea_orm::sea_query::Expr;
        let done = deal_result::Entity::update_many()
            .col_expr(deal_result::Column::State, Expr::value(result.state))
            .col_expr(deal_result::Column::LeaseOwner, Expr::value(""))
            .col_expr(
                deal_result::Column::LeaseUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(
                deal_result::Column::Engagement,
                Expr::value(result.engagement),
            )
            .col_expr(deal_result::Column::Referral, Expr::value(result.referral))
            .col_expr(deal_result::Column::DealType, Expr::value(result.deal_type))
            .col_expr(
                deal_result::Column::Direction,
                Expr::value(result.direction),
            )
            .col_expr(deal_result::Column::Error, Expr::value(result.error))
            .col_expr(deal_result::Column::Notes, Expr::value(result.notes))
            .filter(deal_result::Column::Organization.eq(result.organization))
            .filter(deal_result::Column::DealId.eq(result.deal_id))
            .filter(deal_result::Column::LeaseOwner.eq(owner))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Marks finished every run with no PENDING deal left.
    pub async fn finish_runs(&self) -> Result<()> {
        for run in deal_run::Entity::find()
            .filter(deal_run::Column::FinishTime.is_null())
            .all(&self.db)
            .await?
        {
            let pending = deal_result::Entity::find()
                .filter(deal_result::Column::RunId.eq(run.id.as_str()))
                .filter(deal_result::Column::State.eq("PENDING"))
                .one(&self.db)
                .await?;
            if pending.is_none() {
                use sea_orm::sea_query::Expr;
                deal_run::Entity::update_many()
                    .col_expr(deal_run::Column::FinishTime, Expr::value(Utc::now()))
                    .col_expr(deal_run::Column::Active, Expr::value(None::<String>))
                    .filter(deal_run::Column::Id.eq(run.id))
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok(())
    }

    /// (total, migrated, failed, pending) of a run, counted by the database.
    pub async fn run_counts(&self, run_id: &str) -> Result<(i64, i64, i64, i64)> {
        use sea_orm::QuerySelect;
        use sea_orm::sea_query::{Expr, Func};
        let counts: Vec<(String, i64)> = deal_result::Entity::find()
            .select_only()
            .column(deal_result::Column::State)
            .column_as(
                Expr::expr(Func::count(Expr::col(deal_result::Column::DealId))),
                "n",
            )
            .filter(deal_result::Column::RunId.eq(run_id))
            .group_by(deal_result::Column::State)
            .into_tuple()
            .all(&self.db)
            .await?;
        let count = |s: &str| {
            counts
                .iter()
                .find(|(state, _)| state == s)
                .map(|c| c.1)
                .unwrap_or(0)
        };
        let (migrated, failed, pending) = (count("MIGRATED"), count("FAILED"), count("PENDING"));
        Ok((migrated + failed + pending, migrated, failed, pending))
    }

    /// Every deal result of the organization, by deal id (for the status and the report).
    pub async fn results(
        &self,
        organization: Uuid,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<deal_result::Model>> {
        use sea_orm::QuerySelect;
        let mut q = deal_result::Entity::find()
            .filter(deal_result::Column::Organization.eq(organization.to_string()));
        if let Some(a) = after {
            q = q.filter(deal_result::Column::DealId.gt(a));
        }
        Ok(q.order_by_asc(deal_result::Column::DealId)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// The snapshot deal `deal_id`.
    pub async fn deal(&self, organization: Uuid, deal_id: &str) -> Result<Option<SnapshotDeal>> {
        deal::Entity::find_by_id((organization.to_string(), deal_id.to_owned()))
            .one(&self.db)
            .await?
            .map(|m| {
                serde_json::from_str(&m.record_json)
                    .map_err(|e| StoreError::Corrupt(m.deal_id.clone(), e.to_string()))
            })
            .transpose()
    }
}

/// Whether a database error is a unique-index violation.
fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Db(db) if cosell_platform::db::is_unique_violation(db))
}
