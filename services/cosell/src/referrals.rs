//! `cosell referrals list|get`: the Inbound and Outbound tabs from a terminal, with the list's
//! filters, as a table or as one JSON object per referral.

use clap::{Args, Subcommand, ValueEnum};
use cosell_proto::deals as pb;

use crate::client::{Connection, call_error};

#[derive(Debug, Subcommand)]
pub enum ReferralsCommand {
    /// List referrals, newest first (every page with `--all`).
    List(ListArgs),
    /// Show one referral.
    Get(GetArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Tab {
    Inbound,
    Outbound,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the Inbound or the Outbound tab.
    #[arg(long, value_enum)]
    tab: Option<Tab>,
    /// Only this status: new, active, closed.
    #[arg(long)]
    status: Option<String>,
    /// Only this substatus: pending, received, accepted, won, lost, declined, expired.
    #[arg(long)]
    substatus: Option<String>,
    /// Only this deal type: private, partner_led, co_sell.
    #[arg(long)]
    deal_type: Option<String>,
    /// Only customers whose legal name contains this.
    #[arg(long, default_value = "")]
    customer: String,
    /// Only referrals with this team member (email).
    #[arg(long, default_value = "")]
    team_member: String,
    /// Only this MPN location.
    #[arg(long, default_value = "")]
    mpn_location: String,
    /// Only the referral migrated from this PSC deal id.
    #[arg(long, default_value = "")]
    psc_deal_id: String,
    /// Only your favorites.
    #[arg(long)]
    favorites: bool,
    /// Most recently updated first.
    #[arg(long)]
    by_update_time: bool,
    /// Referrals per page.
    #[arg(long, default_value_t = 50)]
    page_size: i32,
    /// Every page, not just the first.
    #[arg(long)]
    all: bool,
    /// One JSON object per referral.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// `referrals/{id}`.
    name: String,
    /// One JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(command: ReferralsCommand) -> anyhow::Result<()> {
    match command {
        ReferralsCommand::List(args) => list(args).await,
        ReferralsCommand::Get(args) => get(args).await,
    }
}

/// An enum value by its short name (`won` for `SUBSTATUS_WON`), as the flags take them.
fn enum_flag<E>(
    flag: &str,
    value: Option<&str>,
    prefix: &str,
    parse: impl Fn(&str) -> Option<E>,
) -> anyhow::Result<Option<E>> {
    value
        .map(|v| {
            parse(&format!(
                "{prefix}{}",
                v.to_ascii_uppercase().replace('-', "_")
            ))
            .ok_or_else(|| anyhow::anyhow!("--{flag} {v}: not a known value"))
        })
        .transpose()
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let status = enum_flag(
        "status",
        args.status.as_deref(),
        "STATUS_",
        pb::Status::from_str_name,
    )?;
    let substatus = enum_flag(
        "substatus",
        args.substatus.as_deref(),
        "SUBSTATUS_",
        pb::Substatus::from_str_name,
    )?;
    let deal_type = enum_flag(
        "deal-type",
        args.deal_type.as_deref(),
        "DEAL_TYPE_",
        pb::DealType::from_str_name,
    )?;
    let mut client =
        pb::referral_service_client::ReferralServiceClient::new(args.connection.channel().await?);
    let mut request = pb::ListReferralsRequest {
        direction: match args.tab {
            None => pb::Direction::Unspecified,
            Some(Tab::Inbound) => pb::Direction::Inbound,
            Some(Tab::Outbound) => pb::Direction::Outbound,
        } as i32,
        page_size: args.page_size,
        order_by: if args.by_update_time {
            pb::ReferralOrder::UpdateTime
        } else {
            pb::ReferralOrder::Unspecified
        } as i32,
        status: status.map_or(0, |s| s as i32),
        substatus: substatus.map_or(0, |s| s as i32),
        deal_type: deal_type.map_or(0, |d| d as i32),
        customer_name: args.customer,
        team_member_email: args.team_member,
        favorites_only: args.favorites,
        psc_deal_id: args.psc_deal_id,
        mpn_location: args.mpn_location,
        ..Default::default()
    };
    if !args.json {
        println!(
            "{:<46}  {:<8} {:<21} {:<11} {:<30}  CUSTOMER",
            "NAME", "TAB", "STATUS", "TYPE", "DEAL"
        );
    }
    loop {
        let page = client
            .list_referrals(args.connection.request(request.clone())?)
            .await
            .map_err(call_error)?
            .into_inner();
        for r in &page.referrals {
            print_referral(r, args.json, false);
        }
        if !args.all || page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    Ok(())
}

async fn get(args: GetArgs) -> anyhow::Result<()> {
    let referral =
        pb::referral_service_client::ReferralServiceClient::new(args.connection.channel().await?)
            .get_referral(args.connection.request(pb::GetReferralRequest {
                name: args.name.clone(),
            })?)
            .await
            .map_err(call_error)?
            .into_inner()
            .referral
            .unwrap_or_default();
    print_referral(&referral, args.json, true);
    Ok(())
}

fn short<E>(
    value: i32,
    parse: impl Fn(i32) -> Result<E, prost::UnknownEnumValue>,
    name: impl Fn(&E) -> &'static str,
    prefix: &str,
) -> String {
    parse(value)
        .map(|e| name(&e).trim_start_matches(prefix).to_ascii_lowercase())
        .unwrap_or_else(|_| value.to_string())
}

/// A referral's fields as a person reads them.
pub fn referral_json(r: &pb::Referral) -> serde_json::Value {
    let time = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.to_rfc3339())
    };
    let customer = r.customer.clone().unwrap_or_default();
    serde_json::json!({
        "name": r.name,
        "display_name": r.display_name,
        "organization": r.organization,
        "mpn_location": r.mpn_location,
        "party": short(r.party, pb::Party::try_from, pb::Party::as_str_name, "PARTY_"),
        "engagement": r.engagement,
        "direction": short(r.direction, pb::Direction::try_from, pb::Direction::as_str_name, "DIRECTION_"),
        "deal_type": short(r.deal_type, pb::DealType::try_from, pb::DealType::as_str_name, "DEAL_TYPE_"),
        "status": short(r.status, pb::Status::try_from, pb::Status::as_str_name, "STATUS_"),
        "substatus": short(r.substatus, pb::Substatus::try_from, pb::Substatus::as_str_name, "SUBSTATUS_"),
        "status_reason": r.status_reason,
        "customer": customer.legal_name,
        "customer_entity": customer.entity,
        "deal_value": r.deal_value.as_ref().map(|m| format!("{} {}", m.amount, m.currency_code)),
        "estimated_close_date": r.estimated_close_date,
        "solutions": r.solutions.iter().map(|s| s.solution.clone()).collect::<Vec<_>>(),
        "team": r.team.iter().map(|c| c.email.clone()).collect::<Vec<_>>(),
        "seller": r.seller_contact.as_ref().map(|c| c.email.clone()),
        "registration_status": short(r.registration_status, pb::RegistrationStatus::try_from, pb::RegistrationStatus::as_str_name, "REGISTRATION_STATUS_"),
        "create_time": time(&r.create_time),
        "update_time": time(&r.update_time),
        "expire_time": time(&r.expire_time),
        "psc_deal_id": r.tracking.as_ref().map(|t| t.psc_deal_id.clone()).unwrap_or_default(),
        "favorite": r.favorite,
        "etag": r.etag,
    })
}

fn print_referral(r: &pb::Referral, json: bool, whole: bool) {
    let j = referral_json(r);
    if json {
        println!("{j}");
        return;
    }
    let text = |k: &str| j[k].as_str().unwrap_or_default().to_owned();
    if whole {
        if let Some(fields) = j.as_object() {
            for (k, v) in fields {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                println!("{k:<21} {v}");
            }
        }
        return;
    }
    println!(
        "{:<46}  {:<8} {:<21} {:<11} {:<30}  {}",
        text("name"),
        text("direction"),
        format!("{}/{}", text("status"), text("substatus")),
        text("deal_type"),
        text("display_name").chars().take(30).collect::<String>(),
        text("customer")
    );
}
