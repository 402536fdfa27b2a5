//! The gRPC adapter: `cosell.migration.v1.MigrationService`, who may call it, and the one place
//! migration errors become statuses.
//!
//! - [`imports`]: `ImportPscExport` (the upload) and `ListPscImports`.
//! - [`accounts`]: the MPN check (`GetMpnCheck`, `CorrectMpnAssociation`).
//! - [`wizard`]: the user migration wizard (`ListUserMigration`, `RunUserMigration`).
//! - [`deals`]: the deal migration (status, start, watch, report).
//! - [`readiness`]: `ListDealReadiness`, what each deal will lack and how its customer links.
//! - [`report`]: the report as one CSV file, streamed (`DownloadDealMigrationReport`).
//! - [`cutover`]: `GetCutover`, `UpdateCutover`.
//!
//! Each RPC is a method of [`Migration`] that answers with an [`ApiError`]; the trait
//! implementation below turns them into statuses.

mod accounts;
mod cutover;
mod deals;
mod imports;
mod readiness;
mod report;
mod wizard;

use std::sync::Arc;

use cosell_platform::auth::{AccessClient, Actor, ServiceToken, caller};
use cosell_platform::telemetry::TracedChannel;
use cosell_platform::{ApiError, Domain, Violations};
use cosell_proto::deals as dpb;
use cosell_proto::identity as ipb;
use cosell_proto::identity::Role;
use cosell_proto::migration::{self as pb, migration_service_server::MigrationService};
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::store::{Store, StoreError};

/// `ErrorInfo.domain` of every migration error.
pub const DOMAIN: Domain = Domain("migration.cosell");

/// Who may import and view: account admins and org-wide referrals admins.
const VIEW_ROLES: &[Role] = &[Role::AccountAdmin, Role::ReferralsAdmin];

pub struct Migration {
    pub store: Store,
    pub access: Arc<AccessClient>,
    /// Identity's organizations (MPN lookups), called with `token`.
    pub organizations: ipb::organization_service_client::OrganizationServiceClient<TracedChannel>,
    /// Identity, for users and roles (the user migration, the assigned sellers), called with
    /// `token`.
    pub identity: TracedChannel,
    /// The platform organization's name, once asked (see [`crate::sellers`]).
    pub platform: tokio::sync::OnceCell<String>,
    /// The deals service's catalog (product -> solution mapping), called with `token`.
    pub catalog: dpb::catalog_service_client::CatalogServiceClient<TracedChannel>,
    /// The deals service's referrals (the import of migrated deals), called with `token`.
    pub referrals: dpb::referral_service_client::ReferralServiceClient<TracedChannel>,
    /// The deals service's cut-over switches (SPEC 5.5), called with `token`: the deals
    /// service routes by them, so it holds them.
    pub cutovers: dpb::cutover_service_client::CutoverServiceClient<TracedChannel>,
    /// The deals service's notifications (a finished run, told to whoever started it), called
    /// with `token`.
    pub notifications: dpb::notification_service_client::NotificationServiceClient<TracedChannel>,
    /// The PSC timeline (read-only from, access ends), from configuration.
    pub timeline: (chrono::NaiveDate, chrono::NaiveDate),
    /// This replica's deal migration worker: its lease owner id, and whether it is stopping.
    pub worker_id: String,
    /// How long a worker's lease on a batch holds.
    pub lease: chrono::Duration,
    /// An upload that sends nothing for this long is cancelled.
    pub upload_idle: std::time::Duration,
    pub stopping: std::sync::atomic::AtomicBool,
    /// Turns true when the server shuts down: open watches and report downloads end then (a
    /// graceful shutdown waits for every open stream, and a watch lasts as long as its run).
    pub streams_end: tokio::sync::watch::Sender<bool>,
    /// The directory (customer matching), called with `token`.
    pub directory:
        cosell_proto::directory::directory_service_client::DirectoryServiceClient<TracedChannel>,
    pub token: Arc<ServiceToken>,
}

/// Another service did not answer (or failed): `UNAVAILABLE`, so that the caller retries.
pub(crate) fn upstream(service: &str, s: &tonic::Status) -> ApiError {
    ApiError::unavailable(
        "UPSTREAM_UNAVAILABLE",
        format!("the {service} service did not answer: {}", s.message()),
    )
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(db) => ApiError::storage(&db),
            other => ApiError::internal(other),
        }
    }
}

/// A deal migration run's resource name.
pub(crate) fn run_name(organization: impl std::fmt::Display, run: &str) -> String {
    format!("organizations/{organization}/dealMigrationRuns/{run}")
}

pub(crate) fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

impl Migration {
    /// The organization named by `field`, if the caller may import into and view it.
    async fn authorize<T>(
        &self,
        req: &Request<T>,
        field: &str,
        name: &str,
    ) -> Result<Uuid, ApiError> {
        self.authorize_roles(req, field, name, VIEW_ROLES).await
    }

    /// The organization named by `field`, if the caller holds one of `roles` over all of it.
    async fn authorize_roles<T>(
        &self,
        req: &Request<T>,
        field: &str,
        name: &str,
        roles: &[Role],
    ) -> Result<Uuid, ApiError> {
        let mut v = Violations::new();
        let org = v.take(
            field,
            cosell_platform::names::parse_one(name, "organizations"),
        );
        v.finish()?;
        let org = org.expect("checked");
        let caller = caller(req)?;
        self.access
            .require(caller, org, roles, None, name)
            .await
            .map_err(|e| {
                if e.code == tonic::Code::PermissionDenied {
                    ApiError::permission_denied(
                        "MISSING_ROLE",
                        format!(
                            "this needs {} over the entire organization",
                            cosell_platform::auth::access::role_names(roles)
                        ),
                    )
                } else {
                    e
                }
            })?;
        Ok(org)
    }

    /// Whether the caller is a platform operator (or, with `any_platform_user`, any platform
    /// user); their email.
    async fn platform_caller<T>(
        &self,
        req: &Request<T>,
        any_platform_user: bool,
    ) -> Result<Option<String>, ApiError> {
        Ok(match self.access.actor(caller(req)?).await? {
            Actor::Platform(u) if any_platform_user || u.is_operator() => Some(u.email),
            _ => None,
        })
    }

    pub fn identity_users(&self) -> ipb::user_service_client::UserServiceClient<TracedChannel> {
        ipb::user_service_client::UserServiceClient::new(self.identity.clone())
    }

    pub fn identity_roles(&self) -> ipb::role_service_client::RoleServiceClient<TracedChannel> {
        ipb::role_service_client::RoleServiceClient::new(self.identity.clone())
    }
}

/// The service, as mounted on a server.
pub struct Api(pub Arc<Migration>);

impl std::ops::Deref for Api {
    type Target = Migration;

    fn deref(&self) -> &Migration {
        &self.0
    }
}

/// Every request reaches its handler with each field within its documented limit: the codec of
/// `cosell_proto::limits` checked it as it decoded it.
#[tonic::async_trait]
impl MigrationService for Api {
    async fn import_psc_export(
        &self,
        req: Request<Streaming<pb::ImportPscExportRequest>>,
    ) -> Result<Response<pb::ImportPscExportResponse>, Status> {
        DOMAIN.respond(self.0.import_psc_export(req).await)
    }

    async fn list_psc_imports(
        &self,
        req: Request<pb::ListPscImportsRequest>,
    ) -> Result<Response<pb::ListPscImportsResponse>, Status> {
        DOMAIN.respond(self.0.list_psc_imports(req).await)
    }

    async fn get_mpn_check(
        &self,
        req: Request<pb::GetMpnCheckRequest>,
    ) -> Result<Response<pb::GetMpnCheckResponse>, Status> {
        DOMAIN.respond(self.0.get_mpn_check(req).await)
    }

    async fn correct_mpn_association(
        &self,
        req: Request<pb::CorrectMpnAssociationRequest>,
    ) -> Result<Response<pb::CorrectMpnAssociationResponse>, Status> {
        DOMAIN.respond(self.0.correct_mpn_association(req).await)
    }

    async fn get_deal_migration_status(
        &self,
        req: Request<pb::GetDealMigrationStatusRequest>,
    ) -> Result<Response<pb::GetDealMigrationStatusResponse>, Status> {
        DOMAIN.respond(self.0.get_deal_migration_status(req).await)
    }

    async fn list_deal_readiness(
        &self,
        req: Request<pb::ListDealReadinessRequest>,
    ) -> Result<Response<pb::ListDealReadinessResponse>, Status> {
        DOMAIN.respond(self.0.list_deal_readiness(req).await)
    }

    async fn list_user_migration(
        &self,
        req: Request<pb::ListUserMigrationRequest>,
    ) -> Result<Response<pb::ListUserMigrationResponse>, Status> {
        DOMAIN.respond(self.0.list_user_migration(req).await)
    }

    async fn run_user_migration(
        &self,
        req: Request<pb::RunUserMigrationRequest>,
    ) -> Result<Response<pb::RunUserMigrationResponse>, Status> {
        DOMAIN.respond(self.0.run_user_migration(req).await)
    }

    async fn start_deal_migration(
        &self,
        req: Request<pb::StartDealMigrationRequest>,
    ) -> Result<Response<pb::StartDealMigrationResponse>, Status> {
        DOMAIN.respond(self.0.start_deal_migration(req).await)
    }

    async fn list_deal_migration_report(
        &self,
        req: Request<pb::ListDealMigrationReportRequest>,
    ) -> Result<Response<pb::ListDealMigrationReportResponse>, Status> {
        DOMAIN.respond(self.0.list_deal_migration_report(req).await)
    }

    type WatchDealMigrationStream = deals::WatchStream;

    async fn watch_deal_migration(
        &self,
        req: Request<pb::WatchDealMigrationRequest>,
    ) -> Result<Response<Self::WatchDealMigrationStream>, Status> {
        DOMAIN.respond(Migration::watch_deal_migration(self.0.clone(), req).await)
    }

    type DownloadDealMigrationReportStream = report::ReportStream;

    async fn download_deal_migration_report(
        &self,
        req: Request<pb::DownloadDealMigrationReportRequest>,
    ) -> Result<Response<Self::DownloadDealMigrationReportStream>, Status> {
        DOMAIN.respond(Migration::download_deal_migration_report(self.0.clone(), req).await)
    }

    async fn get_cutover(
        &self,
        req: Request<pb::GetCutoverRequest>,
    ) -> Result<Response<pb::GetCutoverResponse>, Status> {
        DOMAIN.respond(self.0.get_cutover(req).await)
    }

    async fn update_cutover(
        &self,
        req: Request<pb::UpdateCutoverRequest>,
    ) -> Result<Response<pb::UpdateCutoverResponse>, Status> {
        DOMAIN.respond(self.0.update_cutover(req).await)
    }
}
