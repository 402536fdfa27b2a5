//! Typed configuration shared by every service, from flags or environment variables (flags
//! win). Each service adds its own arguments beside these with `#[command(flatten)]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tonic::transport::Channel;

use crate::tls::ServerTls;

/// How a server listens and protects itself.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "COSELL_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Longest a call may run, in seconds, unless the caller's grpc-timeout is shorter.
    #[arg(long, env = "COSELL_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Calls served at once; further calls wait for a slot, in turn by tenant (`server::fair`).
    #[arg(long, env = "COSELL_CONCURRENCY_LIMIT", default_value_t = 1024)]
    pub concurrency_limit: usize,
    /// On shutdown, how long health reports NOT_SERVING before the server stops taking calls,
    /// in milliseconds, so that load balancers move traffic away first.
    #[arg(long, env = "COSELL_SHUTDOWN_DRAIN_MS", default_value_t = 500)]
    pub shutdown_drain_ms: u64,
    /// Serve TLS with this certificate chain (PEM); needs `--tls-key`.
    #[arg(long, env = "COSELL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "COSELL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A web page origin allowed to call from a browser (CORS), e.g. `https://crm.example.com`;
    /// repeat it, or separate origins with commas. None: pages on other origins are refused.
    #[arg(
        long = "cors-origin",
        env = "COSELL_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Connections each service's pool to PostgreSQL keeps at most (1 to 1,000). Every process
    /// of every service on one PostgreSQL server takes its share of the server's
    /// `max_connections`: lower it when running replicas.
    #[arg(
        long,
        env = "COSELL_DATABASE_POOL_SIZE",
        default_value_t = crate::db::POOL_SIZE,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub database_pool_size: u32,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl ServerArgs {
    /// The server's options; reads the TLS files, if any.
    pub fn options(&self) -> Result<crate::server::ServerOptions, String> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls::from_files(cert, key)?),
            _ => None,
        };
        Ok(crate::server::ServerOptions {
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            concurrency_limit: self.concurrency_limit.max(1),
            shutdown_drain: Duration::from_millis(self.shutdown_drain_ms),
            tls,
            cors_origins: self
                .cors_origins
                .iter()
                .map(|o| crate::server::cors::origin(o))
                .collect::<Result<_, _>>()?,
        })
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
    /// CA certificate (PEM) that `https://` peer URLs are checked against; without it, the
    /// system's roots.
    #[arg(long, env = "COSELL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

impl IdentityClientArgs {
    /// A lazily connected channel to a peer service (`http://` or `https://`).
    pub fn connect(&self, url: &str) -> Result<Channel, String> {
        let ca = crate::tls::read_ca(self.ca_cert.as_deref())?;
        Ok(crate::tls::endpoint(url, ca.as_deref())?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy())
    }

    /// The channel to identity.
    pub fn identity(&self) -> Result<Channel, String> {
        self.connect(&self.identity_url)
    }

    /// The channel to identity and `service`'s token there (from `--service-secret`, which a
    /// service that calls others needs), as every service binary starts.
    pub fn service_token(
        &self,
        service: &str,
    ) -> Result<(Channel, std::sync::Arc<crate::auth::ServiceToken>), String> {
        let identity = self.identity()?;
        let secret = self.service_secret.clone().ok_or_else(|| {
            format!(
                "--service-secret (COSELL_SERVICE_SECRET) is required: the {service} service's client secret at identity"
            )
        })?;
        let token = crate::auth::ServiceToken::new(identity.clone(), service, secret);
        Ok((identity, std::sync::Arc::new(token)))
    }
}

/// How identity signs people in, on `cosell serve` and `cosell-identity`.
#[derive(Debug, Clone, Args)]
pub struct SignInArgs {
    /// Trust this OpenID Connect issuer's tokens (its URL, exactly as its tokens' `iss`):
    /// discovery at `URL/.well-known/openid-configuration`, keys from its `jwks_uri`.
    #[arg(long, env = "COSELL_OIDC_ISSUER", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,
    /// The audience (`aud`) the issuer's tokens must be for: this platform's client id there.
    #[arg(long, env = "COSELL_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// Make this email a platform operator at start (repeat, or comma-separate in the
    /// variable); never removes anyone.
    #[arg(
        long = "platform-operator",
        env = "COSELL_PLATFORM_OPERATORS",
        value_delimiter = ','
    )]
    pub platform_operators: Vec<String>,
}

impl SignInArgs {
    /// The issuer and audience, when both are given.
    pub fn oidc(&self) -> Option<(String, String)> {
        match (&self.oidc_issuer, &self.oidc_audience) {
            (Some(i), Some(a)) => Some((i.clone(), a.clone())),
            _ => None,
        }
    }
}
