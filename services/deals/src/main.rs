//! `cosell-deals`: the deals service alone. `cosell serve` runs it with the others.

use std::sync::Arc;

use clap::Parser;
use cosell_platform::auth::TokenVerifier;
use cosell_platform::config::{IdentityClientArgs, ServerArgs};

#[derive(Debug, Parser)]
#[command(name = "cosell-deals", about = "The cosell deals service")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    identity: IdentityClientArgs,
    /// URL of the directory service (customers).
    #[arg(
        long,
        env = "COSELL_DIRECTORY_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    directory_url: String,
    /// Database URL (`postgres://...` or `sqlite://file?mode=rwc`).
    #[arg(
        long,
        env = "COSELL_DATABASE_URL_DEALS",
        default_value = "sqlite://deals.db?mode=rwc"
    )]
    database_url: String,
    #[command(flatten)]
    deals: cosell_deals::DealsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = cosell_platform::telemetry::init("cosell-deals", &args.server.telemetry);
    cosell_platform::db::set_pool_size(args.server.database_pool_size);
    let (identity, token) = args
        .identity
        .service_token("deals")
        .map_err(anyhow::Error::msg)?;
    let directory = args
        .identity
        .connect(&args.directory_url)
        .map_err(anyhow::Error::msg)?;
    let mut config = cosell_deals::Config::new(args.database_url);
    args.deals.apply(&mut config);
    let started = cosell_deals::start(
        &config,
        cosell_deals::Links {
            identity: identity.clone(),
            directory,
            token,
        },
    )
    .await?;
    let verifier = Arc::new(TokenVerifier::remote(identity));
    cosell_platform::server::listen_and_serve(
        "deals",
        &args.server,
        started.services,
        verifier,
        started.deals.shutdown_signal(),
    )
    .await
    .map_err(anyhow::Error::from_boxed)?;
    Ok(())
}
