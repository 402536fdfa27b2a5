//! Checks bearer tokens and says who they belong to.
//!
//! Two kinds of token are accepted:
//! - identity's own (issuer [`ISSUER`]): EdDSA-signed, checked here with identity's public keys
//!   ([`KeyCache`]), issuer, audience and expiry;
//! - a token of the external OpenID Connect issuer identity trusts (any other `iss`): handed to
//!   [`ExternalTokens`] (identity's `ExchangeToken`), which checks it against the issuer's keys
//!   and finds the user it names. The answer is the same [`Caller`] as for identity's tokens.
//!
//! Answers are remembered: a token that passed until it expires (a warm call costs a hash
//! lookup rather than a signature check), an external token that was refused for
//! [`REFUSAL_MEMORY`] (a flood of bad tokens costs identity one question per token).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;

use super::claims::{AUDIENCE, Caller, Claims, ISSUER, Principal};
use super::keys::{KeyCache, KeySource};
use crate::clock::{self, SharedClock};
use crate::error::ApiError;

/// Seconds of clock skew tolerated between the signer and this server.
pub const LEEWAY_SECS: u64 = 5;
/// Longest bearer token read; real issuers' tokens are a few KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Bound on remembered tokens (and, apart, on remembered refusals); the memory is cleared
/// when it fills (it refills from traffic).
const MAX_CACHED_TOKENS: usize = 100_000;
/// How long a refused external token is answered without asking identity again.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(30);

/// Who checks tokens of the external issuer: identity's `ExchangeToken` for other services,
/// identity's OpenID Connect verifier inside identity.
pub trait ExternalTokens: Send + Sync + 'static {
    fn exchange<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Caller, ApiError>> + Send + 'a>>;
}

/// The parts of a token read before its signature is checked: only to pick the key and the
/// path, never trusted as an answer.
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(serde::Deserialize)]
struct Issuer {
    iss: Option<String>,
}

/// Part `index` (0: header, 1: claims) of a compact JWT, decoded.
pub fn token_part<T: DeserializeOwned>(token: &str, index: usize) -> Option<T> {
    let part = token.split('.').nth(index)?;
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An external token's refusal, and until when it is repeated without asking identity.
type Refusal = (ApiError, chrono::DateTime<chrono::Utc>);

pub struct TokenVerifier {
    /// Identity's public keys.
    own: KeyCache,
    /// Tokens of other issuers; none: refused as `WRONG_ISSUER`.
    external: Option<Arc<dyn ExternalTokens>>,
    clock: SharedClock,
    verified: RwLock<HashMap<Arc<str>, Caller>>,
    refused: RwLock<HashMap<Arc<str>, Refusal>>,
    validation: Validation,
}

impl TokenVerifier {
    /// A verifier of identity's tokens only.
    pub fn new(source: Arc<dyn KeySource>) -> Self {
        Self::with(source, None, clock::system())
    }

    /// The verifier of a service other than identity: identity's keys through
    /// `ListSigningKeys`, the external issuer's tokens through `ExchangeToken`.
    pub fn remote(identity: tonic::transport::Channel) -> Self {
        Self::with(
            Arc::new(super::RemoteKeys::new(identity.clone())),
            Some(Arc::new(super::RemoteExchange::new(identity))),
            clock::system(),
        )
    }

    /// A verifier of identity's tokens and, through `external`, of the external issuer's.
    pub fn with(
        source: Arc<dyn KeySource>,
        external: Option<Arc<dyn ExternalTokens>>,
        clock: SharedClock,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            own: KeyCache::new("the identity service", source, clock.clone()),
            external,
            clock,
            verified: RwLock::new(HashMap::new()),
            refused: RwLock::new(HashMap::new()),
            validation,
        }
    }

    /// Checks a bearer token and says who it belongs to.
    pub async fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let now = self.clock.now();
        if let Some(caller) = self.verified.read().get(token)
            && caller.expires_at + LEEWAY_SECS as i64 >= now.timestamp()
        {
            return Ok(caller.clone());
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(unauthenticated(
                "MALFORMED_TOKEN",
                format!("the bearer token is longer than {MAX_TOKEN_BYTES} bytes"),
            ));
        }
        let Some(header) = token_part::<Header>(token, 0) else {
            return Err(unauthenticated(
                "MALFORMED_TOKEN",
                "the bearer token is not a JWT",
            ));
        };
        let issuer = token_part::<Issuer>(token, 1).and_then(|c| c.iss);
        let caller = if issuer.as_deref() == Some(ISSUER) {
            self.verify_own(token, header).await?
        } else {
            self.verify_external(token, now).await?
        };
        let mut verified = self.verified.write();
        if verified.len() >= MAX_CACHED_TOKENS {
            verified.clear();
        }
        verified.insert(Arc::from(token), caller.clone());
        Ok(caller)
    }

    async fn verify_own(&self, token: &str, header: Header) -> Result<Caller, ApiError> {
        if header.alg != "EdDSA" {
            return Err(unauthenticated(
                "BAD_TOKEN_ALGORITHM",
                format!(
                    "the bearer token is signed with `{}`; identity's tokens are EdDSA",
                    header.alg
                ),
            ));
        }
        let kid = header.kid.ok_or_else(|| {
            unauthenticated("MALFORMED_TOKEN", "the bearer token names no key (kid)")
        })?;
        let key = self.own.key(&kid).await?;
        let claims: Claims = decode(token, &key.key, &self.validation)?;
        let principal = Principal::parse(&claims.sub).ok_or_else(|| {
            unauthenticated(
                "INVALID_TOKEN",
                "the bearer token names no known kind of principal",
            )
        })?;
        Ok(Caller {
            principal,
            email: claims.email,
            expires_at: claims.exp,
        })
    }

    async fn verify_external(
        &self,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Caller, ApiError> {
        let Some(external) = &self.external else {
            return Err(unauthenticated(
                "WRONG_ISSUER",
                "the bearer token comes from an issuer this platform does not trust",
            ));
        };
        if let Some((e, until)) = self.refused.read().get(token)
            && *until > now
        {
            return Err(e.clone());
        }
        let answer = external.exchange(token).await;
        if let Err(e) = &answer
            && e.code == tonic::Code::Unauthenticated
        {
            let mut refused = self.refused.write();
            if refused.len() >= MAX_CACHED_TOKENS {
                refused.clear();
            }
            let until = now + chrono::Duration::from_std(REFUSAL_MEMORY).unwrap_or_default();
            refused.insert(Arc::from(token), (e.clone(), until));
        }
        answer
    }

    /// Fetches identity's current public keys now (a rotation seen before its first token).
    pub async fn refresh(&self) -> Result<(), ApiError> {
        self.own.refresh().await
    }
}

/// Checks a token's signature and claims with `key`, naming what is wrong.
pub fn decode<T: DeserializeOwned>(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    validation: &Validation,
) -> Result<T, ApiError> {
    use jsonwebtoken::errors::ErrorKind;
    jsonwebtoken::decode::<T>(token, key, validation)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => unauthenticated(
                "TOKEN_EXPIRED",
                "the bearer token has expired; sign in again",
            ),
            ErrorKind::ImmatureSignature => {
                unauthenticated("TOKEN_NOT_YET_VALID", "the bearer token is not valid yet")
            }
            ErrorKind::InvalidAudience => {
                unauthenticated("WRONG_AUDIENCE", "the bearer token is for another audience")
            }
            ErrorKind::InvalidIssuer => {
                unauthenticated("WRONG_ISSUER", "the bearer token comes from another issuer")
            }
            ErrorKind::InvalidSignature => unauthenticated(
                "BAD_SIGNATURE",
                "the bearer token's signature does not verify",
            ),
            ErrorKind::InvalidAlgorithm => unauthenticated(
                "BAD_TOKEN_ALGORITHM",
                "the bearer token's algorithm does not fit its key",
            ),
            _ => unauthenticated(
                "INVALID_TOKEN",
                format!("the bearer token is not valid: {e}"),
            ),
        })
}

fn unauthenticated(reason: &str, message: impl Into<String>) -> ApiError {
    ApiError::unauthenticated(reason, message)
}
