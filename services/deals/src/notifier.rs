//! The notifications' deriver: follows the change feed with a durable position
//! (`feed_state.notified_through`) and writes each event's notifications
//! ([`crate::domain::notify::recipients`]), so that a change is never slowed by looking up
//! who to tell. The recipients are the organization's referrals roles, asked of identity once
//! per organization per batch. Replicas all run it; the position moves only from where it was
//! read (a conditional write with the batch's notifications), so each event is told once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cosell_platform::ApiError;
use cosell_proto::deals as pb;
use prost::Message;

use crate::api::Deals;
use crate::domain::Party;
use crate::domain::event::EventKind;
use crate::domain::notify::{Holder, Subject, recipients, told_sender, why};
use crate::store::feed::Visibility;
use crate::store::notifications::NewNotification;
use crate::sweeper::SYSTEM_ACTOR;
use crate::upstream::RoleHolder;

/// Events read per batch.
const BATCH: u64 = 200;
/// How often an idle deriver looks for other replicas' events.
const POLL: Duration = Duration::from_secs(1);
/// The least time between two batches that were not full: under a stream of changes the
/// deriver takes many events per batch (one identity call, one write) instead of one or two.
const PAUSE: Duration = Duration::from_millis(250);

impl Deals {
    /// Derives the notifications of the next batch of events; how many events it consumed (0:
    /// none waiting, or another replica took them).
    pub async fn notify_once(&self) -> Result<usize, ApiError> {
        let from = self.store.notified_through().await?;
        let events = self
            .store
            .events_after(&Visibility::All, from, BATCH)
            .await?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(0);
        };
        let mut roles: HashMap<uuid::Uuid, Vec<RoleHolder>> = HashMap::new();
        let mut rows = Vec::new();
        // Inbound referrals created in this batch, with their senders; and what senders are
        // told (the referral, why, its name and display name, the event).
        let mut senders: Vec<(uuid::Uuid, String)> = Vec::new();
        let mut for_senders = Vec::new();
        for e in &events {
            // Partners' referrals tell partners' users (and an Inbound referral's sender); the
            // platform's side tells nobody of its own.
            if e.party != Party::Partner {
                continue;
            }
            let r = pb::Referral::decode(e.snapshot.as_slice())
                .map_err(|err| ApiError::internal(format!("event {}: {err}", e.position)))?;
            let inbound = r.direction() == pb::Direction::Inbound;
            if inbound && e.kind == EventKind::Created && e.actor != SYSTEM_ACTOR {
                senders.push((e.referral, e.actor.clone()));
            }
            let declined =
                r.status() == pb::Status::Closed && r.substatus() == pb::Substatus::Declined;
            if let Some(kind) = told_sender(e.kind, declined).filter(|_| inbound) {
                for_senders.push((e.referral, kind, r.name.clone(), r.display_name.clone(), e));
            }
            let subject = Subject {
                mpn_location: e.mpn_location.as_deref(),
                team: r.team.iter().map(|c| c.email.to_lowercase()).collect(),
                inbound_waiting: inbound && r.substatus() == pb::Substatus::Received,
            };
            // Most events tell nobody: no need to ask identity who holds the roles.
            if why(e.kind, &subject).is_none() {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = roles.entry(e.organization) {
                slot.insert(self.upstream.referral_roles(e.organization).await?);
            }
            let holders: Vec<Holder<'_>> = roles[&e.organization]
                .iter()
                .map(|h| Holder {
                    user: &h.user,
                    email: &h.email,
                    admin: h.admin,
                    location: h.location.as_deref(),
                })
                .collect();
            for (kind, user) in recipients(e.kind, &subject, &holders) {
                rows.push(NewNotification {
                    recipient: user.to_owned(),
                    kind,
                    subject: r.name.clone(),
                    summary: format!("{}: {}", r.display_name, kind.says()),
                    event_position: e.position,
                    time: e.time,
                });
            }
        }
        if !for_senders.is_empty() {
            let ids: Vec<uuid::Uuid> = for_senders.iter().map(|t| t.0).collect();
            let mut known = self.store.inbound_senders(&ids).await?;
            known.extend(senders.iter().cloned());
            for (referral, kind, name, display_name, e) in for_senders {
                if let Some(sender) = known.get(&referral) {
                    rows.push(NewNotification {
                        recipient: sender.clone(),
                        kind,
                        subject: name,
                        summary: format!("{display_name}: {}", kind.says()),
                        event_position: e.position,
                        time: e.time,
                    });
                }
            }
        }
        if self
            .store
            .write_notifications(&rows, &senders, from, last)
            .await?
        {
            Ok(events.len())
        } else {
            Ok(0)
        }
    }
}

/// Runs the deriver until the server shuts down: at once when this process numbers events,
/// and every second for the other replicas'.
pub fn spawn(deals: Arc<Deals>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ending = deals.streams_end.subscribe();
        let mut head = deals.store.feed().head.subscribe();
        loop {
            match deals.notify_once().await {
                Ok(n) if n as u64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "deriving notifications failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(PAUSE) => {}
                _ = ending.wait_for(|end| *end) => return,
            }
            tokio::select! {
                _ = head.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = ending.wait_for(|end| *end) => return,
            }
        }
    })
}
