//! Authentication and authorization shared by every service.
//!
//! - [`claims`]: token claims, [`Principal`] and the authenticated [`Caller`].
//! - [`actor`]: the caller with its current grants, the [`Actor`] every service's policy reads.
//! - [`keys`]: one issuer's public keys, fetched on demand within bounds.
//! - [`verifier`]: checks identity's tokens, and the external issuer's through identity.
//! - [`layer`]: the tower layer that authenticates each call.
//! - [`access`]: role grants, the cached access check and this service's own token.
//!
//! [`RemoteKeys`] and [`RemoteExchange`] are how a service other than identity reaches
//! identity's keys and its token exchange.

pub mod access;
pub mod actor;
pub mod claims;
pub mod keys;
pub mod layer;
pub mod verifier;

pub use access::{AccessClient, Grants, ServiceToken};
pub use actor::Actor;
pub use claims::{AUDIENCE, Caller, Claims, ISSUER, Principal};
pub use keys::{KeySource, PublicKey};
pub use layer::{AuthLayer, caller};
pub use verifier::{ExternalTokens, TokenVerifier};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cosell_proto::identity as pb;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::error::ApiError;
use crate::telemetry::TracedChannel;

/// Fetches public keys from identity's `ListSigningKeys` (no token needed).
pub struct RemoteKeys {
    client: pb::token_service_client::TokenServiceClient<TracedChannel>,
}

impl RemoteKeys {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: pb::token_service_client::TokenServiceClient::new(channel.into()),
        }
    }
}

impl KeySource for RemoteKeys {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<PublicKey>, String>> + Send + '_>> {
        Box::pin(async move {
            let resp = self
                .client
                .clone()
                .list_signing_keys(pb::ListSigningKeysRequest {})
                .await
                .map_err(|s| s.message().to_owned())?;
            Ok(resp
                .into_inner()
                .keys
                .into_iter()
                .filter_map(|k| match PublicKey::ed25519(k.kid.clone(), &k.x) {
                    Ok(key) => Some(key),
                    Err(e) => {
                        tracing::warn!(kid = %k.kid, error = %e, "ignoring a malformed signing key");
                        None
                    }
                })
                .collect())
        })
    }
}

/// Hands tokens of the external issuer to identity's `ExchangeToken` and verifies the token it
/// answers with, so that a service trusts nothing it has not checked with identity's keys.
pub struct RemoteExchange {
    client: pb::token_service_client::TokenServiceClient<TracedChannel>,
    /// Checks the exchanged token (identity's keys, as for any other call).
    verifier: Arc<TokenVerifier>,
}

impl RemoteExchange {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: pb::token_service_client::TokenServiceClient::new(channel.clone().into()),
            verifier: Arc::new(TokenVerifier::new(Arc::new(RemoteKeys::new(channel)))),
        }
    }
}

impl ExternalTokens for RemoteExchange {
    fn exchange<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Caller, ApiError>> + Send + 'a>> {
        Box::pin(async move {
            let mut req = tonic::Request::new(pb::ExchangeTokenRequest {
                subject_token: token.to_owned(),
                organization: String::new(),
            });
            req.set_timeout(keys::FETCH_TIMEOUT);
            let resp = self
                .client
                .clone()
                .exchange_token(req)
                .await
                .map_err(|s| from_identity(&s))?
                .into_inner();
            let mut caller = self.verifier.verify(&resp.access_token).await?;
            // The exchanged token lives no longer than the one it stands for.
            if let Some(exp) = resp.expire_time {
                caller.expires_at = caller.expires_at.min(exp.seconds);
            }
            Ok(caller)
        })
    }
}

/// Identity's refusal passed on with its reason; anything else is identity being unreachable.
fn from_identity(s: &tonic::Status) -> ApiError {
    let reason = s
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_else(|| "INVALID_TOKEN".into());
    match s.code() {
        tonic::Code::Unauthenticated => ApiError::unauthenticated(reason, s.message()),
        tonic::Code::ResourceExhausted => {
            let retry = s
                .get_error_details()
                .retry_info()
                .and_then(|r| r.retry_delay)
                .unwrap_or(std::time::Duration::from_secs(1));
            ApiError::resource_exhausted(reason, s.message(), retry)
        }
        _ => ApiError::unavailable(
            "IDENTITY_UNAVAILABLE",
            format!("cannot check the token with identity: {}", s.message()),
        ),
    }
}
