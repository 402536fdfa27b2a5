//! Benchmark of the access check (not a test; prints figures).
//!
//! 1. `AccessService/CheckAccess` over gRPC: p50/p99 latency at concurrency 1 and throughput at
//!    concurrency 16, on identity's warm grant cache.
//! 2. What authentication and authorization add to a trivial call: the same health check served
//!    twice in this run, once bare and once behind the auth layer (token check) plus an access
//!    check through `AccessClient` (grants from identity, cached), both warm. The difference of
//!    the p50s is the cost; the target is under 50 microseconds.
//!
//! Run: `cargo bench -p cosell-identity --bench access` (COSELL_BENCH_DATABASE_URL picks the
//! database; default in-memory SQLite; COSELL_BENCH_CALLS the number of calls per figure;
//! COSELL_BENCH_REPORT a file for the one table's rows, see `cosell_testkit::bench::report`).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cosell_platform::auth::{
    AccessClient, AuthLayer, Caller, RemoteKeys, ServiceToken, TokenVerifier,
};
use cosell_platform::server::ServerOptions;
use cosell_proto::identity::{self as pb, Role};
use cosell_testkit::bench::report::{self, Report, Row};
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::pb::health_client::HealthClient;
use tower::Service;

const DEALS_SECRET: &str = "bench-deals-secret-000000000001";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = Report::from_env("identity/access");
    let calls: usize = std::env::var("COSELL_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let db_url =
        std::env::var("COSELL_BENCH_DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let mut config = cosell_identity::Config::new(db_url.clone());
    config.dev_auth = true;
    config.demo = true;
    config.service_principals = vec![("deals".into(), DEALS_SECRET.into())];
    let started = cosell_identity::start(&config).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let identity_addr = listener.local_addr()?;
    tokio::spawn(cosell_platform::server::serve(
        listener,
        started.services,
        started.verifier,
        ServerOptions::default(),
        std::future::pending(),
    ));
    let identity = connect(identity_addr.to_string()).await?;

    let uma = pb::token_service_client::TokenServiceClient::new(identity.clone())
        .sign_in_with_email(pb::SignInWithEmailRequest {
            email: "uma.user@contoso.com".into(),
            organization: String::new(),
        })
        .await?
        .into_inner();
    let service_token = Arc::new(ServiceToken::new(identity.clone(), "deals", DEALS_SECRET));
    let uma_principal = uma.user.clone();
    let contoso = uma_principal
        .split("/users/")
        .next()
        .unwrap_or_default()
        .to_owned();

    println!(
        "access check benchmark ({calls} calls per figure, database {})",
        redact(&db_url)
    );
    println!();

    // 1. CheckAccess over gRPC.
    let check = {
        let client = pb::access_service_client::AccessServiceClient::new(identity.clone());
        let token = service_token.clone();
        let principal = uma_principal.clone();
        let org = contoso.clone();
        move || {
            let mut client = client.clone();
            let token = token.clone();
            let req = pb::CheckAccessRequest {
                principal: principal.clone(),
                organization: org.clone(),
                any_of_roles: vec![Role::ReferralsUser as i32],
                mpn_id: "4000002".into(),
            };
            async move {
                let resp = client
                    .check_access(token.request(req).await.unwrap())
                    .await
                    .unwrap()
                    .into_inner();
                assert!(resp.allowed);
            }
        }
    };
    let c1 = measure(calls, 1, check.clone()).await;
    let c16 = measure(calls, 16, check).await;
    println!("CheckAccess RPC (server-side grant cache warm)");
    println!("  concurrency  1: {}", c1.line());
    println!("  concurrency 16: {}", c16.line());
    println!();

    // 2. The same trivial call, bare and behind authentication + access check.
    let health = tonic_health::server::health_reporter().1;
    let bare_addr = spawn(Server::builder().add_service(health.clone())).await?;
    let verifier = Arc::new(TokenVerifier::new(Arc::new(RemoteKeys::new(
        identity.clone(),
    ))));
    let access = Arc::new(AccessClient::new(identity.clone(), service_token.clone()));
    let authed_addr = spawn(
        Server::builder()
            .layer(AuthLayer::new(verifier, Vec::new()))
            .layer(tower::layer::layer_fn(move |inner| RequireRole {
                inner,
                access: access.clone(),
                organization: contoso.clone(),
            }))
            .add_service(health),
    )
    .await?;
    let bare = HealthClient::new(connect(bare_addr).await?);
    let authed = HealthClient::new(connect(authed_addr).await?);
    let token = uma.access_token.clone();
    let call_bare = move || {
        let mut c = bare.clone();
        async move {
            c.check(pb_health_request()).await.unwrap();
        }
    };
    let call_authed = move || {
        let mut c = authed.clone();
        let mut req = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        });
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        async move {
            c.check(req).await.unwrap();
        }
    };
    // Alternate rounds so that both see the same machine conditions.
    let mut bare_runs = Vec::new();
    let mut authed_runs = Vec::new();
    for _ in 0..3 {
        bare_runs.push(measure(calls / 3, 1, call_bare.clone()).await);
        authed_runs.push(measure(calls / 3, 1, call_authed.clone()).await);
    }
    let bare = Stats::merge(bare_runs);
    let authed = Stats::merge(authed_runs);
    println!("Trivial call (health Check), concurrency 1");
    println!("  bare                          : {}", bare.line());
    println!("  token check + access check    : {}", authed.line());
    let added = authed.p50.as_secs_f64() * 1e6 - bare.p50.as_secs_f64() * 1e6;
    let ratio = authed.p50.as_secs_f64() / bare.p50.as_secs_f64();
    println!("  added at p50: {added:.1} us (target < 50 us), ratio authed/bare p50 = {ratio:.2}");
    report.add(
        Row::new(
            "token and access check on a trivial call, c1",
            format!(
                "+{added:.0} us at p50 ({} behind them)",
                report::duration(authed.p50)
            ),
        )
        .value(added, "us")
        .baseline(format!(
            "the bare call: p50 {}, {}",
            report::duration(bare.p50),
            report::rate(bare.per_sec)
        ))
        .baseline_value(bare.p50.as_secs_f64() * 1e6)
        .ratio(ratio)
        .target("< 50 us added", added < 50.0),
    )?;
    Ok(())
}

fn pb_health_request() -> tonic_health::pb::HealthCheckRequest {
    tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    }
}

fn redact(url: &str) -> String {
    url.split('@').next_back().unwrap_or(url).to_owned()
}

async fn connect(addr: String) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?)
}

async fn spawn<L>(router: tonic::transport::server::Router<L>) -> anyhow::Result<String>
where
    L: tower::Layer<tonic::service::Routes> + Send + 'static,
    L::Service: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
    <L::Service as Service<http::Request<tonic::body::Body>>>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    Ok(addr)
}

/// What a service does on each call: the caller must hold a referrals role at 4000002.
#[derive(Clone)]
struct RequireRole<S> {
    inner: S,
    access: Arc<AccessClient>,
    organization: String,
}

impl<S, B> Service<http::Request<B>> for RequireRole<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let access = self.access.clone();
        let org =
            uuid::Uuid::parse_str(self.organization.trim_start_matches("organizations/")).unwrap();
        Box::pin(async move {
            let caller = req
                .extensions()
                .get::<Caller>()
                .cloned()
                .expect("auth layer ran");
            if let Err(e) = access
                .require(
                    &caller,
                    org,
                    &[Role::ReferralsUser, Role::ReferralsAdmin],
                    Some("4000002"),
                    "x",
                )
                .await
            {
                return Ok(e.into_status("bench").into_http());
            }
            inner.call(req).await
        })
    }
}

struct Stats {
    latencies: Vec<Duration>,
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

impl Stats {
    fn new(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
        Stats {
            p50: at(0.50),
            p99: at(0.99),
            per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
            latencies,
        }
    }

    fn merge(runs: Vec<Stats>) -> Self {
        let secs: f64 = runs
            .iter()
            .map(|r| r.latencies.len() as f64 / r.per_sec)
            .sum();
        let all: Vec<Duration> = runs.into_iter().flat_map(|r| r.latencies).collect();
        Stats::new(all, Duration::from_secs_f64(secs))
    }

    fn line(&self) -> String {
        format!(
            "{:>9.0} calls/s  p50 {:>7.1} us  p99 {:>7.1} us",
            self.per_sec,
            self.p50.as_secs_f64() * 1e6,
            self.p99.as_secs_f64() * 1e6
        )
    }
}

/// Runs `calls` calls of `f` with `concurrency` in flight, after a warm-up.
async fn measure<F, Fut>(calls: usize, concurrency: usize, f: F) -> Stats
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    for _ in 0..200 {
        f().await;
    }
    let per_worker = calls.div_ceil(concurrency);
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    let t = Instant::now();
                    f().await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(calls);
    for w in workers {
        all.extend(w.await.unwrap());
    }
    Stats::new(all, start.elapsed())
}
