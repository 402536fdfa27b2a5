//! The signing key ring: Ed25519 keys in the identity database, one signing at a time.
//!
//! Rotation publishes a new key at once and signs with it [`ROLLOVER_LEAD`] later: verifiers
//! fetch keys at most once every [`MIN_REFETCH`] (so that forged key ids cannot make them hammer
//! identity), and by the time the new key signs, each of them may fetch again or has already
//! seen it. The old key stops signing then and keeps verifying until every token it signed has
//! expired. No restart anywhere.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use cosell_platform::auth::keys::MIN_REFETCH;
use cosell_platform::auth::{AUDIENCE, Claims, ISSUER, KeySource, Principal, PublicKey};
use cosell_platform::clock::SharedClock;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::RwLock;

use super::{IdentityError, Result};
use crate::store::Store;
use crate::store::entities::signing_key;

/// How long a replica trusts its cached keys before looking for a rotation by another replica
/// (well inside [`ROLLOVER_LEAD`], so every replica signs with the new key on time).
const KEYS_RECHECK: Duration = Duration::from_secs(10);
/// Margin added to a retired key's life beyond the token lifetime.
const RETIRE_MARGIN: Duration = Duration::from_secs(60);
/// How long a new key is published before it signs: a verifier's refetch interval and a margin.
pub const ROLLOVER_LEAD: Duration = Duration::from_secs(MIN_REFETCH.as_secs() + 5);

/// A public key as published.
#[derive(Debug, Clone)]
pub struct PublishedKey {
    pub kid: String,
    pub x: String,
    pub active: bool,
    pub activate_time: DateTime<Utc>,
    pub expire_time: Option<DateTime<Utc>>,
}

/// A key that signs, or will, or did.
struct Signer {
    kid: String,
    key: EncodingKey,
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

impl Signer {
    fn signs_at(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && self.until.is_none_or(|u| t < u)
    }
}

struct Loaded {
    signers: Vec<Signer>,
    at: DateTime<Utc>,
}

fn signs_from(k: &signing_key::Model) -> DateTime<Utc> {
    k.activate_time.unwrap_or(k.create_time)
}

fn as_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

pub struct KeyRing {
    store: Store,
    token_ttl: Duration,
    clock: SharedClock,
    loaded: RwLock<Option<Loaded>>,
}

impl KeyRing {
    /// Loads the keys, creating the first one on a new database.
    pub async fn open(store: Store, token_ttl: Duration, clock: SharedClock) -> Result<Self> {
        let ring = Self {
            store,
            token_ttl,
            clock,
            loaded: RwLock::new(None),
        };
        let keys = ring.store.signing_keys().await?;
        if !keys.iter().any(|k| k.retire_time.is_none()) {
            ring.store
                .insert_signing_key(new_key()?, ring.clock.now(), None)
                .await?;
        }
        ring.load().await?;
        Ok(ring)
    }

    pub fn token_ttl(&self) -> Duration {
        self.token_ttl
    }

    async fn load(&self) -> Result<()> {
        let mut signers = Vec::new();
        for row in self.store.signing_keys().await? {
            let der = STANDARD.decode(&row.private_pkcs8).map_err(|e| {
                IdentityError::Internal(format!("stored key {} is not base64: {e}", row.kid))
            })?;
            signers.push(Signer {
                from: signs_from(&row),
                until: row.retire_time,
                kid: row.kid,
                key: EncodingKey::from_ed_der(&der),
            });
        }
        *self.loaded.write() = Some(Loaded {
            signers,
            at: self.clock.now(),
        });
        Ok(())
    }

    /// Signs a token for `principal`, valid for the configured lifetime and, when given, no
    /// later than `not_after` (Unix seconds).
    pub async fn issue(
        &self,
        principal: &Principal,
        email: Option<String>,
        not_after: Option<i64>,
    ) -> Result<(String, i64)> {
        let now = self.clock.now().timestamp();
        let mut exp = now + self.token_ttl.as_secs() as i64;
        if let Some(limit) = not_after {
            exp = exp.min(limit);
        }
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: principal.to_string(),
            email,
            iat: now,
            exp,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        Ok((self.sign(&claims).await?, exp))
    }

    /// Signs arbitrary claims with the signing key (tests mint expired or foreign tokens so).
    pub async fn sign(&self, claims: &Claims) -> Result<String> {
        let now = self.clock.now();
        let stale = self
            .loaded
            .read()
            .as_ref()
            .is_none_or(|l| now - l.at > as_chrono(KEYS_RECHECK));
        if stale {
            self.load().await?;
        }
        let guard = self.loaded.read();
        let signer = guard
            .as_ref()
            .and_then(|l| {
                l.signers
                    .iter()
                    .filter(|s| s.signs_at(now))
                    .max_by_key(|s| s.from)
            })
            .ok_or_else(|| IdentityError::Internal("no signing key for now".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, claims, &signer.key)
            .map_err(|e| IdentityError::Internal(e.to_string()))
    }

    /// Every key that verifies now or will sign soon: the signing key, a new key not signing
    /// yet, and retired keys not yet expired.
    pub async fn published(&self) -> Result<Vec<PublishedKey>> {
        let now = self.clock.now();
        Ok(self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.expire_time.is_none_or(|t| t > now))
            .map(|k| PublishedKey {
                active: signs_from(&k) <= now && k.retire_time.is_none_or(|t| now < t),
                activate_time: signs_from(&k),
                kid: k.kid,
                x: k.public_x,
                expire_time: k.expire_time,
            })
            .collect())
    }

    /// Publishes a new key that signs from [`ROLLOVER_LEAD`] on; the keys signing until then
    /// stop at that time.
    pub async fn rotate(&self) -> Result<PublishedKey> {
        let now = self.clock.now();
        let activate = now + as_chrono(ROLLOVER_LEAD);
        let expire = activate + as_chrono(self.token_ttl + RETIRE_MARGIN);
        let key = new_key()?;
        let published = PublishedKey {
            kid: key.kid.clone(),
            x: key.public_x.clone(),
            active: false,
            activate_time: activate,
            expire_time: None,
        };
        self.store
            .insert_signing_key(key, now, Some((activate, expire)))
            .await?;
        self.load().await?;
        Ok(published)
    }
}

/// A freshly generated key, ready to store.
pub struct NewKey {
    pub kid: String,
    pub private_pkcs8: String,
    pub public_x: String,
}

fn new_key() -> Result<NewKey> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = key
        .to_pkcs8_der()
        .map_err(|e| IdentityError::Internal(format!("cannot encode a new key: {e}")))?;
    Ok(NewKey {
        kid: uuid::Uuid::now_v7().simple().to_string(),
        private_pkcs8: STANDARD.encode(der.as_bytes()),
        public_x: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
    })
}

/// Identity's own token checks read the key ring's public keys straight from its database.
pub struct LocalKeys(pub Store, pub SharedClock);

impl KeySource for LocalKeys {
    fn fetch(
        &self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = std::result::Result<Vec<PublicKey>, String>>
                + Send
                + '_,
        >,
    > {
        Box::pin(async move {
            let now = self.1.now();
            self.0
                .signing_keys()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|k| k.expire_time.is_none_or(|t| t > now))
                .map(|k| PublicKey::ed25519(k.kid, &k.public_x))
                .collect()
        })
    }
}
