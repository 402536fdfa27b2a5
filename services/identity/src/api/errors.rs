//! The one place identity's domain errors become the suite's [`ApiError`]; handlers answer
//! through [`DOMAIN`] (`Domain::respond`), as every service does.

use cosell_platform::{ApiError, Domain};

use crate::domain::IdentityError;

/// `ErrorInfo.domain` of every identity error.
pub const DOMAIN: Domain = Domain("identity.cosell");

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::NotFound(resource) => ApiError::not_found(resource),
            IdentityError::PermissionDenied { reason, message } => {
                ApiError::permission_denied(reason, message)
            }
            IdentityError::Precondition {
                reason,
                message,
                subject,
            } => ApiError::failed_precondition(reason, message.clone())
                .with_precondition(reason, subject, message),
            IdentityError::AlreadyExists { reason, message } => {
                ApiError::already_exists(reason, message)
            }
            IdentityError::Unauthenticated { reason, message } => {
                ApiError::unauthenticated(reason, message)
            }
            IdentityError::Invalid(api) => api,
            IdentityError::Storage(e) => ApiError::storage(&e),
            IdentityError::Internal(e) => ApiError::internal(e),
        }
    }
}
