//! `cosell health`: asks a server's standard health service (`grpc.health.v1.Health/Check`,
//! which every cosell server registers and answers without a token) whether it is SERVING. The
//! container health check of `docker-compose.yml`: the image has no other gRPC client.

use std::time::Duration;

use clap::Args;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::client::{UsageError, call_error};

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Server URL: `http://HOST:PORT`, or `https://...` for a server with TLS.
    #[arg(
        long,
        visible_alias = "addr",
        env = "COSELL_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// A service's full name (`cosell.deals.v1.ReferralService`); default: the whole server.
    #[arg(long, default_value = "")]
    service: String,
    /// CA certificate (PEM) to check an `https://` server against; without it, the system's
    /// roots.
    #[arg(long, env = "COSELL_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// Give up after this many seconds (connecting and asking).
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

/// Ok when the server (or `--service`) is SERVING; otherwise an error of one line saying why,
/// which `main` prints and turns into exit code 1.
pub async fn run(args: HealthArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let ca = cosell_platform::tls::read_ca(args.ca_cert.as_deref()).map_err(anyhow::Error::msg)?;
    let channel = cosell_platform::tls::endpoint(&args.server, ca.as_deref())
        .map_err(|e| UsageError(format!("--server {} is not a usable URL: {e}", args.server)))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("{} is not reachable: {}", args.server, causes(&e)))?;
    let what = if args.service.is_empty() {
        args.server.clone()
    } else {
        format!("{} at {}", args.service, args.server)
    };
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: args.service.clone(),
        })
        .await
        .map_err(|status| call_error(status).context(format!("{what}: health check failed")))?
        .into_inner()
        .status();
    match status {
        ServingStatus::Serving => {
            println!("{what}: SERVING");
            Ok(())
        }
        other => anyhow::bail!("{what}: {}", other.as_str_name()),
    }
}

/// An error and its sources on one line, a cause said twice in a row said once (tonic wraps
/// hyper's connect error in one of the same text).
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}
