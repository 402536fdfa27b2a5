//! The gRPC adapter: who is calling and what they may see ([`Actor`], [`Deals::readable`]), the
//! one place deals errors become statuses, and the services:
//!
//! - [`referrals`]: `ReferralService` (partners' referrals, verbs, favorites, engagements,
//!   the migration import).
//! - [`cosell`]: `CoSellService` (the platform sellers' queue and inbound referrals).
//! - [`catalog`]: `CatalogService` (solutions).
//! - [`cutover`]: `CutoverService` (each partner organization's cut-over switch, SPEC 5.5).
//! - [`insights`]: `InsightsService` (an organization's figures, SPEC 3.7).
//! - [`events`]: `EventService` (the change feed, SPEC 3.6).
//! - [`notifications`]: `NotificationService` (each user's notifications).
//! - [`convert`]: request checks (proto -> domain, with field violations) and responses.
//!
//! Here too: [`Deals::mutate`], the write loop of every change to existing referrals (load,
//! check the etag, apply the caller's rule, [`change::settle`], store, retry on a lost race:
//! D9), and [`Deals::now`], the adapter's one reading of the clock.

pub mod catalog;
pub mod convert;
pub mod cosell;
pub mod cutover;
pub mod events;
pub mod insights;
pub mod notifications;
pub mod referrals;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
pub use cosell_platform::auth::Actor;
use cosell_platform::auth::actor::User;
use cosell_platform::auth::{AccessClient, caller};
use cosell_platform::clock::SharedClock;
use cosell_platform::error::FieldViolation;
use cosell_platform::{ApiError, Domain};
use cosell_proto::identity::Role;
use tonic::Request;
use uuid::Uuid;

use crate::domain::change::Change;
use crate::domain::event::{self, Cause, EventKind};
use crate::domain::rules::RuleError;
use crate::domain::{Party, Referral, Timing, change};
use crate::store::feed::NewEvent;
use crate::store::{Store, StoreError};
use crate::upstream::Upstream;

/// `ErrorInfo.domain` of every deals error.
pub const DOMAIN: Domain = Domain("deals.cosell");

/// The roles that read and write a partner's referrals.
pub const REFERRAL_ROLES: &[Role] = &[Role::ReferralsAdmin, Role::ReferralsUser];

pub struct Deals {
    pub store: Store,
    pub access: Arc<AccessClient>,
    pub upstream: Upstream,
    /// How long a NEW referral waits for an answer before it expires (SPEC D2).
    pub expiry: Duration,
    /// How long before its expiry a waiting referral is announced (D2).
    pub expiry_notice: Duration,
    /// How long the feed keeps events (SPEC 3.6).
    pub event_retention: Duration,
    /// Where every "now" of the service comes from (a `ManualClock` in tests, so that expiry
    /// is tested without waiting).
    pub clock: SharedClock,
    /// The open change-feed watches per principal (bounded).
    pub watches: events::Watches,
    /// Turns true when the server shuts down: the open watches end with UNAVAILABLE.
    pub streams_end: tokio::sync::watch::Sender<bool>,
    /// The watches' shared reader of the feed's new events.
    pub tail: crate::tail::Tail,
    /// Turns for `ImportReferrals`: a bounded number at once, whoever calls.
    pub imports: referrals::import::ImportTurns,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(db) => ApiError::storage(&db),
            other => ApiError::internal(other),
        }
    }
}

/// The one mapping of rule refusals to API errors.
pub fn rule_error(e: RuleError, field_prefix: &str) -> ApiError {
    match e {
        RuleError::Closed => ApiError::failed_precondition(
            "REFERRAL_CLOSED",
            "the referral is closed; a closed referral cannot be changed",
        ),
        RuleError::NotAllowed { reason, message } => ApiError::failed_precondition(reason, message),
        RuleError::Missing(missing) => {
            let names: Vec<&str> = missing.iter().map(|m| m.0).collect();
            let mut err = ApiError::failed_precondition(
                "REQUIRED_FIELDS_MISSING",
                format!("complete the referral first; missing: {}", names.join(", ")),
            );
            for (field, description) in missing {
                err = err.with_precondition("REQUIRED_FIELD", field, description);
            }
            err
        }
        RuleError::Invalid(field, description) => {
            ApiError::invalid_field(format!("{field_prefix}{field}"), description)
        }
        RuleError::Fields(fields) => ApiError::invalid_argument(
            fields
                .into_iter()
                .map(|(field, description)| FieldViolation {
                    field: format!("{field_prefix}{field}"),
                    description,
                })
                .collect(),
        ),
    }
}

pub fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found(format!("referrals/{id}"))
}

impl Deals {
    /// The API's one reading of the clock, to the microsecond (see [`crate::domain::now`]).
    pub fn now(&self) -> DateTime<Utc> {
        crate::domain::truncate(self.clock.now())
    }

    /// Now, with how long a referral that starts waiting now waits (D2).
    pub fn timing(&self) -> Timing {
        Timing {
            now: self.now(),
            expiry: self.expiry,
        }
    }

    /// Who is calling, with the grants they hold now.
    pub async fn actor<T>(&self, req: &Request<T>) -> Result<Actor, ApiError> {
        self.access.actor(caller(req)?).await
    }

    /// Whether `actor` may see `r`. Partners see their organization's referrals within their
    /// location scope; platform users see the platform's referrals and what partners shared
    /// (never PRIVATE). Everything else is `NOT_FOUND`, so that nobody learns what exists.
    pub fn readable(&self, actor: &Actor, r: &Referral) -> Result<(), ApiError> {
        match actor {
            Actor::Member(User {
                organization,
                grants,
                ..
            }) => {
                if r.party != Party::Partner || r.organization != *organization {
                    return Err(not_found(r.id));
                }
                match grants.locations_for(REFERRAL_ROLES) {
                    None => Ok(()),
                    Some(locations) if locations.is_empty() => Err(ApiError::permission_denied(
                        "MISSING_ROLE",
                        "referrals need ROLE_REFERRALS_ADMIN or ROLE_REFERRALS_USER",
                    )),
                    Some(locations) => {
                        if r.mpn_location
                            .as_ref()
                            .is_some_and(|m| locations.contains(m))
                        {
                            Ok(())
                        } else {
                            Err(not_found(r.id))
                        }
                    }
                }
            }
            Actor::Platform(_) => {
                if r.party == Party::Platform || r.deal_type.shared() {
                    Ok(())
                } else {
                    Err(not_found(r.id))
                }
            }
            Actor::Service(_) => Err(ApiError::permission_denied(
                "USERS_ONLY",
                "this method is for users",
            )),
        }
    }

    /// Whether `actor` may change the partner referral `r` (its own organization's, in scope).
    pub fn writable(&self, actor: &Actor, r: &Referral) -> Result<(), ApiError> {
        self.readable(actor, r)?;
        match actor {
            Actor::Member(_) => Ok(()),
            _ => Err(ApiError::permission_denied(
                "PARTNER_ONLY",
                "only the partner's referrals admins and users change a partner referral",
            )),
        }
    }

    /// Loads a referral the actor may see.
    pub async fn load(&self, actor: &Actor, id: Uuid) -> Result<Referral, ApiError> {
        let r = self.store.get(id).await?.ok_or_else(|| not_found(id))?;
        self.readable(actor, &r)?;
        Ok(r)
    }

    /// The other party's referral of the engagement, if any (the latest, when a declined
    /// co-sell request was sent again).
    pub async fn peer(&self, r: &Referral) -> Result<Option<Referral>, ApiError> {
        Ok(self
            .store
            .engagement(r.engagement)
            .await?
            .into_iter()
            .rfind(|p| p.party != r.party))
    }

    /// Changes a referral and its peer by `change` (authorization and a domain rule) until the
    /// write lands (D9): with an etag, a write that lost a race answers `ABORTED`; without one
    /// it retries on the fresh state. `change` may also put a new peer in place (an upgrade to
    /// CO_SELL creates the platform's referral). What is written is [`change::settle`]'s.
    pub async fn mutate<F>(
        &self,
        actor: &Actor,
        id: Uuid,
        etag: &str,
        change: F,
    ) -> Result<Referral, ApiError>
    where
        F: Fn(&mut Referral, &mut Option<Referral>) -> Result<(), ApiError>,
    {
        self.mutate_as(actor, id, etag, Cause::Command, change)
            .await
    }

    /// [`Deals::mutate`], for a change whose event is named by why it is made rather than by
    /// what it did (`Cause::Registration` for the deal-registration verbs).
    pub async fn mutate_as<F>(
        &self,
        actor: &Actor,
        id: Uuid,
        etag: &str,
        cause: Cause,
        change: F,
    ) -> Result<Referral, ApiError>
    where
        F: Fn(&mut Referral, &mut Option<Referral>) -> Result<(), ApiError>,
    {
        let principal = actor.principal();
        for _ in 0..MAX_ATTEMPTS {
            let current = self.load(actor, id).await?;
            let peer = self.peer(&current).await?;
            let mut next = current.clone();
            let mut next_peer = peer.clone();
            // The change (its authorization and its rule) is asked first: a caller who may not
            // make it learns that, not that the referral moved on since its read.
            change(&mut next, &mut next_peer)?;
            check_etag(etag, &current)?;
            let changes = change::settle(current, &mut next, peer, next_peer, self.now());
            let events = self.events(&changes, cause, &principal);
            if changes.is_empty() || self.store.save(&changes, &events).await? {
                return Ok(next);
            }
            if !etag.is_empty() {
                return Err(stale());
            }
        }
        Err(ApiError::aborted(
            "CONTENTION",
            "the referral is being changed by many writers at once; try again",
        ))
    }
}

impl Deals {
    /// Ends the open watches (with UNAVAILABLE, so that clients resume elsewhere with their
    /// cursor): call it when the server starts shutting down.
    pub fn end_streams(&self) {
        self.streams_end.send_replace(true);
    }

    /// The process's shutdown signal (SIGTERM or Ctrl-C), which ends the open watches when it
    /// comes.
    pub fn shutdown_signal(self: &Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        let deals = self.clone();
        async move {
            cosell_platform::server::shutdown_signal().await;
            deals.end_streams();
        }
    }

    /// The feed's events of `changes` (SPEC 3.6): one per referral written, with the referral
    /// as it is after the change.
    pub fn events(&self, changes: &[Change], cause: Cause, actor: &str) -> Vec<NewEvent> {
        changes
            .iter()
            .map(|c| {
                let (kind, changed_fields) = event::derive(c, cause);
                event_of(&c.after, kind, changed_fields, actor, c.after.update_time)
            })
            .collect()
    }
}

/// An event of `r` as it is now.
pub fn event_of(
    r: &Referral,
    kind: EventKind,
    changed_fields: Vec<String>,
    actor: &str,
    time: DateTime<Utc>,
) -> NewEvent {
    use prost::Message;
    NewEvent {
        kind,
        referral: r.id,
        organization: r.organization,
        mpn_location: r.mpn_location.clone(),
        party: r.party,
        shared: r.party == Party::Platform || r.deal_type.shared(),
        actor: actor.to_owned(),
        time,
        changed_fields,
        snapshot: convert::referral_pb(r, false).encode_to_vec(),
    }
}

/// Tries of a write without etag before giving up under contention.
const MAX_ATTEMPTS: usize = 100;

fn stale() -> ApiError {
    ApiError::aborted(
        "ETAG_MISMATCH",
        "the referral changed since you read it; read it again and reapply your change",
    )
}

/// A stale etag is refused (D9); an empty one means "whatever is current".
pub fn check_etag(etag: &str, r: &Referral) -> Result<(), ApiError> {
    if etag.is_empty() || etag == r.etag() {
        Ok(())
    } else {
        Err(stale())
    }
}
