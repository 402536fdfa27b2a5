//! OTLP export, against the test kit's stand-in collector: a call through a
//! [`TracedChannel`] has a client span whose child is the server's span of the call, in the
//! caller's trace, and the server counts and times every call by method and status. One test
//! per binary: the tracing subscriber and the meter provider are global to the process.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cosell_platform::auth::{KeySource, PublicKey, TokenVerifier};
use cosell_platform::config::TelemetryArgs;
use cosell_platform::server::{ServerOptions, ServiceSet};
use cosell_platform::telemetry::{self, TracedChannel};
use cosell_testkit::otlp::metrics::v1::metric::Data;
use cosell_testkit::otlp::{Collector, attribute, common::v1::any_value::Value};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

struct NoKeys;

impl KeySource for NoKeys {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<PublicKey>, String>> + Send + '_>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_are_traced_across_the_hop_and_counted_by_method_and_status() {
    let collector = Collector::start().await.unwrap();
    let guard = telemetry::init(
        "telemetry-test",
        &TelemetryArgs {
            log_filter: "info".into(),
            log_json: false,
            otlp_endpoint: Some(collector.endpoint.clone()),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cosell_platform::server::serve(
        listener,
        ServiceSet::default(),
        Arc::new(TokenVerifier::new(Arc::new(NoKeys))),
        ServerOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(TracedChannel::new(channel));

    // The caller's span; the calls made in it are its children.
    let caller = tracing::info_span!("client_call");
    let (served, unknown) = tracing::Instrument::instrument(
        async {
            let served = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            let unknown = health
                .check(HealthCheckRequest {
                    service: "no.such.Service".into(),
                })
                .await;
            (served, unknown)
        },
        caller.clone(),
    )
    .await;
    served.expect("health answers");
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    drop(caller);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    drop(guard); // flushes the exporters

    let spans = collector
        .wait_for(Duration::from_secs(10), "5 spans", |c| {
            let spans = c.spans();
            (spans.len() >= 5).then_some(spans)
        })
        .await;
    assert!(spans.iter().all(|s| s.service == "telemetry-test"));
    let caller = spans.iter().find(|s| s.span.name == "client_call").unwrap();
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == "grpc.client")
        .collect();
    let servers: Vec<_> = spans.iter().filter(|s| s.span.name == "grpc").collect();
    assert_eq!((clients.len(), servers.len()), (2, 2), "{spans:#?}");
    for client in &clients {
        assert_eq!(client.span.trace_id, caller.span.trace_id, "one trace");
        assert_eq!(client.span.parent_span_id, caller.span.span_id);
        let server = servers
            .iter()
            .find(|s| s.span.parent_span_id == client.span.span_id)
            .expect("the server span of each call is its client span's child");
        assert_eq!(server.span.trace_id, caller.span.trace_id);
    }

    let calls = collector
        .wait_for(Duration::from_secs(10), "the calls counter", |c| {
            c.metrics()
                .into_iter()
                .find(|m| m.metric.name == telemetry::metrics::CALLS)
        })
        .await;
    let Some(Data::Sum(sum)) = calls.metric.data else {
        panic!("a counter: {calls:?}");
    };
    let mut counted: Vec<(String, i64)> = sum
        .data_points
        .iter()
        .map(|p| {
            let method = match attribute(&p.attributes, "rpc.method") {
                Some(Value::StringValue(m)) => m.clone(),
                other => panic!("rpc.method: {other:?}"),
            };
            let status = match attribute(&p.attributes, "rpc.grpc.status_code") {
                Some(Value::IntValue(s)) => *s,
                other => panic!("rpc.grpc.status_code: {other:?}"),
            };
            (format!("{method} {status}"), value(p))
        })
        .collect();
    counted.sort();
    assert_eq!(
        counted,
        [
            ("grpc.health.v1.Health/Check 0".to_owned(), 1),
            ("grpc.health.v1.Health/Check 5".to_owned(), 1),
        ]
    );
    assert!(
        collector
            .metrics()
            .iter()
            .any(|m| m.metric.name == telemetry::metrics::DURATION),
        "the latency histogram is exported too"
    );
}

fn value(p: &cosell_testkit::otlp::metrics::v1::NumberDataPoint) -> i64 {
    use cosell_testkit::otlp::metrics::v1::number_data_point::Value;
    match p.value {
        Some(Value::AsInt(v)) => v,
        other => panic!("an integer count: {other:?}"),
    }
}
