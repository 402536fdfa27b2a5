//! The soak (issue 19; not a test, not in CI): the four services as processes on PostgreSQL
//! (`support/services.rs`, as the `migrate` benchmark runs them) under a mixed load at a fixed
//! rate for a while: directory searches, and gets, creates, updates and lists of referrals,
//! each sent on its own schedule whether or not earlier calls have answered (so that a slow
//! service meets more load, not less); 8 watches of the event feed open throughout; and, once
//! the first minute is measured, a 100,000-deal PSC migration (import, run, report) beside it.
//!
//! Printed each minute: per RPC the calls, errors, p50 and p99, the events the watchers got,
//! and each service's resident memory. At the end: the unexpected errors (every error is one:
//! the load asks only what must succeed; target 0), the migration's phases, and each service's
//! RSS at the end against the end of the first minute (target: flat within 10%).
//!
//! Run: `cargo bench -p cosell-migration --bench soak`. Environment: COSELL_SOAK_MINUTES
//! (default 10), COSELL_SOAK_DEALS (the migration's size, default 100,000; 0: none),
//! COSELL_SOAK_RATE (a factor on the calls per second below, default 1),
//! COSELL_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
//! COSELL_BENCH_LOGS (a folder that keeps the services' logs), COSELL_BENCH_HEAPTRACK (a
//! service run under heaptrack: docs/benchmarks.md, "Profiling the heap").

#[allow(dead_code)]
#[path = "support/customers.rs"]
mod customers;
#[allow(dead_code)]
#[path = "support/services.rs"]
mod services;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cosell_migration::psc::synthetic;
use cosell_proto::deals as dpb;
use cosell_proto::directory as dirpb;
use cosell_proto::identity as ipb;
use cosell_proto::migration as pb;
use cosell_testkit::authed;
use services::{Proc, Suite, migrated_in_report, run_to_end, token, upload};
use tonic::transport::{Channel, Endpoint};

/// Calls per second of each RPC of the load, before COSELL_SOAK_RATE.
const RATES: [(&str, f64); 5] = [
    ("SearchEntities", 40.0),
    ("GetReferral", 40.0),
    ("ListReferrals", 10.0),
    ("CreateReferral", 10.0),
    ("UpdateReferral", 10.0),
];
const WATCHERS: usize = 8;
/// Connections the load's calls are spread over.
const CONNECTIONS: usize = 4;
/// A call's deadline: one that takes longer is an error.
const DEADLINE: Duration = Duration::from_secs(10);
/// Referrals made before the load starts, for the gets and updates.
const POOL: usize = 200;

fn main() -> anyhow::Result<()> {
    services::main(soak)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Latencies and errors per minute and RPC.
#[derive(Default)]
struct Stats {
    /// When the load started: minute 0 begins there.
    started: OnceLock<Instant>,
    calls: Mutex<BTreeMap<(u64, &'static str), Vec<Duration>>>,
    errors: Mutex<BTreeMap<(u64, &'static str), Vec<String>>>,
    events: AtomicU64,
}

impl Stats {
    fn minute(&self) -> u64 {
        self.started.get().map_or(0, |s| s.elapsed().as_secs() / 60)
    }

    fn record(&self, rpc: &'static str, took: Duration, result: Result<(), tonic::Status>) {
        let minute = self.minute();
        match result {
            Ok(()) => self
                .calls
                .lock()
                .unwrap()
                .entry((minute, rpc))
                .or_default()
                .push(took),
            Err(s) => self
                .errors
                .lock()
                .unwrap()
                .entry((minute, rpc))
                .or_default()
                .push(format!("{:?}: {}", s.code(), s.message())),
        }
    }
}

/// What the calls need: clients, tokens and the data they name.
struct Load {
    stats: Arc<Stats>,
    deals: Vec<Channel>,
    directory: Vec<Channel>,
    token: String,
    template: dpb::Referral,
    /// Referrals with their latest etag; an update takes one out and puts it back.
    pool: Mutex<VecDeque<(String, String)>>,
    next: AtomicU64,
}

impl Load {
    fn pick(&self, channels: &[Channel]) -> Channel {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        channels[i % channels.len()].clone()
    }

    fn req<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = authed(&self.token, message);
        r.set_timeout(DEADLINE);
        r
    }

    async fn call(&self, rpc: &'static str) -> Result<(), tonic::Status> {
        let i = self.next.load(Ordering::Relaxed) as usize;
        let referrals =
            || dpb::referral_service_client::ReferralServiceClient::new(self.pick(&self.deals));
        match rpc {
            "SearchEntities" => {
                let (name, _, country) = synthetic::customer(i);
                dirpb::directory_service_client::DirectoryServiceClient::new(
                    self.pick(&self.directory),
                )
                .search_entities(self.req(dirpb::SearchEntitiesRequest {
                    query: name,
                    country_code: country.into(),
                    page_size: 10,
                    ..Default::default()
                }))
                .await?;
            }
            "GetReferral" => {
                let name = self
                    .pool
                    .lock()
                    .unwrap()
                    .get(i % POOL)
                    .map(|(n, _)| n.clone());
                if let Some(name) = name {
                    referrals()
                        .get_referral(self.req(dpb::GetReferralRequest { name }))
                        .await?;
                }
            }
            "ListReferrals" => {
                referrals()
                    .list_referrals(self.req(dpb::ListReferralsRequest {
                        direction: dpb::Direction::Outbound as i32,
                        page_size: 50,
                        ..Default::default()
                    }))
                    .await?;
            }
            "CreateReferral" => {
                self.create().await?;
            }
            "UpdateReferral" => {
                let Some((name, etag)) = self.pool.lock().unwrap().pop_front() else {
                    return Ok(());
                };
                let result = referrals()
                    .update_referral(self.req(dpb::UpdateReferralRequest {
                        referral: Some(dpb::Referral {
                            name: name.clone(),
                            etag: etag.clone(),
                            notes: format!("soak update {i}"),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["notes".into()],
                        }),
                    }))
                    .await;
                let etag = match &result {
                    Ok(r) => r
                        .get_ref()
                        .referral
                        .as_ref()
                        .map_or(etag, |r| r.etag.clone()),
                    Err(_) => etag,
                };
                self.pool.lock().unwrap().push_back((name, etag));
                result?;
            }
            _ => unreachable!("{rpc}"),
        }
        Ok(())
    }

    async fn create(&self) -> Result<dpb::Referral, tonic::Status> {
        dpb::referral_service_client::ReferralServiceClient::new(self.pick(&self.deals))
            .create_referral(self.req(dpb::CreateReferralRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                referral: Some(self.template.clone()),
            }))
            .await
            .map(|r| r.into_inner().referral.unwrap_or_default())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn connections(url: &str) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::new();
    for _ in 0..CONNECTIONS {
        out.push(Endpoint::from_shared(url.to_owned())?.connect().await?);
    }
    Ok(out)
}

async fn soak() -> anyhow::Result<()> {
    let minutes: u64 = env_or("COSELL_SOAK_MINUTES", 10);
    let deals: usize = env_or("COSELL_SOAK_DEALS", 100_000);
    let factor: f64 = env_or("COSELL_SOAK_RATE", 1.0);
    let admin = std::env::var("COSELL_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let work = tempfile::tempdir()?;
    let logs = std::env::var("COSELL_BENCH_LOGS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| work.path().to_owned());
    std::fs::create_dir_all(&logs)?;
    let suite = Suite::start(&admin, work.path(), &logs).await?;

    let identity = Endpoint::from_shared(suite.identity.url.clone())?
        .connect()
        .await?;
    let oli = token(&identity, "oli.operator@platform.example").await?;
    let ada = token(&identity, "ada.admin@contoso.com").await?;
    let rita = token(&identity, "rita.referrals@contoso.com").await?;
    let contoso = ipb::access_service_client::AccessServiceClient::new(identity.clone())
        .get_caller(authed(&ada, ipb::GetCallerRequest {}))
        .await?
        .into_inner()
        .organization;
    let directory = connections(&suite.directory.url).await?;
    // Every customer a generated export can name (five deals each make them all appear).
    customers::load(directory[0].clone(), &oli, synthetic::CUSTOMER_COUNT * 5).await?;
    let deals_channels = connections(&suite.deals.url).await?;

    // A customer and a solution for the referrals the load creates.
    let (name, _, country) = synthetic::customer(0);
    let entity = dirpb::directory_service_client::DirectoryServiceClient::new(directory[0].clone())
        .search_entities(authed(
            &rita,
            dirpb::SearchEntitiesRequest {
                query: name,
                country_code: country.into(),
                page_size: 1,
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .results
        .first()
        .and_then(|r| r.entity.as_ref())
        .map(|e| e.name.clone())
        .ok_or_else(|| anyhow::anyhow!("the first customer is not in the directory"))?;
    let solution =
        dpb::catalog_service_client::CatalogServiceClient::new(deals_channels[0].clone())
            .create_solution(authed(
                &oli,
                dpb::CreateSolutionRequest {
                    solution: Some(dpb::Solution {
                        display_name: "Contoso Cloud Analytics".into(),
                        kind: dpb::SolutionKind::PartnerSolution as i32,
                        cosell_ready: true,
                        mpn_id: "4000001".into(),
                        ..Default::default()
                    }),
                    publisher: contoso.clone(),
                },
            ))
            .await?
            .into_inner()
            .solution
            .unwrap_or_default()
            .name;
    let template = dpb::Referral {
        display_name: "Soak renewal".into(),
        deal_type: dpb::DealType::Private as i32,
        customer: Some(dpb::Customer {
            entity,
            size: dpb::CustomerSize::CustomerSize251To1000 as i32,
            ..Default::default()
        }),
        solutions: vec![dpb::ReferralSolution {
            solution,
            ..Default::default()
        }],
        deal_value: Some(dpb::Money {
            currency_code: "USD".into(),
            amount: "125000.50".into(),
        }),
        estimated_close_date: "2027-03-31".into(),
        ..Default::default()
    };

    let stats = Arc::new(Stats::default());
    let load = Arc::new(Load {
        stats: stats.clone(),
        deals: deals_channels.clone(),
        directory,
        token: rita.clone(),
        template,
        pool: Mutex::new(VecDeque::new()),
        next: AtomicU64::new(0),
    });
    for _ in 0..POOL {
        let r = load.create().await?;
        load.pool.lock().unwrap().push_back((r.name, r.etag));
    }
    let started = *stats.started.get_or_init(Instant::now);
    let until = Instant::now() + Duration::from_secs(minutes * 60);
    println!(
        "soak: {minutes} min on PostgreSQL, four services as processes; per second {}; {WATCHERS} event watchers; a {deals}-deal migration after the first minute",
        RATES
            .iter()
            .map(|(rpc, rate)| format!("{rpc} {}", rate * factor))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut tasks = Vec::new();
    for (rpc, rate) in RATES {
        let load = load.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / (rate * factor)));
            while Instant::now() < until {
                tick.tick().await;
                let load = load.clone();
                tokio::spawn(async move {
                    let t = Instant::now();
                    let result = load.call(rpc).await;
                    load.stats.record(rpc, t.elapsed(), result);
                });
            }
        }));
    }
    for _ in 0..WATCHERS {
        let (stats, channel, token, parent) = (
            stats.clone(),
            deals_channels[0].clone(),
            rita.clone(),
            contoso.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut events = dpb::event_service_client::EventServiceClient::new(channel);
            let mut after = String::new();
            while Instant::now() < until {
                let watch = events
                    .watch_events(authed(
                        &token,
                        dpb::WatchEventsRequest {
                            parent: parent.clone(),
                            after: after.clone(),
                        },
                    ))
                    .await;
                let mut stream = match watch {
                    Ok(s) => s.into_inner(),
                    Err(s) => {
                        stats.record("WatchEvents", Duration::ZERO, Err(s));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                loop {
                    let left = until.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, stream.message()).await {
                        Err(_) => return,
                        Ok(Ok(Some(m))) => {
                            stats.events.fetch_add(1, Ordering::Relaxed);
                            if let Some(e) = m.event {
                                after = e.cursor;
                            }
                        }
                        Ok(Ok(None)) => break,
                        Ok(Err(s)) => {
                            stats.record("WatchEvents", Duration::ZERO, Err(s));
                            break;
                        }
                    }
                }
            }
        }));
    }
    let migration = {
        let (url, export, contoso) = (
            suite.migration.url.clone(),
            work.path().join("export"),
            contoso.clone(),
        );
        tokio::spawn(async move {
            if deals == 0 {
                return Ok(None);
            }
            synthetic::write(&export, deals)?;
            tokio::time::sleep_until((Instant::now() + Duration::from_secs(60)).into()).await;
            migrate(&url, &ada, &rita, &contoso, &export, deals)
                .await
                .map(Some)
        })
    };

    // Each minute: its figures, and each service's memory.
    let procs = suite.procs();
    let mut rss: Vec<Vec<f64>> = Vec::new();
    for minute in 0..minutes {
        tokio::time::sleep_until((started + Duration::from_secs((minute + 1) * 60)).into()).await;
        let events = stats.events.swap(0, Ordering::Relaxed);
        let now: Vec<f64> = procs.iter().map(|p| p.rss_mib()).collect();
        print_minute(&stats, minute, events, &procs, &now);
        rss.push(now);
    }
    for t in tasks {
        t.await?;
    }
    // In-flight calls end within their deadline.
    tokio::time::sleep(DEADLINE).await;
    let migrated = migration.await??;

    println!();
    let errors = stats.errors.lock().unwrap();
    let unexpected: usize = errors.values().map(Vec::len).sum();
    println!("unexpected errors: {unexpected} (target 0)");
    for ((minute, rpc), list) in errors.iter() {
        println!(
            "  minute {}: {rpc}: {} ({})",
            minute + 1,
            list.len(),
            list[0]
        );
    }
    let migrated_by = migrated.map(|(_, _, _, done)| done.duration_since(started));
    if let Some((import, run, report, _)) = migrated {
        println!(
            "migration of {deals} deals under the load: import {:.1} s, run {:.1} s, report {:.1} s",
            import.as_secs_f64(),
            run.as_secs_f64(),
            report.as_secs_f64()
        );
    }
    compare_rss(
        "end of minute 1 -> end (target: within 10%)",
        &procs,
        &rss,
        0,
    );
    // The migration's memory kept afterwards is told apart from a growth under the steady load.
    if let Some(done) = migrated_by {
        let after = (done.as_secs() / 60 + 1) as usize;
        if after + 1 < rss.len() {
            compare_rss(
                &format!("after the migration, end of minute {} -> end", after + 1),
                &procs,
                &rss,
                after,
            );
        }
    }
    Ok(())
}

/// Each service's resident memory at the end of minute `from + 1` against the end.
fn compare_rss(what: &str, procs: &[&Proc], rss: &[Vec<f64>], from: usize) {
    let (Some(first), Some(last)) = (rss.get(from), rss.last()) else {
        return;
    };
    println!("resident memory, {what}:");
    for (i, p) in procs.iter().enumerate() {
        let ratio = last[i] / first[i];
        println!(
            "  {:<10} {:>6.0} -> {:>6.0} MiB ({ratio:.2}x): {}",
            p.name,
            first[i],
            last[i],
            if (ratio - 1.0).abs() <= 0.10 {
                "flat"
            } else {
                "NOT flat"
            }
        );
    }
}

fn print_minute(stats: &Stats, minute: u64, events: u64, procs: &[&Proc], rss: &[f64]) {
    let calls = stats.calls.lock().unwrap();
    let errors = stats.errors.lock().unwrap();
    let mut parts = Vec::new();
    for (rpc, _) in RATES {
        let mut lat = calls.get(&(minute, rpc)).cloned().unwrap_or_default();
        lat.sort();
        let failed = errors.get(&(minute, rpc)).map_or(0, Vec::len);
        parts.push(format!(
            "{rpc} {} ok/{failed} err p50 {:.1} p99 {:.1} ms",
            lat.len(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        ));
    }
    let memory: Vec<String> = procs
        .iter()
        .zip(rss)
        .map(|(p, m)| format!("{} {m:.0}", p.name))
        .collect();
    println!(
        "minute {:>2}: {}; events {events}; RSS MiB {}",
        minute + 1,
        parts.join(", "),
        memory.join(" ")
    );
}

/// The migration: import, run (followed to its end), report; the time of each, and when it
/// ended.
async fn migrate(
    url: &str,
    ada: &str,
    rita: &str,
    contoso: &str,
    export: &std::path::Path,
    deals: usize,
) -> anyhow::Result<(Duration, Duration, Duration, Instant)> {
    let mut client = pb::migration_service_client::MigrationServiceClient::new(
        Endpoint::from_shared(url.to_owned())?.connect().await?,
    );
    let started = Instant::now();
    let imported = upload(&mut client, ada, contoso, export).await?;
    anyhow::ensure!(
        imported.deals_added as usize == deals && imported.errors.is_empty(),
        "the import took {} deals with {} errors",
        imported.deals_added,
        imported.errors.len()
    );
    let import = started.elapsed();
    let started = Instant::now();
    run_to_end(&mut client, rita, ada, contoso).await?;
    let run = started.elapsed();
    let started = Instant::now();
    let migrated = migrated_in_report(&mut client, ada, contoso).await?;
    let eligible = (0..deals).filter(|i| synthetic::eligible(*i)).count();
    anyhow::ensure!(
        migrated == eligible,
        "{migrated} of {eligible} eligible deals migrated"
    );
    Ok((import, run, started.elapsed(), Instant::now()))
}
