//! OTLP export, against the test kit's stand-in collector: a call through a
//! [`TracedChannel`] has a client span whose child is the server's span of the call, in the
//! caller's trace. One test per binary: the tracing subscriber is global to the process.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cosell_platform::auth::{KeySource, PublicKey, TokenVerifier};
use cosell_platform::config::TelemetryArgs;
use cosell_platform::server::{ServerOptions, ServiceSet};
use cosell_platform::telemetry::{self, TracedChannel};
use cosell_testkit::otlp::Collector;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

struct NoKeys;

impl KeySource for NoKeys {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<PublicKey>, String>> + Send + '_>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_are_traced_across_the_hop() {
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
}
