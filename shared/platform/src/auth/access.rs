//! Authorization for services other than identity: the caller's grants come from identity's
//! `CheckAccess` and are kept for a short time (identity says how long, never more than
//! [`MAX_GRANT_TTL`]), so that a role change is seen within seconds (rule I5) while a warm call
//! costs a map lookup.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosell_proto::identity::{self as pb, Role};
use parking_lot::{Mutex, RwLock};
use tonic::transport::Channel;
use uuid::Uuid;

use super::actor::Actor;
use super::claims::{Caller, Principal};
use crate::error::ApiError;
use crate::telemetry::TracedChannel;

/// Upper bound on how long grants are reused; with identity's own cache of the same length a
/// role change is effective everywhere within 4 s (rule I5 asks for 5).
pub const MAX_GRANT_TTL: Duration = Duration::from_secs(2);

/// A principal's effective roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// The principal's organization; `None` for a service.
    pub organization: Option<Uuid>,
    /// Role and scope: `None` = the entire organization, `Some(mpn_id)` = one location.
    pub roles: Vec<(Role, Option<String>)>,
}

impl Grants {
    /// Whether these grants include one of `any_of` over `organization` (and over the location
    /// `mpn_id` when given: an org-wide grant covers every location).
    pub fn allows(&self, organization: Uuid, any_of: &[Role], mpn_id: Option<&str>) -> bool {
        if self.organization != Some(organization) {
            return false;
        }
        self.roles.iter().any(|(role, scope)| {
            any_of.contains(role)
                && match (scope, mpn_id) {
                    (None, _) => true,
                    (Some(s), Some(m)) => s == m,
                    (Some(_), None) => false,
                }
        })
    }

    /// Holds `role` at any scope.
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|(r, _)| *r == role)
    }

    /// The location MPN IDs where the principal holds one of `any_of`, or `None` when it holds
    /// one org-wide (then every location is covered).
    pub fn locations_for(&self, any_of: &[Role]) -> Option<Vec<String>> {
        let mut locations = Vec::new();
        for (role, scope) in &self.roles {
            if any_of.contains(role) {
                match scope {
                    None => return None,
                    Some(m) => locations.push(m.clone()),
                }
            }
        }
        Some(locations)
    }

    pub fn from_proto(organization: &str, grants: &[pb::Grant]) -> Self {
        Self {
            organization: organization
                .strip_prefix("organizations/")
                .and_then(|id| Uuid::parse_str(id).ok()),
            roles: grants
                .iter()
                .filter_map(|g| {
                    let role = Role::try_from(g.role).ok()?;
                    let scope = (!g.mpn_id.is_empty()).then(|| g.mpn_id.clone());
                    Some((role, scope))
                })
                .collect(),
        }
    }

    pub fn to_proto(&self) -> Vec<pb::Grant> {
        self.roles
            .iter()
            .map(|(role, scope)| pb::Grant {
                role: *role as i32,
                mpn_id: scope.clone().unwrap_or_default(),
            })
            .collect()
    }
}

/// Gets and refreshes this service's own bearer token from identity (client credentials).
pub struct ServiceToken {
    client: pb::token_service_client::TokenServiceClient<TracedChannel>,
    service: String,
    secret: String,
    current: Mutex<Option<(String, i64)>>,
}

impl ServiceToken {
    pub fn new(channel: Channel, service: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            client: pb::token_service_client::TokenServiceClient::new(channel.into()),
            service: service.into(),
            secret: secret.into(),
            current: Mutex::new(None),
        }
    }

    /// A token valid for at least another minute.
    pub async fn token(&self) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        if let Some((token, exp)) = self.current.lock().as_ref()
            && *exp - now > 60
        {
            return Ok(token.clone());
        }
        let resp = self
            .client
            .clone()
            .issue_service_token(pb::IssueServiceTokenRequest {
                service: self.service.clone(),
                client_secret: self.secret.clone(),
            })
            .await
            .map_err(|s| {
                ApiError::unavailable(
                    "IDENTITY_UNAVAILABLE",
                    format!("cannot get a service token: {}", s.message()),
                )
            })?
            .into_inner();
        let exp = resp.expire_time.map(|t| t.seconds).unwrap_or(now);
        *self.current.lock() = Some((resp.access_token.clone(), exp));
        Ok(resp.access_token)
    }

    /// Wraps a message into a request that carries this service's token (the trace context is
    /// the [`TracedChannel`]'s to add, with the call's client span).
    pub async fn request<T>(&self, message: T) -> Result<tonic::Request<T>, ApiError> {
        let token = self.token().await?;
        let mut req = tonic::Request::new(message);
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ApiError::internal("service token is not a valid header value"))?;
        req.metadata_mut().insert("authorization", value);
        Ok(req)
    }
}

struct CachedGrants {
    grants: Arc<Grants>,
    fetched: Instant,
    ttl: Duration,
}

/// Answers "may this caller do this here?" for services other than identity.
pub struct AccessClient {
    client: pb::access_service_client::AccessServiceClient<TracedChannel>,
    token: Arc<ServiceToken>,
    cache: RwLock<HashMap<Principal, CachedGrants>>,
}

impl AccessClient {
    pub fn new(channel: Channel, token: Arc<ServiceToken>) -> Self {
        Self {
            client: pb::access_service_client::AccessServiceClient::new(channel.into()),
            token,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The principal's grants, from the cache while fresh.
    pub async fn grants(&self, principal: &Principal) -> Result<Arc<Grants>, ApiError> {
        if let Some(c) = self.cache.read().get(principal)
            && c.fetched.elapsed() < c.ttl
        {
            return Ok(c.grants.clone());
        }
        let req = self
            .token
            .request(pb::CheckAccessRequest {
                principal: principal.to_string(),
                organization: String::new(),
                any_of_roles: Vec::new(),
                mpn_id: String::new(),
            })
            .await?;
        let resp = self
            .client
            .clone()
            .check_access(req)
            .await
            .map_err(|s| {
                ApiError::unavailable(
                    "IDENTITY_UNAVAILABLE",
                    format!("access check failed: {}", s.message()),
                )
            })?
            .into_inner();
        let grants = Arc::new(Grants::from_proto(
            &resp.principal_organization,
            &resp.grants,
        ));
        let ttl = Duration::from_millis(resp.cache_ttl_ms.max(0) as u64).min(MAX_GRANT_TTL);
        self.cache.write().insert(
            principal.clone(),
            CachedGrants {
                grants: grants.clone(),
                fetched: Instant::now(),
                ttl,
            },
        );
        Ok(grants)
    }

    /// The caller with the grants it holds now (a service's are not asked for: it has none).
    pub async fn actor(&self, caller: &Caller) -> Result<Actor, ApiError> {
        let grants = match caller.principal {
            Principal::Service(_) => Arc::default(),
            Principal::User { .. } => self.grants(&caller.principal).await?,
        };
        Ok(Actor::new(caller, grants))
    }

    /// `Ok` when the caller holds one of `any_of` over `organization` (and `mpn_id`). Another
    /// organization's caller gets `NOT_FOUND` for `resource`, never a hint that it exists.
    pub async fn require(
        &self,
        caller: &Caller,
        organization: Uuid,
        any_of: &[Role],
        mpn_id: Option<&str>,
        resource: &str,
    ) -> Result<Arc<Grants>, ApiError> {
        let grants = self.grants(&caller.principal).await?;
        if grants.allows(organization, any_of, mpn_id) {
            return Ok(grants);
        }
        if grants.organization != Some(organization) {
            return Err(ApiError::not_found(resource));
        }
        Err(ApiError::permission_denied(
            "MISSING_ROLE",
            format!("this needs one of the roles {}", role_names(any_of)),
        ))
    }
}

/// `ROLE_A or ROLE_B`, for error messages.
pub fn role_names(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str_name())
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let org = Uuid::now_v7();
        let g = Grants {
            organization: Some(org),
            roles: vec![
                (Role::ReferralsUser, Some("4000002".into())),
                (Role::AccountAdmin, None),
            ],
        };
        assert!(g.allows(org, &[Role::ReferralsUser], Some("4000002")));
        assert!(!g.allows(org, &[Role::ReferralsUser], Some("4000003")));
        assert!(!g.allows(org, &[Role::ReferralsUser], None));
        assert!(g.allows(org, &[Role::AccountAdmin], Some("4000003")));
        assert!(!g.allows(Uuid::now_v7(), &[Role::AccountAdmin], None));
        assert_eq!(
            g.locations_for(&[Role::ReferralsUser]),
            Some(vec!["4000002".to_string()])
        );
        assert_eq!(g.locations_for(&[Role::AccountAdmin]), None);
    }
}
