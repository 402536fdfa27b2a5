//! The aggregate behind GetInsights (SPEC 3.7): one statement groups an organization's partner
//! referrals by status, substatus, deal type, direction and currency, and sums within each
//! group what the figures need. It reads the covering index `referrals_insights` (m0005) and
//! returns a few dozen rows whatever the number of referrals: no referral is loaded.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query};
use sea_orm::{DbBackend, QueryResult, StatementBuilder};
use uuid::Uuid;

use super::entities::referral;
use super::{Result, Store, StoreError};
use crate::domain::insights::Group;
use crate::domain::{DealType, Direction, Party, Stage};

/// Which of the organization's referrals count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsightScope {
    pub organization: Uuid,
    /// Only these MPN locations (one asked for, or a location-scoped caller's); `None`: all.
    pub locations: Option<Vec<String>>,
    /// Platform users see no PRIVATE referral.
    pub shared_only: bool,
}

/// How far ahead "expiring soon" looks.
pub const EXPIRING_WITHIN: Duration = Duration::days(7);

/// Seconds from creation to acceptance, in the backend's SQL.
fn seconds_to_accept(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "EXTRACT(EPOCH FROM (accept_time - create_time))",
        _ => "((julianday(accept_time) - julianday(create_time)) * 86400.0)",
    }
}

impl Store {
    /// The groups of [`InsightScope`]'s referrals, with `now` deciding what expires soon.
    pub async fn insight_groups(
        &self,
        scope: &InsightScope,
        now: DateTime<Utc>,
    ) -> Result<Vec<Group>> {
        use referral::Column as C;
        let backend = self.db.get_database_backend();
        let mut q = Query::select();
        q.columns([C::Status, C::Substatus, C::DealType, C::Direction, C::Currency])
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
            // Text: a sum of 100,000 of the largest values does not fit in 64 bits.
            .expr_as(
                Expr::cust("CAST(SUM(deal_value_cents) AS TEXT)"),
                Alias::new("cents"),
            )
            .expr_as(
                Expr::cust("SUM(CASE WHEN accept_time IS NULL THEN 0 ELSE 1 END)"),
                Alias::new("accepted"),
            )
            // Migrated deals carry the import's time as their accept time: not timed.
            .expr_as(
                Expr::cust(
                    "SUM(CASE WHEN accept_time IS NULL OR psc_deal_id IS NOT NULL THEN 0 ELSE 1 END)",
                ),
                Alias::new("timed"),
            )
            .expr_as(
                Expr::cust(format!(
                    "CAST(SUM(CASE WHEN accept_time IS NULL OR psc_deal_id IS NOT NULL THEN NULL ELSE {} END) AS DOUBLE PRECISION)",
                    seconds_to_accept(backend)
                )),
                Alias::new("seconds"),
            )
            .expr_as(
                Func::sum(
                    Expr::case(
                        Expr::col(C::Status)
                            .eq("NEW")
                            .and(Expr::col(C::ExpireTime).gte(now))
                            .and(Expr::col(C::ExpireTime).lt(now + EXPIRING_WITHIN)),
                        1,
                    )
                    .finally(0),
                ),
                Alias::new("expiring"),
            )
            .from(referral::Entity)
            .and_where(Expr::col(C::Organization).eq(scope.organization.to_string()))
            .and_where(Expr::col(C::Party).eq(Party::Partner.as_str()));
        if let Some(locations) = &scope.locations {
            q.and_where(Expr::col(C::MpnLocation).is_in(locations.iter().map(String::as_str)));
        }
        if scope.shared_only {
            q.and_where(Expr::col(C::DealType).ne(DealType::Private.as_str()));
        }
        q.group_by_columns([
            C::Status,
            C::Substatus,
            C::DealType,
            C::Direction,
            C::Currency,
        ]);
        let statement = StatementBuilder::build(&q, &backend);
        self.reads
            .all(&statement)
            .await?
            .iter()
            .map(group)
            .collect()
    }
}

fn group(row: &QueryResult) -> Result<Group> {
    let text = |c: &str| -> Result<String> { Ok(row.try_get::<String>("", c)?) };
    let int = |c: &str| -> Result<i64> { Ok(row.try_get::<Option<i64>>("", c)?.unwrap_or(0)) };
    let corrupt = |what: &str| StoreError::Corrupt("insights".into(), what.into());
    let (status, substatus) = (text("status")?, text("substatus")?);
    let cents = match row.try_get::<Option<String>>("", "cents")? {
        None => 0,
        // PostgreSQL writes a numeric sum without decimals; SQLite an integer.
        Some(t) => t.parse::<i128>().map_err(|_| corrupt("deal value sum"))?,
    };
    Ok(Group {
        stage: Stage::parse(&status, &substatus).ok_or_else(|| corrupt("status"))?,
        deal_type: DealType::parse(&text("deal_type")?).ok_or_else(|| corrupt("deal type"))?,
        direction: Direction::parse(&text("direction")?).ok_or_else(|| corrupt("direction"))?,
        currency: text("currency")?,
        count: int("n")?,
        cents,
        accepted: int("accepted")?,
        timed: int("timed")?,
        seconds_to_accept: row.try_get::<Option<f64>>("", "seconds")?.unwrap_or(0.0),
        expiring: int("expiring")?,
    })
}
