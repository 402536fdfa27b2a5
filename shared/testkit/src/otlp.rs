//! A stand-in OpenTelemetry collector: an OTLP/gRPC server on 127.0.0.1 that keeps every span
//! and metric it is sent, with the `service.name` of the resource that sent it, for tests to
//! look at what services export.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio_stream::wrappers::TcpListenerStream;

pub use opentelemetry_proto::tonic::{common, metrics, trace};

/// A span as received, with the service that sent it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service: String,
    pub span: Span,
}

/// A metric as received (one export's data points), with the service that sent it.
#[derive(Debug, Clone)]
pub struct ReceivedMetric {
    /// The resource's `service.name`.
    pub service: String,
    pub metric: Metric,
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    metrics: Vec<ReceivedMetric>,
}

/// The collector; stops with the test's runtime.
#[derive(Clone, Default)]
pub struct Collector {
    received: Arc<Mutex<Received>>,
    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
}

impl Collector {
    /// Serves OTLP traces and metrics on an ephemeral port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let collector = Self {
            received: Default::default(),
            endpoint: format!("http://{}", listener.local_addr()?),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .add_service(MetricsServiceServer::new(collector.clone()))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Ok(collector)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().unwrap().spans.clone()
    }

    /// Every metric export received so far.
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.received.lock().unwrap().metrics.clone()
    }

    /// Polls `found` over what was received until it answers `Some`, for at most `patience`;
    /// the collector's holdings at the end make the panic message.
    pub async fn wait_for<T>(
        &self,
        patience: Duration,
        what: &str,
        mut found: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(t) = found(self) {
                return t;
            }
            if Instant::now() > deadline {
                let spans: Vec<String> = self
                    .spans()
                    .iter()
                    .map(|s| format!("{}: {}", s.service, s.span.name))
                    .collect();
                let metrics: Vec<String> = self
                    .metrics()
                    .iter()
                    .map(|m| format!("{}: {}", m.service, m.metric.name))
                    .collect();
                panic!(
                    "the collector did not receive {what} within {patience:?}; spans: {spans:?}; metrics: {metrics:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The string value of attribute `key`, if it has one.
pub fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

/// The string attribute `key`, if there is one and it is a string.
pub fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attribute(attributes, key) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn service_name(resource: Option<&Resource>) -> String {
    resource
        .and_then(|r| string_attribute(&r.attributes, "service.name"))
        .unwrap_or_default()
        .to_owned()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.received.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let service = service_name(rs.resource.as_ref());
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.spans.push(ReceivedSpan {
                    service: service.clone(),
                    span,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut received = self.received.lock().unwrap();
        for rm in req.into_inner().resource_metrics {
            let service = service_name(rm.resource.as_ref());
            for metric in rm.scope_metrics.into_iter().flat_map(|s| s.metrics) {
                received.metrics.push(ReceivedMetric {
                    service: service.clone(),
                    metric,
                });
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}
