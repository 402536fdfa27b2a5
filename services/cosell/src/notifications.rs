//! `cosell notifications`: the caller's notifications, newest first (`--unread`: only unread
//! ones), and `--read-all` to mark every one read.

use clap::Args;
use cosell_proto::deals as pb;

use crate::client::{Connection, call_error};

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    /// Only unread notifications.
    #[arg(long)]
    unread: bool,
    /// Mark every notification read (after listing them).
    #[arg(long)]
    read_all: bool,
    /// One JSON object per notification.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub async fn run(args: NotificationsArgs) -> anyhow::Result<()> {
    let mut client = pb::notification_service_client::NotificationServiceClient::new(
        args.connection.channel().await?,
    );
    let page = client
        .list_notifications(args.connection.request(pb::ListNotificationsRequest {
            unread_only: args.unread,
            page_size: 100,
            page_token: String::new(),
        })?)
        .await
        .map_err(call_error)?
        .into_inner();
    for n in &page.notifications {
        let kind = n
            .kind()
            .as_str_name()
            .trim_start_matches("NOTIFICATION_KIND_")
            .to_ascii_lowercase();
        if args.json {
            let line = serde_json::json!({
                "name": n.name,
                "kind": kind,
                "subject": n.subject,
                "summary": n.summary,
                "create_time": time(&n.create_time),
                "read": n.read_time.is_some(),
            });
            println!("{line}");
        } else {
            let mark = if n.read_time.is_some() { " " } else { "*" };
            println!(
                "{mark} {}  {:<22} {}",
                time(&n.create_time),
                kind,
                n.summary
            );
        }
    }
    if !args.json {
        eprintln!("{} unread", page.unread_count);
    }
    if args.read_all {
        let marked = client
            .mark_notifications_read(args.connection.request(pb::MarkNotificationsReadRequest {
                names: Vec::new(),
                up_to_time: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            })?)
            .await
            .map_err(call_error)?
            .into_inner()
            .marked;
        eprintln!("{marked} marked read");
    }
    Ok(())
}
