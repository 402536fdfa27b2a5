//! Benchmark of the deals API on PostgreSQL (not a test; prints figures): create, get and list
//! (a page of 50 among 100,000 referrals of one organization) through gRPC with authentication
//! and access checks, beside, measured in the same run on the same machine, a trivial gRPC call
//! (the health check) and the equivalent plain SQL statements on the same database, as ratios.
//!
//! Targets: get >= 10,000/s, create >= 2,000/s, list p99 <= 10 ms. Each of the 16 concurrent
//! clients has its own connection, as separate integrations would.
//!
//! Run: `cargo bench -p cosell-deals --bench api`. Environment: COSELL_BENCH_DATABASE_URL (the
//! PostgreSQL server; default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable: the
//! server is on this machine, where TLS only costs CPU), COSELL_BENCH_CALLS
//! (calls per figure, default 10,000), COSELL_BENCH_REFERRALS (default 100,000),
//! COSELL_BENCH_REPORT (a file for the one table's rows, see `cosell_testkit::bench::report`).
//!
//! Issue 19's targets, ratios to baselines of the same run: create >= 0.5 of plain SQL inserts;
//! get >= 0.7 of the floor `1 / (1/trivial gRPC call + 1/plain select outside the pool)`; a list
//! page at c16 >= 0.6 of the plain page outside the pool, with a p99 at most twice the plain
//! page's.

#[allow(dead_code)]
#[path = "../tests/deals/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Instant;

use cosell_proto::deals as pb;
use cosell_testkit::bench::report::{self, Report, Row};
use cosell_testkit::bench::{Figures, env_count, measure, postgres_admin_url};
use cosell_testkit::{TestDb, authed};
use harness::{Harness, RITA};
use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement};
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

const CONCURRENCY: usize = 16;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = Report::from_env("deals/api");
    let calls = env_count("COSELL_BENCH_CALLS", 10_000);
    let total = env_count("COSELL_BENCH_REFERRALS", 100_000);
    let admin = postgres_admin_url();
    let h = Harness::start_on(TestDb::postgres(&admin).await?).await;
    let token = h.token(RITA).await;
    println!(
        "deals API on PostgreSQL: {total} referrals of one organization, {calls} calls per figure, concurrency {CONCURRENCY}"
    );
    println!();

    // Each concurrent client has a connection of its own, as separate integrations would: call
    // `i` belongs to client `i % concurrency`.
    let connections: Vec<Channel> = (0..CONCURRENCY)
        .map(|_| Endpoint::from_shared(h.server.url()).map(|e| e.connect_lazy()))
        .collect::<Result<_, _>>()?;
    let referrals: Vec<_> = connections
        .iter()
        .map(|c| pb::referral_service_client::ReferralServiceClient::new(c.clone()))
        .collect();

    // The floor: a trivial gRPC call on the same server (no token check, no work).
    let health: Vec<_> = connections
        .iter()
        .map(|c| tonic_health::pb::health_client::HealthClient::new(c.clone()))
        .collect();
    let trivial = measure(CONCURRENCY, calls, move |i| {
        let mut health = health[i % CONCURRENCY].clone();
        async move {
            let t = Instant::now();
            health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .expect("health");
            t.elapsed()
        }
    })
    .await;
    println!("trivial gRPC call (health)   {}", trivial.line());

    // Create through gRPC: a complete PRIVATE referral for a directory customer.
    let template = h.complete(pb::DealType::Private, &h.contoso_solution);
    let creates = calls.min(total);
    let create = {
        let clients = referrals.clone();
        let token = token.clone();
        measure(CONCURRENCY, creates, move |i| {
            let req = authed(
                &token,
                pb::CreateReferralRequest {
                    request_id: Uuid::new_v4().to_string(),
                    referral: Some(template.clone()),
                },
            );
            let mut client = clients[i % CONCURRENCY].clone();
            async move {
                let t = Instant::now();
                client.create_referral(req).await.expect("create");
                t.elapsed()
            }
        })
        .await
    };
    println!(
        "create through gRPC          {}  (target >= 2,000/s)",
        create.line()
    );

    // Fill up to `total` straight through the store (the API's own insert path, batched).
    let store = &h.deals.store;
    let first = store
        .list(&filter(&h), None, 1)
        .await?
        .pop()
        .expect("a created referral");
    let fill = Instant::now();
    let mut made = creates;
    while made < total {
        let n = (total - made).min(1000);
        let batch: Vec<_> = (0..n)
            .map(|_| {
                let mut r = first.clone();
                r.id = Uuid::now_v7();
                r.engagement = Uuid::now_v7();
                r.create_time = cosell_deals::domain::now();
                r.update_time = r.create_time;
                r
            })
            .collect();
        store.insert(&batch, None, &[]).await?;
        made += n;
    }
    // The insights' counters of the filled referrals, folded as the service's folder does within
    // a second (else that fold of 100,000 rows runs during the gets), then the sequencer and the
    // notifications' deriver caught up with the creates, as they are a few seconds later.
    store.fold_insight_deltas().await?;
    store.sequence().await?;
    while h.deals.notify_once().await? > 0 {}
    let fill_secs = fill.elapsed().as_secs_f64();
    // Statistics for the planner, as autovacuum would gather them after such a bulk insert.
    store
        .db()
        .execute_unprepared("VACUUM ANALYZE referrals, insight_deltas")
        .await?;
    if std::env::var("COSELL_BENCH_EXPLAIN").is_ok() {
        let sql = cosell_deals::store::list_query(
            &filter(&h),
            Some((chrono::Utc::now(), String::new())),
            51,
        )
        .build(DbBackend::Postgres)
        .to_string();
        let plan = store
            .db()
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("EXPLAIN ANALYZE {sql}"),
            ))
            .await?;
        println!("{sql}");
        for row in plan {
            println!("  {}", row.try_get::<String>("", "QUERY PLAN")?);
        }
    }
    let newest = store.list(&filter(&h), None, 20_000).await?;
    let ids: Arc<Vec<String>> = Arc::new(
        newest
            .iter()
            .map(|r| format!("referrals/{}", r.id))
            .collect(),
    );
    // Where the first 41 pages of 50 start (the plain SQL pages below continue from these).
    let page_starts: Arc<Vec<PageStart>> = Arc::new(
        std::iter::once(None)
            .chain(
                newest
                    .chunks(50)
                    .take(40)
                    .map(|page| page.last().map(|r| (r.create_time, r.id.to_string()))),
            )
            .collect(),
    );

    // Get through gRPC.
    let get = {
        let clients = referrals.clone();
        let token = token.clone();
        let ids = ids.clone();
        measure(CONCURRENCY, calls, move |i| {
            let req = authed(
                &token,
                pb::GetReferralRequest {
                    name: ids[(i * 7919) % ids.len()].clone(),
                },
            );
            let mut client = clients[i % CONCURRENCY].clone();
            async move {
                let t = Instant::now();
                client.get_referral(req).await.expect("get");
                t.elapsed()
            }
        })
        .await
    };
    println!(
        "get through gRPC             {}  (target >= 10,000/s)",
        get.line()
    );
    if let Some((gets, statements)) = h.deals.store.gets_shared() {
        println!(
            "  ({gets} gets went in {statements} statements: {:.1} a statement)",
            gets as f64 / statements.max(1) as f64
        );
    }
    // The same reads straight from the store, in process: what the gRPC layers add is the
    // difference.
    let store_get = {
        let deals = h.deals.clone();
        let ids = ids.clone();
        let principal = h.contoso.clone();
        measure(CONCURRENCY, calls, move |i| {
            let deals = deals.clone();
            let id = Uuid::parse_str(ids[(i * 7919) % ids.len()].trim_start_matches("referrals/"))
                .expect("uuid");
            let principal = principal.clone();
            async move {
                let t = Instant::now();
                deals.store.get_for(id, &principal).await.expect("get");
                t.elapsed()
            }
        })
        .await
    };
    println!("get from the store (no gRPC) {}", store_get.line());

    // List through gRPC: pages of 50, the first ones and deeper ones (page tokens from a walk).
    let mut tokens = vec![String::new()];
    let mut page_bytes = 0;
    {
        let mut client = h.referrals();
        let mut next = String::new();
        for _ in 0..40 {
            let page = client
                .list_referrals(authed(
                    &token,
                    pb::ListReferralsRequest {
                        page_size: 50,
                        page_token: next.clone(),
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            page_bytes = page_bytes.max(prost::Message::encoded_len(&page));
            next = page.next_page_token;
            tokens.push(next.clone());
        }
    }
    let tokens = Arc::new(tokens);
    println!("(a page of 50 is up to {page_bytes} bytes of protobuf)");
    let mut list = Vec::new();
    for concurrency in [1, CONCURRENCY] {
        let clients = referrals.clone();
        let token = token.clone();
        let tokens = tokens.clone();
        let figures = measure(concurrency, calls / 4, move |i| {
            let req = authed(
                &token,
                pb::ListReferralsRequest {
                    page_size: 50,
                    page_token: tokens[i % tokens.len()].clone(),
                    ..Default::default()
                },
            );
            let mut client = clients[i % concurrency].clone();
            async move {
                let t = Instant::now();
                let page = client.list_referrals(req).await.expect("list");
                assert_eq!(page.into_inner().referrals.len(), 50);
                t.elapsed()
            }
        })
        .await;
        println!(
            "list, page of 50, c{concurrency:<2}      {}  (target p99 <= 10,000 us)",
            figures.line()
        );
        list.push(figures);
    }
    let list = list[1];
    // The same pages straight from the store, in process (the rows read and made referrals;
    // no gRPC, no access check).
    let store_list = {
        let deals = h.deals.clone();
        let principal = h.contoso.clone();
        let starts = page_starts.clone();
        let f = filter(&h);
        measure(CONCURRENCY, calls / 4, move |i| {
            let (deals, principal, f) = (deals.clone(), principal.clone(), f.clone());
            let start = starts[i % starts.len()].clone();
            async move {
                let t = Instant::now();
                let page = deals
                    .store
                    .list_for(&f, start, 51, &principal)
                    .await
                    .expect("list");
                assert_eq!(page.len(), 51);
                t.elapsed()
            }
        })
        .await
    };
    println!("list from the store (no gRPC) {}", store_list.line());

    // The same work in plain SQL on the same database, through a pool of 16 connections.
    let mut options = sea_orm::ConnectOptions::new(h.deals_database_url());
    // Checked like the service's own pools (platform::db): no ping before each statement.
    options
        .max_connections(16)
        .test_before_acquire_if_idle_for(std::time::Duration::from_secs(1));
    let pool = sea_orm::Database::connect(options).await?;
    let row = pool
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT * FROM referrals LIMIT 1",
        ))
        .await?
        .expect("a row");
    let sql_get = {
        let pool = pool.clone();
        let ids = ids.clone();
        measure(CONCURRENCY, calls, move |i| {
            let pool = pool.clone();
            let select = select_by_id(&ids, i);
            async move {
                let t = Instant::now();
                pool.query_one_raw(select).await.expect("select");
                t.elapsed()
            }
        })
        .await
    };
    // The same select on connections outside the pool, as the API's reads run (Lane): no
    // release round trip.
    let lane = Arc::new(cosell_platform::db::lane::Lane::new(&pool));
    let sql_get_lane = {
        let lane = lane.clone();
        let ids = ids.clone();
        measure(CONCURRENCY, calls, move |i| {
            let lane = lane.clone();
            let select = select_by_id(&ids, i);
            async move {
                let t = Instant::now();
                lane.one(&select).await.expect("select").expect("a row");
                t.elapsed()
            }
        })
        .await
    };
    let sql_insert = {
        let pool = pool.clone();
        let row_id: String = row.try_get("", "id")?;
        measure(CONCURRENCY, creates, move |_| {
            let pool = pool.clone();
            let from = row_id.clone();
            async move {
                let t = Instant::now();
                pool.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "INSERT INTO referrals (id, engagement, create_time, update_time, organization, mpn_location, party, direction, deal_type, status, substatus, status_reason, display_name, customer_entity, customer_name, customer_search, customer_json, consent_to_share, assistance_json, solutions_json, team_json, team_emails, deal_value_cents, currency, estimated_close_date, notes, seller_contact_json, accept_time, close_time, expire_time, version, external_reference_id) SELECT $1, $2, now(), now(), organization, mpn_location, party, direction, deal_type, status, substatus, status_reason, display_name, customer_entity, customer_name, customer_search, customer_json, consent_to_share, assistance_json, solutions_json, team_json, team_emails, deal_value_cents, currency, estimated_close_date, notes, seller_contact_json, accept_time, close_time, expire_time, version, external_reference_id FROM referrals WHERE id = $3",
                    [Uuid::now_v7().to_string().into(), Uuid::now_v7().to_string().into(), from.into()],
                ))
                .await
                .expect("insert");
                t.elapsed()
            }
        })
        .await
    };
    // The API's own page statement (from a cursor: the last referral's create time and id),
    // without its favorite column: through the pool, and on the lane's connections (which also
    // plan it once per connection; see cosell_platform::db::reads).
    let page_statement = {
        let f = filter(&h);
        move |i: usize| {
            cosell_deals::store::list_query(&f, page_starts[i % page_starts.len()].clone(), 51)
                .build(DbBackend::Postgres)
        }
    };
    let sql_list = {
        let pool = pool.clone();
        let page_statement = page_statement.clone();
        measure(CONCURRENCY, calls / 4, move |i| {
            let pool = pool.clone();
            let statement = page_statement(i);
            async move {
                let t = Instant::now();
                let rows = pool.query_all_raw(statement).await.expect("list");
                assert_eq!(rows.len(), 51);
                t.elapsed()
            }
        })
        .await
    };
    let sql_list_lane = measure(CONCURRENCY, calls / 4, move |i| {
        let lane = lane.clone();
        let statement = page_statement(i);
        async move {
            let t = Instant::now();
            let rows = lane.all(&statement).await.expect("list");
            assert_eq!(rows.len(), 51);
            t.elapsed()
        }
    })
    .await;

    let ratio = |api: &Figures, base: &Figures| api.rate / base.rate;
    println!("plain SQL insert             {}", sql_insert.line());
    println!("plain SQL select by id       {}", sql_get.line());
    println!("  the same, outside the pool {}", sql_get_lane.line());
    println!("plain SQL page of 50         {}", sql_list.line());
    println!("  the same, outside the pool {}", sql_list_lane.line());
    println!();
    println!(
        "API throughput as a share of its baseline: create {:.2} of plain SQL inserts, get {:.2} of plain SQL selects ({:.2} of those outside the pool), list (c16) {:.2} of plain SQL pages ({:.2} of those outside the pool), get {:.2} of trivial gRPC calls",
        ratio(&create, &sql_insert),
        ratio(&get, &sql_get),
        ratio(&get, &sql_get_lane),
        ratio(&list, &sql_list),
        ratio(&list, &sql_list_lane),
        ratio(&get, &trivial)
    );
    println!(
        "({} referrals filled through the store in {fill_secs:.1} s)",
        total - creates
    );

    // Issue 19's figures, each beside its baseline of this run.
    let size = report::thousands(total as f64);
    let share = ratio(&create, &sql_insert);
    report.add(
        Row::new(
            "referral create through gRPC, c16",
            report::figures(&create),
        )
        .value(create.rate, "/s")
        .baseline(format!(
            "plain SQL inserts: {}",
            report::rate(sql_insert.rate)
        ))
        .baseline_value(sql_insert.rate)
        .ratio(share)
        .target(">= 0.5 (issue 19)", share >= 0.5),
    )?;
    // A get can be no faster than a trivial gRPC call and a plain select one after the other.
    let floor = 1.0 / (1.0 / trivial.rate + 1.0 / sql_get_lane.rate);
    println!(
        "get as a share of the floor 1/(1/trivial gRPC call + 1/plain select outside the pool) = {:.0}/s: {:.2}",
        floor,
        get.rate / floor
    );
    let share = get.rate / floor;
    report.add(
        Row::new(
            format!("referral get through gRPC, c16, {size} referrals"),
            report::figures(&get),
        )
        .value(get.rate, "/s")
        .baseline(format!(
            "floor `1/(1/trivial + 1/plain select)`: 1/(1/{} + 1/{}) = {}",
            report::thousands(trivial.rate),
            report::thousands(sql_get_lane.rate),
            report::rate(floor)
        ))
        .baseline_value(floor)
        .ratio(share)
        .target(">= 0.7 (issue 19)", share >= 0.7),
    )?;
    let share = ratio(&list, &sql_list_lane);
    let tail = list.p99.as_secs_f64() / sql_list_lane.p99.as_secs_f64();
    report.add(
        Row::new(
            format!("list, page of 50, c16, {size} referrals"),
            report::figures(&list),
        )
        .value(list.rate, "/s")
        .baseline(format!(
            "plain page outside the pool: {}, p99 {}",
            report::rate(sql_list_lane.rate),
            report::duration(sql_list_lane.p99)
        ))
        .baseline_value(sql_list_lane.rate)
        .ratio_shown(share, format!("{share:.2} (p99 {tail:.1}x)"))
        .target(">= 0.6, p99 <= 2x (issue 19)", share >= 0.6 && tail <= 2.0),
    )?;
    Ok(())
}

/// Where a page of a list starts: after the referral of this create time and id (the first
/// page: `None`).
type PageStart = Option<(chrono::DateTime<chrono::Utc>, String)>;

/// The plain SQL select of call `i`'s referral, picked as the API's gets pick theirs.
fn select_by_id(ids: &[String], i: usize) -> Statement {
    let id = ids[(i * 7919) % ids.len()].trim_start_matches("referrals/");
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT * FROM referrals WHERE id = $1",
        [id.into()],
    )
}

fn filter(h: &Harness) -> cosell_deals::store::ReferralFilter {
    let mut f = cosell_deals::store::ReferralFilter::new(cosell_deals::domain::Party::Partner);
    f.organization = cosell_platform::names::parse_one(&h.contoso, "organizations").ok();
    f
}
