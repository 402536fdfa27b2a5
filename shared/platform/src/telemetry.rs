//! Tracing, metrics and logs: structured logs to stderr (text or JSON); spans and RPC metrics
//! ([`metrics`]) exported by OTLP when an endpoint is configured; W3C trace context carried in
//! gRPC metadata so that one trace follows a call across services: the server span of every
//! call ([`server_span`]) continues the caller's trace, and every outgoing call through a
//! [`TracedChannel`] has a client span whose context it carries.
//!
//! The exporters batch: spans every `OTEL_BSP_SCHEDULE_DELAY` ms (5000 unless set), metrics
//! every `OTEL_METRIC_EXPORT_INTERVAL` ms (60000 unless set), and whatever is left when the
//! [`TelemetryGuard`] drops.

mod client;
pub mod metrics;

pub use client::TracedChannel;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TelemetryArgs;

/// Flushes exported spans and metrics when dropped; keep it alive for the life of the process.
pub struct TelemetryGuard(Option<(SdkTracerProvider, SdkMeterProvider)>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some((traces, metrics)) = self.0.take() {
            let _ = traces.shutdown();
            let _ = metrics.shutdown();
        }
    }
}

/// Installs the global subscriber. Calling it again (tests) leaves the first one in place.
pub fn init(service_name: &str, args: &TelemetryArgs) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let filter = EnvFilter::try_new(&args.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = if args.log_json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    let providers = args.otlp_endpoint.as_deref().and_then(|endpoint| {
        match exporters(service_name, endpoint) {
            Ok(providers) => Some(providers),
            Err(e) => {
                eprintln!("OTLP export disabled: {e}");
                None
            }
        }
    });
    let otel = providers.as_ref().map(|(traces, metrics)| {
        opentelemetry::global::set_meter_provider(metrics.clone());
        tracing_opentelemetry::layer().with_tracer(traces.tracer(service_name.to_owned()))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    TelemetryGuard(providers)
}

/// The span and metric providers exporting to `endpoint`, as `service_name`.
fn exporters(
    service_name: &str,
    endpoint: &str,
) -> Result<(SdkTracerProvider, SdkMeterProvider), opentelemetry_otlp::ExporterBuildError> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    Ok((
        SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource.clone())
            .build(),
        SdkMeterProvider::builder()
            .with_periodic_exporter(metrics)
            .with_resource(resource)
            .build(),
    ))
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The `grpc-status` of an answer's headers or trailers, when they say it.
fn grpc_status(headers: &http::HeaderMap) -> Option<i64> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Puts the current span's trace context into an outgoing call's metadata.
pub fn inject_context(metadata: &mut tonic::metadata::MetadataMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut MetadataInjector(metadata))
    });
}

/// The current span's W3C `traceparent`, for work that a background task does later on its
/// behalf (see [`link_to`]); `None` when the span is not traced.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove("traceparent")
}

/// Links `span` to the span that `traceparent` names (from [`current_traceparent`]): a span
/// of a trace of its own, done on behalf of that one. Nothing when it names no valid span.
pub fn link_to(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::trace::TraceContextExt as _;
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    span.add_link(cx.span().span_context().clone());
}

/// The span of one incoming call, a child of the caller's trace when the call carries one.
pub fn server_span<B>(req: &http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc",
        otel.kind = "server",
        rpc.method = %req.uri().path(),
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(req.headers()))
    });
    let _ = span.set_parent(parent);
    span
}
