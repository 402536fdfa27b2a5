//! `cosell.identity.v1.TokenService`: sign-in, service tokens and the public keys.

use std::sync::Arc;

use cosell_platform::auth::Principal;
use cosell_platform::{ApiError, names};
use cosell_proto::identity::{self as pb, token_service_server::TokenService};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::errors::DOMAIN;
use super::{Identity, convert, field};
use crate::domain::keys::PublishedKey;
use crate::domain::{IdentityError, UserState, validate};

pub struct Api(pub Arc<Identity>);

/// Longest service principal name and client secret accepted (see the proto).
const MAX_SERVICE_NAME: usize = 64;
const MAX_CLIENT_SECRET: usize = 1024;

/// The optional `organization` of a sign-in: `organizations/{id}`.
fn organization_field(name: &str) -> Result<Option<uuid::Uuid>, IdentityError> {
    if name.is_empty() {
        return Ok(None);
    }
    Ok(Some(field(
        "organization",
        names::parse_one(name, "organizations"),
    )?))
}

/// Hex SHA-256 of a client secret, as stored.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn expire(exp: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: exp,
        nanos: 0,
    })
}

fn key(k: PublishedKey) -> pb::SigningKey {
    pb::SigningKey {
        kid: k.kid,
        alg: "EdDSA".into(),
        crv: "Ed25519".into(),
        x: k.x,
        active: k.active,
        expire_time: k.expire_time.map(convert::timestamp),
        activate_time: Some(convert::timestamp(k.activate_time)),
    }
}

impl Identity {
    async fn sign_in_with_email(
        &self,
        req: Request<pb::SignInWithEmailRequest>,
    ) -> Result<pb::SignInWithEmailResponse, ApiError> {
        let i = self;
        if !i.dev_auth {
            return Err(IdentityError::precondition(
                "DEV_AUTH_DISABLED",
                "dev_auth",
                "development sign-in is switched off on this server (start it with --dev-auth)",
            )
            .into());
        }
        let r = req.into_inner();
        let (email, _) = field("email", validate::email(&r.email))?;
        i.limits
            .sign_in
            .check(&email)
            .map_err(IdentityError::from)?;
        let org = organization_field(&r.organization)?;
        let users: Vec<_> = i
            .store
            .users_by_email(&email)
            .await?
            .into_iter()
            .filter(|u| org.is_none_or(|o| u.organization == o))
            .collect();
        let user = match users.as_slice() {
            [] => return Err(IdentityError::NotFound(format!("user {email}")).into()),
            [one] => one.clone(),
            _ => {
                return Err(
                    IdentityError::Invalid(cosell_platform::ApiError::invalid_field(
                        "organization",
                        format!("{email} is a user of several organizations; name one"),
                    ))
                    .into(),
                );
            }
        };
        if user.state != UserState::Active {
            return Err(IdentityError::denied("USER_DISABLED", "this user is disabled").into());
        }
        let principal = Principal::User {
            organization: user.organization,
            user: user.id,
        };
        let (access_token, exp) = i
            .keys
            .issue(&principal, Some(user.email.clone()), None)
            .await?;
        Ok(pb::SignInWithEmailResponse {
            access_token,
            expire_time: expire(exp),
            user: principal.to_string(),
        })
    }

    async fn exchange_token(
        &self,
        req: Request<pb::ExchangeTokenRequest>,
    ) -> Result<pb::ExchangeTokenResponse, ApiError> {
        let i = self;
        let r = req.into_inner();
        if r.subject_token.trim().is_empty() {
            return Err(
                IdentityError::Invalid(cosell_platform::ApiError::invalid_field(
                    "subject_token",
                    "is required: a token of the trusted OpenID Connect issuer",
                ))
                .into(),
            );
        }
        let org = organization_field(&r.organization)?;
        let (user, not_after) = i.external_user(r.subject_token.trim(), org).await?;
        let principal = Principal::User {
            organization: user.organization,
            user: user.id,
        };
        let (access_token, exp) = i
            .keys
            .issue(&principal, Some(user.email), Some(not_after))
            .await?;
        Ok(pb::ExchangeTokenResponse {
            access_token,
            expire_time: expire(exp),
            user: principal.to_string(),
        })
    }

    async fn issue_service_token(
        &self,
        req: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<pb::IssueServiceTokenResponse, ApiError> {
        let i = self;
        let r = req.into_inner();
        let denied = || IdentityError::Unauthenticated {
            reason: "BAD_CLIENT_SECRET",
            message: "unknown service or wrong client secret".into(),
        };
        if r.service.is_empty() || r.service.len() > MAX_SERVICE_NAME {
            return Err(
                IdentityError::Invalid(cosell_platform::ApiError::invalid_field(
                    "service",
                    format!("is required (at most {MAX_SERVICE_NAME} characters)"),
                ))
                .into(),
            );
        }
        if r.client_secret.len() > MAX_CLIENT_SECRET {
            return Err(denied().into());
        }
        i.limits
            .service_token
            .check(&r.service)
            .map_err(IdentityError::from)?;
        let stored = i
            .store
            .service_secret_hash(&r.service)
            .await?
            .ok_or_else(denied)?;
        // Compare digests, not secrets: equal-length strings of hex, so timing says nothing
        // about the secret itself.
        if stored != secret_hash(&r.client_secret) {
            return Err(denied().into());
        }
        let principal = Principal::Service(r.service);
        let (access_token, exp) = i.keys.issue(&principal, None, None).await?;
        Ok(pb::IssueServiceTokenResponse {
            access_token,
            expire_time: expire(exp),
        })
    }

    async fn list_signing_keys(
        &self,
        _req: Request<pb::ListSigningKeysRequest>,
    ) -> Result<pb::ListSigningKeysResponse, ApiError> {
        let keys = self.keys.published().await?;
        Ok(pb::ListSigningKeysResponse {
            keys: keys.into_iter().map(key).collect(),
        })
    }

    async fn rotate_signing_key(
        &self,
        req: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<pb::RotateSigningKeyResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        if !i.is_platform_operator(&actor) {
            return Err(IdentityError::denied(
                "MISSING_ROLE",
                "only platform operators rotate signing keys",
            )
            .into());
        }
        let k = i.keys.rotate().await?;
        tracing::info!(kid = %k.kid, "signing key rotated");
        Ok(pb::RotateSigningKeyResponse { key: Some(key(k)) })
    }
}

#[tonic::async_trait]
impl TokenService for Api {
    async fn list_signing_keys(
        &self,
        req: Request<pb::ListSigningKeysRequest>,
    ) -> Result<Response<pb::ListSigningKeysResponse>, Status> {
        DOMAIN.respond(self.0.list_signing_keys(req).await)
    }

    async fn sign_in_with_email(
        &self,
        req: Request<pb::SignInWithEmailRequest>,
    ) -> Result<Response<pb::SignInWithEmailResponse>, Status> {
        DOMAIN.respond(self.0.sign_in_with_email(req).await)
    }

    async fn exchange_token(
        &self,
        req: Request<pb::ExchangeTokenRequest>,
    ) -> Result<Response<pb::ExchangeTokenResponse>, Status> {
        DOMAIN.respond(self.0.exchange_token(req).await)
    }

    async fn issue_service_token(
        &self,
        req: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<Response<pb::IssueServiceTokenResponse>, Status> {
        DOMAIN.respond(self.0.issue_service_token(req).await)
    }

    async fn rotate_signing_key(
        &self,
        req: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        DOMAIN.respond(self.0.rotate_signing_key(req).await)
    }
}
