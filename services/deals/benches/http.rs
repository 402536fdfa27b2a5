//! Benchmark of GetReferral over HTTP/JSON (the Connect protocol, `cosell_platform::server::
//! connect`) beside the same call over gRPC, in the same run on the same server (not a test;
//! prints figures): 16 clients, each on a connection of its own, HTTP/1.1 with keep-alive and
//! HTTP/2. Each client reads its answer as a caller would (JSON parsed, protobuf decoded). The
//! gRPC figure is measured before and after the HTTP ones, and their mean is the baseline, so
//! that a machine that drifts during the run does not favour either side.
//!
//! Target (issue 20): HTTP/JSON >= 0.6 of gRPC's throughput at concurrency 16.
//!
//! Run: `cargo bench -p cosell-deals --bench http`. Environment: COSELL_BENCH_DATABASE_URL (see
//! the api benchmark), COSELL_BENCH_CALLS (calls per figure, default 10,000),
//! COSELL_BENCH_REPORT (the one table's rows, see `cosell_testkit::bench::report`).

#[allow(dead_code)]
#[path = "../tests/deals/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cosell_proto::deals as pb;
use cosell_testkit::bench::report::{self, Report, Row};
use cosell_testkit::bench::{Figures, env_count, measure, postgres_admin_url};
use cosell_testkit::{TestDb, authed};
use harness::{Harness, RITA};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Mutex;
use tonic::transport::Endpoint;
use uuid::Uuid;

const CONCURRENCY: usize = 16;
/// Referrals the gets pick from.
const REFERRALS: usize = 200;
const GET: &str = "/cosell.deals.v1.ReferralService/GetReferral";

#[derive(Clone, Copy, Debug)]
enum Version {
    Http1,
    Http2,
}

impl Version {
    fn label(self) -> &'static str {
        match self {
            Self::Http1 => "HTTP/1.1 keep-alive",
            Self::Http2 => "HTTP/2",
        }
    }
}

/// One client's connection: HTTP/1.1 sends one request at a time on it, as keep-alive does.
enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn connect(addr: &str, version: Version) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let io = TokioIo::new(stream);
        Ok(match version {
            Version::Http1 => {
                let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(connection);
                Self::Http1(sender)
            }
            Version::Http2 => {
                let (sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(connection);
                Self::Http2(sender)
            }
        })
    }

    async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
    ) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        Ok(match self {
            Self::Http1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Self::Http2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = Report::from_env("deals/http");
    let calls = env_count("COSELL_BENCH_CALLS", 10_000);
    let h = Harness::start_on(TestDb::postgres(&postgres_admin_url()).await?).await;
    let token = h.token(RITA).await;
    let addr = h.server.url().trim_start_matches("http://").to_string();
    println!(
        "GetReferral over HTTP/JSON and gRPC on PostgreSQL: {calls} calls per figure, concurrency {CONCURRENCY}, a connection per client"
    );
    println!();

    let template = h.complete(pb::DealType::Private, &h.contoso_solution);
    let mut client = h.referrals();
    let mut names = Vec::with_capacity(REFERRALS);
    for _ in 0..REFERRALS {
        let created = client
            .create_referral(authed(
                &token,
                pb::CreateReferralRequest {
                    request_id: Uuid::new_v4().to_string(),
                    referral: Some(template.clone()),
                },
            ))
            .await?
            .into_inner();
        names.push(created.referral.expect("a referral").name);
    }
    let names = Arc::new(names);

    let grpc_before = grpc(&h, &token, &names, calls).await?;
    println!("{:<40} {}", "get through gRPC (before)", grpc_before.line());
    let mut http = Vec::new();
    for version in [Version::Http1, Version::Http2] {
        let figures = json_gets(&addr, version, &token, &names, calls).await?;
        println!(
            "get over HTTP/JSON, {:<19} {}",
            version.label(),
            figures.line()
        );
        http.push((version, figures));
    }
    let grpc_after = grpc(&h, &token, &names, calls).await?;
    println!("{:<40} {}", "get through gRPC (after)", grpc_after.line());
    let baseline = (grpc_before.rate + grpc_after.rate) / 2.0;

    for (version, figures) in http {
        let share = figures.rate / baseline;
        let label = version.label();
        println!("{label}: {share:.2} of gRPC's {baseline:.0}/s");
        report.add(
            Row::new(
                format!("referral get over HTTP/JSON ({label}), c16"),
                report::figures(&figures),
            )
            .value(figures.rate, "/s")
            .baseline(format!(
                "the same get through gRPC, mean of before and after: {}",
                report::rate(baseline)
            ))
            .baseline_value(baseline)
            .ratio(share)
            .target(">= 0.6 (issue 20)", share >= 0.6),
        )?;
    }
    Ok(())
}

/// Gets through gRPC: 16 channels, protobuf decoded.
async fn grpc(
    h: &Harness,
    token: &str,
    names: &Arc<Vec<String>>,
    calls: usize,
) -> anyhow::Result<Figures> {
    let clients: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            Endpoint::from_shared(h.server.url())
                .map(|e| pb::referral_service_client::ReferralServiceClient::new(e.connect_lazy()))
        })
        .collect::<Result<_, _>>()?;
    let (token, names) = (token.to_string(), names.clone());
    Ok(measure(CONCURRENCY, calls, move |i| {
        let name = names[(i * 7919) % names.len()].clone();
        let req = authed(&token, pb::GetReferralRequest { name: name.clone() });
        let mut client = clients[i % CONCURRENCY].clone();
        async move {
            let t = Instant::now();
            let got = client.get_referral(req).await.expect("get").into_inner();
            assert_eq!(got.referral.expect("a referral").name, name);
            t.elapsed()
        }
    })
    .await)
}

/// Gets over HTTP/JSON: 16 connections of `version`, JSON parsed.
async fn json_gets(
    addr: &str,
    version: Version,
    token: &str,
    names: &Arc<Vec<String>>,
    calls: usize,
) -> anyhow::Result<Figures> {
    let mut senders = Vec::new();
    for _ in 0..CONCURRENCY {
        senders.push(Mutex::new(Sender::connect(addr, version).await?));
    }
    let senders = Arc::new(senders);
    let (authorization, names, uri) = (
        format!("Bearer {token}"),
        names.clone(),
        format!("http://{addr}{GET}"),
    );
    Ok(measure(CONCURRENCY, calls, move |i| {
        let name = names[(i * 7919) % names.len()].clone();
        let request = http::Request::post(&uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::AUTHORIZATION, &authorization)
            .body(Full::new(Bytes::from(
                serde_json::json!({ "name": name }).to_string(),
            )))
            .expect("a request");
        let senders = senders.clone();
        async move {
            // Each worker takes the calls of one client: the lock is never contended.
            let mut sender = senders[i % CONCURRENCY].lock().await;
            let t = Instant::now();
            let response = sender.send(request).await.expect("an answer");
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.expect("a body");
            let got: serde_json::Value = serde_json::from_slice(&body.to_bytes()).expect("JSON");
            assert_eq!(got["referral"]["name"], name.as_str());
            t.elapsed().max(Duration::from_nanos(1))
        }
    })
    .await)
}
