//! Outgoing calls: every call a service makes to another through a [`TracedChannel`] gets a
//! client span (a child of whatever span the caller is in), and that span's trace context goes
//! into the call's headers, so that the callee's server span is the client span's child.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::transport::Channel;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A channel to a peer service whose every call is traced (see the module).
#[derive(Debug, Clone)]
pub struct TracedChannel(Channel);

impl TracedChannel {
    pub fn new(channel: Channel) -> Self {
        Self(channel)
    }
}

impl From<Channel> for TracedChannel {
    fn from(channel: Channel) -> Self {
        Self(channel)
    }
}

impl tower::Service<http::Request<Body>> for TracedChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let span = tracing::info_span!(
            "grpc.client",
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.method = %req.uri().path(),
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let cx = span.context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut super::HeaderInjector(req.headers_mut()))
        });
        let call = self.0.call(req);
        let recorder = span.clone();
        Box::pin(
            async move {
                let answer = call.await;
                match &answer {
                    // An error answer says its status in the headers (trailers-only); a
                    // success says it in the trailers, after this span ends.
                    Ok(resp) => {
                        if let Some(code) = super::grpc_status(resp.headers()) {
                            recorder.record("rpc.grpc.status_code", code);
                            if code != 0 {
                                recorder.record("otel.status_code", "ERROR");
                            }
                        }
                    }
                    Err(_) => {
                        recorder.record("otel.status_code", "ERROR");
                    }
                }
                answer
            }
            .instrument(span),
        )
    }
}
