//! `cosell.deals.v1.NotificationService`: the caller's own notifications (written by
//! [`crate::notifier`]), newest first, and marking them read; and the one notification not
//! derived from the feed, a finished deal migration run, which the migration service tells.

use std::sync::Arc;

use chrono::DateTime;
use cosell_platform::{ApiError, Violations};
use cosell_proto::deals::{self as pb, notification_service_server::NotificationService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{Actor, DOMAIN, Deals};
use crate::domain::notify::NotificationKind;
use crate::store::notifications::{NewNotification, Notification};

/// Longest run and recipient names taken.
const MAX_NAME: usize = 200;

/// Default and largest page.
const DEFAULT_PAGE: u64 = 50;
const MAX_PAGE: u64 = 500;

pub struct NotificationApi(pub Arc<Deals>);

fn kind_pb(k: NotificationKind) -> pb::NotificationKind {
    match k {
        NotificationKind::NewInboundReferral => pb::NotificationKind::NewInboundReferral,
        NotificationKind::InvitationAccepted => pb::NotificationKind::InvitationAccepted,
        NotificationKind::InvitationDeclined => pb::NotificationKind::InvitationDeclined,
        NotificationKind::ExpiringSoon => pb::NotificationKind::ExpiringSoon,
        NotificationKind::Expired => pb::NotificationKind::Expired,
        NotificationKind::RegistrationChanged => pb::NotificationKind::RegistrationChanged,
        NotificationKind::ReferralDeclined => pb::NotificationKind::ReferralDeclined,
        NotificationKind::MigrationFinished => pb::NotificationKind::MigrationFinished,
    }
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// `users/{user_id}` of a principal `organizations/{org}/users/{user_id}`.
fn user_of(principal: &str) -> &str {
    principal
        .rfind("users/")
        .map_or(principal, |i| &principal[i..])
}

fn notification_pb(principal: &str, n: &Notification) -> pb::Notification {
    pb::Notification {
        name: format!("{}/notifications/{}", user_of(principal), n.id),
        kind: kind_pb(n.kind).into(),
        subject: n.subject.clone(),
        summary: n.summary.clone(),
        create_time: Some(timestamp(n.create_time)),
        read_time: n.read_time.map(timestamp),
    }
}

impl Deals {
    /// The caller's principal; notifications are users' own.
    fn recipient(actor: &Actor) -> Result<String, ApiError> {
        match actor {
            Actor::Service(_) => Err(ApiError::permission_denied(
                "USERS_ONLY",
                "notifications are users' own",
            )),
            _ => Ok(actor.principal()),
        }
    }

    pub async fn list_notifications(
        &self,
        req: Request<pb::ListNotificationsRequest>,
    ) -> Result<pb::ListNotificationsResponse, ApiError> {
        let principal = Self::recipient(&self.actor(&req).await?)?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let size = match r.page_size {
            n if n < 0 => {
                v.add("page_size", format!("must not be negative (got {n})"));
                DEFAULT_PAGE
            }
            0 => DEFAULT_PAGE,
            n => (n as u64).min(MAX_PAGE),
        };
        let query = format!("unread={}", r.unread_only);
        let before = if r.page_token.is_empty() {
            None
        } else {
            v.take(
                "page_token",
                cosell_platform::page::decode(&r.page_token, &query).and_then(|k| {
                    k.and_then(|k| Uuid::parse_str(&k).ok())
                        .ok_or_else(|| "is not a page token of this list".to_owned())
                }),
            )
        };
        v.finish()?;
        let (mut page, unread) = self
            .store
            .notifications(&principal, r.unread_only, before, size + 1)
            .await?;
        let more = page.len() as u64 > size;
        page.truncate(size as usize);
        let next_page_token = match page.last() {
            Some(last) if more => cosell_platform::page::encode(&last.id.to_string(), &query),
            _ => String::new(),
        };
        Ok(pb::ListNotificationsResponse {
            notifications: page
                .iter()
                .map(|n| notification_pb(&principal, n))
                .collect(),
            next_page_token,
            unread_count: unread.try_into().unwrap_or(i32::MAX),
        })
    }

    pub async fn mark_notifications_read(
        &self,
        req: Request<pb::MarkNotificationsReadRequest>,
    ) -> Result<pb::MarkNotificationsReadResponse, ApiError> {
        let principal = Self::recipient(&self.actor(&req).await?)?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let own = format!("{}/notifications/", user_of(&principal));
        let mut ids = Vec::new();
        for (i, name) in r.names.iter().enumerate() {
            match name
                .strip_prefix(&own)
                .and_then(|id| Uuid::parse_str(id).ok())
            {
                Some(id) => ids.push(id),
                None => v.add(
                    format!("names[{i}]"),
                    format!("`{name}` is not one of your notifications ({own}...)"),
                ),
            }
        }
        let up_to = r
            .up_to_time
            .as_ref()
            .map(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
        if matches!(up_to, Some(None)) {
            v.add("up_to_time", "is not a valid time");
        }
        if ids.is_empty() && up_to.is_none() && r.names.is_empty() {
            v.add("names", "name notifications, or set up_to_time");
        }
        v.finish()?;
        let marked = self
            .store
            .mark_read(&principal, &ids, up_to.flatten(), self.now())
            .await?;
        Ok(pb::MarkNotificationsReadResponse {
            marked: marked.try_into().unwrap_or(i32::MAX),
        })
    }

    pub async fn notify_deal_migration_finished(
        &self,
        req: Request<pb::NotifyDealMigrationFinishedRequest>,
    ) -> Result<pb::NotifyDealMigrationFinishedResponse, ApiError> {
        if !self.actor(&req).await?.is_service("migration") {
            return Err(ApiError::permission_denied(
                "MIGRATION_ONLY",
                "only the migration service tells of deal migration runs",
            ));
        }
        let r = req.get_ref();
        let mut v = Violations::new();
        let bounded = |v: &mut Violations, field: &str, value: &str| {
            if value.len() > MAX_NAME {
                v.add(
                    field,
                    format!("is {} characters; at most {MAX_NAME}", value.len()),
                );
                false
            } else {
                true
            }
        };
        let run_org = if bounded(&mut v, "run", &r.run) {
            v.take(
                "run",
                cosell_platform::names::parse_two(&r.run, "organizations", "dealMigrationRuns"),
            )
            .map(|(org, _)| org)
        } else {
            None
        };
        let recipient_org = if bounded(&mut v, "recipient", &r.recipient) {
            v.take(
                "recipient",
                cosell_platform::names::parse_two(&r.recipient, "organizations", "users"),
            )
            .map(|(org, _)| org)
        } else {
            None
        };
        if let (Some(run), Some(user)) = (run_org, recipient_org)
            && run != user
        {
            v.add("recipient", "is not a user of the run's organization");
        }
        for (field, n) in [
            ("total", r.total),
            ("migrated", r.migrated),
            ("failed", r.failed),
        ] {
            if n < 0 {
                v.add(field, format!("must not be negative (got {n})"));
            }
        }
        let finished = r
            .finish_time
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
        if finished.is_none() {
            v.add("finish_time", "is required (a valid time)");
        }
        v.finish()?;
        let created = self
            .store
            .write_notification_once(&NewNotification {
                recipient: r.recipient.clone(),
                kind: NotificationKind::MigrationFinished,
                subject: r.run.clone(),
                summary: migration_summary(r.total, r.migrated, r.failed),
                event_position: 0,
                time: finished.expect("checked"),
            })
            .await?;
        Ok(pb::NotifyDealMigrationFinishedResponse { created })
    }
}

/// "your deal migration run finished: 950 of 1000 deals migrated, 50 failed".
fn migration_summary(total: i64, migrated: i64, failed: i64) -> String {
    let deals = if total == 1 { "deal" } else { "deals" };
    format!(
        "{}: {migrated} of {total} {deals} migrated, {failed} failed",
        NotificationKind::MigrationFinished.says()
    )
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn list_notifications(
        &self,
        req: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        DOMAIN.respond(self.0.list_notifications(req).await)
    }

    async fn mark_notifications_read(
        &self,
        req: Request<pb::MarkNotificationsReadRequest>,
    ) -> Result<Response<pb::MarkNotificationsReadResponse>, Status> {
        DOMAIN.respond(self.0.mark_notifications_read(req).await)
    }

    async fn notify_deal_migration_finished(
        &self,
        req: Request<pb::NotifyDealMigrationFinishedRequest>,
    ) -> Result<Response<pb::NotifyDealMigrationFinishedResponse>, Status> {
        DOMAIN.respond(self.0.notify_deal_migration_finished(req).await)
    }
}
