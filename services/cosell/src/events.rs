//! `cosell events watch`: follows the change feed of the caller's organization (or, with
//! `--parent platform`, the platform's), from a cursor, as lines or one JSON object per
//! event. Each line starts with the event's cursor: pass the last one to `--after` to resume
//! after a disconnect without missing or repeating an event.

use clap::{Args, Subcommand};
use cosell_proto::deals as pb;
use tokio_stream::StreamExt;

use crate::client::{Connection, call_error, own_organization};
use crate::referrals::referral_json;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print the events after a cursor, then live ones, until interrupted.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Start after this cursor (an event's cursor, as printed); none: from now on.
    #[arg(long, default_value = "")]
    after: String,
    /// The feed: `organizations/{id}` (default: your own) or `platform` (platform users).
    #[arg(long)]
    parent: Option<String>,
    /// One JSON object per event.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Watch(args) => watch(args).await,
    }
}

fn kind(e: &pb::ReferralEvent) -> String {
    e.kind()
        .as_str_name()
        .trim_start_matches("EVENT_KIND_")
        .to_ascii_lowercase()
}

fn time(e: &pb::ReferralEvent) -> String {
    e.event_time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let channel = args.connection.channel().await?;
    let parent = match args.parent.clone() {
        Some(p) => p,
        None => own_organization(&args.connection, &channel).await?,
    };
    let mut stream = pb::event_service_client::EventServiceClient::new(channel)
        .watch_events(args.connection.request(pb::WatchEventsRequest {
            parent,
            after: args.after.clone(),
        })?)
        .await
        .map_err(call_error)?
        .into_inner();
    while let Some(message) = stream.next().await {
        let Some(e) = message.map_err(call_error)?.event else {
            continue;
        };
        let referral = e.referral.clone().unwrap_or_default();
        if args.json {
            let line = serde_json::json!({
                "cursor": e.cursor,
                "kind": kind(&e),
                "time": time(&e),
                "changed_fields": e.changed_fields,
                "actor": e.actor,
                "referral": referral_json(&referral),
            });
            println!("{line}");
        } else {
            let fields = if e.changed_fields.is_empty() {
                String::new()
            } else {
                format!(" ({})", e.changed_fields.join(", "))
            };
            println!(
                "{}  {}  {:<20} {}  {}{fields}",
                e.cursor,
                time(&e),
                kind(&e),
                referral.name,
                referral.display_name
            );
        }
    }
    Ok(())
}
