//! Benchmark of `InsightsService/GetInsights` on PostgreSQL (not a test; prints figures): the
//! figures of one organization holding 100,000 partner referrals spread over every stage, deal
//! type, direction, three currencies and two MPN locations, through gRPC with authentication
//! and access checks, beside the counters read from the store (no gRPC), and beside the
//! baseline of the same run: one plain aggregate over the referrals, counting when asked.
//!
//! Target: p99 <= 20 ms. Latency is measured one call at a time, then with 4 at once (the
//! machine this runs on has 2 cores).
//!
//! Run: `cargo bench -p cosell-deals --bench insights`. Environment: COSELL_BENCH_DATABASE_URL
//! (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), COSELL_BENCH_CALLS
//! (calls per figure, default 500), COSELL_BENCH_REFERRALS (default 100,000),
//! COSELL_BENCH_REPORT (a file for the one table's rows, see `cosell_testkit::bench::report`).

#[allow(dead_code)]
#[path = "../tests/deals/harness.rs"]
mod harness;

use std::time::Instant;

use cosell_deals::domain::{DealType, Direction, Money, Outcome, Stage, Waiting};
use cosell_deals::store::insights::InsightScope;
use cosell_proto::deals as pb;
use cosell_testkit::bench::report::{self, Report, Row};
use cosell_testkit::bench::{env_count, measure, postgres_admin_url};
use cosell_testkit::{TestDb, authed};
use harness::{Harness, RITA};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

const STAGES: [Stage; 7] = [
    Stage::New(Waiting::Pending),
    Stage::New(Waiting::Received),
    Stage::Active,
    Stage::Closed(Outcome::Won),
    Stage::Closed(Outcome::Lost),
    Stage::Closed(Outcome::Declined),
    Stage::Closed(Outcome::Expired),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = Report::from_env("deals/insights");
    let calls = env_count("COSELL_BENCH_CALLS", 500);
    let total = env_count("COSELL_BENCH_REFERRALS", 100_000);
    let admin = postgres_admin_url();
    let h = Harness::start_on(TestDb::postgres(&admin).await?).await;
    let token = h.token(RITA).await;
    println!(
        "GetInsights on PostgreSQL: {total} referrals of one organization, {calls} calls per figure"
    );

    // Fill through the store (the API's insert path, batched), from one created referral.
    let template = h
        .create(
            RITA,
            h.complete(pb::DealType::PartnerLed, &h.contoso_solution),
        )
        .await;
    let store = &h.deals.store;
    let id = Uuid::parse_str(template.name.trim_start_matches("referrals/"))?;
    let first = store.get(id).await?.expect("the created referral");
    let organization = first.organization;
    let now = cosell_deals::domain::now();
    let fill = Instant::now();
    let mut made = 1;
    while made < total {
        let n = (total - made).min(1000);
        let batch: Vec<_> = (0..n)
            .map(|k| {
                let i = made + k;
                let mut r = first.clone();
                r.id = Uuid::now_v7();
                r.engagement = Uuid::now_v7();
                r.stage = STAGES[i % 7];
                r.deal_type = [DealType::Private, DealType::PartnerLed, DealType::CoSell][i % 3];
                r.direction = if i % 2 == 0 {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                };
                r.deal_value = (i % 5 != 0).then(|| Money {
                    currency: ["USD", "EUR", "JPY"][i % 3].into(),
                    cents: (i as i64 % 997) * 10_000,
                });
                r.mpn_location = (i % 4 == 0).then(|| "4000002".to_owned());
                r.create_time = now - chrono::Duration::hours((i % 500) as i64 + 1);
                r.update_time = r.create_time;
                r.accept_time = matches!(r.stage, Stage::Active | Stage::Closed(Outcome::Won))
                    .then(|| r.create_time + chrono::Duration::minutes((i % 300) as i64));
                r.expire_time = matches!(r.stage, Stage::New(_))
                    .then(|| now + chrono::Duration::days((i % 14) as i64));
                r
            })
            .collect();
        store.insert(&batch, None, &[]).await?;
        made += n;
    }
    println!(
        "({total} referrals filled in {:.1} s)",
        fill.elapsed().as_secs_f64()
    );
    // What the service's folder does within a second of the writes.
    store.fold_insight_deltas().await?;
    // As autovacuum leaves a table after a bulk insert: statistics, and the visibility map an
    // index-only scan reads.
    store
        .db()
        .execute_unprepared("VACUUM ANALYZE referrals, insight_totals, insight_deltas")
        .await?;

    let scope = InsightScope {
        organization,
        locations: None,
        shared_only: false,
    };
    // The baseline: counting the organization's referrals when asked, one plain aggregate
    // over the table (what GetInsights did before its counters).
    let db = store.db().clone();
    let counted = measure(1, calls.min(100), move |_| {
        let db = db.clone();
        async move {
            let t = Instant::now();
            db.query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                insight_sql(organization),
            ))
            .await
            .expect("the aggregate");
            t.elapsed()
        }
    })
    .await;
    println!(
        "baseline: counting when asked (plain SQL)  {}",
        counted.line()
    );

    let client = pb::insights_service_client::InsightsServiceClient::new(h.server.channel.clone());
    let request = move |mpn: &'static str| {
        let (client, token) = (client.clone(), token.clone());
        let parent = format!("organizations/{organization}");
        move |_| {
            let (mut client, token, parent) = (client.clone(), token.clone(), parent.clone());
            async move {
                let t = Instant::now();
                let r = client
                    .get_insights(authed(
                        &token,
                        pb::GetInsightsRequest {
                            parent,
                            mpn_id: mpn.into(),
                        },
                    ))
                    .await
                    .expect("insights")
                    .into_inner();
                assert_eq!(
                    r.total.unwrap().count,
                    if mpn.is_empty() {
                        total as i64
                    } else {
                        // Every fourth of the filled ones (the template has no location).
                        (total as i64 - 1) / 4
                    }
                );
                t.elapsed()
            }
        }
    };
    // Warm up the connections and the plan cache.
    measure(1, 20, request("")).await;
    let c1 = measure(1, calls, request("")).await;
    println!(
        "GetInsights (organization), 1 at a time  {}  (p99 {:.2} of the baseline's; target p99 <= 20 ms)",
        c1.line(),
        c1.p99.as_secs_f64() / counted.p99.as_secs_f64()
    );
    let share = c1.p99.as_secs_f64() / counted.p99.as_secs_f64();
    report.add(
        Row::new(
            format!(
                "`GetInsights`, {} referrals, c1",
                report::thousands(total as f64)
            ),
            format!(
                "p50 {}, p99 {}",
                report::duration(c1.p50),
                report::duration(c1.p99)
            ),
        )
        .value(c1.p99.as_secs_f64() * 1e3, "ms")
        .baseline(format!(
            "counting when asked (plain SQL): p50 {}, p99 {}",
            report::duration(counted.p50),
            report::duration(counted.p99)
        ))
        .baseline_value(counted.p99.as_secs_f64() * 1e3)
        .ratio(share)
        .target(
            "p99 <= 20 ms (issue 17)",
            c1.p99 <= std::time::Duration::from_millis(20),
        ),
    )?;
    let c4 = measure(4, calls, request("")).await;
    println!("GetInsights (organization), 4 at a time  {}", c4.line());
    let location = measure(1, calls, request("4000002")).await;
    println!(
        "GetInsights (one location), 1 at a time  {}",
        location.line()
    );
    let deals = h.deals.clone();
    let direct = measure(1, calls, move |_| {
        let (deals, scope) = (deals.clone(), scope.clone());
        async move {
            let t = Instant::now();
            deals
                .store
                .insight_groups(&scope, now)
                .await
                .expect("groups");
            t.elapsed()
        }
    })
    .await;
    println!("the aggregate from the store (no gRPC)  {}", direct.line());
    Ok(())
}

/// Counting the organization's referrals when asked, with the organization inlined.
fn insight_sql(organization: Uuid) -> String {
    format!(
        "SELECT status, substatus, deal_type, direction, currency, COUNT(*), CAST(SUM(deal_value_cents) AS TEXT), \
         SUM(CASE WHEN accept_time IS NULL THEN 0 ELSE 1 END), \
         CAST(SUM(CASE WHEN accept_time IS NULL OR psc_deal_id IS NOT NULL THEN NULL ELSE EXTRACT(EPOCH FROM (accept_time - create_time)) END) AS DOUBLE PRECISION), \
         SUM(CASE WHEN status = 'NEW' AND expire_time >= now() AND expire_time < now() + interval '7 days' THEN 1 ELSE 0 END) \
         FROM referrals WHERE organization = '{organization}' AND party = 'PARTNER' \
         GROUP BY status, substatus, deal_type, direction, currency"
    )
}
