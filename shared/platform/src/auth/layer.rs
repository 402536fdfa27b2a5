//! The tower layer that authenticates every call except the public ones (health, reflection,
//! token issuance): it checks the bearer token and puts the [`Caller`] into the request's
//! extensions, where handlers find it with [`caller`].

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service, ServiceExt};

use super::claims::Caller;
use super::verifier::TokenVerifier;
use crate::error::ApiError;

/// Error domain of authentication failures raised before any service sees the call.
pub const AUTH_DOMAIN: &str = "auth.cosell";

#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<TokenVerifier>,
    /// Path prefixes (`/package.Service/` or `/package.Service/Method`) callable without a token.
    public: Arc<[String]>,
}

impl AuthLayer {
    pub fn new(verifier: Arc<TokenVerifier>, public: Vec<String>) -> Self {
        Self {
            verifier,
            public: public.into(),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
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

    /// Always ready: the services inside (the concurrency limit first) are made ready only
    /// once the call is authenticated, so that a call holds a slot only when it is known whose
    /// it is; a flood of bad tokens holds none.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let layer = self.layer.clone();
        Box::pin(async move {
            let path = req.uri().path();
            if layer.public.iter().any(|p| path.starts_with(p.as_str())) {
                return inner.oneshot(req).await;
            }
            let token = match bearer(req.headers()) {
                Ok(token) => token,
                Err(e) => return Ok(e.into_status(AUTH_DOMAIN).into_http()),
            };
            match layer.verifier.verify(&token).await {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                    inner.oneshot(req).await
                }
                Err(e) => Ok(e.into_status(AUTH_DOMAIN).into_http()),
            }
        })
    }
}

fn bearer(headers: &http::HeaderMap) -> Result<String, ApiError> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthenticated(
            "MISSING_TOKEN",
            "no bearer token: send `authorization: Bearer <token>` (get one from TokenService/SignInWithEmail or `cosell dev-token`)",
        )
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::unauthenticated("MALFORMED_TOKEN", "the authorization header is not ASCII")
    })?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        ApiError::unauthenticated(
            "MALFORMED_TOKEN",
            "the authorization header is not `Bearer <token>`",
        )
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthenticated(
            "MALFORMED_TOKEN",
            "the authorization header is not `Bearer <token>`",
        ));
    }
    Ok(token.trim().to_owned())
}

/// The caller of a request that went through the auth layer. A handler reached without one
/// is a wiring mistake (a public path that should not be), answered as unauthenticated.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<&Caller, ApiError> {
    req.extensions()
        .get::<Caller>()
        .ok_or_else(|| ApiError::unauthenticated("MISSING_TOKEN", "this call needs a bearer token"))
}
