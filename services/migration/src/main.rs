//! `cosell-migration`: the migration service alone. `cosell serve` runs it with the others.

use std::sync::Arc;

use clap::Parser;
use cosell_platform::auth::TokenVerifier;
use cosell_platform::config::{IdentityClientArgs, ServerArgs};

#[derive(Debug, Parser)]
#[command(name = "cosell-migration", about = "The cosell migration service")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    identity: IdentityClientArgs,
    /// URL of the deals service (catalog, import of migrated deals).
    #[arg(
        long,
        env = "COSELL_DEALS_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    deals_url: String,
    /// URL of the directory service (customer matching).
    #[arg(
        long,
        env = "COSELL_DIRECTORY_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    directory_url: String,
    /// The PSC timeline shown with the cut-over: read-only from (`YYYY-MM-DD`).
    #[arg(long, env = "COSELL_PSC_READ_ONLY_FROM", default_value = "2021-04-01")]
    psc_read_only_from: chrono::NaiveDate,
    /// The PSC timeline: access ends (`YYYY-MM-DD`).
    #[arg(long, env = "COSELL_PSC_ACCESS_ENDS", default_value = "2021-04-30")]
    psc_access_ends: chrono::NaiveDate,
    /// How long a worker's lease on a batch of deals holds, in seconds: a replica killed
    /// mid-batch holds its deals this long before another (or itself, restarted) takes them.
    #[arg(long, env = "COSELL_MIGRATION_LEASE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_secs: u64,
    /// An upload (`ImportPscExport`) that sends nothing for this many seconds is cancelled, and
    /// nothing of it imported.
    #[arg(long, env = "COSELL_UPLOAD_IDLE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    upload_idle_secs: u64,
    /// Database URL (`postgres://...` or `sqlite://file?mode=rwc`).
    #[arg(
        long,
        env = "COSELL_DATABASE_URL_MIGRATION",
        default_value = "sqlite://migration.db?mode=rwc"
    )]
    database_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = cosell_platform::telemetry::init("cosell-migration", &args.server.telemetry);
    cosell_platform::db::set_pool_size(args.server.database_pool_size);
    let (identity, token) = args
        .identity
        .service_token("migration")
        .map_err(anyhow::Error::msg)?;
    let cosell_migration::Started {
        services,
        migration,
    } = cosell_migration::start_with(
        &cosell_migration::Config {
            database_url: args.database_url,
            psc_read_only_from: args.psc_read_only_from,
            psc_access_ends: args.psc_access_ends,
            lease: std::time::Duration::from_secs(args.lease_secs),
        },
        &cosell_migration::Options {
            upload_idle: std::time::Duration::from_secs(args.upload_idle_secs),
        },
        cosell_migration::Links {
            identity: identity.clone(),
            deals: args
                .identity
                .connect(&args.deals_url)
                .map_err(anyhow::Error::msg)?,
            directory: args
                .identity
                .connect(&args.directory_url)
                .map_err(anyhow::Error::msg)?,
            token,
        },
    )
    .await?;
    let verifier = Arc::new(TokenVerifier::remote(identity));
    cosell_platform::server::listen_and_serve(
        "migration",
        &args.server,
        services,
        verifier,
        migration.shutdown_signal(),
    )
    .await
    .map_err(anyhow::Error::from_boxed)?;
    // Graceful shutdown: leased deals go back for another replica.
    migration.release().await;
    Ok(())
}
