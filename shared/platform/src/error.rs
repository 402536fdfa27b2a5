//! The error model every service answers with: a canonical gRPC code, an `ErrorInfo` with a
//! stable UPPER_SNAKE reason and the service's domain on every error, `BadRequest` field
//! violations for bad input and `PreconditionFailure` violations for unmet rules.
//!
//! Handlers return `Result<T, E>` where `E` is [`ApiError`] or a domain error that converts into
//! one (each service converts in one place); the trait method tonic calls answers with
//! [`Domain::respond`], the one way from a handler's result to tonic's answer in every service.
//! [`ApiError::into_status`] is the only place a `Status` is made.

use std::collections::HashMap;
use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A service's error domain (`ErrorInfo.domain`, e.g. `deals.cosell`) and the one way its
/// handlers' results become what tonic sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain(pub &'static str);

impl Domain {
    /// The status of `e`, for an error answered outside [`Domain::respond`] (a stream's item).
    pub fn status(self, e: impl Into<ApiError>) -> Status {
        e.into().into_status(self.0)
    }

    /// A handler's result as tonic wants it.
    pub fn respond<T, E: Into<ApiError>>(
        self,
        result: Result<T, E>,
    ) -> Result<tonic::Response<T>, Status> {
        result.map(tonic::Response::new).map_err(|e| self.status(e))
    }
}

/// One problem with one request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `location.mpn_id`.
    pub field: String,
    /// What is wrong, for a person.
    pub description: String,
}

/// One unmet rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// Kind of rule, e.g. `REQUIRED_FIELD` or `LAST_ACCOUNT_ADMIN`.
    pub kind: String,
    /// What the rule is about, e.g. `customer.contacts`.
    pub subject: String,
    /// What is wrong, for a person.
    pub description: String,
}

/// An error on its way to the caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    /// Stable machine-readable reason for `ErrorInfo`, UPPER_SNAKE.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Boxed so that `Result<T, ApiError>` stays small on the happy path.
    pub details: Box<Details>,
}

/// The rich details of an error beyond its code, reason and message.
#[derive(Debug, Clone, Default)]
pub struct Details {
    pub field_violations: Vec<FieldViolation>,
    pub precondition_violations: Vec<PreconditionViolation>,
    /// Extra `ErrorInfo` metadata (e.g. the resource that was not found).
    pub metadata: HashMap<String, String>,
    /// When a retry may succeed (`RetryInfo`), for errors a caller should retry later.
    pub retry_delay: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(code: Code, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            message: message.into(),
            details: Box::default(),
        }
    }

    /// `INVALID_ARGUMENT` with one violation per bad field.
    pub fn invalid_argument(violations: Vec<FieldViolation>) -> Self {
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        let message = match violations.as_slice() {
            [one] => format!("invalid {}: {}", one.field, one.description),
            _ => format!("invalid fields: {}", fields.join(", ")),
        };
        let mut e = Self::new(Code::InvalidArgument, "INVALID_ARGUMENT", message);
        e.details.field_violations = violations;
        e
    }

    /// `INVALID_ARGUMENT` for one field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::invalid_argument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// `NOT_FOUND`: the resource does not exist or belongs to another organization (never
    /// reveal which).
    pub fn not_found(resource: impl Into<String>) -> Self {
        let resource = resource.into();
        let mut e = Self::new(Code::NotFound, "NOT_FOUND", format!("{resource} not found"));
        e.details.metadata.insert("resource".into(), resource);
        e
    }

    pub fn unauthenticated(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, reason, message)
    }

    pub fn permission_denied(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Code::PermissionDenied, reason, message)
    }

    pub fn failed_precondition(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, reason, message)
    }

    pub fn already_exists(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Code::AlreadyExists, reason, message)
    }

    pub fn aborted(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Code::Aborted, reason, message)
    }

    pub fn unavailable(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, reason, message)
    }

    /// `RESOURCE_EXHAUSTED` with `RetryInfo`: the caller may retry after `retry_delay`.
    pub fn resource_exhausted(
        reason: impl Into<String>,
        message: impl Into<String>,
        retry_delay: std::time::Duration,
    ) -> Self {
        let mut e = Self::new(Code::ResourceExhausted, reason, message);
        e.details.retry_delay = Some(retry_delay);
        e
    }

    /// A database failure: `UNAVAILABLE` (retryable; reason `DATABASE_UNAVAILABLE`) when the
    /// database cannot be reached, else `INTERNAL`.
    pub fn storage(e: &sea_orm::DbErr) -> Self {
        if crate::db::is_unavailable(e) {
            tracing::warn!(error = %e, "database unavailable");
            return Self::unavailable(
                "DATABASE_UNAVAILABLE",
                "the service's database cannot be reached right now; retry",
            );
        }
        Self::internal(e)
    }

    /// `INTERNAL`. The detail goes to the log, not to the caller.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            Code::Internal,
            "INTERNAL",
            "internal error; see the server log",
        )
    }

    /// Adds a `PreconditionFailure` violation.
    pub fn with_precondition(
        mut self,
        kind: impl Into<String>,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.details
            .precondition_violations
            .push(PreconditionViolation {
                kind: kind.into(),
                subject: subject.into(),
                description: description.into(),
            });
        self
    }

    /// Adds `ErrorInfo` metadata.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.metadata.insert(key.into(), value.into());
        self
    }

    /// A status answered by this server's own codec or a peer, taken back as an error: its
    /// code, `ErrorInfo` reason and field violations kept (to pass a refusal on as it was).
    pub fn from_status(s: &Status) -> Self {
        let details = s.get_error_details();
        let reason = details
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_else(|| format!("{:?}", s.code()).to_uppercase());
        let mut e = Self::new(s.code(), reason, s.message());
        if let Some(b) = details.bad_request() {
            e.details.field_violations = b
                .field_violations
                .iter()
                .map(|v| FieldViolation {
                    field: v.field.clone(),
                    description: v.description.clone(),
                })
                .collect();
        }
        e
    }

    /// The one place a `Status` is made. `domain` is the service's, e.g. `identity.cosell`.
    pub fn into_status(self, domain: &str) -> Status {
        let Details {
            field_violations,
            precondition_violations,
            metadata,
            retry_delay,
        } = *self.details;
        let mut details = ErrorDetails::with_error_info(self.reason, domain, metadata);
        if let Some(delay) = retry_delay {
            details.set_retry_info(Some(delay));
        }
        if !field_violations.is_empty() {
            details.set_bad_request(
                field_violations
                    .into_iter()
                    .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                    .collect::<Vec<_>>(),
            );
        }
        if !precondition_violations.is_empty() {
            details.set_precondition_failure(
                precondition_violations
                    .into_iter()
                    .map(|v| {
                        tonic_types::PreconditionViolation::new(v.kind, v.subject, v.description)
                    })
                    .collect::<Vec<_>>(),
            );
        }
        Status::with_error_details(self.code, self.message, details)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Collects field violations while a request is checked, so that the caller hears of every bad
/// field at once rather than one per try.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Records the error of a field parser and passes its value on.
    pub fn take<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Err(INVALID_ARGUMENT)` with every violation, if there is any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_argument(self.0))
        }
    }
}
