//! The deals service (`cosell.deals.v1`): partners' referrals and the engagements that group
//! them with the platform's, co-selling with platform sellers, favorites, the solutions catalog
//! and the import of deals migrated from PSC (SPEC 3.1-3.5, 3.9).
//!
//! - [`api`]: the gRPC handlers, one folder or file per service, and authorization.
//! - [`domain`]: referrals and their rules (D1-D10), without I/O: how each way in starts an
//!   engagement ([`domain::create`]), the lifecycle verbs ([`domain::rules`]), field updates
//!   ([`domain::update`]), and a change as it is written ([`domain::change`]).
//! - [`store`]: the database (referrals, idempotency keys, favorites, solutions).
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
pub mod store;
pub mod upstream;

use std::sync::Arc;

use cosell_platform::auth::{AccessClient, ServiceToken};
use cosell_platform::clock::Clock;
use cosell_platform::server::ServiceSet;
use cosell_proto::deals as pb;
use tonic::transport::Channel;

pub use api::Deals;
use store::Store;
use upstream::Upstream;

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// Days a NEW referral waits for an answer (SPEC D2).
    pub expiry_days: i64,
    /// Where "now" comes from: the system's clock, or a test's, which moves time instead of
    /// sleeping (the 72-hour rule of deal registration, 3.8).
    pub clock: Arc<dyn Clock>,
}

impl Config {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            expiry_days: 14,
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
        expiry: chrono::Duration::days(config.expiry_days),
        clock: config.clock.clone(),
    });
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
