//! What every cosell service stands on.
//!
//! - [`clock`]: "now", injectable so that tests move time instead of sleeping.
//! - [`config`]: typed configuration from flags and environment variables.
//! - [`duration`]: durations in flags (`30s`, `10m`, `2h`, `14d`).
//! - [`telemetry`]: tracing, structured logs, OTLP export, trace context across gRPC hops.
//! - [`error`]: the one mapping from errors to `Status` with rich details.
//! - [`db`]: PostgreSQL or SQLite from one URL, schema migrations at start.
//! - [`page`]: page sizes and opaque page tokens.
//! - [`auth`]: token checks, the auth layer, access checks and service tokens.
//! - [`ratelimit`]: per-principal token buckets (`RESOURCE_EXHAUSTED` with `RetryInfo`).
//! - [`tls`]: TLS for listeners and for the clients that reach them.
//! - [`server`]: the bootstrap every service serves through (health, reflection, layers,
//!   graceful shutdown).
//! - [`names`]: resource-name parsing shared by the services.
//! - [`countries`]: ISO 3166-1 alpha-2 codes (the directory's entities, PSC's customers).
//! - [`email`]: consumer (non-work) email domains (rule I1).
//! - [`money`]: decimal amounts as exact hundredths.
//!
//! It also sets the memory allocator of every process that links it (the services, the CLI,
//! their tests and benchmarks): mimalloc; and it counts the cores a process sizes its
//! concurrency by ([`cores`]).

pub mod auth;
pub mod clock;
pub mod config;
pub mod countries;
pub mod db;
pub mod duration;
pub mod email;
pub mod error;
pub mod money;
pub mod names;
pub mod page;
pub mod ratelimit;
pub mod server;
pub mod telemetry;
pub mod tls;

pub use error::{ApiError, Domain, Violations};

/// The cores this process may run on (1 when the system does not say): what work done at once
/// is sized by (a deals process's import turns, the lane's connections, the benchmarks' share
/// of the machine).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// mimalloc rather than the system's: a service allocates and frees many small buffers per call
/// from several threads at once, where glibc's malloc spent about a tenth of the CPU. Paired
/// runs of the deals benchmark (2026-12-03): lists of 50 referrals 9-37 % faster, gets 1-14 %.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
