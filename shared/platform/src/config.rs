//! Typed configuration shared by every service, from flags or environment variables (flags
//! win). Each service adds its own arguments beside these with `#[command(flatten)]`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// How a server listens and protects itself.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "COSELL_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Longest a call may run, in seconds, unless the caller's grpc-timeout is shorter.
    #[arg(long, env = "COSELL_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Calls served at once; further calls wait for a slot until their timeout.
    #[arg(long, env = "COSELL_CONCURRENCY_LIMIT", default_value_t = 1024)]
    pub concurrency_limit: usize,
    /// On shutdown, how long health reports NOT_SERVING before the server stops taking calls,
    /// in milliseconds, so that load balancers move traffic away first.
    #[arg(long, env = "COSELL_SHUTDOWN_DRAIN_MS", default_value_t = 500)]
    pub shutdown_drain_ms: u64,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl ServerArgs {
    pub fn options(&self) -> crate::server::ServerOptions {
        crate::server::ServerOptions {
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            concurrency_limit: self.concurrency_limit.max(1),
            shutdown_drain: Duration::from_millis(self.shutdown_drain_ms),
        }
    }
}

/// Logs and traces.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log filter, in `tracing` EnvFilter syntax.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Logs as JSON lines instead of text.
    #[arg(long, env = "COSELL_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
    /// OTLP/gRPC endpoint for traces (e.g. `http://127.0.0.1:4317`); none: no export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// How a service reaches identity and proves who it is.
#[derive(Debug, Clone, Args)]
pub struct IdentityClientArgs {
    /// URL of the identity service.
    #[arg(
        long,
        env = "COSELL_IDENTITY_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub identity_url: String,
    /// This service's client secret, registered with identity as a service principal.
    #[arg(long, env = "COSELL_SERVICE_SECRET", hide_env_values = true)]
    pub service_secret: Option<String>,
}
