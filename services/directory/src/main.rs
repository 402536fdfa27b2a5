//! `cosell-directory`: the directory service alone. `cosell serve` runs it with the others.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use cosell_platform::auth::{AccessClient, TokenVerifier};
use cosell_platform::config::{IdentityClientArgs, ServerArgs};

#[derive(Debug, Parser)]
#[command(
    name = "cosell-directory",
    about = "The cosell customer-organization directory"
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    identity: IdentityClientArgs,
    /// Database URL (`postgres://...` or `sqlite://file?mode=rwc`).
    #[arg(
        long,
        env = "COSELL_DATABASE_URL_DIRECTORY",
        default_value = "sqlite://directory.db?mode=rwc"
    )]
    database_url: String,
    /// Folder of the search index (rebuilt from the database when missing or stale).
    #[arg(
        long,
        env = "COSELL_DIRECTORY_INDEX_DIR",
        default_value = "directory-index"
    )]
    index_dir: PathBuf,
    /// Load the bundled sample when the database is empty.
    #[arg(long)]
    sample: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = cosell_platform::telemetry::init("cosell-directory", &args.server.telemetry);
    cosell_platform::db::set_pool_size(args.server.database_pool_size);
    let (identity, token) = args
        .identity
        .service_token("directory")
        .map_err(anyhow::Error::msg)?;
    let access = Arc::new(AccessClient::new(identity.clone(), token));
    let config = cosell_directory::Config {
        database_url: args.database_url,
        index_dir: Some(args.index_dir),
        load_sample: args.sample,
    };
    let started = cosell_directory::start(&config, Some(access)).await?;
    let verifier = Arc::new(TokenVerifier::remote(identity));
    cosell_platform::server::listen_and_serve(
        "directory",
        &args.server,
        started.services,
        verifier,
        cosell_platform::server::shutdown_signal(),
    )
    .await
    .map_err(anyhow::Error::from_boxed)?;
    Ok(())
}
