//! Benchmark at 1,000,000 entities (not a test; prints figures): the 399,203 real GLEIF
//! entities plus generated variants of them, loaded through `LoadEntities` into the directory on
//! PostgreSQL with its index on disk, then searched through gRPC; and the same queries answered
//! by PostgreSQL `pg_trgm` over the same rows in the same run, as the baseline.
//!
//! Prints: load rate (target >= 50,000 entities/s), index size, process RSS (target <= 1.5 GB;
//! the process holds the server and this small client), search latency through gRPC at
//! concurrency 1 and 16 (targets p50 <= 1 ms, p99 <= 5 ms), and pg_trgm's latency with the
//! ratio (target: at least 20x faster at p50). Each of the 16 concurrent clients has its own
//! connection, as separate users would.
//!
//! Run: `cargo bench -p cosell-directory --bench scale`. Environment: COSELL_BENCH_DATABASE_URL
//! (a PostgreSQL server to create the benchmark database on; default
//! postgres://postgres@127.0.0.1:5432/postgres), COSELL_BENCH_ENTITIES (default 1,000,000),
//! COSELL_BENCH_CALLS (searches per figure, default 4,000),
//! COSELL_GLEIF (the real file), COSELL_BENCH_SETTLE_SECS (the pause before searches, default
//! 20), COSELL_BENCH_REPORT (a file for the one table's rows, see
//! `cosell_testkit::bench::report`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosell_directory::load::{Row as CsvRow, Rows};
use cosell_platform::auth::{RemoteKeys, TokenVerifier};
use cosell_proto::directory as pb;
use cosell_proto::identity as ipb;
use cosell_testkit::authed;
use cosell_testkit::bench::measure;
use cosell_testkit::bench::report::{self, Report, Row};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tonic::transport::{Channel, Endpoint};

const WORDS: &[&str] = &[
    "Holdings",
    "Capital",
    "Partners",
    "Services",
    "Solutions",
    "Group",
    "Trust",
    "Ventures",
    "Logistics",
    "Energy",
    "Industries",
    "Technologies",
    "Properties",
    "Investments",
    "Trading",
    "Consulting",
    "Systems",
    "Management",
    "International",
    "Global",
    "Resources",
    "Finance",
];
const PLACES: &[&str] = &[
    "Europe", "Asia", "Americas", "Nordic", "Iberia", "Benelux", "Africa", "Pacific", "Alpine",
    "Atlantic", "Baltic", "Central", "Eastern", "Western", "Northern", "Southern",
];

fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q) as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = Report::from_env("directory/scale");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let gleif = std::env::var("COSELL_GLEIF")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("../../../shared/data/gleif-entities.csv.gz"));
    let total: usize = std::env::var("COSELL_BENCH_ENTITIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let admin_url = std::env::var("COSELL_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());

    let _log = cosell_platform::telemetry::init(
        "directory-bench",
        &cosell_platform::config::TelemetryArgs {
            log_filter: "cosell_directory=info".into(),
            log_json: false,
            otlp_endpoint: None,
        },
    );

    // The rows: real ones, then variants until `total`.
    let mut real = Vec::new();
    for row in Rows::new(std::fs::File::open(&gleif)?)? {
        if let CsvRow::Entity(e) = row {
            real.push((e.id, e.legal_name, e.country));
        }
    }
    let mut rows: Vec<(String, String, String)> = real.clone();
    let mut i = 0usize;
    while rows.len() < total {
        let (_, name, country) = &real[i % real.len()];
        let stem: Vec<&str> = name.split_whitespace().take(2).collect();
        let variant = format!(
            "{} {} {}",
            stem.join(" "),
            WORDS[i % WORDS.len()],
            PLACES[(i / WORDS.len()) % PLACES.len()]
        );
        rows.push((format!("BENCH{:015}", i), variant, country.clone()));
        i += 1;
    }
    rows.truncate(total);

    // A fresh database on the server.
    let db_name = format!("cosell_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&admin_url).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {db_name}"))
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or(admin_url.clone());
    let db_url = format!("{base}/{db_name}");
    let index_dir = tempfile::tempdir()?;

    // Identity (for tokens) and the directory, on one server.
    let mut identity = cosell_identity::Config::new("sqlite::memory:");
    identity.dev_auth = true;
    identity.demo = true;
    let identity = cosell_identity::start(&identity).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let channel: Channel = Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
    let mut config = cosell_directory::Config::new(db_url.clone());
    config.index_dir = Some(index_dir.path().to_owned());
    let directory = cosell_directory::start(&config, None).await?;
    // The server reaches identity over a connection of its own, as `cosell serve` does. Sharing
    // the client's connection can deadlock the first call: the key fetch that authenticates the
    // load waits behind the load's own data, which fills the connection's flow-control window
    // until the request times out.
    let loopback: Channel = Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
    let verifier = Arc::new(TokenVerifier::new(Arc::new(RemoteKeys::new(loopback))));
    let directory_handle = directory.directory.clone();
    tokio::spawn(cosell_platform::server::serve(
        listener,
        identity.services.merge(directory.services),
        verifier,
        Default::default(),
        std::future::pending(),
    ));
    let token = ipb::token_service_client::TokenServiceClient::new(channel.clone())
        .sign_in_with_email(ipb::SignInWithEmailRequest {
            email: "oli.operator@platform.example".into(),
            organization: String::new(),
        })
        .await?
        .into_inner()
        .access_token;
    let client = pb::directory_service_client::DirectoryServiceClient::new(channel.clone());
    let (rss_before, _) = rss();

    // Load through gRPC, the CSV made on the fly in 1 MiB chunks.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::LoadEntitiesRequest>(4);
    let feed_rows = rows.clone();
    let feeder = tokio::task::spawn_blocking(move || {
        let mut first = true;
        for part in feed_rows.chunks(10_000) {
            let mut w = csv::Writer::from_writer(Vec::with_capacity(1 << 20));
            if first {
                let _ = w.write_record(["LEI", "Entity.LegalName", "Entity.LegalAddress.Country"]);
                first = false;
            }
            for (id, name, country) in part {
                let _ = w.write_record([id, name, country]);
            }
            let chunk = w.into_inner().unwrap_or_default();
            if tx
                .blocking_send(pb::LoadEntitiesRequest {
                    chunk,
                    file_name: String::new(),
                })
                .is_err()
            {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut stream = client
        .clone()
        .load_entities(authed(
            &token,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await?
        .into_inner();
    let mut last = pb::LoadEntitiesResponse::default();
    while let Some(p) = stream.message().await? {
        last = p;
    }
    feeder.await?;
    let load_secs = started.elapsed().as_secs_f64();
    let (rss_loaded, hwm_loaded) = rss();
    println!(
        "directory at scale: {} entities ({} real, {} generated variants)",
        rows.len(),
        real.len().min(rows.len()),
        rows.len().saturating_sub(real.len())
    );
    println!();
    println!(
        "load through gRPC into PostgreSQL + index: {} loaded, {} failed in {:.1} s = {:.0} entities/s (target >= 50,000)",
        last.loaded,
        last.failed,
        load_secs,
        last.loaded as f64 / load_secs
    );
    println!(
        "index size on disk: {:.0} MB in {} segments",
        dir_size(index_dir.path()) as f64 / 1e6,
        directory_handle.index.segments()
    );
    println!(
        "process RSS: {:.0} MB before the load, {:.0} MB after, peak {:.0} MB (target <= 1,500 MB)",
        rss_before as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
        hwm_loaded as f64 / 1024.0
    );
    let entities = report::thousands(rows.len() as f64);
    let load_rate = last.loaded as f64 / load_secs;
    let peak_mb = hwm_loaded as f64 / 1024.0;
    report.add(
        Row::new(
            format!("directory load through `LoadEntities`, {entities} entities"),
            format!(
                "{} ({load_secs:.1} s, {} failed)",
                report::rate(load_rate),
                last.failed
            ),
        )
        .value(load_rate, "/s")
        .target(">= 50,000/s", load_rate >= 50_000.0 && last.failed == 0),
    )?;
    report.add(
        Row::new(
            format!("directory process peak RSS, {entities} entities loaded"),
            format!(
                "{peak_mb:.0} MB ({:.0} MB after the load)",
                rss_loaded as f64 / 1024.0
            ),
        )
        .value(peak_mb, "MB")
        .target("<= 1,500 MB", peak_mb <= 1_500.0),
    )?;

    // Queries: the evaluation set.
    let mut queries = Vec::new();
    let mut reader = csv::Reader::from_path(root.join("data/eval-queries.csv"))?;
    for rec in reader.records() {
        queries.push(rec?[1].to_owned());
    }
    let calls: usize = std::env::var("COSELL_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let search_token = token.clone();
    let search = move |client: pb::directory_service_client::DirectoryServiceClient<Channel>,
                       q: String| {
        let req = authed(
            &search_token,
            pb::SearchEntitiesRequest {
                query: q,
                page_size: 10,
                ..Default::default()
            },
        );
        async move {
            let t = Instant::now();
            client.clone().search_entities(req).await.expect("search");
            t.elapsed()
        }
    };
    for q in queries.iter().take(200) {
        search(client.clone(), q.clone()).await;
    }
    // Searches are measured once the load's aftermath is over: the index's compaction into one
    // segment and PostgreSQL's autovacuum of the new rows would otherwise share the 2 cores.
    let settle = Instant::now();
    while directory_handle.index.segments() > 1 && settle.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "index compacted to {} segment(s) {:.1} s after the load",
        directory_handle.index.segments(),
        settle.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(
        std::env::var("COSELL_BENCH_SETTLE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    ))
    .await;
    println!(
        "index segments after settling: {}",
        directory_handle.index.segments()
    );

    // The same queries straight on the index, in process: what gRPC adds is the difference.
    let mut lat = Vec::new();
    for q in queries.iter() {
        let t = Instant::now();
        directory_handle
            .index
            .search(&cosell_directory::index::SearchQuery {
                text: q.clone(),
                limit: 10,
                ..Default::default()
            })?;
        lat.push((t.elapsed(), q.clone()));
    }
    lat.sort();
    println!();
    println!(
        "search in process (no gRPC), concurrency  1: p50 {:>7.0} us  p99 {:>7.0} us; slowest: {:?} {:.0} us",
        us(lat[lat.len() / 2].0),
        us(lat[lat.len() * 99 / 100].0),
        lat.last().map(|l| l.1.clone()).unwrap_or_default(),
        us(lat.last().map(|l| l.0).unwrap_or_default())
    );
    let mut grpc_p50 = Duration::ZERO;
    let mut searched = Vec::new();
    // Each concurrent client has a connection of its own, as separate users would: call `i`
    // belongs to client `i % concurrency`.
    let clients: Vec<_> = (0..16)
        .map(|_| {
            Endpoint::from_shared(format!("http://{addr}")).map(|e| {
                pb::directory_service_client::DirectoryServiceClient::new(e.connect_lazy())
            })
        })
        .collect::<Result<_, _>>()?;
    for concurrency in [1usize, 16] {
        let (clients, queries, search) = (clients.clone(), queries.clone(), search.clone());
        let f = measure(concurrency, calls, move |i| {
            search(
                clients[i % concurrency].clone(),
                queries[(i * 7) % queries.len()].clone(),
            )
        })
        .await;
        let (rate, p50, p99) = (f.rate, f.p50, f.p99);
        if concurrency == 1 {
            grpc_p50 = p50;
        }
        searched.push(f);
        println!(
            "search through gRPC, concurrency {concurrency:>2}: {rate:>6.0} searches/s  p50 {:>7.0} us  p99 {:>7.0} us (targets p50 <= 1,000 us, p99 <= 5,000 us)",
            us(p50),
            us(p99)
        );
    }
    // The floor: a trivial call (the health check: no token check, no work) on the same server
    // and client, so that what a search costs shows beside what any gRPC call costs here.
    let health: Vec<_> = (0..16)
        .map(|_| {
            Endpoint::from_shared(format!("http://{addr}"))
                .map(|e| tonic_health::pb::health_client::HealthClient::new(e.connect_lazy()))
        })
        .collect::<Result<_, _>>()?;
    let mut trivial = Vec::new();
    for concurrency in [1usize, 16] {
        let health = health.clone();
        let f = measure(concurrency, calls, move |i| {
            let mut health = health[i % concurrency].clone();
            let req = tonic_health::pb::HealthCheckRequest::default();
            async move {
                let t = Instant::now();
                health.check(req).await.expect("health");
                t.elapsed()
            }
        })
        .await;
        let (rate, p50, p99) = (f.rate, f.p50, f.p99);
        println!(
            "baseline: trivial gRPC call (health check), concurrency {concurrency:>2}: {rate:>6.0} calls/s  p50 {:>7.0} us  p99 {:>7.0} us",
            us(p50),
            us(p99)
        );
        trivial.push(f);
    }
    let (c1, c16, trivial16) = (searched[0], searched[1], trivial[1]);
    let share = c16.rate / trivial16.rate;
    report.add(
        Row::new(
            format!("directory search through gRPC, c16, {entities} entities"),
            report::figures(&c16),
        )
        .value(c16.rate, "/s")
        .baseline(format!(
            "trivial gRPC call c16: {}",
            report::rate(trivial16.rate)
        ))
        .baseline_value(trivial16.rate)
        .ratio(share)
        .target(">= 0.5 (issue 19, at 1,000,000)", share >= 0.5),
    )?;
    let fast = |f: &cosell_testkit::bench::Figures| {
        f.p50 <= Duration::from_millis(1) && f.p99 <= Duration::from_millis(5)
    };
    report.add(
        Row::new(
            format!("directory search latency through gRPC, {entities} entities"),
            format!(
                "c1 p50 {}, p99 {}; c16 p50 {}, p99 {}",
                report::duration(c1.p50),
                report::duration(c1.p99),
                report::duration(c16.p50),
                report::duration(c16.p99)
            ),
        )
        .value(us(c16.p50), "us")
        .target(
            "p50 <= 1 ms, p99 <= 5 ms at c1 and c16",
            fast(&c1) && fast(&c16),
        ),
    )?;

    // Baseline: pg_trgm over the same rows, same queries, same machine, same run.
    let pg = Database::connect(&db_url).await?;
    pg.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        .await?;
    pg.execute_unprepared("CREATE TABLE trgm_entities (id text PRIMARY KEY, legal_name text NOT NULL, country text NOT NULL)").await?;
    pg.execute_unprepared("INSERT INTO trgm_entities SELECT id, legal_name, country FROM entities")
        .await?;
    let t = Instant::now();
    pg.execute_unprepared(
        "CREATE INDEX trgm_entities_name ON trgm_entities USING gin (legal_name gin_trgm_ops)",
    )
    .await?;
    let trgm_index_secs = t.elapsed().as_secs_f64();
    pg.execute_unprepared("ANALYZE trgm_entities").await?;
    let trgm = |q: String| {
        let pg = pg.clone();
        async move {
            let t = Instant::now();
            pg.query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id, legal_name FROM trgm_entities WHERE legal_name % $1 ORDER BY similarity(legal_name, $1) DESC LIMIT 10",
                [q.into()],
            ))
            .await
            .expect("pg_trgm query");
            t.elapsed()
        }
    };
    for q in queries.iter().take(20) {
        trgm(q.clone()).await;
    }
    let mut lat = Vec::new();
    for q in queries.iter().cycle().take(queries.len().min(350)) {
        lat.push(trgm(q.clone()).await);
    }
    lat.sort();
    let trgm_p50 = percentile(&lat, 0.5);
    println!();
    println!(
        "baseline: PostgreSQL pg_trgm (GIN index built in {:.1} s), concurrency 1: p50 {:>7.0} us  p99 {:>7.0} us",
        trgm_index_secs,
        us(trgm_p50),
        us(percentile(&lat, 0.99))
    );
    let faster = trgm_p50.as_secs_f64() / grpc_p50.as_secs_f64();
    println!("ratio pg_trgm p50 / directory gRPC p50 = {faster:.1}x (target >= 20x)");
    report.add(
        Row::new(
            format!("directory search p50 through gRPC, c1, vs PostgreSQL `pg_trgm`, {entities} entities"),
            report::duration(grpc_p50),
        )
        .value(us(grpc_p50), "us")
        .baseline(format!("`pg_trgm` p50 {}", report::duration(trgm_p50)))
        .baseline_value(us(trgm_p50))
        .ratio_shown(faster, format!("{faster:.0}x"))
        .target(">= 20x", faster >= 20.0),
    )?;

    drop(pg);
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .await?;
    Ok(())
}
