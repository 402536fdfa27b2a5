//! The gRPC adapter of identity: one handler module per service of `cosell.identity.v1`, the
//! authorization policy they share, and the wiring into a [`ServiceSet`].
//!
//! - [`organizations`], [`users`], [`roles`], [`access`], [`tokens`]: the handlers.
//! - [`errors`]: domain errors to `Status`; [`convert`]: domain types to proto.

pub mod access;
pub mod convert;
pub mod errors;
pub mod organizations;
pub mod roles;
pub mod tokens;
pub mod users;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosell_platform::auth::{Actor, Grants, Principal, caller};
use cosell_platform::ratelimit::{Rate, RateLimiter};
use cosell_platform::server::ServiceSet;
use cosell_proto::identity as pb;
use parking_lot::RwLock;
use uuid::Uuid;

use crate::domain::keys::KeyRing;
use crate::domain::{
    IdentityError, PLATFORM_ROLES, Result, Role, USER_ADMIN_ROLES, User, UserKind, UserState,
};
use crate::oidc::Oidc;
use crate::store::Store;

/// How long a user's grants are reused inside identity; role changes made through this replica
/// drop the entry at once, other replicas' changes are seen after at most this long.
pub const GRANT_CACHE_TTL: Duration = Duration::from_secs(2);

/// Per-principal rate limits of the calls a stranger could repeat to guess or to load the
/// database: sign-in and token exchange per email, service tokens per service, MPN lookups
/// per user.
pub struct Limits {
    pub sign_in: RateLimiter,
    pub exchange: RateLimiter,
    pub service_token: RateLimiter,
    pub mpn_lookup: RateLimiter,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            sign_in: RateLimiter::new("sign-in", Rate::new(10.0, 30.0)),
            exchange: RateLimiter::new("token exchange", Rate::new(10.0, 30.0)),
            service_token: RateLimiter::new("service token", Rate::new(5.0, 20.0)),
            mpn_lookup: RateLimiter::new("MPN ID lookup", Rate::new(20.0, 100.0)),
        }
    }
}

/// Everything the handlers share.
pub struct Identity {
    pub store: Store,
    pub keys: KeyRing,
    pub platform_org: Uuid,
    pub dev_auth: bool,
    /// The external OpenID Connect issuer whose tokens sign users in, if any.
    pub oidc: Option<Oidc>,
    pub limits: Limits,
    grants: RwLock<HashMap<Uuid, (Arc<UserAccess>, Instant)>>,
}

/// A user's standing, as the policy needs it.
#[derive(Debug)]
pub struct UserAccess {
    pub active: bool,
    pub grants: Arc<Grants>,
}

/// Who may call an RPC, besides the roles it names.
#[derive(Default, Clone, Copy)]
pub struct Rule {
    /// Roles of the target organization that allow the call.
    pub roles: &'static [Role],
    /// Any active user of the target organization may call.
    pub any_member: bool,
    /// Service principals allowed (`"*"`: any service).
    pub services: &'static [&'static str],
    /// Platform operators may call for any organization.
    pub platform_operator: bool,
    /// Any platform user (seller or operator) may call for any organization.
    pub platform_user: bool,
}

impl Rule {
    /// Reading an organization's directory data: any of its users, platform users, services.
    pub const READ: Rule = Rule {
        roles: &[],
        any_member: true,
        services: &["*"],
        platform_operator: false,
        platform_user: true,
    };
    /// Reading user administration data: account and global admins, operators, services.
    pub const ADMIN_READ: Rule = Rule {
        roles: USER_ADMIN_ROLES,
        any_member: false,
        services: &["*"],
        platform_operator: true,
        platform_user: false,
    };
    /// Changing users: account and global admins, operators.
    pub const ADMIN_WRITE: Rule = Rule {
        roles: USER_ADMIN_ROLES,
        any_member: false,
        services: &[],
        platform_operator: true,
        platform_user: false,
    };
}

impl Identity {
    pub fn new(
        store: Store,
        keys: KeyRing,
        platform_org: Uuid,
        dev_auth: bool,
        oidc: Option<Oidc>,
    ) -> Self {
        Self {
            store,
            keys,
            platform_org,
            dev_auth,
            oidc,
            limits: Limits::default(),
            grants: RwLock::new(HashMap::new()),
        }
    }

    /// The user a token of the external issuer signs in: checked by [`Oidc::verify`], then
    /// found by email (in `organization` when given; a member before guests elsewhere), and
    /// refused unless it exists and is enabled. Also the token's expiry.
    pub async fn external_user(
        &self,
        token: &str,
        organization: Option<Uuid>,
    ) -> Result<(User, i64)> {
        let oidc = self.oidc.as_ref().ok_or_else(|| {
            IdentityError::precondition(
                "OIDC_NOT_CONFIGURED",
                "subject_token",
                "this platform trusts no OpenID Connect issuer (start identity with --oidc-issuer)",
            )
        })?;
        let signed_in = oidc.verify(token).await?;
        self.limits.exchange.check(&signed_in.email)?;
        let unauthenticated = |reason, message: &str| IdentityError::Unauthenticated {
            reason,
            message: message.into(),
        };
        let users: Vec<User> = self
            .store
            .users_by_email(&signed_in.email)
            .await?
            .into_iter()
            .filter(|u| organization.is_none_or(|o| u.organization == o))
            .collect();
        let members: Vec<&User> = users
            .iter()
            .filter(|u| u.kind == UserKind::Member)
            .collect();
        let user = match (members.as_slice(), users.as_slice()) {
            ([one], _) => (*one).clone(),
            ([], [one]) => one.clone(),
            (_, []) => {
                return Err(unauthenticated(
                    "USER_UNKNOWN",
                    "the token's email is not a user of this platform; an admin of your organization adds users",
                ));
            }
            _ => {
                return Err(unauthenticated(
                    "USER_AMBIGUOUS",
                    "the token's email is a guest of several organizations; name one (ExchangeToken's organization)",
                ));
            }
        };
        if user.state != UserState::Active {
            return Err(unauthenticated("USER_DISABLED", "this user is disabled"));
        }
        Ok((user, signed_in.expires_at))
    }

    /// A user's grants, from the cache while fresh.
    pub async fn user_access(&self, user: Uuid) -> Result<Option<Arc<UserAccess>>> {
        if let Some((a, at)) = self.grants.read().get(&user)
            && at.elapsed() < GRANT_CACHE_TTL
        {
            return Ok(Some(a.clone()));
        }
        let Some(g) = self.store.user_grants(user).await? else {
            return Ok(None);
        };
        let access = Arc::new(UserAccess {
            active: g.active,
            grants: Arc::new(Grants {
                organization: Some(g.organization),
                roles: if g.active { g.roles } else { Vec::new() },
            }),
        });
        self.grants
            .write()
            .insert(user, (access.clone(), Instant::now()));
        Ok(Some(access))
    }

    /// Forgets a user's cached grants after a change through this replica (rule I5).
    pub fn invalidate(&self, user: Uuid) {
        self.grants.write().remove(&user);
    }

    /// The authenticated caller of a request, with its current grants. A user that no longer
    /// exists is unauthenticated; a disabled one is denied.
    pub async fn actor<T>(&self, req: &tonic::Request<T>) -> Result<Actor> {
        let caller = caller(req)?;
        let Principal::User { organization, user } = caller.principal else {
            return Ok(Actor::new(caller, Arc::default()));
        };
        let access =
            self.user_access(user)
                .await?
                .ok_or_else(|| IdentityError::Unauthenticated {
                    reason: "USER_UNKNOWN",
                    message: "the token's user no longer exists".into(),
                })?;
        if access.grants.organization != Some(organization) {
            return Err(IdentityError::Unauthenticated {
                reason: "USER_UNKNOWN",
                message: "the token's user is not a user of the token's organization".into(),
            });
        }
        if !access.active {
            return Err(IdentityError::denied(
                "USER_DISABLED",
                "this user is disabled",
            ));
        }
        Ok(Actor::new(caller, access.grants.clone()))
    }

    /// Whether `actor` is a user of the platform organization holding one of `roles`.
    fn is_platform(&self, actor: &Actor, roles: &[Role]) -> bool {
        matches!(actor, Actor::Platform(u)
            if u.organization == self.platform_org && roles.iter().any(|r| u.grants.has(*r)))
    }

    pub fn is_platform_operator(&self, actor: &Actor) -> bool {
        self.is_platform(actor, &[Role::PlatformOperator])
    }

    /// Applies `rule` for a call on `org`; `resource` is what a stranger is told was not found.
    pub fn check(&self, actor: &Actor, org: Uuid, rule: Rule, resource: &str) -> Result<()> {
        match actor {
            Actor::Service(name) => {
                if rule.services.iter().any(|s| *s == "*" || s == name) {
                    Ok(())
                } else {
                    Err(IdentityError::denied(
                        "SERVICE_NOT_ALLOWED",
                        format!("service `{name}` may not call this"),
                    ))
                }
            }
            Actor::Member(user) | Actor::Platform(user) => {
                if rule.platform_operator && self.is_platform_operator(actor) {
                    return Ok(());
                }
                if rule.platform_user && self.is_platform(actor, PLATFORM_ROLES) {
                    return Ok(());
                }
                if user.organization != org {
                    return Err(IdentityError::NotFound(resource.to_owned()));
                }
                if rule.any_member || rule.roles.iter().any(|r| user.grants.has(*r)) {
                    return Ok(());
                }
                Err(IdentityError::denied(
                    "MISSING_ROLE",
                    format!(
                        "this needs one of the roles {}",
                        cosell_platform::auth::access::role_names(rule.roles)
                    ),
                ))
            }
        }
    }
}

/// Paths callable without a token.
pub const PUBLIC_METHODS: &[&str] = &[
    "/cosell.identity.v1.TokenService/SignInWithEmail",
    "/cosell.identity.v1.TokenService/ExchangeToken",
    "/cosell.identity.v1.TokenService/IssueServiceToken",
    "/cosell.identity.v1.TokenService/ListSigningKeys",
];

/// Every identity service, ready for a server.
pub fn service_set(identity: Arc<Identity>) -> ServiceSet {
    use pb::access_service_server::AccessServiceServer;
    use pb::organization_service_server::OrganizationServiceServer;
    use pb::role_service_server::RoleServiceServer;
    use pb::token_service_server::TokenServiceServer;
    use pb::user_service_server::UserServiceServer;

    let mut set = ServiceSet::default();
    let i = identity.clone();
    set.add("cosell.identity.v1.OrganizationService", move |r| {
        r.add_service(OrganizationServiceServer::new(organizations::Api(i)));
    });
    let i = identity.clone();
    set.add("cosell.identity.v1.UserService", move |r| {
        r.add_service(UserServiceServer::new(users::Api(i)));
    });
    let i = identity.clone();
    set.add("cosell.identity.v1.RoleService", move |r| {
        r.add_service(RoleServiceServer::new(roles::Api(i)));
    });
    let i = identity.clone();
    set.add("cosell.identity.v1.AccessService", move |r| {
        r.add_service(AccessServiceServer::new(access::Api(i)));
    });
    set.add("cosell.identity.v1.TokenService", move |r| {
        r.add_service(TokenServiceServer::new(tokens::Api(identity)));
    });
    set.descriptor_sets.push(pb::FILE_DESCRIPTOR_SET);
    set.public_methods.extend_from_slice(PUBLIC_METHODS);
    set
}

/// Parses a field with a platform parser, as an `INVALID_ARGUMENT` naming the field.
pub fn field<T>(name: &str, parsed: std::result::Result<T, String>) -> Result<T> {
    parsed.map_err(|d| IdentityError::Invalid(cosell_platform::ApiError::invalid_field(name, d)))
}

/// Parses a role field. `Ok(None)` for ROLE_UNSPECIFIED (no filter); an unknown number is an
/// error naming it.
pub fn role_field(value: i32) -> std::result::Result<Option<Role>, String> {
    match Role::try_from(value) {
        Ok(Role::Unspecified) => Ok(None),
        Ok(role) => Ok(Some(role)),
        Err(_) => Err(format!("{value} is not a known role")),
    }
}
