//! The server's own limit on how long a call runs, for every method but the long-running ones
//! (uploads and loads whose length grows with the data). The caller's `grpc-timeout` is honoured
//! by tonic for every method, long-running ones included.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tower::{Layer, Service};

#[derive(Clone)]
pub struct DeadlineLayer {
    limit: Duration,
    /// Method paths (`/package.Service/Method`) the limit does not apply to.
    exempt: Arc<[String]>,
}

impl DeadlineLayer {
    pub fn new(limit: Duration, exempt: Vec<String>) -> Self {
        Self {
            limit,
            exempt: exempt.into(),
        }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl<S, B> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.layer.limit;
        let exempt = self
            .layer
            .exempt
            .iter()
            .any(|p| req.uri().path() == p.as_str());
        Box::pin(async move {
            if exempt {
                return inner.call(req).await;
            }
            match tokio::time::timeout(limit, inner.call(req)).await {
                Ok(answer) => answer,
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "the call ran longer than the server's limit of {} s",
                    limit.as_secs_f64()
                ))
                .into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A method that answers OK after `delay`.
    fn slow(
        delay: Duration,
    ) -> impl Service<
        http::Request<()>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future = BoxFuture<
            'static,
            Result<http::Response<tonic::body::Body>, std::convert::Infallible>,
        >,
    > + Clone {
        tower::service_fn(move |_req: http::Request<()>| -> BoxFuture<'static, _> {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(tonic::Status::ok("").into_http())
            })
        })
    }

    fn grpc_status(r: &http::Response<tonic::body::Body>) -> Option<&str> {
        r.headers().get("grpc-status").and_then(|v| v.to_str().ok())
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    #[tokio::test]
    async fn a_call_past_the_limit_ends_with_deadline_exceeded_and_a_long_running_one_does_not() {
        let layer = DeadlineLayer::new(
            Duration::from_millis(50),
            vec!["/pkg.Service/Upload".into()],
        );
        let cut = layer
            .layer(slow(Duration::from_millis(300)))
            .oneshot(request("/pkg.Service/Get"))
            .await
            .unwrap();
        assert_eq!(grpc_status(&cut), Some("4"), "DEADLINE_EXCEEDED");
        let long = layer
            .layer(slow(Duration::from_millis(300)))
            .oneshot(request("/pkg.Service/Upload"))
            .await
            .unwrap();
        assert_eq!(grpc_status(&long), Some("0"));
        let quick = layer
            .layer(slow(Duration::from_millis(1)))
            .oneshot(request("/pkg.Service/Get"))
            .await
            .unwrap();
        assert_eq!(grpc_status(&quick), Some("0"));
    }
}
