//! `cosell migration users [--run]` (the user migration wizard) and `cosell migration deals
//! status|readiness|start|report` (the deal migration); the MPN check and the cut-over are in
//! [`crate::accounts`].

use clap::{Args, Subcommand};
use cosell_proto::migration as pb;

use crate::client::{Connection, call_error, own_organization};

#[derive(Debug, Subcommand)]
pub enum MigrationCommand {
    /// The user migration wizard: its rows, or (`--run`, account admins) a run.
    Users(UsersArgs),
    /// The deal migration.
    #[command(subcommand)]
    Deals(DealsCommand),
    /// The MPN check: each PSC account's MPN ID, and whether it is the organization's.
    MpnCheck(crate::accounts::MpnCheckArgs),
    /// Correct a PSC account's MPN association (account admins).
    MpnCorrect(crate::accounts::MpnCorrectArgs),
    /// The cut-over: show it, or (platform operators) `--enable ORG` / `--disable ORG`.
    Cutover(crate::accounts::CutoverArgs),
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    /// Run the migration (rows not yet migrated are tried) before showing the rows.
    #[arg(long)]
    run: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
pub enum DealsCommand {
    /// The banner: state, and how many deals are eligible and ineligible by reason.
    Status(Common),
    /// Per eligible deal, the required fields it will lack once migrated.
    Readiness(Common),
    /// Start migrating every eligible deal (org-wide referrals admins); `--wait` shows a progress
    /// bar until the run is done.
    Start(StartArgs),
    /// The report: one row per deal a run took; `--csv FILE` writes it as CSV.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Wait for the run to finish, with a progress bar.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write the report to this CSV file (columns psc_deal_id, deal_name, engagement_id,
    /// referral_id, deal_type, direction, error).
    #[arg(long)]
    csv: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: Common,
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
        MigrationCommand::Users(args) => users(args).await,
        MigrationCommand::Deals(DealsCommand::Status(args)) => status(args).await,
        MigrationCommand::Deals(DealsCommand::Readiness(args)) => readiness(args).await,
        MigrationCommand::Deals(DealsCommand::Start(args)) => start(args).await,
        MigrationCommand::Deals(DealsCommand::Report(args)) => report(args).await,
        MigrationCommand::MpnCheck(args) => crate::accounts::mpn_check(args).await,
        MigrationCommand::MpnCorrect(args) => crate::accounts::mpn_correct(args).await,
        MigrationCommand::Cutover(args) => crate::accounts::cutover(args).await,
    }
}

/// `INELIGIBLE_REASON_WON` -> `won`.
pub fn short(name: &str, prefix: &str) -> String {
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
                "migrated": s.migrated, "start_enabled": s.start_enabled,
                "percent_done": s.percent_done,
            })
        );
        return Ok(());
    }
    if s.run.is_some() {
        println!("state      {state} (latest run {}% done)", s.percent_done);
    } else {
        println!("state      {state}");
    }
    println!("deals      {}", s.total);
    println!("eligible   {}", s.eligible);
    println!("migrated   {}", s.migrated);
    println!(
        "start      {}",
        if s.start_enabled {
            "enabled"
        } else {
            "disabled"
        }
    );
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
        println!(
            "{:<20} {:<32} {:<14} missing",
            "psc deal", "name", "customer"
        );
    }
    let outcome = |o: pb::CustomerMatchOutcome| {
        o.as_str_name()
            .trim_start_matches("CUSTOMER_MATCH_OUTCOME_")
            .to_ascii_lowercase()
    };
    let mut counts = None;
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
        counts = counts.or(page.customer_matches);
        for d in &page.deals {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "psc_deal_id": d.psc_deal_id, "deal_name": d.deal_name,
                        "missing_fields": d.missing_fields,
                        "customer_match": outcome(d.customer_match()),
                    })
                );
            } else {
                println!(
                    "{:<20} {:<32} {:<14} {}",
                    d.psc_deal_id,
                    d.deal_name,
                    outcome(d.customer_match()),
                    d.missing_fields.join(", ")
                );
            }
        }
        if page.next_page_token.is_empty() {
            if let (Some(c), false) = (counts, args.json) {
                println!(
                    "customers of the eligible deals: {} will link, {} ambiguous, {} not found, {} not looked up",
                    c.matched, c.ambiguous, c.not_found, c.not_looked_up
                );
            }
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

async fn users(args: UsersArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let channel = c.connection.channel().await?;
    let parent = match c.organization.clone() {
        Some(o) => o,
        None => own_organization(&c.connection, &channel).await?,
    };
    let client = pb::migration_service_client::MigrationServiceClient::new(channel);
    let rows = if args.run {
        let done = client
            .clone()
            .run_user_migration(
                c.connection
                    .request(pb::RunUserMigrationRequest { parent })?,
            )
            .await
            .map_err(call_error)?
            .into_inner();
        if !c.json {
            println!(
                "run: {} migrated now, {} in error\n",
                done.migrated, done.errors
            );
        }
        done.rows
    } else {
        client
            .clone()
            .list_user_migration(
                c.connection
                    .request(pb::ListUserMigrationRequest { parent })?,
            )
            .await
            .map_err(call_error)?
            .into_inner()
            .rows
    };
    if !c.json {
        println!(
            "{:<32} {:<20} {:<12} {:<20} {:<22} {:<14} {:<13} error",
            "email", "psc account", "psc role", "pc mpn location", "pc role", "pc tenant", "status"
        );
    }
    for r in &rows {
        let status = short(r.status().as_str_name(), "USER_MIGRATION_STATUS_");
        if c.json {
            println!(
                "{}",
                serde_json::json!({
                    "email": r.email, "psc_account": r.psc_account_id,
                    "psc_account_name": r.psc_account_name, "psc_role": r.psc_role,
                    "pc_mpn_location": r.pc_mpn_location, "pc_role": r.pc_role,
                    "pc_tenant": r.pc_tenant, "status": status,
                    "error": if r.error == 0 { String::new() } else { short(r.error().as_str_name(), "USER_MIGRATION_ERROR_") },
                    "error_message": r.error_message, "user": r.user,
                })
            );
        } else {
            println!(
                "{:<32} {:<20} {:<12} {:<20} {:<22} {:<14} {:<13} {}",
                r.email,
                r.psc_account_id,
                r.psc_role,
                r.pc_mpn_location,
                r.pc_role,
                r.pc_tenant,
                status,
                r.error_message
            );
        }
    }
    Ok(())
}

async fn start(args: StartArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let channel = c.connection.channel().await?;
    let parent = match c.organization.clone() {
        Some(o) => o,
        None => own_organization(&c.connection, &channel).await?,
    };
    let client = pb::migration_service_client::MigrationServiceClient::new(channel);
    let run = client
        .clone()
        .start_deal_migration(c.connection.request(pb::StartDealMigrationRequest {
            parent: parent.clone(),
        })?)
        .await
        .map_err(call_error)?
        .into_inner()
        .run
        .unwrap_or_default();
    if !args.wait {
        if c.json {
            println!(
                "{}",
                serde_json::json!({ "run": run.name, "total": run.total })
            );
        } else {
            println!("started {}: {} deals", run.name, run.total);
        }
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(run.total.max(0) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} deals  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if c.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    // The watch stream follows the run; should the connection drop (a migration replica
    // restarting, say), it is opened again: the run goes on without us.
    let mut failures = 0;
    loop {
        let mut stream = match client
            .clone()
            .watch_deal_migration(c.connection.request(pb::WatchDealMigrationRequest {
                parent: parent.clone(),
            })?)
            .await
        {
            Ok(s) => s.into_inner(),
            Err(e) if retryable(&e) && failures < WATCH_RETRIES => {
                failures += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(call_error(e)),
        };
        loop {
            let message = match stream.message().await {
                Ok(Some(m)) => m,
                // The stream ends with the run: another run is the latest now.
                Ok(None) => anyhow::bail!("the watch ended before {} was shown done", run.name),
                Err(e) if retryable(&e) && failures < WATCH_RETRIES => {
                    failures += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    break;
                }
                Err(e) => return Err(call_error(e)),
            };
            failures = 0;
            let now = message.status.unwrap_or_default().run.unwrap_or_default();
            bar.set_position((now.migrated + now.failed).max(0) as u64);
            bar.set_message(format!("{} migrated, {} failed", now.migrated, now.failed));
            if now.name == run.name && now.finish_time.is_some() {
                bar.finish();
                if c.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "run": now.name, "total": now.total, "migrated": now.migrated,
                            "failed": now.failed,
                        })
                    );
                } else {
                    println!(
                        "done: {} migrated, {} failed (see `cosell migration deals report`)",
                        now.migrated, now.failed
                    );
                }
                return Ok(());
            }
        }
    }
}

/// How many times in a row `--wait` opens the watch again after the connection dropped.
const WATCH_RETRIES: u32 = 60;

/// Whether a failed call is worth trying again: the server was away, not refusing.
fn retryable(e: &tonic::Status) -> bool {
    matches!(
        e.code(),
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
    )
}

async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let channel = c.connection.channel().await?;
    let parent = match c.organization.clone() {
        Some(o) => o,
        None => own_organization(&c.connection, &channel).await?,
    };
    let client = pb::migration_service_client::MigrationServiceClient::new(channel);
    if let Some(path) = &args.csv {
        return download_report(c, client, parent, path).await;
    }
    if !c.json {
        println!(
            "{:<16} {:<30} {:<9} {:<12} {:<9} {:<46} error",
            "psc deal", "name", "state", "type", "direction", "referral"
        );
    }
    let mut page_token = String::new();
    loop {
        let page = client
            .clone()
            .list_deal_migration_report(c.connection.request(
                pb::ListDealMigrationReportRequest {
                    parent: parent.clone(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                },
            )?)
            .await
            .map_err(call_error)?
            .into_inner();
        for r in &page.results {
            if c.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "psc_deal_id": r.psc_deal_id, "deal_name": r.deal_name,
                        "state": r.state, "engagement": r.engagement, "referral": r.referral,
                        "deal_type": r.deal_type, "direction": r.direction, "error": r.error,
                        "notes": r.notes,
                    })
                );
            } else {
                println!(
                    "{:<16} {:<30} {:<9} {:<12} {:<9} {:<46} {}",
                    r.psc_deal_id,
                    r.deal_name,
                    r.state,
                    r.deal_type,
                    r.direction,
                    r.referral,
                    r.error
                );
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

/// How many times `report --csv` starts the download over after the connection dropped (or the
/// server shut down) midway.
const DOWNLOAD_RETRIES: u32 = 10;

/// `report --csv FILE`: the server's CSV (DownloadDealMigrationReport), written to FILE chunk by
/// chunk as it arrives. FILE is created once the server takes the call (a refused one leaves
/// it as it was). A download cut short starts over, FILE emptied first; one that fails for good
/// removes what it wrote, so that no partial report is taken for a whole one.
async fn download_report(
    c: &Common,
    client: pb::migration_service_client::MigrationServiceClient<tonic::transport::Channel>,
    parent: String,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::{Seek, Write};
    let cannot_write = || format!("cannot write {}", path.display());
    let mut file: Option<std::fs::File> = None;
    let give_up = |written: bool, e: anyhow::Error| {
        // Only a file of our own making: never a device, a pipe or what a link points to.
        if written && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(path);
        }
        e
    };
    let mut failures = 0;
    'download: loop {
        let request = c
            .connection
            .request(pb::DownloadDealMigrationReportRequest {
                parent: parent.clone(),
            })
            .map_err(|e| give_up(file.is_some(), e))?;
        let cut_short = match client.clone().download_deal_migration_report(request).await {
            Ok(stream) => {
                let out = match file.as_mut() {
                    Some(f) => f,
                    None => file.insert(std::fs::File::create(path).with_context(cannot_write)?),
                };
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(m)) => {
                            if let Err(e) = out.write_all(&m.chunk) {
                                return Err(give_up(
                                    true,
                                    anyhow::Error::new(e).context(cannot_write()),
                                ));
                            }
                        }
                        Ok(None) => break 'download,
                        Err(e) => break e,
                    }
                }
            }
            Err(e) => e,
        };
        if !retryable(&cut_short) || failures == DOWNLOAD_RETRIES {
            return Err(give_up(file.is_some(), call_error(cut_short)));
        }
        failures += 1;
        if let Some(f) = file.as_mut()
            && let Err(e) = f.set_len(0).and_then(|()| f.rewind())
        {
            let context = format!(
                "the download was cut short ({}) and {} cannot be emptied to start over",
                cut_short.message(),
                path.display()
            );
            return Err(give_up(true, anyhow::Error::new(e).context(context)));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    if let Some(Err(e)) = file.as_mut().map(|f| f.flush()) {
        return Err(give_up(true, anyhow::Error::new(e).context(cannot_write())));
    }
    eprintln!("report written to {}", path.display());
    Ok(())
}
