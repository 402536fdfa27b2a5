//! `cosell-identity`: the identity service alone. `cosell serve` runs it with the others.

use std::time::Duration;

use clap::Parser;
use cosell_platform::config::{ServerArgs, SignInArgs};

#[derive(Debug, Parser)]
#[command(name = "cosell-identity", about = "The cosell identity service")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    sign_in: SignInArgs,
    /// Database URL (`postgres://...` or `sqlite://file?mode=rwc`).
    #[arg(
        long,
        env = "COSELL_DATABASE_URL_IDENTITY",
        default_value = "sqlite://identity.db?mode=rwc"
    )]
    database_url: String,
    /// Allow development sign-in by email alone. Never in production.
    #[arg(long, env = "COSELL_DEV_AUTH")]
    dev_auth: bool,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "COSELL_TOKEN_TTL_SECS", default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Verified domain of the platform organization.
    #[arg(
        long,
        env = "COSELL_PLATFORM_DOMAIN",
        default_value = "platform.example"
    )]
    platform_domain: String,
    /// A service principal as `name=secret` (repeat, or comma-separate in the variable).
    #[arg(
        long = "service-principal",
        env = "COSELL_SERVICE_PRINCIPALS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    service_principals: Vec<String>,
    /// Seed the demo data (switches development sign-in on too).
    #[arg(long)]
    demo: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = cosell_platform::telemetry::init("cosell-identity", &args.server.telemetry);
    cosell_platform::db::set_pool_size(args.server.database_pool_size);
    let mut principals = Vec::new();
    for p in &args.service_principals {
        let (name, secret) = p
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--service-principal must be name=secret"))?;
        principals.push((name.to_owned(), secret.to_owned()));
    }
    let config = cosell_identity::Config {
        database_url: args.database_url,
        dev_auth: args.dev_auth || args.demo,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        platform_domain: args.platform_domain,
        service_principals: principals,
        demo: args.demo,
        oidc: args
            .sign_in
            .oidc()
            .map(|(issuer, audience)| cosell_identity::oidc::OidcConfig { issuer, audience }),
        platform_operators: args.sign_in.platform_operators.clone(),
        clock: cosell_platform::clock::system(),
    };
    eprintln!("cosell-identity sign-in: {}", config.sign_in_methods());
    let started = cosell_identity::start(&config).await?;
    cosell_platform::server::listen_and_serve(
        "identity",
        &args.server,
        started.services,
        started.verifier,
        cosell_platform::server::shutdown_signal(),
    )
    .await
    .map_err(anyhow::Error::from_boxed)?;
    Ok(())
}
