//! Sign-in through an external OpenID Connect issuer (Entra ID, Okta, Keycloak, Google, ...):
//! its discovery document and JWKS fetched over HTTP(S), and its tokens checked here.
//!
//! A token is accepted when it is signed by a key of the issuer's JWKS with RS256, ES256 or
//! EdDSA (never `none` nor an HMAC), names the configured issuer and audience, has not expired,
//! and names a person: its `email` (unless `email_verified` is false), else `preferred_username`
//! or `upn`. Which user that is, and whether they may sign in, is the caller's business
//! ([`crate::api::Identity::external_user`]).
//!
//! The keys are fetched as [`KeyCache`] bounds it: a token naming an unknown key costs at most
//! one JWKS fetch per 30 s for all callers together; a token of another issuer costs none.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cosell_platform::ApiError;
use cosell_platform::auth::keys::{
    ACCEPTED_ALGORITHMS, KeyCache, KeySource, PublicKey, parse_jwks,
};
use cosell_platform::auth::verifier::{MAX_TOKEN_BYTES, decode, token_part};
use cosell_platform::clock::SharedClock;
use jsonwebtoken::{Algorithm, Validation};
use parking_lot::Mutex;

/// Longest discovery document or JWKS read; real ones are a few KiB.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Longest an HTTP fetch of the issuer may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew tolerated between the issuer and this server, in seconds.
const LEEWAY_SECS: u64 = 30;

/// The issuer identity trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer URL, exactly as its tokens' `iss` says (`https://login.example.com/tenant/v2.0`).
    pub issuer: String,
    /// The audience its tokens must be for (`aud`): this platform's client id at the issuer.
    pub audience: String,
}

/// Who an accepted token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// Lower-cased email, from `email`, `preferred_username` or `upn`.
    pub email: String,
    /// The token's `exp`, Unix seconds.
    pub expires_at: i64,
}

pub struct Oidc {
    config: OidcConfig,
    keys: KeyCache,
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(serde::Deserialize)]
struct Peek {
    iss: Option<String>,
}

#[derive(serde::Deserialize)]
struct Claims {
    exp: i64,
    email: Option<String>,
    /// A boolean, or a string (`"false"`) as some issuers write it.
    email_verified: Option<serde_json::Value>,
    preferred_username: Option<String>,
    upn: Option<String>,
}

fn refused(reason: &str, message: impl Into<String>) -> ApiError {
    ApiError::unauthenticated(reason, message)
}

impl Oidc {
    pub fn new(config: OidcConfig, clock: SharedClock) -> Result<Self, String> {
        let source = Arc::new(Jwks::new(&config.issuer)?);
        Ok(Self {
            keys: KeyCache::new(format!("the issuer {}", config.issuer), source, clock),
            config,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Checks a token of the issuer and says whom it names.
    pub async fn verify(&self, token: &str) -> Result<ExternalIdentity, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(refused(
                "MALFORMED_TOKEN",
                format!("the token is longer than {MAX_TOKEN_BYTES} bytes"),
            ));
        }
        let header = token_part::<Header>(token, 0)
            .ok_or_else(|| refused("MALFORMED_TOKEN", "the token is not a JWT"))?;
        let alg = accepted(&header.alg).ok_or_else(|| {
            refused(
                "BAD_TOKEN_ALGORITHM",
                format!(
                    "the token is signed with `{}`; accepted: RS256, ES256, EdDSA",
                    header.alg
                ),
            )
        })?;
        // The issuer is checked before any key is looked for: another issuer's token costs no
        // fetch. The signature check below checks it again, signed.
        let iss = token_part::<Peek>(token, 1).and_then(|p| p.iss);
        if iss.as_deref() != Some(self.config.issuer.as_str()) {
            return Err(refused(
                "WRONG_ISSUER",
                "the token comes from an issuer this platform does not trust",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| refused("MALFORMED_TOKEN", "the token names no key (kid)"))?;
        let key = self.keys.key(&kid).await?;
        if key.alg != alg {
            return Err(refused(
                "BAD_TOKEN_ALGORITHM",
                format!("the token says {alg:?}, its key is for {:?}", key.alg),
            ));
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS;
        let claims: Claims = decode(token, &key.key, &validation)?;
        let verified = match &claims.email_verified {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => !s.eq_ignore_ascii_case("false"),
            _ => true,
        };
        let name = match (&claims.email, verified) {
            (Some(_), false) => {
                return Err(refused(
                    "EMAIL_NOT_VERIFIED",
                    "the issuer says the token's email is not verified",
                ));
            }
            (Some(email), true) => email.clone(),
            (None, _) => claims
                .preferred_username
                .clone()
                .or(claims.upn.clone())
                .ok_or_else(|| {
                    refused(
                        "NO_EMAIL_CLAIM",
                        "the token has no email, preferred_username or upn claim",
                    )
                })?,
        };
        let (email, _) = crate::domain::validate::email(&name).map_err(|e| {
            refused(
                "NO_EMAIL_CLAIM",
                format!("the token's user name is not a work email: {e}"),
            )
        })?;
        Ok(ExternalIdentity {
            email,
            expires_at: claims.exp,
        })
    }
}

fn accepted(alg: &str) -> Option<Algorithm> {
    alg.parse::<Algorithm>()
        .ok()
        .filter(|a| ACCEPTED_ALGORITHMS.contains(a))
}

/// The issuer's keys, from the `jwks_uri` of its discovery document (fetched once, and again
/// after a failure).
struct Jwks {
    http: reqwest::Client,
    issuer: String,
    jwks_uri: Mutex<Option<String>>,
}

impl Jwks {
    fn new(issuer: &str) -> Result<Self, String> {
        cosell_platform::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Self {
            http,
            issuer: issuer.to_owned(),
            jwks_uri: Mutex::new(None),
        })
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn discover(&self) -> Result<String, String> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let body = self.get(&url).await?;
        let d: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("{url} is not a discovery document: {e}"))?;
        if d.issuer != self.issuer {
            return Err(format!(
                "{url} names the issuer `{}`, not `{}`",
                d.issuer, self.issuer
            ));
        }
        // The keys come from where the issuer lives: no plaintext fetch for an https issuer.
        if self.issuer.starts_with("https://") && !d.jwks_uri.starts_with("https://") {
            return Err(format!("{url}: jwks_uri `{}` is not https", d.jwks_uri));
        }
        Ok(d.jwks_uri)
    }
}

impl KeySource for Jwks {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<PublicKey>, String>> + Send + '_>> {
        Box::pin(async move {
            let known = self.jwks_uri.lock().clone();
            let uri = match known {
                Some(u) => u,
                None => {
                    let u = self.discover().await?;
                    *self.jwks_uri.lock() = Some(u.clone());
                    u
                }
            };
            let fetched = match self.get(&uri).await {
                Ok(body) => parse_jwks(&body),
                Err(e) => Err(e),
            };
            if fetched.is_err() {
                // The issuer may have moved its keys: discover again next time.
                *self.jwks_uri.lock() = None;
            }
            fetched
        })
    }
}
