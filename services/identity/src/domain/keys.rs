//! The signing key ring: Ed25519 keys in the identity database, one signing at a time.
//!
//! Rotation adds a new signing key and retires the old one, which keeps verifying until every
//! token it signed has expired; the other services fetch the new public key the first time they
//! see its `kid`, so a rotation needs no restart anywhere.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use cosell_platform::auth::{AUDIENCE, Claims, ISSUER, KeySource, Principal, PublicKey};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::RwLock;

use super::{IdentityError, Result};
use crate::store::Store;

/// How long a replica trusts its cached signing key before looking for a rotation by another
/// replica.
const ACTIVE_KEY_RECHECK: Duration = Duration::from_secs(10);
/// Margin added to a retired key's life beyond the token lifetime.
const RETIRE_MARGIN: Duration = Duration::from_secs(60);

/// A public key as published.
#[derive(Debug, Clone)]
pub struct PublishedKey {
    pub kid: String,
    pub x: String,
    pub active: bool,
    pub expire_time: Option<DateTime<Utc>>,
}

struct ActiveKey {
    kid: String,
    key: EncodingKey,
    loaded: Instant,
}

pub struct KeyRing {
    store: Store,
    token_ttl: Duration,
    active: RwLock<Option<ActiveKey>>,
}

impl KeyRing {
    /// Loads the signing key, creating the first one on a new database.
    pub async fn open(store: Store, token_ttl: Duration) -> Result<Self> {
        let ring = Self {
            store,
            token_ttl,
            active: RwLock::new(None),
        };
        if ring.store.active_signing_key().await?.is_none() {
            ring.store.insert_signing_key(new_key()?, None).await?;
        }
        ring.load_active().await?;
        Ok(ring)
    }

    pub fn token_ttl(&self) -> Duration {
        self.token_ttl
    }

    async fn load_active(&self) -> Result<()> {
        let row = self
            .store
            .active_signing_key()
            .await?
            .ok_or_else(|| IdentityError::Internal("no active signing key".into()))?;
        let der = STANDARD.decode(&row.private_pkcs8).map_err(|e| {
            IdentityError::Internal(format!("stored key {} is not base64: {e}", row.kid))
        })?;
        *self.active.write() = Some(ActiveKey {
            kid: row.kid,
            key: EncodingKey::from_ed_der(&der),
            loaded: Instant::now(),
        });
        Ok(())
    }

    /// Signs a token for `principal`, valid for the configured lifetime.
    pub async fn issue(
        &self,
        principal: &Principal,
        email: Option<String>,
    ) -> Result<(String, i64)> {
        let now = Utc::now().timestamp();
        let exp = now + self.token_ttl.as_secs() as i64;
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
        let stale = self
            .active
            .read()
            .as_ref()
            .is_none_or(|k| k.loaded.elapsed() > ACTIVE_KEY_RECHECK);
        if stale {
            self.load_active().await?;
        }
        let guard = self.active.read();
        let active = guard
            .as_ref()
            .ok_or_else(|| IdentityError::Internal("no active signing key".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(active.kid.clone());
        jsonwebtoken::encode(&header, claims, &active.key)
            .map_err(|e| IdentityError::Internal(e.to_string()))
    }

    /// Every key that verifies now: the signing key and retired keys not yet expired.
    pub async fn published(&self) -> Result<Vec<PublishedKey>> {
        let now = Utc::now();
        Ok(self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.expire_time.is_none_or(|t| t > now))
            .map(|k| PublishedKey {
                active: k.retire_time.is_none(),
                kid: k.kid,
                x: k.public_x,
                expire_time: k.expire_time,
            })
            .collect())
    }

    /// Retires the signing key and starts signing with a new one.
    pub async fn rotate(&self) -> Result<PublishedKey> {
        let retire_after = self.token_ttl + RETIRE_MARGIN;
        let key = new_key()?;
        let published = PublishedKey {
            kid: key.kid.clone(),
            x: key.public_x.clone(),
            active: true,
            expire_time: None,
        };
        self.store
            .insert_signing_key(
                key,
                Some(chrono::Duration::from_std(retire_after).unwrap_or_default()),
            )
            .await?;
        self.load_active().await?;
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
pub struct LocalKeys(pub Store);

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
            let now = Utc::now();
            Ok(self
                .0
                .signing_keys()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|k| k.expire_time.is_none_or(|t| t > now))
                .map(|k| PublicKey {
                    kid: k.kid,
                    x: k.public_x,
                })
                .collect())
        })
    }
}
