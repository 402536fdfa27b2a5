//! The caller of an RPC as every service's policy reads it: the one caller type of the suite.
//!
//! The auth layer proves *who* calls (a [`Caller`], from the token); a policy also needs what that
//! caller may do *now*, so an [`Actor`] is the caller with its current grants (identity reads them
//! from its own store, the other services through [`AccessClient::actor`]). The three kinds are
//! the three ways SPEC 1 and 2 let anyone act: a user within their organization's roles, a
//! platform user (seller or operator) across organizations, and one of the suite's services.
//!
//! [`AccessClient::actor`]: super::AccessClient::actor

use std::sync::Arc;

use cosell_proto::identity::Role;
use uuid::Uuid;

use super::access::Grants;
use super::claims::{Caller, Principal};

/// A signed-in user and the roles they hold now.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub organization: Uuid,
    /// The email the token names (empty when it names none).
    pub email: String,
    pub grants: Arc<Grants>,
}

impl User {
    /// `organizations/{organization}/users/{id}`.
    pub fn principal(&self) -> String {
        Principal::User {
            organization: self.organization,
            user: self.id,
        }
        .to_string()
    }

    pub fn is_seller(&self) -> bool {
        self.grants.has(Role::PlatformSeller)
    }

    pub fn is_operator(&self) -> bool {
        self.grants.has(Role::PlatformOperator)
    }
}

/// Who is calling, with what they may do.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A user acting within the roles they hold in their own organization: a partner's user, or
    /// a user of the platform organization without a platform role.
    Member(User),
    /// A user holding a platform role (`ROLE_PLATFORM_SELLER`, `ROLE_PLATFORM_OPERATOR`): they
    /// act for the platform across organizations (SPEC 1).
    Platform(User),
    /// One of the suite's services, by name (`migration`, `deals`, ...).
    Service(String),
}

impl Actor {
    /// The caller proven by the token, with `grants` it holds now. Platform roles are granted in
    /// the platform organization only (identity refuses them elsewhere, rule I3), so holding one
    /// is what makes a platform user.
    pub fn new(caller: &Caller, grants: Arc<Grants>) -> Actor {
        match &caller.principal {
            Principal::Service(name) => Actor::Service(name.clone()),
            Principal::User { organization, user } => {
                let user = User {
                    id: *user,
                    organization: *organization,
                    email: caller.email.clone().unwrap_or_default(),
                    grants,
                };
                if user.is_seller() || user.is_operator() {
                    Actor::Platform(user)
                } else {
                    Actor::Member(user)
                }
            }
        }
    }

    /// The caller's resource name, as events and records name who did something.
    pub fn principal(&self) -> String {
        match self {
            Actor::Member(u) | Actor::Platform(u) => u.principal(),
            Actor::Service(name) => format!("servicePrincipals/{name}"),
        }
    }

    /// The user behind the call, of either kind; `None` for a service.
    pub fn user(&self) -> Option<&User> {
        match self {
            Actor::Member(u) | Actor::Platform(u) => Some(u),
            Actor::Service(_) => None,
        }
    }

    /// A platform operator.
    pub fn is_operator(&self) -> bool {
        matches!(self, Actor::Platform(u) if u.is_operator())
    }

    /// The service `name`.
    pub fn is_service(&self, name: &str) -> bool {
        matches!(self, Actor::Service(s) if s == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(principal: Principal) -> Caller {
        Caller {
            principal,
            email: Some("sam@platform.example".into()),
            expires_at: 0,
        }
    }

    fn grants(organization: Uuid, roles: &[Role]) -> Arc<Grants> {
        Arc::new(Grants {
            organization: Some(organization),
            roles: roles.iter().map(|r| (*r, None)).collect(),
        })
    }

    #[test]
    fn platform_roles_make_a_platform_user_and_nothing_else_does() {
        let (organization, user) = (Uuid::now_v7(), Uuid::now_v7());
        let as_user = caller(Principal::User { organization, user });
        for (roles, platform) in [
            (&[Role::PlatformSeller][..], true),
            (&[Role::PlatformOperator][..], true),
            (&[Role::AccountAdmin, Role::ReferralsAdmin][..], false),
            (&[][..], false),
        ] {
            let actor = Actor::new(&as_user, grants(organization, roles));
            assert_eq!(matches!(actor, Actor::Platform(_)), platform, "{roles:?}");
            let u = actor.user().expect("a user");
            assert_eq!((u.id, u.organization), (user, organization));
            assert_eq!(u.email, "sam@platform.example");
            assert_eq!(
                actor.principal(),
                format!("organizations/{organization}/users/{user}")
            );
            assert_eq!(actor.is_operator(), roles.contains(&Role::PlatformOperator));
        }
        let service = Actor::new(
            &caller(Principal::Service("migration".into())),
            Arc::default(),
        );
        assert!(service.is_service("migration") && !service.is_service("deals"));
        assert!(service.user().is_none());
        assert_eq!(service.principal(), "servicePrincipals/migration");
    }
}
