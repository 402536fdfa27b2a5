//! The migration service (`cosell.migration.v1`, SPEC 5): PSC export import, the MPN check, the
//! user and deal migration wizards, cut-over.
//!
//! - [`psc`]: reading a PSC bulk export bundle (`../shared/docs/PSC-EXPORT.md`) into typed
//!   records, with every problem reported by file, line, column, id and reason.
//! - [`store`]: the database: each organization's imported snapshot and import history, user
//!   migration outcomes, deal migration runs and results. (The cut-over switch is the deals
//!   service's, which routes by it; `api::cutover` reads and flips it there.)
//! - [`eligibility`]: which deals migrate, and what each will lack (SPEC 5.4).
//! - [`users`]: the user migration wizard (SPEC 5.3).
//! - [`runs`]: deal migration runs and the worker every replica runs.
//! - [`mapping`]: what a PSC deal becomes (the referral sent to the deals service).
//! - [`customers`]: each deal's customer linked to the directory (its `MatchEntities`).
//! - [`sellers`]: whether a deal's assigned seller is an enabled platform seller (identity).
//! - [`upload`]: an uploaded export spooled to disk (and unzipped) for the reader.
//! - [`api`]: the gRPC handlers and authorization.
//!
//! [`start`] opens the database (running its migrations), starts this replica's deal migration
//! worker and returns the services for a server; [`Migration::release`] gives the worker's
//! leased deals and its imports' locks back at shutdown.

pub mod api;
mod customers;
pub mod eligibility;
mod mapping;
pub mod psc;
pub mod runs;
pub mod sellers;
pub mod store;
pub mod upload;
pub mod users;

use std::sync::Arc;

use cosell_platform::auth::{AccessClient, ServiceToken};
use cosell_platform::server::ServiceSet;
use cosell_proto::migration as pb;
use tonic::transport::Channel;

pub use api::Migration;

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// The PSC timeline shown with the cut-over: read-only from, access ends.
    pub psc_read_only_from: chrono::NaiveDate,
    pub psc_access_ends: chrono::NaiveDate,
    /// How long a worker's lease on a batch of deals holds: a replica that dies mid-batch
    /// holds its deals this long before another replica (or itself, restarted) takes them.
    pub lease: std::time::Duration,
}

impl Config {
    /// The seed's timeline: PSC read-only from 2021-04-01, access ends 2021-04-30.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            psc_read_only_from: chrono::NaiveDate::from_ymd_opt(2021, 4, 1).expect("a date"),
            psc_access_ends: chrono::NaiveDate::from_ymd_opt(2021, 4, 30).expect("a date"),
            lease: runs::DEFAULT_LEASE,
        }
    }
}

/// What a deployment may tune beyond [`Config`]: apart from it so that callers that build a
/// `Config` field by field keep building.
#[derive(Debug, Clone)]
pub struct Options {
    /// An upload that sends nothing for this long is cancelled, and nothing of it imported.
    pub upload_idle: std::time::Duration,
}

/// How long an upload may send nothing, unless configured.
pub const DEFAULT_UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for Options {
    fn default() -> Self {
        Self {
            upload_idle: DEFAULT_UPLOAD_IDLE,
        }
    }
}

/// How the migration service reaches the others: identity, the deals service, and its own
/// service token (issued by identity).
pub struct Links {
    pub identity: Channel,
    pub deals: Channel,
    pub directory: Channel,
    pub token: Arc<ServiceToken>,
}

/// What [`start`] gives: the services for a server, and the migration service itself (to
/// end its watches and give its leases back at shutdown), as every service's `start` does.
pub struct Started {
    pub services: ServiceSet,
    pub migration: Arc<Migration>,
}

/// Opens the database (running its migrations) and returns the services for a server.
pub async fn start(config: &Config, links: Links) -> Result<Started, sea_orm::DbErr> {
    start_with(config, &Options::default(), links).await
}

/// [`start`] with `options`.
pub async fn start_with(
    config: &Config,
    options: &Options,
    links: Links,
) -> Result<Started, sea_orm::DbErr> {
    // Bulk statements over tables that grow by a whole export at a time (see Planning).
    let db = cosell_platform::db::connect_and_migrate_with::<store::migration::Migrator>(
        &config.database_url,
        cosell_platform::db::Planning::EachExecution,
    )
    .await?;
    let migration = Arc::new(Migration {
        store: store::Store::new(db),
        access: Arc::new(AccessClient::new(
            links.identity.clone(),
            links.token.clone(),
        )),
        organizations:
            cosell_proto::identity::organization_service_client::OrganizationServiceClient::new(
                links.identity.clone().into(),
            ),
        catalog: cosell_proto::deals::catalog_service_client::CatalogServiceClient::new(
            links.deals.clone().into(),
        ),
        referrals: cosell_proto::deals::referral_service_client::ReferralServiceClient::new(
            links.deals.clone().into(),
        ),
        cutovers: cosell_proto::deals::cutover_service_client::CutoverServiceClient::new(
            links.deals.clone().into(),
        ),
        notifications:
            cosell_proto::deals::notification_service_client::NotificationServiceClient::new(
                links.deals.into(),
            ),
        directory: cosell_proto::directory::directory_service_client::DirectoryServiceClient::new(
            links.directory.into(),
        ),
        identity: links.identity.clone().into(),
        platform: tokio::sync::OnceCell::new(),
        token: links.token,
        worker_id: uuid::Uuid::now_v7().to_string(),
        timeline: (config.psc_read_only_from, config.psc_access_ends),
        lease: chrono::Duration::from_std(config.lease).unwrap_or(chrono::Duration::MAX),
        upload_idle: options.upload_idle,
        stopping: std::sync::atomic::AtomicBool::new(false),
        streams_end: tokio::sync::watch::channel(false).0,
    });
    runs::spawn_worker(migration.clone());
    let mut set = ServiceSet::default();
    let m = migration.clone();
    set.add("cosell.migration.v1.MigrationService", move |r| {
        r.add_service(
            pb::migration_service_server::MigrationServiceServer::new(api::Api(m))
                .max_decoding_message_size(8 * 1024 * 1024),
        );
    });
    set.descriptor_sets.push(pb::FILE_DESCRIPTOR_SET);
    // An export of a million deals takes longer to upload and write than any other call.
    set.long_running_methods
        .push("/cosell.migration.v1.MigrationService/ImportPscExport");
    // The same import for callers that send the `.zip` as one HTTP POST (docs/http.md).
    set.http_uploads
        .push(cosell_platform::server::connect::upload::HttpUpload {
            path: "/upload/psc-export",
            method: "/cosell.migration.v1.MigrationService/ImportPscExport",
            chunk: "chunk",
            fixed: &[("file_name", "psc-export.zip")],
            query: &["organization"],
        });
    Ok(Started {
        services: set,
        migration,
    })
}
