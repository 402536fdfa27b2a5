//! `cosell migration mpn-check|mpn-correct` (SPEC 5.2: which PSC accounts' MPN IDs are the
//! organization's, and an admin's correction) and `cosell migration cutover` (SPEC 5.5: where
//! new platform-seller referrals for a partner go).

use clap::Args;
use cosell_proto::migration as pb;
use tonic::transport::Channel;

use crate::client::{Connection, call_error, organization_name, own_organization};

#[derive(Debug, Args)]
pub struct MpnCheckArgs {
    /// `organizations/{id}`; default: the caller's own.
    #[arg(long)]
    organization: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct MpnCorrectArgs {
    /// The PSC partner account id.
    account_id: String,
    /// The organization's MPN ID (vOrg or location) the account belongs to.
    mpn_id: String,
    /// `organizations/{id}`; default: the caller's own.
    #[arg(long)]
    organization: Option<String>,
    /// One JSON object instead of a line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct CutoverArgs {
    /// Route this organization's new platform-seller referrals to the new system (platform
    /// operators).
    #[arg(long, value_name = "ORG", conflicts_with = "disable")]
    enable: Option<String>,
    /// Route them to PSC again (platform operators).
    #[arg(long, value_name = "ORG")]
    disable: Option<String>,
    /// Without --enable/--disable: whose cut-over to show; default: the caller's own.
    #[arg(long, conflicts_with_all = ["enable", "disable"])]
    organization: Option<String>,
    /// One JSON object instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

fn client(channel: Channel) -> pb::migration_service_client::MigrationServiceClient<Channel> {
    pb::migration_service_client::MigrationServiceClient::new(channel)
}

async fn parent(
    organization: &Option<String>,
    connection: &Connection,
    channel: &Channel,
) -> anyhow::Result<String> {
    match organization {
        Some(o) => Ok(organization_name(o)),
        None => own_organization(connection, channel).await,
    }
}

/// `MPN_ASSOCIATION_LOCATION` -> `location`.
fn association(a: &pb::PscAccount) -> String {
    crate::migration::short(a.association().as_str_name(), "MPN_ASSOCIATION_")
}

fn account_json(a: &pb::PscAccount) -> serde_json::Value {
    serde_json::json!({
        "account_id": a.account_id, "display_name": a.display_name,
        "exported_mpn_id": a.exported_mpn_id, "corrected_mpn_id": a.corrected_mpn_id,
        "mpn_id": a.mpn_id, "association": association(a), "reason": a.reason,
    })
}

pub async fn mpn_check(args: MpnCheckArgs) -> anyhow::Result<()> {
    let channel = args.connection.channel().await?;
    let parent = parent(&args.organization, &args.connection, &channel).await?;
    let check = client(channel)
        .get_mpn_check(args.connection.request(pb::GetMpnCheckRequest { parent })?)
        .await
        .map_err(call_error)?
        .into_inner();
    if !args.json {
        println!(
            "{:<20} {:<30} {:<12} {:<12} {:<9} reason",
            "psc account", "name", "exported", "in force", "holds as"
        );
    }
    for a in &check.accounts {
        if args.json {
            println!("{}", account_json(a));
        } else {
            println!(
                "{:<20} {:<30} {:<12} {:<12} {:<9} {}",
                a.account_id,
                a.display_name,
                a.exported_mpn_id,
                a.mpn_id,
                association(a),
                a.reason
            );
        }
    }
    if !args.json {
        println!(
            "\n{} of {} accounts invalid",
            check.invalid,
            check.accounts.len()
        );
    }
    Ok(())
}

pub async fn mpn_correct(args: MpnCorrectArgs) -> anyhow::Result<()> {
    let channel = args.connection.channel().await?;
    let parent = parent(&args.organization, &args.connection, &channel).await?;
    let account = client(channel)
        .correct_mpn_association(args.connection.request(pb::CorrectMpnAssociationRequest {
            parent,
            account_id: args.account_id,
            mpn_id: args.mpn_id,
        })?)
        .await
        .map_err(call_error)?
        .into_inner()
        .account
        .unwrap_or_default();
    if args.json {
        println!("{}", account_json(&account));
    } else {
        println!(
            "{} now counts as {} ({})",
            account.account_id,
            account.mpn_id,
            association(&account)
        );
    }
    Ok(())
}

pub async fn cutover(args: CutoverArgs) -> anyhow::Result<()> {
    let channel = args.connection.channel().await?;
    let switch = match (&args.enable, &args.disable) {
        (Some(org), _) => Some((organization_name(org), true)),
        (None, Some(org)) => Some((organization_name(org), false)),
        (None, None) => None,
    };
    let cutover = match switch {
        Some((parent, routed_to_new_system)) => {
            client(channel)
                .update_cutover(args.connection.request(pb::UpdateCutoverRequest {
                    parent,
                    routed_to_new_system,
                })?)
                .await
                .map_err(call_error)?
                .into_inner()
                .cutover
        }
        None => {
            let parent = parent(&args.organization, &args.connection, &channel).await?;
            client(channel)
                .get_cutover(args.connection.request(pb::GetCutoverRequest { parent })?)
                .await
                .map_err(call_error)?
                .into_inner()
                .cutover
        }
    }
    .unwrap_or_default();
    let switch_time = cutover
        .switch_time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "name": cutover.name, "routed_to_new_system": cutover.routed_to_new_system,
                "switch_time": switch_time, "switched_by": cutover.switched_by,
                "psc_read_only_from": cutover.psc_read_only_from,
                "psc_access_ends": cutover.psc_access_ends,
            })
        );
        return Ok(());
    }
    let routed = if cutover.routed_to_new_system {
        "the new system"
    } else {
        "PSC"
    };
    println!("{}", cutover.name);
    println!("new platform-seller referrals go to  {routed}");
    if !switch_time.is_empty() {
        println!(
            "switched                             {switch_time} by {}",
            cutover.switched_by
        );
    }
    println!(
        "PSC read-only from                   {}",
        cutover.psc_read_only_from
    );
    println!(
        "PSC access ends                      {}",
        cutover.psc_access_ends
    );
    Ok(())
}
