//! `cosell.identity.v1.AccessService`: the access check the other services put on every call.

use std::sync::Arc;

use cosell_platform::auth::{Actor, Principal};
use cosell_platform::{ApiError, Violations, names};
use cosell_proto::identity::{self as pb, access_service_server::AccessService};
use tonic::{Request, Response, Status};

use super::errors::DOMAIN;
use super::{GRANT_CACHE_TTL, Identity, convert};
use crate::domain::{IdentityError, Role, validate};

pub struct Api(pub Arc<Identity>);

impl Identity {
    async fn check_access(
        &self,
        req: Request<pb::CheckAccessRequest>,
    ) -> Result<pb::CheckAccessResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let principal = Principal::parse(&r.principal);
        if principal.is_none() {
            v.add(
                "principal",
                format!("must be `organizations/{{id}}/users/{{id}}` or `servicePrincipals/{{name}}` (got `{}`)", r.principal),
            );
        }
        let org = if r.organization.is_empty() {
            None
        } else {
            v.take(
                "organization",
                names::parse_one(&r.organization, "organizations"),
            )
        };
        let mut any_of = Vec::new();
        for (n, role) in r.any_of_roles.iter().enumerate() {
            match Role::try_from(*role) {
                Ok(Role::Unspecified) | Err(_) => v.add(
                    format!("any_of_roles[{n}]"),
                    format!("{role} is not a known role"),
                ),
                Ok(role) => any_of.push(role),
            }
        }
        let mpn = if r.mpn_id.is_empty() {
            None
        } else {
            v.take("mpn_id", validate::mpn_id(&r.mpn_id))
        };
        v.finish().map_err(IdentityError::from)?;
        let Some(principal) = principal else {
            return Err(ApiError::internal("validation passed with a missing field"));
        };
        let asking_for_self = matches!((actor.user(), &principal), (Some(me), Principal::User { user, .. }) if me.id == *user);
        if !matches!(actor, Actor::Service(_)) && !asking_for_self {
            return Err(IdentityError::denied(
                "SERVICE_ONLY",
                "only services may check another principal's access",
            )
            .into());
        }
        let grants = match &principal {
            Principal::Service(_) => Arc::default(),
            Principal::User { organization, user } => match i.user_access(*user).await? {
                Some(a) if a.grants.organization == Some(*organization) => a.grants.clone(),
                _ => Arc::default(),
            },
        };
        let allowed = org.is_some_and(|org| grants.allows(org, &any_of, mpn.as_deref()));
        Ok(pb::CheckAccessResponse {
            allowed,
            principal_organization: grants
                .organization
                .map(names::organization)
                .unwrap_or_default(),
            grants: grants.to_proto(),
            cache_ttl_ms: GRANT_CACHE_TTL.as_millis() as i64,
        })
    }

    async fn get_caller(
        &self,
        req: Request<pb::GetCallerRequest>,
    ) -> Result<pb::GetCallerResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let resp = match actor.user() {
            None => pb::GetCallerResponse {
                principal: actor.principal(),
                ..Default::default()
            },
            Some(me) => {
                let user = i.store.get_user(me.organization, me.id).await?;
                pb::GetCallerResponse {
                    principal: me.principal(),
                    organization: names::organization(me.organization),
                    user: user.as_ref().map(convert::user),
                    grants: me.grants.to_proto(),
                }
            }
        };
        Ok(resp)
    }
}

#[tonic::async_trait]
impl AccessService for Api {
    async fn check_access(
        &self,
        req: Request<pb::CheckAccessRequest>,
    ) -> Result<Response<pb::CheckAccessResponse>, Status> {
        DOMAIN.respond(self.0.check_access(req).await)
    }

    async fn get_caller(
        &self,
        req: Request<pb::GetCallerRequest>,
    ) -> Result<Response<pb::GetCallerResponse>, Status> {
        DOMAIN.respond(self.0.get_caller(req).await)
    }
}
