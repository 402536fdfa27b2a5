//! The public keys of one token issuer (identity's own, or an external OpenID Connect
//! issuer's JWKS), fetched when a token names a key not seen yet.
//!
//! Fetching is what a stranger can make this server do with a token of a made-up key id, so it
//! is bounded: at most one successful fetch per [`MIN_REFETCH`] for every caller together (a key
//! id still unknown after a fetch is refused at once until the next one may run, without
//! waiting), one fetch in flight at a time (callers that arrive meanwhile share its answer),
//! each fetch limited to [`FETCH_TIMEOUT`], and after a failed fetch callers hear `UNAVAILABLE`
//! for [`FAILURE_BACKOFF`] instead of retrying it each. Identity publishes a new signing key
//! [`MIN_REFETCH`] and more before it signs with it (see identity's key ring), so a rotation
//! never meets a verifier that may not fetch yet.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::{Mutex, RwLock};

use crate::clock::SharedClock;
use crate::error::ApiError;

/// Least time between two successful key fetches of one issuer.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
/// How long callers hear `UNAVAILABLE` after a failed fetch before another is tried.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(1);
/// Longest a key fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The signature algorithms accepted from any issuer: what Entra ID, Okta, Keycloak and Google
/// sign with, and identity's own. Never `none` nor an HMAC (a public key is no secret).
pub const ACCEPTED_ALGORITHMS: &[Algorithm] =
    &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// A key that verifies tokens, and the one algorithm it verifies.
#[derive(Clone)]
pub struct PublicKey {
    pub kid: String,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// An Ed25519 key from its JWK `x` (base64url, no padding): identity's keys.
    pub fn ed25519(kid: impl Into<String>, x: &str) -> Result<Self, String> {
        Ok(Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            key: DecodingKey::from_ed_components(x).map_err(|e| e.to_string())?,
        })
    }

    /// A signing key of a JWKS: RSA (RS256), P-256 (ES256) or Ed25519 (EdDSA). Keys for
    /// encryption, of other curves or algorithms, or without a `kid` are not for us.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            return Err("an encryption key".into());
        }
        let kid = jwk.common.key_id.clone().ok_or("no kid")?;
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            _ => return Err("not an RSA, P-256 or Ed25519 key".into()),
        };
        let declared = match jwk.common.key_algorithm {
            None => None,
            Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
            Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
            Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
            Some(other) => return Err(format!("algorithm {other:?} is not accepted")),
        };
        if declared.is_some_and(|d| d != alg) {
            return Err("its alg does not fit its key type".into());
        }
        Ok(Self {
            kid,
            alg,
            key: DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?,
        })
    }
}

/// The keys of a JWKS document (`{"keys": [...]}`), skipping keys that are not for signing
/// tokens we accept (listed in the log), so that one odd key does not hide the others.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<PublicKey>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for value in set.keys {
        match serde_json::from_value::<Jwk>(value)
            .map_err(|e| e.to_string())
            .and_then(|jwk| PublicKey::from_jwk(&jwk))
        {
            Ok(k) => keys.push(k),
            Err(e) => tracing::debug!(error = %e, "JWKS key skipped"),
        }
    }
    Ok(keys)
}

/// Where one issuer's public keys come from.
pub trait KeySource: Send + Sync + 'static {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<PublicKey>, String>> + Send + '_>>;
}

#[derive(Default)]
struct Fetches {
    last_ok: Option<DateTime<Utc>>,
    last_failure: Option<(DateTime<Utc>, String)>,
}

/// One issuer's keys by `kid`, fetched as the module map says.
pub struct KeyCache {
    /// For messages and logs: whose keys these are.
    issuer: String,
    source: Arc<dyn KeySource>,
    clock: SharedClock,
    keys: RwLock<Arc<HashMap<String, PublicKey>>>,
    fetches: Mutex<Fetches>,
    /// One fetch at a time; callers that wait for it read its answer from `keys`.
    fetching: tokio::sync::Mutex<()>,
}

impl KeyCache {
    pub fn new(issuer: impl Into<String>, source: Arc<dyn KeySource>, clock: SharedClock) -> Self {
        Self {
            issuer: issuer.into(),
            source,
            clock,
            keys: RwLock::new(Arc::default()),
            fetches: Mutex::new(Fetches::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The key named `kid`: known already, or fetched if a fetch may run now.
    pub async fn key(&self, kid: &str) -> Result<PublicKey, ApiError> {
        if let Some(k) = self.keys.read().get(kid) {
            return Ok(k.clone());
        }
        self.may_fetch()?;
        let _one = self.fetching.lock().await;
        // A fetch that ran while this call waited may have brought it, or ruled it out.
        if let Some(k) = self.keys.read().get(kid) {
            return Ok(k.clone());
        }
        self.may_fetch()?;
        self.refresh().await?;
        self.keys
            .read()
            .get(kid)
            .cloned()
            .ok_or_else(|| self.unknown())
    }

    /// `Ok` when a fetch may run now; otherwise the answer a caller gets without one.
    fn may_fetch(&self) -> Result<(), ApiError> {
        let now = self.clock.now();
        let f = self.fetches.lock();
        if let Some((at, error)) = &f.last_failure
            && now - *at < chrono::Duration::from_std(FAILURE_BACKOFF).unwrap_or_default()
        {
            return Err(ApiError::unavailable(
                "SIGNING_KEYS_UNAVAILABLE",
                format!("cannot fetch the signing keys of {}: {error}", self.issuer),
            ));
        }
        if let Some(at) = f.last_ok
            && now - at < chrono::Duration::from_std(MIN_REFETCH).unwrap_or_default()
        {
            return Err(self.unknown());
        }
        Ok(())
    }

    fn unknown(&self) -> ApiError {
        ApiError::unauthenticated(
            "UNKNOWN_SIGNING_KEY",
            format!(
                "the bearer token was signed by a key {} does not publish",
                self.issuer
            ),
        )
    }

    /// Fetches the keys now, replacing the known set (retired keys drop out).
    pub async fn refresh(&self) -> Result<(), ApiError> {
        let fetched = match tokio::time::timeout(FETCH_TIMEOUT, self.source.fetch()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {FETCH_TIMEOUT:?}")),
        };
        let now = self.clock.now();
        match fetched {
            Ok(keys) => {
                let keys = keys.into_iter().map(|k| (k.kid.clone(), k)).collect();
                *self.keys.write() = Arc::new(keys);
                let mut f = self.fetches.lock();
                f.last_ok = Some(now);
                f.last_failure = None;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "cannot fetch signing keys");
                self.fetches.lock().last_failure = Some((now, e.clone()));
                Err(ApiError::unavailable(
                    "SIGNING_KEYS_UNAVAILABLE",
                    format!("cannot fetch the signing keys of {}: {e}", self.issuer),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::clock::ManualClock;

    struct Counted {
        fetches: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    impl KeySource for Counted {
        fn fetch(
            &self,
        ) -> Pin<Box<dyn Future<Output = Result<Vec<PublicKey>, String>> + Send + '_>> {
            Box::pin(async move {
                self.fetches.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                if self.fail.load(Ordering::SeqCst) {
                    return Err("down".into());
                }
                Ok(vec![
                    PublicKey::ed25519("known", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
                        .unwrap(),
                ])
            })
        }
    }

    #[tokio::test]
    async fn unknown_key_ids_cost_one_fetch_per_interval_for_everyone() {
        let source = Arc::new(Counted {
            fetches: AtomicUsize::new(0),
            fail: false.into(),
        });
        let clock = ManualClock::new();
        let cache = Arc::new(KeyCache::new("identity", source.clone(), clock.clone()));
        let calls = (0..500).map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.key(&format!("forged-{i}")).await })
        });
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.unwrap().unwrap_err().reason, "UNKNOWN_SIGNING_KEY");
        }
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
        cache.key("known").await.expect("the fetched key is known");
        clock.advance(chrono::Duration::seconds(29));
        assert!(cache.key("forged-x").await.is_err());
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1, "remembered");
        clock.advance(chrono::Duration::seconds(1));
        assert!(cache.key("forged-y").await.is_err());
        assert_eq!(
            source.fetches.load(Ordering::SeqCst),
            2,
            "one more after 30 s"
        );
    }

    #[tokio::test]
    async fn a_failed_fetch_is_unavailable_and_retried_after_the_backoff() {
        let source = Arc::new(Counted {
            fetches: AtomicUsize::new(0),
            fail: true.into(),
        });
        let clock = ManualClock::new();
        let cache = KeyCache::new("identity", source.clone(), clock.clone());
        let e = cache.key("known").await.unwrap_err();
        assert_eq!(e.code, tonic::Code::Unavailable);
        let e = cache.key("known").await.unwrap_err();
        assert_eq!(e.code, tonic::Code::Unavailable);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1, "backing off");
        source.fail.store(false, Ordering::SeqCst);
        clock.advance(chrono::Duration::seconds(1));
        cache.key("known").await.expect("recovers by itself");
    }
}
