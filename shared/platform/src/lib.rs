//! What every cosell service stands on.
//!
//! - [`config`]: typed configuration from flags and environment variables.
//! - [`telemetry`]: tracing, structured logs, OTLP export, trace context across gRPC hops.
//! - [`error`]: the one mapping from errors to `Status` with rich details.
//! - [`db`]: PostgreSQL or SQLite from one URL, schema migrations at start.
//! - [`page`]: page sizes and opaque page tokens.
//! - [`auth`]: token checks, the auth layer, access checks and service tokens.
//! - [`server`]: the bootstrap every service serves through (health, reflection, layers,
//!   graceful shutdown).
//! - [`names`]: resource-name parsing shared by the services.
//! - [`email`]: consumer (non-work) email domains (rule I1).
//! - [`money`]: decimal amounts as exact hundredths.

pub mod auth;
pub mod config;
pub mod db;
pub mod email;
pub mod error;
pub mod money;
pub mod names;
pub mod page;
pub mod server;
pub mod telemetry;

pub use error::{ApiError, Violations};
