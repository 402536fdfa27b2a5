//! `cosell`: the one binary users start.
//!
//! - `cosell serve`: every service in one process on one port, embedded SQLite by default.
//! - `cosell dev-token`, `cosell whoami`, `cosell admins`, `cosell directory import|search`,
//!   `cosell referrals list|get`, `cosell insights`, `cosell psc import`, `cosell migration
//!   users|deals|mpn-check|mpn-correct|cutover`: operator
//!   subcommands that call a running server (`--server`,
//!   `--token` / `COSELL_TOKEN`).
//! - `cosell catalog create|list`: the solutions catalog (an operator seeds it after the
//!   services are up).
//! - `cosell health`: whether a server is SERVING (exit 0) or not (exit 1), for container
//!   health checks.
//!
//! Modules: [`serve`] (the embedded suite), [`demo`] (the demo deals), [`client`] (connection
//! and token options, identity subcommands), [`directory`] (directory subcommands), [`referrals`]
//! (the referral tabs), [`insights`] (an organization's figures), [`psc`] (the PSC export
//! import), [`migration`] (the migration's status views), [`accounts`] (the MPN check and the
//! cut-over), [`catalog`] (the solutions catalog), [`health`] (the health check).

mod accounts;
mod catalog;
mod client;
mod demo;
mod directory;
mod events;
mod health;
mod insights;
mod migration;
mod notifications;
mod psc;
mod referrals;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cosell",
    version,
    about = "Partner co-selling: identity, directory, deals and migration services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service in one process.
    Serve(Box<serve::ServeArgs>),
    /// Print a bearer token for a user (development sign-in; the server must run with dev auth).
    DevToken(client::DevTokenArgs),
    /// Show who a token belongs to and the roles it holds now.
    Whoami(client::WhoamiArgs),
    /// List an organization's account admins and global admins (the "No access" answer).
    Admins(client::AdminsArgs),
    /// The customer-organization directory: import legal entities, search them.
    #[command(subcommand)]
    Directory(directory::DirectoryCommand),
    /// Referrals: the Inbound and Outbound tabs.
    #[command(subcommand)]
    Referrals(referrals::ReferralsCommand),
    /// An organization's figures: counts and values by stage and deal type, win rate,
    /// acceptance, time to accept, referrals expiring soon.
    Insights(insights::InsightsArgs),
    /// The change feed of referrals: follow it from a cursor.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Your notifications (`--unread`, `--read-all`).
    Notifications(notifications::NotificationsArgs),
    /// The legacy Partner Sales Connect: import its export.
    #[command(subcommand)]
    Psc(psc::PscCommand),
    /// The migration out of PSC: the user migration wizard, the deal migration's status and
    /// readiness.
    #[command(subcommand)]
    Migration(migration::MigrationCommand),
    /// The solutions catalog: add a solution (platform operators seed each partner's), list them.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Ask a server's standard health service whether it is SERVING: exit 0 when it is, 1
    /// (with one line saying why) when it is not or cannot be reached. No token needed.
    Health(health::HealthArgs),
}

/// Exit codes: 0 done, 1 the command failed (the error on one line, then one line per field
/// violation), 2 the command line cannot work (clap's usage errors, a missing token). Errors are
/// printed with their causes and never with a stack trace, whatever `RUST_BACKTRACE` says.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            let result = runtime.block_on(run(cli));
            // Whatever blocking work a stopped server leaves (an upload being unpacked) must
            // not hold the exit: the shutdown is bounded (SPEC 7).
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            result
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<client::UsageError>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::DevToken(args) => client::dev_token(args).await,
        Command::Whoami(args) => client::whoami(args).await,
        Command::Admins(args) => client::admins(args).await,
        Command::Directory(command) => directory::run(command).await,
        Command::Referrals(command) => referrals::run(command).await,
        Command::Insights(args) => insights::run(args).await,
        Command::Events(command) => events::run(command).await,
        Command::Notifications(args) => notifications::run(args).await,
        Command::Psc(command) => psc::run(command).await,
        Command::Migration(command) => migration::run(command).await,
        Command::Catalog(command) => catalog::run(command).await,
        Command::Health(args) => health::run(args).await,
    }
}
