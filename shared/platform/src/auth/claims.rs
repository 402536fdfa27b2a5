//! What a token says, and who the caller is once it has been checked.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `iss` of every token the identity service signs.
pub const ISSUER: &str = "cosell-identity";
/// `aud` every service expects; a token for another audience is refused.
pub const AUDIENCE: &str = "cosell";

/// The JWT claims. Roles are deliberately absent: they are checked on every call through the
/// access check, so that a role change works without signing in again (rule I5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The principal's resource name (see [`Principal`]).
    pub sub: String,
    /// The user's email, for logs and audit; absent for services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub iat: i64,
    pub exp: i64,
    /// Token id, unique per token.
    pub jti: String,
}

/// Who is calling: a user of an organization, or one of the suite's services.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    User { organization: Uuid, user: Uuid },
    Service(String),
}

impl Principal {
    /// Parses `organizations/{org}/users/{user}` or `servicePrincipals/{name}`.
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(service) = name.strip_prefix("servicePrincipals/") {
            let ok = !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            return ok.then(|| Principal::Service(service.to_owned()));
        }
        let rest = name.strip_prefix("organizations/")?;
        let (org, user) = rest.split_once("/users/")?;
        Some(Principal::User {
            organization: Uuid::parse_str(org).ok()?,
            user: Uuid::parse_str(user).ok()?,
        })
    }

    /// The organization of a user; `None` for a service.
    pub fn organization(&self) -> Option<Uuid> {
        match self {
            Principal::User { organization, .. } => Some(*organization),
            Principal::Service(_) => None,
        }
    }

    pub fn is_service(&self, name: &str) -> bool {
        matches!(self, Principal::Service(s) if s == name)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User { organization, user } => {
                write!(f, "organizations/{organization}/users/{user}")
            }
            Principal::Service(name) => write!(f, "servicePrincipals/{name}"),
        }
    }
}

/// The authenticated caller, put into every request's extensions by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub email: Option<String>,
    /// Unix seconds after which the token is no longer accepted.
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_names_round_trip() {
        let p = Principal::User {
            organization: Uuid::now_v7(),
            user: Uuid::now_v7(),
        };
        assert_eq!(Principal::parse(&p.to_string()), Some(p));
        let s = Principal::Service("migration".into());
        assert_eq!(Principal::parse(&s.to_string()), Some(s));
        assert_eq!(Principal::parse("organizations/x/users/y"), None);
        assert_eq!(Principal::parse("servicePrincipals/"), None);
    }
}
