//! The deals database: referrals (one row per party; the engagement is the rows sharing an
//! engagement id; the partner's carries the idempotency key of its create), favorites, and the
//! solutions catalog.
//!
//! Referrals are written by four methods, each all or nothing (one transaction, or for a new
//! engagement on PostgreSQL one statement: `write`) and each with the change feed's events and
//! the insights' counters: [`Store::insert`] (a new engagement), [`Store::insert_migrated_batch`]
//! and [`Store::insert_migrated`] (deals from PSC), and [`Store::save`] (a [`Change`] to existing
//! ones). Those changes are conditional on
//! the version read (optimistic concurrency): a write that lost a race changes nothing and
//! says so, and the caller decides to retry or to answer `ABORTED` (rule D9).
//!
//! - `catalog`: solutions and the picker's search through the word index.
//! - [`cutover`]: each partner organization's cut-over switch (SPEC 5.5).
//! - `registrations`: the review queue of deal registrations (SPEC 3.8).
//! - [`insights`]: the counters behind GetInsights (SPEC 3.7), kept with each write.
//! - [`feed`]: the change feed's events, queued with each write and numbered after it.
//! - `gets`: GetReferral's read, shared by the gets that arrive together.
//! - `write`: several inserts committed together in one round trip.
//! - [`notifications`]: each user's notifications.
//! - [`entities`]: the tables as sea-orm entities, and their conversion to and from the domain.
//! - [`migration`]: the schema migrations, run at start.

mod catalog;
pub mod cutover;
pub mod entities;
pub mod feed;
mod gets;
pub mod insights;
pub mod migration;
pub mod notifications;
mod registrations;
mod write;

pub use catalog::list_solutions_query;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cosell_platform::db::lane::Lane;
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, QueryTrait, Statement,
};
use uuid::Uuid;

use crate::domain::change::Change;
use crate::domain::{DealType, Direction, Party, Referral};
use entities::{favorite, referral};
use feed::{Feed, NewEvent};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("stored row {0} is corrupt: {1}")]
    Corrupt(String, String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Sort orders of referral lists (always newest first, ties by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Created,
    Updated,
}

/// Which referrals a list returns. `None` fields do not filter.
#[derive(Debug, Clone)]
pub struct ReferralFilter {
    pub party: Party,
    pub organization: Option<Uuid>,
    pub direction: Option<Direction>,
    pub status: Option<&'static str>,
    pub substatus: Option<&'static str>,
    pub deal_type: Option<DealType>,
    /// Case-insensitive substring of the customer's legal name.
    pub customer_name: Option<String>,
    /// Lower-case email of a team member.
    pub team_email: Option<String>,
    pub engagement: Option<Uuid>,
    /// Only favorites of this principal.
    pub favorites_of: Option<String>,
    pub psc_deal_id: Option<String>,
    pub mpn_location: Option<String>,
    /// The caller's location scope: only these MPN locations.
    pub locations: Option<Vec<String>>,
    /// Platform users see no PRIVATE referral.
    pub shared_only: bool,
    pub order: Order,
}

impl ReferralFilter {
    /// Every referral of `party`, newest first.
    pub fn new(party: Party) -> Self {
        Self {
            party,
            organization: None,
            direction: None,
            status: None,
            substatus: None,
            deal_type: None,
            customer_name: None,
            team_email: None,
            engagement: None,
            favorites_of: None,
            psc_deal_id: None,
            mpn_location: None,
            locations: None,
            shared_only: false,
            order: Order::Created,
        }
    }
}

/// What inserting a new referral did.
pub enum Inserted {
    /// Created now.
    Created,
    /// The idempotency key was used before, for this referral.
    Replayed(Uuid),
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// [`Store::get_for`]'s statements.
    gets: Arc<gets::Gets>,
    /// Where the API's single statements run (gets, lists, a create's catalog lookup and its
    /// insert): on PostgreSQL, connections outside the pool, which spare each statement the
    /// pool's release round trip.
    lane: Arc<Lane>,
    /// The change feed's sequencer in this process.
    feed: Arc<Feed>,
}

fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        let lane = Arc::new(Lane::new(&db));
        Self {
            gets: Arc::new(gets::Gets::new(&db, &lane)),
            db,
            lane,
            feed: Arc::default(),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Inserts the referrals of a new engagement (the partner's, and the platform's when there
    /// is one) in one statement, the first one carrying the idempotency key (principal, request
    /// id). When the key was used before, nothing is inserted and the earlier referral's id
    /// returned: the key's unique index decides, so that racing retries get one referral.
    pub async fn insert(
        &self,
        referrals: &[Referral],
        key: Option<(&str, &str)>,
        events: &[NewEvent],
    ) -> Result<Inserted> {
        let request_key = key.map(|(principal, request_id)| request_key(principal, request_id));
        let rows = referrals.iter().enumerate().map(|(i, r)| {
            let mut row = referral::to_active(r);
            row.request_key = Set(if i == 0 { request_key.clone() } else { None });
            row
        });
        let added: Vec<&Referral> = referrals.iter().collect();
        let backend = self.db.get_database_backend();
        let mut statements = vec![referral::Entity::insert_many(rows).build(backend)];
        statements.extend(Self::effects(&added, &[], events).map(|s| backend.build(&s)));
        match write::all_or_nothing(&self.db, &self.lane, statements, key.is_some()).await {
            Ok(()) => {
                self.committed();
                Ok(Inserted::Created)
            }
            Err(e) => {
                if let (true, Some((principal, request_id))) = (is_unique_violation(&e), key)
                    && let Some(id) = self.replayed(principal, request_id).await?
                {
                    return Ok(Inserted::Replayed(id));
                }
                Err(e)
            }
        }
    }

    /// Inserts migrated deals (each its partner referral and platform side) in one transaction,
    /// a few hundred rows per statement. A unique violation (another import of one of these
    /// deals came first) writes nothing; the caller then inserts them one by one. The deals go
    /// in by PSC deal id, so that two imports of overlapping batches take the index's locks in
    /// the same order and wait for each other instead of deadlocking.
    pub async fn insert_migrated_batch(
        &self,
        deals: &[&[Referral]],
        events: &[NewEvent],
    ) -> Result<()> {
        /// Rows per INSERT: far below PostgreSQL's 65,535 bound parameters.
        const ROWS: usize = 200;
        let mut deals = deals.to_vec();
        fn psc(deal: &[Referral]) -> Option<&str> {
            deal.first().and_then(|r| r.psc_deal_id.as_deref())
        }
        deals.sort_by(|a, b| psc(a).cmp(&psc(b)));
        let rows: Vec<&Referral> = deals.iter().flat_map(|d| d.iter()).collect();
        if rows.is_empty() {
            return Ok(());
        }
        let backend = self.db.get_database_backend();
        let mut statements: Vec<Statement> = rows
            .chunks(ROWS)
            .map(|chunk| {
                let models = chunk.iter().map(|r| {
                    let mut row = referral::to_active(r);
                    row.request_key = Set(None);
                    row
                });
                referral::Entity::insert_many(models).build(backend)
            })
            .collect();
        statements.extend(Self::effects(&rows, &[], events).map(|s| backend.build(&s)));
        write::in_one_transaction(&self.db, statements).await?;
        self.committed();
        Ok(())
    }

    /// Inserts a migrated referral (and its platform side) unless the organization has the PSC
    /// deal already: then returns that one's id.
    pub async fn insert_migrated(
        &self,
        referrals: &[Referral],
        events: &[NewEvent],
    ) -> Result<Option<Uuid>> {
        let Some(first) = referrals.first() else {
            return Ok(None);
        };
        let psc = first.psc_deal_id.clone().unwrap_or_default();
        let rows = referrals.iter().map(|r| {
            let mut row = referral::to_active(r);
            row.request_key = Set(None);
            row
        });
        let added: Vec<&Referral> = referrals.iter().collect();
        let txn = cosell_platform::db::begin(&self.db).await?;
        let written = match referral::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await
        {
            Ok(_) => Self::append_effects(&txn, &added, &[], events).await,
            Err(e) => Err(e.into()),
        };
        match written {
            Ok(()) => {
                txn.commit().await?;
                self.committed();
                Ok(None)
            }
            Err(e) => {
                txn.rollback().await?;
                // A concurrent import of the same deal won the unique index.
                match self.find_by_psc(first.organization, &psc).await? {
                    Some(existing) if is_unique_violation(&e) => Ok(Some(existing)),
                    _ => Err(e),
                }
            }
        }
    }

    /// The referral an idempotency key was used for.
    pub async fn replayed(&self, principal: &str, request_id: &str) -> Result<Option<Uuid>> {
        let row = referral::Entity::find()
            .filter(referral::Column::RequestKey.eq(request_key(principal, request_id)))
            .one(&self.db)
            .await?;
        row.map(|m| {
            Uuid::parse_str(&m.id).map_err(|e| StoreError::Corrupt(m.id.clone(), e.to_string()))
        })
        .transpose()
    }

    /// The partner referral PSC deal `psc_deal_id` became. Only partner referrals carry a PSC
    /// deal id, and one per organization (a unique index): equality on both finds it by that
    /// index whatever the planner knows of the table.
    pub async fn find_by_psc(&self, organization: Uuid, psc_deal_id: &str) -> Result<Option<Uuid>> {
        use sea_orm::QuerySelect;
        let id: Option<String> = referral::Entity::find()
            .select_only()
            .column(referral::Column::Id)
            .filter(referral::Column::Organization.eq(organization.to_string()))
            .filter(referral::Column::PscDealId.eq(psc_deal_id))
            .into_tuple()
            .one(&self.db)
            .await?;
        id.map(|id| {
            Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(id.clone(), e.to_string()))
        })
        .transpose()
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Referral>> {
        referral::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(|m| referral::to_domain(&m))
            .transpose()
    }

    /// Every referral of an engagement, oldest first.
    pub async fn engagement(&self, engagement: Uuid) -> Result<Vec<Referral>> {
        referral::Entity::find()
            .filter(referral::Column::Engagement.eq(engagement.to_string()))
            .order_by_asc(referral::Column::CreateTime)
            .order_by_asc(referral::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| referral::to_domain(&m))
            .collect()
    }

    /// Writes a command's changes, each only if its stored version is still the one read, with
    /// their events; all or nothing. `Ok(false)`: another writer came first and nothing was
    /// written. New referrals are inserted.
    pub async fn save(&self, changes: &[Change], events: &[NewEvent]) -> Result<bool> {
        let txn = cosell_platform::db::begin(&self.db).await?;
        for c in changes {
            let (r, expected) = (&c.after, c.replaces());
            if expected == 0 {
                referral::Entity::insert(referral::to_active(r))
                    .exec_without_returning(&txn)
                    .await?;
                continue;
            }
            let done = referral::Entity::update_many()
                .set(referral::to_active(r))
                .filter(referral::Column::Id.eq(r.id.to_string()))
                .filter(referral::Column::Version.eq(expected))
                .exec(&txn)
                .await?;
            if done.rows_affected != 1 {
                txn.rollback().await?;
                return Ok(false);
            }
        }
        Self::append_effects(&txn, &[], changes, events).await?;
        txn.commit().await?;
        self.committed();
        Ok(true)
    }

    /// What every write appends with its referrals: the events of the change feed and the
    /// insights' counters.
    fn effects(
        added: &[&Referral],
        changed: &[Change],
        events: &[NewEvent],
    ) -> impl Iterator<Item = sea_orm::sea_query::InsertStatement> {
        feed::queue_inserts(events)
            .into_iter()
            .chain(insights::delta_inserts(added, changed))
    }

    /// [`Store::effects`], in the caller's transaction.
    async fn append_effects(
        txn: &impl sea_orm::ConnectionTrait,
        added: &[&Referral],
        changed: &[Change],
        events: &[NewEvent],
    ) -> Result<()> {
        for insert in Self::effects(added, changed, events) {
            txn.execute(&insert).await?;
        }
        Ok(())
    }

    /// Waiting (NEW/RECEIVED) referrals whose expiry time is in `(from, until]`, soonest first,
    /// at most `limit`; with `unannounced`, only those not yet announced as expiring soon. The
    /// sweeper's queue (D2), on the expiry-time index.
    pub async fn waiting_until(
        &self,
        from: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        unannounced: bool,
        limit: u64,
    ) -> Result<Vec<Referral>> {
        use referral::Column as C;
        let mut q = referral::Entity::find()
            .filter(C::ExpireTime.lte(until))
            .filter(C::Status.eq("NEW"))
            .filter(C::Substatus.eq("RECEIVED"));
        if let Some(from) = from {
            q = q.filter(C::ExpireTime.gt(from));
        }
        if unannounced {
            q = q.filter(
                C::Id.not_in_subquery(
                    Query::select()
                        .column(sea_orm::sea_query::Alias::new("referral_id"))
                        .from(sea_orm::sea_query::Alias::new("expiry_notices"))
                        .to_owned(),
                ),
            );
        }
        q.order_by_asc(C::ExpireTime)
            .order_by_asc(C::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .iter()
            .map(referral::to_domain)
            .collect()
    }

    /// One page of referrals after `after` (the sort time and id of the previous page's last).
    pub async fn list(
        &self,
        f: &ReferralFilter,
        after: Option<(DateTime<Utc>, String)>,
        limit: u64,
    ) -> Result<Vec<Referral>> {
        list_query(f, after, limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| referral::to_domain(&m))
            .collect()
    }

    /// [`Store::list`], with whether each referral is a favorite of `principal`, in one
    /// statement (the common list: ListReferrals).
    pub async fn list_for(
        &self,
        f: &ReferralFilter,
        after: Option<(DateTime<Utc>, String)>,
        limit: u64,
        principal: &str,
    ) -> Result<Vec<(Referral, bool)>> {
        let statement = list_query(f, after, limit)
            .column_as(favorite_of(principal), "favorite")
            .build(self.db.get_database_backend());
        self.lane
            .all(&statement)
            .await?
            .iter()
            .map(with_favorite)
            .collect()
    }

    pub async fn set_favorite(&self, principal: &str, referral: Uuid, on: bool) -> Result<()> {
        if on {
            favorite::Entity::insert(favorite::ActiveModel {
                principal: Set(principal.to_owned()),
                referral_id: Set(referral.to_string()),
                create_time: Set(crate::domain::now()),
            })
            .on_conflict(
                OnConflict::columns([favorite::Column::Principal, favorite::Column::ReferralId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        } else {
            favorite::Entity::delete_many()
                .filter(favorite::Column::Principal.eq(principal))
                .filter(favorite::Column::ReferralId.eq(referral.to_string()))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// Which of `ids` are favorites of `principal`.
    pub async fn favorites_among(&self, principal: &str, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let rows = favorite::Entity::find()
            .filter(favorite::Column::Principal.eq(principal))
            .filter(favorite::Column::ReferralId.is_in(ids.iter().map(Uuid::to_string)))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Uuid::parse_str(&r.referral_id).ok())
            .collect())
    }

    /// How many of the organization's referrals were migrated from PSC (for tests).
    pub async fn count_migrated(&self, organization: Uuid) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(referral::Entity::find()
            .filter(referral::Column::Organization.eq(organization.to_string()))
            .filter(referral::Column::PscDealId.is_not_null())
            .count(&self.db)
            .await?)
    }

    /// Every stored referral, both parties (for the demo seed and tests).
    pub async fn count_referrals(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(referral::Entity::find().count(&self.db).await?)
    }
}

/// The statement of [`Store::list`] (public for the benchmark's query plan).
pub fn list_query(
    f: &ReferralFilter,
    after: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> sea_orm::Select<referral::Entity> {
    use referral::Column as C;

    let mut q = referral::Entity::find().filter(C::Party.eq(f.party.as_str()));
    if let Some(org) = f.organization {
        q = q.filter(C::Organization.eq(org.to_string()));
    }
    if let Some(d) = f.direction {
        q = q.filter(C::Direction.eq(d.as_str()));
    }
    if let Some(s) = f.status {
        q = q.filter(C::Status.eq(s));
    }
    if let Some(s) = f.substatus {
        q = q.filter(C::Substatus.eq(s));
    }
    if let Some(t) = f.deal_type {
        q = q.filter(C::DealType.eq(t.as_str()));
    }
    if f.shared_only {
        q = q.filter(C::DealType.ne(DealType::Private.as_str()));
    }
    if let Some(name) = &f.customer_name {
        let pattern = format!("%{}%", like_escape(&name.to_lowercase()));
        q = q.filter(Expr::col(C::CustomerSearch).like(LikeExpr::new(pattern).escape('\\')));
    }
    if let Some(email) = &f.team_email {
        let pattern = format!("%,{},%", like_escape(email));
        q = q.filter(Expr::col(C::TeamEmails).like(LikeExpr::new(pattern).escape('\\')));
    }
    if let Some(e) = f.engagement {
        q = q.filter(C::Engagement.eq(e.to_string()));
    }
    if let Some(principal) = &f.favorites_of {
        q = q.filter(
            C::Id.in_subquery(
                Query::select()
                    .column(favorite::Column::ReferralId)
                    .from(favorite::Entity)
                    .and_where(Expr::col(favorite::Column::Principal).eq(principal.as_str()))
                    .to_owned(),
            ),
        );
    }
    if let Some(p) = &f.psc_deal_id {
        q = q.filter(C::PscDealId.eq(p.as_str()));
    }
    if let Some(m) = &f.mpn_location {
        q = q.filter(C::MpnLocation.eq(m.as_str()));
    }
    if let Some(locations) = &f.locations {
        q = q.filter(C::MpnLocation.is_in(locations.iter().map(String::as_str)));
    }
    let time = match f.order {
        Order::Created => C::CreateTime,
        Order::Updated => C::UpdateTime,
    };
    if let Some((t, id)) = after {
        // A row comparison, so that the database walks the index from the cursor on (an OR of
        // the two cases is not an index condition).
        q = q.filter(
            Expr::tuple([Expr::col(time), Expr::col(C::Id)])
                .lt(Expr::tuple([Expr::val(t), Expr::val(id)])),
        );
    }
    q.order_by_desc(time).order_by_desc(C::Id).limit(limit)
}

/// A create's idempotency key (rule D10), per principal so that two callers' keys never
/// collide.
fn request_key(principal: &str, request_id: &str) -> String {
    format!("{principal} {request_id}")
}

/// Whether a database error is a unique-index violation.
pub fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Db(db) if cosell_platform::db::is_unique_violation(db))
}

/// Whether a write lost to a concurrent one (a unique violation, or PostgreSQL's deadlock or
/// serialization failure): written again one at a time, it finds what the other wrote.
pub fn lost_a_race(e: &StoreError) -> bool {
    is_unique_violation(e)
        || matches!(e, StoreError::Db(db) if cosell_platform::db::is_deadlock(db))
}

/// The referral `id` with whether it is a favorite of `principal`; the values are bound in that
/// order: `principal`, then `id` (the select list comes before the WHERE clause).
/// Whether the referral of the row is a favorite of `principal`, as a column.
fn favorite_of(principal: impl Into<Expr>) -> Expr {
    Expr::exists(
        Query::select()
            // Not Expr::val: a constant, not a bound value, so that `principal` is the only one.
            .expr(Expr::cust("1"))
            .from(favorite::Entity)
            .and_where(Expr::col(favorite::Column::Principal).eq(principal))
            .and_where(
                Expr::col((favorite::Entity, favorite::Column::ReferralId))
                    .equals((referral::Entity, referral::Column::Id)),
            )
            .to_owned(),
    )
}

/// A referral's row with the `favorite` column of [`favorite_of`] after its own.
pub(crate) fn with_favorite(row: &QueryResult) -> Result<(Referral, bool)> {
    let (referral, next) = referral::read(row)?;
    Ok((referral, row.try_get_by_index(next)?))
}
