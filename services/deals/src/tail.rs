//! The watches' shared reader: one task per process reads the change feed's new events once
//! and hands each batch to every open watch (`api::events`), which keeps the events its caller
//! may see ([`Visibility::admits`], the condition of the watch's own queries), each event
//! converted for the wire once. Without it each watch queried the database for every batch the
//! sequencer numbered and decoded every event itself, and with 16 watches the writers paid.
//!
//! A batch says which positions it covers (`after`, `through`], so that a watch knows it
//! missed nothing: a watch that fell behind by more than [`HELD`] batches, or that sees a batch
//! starting past what it read, reads the database from its cursor until it catches up. Memory
//! is bounded: the channel holds at most [`HELD`] batches of at most [`BATCH`] events (4,096
//! events, about 7 MB with their referrals), however many watches and however slow their
//! clients. A burst of events (a migration's) fills the channel while slow watches lag, and the
//! allocator keeps what the process once held: with batches of 500 that was 16,000 events,
//! 29 MB of the deals service's 58 MB peak heap in a soak (heaptrack, 2026-12-07).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use cosell_proto::deals as pb;

use crate::api::Deals;
use crate::api::events::watch_message;
use crate::store::feed::{StoredEvent, Visibility};

/// Events read per batch.
const BATCH: u64 = 128;
/// Batches held for the watches that have not taken them yet.
pub const HELD: usize = 32;
/// How often the reader looks for events numbered by another replica.
const POLL: Duration = Duration::from_millis(500);

/// An event as read (without its snapshot) and as watches send it, converted once for all.
#[derive(Debug)]
pub struct LiveEvent {
    pub event: StoredEvent,
    pub message: Result<pb::WatchEventsResponse, tonic::Status>,
}

/// The events numbered after position `after`, through position `through`, in order.
#[derive(Debug)]
pub struct Batch {
    pub after: i64,
    pub through: i64,
    pub events: Vec<LiveEvent>,
}

impl Batch {
    /// The events of this batch after `cursor` that `who` may see.
    pub fn visible<'a>(
        &'a self,
        who: &'a Visibility,
        cursor: i64,
    ) -> impl Iterator<Item = &'a LiveEvent> {
        self.events
            .iter()
            .filter(move |e| e.event.position > cursor && who.admits(&e.event))
    }
}

/// The channel of the shared reader's batches.
#[derive(Debug)]
pub struct Tail(broadcast::Sender<Arc<Batch>>);

impl Default for Tail {
    fn default() -> Self {
        Self(broadcast::channel(HELD).0)
    }
}

impl Tail {
    /// The batches read from now on (subscribe before reading the database, so that nothing
    /// numbered after that read is missed).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.0.subscribe()
    }
}

/// Reads the feed for the watches while there are any, until the server shuts down.
pub fn spawn(deals: Arc<Deals>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ending = deals.streams_end.subscribe();
        let mut head = deals.store.feed().head.subscribe();
        // Where the next read starts; `None` while nobody watches (nothing is read then, and
        // the first watch makes the reader start from the feed's head).
        let mut after: Option<i64> = None;
        loop {
            if *ending.borrow() {
                return;
            }
            head.borrow_and_update();
            let watching = deals.tail.0.receiver_count() > 0;
            let mut full = false;
            match (watching, after) {
                (false, _) => after = None,
                // The first watch: start at the head, and tell the watches where (an empty
                // batch), so that one that read less than that catches up from the database.
                (true, None) => match deals.store.feed_head().await {
                    Ok(h) => {
                        after = Some(h);
                        let _ = deals.tail.0.send(Arc::new(Batch {
                            after: h,
                            through: h,
                            events: Vec::new(),
                        }));
                    }
                    Err(e) => tracing::warn!(error = ?e, "reading the feed's head failed"),
                },
                (true, Some(from)) => {
                    match deals
                        .store
                        .events_after(&Visibility::All, from, BATCH)
                        .await
                    {
                        Ok(events) => {
                            if let Some(through) = events.last().map(|e| e.position) {
                                full = events.len() as u64 == BATCH;
                                after = Some(through);
                                let events = events
                                    .into_iter()
                                    .map(|mut event| LiveEvent {
                                        message: watch_message(&event),
                                        event: {
                                            event.snapshot = Vec::new();
                                            event
                                        },
                                    })
                                    .collect();
                                let batch = Batch {
                                    after: from,
                                    through,
                                    events,
                                };
                                let _ = deals.tail.0.send(Arc::new(batch));
                            }
                        }
                        Err(e) => tracing::warn!(error = ?e, "reading the feed failed"),
                    }
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = head.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = ending.wait_for(|end| *end) => return,
            }
        }
    })
}
