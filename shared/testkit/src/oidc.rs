//! An OpenID Connect issuer for tests: discovery and JWKS served over HTTP on 127.0.0.1, an
//! RS256 and an ES256 key made when it starts, and tokens signed with them (or, for the bad
//! cases, with a key it does not publish, with `none`, or HMAC'd with its public key).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A key the issuer signs with.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    key: EncodingKey,
    /// Its public half as a JWK.
    jwk: serde_json::Value,
}

impl SigningKey {
    /// A new 2048-bit RSA key for RS256.
    pub fn rsa(kid: &str) -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA key");
        let der = private.to_pkcs1_der().expect("PKCS#1");
        let public = private.to_public_key();
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: serde_json::json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }),
        }
    }

    /// A new P-256 key for ES256.
    pub fn p256(kid: &str) -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::EncodePrivateKey;
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let der = secret.to_pkcs8_der().expect("PKCS#8");
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: serde_json::json!({
                "kty": "EC", "use": "sig", "crv": "P-256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(point.x().expect("x")),
                "y": URL_SAFE_NO_PAD.encode(point.y().expect("y")),
            }),
        }
    }

    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
    }
}

/// The issuer, serving until dropped.
pub struct TestIssuer {
    /// `http://127.0.0.1:PORT`: the `iss` of its tokens.
    pub issuer: String,
    pub audience: String,
    pub rsa: SigningKey,
    pub ec: SigningKey,
    /// How many times its JWKS was fetched.
    jwks_fetches: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestIssuer {
    pub async fn start(audience: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let rsa = SigningKey::rsa("rsa-1");
        let ec = SigningKey::p256("ec-1");
        let discovery = serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/keys"),
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        })
        .to_string();
        let jwks = serde_json::json!({ "keys": [rsa.jwk, ec.jwk] }).to_string();
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let fetches = jwks_fetches.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (discovery, jwks, fetches) = (discovery.clone(), jwks.clone(), fetches.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or_default();
                    let (status, body) = match path {
                        "/.well-known/openid-configuration" => ("200 OK", discovery),
                        "/keys" => {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            ("200 OK", jwks)
                        }
                        _ => ("404 Not Found", "{}".to_owned()),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self {
            issuer,
            audience: audience.into(),
            rsa,
            ec,
            jwks_fetches,
            server,
        }
    }

    /// Claims of a valid token for `email`: this issuer, the audience, an hour to live.
    pub fn claims(&self, email: &str) -> serde_json::Value {
        let now = chrono::Utc::now().timestamp();
        serde_json::json!({
            "iss": self.issuer, "aud": self.audience, "sub": format!("sub-{email}"),
            "email": email, "email_verified": true, "iat": now, "exp": now + 3600,
        })
    }

    /// A valid RS256 token for `email`.
    pub fn token(&self, email: &str) -> String {
        self.rsa.sign(&self.claims(email))
    }

    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// `claims` with `alg: none` and no signature.
    pub fn unsigned(claims: &serde_json::Value) -> String {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    /// `claims` HMAC'd (HS256) with the RSA key's public JWK as the secret: the classic attack
    /// on verifiers that let the token pick the algorithm.
    pub fn hmac_with_public_key(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.rsa.kid.clone());
        let secret = self.rsa.jwk["n"].as_str().unwrap_or_default().as_bytes();
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign")
    }
}
