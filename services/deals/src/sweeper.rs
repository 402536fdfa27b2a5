//! The sweeper (D2): on every replica, every `--deals-sweep-interval`, it announces the
//! waiting referrals that expire within `--deals-expiry-notice` (an EXPIRING_SOON event, once
//! per referral), expires those past their expiry time, prunes the feed's events past the
//! retention, and numbers events a dead process committed but never numbered.
//!
//! Several replicas sweep the same database safely: an expiry is a change like any other
//! (`change::settle`, then `Store::save`, conditional on the version read), so of two
//! sweepers one writes it and the other finds it closed; a notice is a row with the
//! referral's id as key, written with its event in one transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cosell_platform::ApiError;

use crate::api::{Deals, event_of};
use crate::domain::event::{Cause, EventKind};
use crate::domain::{Stage, Waiting, change, rules};

/// Referrals read per query of a pass.
const BATCH: u64 = 500;
/// Referrals expired concurrently.
const EXPIRE_AT_ONCE: usize = 16;
/// Who the feed says made the sweeper's changes.
pub const SYSTEM_ACTOR: &str = "system";

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub announced: u64,
    pub expired: u64,
    pub pruned: u64,
}

impl Deals {
    /// One pass of the sweeper at the clock's now.
    pub async fn sweep_once(&self) -> Result<Swept, ApiError> {
        let now = self.now();
        let mut swept = Swept::default();
        // Announce first: a referral announced and expired in one pass (a sweeper that was
        // down) still tells its people it is going.
        loop {
            let batch = self
                .store
                .waiting_until(Some(now), now + self.expiry_notice, true, BATCH)
                .await?;
            for r in &batch {
                let event = event_of(r, EventKind::ExpiringSoon, Vec::new(), SYSTEM_ACTOR, now);
                swept.announced += u64::from(self.store.notice_expiring(&event).await?);
            }
            if (batch.len() as u64) < BATCH {
                break;
            }
        }
        loop {
            let batch = self.store.waiting_until(None, now, false, BATCH).await?;
            let mut progressed = false;
            // A few at once: each is a few round trips, and they touch different rows.
            for chunk in batch.chunks(EXPIRE_AT_ONCE) {
                let done =
                    futures::future::join_all(chunk.iter().map(|r| self.expire(r.id, now))).await;
                for expired in done {
                    if expired? {
                        swept.expired += 1;
                        progressed = true;
                    }
                }
            }
            // A full batch that another sweeper took from under us: read the next one.
            if (batch.len() as u64) < BATCH || !progressed {
                break;
            }
        }
        // Numbered first (what a writer left, or what a dead process did not), so that an
        // old event still waiting for its number is pruned with those of its time.
        self.store.sequence_orphans().await?;
        swept.pruned = self.store.prune_events(now - self.event_retention).await?;
        Ok(swept)
    }

    /// Expires referral `id` if it is still waiting and due at `now`: `false` when another
    /// writer (a sweeper on another replica, an answer) came first.
    async fn expire(&self, id: uuid::Uuid, now: DateTime<Utc>) -> Result<bool, ApiError> {
        for _ in 0..3 {
            let Some(current) = self.store.get(id).await? else {
                return Ok(false);
            };
            let due = current.expire_time.is_some_and(|t| t <= now);
            if current.stage != Stage::New(Waiting::Received) || !due {
                return Ok(false);
            }
            let peer = self.peer(&current).await?;
            let (mut next, mut next_peer) = (current.clone(), peer.clone());
            if rules::expire(&mut next, next_peer.as_mut(), now).is_err() {
                return Ok(false);
            }
            let changes = change::settle(current, &mut next, peer, next_peer, now);
            let events = self.events(&changes, Cause::Expiry, SYSTEM_ACTOR);
            if self.store.save(&changes, &events).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Deals {
    /// For `cosell serve --demo`: moves waiting referral `name`'s expiry time to `at`, through
    /// the change path (an UPDATED event naming `expire_time`), so that the demo shows the
    /// sweeper's real work on referrals that would otherwise wait 14 days.
    pub async fn backdate_expiry(&self, name: &str, at: DateTime<Utc>) -> Result<(), ApiError> {
        let id = crate::api::convert::parse_referral_name(name)
            .map_err(|e| ApiError::invalid_field("name", e))?;
        let current = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| crate::api::not_found(id))?;
        let mut next = current.clone();
        next.expire_time = Some(at);
        let changes = change::settle(current, &mut next, None, None, self.now());
        let mut events = self.events(&changes, Cause::Command, SYSTEM_ACTOR);
        for e in &mut events {
            e.changed_fields = vec!["expire_time".into()];
        }
        self.store.save(&changes, &events).await?;
        Ok(())
    }
}

/// Runs [`Deals::sweep_once`] every `interval` (the first one interval after start, when the
/// replica is up) until the server shuts down.
pub fn spawn(deals: Arc<Deals>, interval: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ending = deals.streams_end.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = ending.wait_for(|end| *end) => return,
            }
            if let Err(e) = deals.sweep_once().await {
                tracing::warn!(error = ?e, "expiry sweep failed; trying again next interval");
            }
        }
    })
}
