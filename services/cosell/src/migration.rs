//! `cosell migration deals status|readiness`: the deal migration's banner and readiness report.

use clap::{Args, Subcommand};
use cosell_proto::migration as pb;

use crate::client::{Connection, call_error, own_organization};

#[derive(Debug, Subcommand)]
pub enum MigrationCommand {
    /// The deal migration.
    #[command(subcommand)]
    Deals(DealsCommand),
}

#[derive(Debug, Subcommand)]
pub enum DealsCommand {
    /// The banner: state, and how many deals are eligible and ineligible by reason.
    Status(Common),
    /// Per eligible deal, the required fields it will lack once migrated.
    Readiness(Common),
}

#[derive(Debug, Args)]
pub struct Common {
    /// `organizations/{id}`; default: the caller's own.
    #[arg(long)]
    organization: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(command: MigrationCommand) -> anyhow::Result<()> {
    match command {
        MigrationCommand::Deals(DealsCommand::Status(args)) => status(args).await,
        MigrationCommand::Deals(DealsCommand::Readiness(args)) => readiness(args).await,
    }
}

/// `INELIGIBLE_REASON_WON` -> `won`.
fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

async fn status(args: Common) -> anyhow::Result<()> {
    let channel = args.connection.channel().await?;
    let parent = match args.organization.clone() {
        Some(o) => o,
        None => own_organization(&args.connection, &channel).await?,
    };
    let s = pb::migration_service_client::MigrationServiceClient::new(channel)
        .get_deal_migration_status(
            args.connection
                .request(pb::GetDealMigrationStatusRequest { parent })?,
        )
        .await
        .map_err(call_error)?
        .into_inner();
    let state = short(s.state().as_str_name(), "DEAL_MIGRATION_STATE_");
    let reasons: Vec<(String, i64)> = s
        .ineligible
        .iter()
        .map(|c| {
            (
                short(c.reason().as_str_name(), "INELIGIBLE_REASON_"),
                c.deals,
            )
        })
        .collect();
    if args.json {
        let ineligible: serde_json::Map<String, serde_json::Value> = reasons
            .iter()
            .map(|(r, n)| (r.clone(), serde_json::json!(n)))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "state": state, "total": s.total, "eligible": s.eligible, "ineligible": ineligible,
            })
        );
        return Ok(());
    }
    println!("state      {state}");
    println!("deals      {}", s.total);
    println!("eligible   {}", s.eligible);
    for (reason, n) in reasons {
        println!("ineligible {n:>6}  {reason}");
    }
    Ok(())
}

async fn readiness(args: Common) -> anyhow::Result<()> {
    let channel = args.connection.channel().await?;
    let parent = match args.organization.clone() {
        Some(o) => o,
        None => own_organization(&args.connection, &channel).await?,
    };
    let client = pb::migration_service_client::MigrationServiceClient::new(channel);
    let mut page_token = String::new();
    if !args.json {
        println!("{:<20} {:<32} missing", "psc deal", "name");
    }
    loop {
        let page = client
            .clone()
            .list_deal_readiness(args.connection.request(pb::ListDealReadinessRequest {
                parent: parent.clone(),
                page_size: 500,
                page_token: page_token.clone(),
            })?)
            .await
            .map_err(call_error)?
            .into_inner();
        for d in &page.deals {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "psc_deal_id": d.psc_deal_id, "deal_name": d.deal_name,
                        "missing_fields": d.missing_fields,
                    })
                );
            } else {
                println!(
                    "{:<20} {:<32} {}",
                    d.psc_deal_id,
                    d.deal_name,
                    d.missing_fields.join(", ")
                );
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}
