//! RPC count and latency, recorded for every call of every service by one server layer
//! ([`RpcMetricsLayer`]) and exported by OTLP when an endpoint is configured:
//!
//! - `rpc.server.calls` (counter, `{call}`): calls answered;
//! - `rpc.server.call.duration` (histogram, seconds): from the request's arrival to the end of
//!   its answer (the trailers: a stream's whole life);
//!
//! both with the attributes `rpc.system` (`grpc`), `rpc.method` (`package.Service/Method`, or
//! `_OTHER` for a path no service has, so that strangers cannot grow the set of series) and
//! `rpc.grpc.status_code` (the answer's status; `CANCELLED` when the caller went away first).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

/// Name of the counter of calls.
pub const CALLS: &str = "rpc.server.calls";
/// Name of the latency histogram.
pub const DURATION: &str = "rpc.server.call.duration";

/// Bucket bounds in seconds, as the semantic conventions advise for RPC durations.
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// gRPC's UNIMPLEMENTED: the path names no method of this server.
const UNIMPLEMENTED: i64 = 12;
/// gRPC's CANCELLED: the answer was dropped before its end (the caller went away).
const CANCELLED: i64 = 1;
/// gRPC's UNKNOWN: the server failed without a status.
const UNKNOWN: i64 = 2;

struct Instruments {
    calls: Counter<u64>,
    duration: Histogram<f64>,
}

/// Records every call's count and duration (see the module); instruments of the global meter
/// provider, which [`super::init`] sets.
#[derive(Clone)]
pub struct RpcMetricsLayer(Arc<Instruments>);

impl Default for RpcMetricsLayer {
    fn default() -> Self {
        let meter = opentelemetry::global::meter("cosell-platform");
        Self(Arc::new(Instruments {
            calls: meter
                .u64_counter(CALLS)
                .with_unit("{call}")
                .with_description("RPCs answered")
                .build(),
            duration: meter
                .f64_histogram(DURATION)
                .with_unit("s")
                .with_description("Time to answer an RPC, to its last message")
                .with_boundaries(BOUNDS.to_vec())
                .build(),
        }))
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            instruments: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    instruments: Arc<Instruments>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: Body + Send + 'static,
{
    type Response = http::Response<MeteredBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let call = Call {
            instruments: self.instruments.clone(),
            method: req.uri().path().trim_start_matches('/').to_owned(),
            started: Instant::now(),
            status: None,
        };
        let answer = self.inner.call(req);
        Box::pin(async move {
            match answer.await {
                Ok(resp) => {
                    let mut call = call;
                    call.status = super::grpc_status(resp.headers());
                    Ok(resp.map(|body| MeteredBody {
                        inner: Box::pin(body),
                        call: Some(call),
                    }))
                }
                Err(e) => {
                    call.record(UNKNOWN);
                    Err(e)
                }
            }
        })
    }
}

/// One call being answered.
struct Call {
    instruments: Arc<Instruments>,
    method: String,
    started: Instant,
    /// The status, once the headers or trailers said it.
    status: Option<i64>,
}

impl Call {
    fn record(self, status: i64) {
        let method = if status == UNIMPLEMENTED {
            "_OTHER".to_owned()
        } else {
            self.method
        };
        let attributes = [
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.method", method),
            KeyValue::new("rpc.grpc.status_code", status),
        ];
        self.instruments.calls.add(1, &attributes);
        self.instruments
            .duration
            .record(self.started.elapsed().as_secs_f64(), &attributes);
    }
}

/// An answer's body that records its call when it ends (trailers, end of stream, or dropped).
pub struct MeteredBody<B> {
    inner: Pin<Box<B>>,
    /// `None` once recorded.
    call: Option<Call>,
}

impl<B> MeteredBody<B> {
    fn finish(&mut self, ended: bool) {
        if let Some(call) = self.call.take() {
            let status = call
                .status
                .unwrap_or(if ended { UNKNOWN } else { CANCELLED });
            call.record(status);
        }
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = self.call.as_mut()
                    && let Some(code) = super::grpc_status(trailers)
                {
                    call.status = Some(code);
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = self.call.as_mut() {
                    call.status.get_or_insert(UNKNOWN);
                }
                self.finish(true);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        self.finish(false);
    }
}
