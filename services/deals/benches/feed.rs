//! Benchmark of the change feed and the expiry sweeper on PostgreSQL (not a test; prints
//! figures): referrals created through gRPC at full speed by 16 clients, with nobody watching
//! and with 16 other clients watching the organization's feed, in the order alone, watched,
//! watched, alone (events/s delivered to the watchers, and the write rate watched beside the
//! rate alone as a ratio; target: watching costs writers under 10 %); then the sweeper's time
//! to expire 100,000 due Inbound referrals.
//!
//! Run: `cargo bench -p cosell-deals --bench feed`. Environment: COSELL_BENCH_DATABASE_URL
//! (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), COSELL_BENCH_CALLS
//! (creates per phase, default 3,000), COSELL_BENCH_DUE (referrals to expire, default 100,000),
//! COSELL_BENCH_REPORT (a file for the one table's rows, see `cosell_testkit::bench::report`).

#[allow(dead_code)]
#[path = "../tests/deals/harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cosell_platform::clock::{Clock, ManualClock};
use cosell_proto::deals as pb;
use cosell_testkit::bench::report::{self, Report, Row};
use cosell_testkit::bench::{env_count, measure, postgres_admin_url};
use cosell_testkit::{TestDb, authed};
use harness::{Harness, RITA};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

const CONCURRENCY: usize = 16;
const WATCHERS: usize = 16;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = Report::from_env("deals/feed");
    let calls = env_count("COSELL_BENCH_CALLS", 3_000);
    let due = env_count("COSELL_BENCH_DUE", 100_000);
    let admin = postgres_admin_url();
    let clock = ManualClock::new();
    let db = TestDb::postgres(&admin).await?;
    let mut config = cosell_deals::Config::new(db.url.clone());
    config.clock = clock.clone();
    // The bench sweeps itself, timed; the service's own sweeper must not take its work.
    config.sweep_interval = Duration::from_secs(24 * 3600);
    let h = Harness::start_configured(db, config).await;
    let token = h.token(RITA).await;
    println!(
        "change feed on PostgreSQL: {calls} creates per phase by {CONCURRENCY} clients, {WATCHERS} watchers"
    );
    let connections: Vec<Channel> = (0..CONCURRENCY)
        .map(|_| Endpoint::from_shared(h.server.url()).map(|e| e.connect_lazy()))
        .collect::<Result<_, _>>()?;
    let template = h.complete(pb::DealType::Private, &h.contoso_solution);
    let writes = |n: usize| {
        let clients: Vec<_> = connections
            .iter()
            .map(|c| pb::referral_service_client::ReferralServiceClient::new(c.clone()))
            .collect();
        let (token, template) = (token.clone(), template.clone());
        measure(CONCURRENCY, n, move |i| {
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
    };

    // Warm up; then nobody watching and 16 watching alternate (alone, watched, watched,
    // alone), so that what drifts during the run (the tables grow, the machine's speed) weighs
    // on both alike.
    writes(200).await;
    let half = calls.div_ceil(2);
    let first_alone = writes(half).await;
    println!("creates, nobody watching     {}", first_alone.line());

    // 16 watchers, each a client of its own (its own connection, as an integration that
    // follows the feed is), counting what reaches them.
    let delivered = Arc::new(AtomicUsize::new(0));
    let last_delivery = Arc::new(std::sync::Mutex::new(Instant::now()));
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let connection = Endpoint::from_shared(h.server.url())?.connect().await?;
        let mut stream = pb::event_service_client::EventServiceClient::new(connection)
            .watch_events(authed(
                &token,
                pb::WatchEventsRequest {
                    parent: h.contoso.clone(),
                    after: String::new(),
                },
            ))
            .await?
            .into_inner();
        let (delivered, last) = (delivered.clone(), last_delivery.clone());
        watchers.push(tokio::spawn(async move {
            while let Some(Ok(_)) = stream.next().await {
                delivered.fetch_add(1, Ordering::Relaxed);
                *last.lock().unwrap() = Instant::now();
            }
        }));
    }
    let started = Instant::now();
    let mut watched = Vec::new();
    for _ in 0..2 {
        let w = writes(half).await;
        println!("creates, {WATCHERS} watching         {}", w.line());
        watched.push(w);
    }
    let expected = 2 * half * WATCHERS;
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = delivered.load(Ordering::Relaxed);
    let took = last_delivery.lock().unwrap().duration_since(started);
    for w in watchers {
        w.abort();
    }
    let second_alone = writes(half).await;
    println!("creates, nobody watching     {}", second_alone.line());
    // Equal halves: the rate over both is the harmonic mean of theirs.
    let over_both = |a: f64, b: f64| 2.0 / (1.0 / a + 1.0 / b);
    let alone = over_both(first_alone.rate, second_alone.rate);
    let watching = over_both(watched[0].rate, watched[1].rate);
    println!(
        "creates alone / watched      {alone:>7.0}/s / {watching:>7.0}/s  ({:.2} of the rate alone; target >= 0.90)",
        watching / alone
    );
    println!(
        "events delivered             {:>7.0}/s  ({got} of {expected} to {WATCHERS} watchers in {:.2} s)",
        got as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
    let share = watching / alone;
    report.add(
        Row::new(
            format!(
                "creates through gRPC, c16, while {WATCHERS} clients watch the feed ({} per phase)",
                report::thousands((2 * half) as f64)
            ),
            report::rate(watching),
        )
        .value(watching, "/s")
        .baseline(format!(
            "the same creates, nobody watching: {}",
            report::rate(alone)
        ))
        .baseline_value(alone)
        .ratio(share)
        .target(">= 0.9 (issue 17)", share >= 0.9),
    )?;
    report.add(
        Row::new(
            format!("events delivered to {WATCHERS} watchers"),
            format!(
                "{} ({} of {})",
                report::rate(got as f64 / took.as_secs_f64()),
                report::thousands(got as f64),
                report::thousands(expected as f64)
            ),
        )
        .value(got as f64 / took.as_secs_f64(), "/s")
        .target("every event, once", got == expected),
    )?;

    // The sweeper: `due` waiting Inbound referrals, all past their expiry time.
    let store = &h.deals.store;
    let sent = h.send_inbound("").await;
    let mut model = store
        .get(sent.name.trim_start_matches("referrals/").parse()?)
        .await?
        .expect("the inbound referral");
    model.expire_time = Some(clock.now() + chrono::Duration::days(14));
    let mut made = 0;
    while made < due {
        let n = (due - made).min(1_000);
        let batch: Vec<_> = (0..n)
            .map(|_| {
                let mut r = model.clone();
                r.id = Uuid::now_v7();
                r.engagement = Uuid::now_v7();
                r
            })
            .collect();
        store.insert(&batch, None, &[]).await?;
        made += n;
    }
    cosell_platform::db::analyze(store.db(), &["referrals"])
        .await
        .ok();
    clock.advance(chrono::Duration::days(15));
    let t = Instant::now();
    let mut expired = 0;
    while expired < due as u64 {
        let swept = h.deals.sweep_once().await?;
        if swept.expired == 0 {
            break;
        }
        expired += swept.expired;
    }
    let took = t.elapsed();
    println!(
        "sweeper                      {expired} of {} due referrals expired in {:.1} s ({:.0}/s)",
        due + 1,
        took.as_secs_f64(),
        expired as f64 / took.as_secs_f64()
    );
    report.add(
        Row::new(
            format!(
                "expiry sweeper, {} due referrals",
                report::thousands((due + 1) as f64)
            ),
            format!(
                "{} expired in {} ({})",
                report::thousands(expired as f64),
                report::duration(took),
                report::rate(expired as f64 / took.as_secs_f64())
            ),
        )
        .value(took.as_secs_f64(), "s"),
    )?;
    Ok(())
}
