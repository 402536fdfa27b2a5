//! `cosell.deals.v1.EventService`: the change feed (SPEC 3.6). `ListEvents` pages through it,
//! `WatchEvents` follows it: the backlog after the cursor, then live events.
//!
//! Who sees what is GetReferral's rule ([`Deals::readable`]) as a condition of the query
//! ([`Visibility`]), never a filter in memory. A cursor is an event's position (opaque to
//! clients); the store numbers events only once committed, so a reader resuming after a
//! cursor gets every later event exactly once and in order (`store::feed`).
//!
//! A watch is a task of its own that reads its backlog from the database, then takes the live
//! events from the process's shared reader ([`crate::tail`]), and hands them to the client
//! through a small channel: a slow client makes it wait, never buffer, so its memory is
//! bounded whatever the client does (a watch that falls behind the shared reader goes back
//! to the database). It ends with UNAVAILABLE when the server shuts down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cosell_platform::auth::actor::User;
use cosell_platform::{ApiError, Violations};
use cosell_proto::deals::{self as pb, event_service_server::EventService};
use prost::Message;
use tonic::{Request, Response, Status};

use super::{Actor, DOMAIN, Deals, REFERRAL_ROLES};
use crate::domain::event::EventKind;
use crate::store::feed::{StoredEvent, Visibility};

/// Default and largest page of ListEvents.
const DEFAULT_PAGE: u64 = 100;
const MAX_PAGE: u64 = 1_000;
/// Events a watch reads from the database at once.
const WATCH_PAGE: u64 = 200;
/// Events a watch holds for a client that has not taken them yet.
const WATCH_BUFFER: usize = 16;
/// Open watches per principal: one integration cannot hold the server's tasks.
pub const MAX_WATCHES_PER_PRINCIPAL: usize = 16;

pub struct EventApi(pub Arc<Deals>);

/// The open watches per principal.
#[derive(Debug, Default)]
pub struct Watches(Mutex<HashMap<String, usize>>);

/// One open watch, counted until dropped.
struct WatchSlot {
    deals: Arc<Deals>,
    principal: String,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self
            .deals
            .watches
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.principal) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.principal);
            }
        }
    }
}

/// An event's cursor: its position, opaque.
pub fn cursor(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("p{position}"))
}

fn parse_cursor(text: &str) -> Result<i64, String> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix('p').and_then(|n| n.parse::<i64>().ok()))
        .filter(|n| *n >= 0)
        .ok_or_else(|| "is not a cursor of this feed (pass an event's `cursor`)".to_owned())
}

fn kind_pb(k: EventKind) -> pb::EventKind {
    match k {
        EventKind::Created => pb::EventKind::Created,
        EventKind::Updated => pb::EventKind::Updated,
        EventKind::StatusChanged => pb::EventKind::StatusChanged,
        EventKind::InvitationAccepted => pb::EventKind::InvitationAccepted,
        EventKind::InvitationDeclined => pb::EventKind::InvitationDeclined,
        EventKind::ExpiringSoon => pb::EventKind::ExpiringSoon,
        EventKind::Expired => pb::EventKind::Expired,
        EventKind::Migrated => pb::EventKind::Migrated,
        EventKind::RegistrationChanged => pb::EventKind::RegistrationChanged,
    }
}

/// An event as the contract shows it.
pub fn event_pb(e: &StoredEvent) -> Result<pb::ReferralEvent, ApiError> {
    let referral = pb::Referral::decode(e.snapshot.as_slice())
        .map_err(|err| ApiError::internal(format!("event {}: {err}", e.position)))?;
    Ok(pb::ReferralEvent {
        cursor: cursor(e.position),
        kind: kind_pb(e.kind).into(),
        event_time: Some(prost_types::Timestamp {
            seconds: e.time.timestamp(),
            nanos: e.time.timestamp_subsec_nanos() as i32,
        }),
        changed_fields: e.changed_fields.clone(),
        referral: Some(referral),
        actor: e.actor.clone(),
    })
}

/// What a watch sends for `e`.
pub fn watch_message(e: &StoredEvent) -> Result<pb::WatchEventsResponse, Status> {
    event_pb(e)
        .map(|event| pb::WatchEventsResponse { event: Some(event) })
        .map_err(|e| DOMAIN.status(e))
}

impl Deals {
    /// Whose events `actor` may read under `parent`: `organizations/{id}` (its own, within
    /// its location scope) for a partner, `platform` for platform users.
    async fn feed_visibility(&self, actor: &Actor, parent: &str) -> Result<Visibility, ApiError> {
        match actor {
            Actor::Member(User {
                organization,
                grants,
                ..
            }) => {
                let org = cosell_platform::names::parse_one(parent, "organizations")
                    .map_err(|e| ApiError::invalid_field("parent", e))?;
                if org != *organization {
                    return Err(ApiError::not_found(parent));
                }
                let locations = grants.locations_for(REFERRAL_ROLES);
                if locations.as_ref().is_some_and(Vec::is_empty) {
                    return Err(ApiError::permission_denied(
                        "MISSING_ROLE",
                        "the feed needs ROLE_REFERRALS_ADMIN or ROLE_REFERRALS_USER",
                    ));
                }
                Ok(Visibility::Partner {
                    organization: org,
                    locations,
                })
            }
            Actor::Platform(_) if parent == "platform" => Ok(Visibility::Platform),
            Actor::Platform(_) => Err(ApiError::invalid_field(
                "parent",
                "platform users follow the feed `platform`",
            )),
            Actor::Service(_) => Err(ApiError::permission_denied(
                "USERS_ONLY",
                "this method is for users",
            )),
        }
    }

    /// The position after `after` (empty: `empty`), refused when older than the retention.
    async fn feed_start(&self, after: &str, empty: i64) -> Result<i64, ApiError> {
        if after.is_empty() {
            return Ok(empty);
        }
        let mut v = Violations::new();
        let position = v.take("after", parse_cursor(after));
        v.finish()?;
        let position = position.expect("checked");
        if position < self.store.pruned_through().await? {
            return Err(ApiError::new(
                tonic::Code::OutOfRange,
                "CURSOR_EXPIRED",
                "the events after this cursor are older than the feed keeps; \
                 start again from an empty cursor",
            ));
        }
        Ok(position)
    }

    pub async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<pb::ListEventsResponse, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let size = match r.page_size {
            n if n < 0 => {
                return Err(ApiError::invalid_field(
                    "page_size",
                    format!("must not be negative (got {n})"),
                ));
            }
            0 => DEFAULT_PAGE,
            n => (n as u64).min(MAX_PAGE),
        };
        let who = self.feed_visibility(&actor, &r.parent).await?;
        let after = self.feed_start(&r.after, 0).await?;
        // What was committed before this call is in the answer (writers do not wait for it).
        self.store.sequence().await?;
        let events = self.store.events_after(&who, after, size).await?;
        let next_cursor = match events.last() {
            Some(e) => cursor(e.position),
            None => r.after.clone(),
        };
        Ok(pb::ListEventsResponse {
            events: events.iter().map(event_pb).collect::<Result<_, _>>()?,
            next_cursor,
        })
    }

    async fn watch_events(
        self: Arc<Self>,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<WatchStream, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let who = self.feed_visibility(&actor, &r.parent).await?;
        // A watch from now starts after every change committed before it.
        self.store.sequence().await?;
        let head = self.store.feed_head().await?;
        let after = self.feed_start(&r.after, head).await?;
        let principal = actor.principal();
        {
            let mut open = self.watches.0.lock().unwrap_or_else(|p| p.into_inner());
            let n = open.entry(principal.clone()).or_default();
            if *n >= MAX_WATCHES_PER_PRINCIPAL {
                return Err(ApiError::resource_exhausted(
                    "TOO_MANY_WATCHES",
                    format!(
                        "at most {MAX_WATCHES_PER_PRINCIPAL} watches at once per caller; \
                         end one first"
                    ),
                    Duration::from_secs(5),
                ));
            }
            *n += 1;
        }
        let slot = WatchSlot {
            deals: self.clone(),
            principal,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        let ending = self.streams_end.subscribe();
        tokio::spawn(async move {
            let _slot = slot;
            let end = self.follow(&who, after, &tx, ending).await;
            // The client's last message says why; a client that stopped reading is not waited
            // for long (nor at all at shutdown, when the server's drain time counts).
            let wait = match end.code {
                tonic::Code::Unavailable => Duration::ZERO,
                _ => Duration::from_secs(1),
            };
            let _ = tokio::time::timeout(wait, tx.send(Err(DOMAIN.status(end)))).await;
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    /// Sends `who`'s events after position `after` to `tx` until the client goes (`Ok`) or
    /// the watch must end (the error the client gets). Reads the database until it has caught
    /// up, then takes the shared reader's batches ([`crate::tail`]); back to the database when
    /// it fell behind them.
    async fn follow(
        &self,
        who: &Visibility,
        mut after: i64,
        tx: &tokio::sync::mpsc::Sender<Result<pb::WatchEventsResponse, Status>>,
        mut ending: tokio::sync::watch::Receiver<bool>,
    ) -> ApiError {
        let shut = || {
            ApiError::unavailable(
                "SHUTTING_DOWN",
                "the server is shutting down; watch again with your last cursor",
            )
        };
        'database: loop {
            // Subscribed before reading, so that every batch read after this read reaches us.
            let mut live = self.tail.subscribe();
            // Every event numbered through `covered` that `who` may see has been sent.
            let mut covered;
            loop {
                if *ending.borrow() {
                    return shut();
                }
                let head = match self.store.feed_head().await {
                    Ok(head) => head,
                    Err(e) => return e.into(),
                };
                let page = match self.store.events_after(who, after, WATCH_PAGE).await {
                    Ok(page) => page,
                    Err(e) => return e.into(),
                };
                for e in &page {
                    tokio::select! {
                        sent = tx.send(watch_message(e)) => if sent.is_err() { return gone() },
                        _ = ending.wait_for(|end| *end) => return shut(),
                    }
                    after = e.position;
                }
                if (page.len() as u64) < WATCH_PAGE {
                    covered = head.max(after);
                    break;
                }
            }
            loop {
                let batch = tokio::select! {
                    batch = live.recv() => batch,
                    _ = tx.closed() => return gone(),
                    _ = ending.wait_for(|end| *end) => return shut(),
                };
                let batch = match batch {
                    Ok(batch) => batch,
                    // Fell behind the shared reader: the database has what it dropped.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        continue 'database;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return shut(),
                };
                if batch.after > covered {
                    continue 'database;
                }
                for e in batch.visible(who, after) {
                    tokio::select! {
                        sent = tx.send(e.message.clone()) => if sent.is_err() { return gone() },
                        _ = ending.wait_for(|end| *end) => return shut(),
                    }
                    after = e.event.position;
                }
                covered = covered.max(batch.through);
            }
        }
    }
}

/// The client went away: nothing to tell it.
fn gone() -> ApiError {
    ApiError::new(
        tonic::Code::Cancelled,
        "CLIENT_GONE",
        "the client ended the watch",
    )
}

type WatchStream = tokio_stream::wrappers::ReceiverStream<Result<pb::WatchEventsResponse, Status>>;

#[tonic::async_trait]
impl EventService for EventApi {
    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        DOMAIN.respond(self.0.list_events(req).await)
    }

    type WatchEventsStream = WatchStream;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        DOMAIN.respond(self.0.clone().watch_events(req).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        for p in [0, 1, 12_345, i64::MAX] {
            assert_eq!(parse_cursor(&cursor(p)), Ok(p));
        }
        for bad in ["", "12", "cDE=", "!!", &URL_SAFE_NO_PAD.encode("p-1")] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
