//! The deals service (`cosell.deals.v1`): partners' referrals and the engagements that group
//! them with the platform's, co-selling with platform sellers, favorites, the solutions catalog,
//! the import of deals migrated from PSC, expiry, the change feed, notifications, insights, deal
//! registration and the cut-over switch (SPEC 3.1-3.9, 5.5).
//!
//! - [`api`]: the gRPC handlers, one folder or file per service, and authorization.
//! - [`domain`]: referrals and their rules (D1-D10), without I/O: how each way in starts an
//!   engagement ([`domain::create`]), the lifecycle verbs ([`domain::rules`]), field updates
//!   ([`domain::update`]), and a change as it is written ([`domain::change`]).
//! - [`store`]: the database (referrals, idempotency keys, favorites, solutions, the change
//!   feed and its sequencer, notifications, insights, registrations, the cut-over).
//! - [`notifier`]: each user's notifications, derived from the feed in the background.
//! - [`sweeper`]: expiry (D2) and the feed's retention, on every replica.
//! - [`tail`]: the change feed's new events, read once per process for every open watch.
//! - [`upstream`]: the directory (customers) and identity (MPN IDs), with the service's token.
//!
//! Every RPC reads the same way: parse the request ([`api::convert`]), authorize, look up what
//! the rule needs, apply a domain rule, store, convert the answer. For example
//! `cosell.deals.v1.ReferralService/CreateReferral`: `api::referrals::ReferralApi` hands it to
//! `Deals::create_referral` in `api/referrals/create.rs`, which parses with `draft`, checks D7
//! with `domain::create::ensure_cosell_ready`, applies `domain::create::outbound`, and stores
//! through `Deals::insert` and `Store::insert`. Changes of existing referrals all go through
//! `Deals::mutate`, [`domain::change::settle`] and `Store::save`.
//!
//! [`start`] opens the database (running its migrations) and returns the services for a server.
//! The demo data of `cosell serve --demo` is made through this API by the `cosell` binary.

pub mod api;
pub mod domain;
pub mod notifier;
pub mod store;
pub mod sweeper;
pub mod tail;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use cosell_platform::clock::SharedClock;
use cosell_platform::duration::to_chrono;

use cosell_platform::auth::{AccessClient, ServiceToken};
use cosell_platform::server::ServiceSet;
use cosell_proto::deals as pb;
use tonic::transport::Channel;

pub use api::Deals;
use store::Store;
use upstream::Upstream;

/// How often the insights' counters take in the changes appended since (the figures are exact
/// meanwhile; this bounds how many deltas a GetInsights adds up).
const INSIGHTS_FOLD: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// How long a NEW referral waits for an answer before it expires (SPEC D2).
    pub expiry: Duration,
    /// How long before its expiry a waiting referral is announced as expiring soon (D2).
    pub expiry_notice: Duration,
    /// How often the sweeper looks for referrals to expire or announce.
    pub sweep_interval: Duration,
    /// How long events are kept in the change feed (SPEC 3.6).
    pub event_retention: Duration,
    /// Where "now" comes from: the system's clock, or a `ManualClock` in tests.
    pub clock: SharedClock,
}

impl Config {
    pub fn new(database_url: impl Into<String>) -> Self {
        const DAY: u64 = 86_400;
        Self {
            database_url: database_url.into(),
            expiry: Duration::from_secs(14 * DAY),
            expiry_notice: Duration::from_secs(3 * DAY),
            sweep_interval: Duration::from_secs(60),
            event_retention: Duration::from_secs(30 * DAY),
            clock: cosell_platform::clock::system(),
        }
    }
}

/// How deals reaches the other services: identity (access checks, MPN lookups, its own token)
/// and the directory.
pub struct Links {
    pub identity: Channel,
    pub directory: Channel,
    pub token: Arc<ServiceToken>,
}

pub struct Started {
    pub services: ServiceSet,
    pub deals: Arc<Deals>,
}

pub async fn start(config: &Config, links: Links) -> Result<Started, sea_orm::DbErr> {
    let db = cosell_platform::db::connect_and_migrate::<store::migration::Migrator>(
        &config.database_url,
    )
    .await?;
    let deals = Arc::new(Deals {
        store: Store::new(db),
        access: Arc::new(AccessClient::new(
            links.identity.clone(),
            links.token.clone(),
        )),
        upstream: Upstream::new(links.identity, links.directory, links.token),
        expiry: to_chrono(config.expiry),
        expiry_notice: to_chrono(config.expiry_notice),
        event_retention: to_chrono(config.event_retention),
        clock: config.clock.clone(),
        watches: Default::default(),
        streams_end: tokio::sync::watch::channel(false).0,
        tail: Default::default(),
        imports: Default::default(),
    });
    let (store, ending) = (deals.store.clone(), deals.streams_end.subscribe());
    tokio::spawn(async move { store.run_sequencer(ending).await });
    let (store, ending) = (deals.store.clone(), deals.streams_end.subscribe());
    tokio::spawn(async move { store.run_insight_folder(INSIGHTS_FOLD, ending).await });
    sweeper::spawn(deals.clone(), config.sweep_interval);
    notifier::spawn(deals.clone());
    tail::spawn(deals.clone());
    Ok(Started {
        services: service_set(deals.clone()),
        deals,
    })
}

/// The deals services, ready for a server.
pub fn service_set(deals: Arc<Deals>) -> ServiceSet {
    let mut set = ServiceSet::default();
    let d = deals.clone();
    set.add("cosell.deals.v1.ReferralService", move |r| {
        r.add_service(pb::referral_service_server::ReferralServiceServer::new(
            api::referrals::ReferralApi(d),
        ));
    });
    let d = deals.clone();
    set.add("cosell.deals.v1.CoSellService", move |r| {
        r.add_service(pb::co_sell_service_server::CoSellServiceServer::new(
            api::cosell::CoSellApi(d),
        ));
    });
    let d = deals.clone();
    set.add("cosell.deals.v1.EventService", move |r| {
        r.add_service(pb::event_service_server::EventServiceServer::new(
            api::events::EventApi(d),
        ));
    });
    let d = deals.clone();
    set.add("cosell.deals.v1.NotificationService", move |r| {
        r.add_service(
            pb::notification_service_server::NotificationServiceServer::new(
                api::notifications::NotificationApi(d),
            ),
        );
    });
    let d = deals.clone();
    set.add("cosell.deals.v1.CatalogService", move |r| {
        r.add_service(pb::catalog_service_server::CatalogServiceServer::new(
            api::catalog::CatalogApi(d),
        ));
    });
    let d = deals.clone();
    set.add("cosell.deals.v1.CutoverService", move |r| {
        r.add_service(pb::cutover_service_server::CutoverServiceServer::new(
            api::cutover::CutoverApi(d),
        ));
    });
    set.add("cosell.deals.v1.InsightsService", move |r| {
        r.add_service(pb::insights_service_server::InsightsServiceServer::new(
            api::insights::InsightsApi(deals),
        ));
    });
    set.descriptor_sets.push(pb::FILE_DESCRIPTOR_SET);
    set
}

/// The deals flags `cosell-deals` and `cosell serve` share (expiry, the sweeper, the feed's
/// retention); durations are written `30s`, `10m`, `2h`, `14d`.
#[derive(Debug, Clone, clap::Args)]
pub struct DealsArgs {
    /// How long a NEW referral waits for an answer before it expires (D2).
    #[arg(long, env = "COSELL_DEALS_EXPIRY", default_value = "14d", value_parser = cosell_platform::duration::parse)]
    pub deals_expiry: Duration,
    /// How long before its expiry a waiting referral is announced as expiring soon.
    #[arg(long, env = "COSELL_DEALS_EXPIRY_NOTICE", default_value = "3d", value_parser = cosell_platform::duration::parse)]
    pub deals_expiry_notice: Duration,
    /// How often the sweeper expires and announces referrals (and prunes old events).
    #[arg(long, env = "COSELL_DEALS_SWEEP_INTERVAL", default_value = "1m", value_parser = cosell_platform::duration::parse)]
    pub deals_sweep_interval: Duration,
    /// How long events are kept in the change feed; an older cursor is OUT_OF_RANGE.
    #[arg(long, env = "COSELL_DEALS_EVENT_RETENTION", default_value = "30d", value_parser = cosell_platform::duration::parse)]
    pub deals_event_retention: Duration,
}

impl DealsArgs {
    pub fn apply(&self, config: &mut Config) {
        config.expiry = self.deals_expiry;
        config.expiry_notice = self.deals_expiry_notice;
        // A zero interval would spin.
        config.sweep_interval = self.deals_sweep_interval.max(Duration::from_secs(1));
        config.event_retention = self.deals_event_retention;
    }
}
