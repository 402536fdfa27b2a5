//! OTLP export and trace context across a gRPC hop, against a stand-in collector that records
//! what it receives. One test per binary: the tracing subscriber is global to the process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cosell_platform::config::TelemetryArgs;
use cosell_platform::telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio_stream::wrappers::TcpListenerStream;

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_are_exported_by_otlp_and_one_trace_spans_the_hop() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let guard = telemetry::init(
        "telemetry-test",
        &TelemetryArgs {
            log_filter: "info".into(),
            log_json: false,
            otlp_endpoint: Some(format!("http://{addr}")),
        },
    );

    // The caller's span; its context goes into the outgoing metadata...
    let client_span = tracing::info_span!("client_call");
    let mut metadata = tonic::metadata::MetadataMap::new();
    client_span.in_scope(|| telemetry::inject_context(&mut metadata));
    assert!(
        metadata.get("traceparent").is_some(),
        "traceparent is injected"
    );
    // ...and the server's span for that call continues the same trace.
    let request = http::Request::builder()
        .uri("/cosell.identity.v1.AccessService/GetCaller")
        .header(
            "traceparent",
            metadata.get("traceparent").unwrap().to_str().unwrap(),
        )
        .body(())
        .unwrap();
    let server_span = telemetry::server_span(&request);
    server_span.in_scope(|| tracing::info!("handled"));
    drop(server_span);
    drop(client_span);
    drop(guard); // flushes the batch exporter

    let mut spans = Vec::new();
    for _ in 0..50 {
        spans = collector
            .0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .flat_map(|rs| rs.scope_spans.iter())
            .flat_map(|ss| ss.spans.iter().cloned())
            .collect::<Vec<_>>();
        if spans.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = spans
        .iter()
        .find(|s| s.name == "client_call")
        .expect("client span exported");
    let server = spans
        .iter()
        .find(|s| s.name == "grpc")
        .expect("server span exported");
    assert_eq!(server.trace_id, client.trace_id, "one trace across the hop");
    assert_eq!(
        server.parent_span_id, client.span_id,
        "the server span is the client span's child"
    );
    let resource = collector.0.lock().unwrap()[0].resource_spans[0]
        .resource
        .clone()
        .unwrap();
    let service = resource
        .attributes
        .iter()
        .find(|a| a.key == "service.name")
        .and_then(|a| a.value.as_ref())
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    assert!(service.contains("telemetry-test"), "{service}");
}
