//! Checks bearer tokens: the EdDSA signature with identity's public keys (fetched on demand and
//! again when a token names a key not seen yet, which is how a key rotation reaches every
//! service), issuer, audience and expiry.
//!
//! A token that passed once is remembered until it expires, so that a warm call costs a hash
//! lookup rather than a signature check.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::{Mutex, RwLock};

use super::claims::{AUDIENCE, Caller, Claims, ISSUER, Principal};
use crate::error::ApiError;

/// A public key that may verify tokens.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub kid: String,
    /// Ed25519 public key, base64url without padding (JWK `x`).
    pub x: String,
}

/// Where the public keys come from: identity's `ListSigningKeys` for other services, the key
/// ring itself inside identity.
pub trait KeySource: Send + Sync + 'static {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<PublicKey>, String>> + Send + '_>>;
}

/// Seconds of clock skew tolerated between the signer and this server.
const LEEWAY_SECS: u64 = 5;
/// A token naming an unknown key triggers at most one key fetch per this long, so that forged
/// key ids cannot make this server hammer identity.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Bound on remembered tokens; the memory is cleared when it fills (it refills from traffic).
const MAX_CACHED_TOKENS: usize = 100_000;

pub struct TokenVerifier {
    source: Arc<dyn KeySource>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_refresh: Mutex<Option<Instant>>,
    /// Serializes key fetches so that a burst of calls after a rotation fetches once.
    refreshing: tokio::sync::Mutex<()>,
    verified: RwLock<HashMap<Arc<str>, Caller>>,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(source: Arc<dyn KeySource>) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            source,
            keys: RwLock::new(HashMap::new()),
            last_refresh: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            verified: RwLock::new(HashMap::new()),
            validation,
        }
    }

    /// Checks a bearer token and says who it belongs to.
    pub async fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(caller) = self.verified.read().get(token)
            && caller.expires_at + LEEWAY_SECS as i64 >= now
        {
            return Ok(caller.clone());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            unauthenticated(
                "MALFORMED_TOKEN",
                format!("the bearer token is not a JWT: {e}"),
            )
        })?;
        if header.alg != Algorithm::EdDSA {
            return Err(unauthenticated(
                "BAD_TOKEN_ALGORITHM",
                "the bearer token is not EdDSA-signed",
            ));
        }
        let kid = header.kid.ok_or_else(|| {
            unauthenticated("MALFORMED_TOKEN", "the bearer token names no key (kid)")
        })?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => unauthenticated(
                    "TOKEN_EXPIRED",
                    "the bearer token has expired; sign in again",
                ),
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
                _ => unauthenticated(
                    "INVALID_TOKEN",
                    format!("the bearer token is not valid: {e}"),
                ),
            }
        })?;
        let principal = Principal::parse(&data.claims.sub).ok_or_else(|| {
            unauthenticated(
                "INVALID_TOKEN",
                "the bearer token names no known kind of principal",
            )
        })?;
        let caller = Caller {
            principal,
            email: data.claims.email,
            expires_at: data.claims.exp,
        };
        let mut verified = self.verified.write();
        if verified.len() >= MAX_CACHED_TOKENS {
            verified.clear();
        }
        verified.insert(Arc::from(token), caller.clone());
        Ok(caller)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, ApiError> {
        if let Some(key) = self.keys.read().get(kid) {
            return Ok(key.clone());
        }
        let _guard = self.refreshing.lock().await;
        // Another call may have fetched while this one waited.
        if let Some(key) = self.keys.read().get(kid) {
            return Ok(key.clone());
        }
        // At most one fetch per interval: a token naming a new key waits for the next slot
        // rather than failing, while forged key ids cannot make this server hammer identity.
        let wait = self
            .last_refresh
            .lock()
            .map(|t| MIN_REFRESH_INTERVAL.saturating_sub(t.elapsed()))
            .unwrap_or_default();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.refresh().await?;
        self.keys.read().get(kid).cloned().ok_or_else(|| {
            unauthenticated(
                "UNKNOWN_SIGNING_KEY",
                "the bearer token was signed by a key this platform does not know",
            )
        })
    }

    /// Fetches the current public keys, replacing the known set (retired keys drop out).
    pub async fn refresh(&self) -> Result<(), ApiError> {
        *self.last_refresh.lock() = Some(Instant::now());
        let fetched = self.source.fetch().await.map_err(|e| {
            ApiError::unavailable(
                "SIGNING_KEYS_UNAVAILABLE",
                format!("cannot fetch the token signing keys: {e}"),
            )
        })?;
        let mut keys = HashMap::new();
        for k in fetched {
            match DecodingKey::from_ed_components(&k.x) {
                Ok(key) => {
                    keys.insert(k.kid, key);
                }
                Err(e) => {
                    tracing::warn!(kid = %k.kid, error = %e, "ignoring a malformed signing key")
                }
            }
        }
        *self.keys.write() = keys;
        Ok(())
    }
}

fn unauthenticated(reason: &str, message: impl Into<String>) -> ApiError {
    ApiError::unauthenticated(reason, message)
}
