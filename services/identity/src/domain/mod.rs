//! The identity domain: its types, rules and errors, free of gRPC and SQL.
//!
//! - [`validate`]: parsers of emails, domains, MPN IDs and text (rules I1 and the field formats).
//! - [`keys`]: the signing key ring (issue, rotate, publish).
//!
//! Roles use the generated `Role` enum as their domain type too: it is a closed list with stable
//! names, and a second copy would only add a conversion.

pub mod keys;
pub mod validate;

use chrono::{DateTime, Utc};
pub use cosell_proto::identity::Role;
use uuid::Uuid;

/// Roles that may be limited to one MPN location; every other role is org-wide.
pub const LOCATION_SCOPED_ROLES: &[Role] = &[Role::ReferralsAdmin, Role::ReferralsUser];
/// Roles that only the platform organization's users may hold.
pub const PLATFORM_ROLES: &[Role] = &[Role::PlatformSeller, Role::PlatformOperator];
/// Roles that manage users and roles (rule I3).
pub const USER_ADMIN_ROLES: &[Role] = &[Role::AccountAdmin, Role::GlobalAdmin];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    Member,
    Guest,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Member => "MEMBER",
            UserKind::Guest => "GUEST",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "GUEST" {
            UserKind::Guest
        } else {
            UserKind::Member
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    Active,
    Disabled,
}

impl UserState {
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Active => "ACTIVE",
            UserState::Disabled => "DISABLED",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "DISABLED" {
            UserState::Disabled
        } else {
            UserState::Active
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpnLocation {
    pub mpn_id: String,
    pub country_code: String,
    pub city: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: Uuid,
    pub display_name: String,
    pub tenant_id: String,
    pub verified_domains: Vec<String>,
    /// `None` only for the platform organization.
    pub vorg_mpn_id: Option<String>,
    pub locations: Vec<MpnLocation>,
    pub isv_connect_enrolled: bool,
    pub platform: bool,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub organization: Uuid,
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    pub kind: UserKind,
    pub state: UserState,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    pub id: Uuid,
    pub organization: Uuid,
    pub user: Uuid,
    pub user_email: String,
    pub role: Role,
    /// `None`: the entire organization; `Some(mpn_id)`: one location.
    pub scope: Option<String>,
    pub create_time: DateTime<Utc>,
}

/// A new organization as validated from a request.
#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub display_name: String,
    pub tenant_id: String,
    pub verified_domains: Vec<String>,
    pub vorg_mpn_id: String,
    pub locations: Vec<MpnLocation>,
    pub isv_connect_enrolled: bool,
}

/// A new user as validated from a request.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    pub kind: UserKind,
}

/// What can go wrong in identity, before it becomes a `Status` in `api::errors`.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    PermissionDenied {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    Precondition {
        reason: &'static str,
        message: String,
        subject: String,
    },
    #[error("{message}")]
    AlreadyExists {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    Unauthenticated {
        reason: &'static str,
        message: String,
    },
    /// An error already in the API's terms (bad input, a refused token, a rate limit), passed
    /// on as it is.
    #[error(transparent)]
    Invalid(#[from] cosell_platform::ApiError),
    #[error("storage: {0}")]
    Storage(#[from] sea_orm::DbErr),
    #[error("internal: {0}")]
    Internal(String),
}

impl IdentityError {
    pub fn precondition(
        reason: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        IdentityError::Precondition {
            reason,
            message: message.into(),
            subject: subject.into(),
        }
    }

    pub fn denied(reason: &'static str, message: impl Into<String>) -> Self {
        IdentityError::PermissionDenied {
            reason,
            message: message.into(),
        }
    }

    pub fn exists(reason: &'static str, message: impl Into<String>) -> Self {
        IdentityError::AlreadyExists {
            reason,
            message: message.into(),
        }
    }
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;
