//! Authentication and authorization shared by every service.
//!
//! - [`claims`]: token claims, [`Principal`] and the authenticated [`Caller`].
//! - [`verifier`]: checks EdDSA tokens with identity's public keys.
//! - [`layer`]: the tower layer that authenticates each call.
//! - [`access`]: role grants, the cached access check and this service's own token.

pub mod access;
pub mod claims;
pub mod layer;
pub mod verifier;

pub use access::{AccessClient, Grants, ServiceToken};
pub use claims::{AUDIENCE, Caller, Claims, ISSUER, Principal};
pub use layer::{AuthLayer, caller};
pub use verifier::{KeySource, PublicKey, TokenVerifier};

use cosell_proto::identity as pb;
use tonic::transport::Channel;

/// Fetches public keys from identity's `ListSigningKeys` (no token needed).
pub struct RemoteKeys {
    client: pb::token_service_client::TokenServiceClient<Channel>,
}

impl RemoteKeys {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: pb::token_service_client::TokenServiceClient::new(channel),
        }
    }
}

impl KeySource for RemoteKeys {
    fn fetch(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<PublicKey>, String>> + Send + '_>,
    > {
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
                .map(|k| PublicKey { kid: k.kid, x: k.x })
                .collect())
        })
    }
}
