//! Deal migration runs and their results. A run's deals are PENDING result rows; a worker
//! leases a batch of them (owner and expiry), so that several replicas share a run and a dead
//! worker's deals go to another once its lease expires. The organizations with a run in
//! progress take turns at the leases, so that no tenant's run waits for another's.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::entities::deal;
use super::entities::{deal_result, deal_run};
use super::{
    CountRow, FactCount, MIGRATED, Result, Store, StoreError, before_cutoff, is_unique_violation,
};

/// Groups of deals (same account and facts) a run's start writes per statement: the groups'
/// conditions are ORed, and SQLite parses a chain of ORs as deep as it is long (its limit is
/// 1,000 levels); a few bound values each, far below PostgreSQL's 65,535.
const GROUPS_PER_STATEMENT: usize = 100;

impl Store {
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

    /// Starts a run over the snapshot's deals that `eligible` admits and that have not
    /// migrated: each becomes PENDING work of it, in one transaction. `eligible` is asked once
    /// per group of deals with the same account and facts, and the database writes the work of
    /// the groups it admits in one statement (per 100 groups), so that a start costs about
    /// the same for a thousand deals as for a million. When it does not start, nothing was
    /// changed and [`StartRefused`] says why.
    pub async fn start_run(
        &self,
        organization: Uuid,
        started_by: &str,
        traceparent: Option<&str>,
        eligible: impl Fn(&FactCount) -> bool,
    ) -> Result<std::result::Result<deal_run::Model, StartRefused>> {
        let org = organization.to_string();
        let run = deal_run::Model {
            id: Uuid::now_v7().to_string(),
            organization: org.clone(),
            create_time: Utc::now(),
            finish_time: None,
            active: Some("ACTIVE".into()),
            total: 0,
            migrated: 0,
            failed: 0,
            started_by: Some(started_by.to_owned()),
            told_time: None,
            start_traceparent: traceparent.map(str::to_owned),
        };
        let txn = cosell_platform::db::begin(&self.db).await?;
        if let Err(e) = deal_run::Entity::insert(run.clone().into_active_model())
            .exec_without_returning(&txn)
            .await
        {
            txn.rollback().await?;
            let e = StoreError::Db(e);
            return if is_unique_violation(&e) {
                Ok(Err(StartRefused::RunInProgress))
            } else {
                Err(e)
            };
        }
        let groups: Vec<CountRow> = self
            .fact_groups(&txn, organization, false)
            .await?
            .into_iter()
            .filter(|(_, count)| eligible(count))
            .map(|(row, _)| row)
            .collect();
        let backend = self.db.get_database_backend();
        let mut added = 0u64;
        for chunk in groups.chunks(GROUPS_PER_STATEMENT) {
            added += txn
                .execute_raw(backend.build(&pending_work(&run, chunk)?))
                .await?
                .rows_affected();
        }
        if added == 0 {
            txn.rollback().await?;
            return Ok(Err(StartRefused::NothingToMigrate));
        }
        deal_run::Entity::update_many()
            .col_expr(deal_run::Column::Total, Expr::value(added as i64))
            .filter(deal_run::Column::Id.eq(run.id.as_str()))
            .exec(&txn)
            .await?;
        // The work of a run is often most of the table: the workers' leases are planned with it
        // from their first one, so the statistics are refreshed before the work is visible
        // (planned on a table the statistics still said was small, the first leases sorted
        // the whole run's work each, 0.2-0.3 s apiece at 100,000 deals). As with an import, a
        // refresh already under way elsewhere is skipped.
        cosell_platform::db::analyze(&txn, &["deal_results"]).await?;
        txn.commit().await?;
        Ok(Ok(deal_run::Model {
            total: added as i64,
            ..run
        }))
    }

    /// Leases up to `limit` PENDING deals of one organization whose lease is free or expired,
    /// for `lease` from now. On PostgreSQL, rows another worker is leasing at the same instant
    /// are skipped rather than waited for; SQLite writes one at a time anyway.
    ///
    /// The organizations with a run in progress take turns ([`LeaseTurns`]): in key order, one
    /// tenant's million deals would hold back another's ten until they were all done. Within
    /// an organization each lease looks in key order after the last deal this replica leased
    /// there, so that it does not read again the deals leased or finished before it: from the
    /// start, a lease read every one of them, and a run's leases took time in the square of its
    /// size. When fewer than `limit` are left after that deal it goes on from the
    /// organization's first deal up to it, which is also where deals whose lease expired behind
    /// it are found again.
    pub async fn lease(
        &self,
        owner: &str,
        limit: u64,
        lease: chrono::Duration,
    ) -> Result<Vec<deal_result::Model>> {
        let running: Vec<String> = deal_run::Entity::find()
            .select_only()
            .column(deal_run::Column::Organization)
            .filter(deal_run::Column::FinishTime.is_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        let turns = self
            .lease_turns
            .lock()
            .expect("lease turns")
            .take_turn(running);
        for (org, after) in turns {
            let leased = self.lease_in(owner, &org, after, limit, lease).await?;
            if !leased.is_empty() {
                return Ok(leased);
            }
        }
        Ok(Vec::new())
    }

    /// [`Store::lease`] in one organization, after its deal `after` first.
    async fn lease_in(
        &self,
        owner: &str,
        org: &str,
        after: Option<String>,
        limit: u64,
        lease: chrono::Duration,
    ) -> Result<Vec<deal_result::Model>> {
        let now = Utc::now();
        // Chosen first, then taken: a LIMIT inside the UPDATE's condition may be evaluated
        // again as rows change under it, and take more than `limit`.
        let txn = cosell_platform::db::begin(&self.db).await?;
        let mut deals = self
            .lease_candidates(&txn, org, limit, now, after.as_deref(), None)
            .await?;
        let mut wrapped = false;
        if let Some(after) = after.as_deref().filter(|_| (deals.len() as u64) < limit) {
            let rest = limit - deals.len() as u64;
            let before = self
                .lease_candidates(&txn, org, rest, now, None, Some(after))
                .await?;
            wrapped = !before.is_empty();
            deals.extend(before);
        }
        self.lease_turns
            .lock()
            .expect("lease turns")
            .leased(org, deals.last(), wrapped);
        if deals.is_empty() {
            txn.commit().await?;
            return Ok(Vec::new());
        }
        let mut update = Query::update();
        update
            .table(deal_result::Entity)
            .values([
                (deal_result::Column::LeaseOwner, owner.into()),
                (deal_result::Column::LeaseUntil, (now + lease).into()),
            ])
            // The condition again: a row another worker took meanwhile is not taken twice.
            .cond_where(free_to_lease(now))
            .and_where(Expr::col(deal_result::Column::Organization).eq(org))
            // `deal_id IN (...)` is an index condition of the primary key.
            .and_where(Expr::col(deal_result::Column::DealId).is_in(deals))
            .returning_all();
        let leased = deal_result::Entity::find()
            .from_raw_sql(self.db.get_database_backend().build(&update))
            .all(&txn)
            .await?;
        txn.commit().await?;
        Ok(leased)
    }

    /// Up to `limit` PENDING deals of `org` free to lease, in key order after `after` and up
    /// to `upto`, locked in `txn`.
    async fn lease_candidates(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        org: &str,
        limit: u64,
        now: DateTime<Utc>,
        after: Option<&str>,
        upto: Option<&str>,
    ) -> Result<Vec<String>> {
        use deal_result::Column as R;
        let mut candidates = deal_result::Entity::find()
            .select_only()
            .column(R::DealId)
            .filter(free_to_lease(now))
            .filter(R::Organization.eq(org))
            .order_by_asc(R::DealId)
            .limit(limit);
        if let Some(after) = after {
            candidates = candidates.filter(R::DealId.gt(after));
        }
        if let Some(upto) = upto {
            candidates = candidates.filter(R::DealId.lte(upto));
        }
        if self.db.get_database_backend() == sea_orm::DbBackend::Postgres {
            candidates = candidates.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        Ok(candidates.into_tuple().all(txn).await?)
    }

    /// Shortens `owner`'s lease on these PENDING deals to end `after` from now: a batch that
    /// could not be worked (a peer did not answer) is tried again then, as it was, rather than
    /// when its whole lease runs out.
    pub async fn retry_later(
        &self,
        owner: &str,
        deals: &[(String, String)],
        after: chrono::Duration,
    ) -> Result<u64> {
        let mut by_org: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (org, deal) in deals {
            by_org.entry(org).or_default().push(deal);
        }
        let mut shortened = 0;
        for (org, deals) in by_org {
            shortened += deal_result::Entity::update_many()
                .col_expr(
                    deal_result::Column::LeaseUntil,
                    Expr::value(Utc::now() + after),
                )
                .filter(deal_result::Column::LeaseOwner.eq(owner))
                .filter(deal_result::Column::State.eq("PENDING"))
                .filter(deal_result::Column::Organization.eq(org))
                .filter(deal_result::Column::DealId.is_in(deals))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        Ok(shortened)
    }

    /// Gives back every PENDING deal `owner` leased; how many.
    pub async fn release_leases(&self, owner: &str) -> Result<u64> {
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

    /// Records the outcomes of leased deals in one statement, each only while `owner` still
    /// holds it, and adds them to their runs' counts in the same transaction; how many were
    /// recorded (fewer: a lease expired and another worker took the deal over).
    pub async fn finish_deals(&self, owner: &str, results: Vec<deal_result::Model>) -> Result<u64> {
        if results.is_empty() {
            return Ok(0);
        }
        let rows = results.into_iter().map(|mut r| {
            r.lease_owner = String::new();
            r.lease_until = None;
            r.into_active_model()
        });
        let mut upsert = deal_result::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    deal_result::Column::Organization,
                    deal_result::Column::DealId,
                ])
                .update_columns([
                    deal_result::Column::State,
                    deal_result::Column::LeaseOwner,
                    deal_result::Column::LeaseUntil,
                    deal_result::Column::Engagement,
                    deal_result::Column::Referral,
                    deal_result::Column::DealType,
                    deal_result::Column::Direction,
                    deal_result::Column::Error,
                    deal_result::Column::Notes,
                    deal_result::Column::CustomerMatch,
                ])
                .action_and_where(
                    Expr::col((deal_result::Entity, deal_result::Column::LeaseOwner)).eq(owner),
                )
                .to_owned(),
            )
            .into_query();
        upsert.returning(
            Query::returning().columns([deal_result::Column::RunId, deal_result::Column::State]),
        );
        let backend = self.db.get_database_backend();
        let txn = cosell_platform::db::begin(&self.db).await?;
        let recorded: Vec<(String, String)> = txn
            .query_all_raw(backend.build(&upsert))
            .await?
            .iter()
            .map(|row| Ok((row.try_get("", "run_id")?, row.try_get("", "state")?)))
            .collect::<std::result::Result<_, sea_orm::DbErr>>()?;
        let mut counts: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
        for (run, state) in &recorded {
            let c = counts.entry(run.as_str()).or_default();
            match state.as_str() {
                "MIGRATED" => c.0 += 1,
                "FAILED" => c.1 += 1,
                _ => {}
            }
        }
        for (run, (migrated, failed)) in counts {
            deal_run::Entity::update_many()
                .col_expr(
                    deal_run::Column::Migrated,
                    Expr::col(deal_run::Column::Migrated).add(migrated),
                )
                .col_expr(
                    deal_run::Column::Failed,
                    Expr::col(deal_run::Column::Failed).add(failed),
                )
                .filter(deal_run::Column::Id.eq(run))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(recorded.len() as u64)
    }

    /// Marks finished every run with no PENDING deal left, its counts taken from its results
    /// once more (the same, unless a replica of a version before the counts recorded some).
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
                // `state` is one of ours, not input.
                let counted = |state: &'static str| {
                    Expr::cust(format!(
                        "(SELECT COUNT(*) FROM deal_results r \
                         WHERE r.run_id = deal_runs.id AND r.state = '{state}')"
                    ))
                };
                deal_run::Entity::update_many()
                    .col_expr(deal_run::Column::FinishTime, Expr::value(Utc::now()))
                    .col_expr(deal_run::Column::Active, Expr::value(None::<String>))
                    .col_expr(deal_run::Column::Migrated, counted("MIGRATED"))
                    .col_expr(deal_run::Column::Failed, counted("FAILED"))
                    .filter(deal_run::Column::Id.eq(run.id))
                    .filter(deal_run::Column::FinishTime.is_null())
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok(())
    }

    /// Finished runs whose starter is still to be told (at most `limit`, oldest first).
    pub async fn untold_runs(&self, limit: u64) -> Result<Vec<deal_run::Model>> {
        Ok(deal_run::Entity::find()
            .filter(deal_run::Column::FinishTime.is_not_null())
            .filter(deal_run::Column::StartedBy.is_not_null())
            .filter(deal_run::Column::ToldTime.is_null())
            .order_by_asc(deal_run::Column::FinishTime)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// The `traceparent` of the call that started each of `runs` that has one.
    pub async fn start_traceparents(&self, runs: &[&str]) -> Result<Vec<String>> {
        let found: Vec<Option<String>> = deal_run::Entity::find()
            .select_only()
            .column(deal_run::Column::StartTraceparent)
            .filter(deal_run::Column::Id.is_in(runs.iter().copied()))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Records that the run's starter was told.
    pub async fn mark_told(&self, run: &str) -> Result<()> {
        deal_run::Entity::update_many()
            .col_expr(deal_run::Column::ToldTime, Expr::value(Utc::now()))
            .filter(deal_run::Column::Id.eq(run))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The organization's deal results by deal id, from `after` on, at most `limit`.
    pub async fn results(
        &self,
        organization: Uuid,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<deal_result::Model>> {
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
}

/// Where a replica's leases look next ([`Store::lease`]): the organizations with a run in
/// progress in turn, and in each, after the last deal leased there. Held in memory per
/// replica: another replica takes its own turns, and locked rows keep them from leasing the
/// same deals.
#[derive(Debug, Default)]
pub(super) struct LeaseTurns {
    /// The organization whose turn was taken last.
    last: Option<String>,
    /// Per organization with a run in progress, the last deal leased there.
    after: HashMap<String, String>,
}

impl LeaseTurns {
    /// The organizations of `running` (in key order) to lease from, the one after the last
    /// turn's first, each with where to look after; takes that first one's turn, so that the
    /// replica's workers leasing at the same moment start at different organizations.
    fn take_turn(&mut self, mut running: Vec<String>) -> Vec<(String, Option<String>)> {
        // In Rust's order, which the comparisons below use, whatever the database's collation.
        running.sort_unstable();
        self.after
            .retain(|org, _| running.binary_search(org).is_ok());
        let next = match &self.last {
            Some(last) => running.iter().position(|org| org > last).unwrap_or(0),
            None => 0,
        };
        let mut turns = running;
        turns.rotate_left(next);
        self.last = turns.first().cloned();
        turns
            .into_iter()
            .map(|org| {
                let after = self.after.get(&org).cloned();
                (org, after)
            })
            .collect()
    }

    /// A lease in `org` took deals up to `last` (none: it found nothing), going round to the
    /// organization's first deal when `wrapped`. The furthest of the replica's concurrent
    /// leases there holds, unless one went round.
    fn leased(&mut self, org: &str, last: Option<&String>, wrapped: bool) {
        let Some(last) = last else {
            self.after.remove(org);
            return;
        };
        self.last = Some(org.to_owned());
        let after = self.after.entry(org.to_owned()).or_default();
        if wrapped || last > after {
            last.clone_into(after);
        }
    }
}

/// SQL: a PENDING deal whose lease is free or expired at `now`. The state is written as in
/// `deal_results_pending`'s condition, so that the planner sees the index serves it whatever
/// the plan.
fn free_to_lease(now: DateTime<Utc>) -> Expr {
    Expr::cust("state = 'PENDING'").and(
        Expr::col(deal_result::Column::LeaseUntil)
            .is_null()
            .or(Expr::col(deal_result::Column::LeaseUntil).lt(now)),
    )
}

/// The statement that makes the deals of `groups` PENDING work of `run`: every deal of the
/// groups not migrated yet, a failed one of an earlier run included; a deal that migrated
/// meanwhile is left alone.
fn pending_work(
    run: &deal_run::Model,
    groups: &[CountRow],
) -> Result<sea_orm::sea_query::InsertStatement> {
    use sea_orm::sea_query::Cond;
    let d = |c: deal::Column| Expr::col((deal::Entity, c));
    let mut any = Cond::any();
    for g in groups {
        any = any.add(
            Cond::all()
                .add(d(deal::Column::AccountId).eq(g.account_id.as_str()))
                .add(d(deal::Column::Status).eq(g.status.as_str()))
                .add(d(deal::Column::Registration).eq(g.registration.as_str()))
                .add(d(deal::Column::Program).eq(g.program.as_str()))
                .add(before_cutoff().eq(g.before_cutoff)),
        );
    }
    let blank = || Expr::val("");
    let mut select = Query::select();
    select
        .column((deal::Entity, deal::Column::Organization))
        .column((deal::Entity, deal::Column::DealId))
        .expr(Expr::val(run.id.as_str()))
        .expr(Expr::val("PENDING"))
        .expr(blank())
        .expr(Expr::val(None::<DateTime<Utc>>))
        .expr(d(deal::Column::Name))
        .exprs([blank(), blank(), blank(), blank(), blank(), blank()])
        .from(deal::Entity)
        .and_where(d(deal::Column::Organization).eq(run.organization.as_str()))
        .cond_where(any)
        .and_where(Expr::cust(format!("NOT {MIGRATED}")));
    use deal_result::Column as R;
    let mut insert = Query::insert();
    insert
        .into_table(deal_result::Entity)
        .columns([
            R::Organization,
            R::DealId,
            R::RunId,
            R::State,
            R::LeaseOwner,
            R::LeaseUntil,
            R::DealName,
            R::Engagement,
            R::Referral,
            R::DealType,
            R::Direction,
            R::Error,
            R::Notes,
        ])
        .select_from(select)
        .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?
        .on_conflict(
            OnConflict::columns([R::Organization, R::DealId])
                .update_columns([
                    R::RunId,
                    R::State,
                    R::LeaseOwner,
                    R::LeaseUntil,
                    R::DealName,
                    R::Error,
                ])
                // A deal that migrated meanwhile is never made PENDING again.
                .action_and_where(Expr::col((deal_result::Entity, R::State)).ne("MIGRATED"))
                .to_owned(),
        );
    Ok(insert)
}

/// Why a run did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartRefused {
    /// Another run of the organization is unfinished.
    RunInProgress,
    /// No eligible deal is left to migrate.
    NothingToMigrate,
}
