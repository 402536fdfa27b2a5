//! The counts behind GetInsights (SPEC 3.7), kept with each change instead of counted when
//! asked: counting 100,000 referrals took 60 ms at p99, reading a few dozen counters takes one.
//!
//! - Each write that adds or changes partner referrals appends, in its own transaction, what
//!   it adds to and takes from each group (`insight_deltas`: +1 to the group a referral
//!   enters, -1 to the one it leaves, with the deal value and acceptance times). Appending
//!   only, so that concurrent writers of one organization never wait for each other's row.
//! - [`Store::fold_insight_deltas`] adds the deltas into `insight_totals` (one row per
//!   organization, MPN location, status, substatus, deal type, direction and currency) and
//!   deletes them, in one transaction, every second or so.
//! - [`Store::insight_groups`] sums the organization's totals and its deltas not folded yet:
//!   exact at every moment, whatever the folder's delay. The NEW referrals expiring soon depend
//!   on "now", so they are counted when asked, on the `referrals_expiring` index.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Value};
use uuid::Uuid;

use super::feed::statement;
use super::{Result, Store, StoreError};
use crate::domain::change::Change;
use crate::domain::insights::Group;
use crate::domain::{DealType, Direction, Party, Referral, Stage};

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

/// The group columns of both tables, in the order [`Share::values`] writes them.
const KEY: &str = "organization, mpn_location, status, substatus, deal_type, direction, currency";
/// The summed columns.
const SUMS: &str = "n, cents, accepted, timed, seconds";

/// What one partner referral adds to its group.
#[derive(Debug, Clone, PartialEq)]
struct Share {
    organization: String,
    /// Empty for an organization-wide referral.
    mpn_location: String,
    status: &'static str,
    substatus: &'static str,
    deal_type: &'static str,
    direction: &'static str,
    /// Empty without a deal value.
    currency: String,
    cents: i64,
    accepted: bool,
    /// Accepted here (not migrated from PSC, whose accept time is the import's).
    timed: bool,
    seconds_to_accept: f64,
}

impl Share {
    /// `r`'s share; none for the platform's referrals, which insights do not count.
    fn of(r: &Referral) -> Option<Share> {
        if r.party != Party::Partner {
            return None;
        }
        let (status, substatus) = r.stage.names();
        let timed = r.accept_time.is_some() && r.psc_deal_id.is_none();
        Some(Share {
            organization: r.organization.to_string(),
            mpn_location: r.mpn_location.clone().unwrap_or_default(),
            status,
            substatus,
            deal_type: r.deal_type.as_str(),
            direction: r.direction.as_str(),
            currency: r
                .deal_value
                .as_ref()
                .map(|m| m.currency.clone())
                .unwrap_or_default(),
            cents: r.deal_value.as_ref().map_or(0, |m| m.cents),
            accepted: r.accept_time.is_some(),
            timed,
            seconds_to_accept: match (timed, r.accept_time) {
                (true, Some(at)) => {
                    (at - r.create_time).num_microseconds().unwrap_or(0) as f64 / 1e6
                }
                _ => 0.0,
            },
        })
    }

    /// The row values of this share added (`sign` 1) or taken away (-1).
    fn values(&self, sign: i64) -> [Value; 12] {
        [
            self.organization.clone().into(),
            self.mpn_location.clone().into(),
            self.status.into(),
            self.substatus.into(),
            self.deal_type.into(),
            self.direction.into(),
            self.currency.clone().into(),
            sign.into(),
            (sign * self.cents).into(),
            (sign * i64::from(self.accepted)).into(),
            (sign * i64::from(self.timed)).into(),
            (sign as f64 * self.seconds_to_accept).into(),
        ]
    }
}

/// The statements that append what `added` referrals and `changes` (new referrals among them:
/// no `before`) do to the counters, written with the change. A change that leaves its referral in the same
/// group with the same figures (most field updates) appends nothing.
pub(super) fn delta_inserts(
    added: &[&Referral],
    changes: &[Change],
) -> Vec<sea_orm::sea_query::InsertStatement> {
    let mut rows: Vec<[Value; 12]> = Vec::new();
    for r in added {
        rows.extend(Share::of(r).map(|s| s.values(1)));
    }
    for c in changes {
        let (before, after) = (c.before.as_ref().and_then(Share::of), Share::of(&c.after));
        if before != after {
            rows.extend(before.map(|s| s.values(-1)));
            rows.extend(after.map(|s| s.values(1)));
        }
    }
    // 12 values per row: far below PostgreSQL's 65,535 bound parameters.
    rows.chunks(500)
        .map(|chunk| {
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new("insight_deltas"))
                .columns(KEY.split(", ").chain(SUMS.split(", ")).map(Alias::new));
            for row in chunk {
                insert.values_panic(row.clone().map(Into::into));
            }
            insert
        })
        .collect()
}

/// The counters of the organization's referrals per group, as of now (`$1`: organization).
fn groups_sql(filter: &str) -> String {
    let part = |table: &str| {
        format!(
            "SELECT status, substatus, deal_type, direction, currency, {SUMS} FROM {table} WHERE organization = $1{filter}"
        )
    };
    format!(
        "SELECT status, substatus, deal_type, direction, currency,
           CAST(SUM(n) AS BIGINT) AS n,
           -- Text: a sum of 100,000 of the largest values does not fit in 64 bits.
           CAST(SUM(cents) AS TEXT) AS cents,
           CAST(SUM(accepted) AS BIGINT) AS accepted,
           CAST(SUM(timed) AS BIGINT) AS timed,
           CAST(SUM(seconds) AS DOUBLE PRECISION) AS seconds
         FROM ({} UNION ALL {}) AS counted
         GROUP BY status, substatus, deal_type, direction, currency
         HAVING SUM(n) > 0",
        part("insight_totals"),
        part("insight_deltas")
    )
}

impl Store {
    /// The groups of [`InsightScope`]'s referrals, and how many NEW ones expire within 7 days
    /// of `now`.
    pub async fn insight_groups(
        &self,
        scope: &InsightScope,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Group>, i64)> {
        let backend = self.db.get_database_backend();
        // Both queries filter alike: $1 the organization, then the locations.
        let mut values: Vec<Value> = vec![scope.organization.to_string().into()];
        let mut filter = String::new();
        if let Some(locations) = &scope.locations {
            if locations.is_empty() {
                return Ok((Vec::new(), 0));
            }
            let marks: Vec<String> = locations
                .iter()
                .map(|l| {
                    values.push(l.clone().into());
                    format!("${}", values.len())
                })
                .collect();
            filter.push_str(&format!(" AND mpn_location IN ({})", marks.join(", ")));
        }
        if scope.shared_only {
            filter.push_str(&format!(
                " AND deal_type <> '{}'",
                DealType::Private.as_str()
            ));
        }
        let groups = self
            .lane
            .all(&statement(backend, &groups_sql(&filter), values.clone()))
            .await?
            .iter()
            .map(group)
            .collect::<Result<Vec<_>>>()?;
        let (from, until) = (values.len() + 1, values.len() + 2);
        values.push(now.into());
        values.push((now + EXPIRING_WITHIN).into());
        let expiring = self
            .lane
            .one(&statement(
                backend,
                &format!(
                    "SELECT COUNT(*) AS n FROM referrals WHERE organization = $1 \
                     AND status = 'NEW' AND expire_time >= ${from} AND expire_time < ${until} \
                     AND party = 'PARTNER'{filter}"
                ),
                values,
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        Ok((groups, expiring))
    }

    /// Adds the deltas appended so far into the totals and deletes them, in one transaction;
    /// how many groups were touched. Safe on several replicas at once: each delta is folded by
    /// the transaction that deletes it.
    pub async fn fold_insight_deltas(&self) -> Result<u64> {
        let upsert = format!(
            "ON CONFLICT ({KEY}) DO UPDATE SET n = insight_totals.n + excluded.n,
               cents = insight_totals.cents + excluded.cents,
               accepted = insight_totals.accepted + excluded.accepted,
               timed = insight_totals.timed + excluded.timed,
               seconds = insight_totals.seconds + excluded.seconds"
        );
        let summed = "SUM(n), SUM(cents), SUM(accepted), SUM(timed), SUM(seconds)";
        Ok(match self.db.get_database_backend() {
            // One statement: the rows it deletes are the rows it adds, whatever commits meanwhile.
            DbBackend::Postgres => self
                .db
                .execute_unprepared(&format!(
                    "WITH moved AS (DELETE FROM insight_deltas RETURNING *)
                     INSERT INTO insight_totals ({KEY}, {SUMS})
                     SELECT {KEY}, {summed} FROM moved GROUP BY {KEY} {upsert}"
                ))
                .await?
                .rows_affected(),
            // SQLite has one writer at a time: nothing commits between the two statements.
            _ => {
                let txn = cosell_platform::db::begin(&self.db).await?;
                let done = txn
                    .execute_unprepared(&format!(
                        "INSERT INTO insight_totals ({KEY}, {SUMS})
                         SELECT {KEY}, {summed} FROM insight_deltas WHERE true GROUP BY {KEY} {upsert}"
                    ))
                    .await?
                    .rows_affected();
                txn.execute_unprepared("DELETE FROM insight_deltas").await?;
                txn.commit().await?;
                done
            }
        })
    }

    /// Folds the deltas every `interval` until `ending` turns true (a failure is retried at
    /// the next interval: the deltas wait, and the figures stay exact meanwhile).
    pub async fn run_insight_folder(
        &self,
        interval: std::time::Duration,
        mut ending: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = ending.wait_for(|end| *end) => return,
            }
            if let Err(e) = self.fold_insight_deltas().await {
                tracing::warn!(error = ?e, "folding the insights' counters failed; retrying");
            }
        }
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
    })
}
