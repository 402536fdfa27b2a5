//! `cosell insights`: an organization's figures (SPEC 3.7, `InsightsService/GetInsights`), as a
//! short report or as one JSON object.

use clap::Args;
use cosell_proto::deals as pb;

use crate::client::{Connection, call_error, own_organization};

#[derive(Debug, Args)]
pub struct InsightsArgs {
    /// Only this MPN location of the organization.
    #[arg(long, default_value = "")]
    mpn_id: String,
    /// `organizations/{id}`; default: the caller's own (platform users name one).
    #[arg(long)]
    organization: Option<String>,
    /// One JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

fn tally_json(t: &Option<pb::Tally>) -> serde_json::Value {
    let t = t.clone().unwrap_or_default();
    let value: serde_json::Map<String, serde_json::Value> = t
        .value
        .iter()
        .map(|v| (v.currency_code.clone(), v.amount.clone().into()))
        .collect();
    serde_json::json!({ "count": t.count, "value": value })
}

/// A name without its enum prefix, lower case (`closed`, `won`, `co_sell`).
fn short(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

fn report_json(r: &pb::GetInsightsResponse) -> serde_json::Value {
    let by_stage: Vec<_> = r
        .by_stage
        .iter()
        .map(|s| {
            let mut j = tally_json(&s.tally);
            j["status"] = short(s.status().as_str_name(), "STATUS_").into();
            j["substatus"] = short(s.substatus().as_str_name(), "SUBSTATUS_").into();
            j
        })
        .collect();
    let by_deal_type: Vec<_> = r
        .by_deal_type
        .iter()
        .map(|t| {
            let mut j = tally_json(&t.tally);
            j["deal_type"] = short(t.deal_type().as_str_name(), "DEAL_TYPE_").into();
            j
        })
        .collect();
    serde_json::json!({
        "total": tally_json(&r.total),
        "by_stage": by_stage,
        "by_deal_type": by_deal_type,
        "win_rate": r.win_rate,
        "inbound_acceptance_rate": r.inbound_acceptance_rate,
        "average_seconds_to_accept": r.average_seconds_to_accept,
        "expiring_within_7_days": r.expiring_within_7_days,
    })
}

fn values(t: &serde_json::Value) -> String {
    t["value"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(c, a)| format!("{} {c}", a.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

pub async fn run(args: InsightsArgs) -> anyhow::Result<()> {
    let channel = args.connection.channel().await?;
    let parent = match args.organization {
        Some(o) => o,
        None => own_organization(&args.connection, &channel).await?,
    };
    let report = pb::insights_service_client::InsightsServiceClient::new(channel)
        .get_insights(args.connection.request(pb::GetInsightsRequest {
            parent,
            mpn_id: args.mpn_id,
        })?)
        .await
        .map_err(call_error)?
        .into_inner();
    let j = report_json(&report);
    if args.json {
        println!("{j}");
        return Ok(());
    }
    let total = &j["total"];
    println!("referrals            {}  {}", total["count"], values(total));
    for s in j["by_stage"].as_array().into_iter().flatten() {
        let stage = format!(
            "{}/{}",
            s["status"].as_str().unwrap_or_default(),
            s["substatus"].as_str().unwrap_or_default()
        );
        println!("  {stage:<18} {}  {}", s["count"], values(s));
    }
    for t in j["by_deal_type"].as_array().into_iter().flatten() {
        println!(
            "  {:<18} {}  {}",
            t["deal_type"].as_str().unwrap_or_default(),
            t["count"],
            values(t)
        );
    }
    println!("win rate             {:.1}%", report.win_rate * 100.0);
    println!(
        "inbound accepted     {:.1}%",
        report.inbound_acceptance_rate * 100.0
    );
    println!(
        "time to accept       {:.1} h",
        report.average_seconds_to_accept / 3600.0
    );
    println!("expiring in 7 days   {}", report.expiring_within_7_days);
    Ok(())
}
