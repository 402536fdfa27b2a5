//! The gRPC adapter: `cosell.migration.v1.MigrationService`, who may call it, and the one place
//! migration errors become statuses.

use std::sync::Arc;

use cosell_platform::auth::{AccessClient, ServiceToken, caller};
use cosell_platform::{ApiError, Violations};
use cosell_proto::deals as dpb;
use cosell_proto::identity as ipb;
use cosell_proto::identity::Role;
use cosell_proto::migration::{self as pb, migration_service_server::MigrationService};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::eligibility::{Facts, Ineligible, eligibility, missing_fields};
use crate::psc::Issue;
use crate::store::{ImportSummary, StartRefused, Store, StoreError};

/// `ErrorInfo.domain` of every migration error.
pub const DOMAIN: &str = "migration.cosell";

/// Who may import and view: account admins and org-wide referrals admins.
const VIEW_ROLES: &[Role] = &[Role::AccountAdmin, Role::ReferralsAdmin];

pub struct Migration {
    pub store: Store,
    pub access: Arc<AccessClient>,
    /// Identity's organizations (MPN lookups), called with `token`.
    pub organizations: ipb::organization_service_client::OrganizationServiceClient<Channel>,
    /// Identity, for users and roles (the user migration), called with `token`.
    pub identity: Channel,
    /// The deals service's catalog (product -> solution mapping), called with `token`.
    pub catalog: dpb::catalog_service_client::CatalogServiceClient<Channel>,
    /// The deals service's referrals (the import of migrated deals), called with `token`.
    pub referrals: dpb::referral_service_client::ReferralServiceClient<Channel>,
    /// The PSC timeline (read-only from, access ends), from configuration.
    pub timeline: (chrono::NaiveDate, chrono::NaiveDate),
    /// This replica's deal migration worker: its lease owner id, and whether it is stopping.
    pub worker_id: String,
    /// How long a worker's lease on a batch holds.
    pub lease: chrono::Duration,
    pub stopping: std::sync::atomic::AtomicBool,
    /// Turns true when the server shuts down: open watches end then (a graceful shutdown
    /// waits for every open stream, and a watch lasts as long as its run).
    pub streams_end: tokio::sync::watch::Sender<bool>,
    /// The directory (customer matching), called with `token`.
    pub directory:
        cosell_proto::directory::directory_service_client::DirectoryServiceClient<Channel>,
    pub token: Arc<ServiceToken>,
}

/// How often a watch reads the run's counts.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// A whole status is counted over the whole snapshot: a watch does that at its start, at the
/// run's end and every this many reads, and in between follows the run's counts only.
const WATCH_FULL_EVERY: u32 = 120;

/// Deals read per page while scanning a snapshot.
const SCAN_PAGE: u64 = 1000;

/// Another service did not answer (or failed): `UNAVAILABLE`, so that the caller retries.
pub(crate) fn upstream(service: &str, s: &tonic::Status) -> ApiError {
    ApiError::unavailable(
        "UPSTREAM_UNAVAILABLE",
        format!("the {service} service did not answer: {}", s.message()),
    )
}

fn status(e: ApiError) -> Status {
    e.into_status(DOMAIN)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

fn issue_pb(i: &Issue) -> pb::PscIssue {
    pb::PscIssue {
        file: i.file.clone(),
        line: i.line as i64,
        column: i.column.clone(),
        id: i.id.clone(),
        reason: i.reason.clone(),
    }
}

fn import_pb(org: Uuid, at: chrono::DateTime<chrono::Utc>, s: &ImportSummary) -> pb::PscImport {
    pb::PscImport {
        name: format!("organizations/{org}/pscImports/{}", s.id),
        create_time: Some(prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        }),
        accounts: s.accounts as i64,
        users: s.users as i64,
        deals_added: s.deals_added as i64,
        deals_updated: s.deals_updated as i64,
        deals_unchanged: s.deals_unchanged as i64,
        products: s.products as i64,
        team_members: s.team_members as i64,
        errors: s.errors.iter().map(issue_pb).collect(),
        warnings: s.warnings.iter().map(issue_pb).collect(),
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

    /// Where `mpn_id` stands for `organization` (SPEC 5.2), with the reason when it fails.
    async fn association(
        &self,
        organization: Uuid,
        mpn_id: &str,
    ) -> Result<(pb::MpnAssociation, String), ApiError> {
        let req = self
            .token
            .request(ipb::LookupMpnIdRequest {
                mpn_id: mpn_id.to_owned(),
            })
            .await?;
        let found = match self.organizations.clone().lookup_mpn_id(req).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                ipb::LookupMpnIdResponse::default()
            }
            Err(s) => {
                return Err(upstream("identity", &s));
            }
        };
        let remedy = "an account admin corrects the association (CorrectMpnAssociation) to the organization's vOrg MPN ID or one of its locations";
        if !found.exists {
            return Ok((
                pb::MpnAssociation::Invalid,
                format!("MPN ID {mpn_id} is not known to the platform; {remedy}"),
            ));
        }
        if found.organization != cosell_platform::names::organization(organization) {
            return Ok((
                pb::MpnAssociation::Invalid,
                format!("MPN ID {mpn_id} belongs to another organization; {remedy}"),
            ));
        }
        Ok(match ipb::MpnIdKind::try_from(found.kind) {
            Ok(ipb::MpnIdKind::Location) => (pb::MpnAssociation::Location, String::new()),
            _ => (pb::MpnAssociation::Vorg, String::new()),
        })
    }

    /// Whether each PSC account's MPN association holds (account id -> holds).
    async fn associations(
        &self,
        organization: Uuid,
    ) -> Result<std::collections::HashMap<String, bool>, ApiError> {
        let mut out = std::collections::HashMap::new();
        for (account, corrected) in self.store.accounts(organization).await? {
            let id = account.id.clone();
            let checked = self.psc_account(organization, account, corrected).await?;
            out.insert(
                id,
                checked.association != pb::MpnAssociation::Invalid as i32,
            );
        }
        Ok(out)
    }

    /// The catalog's legacy product ids and the solution each maps to (`solutions/{id}`), among
    /// the solutions a referral may carry.
    pub async fn product_map(&self) -> Result<std::collections::HashMap<String, String>, ApiError> {
        let mut map = std::collections::HashMap::new();
        let mut page_token = String::new();
        loop {
            let req = self
                .token
                .request(dpb::ListSolutionsRequest {
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await?;
            let page = self
                .catalog
                .clone()
                .list_solutions(req)
                .await
                .map_err(|s| upstream("deals", &s))?
                .into_inner();
            // Only what a referral may carry: platform SKUs, and co-sell-ready solutions.
            let attachable = |s: &dpb::Solution| {
                s.cosell_ready || s.kind == dpb::SolutionKind::PlatformSku as i32
            };
            for s in page.solutions.into_iter().filter(attachable) {
                for id in s.legacy_product_ids {
                    map.entry(id).or_insert_with(|| s.name.clone());
                }
            }
            if page.next_page_token.is_empty() {
                return Ok(map);
            }
            page_token = page.next_page_token;
        }
    }

    /// The organization's cut-over as the contract shows it.
    async fn cutover_pb(&self, org: Uuid) -> Result<pb::Cutover, ApiError> {
        let row = self.store.cutover(org).await?;
        Ok(pb::Cutover {
            name: format!("organizations/{org}/cutover"),
            routed_to_new_system: row.as_ref().is_some_and(|r| r.routed),
            switch_time: row.as_ref().map(|r| prost_types::Timestamp {
                seconds: r.switch_time.timestamp(),
                nanos: r.switch_time.timestamp_subsec_nanos() as i32,
            }),
            switched_by: row.map(|r| r.switched_by).unwrap_or_default(),
            psc_read_only_from: self.timeline.0.to_string(),
            psc_access_ends: self.timeline.1.to_string(),
        })
    }

    /// Whether the caller is a platform operator (or, with `any_platform_user`, any platform
    /// user); their email.
    async fn platform_caller<T>(
        &self,
        req: &Request<T>,
        any_platform_user: bool,
    ) -> Result<Option<String>, ApiError> {
        let caller = caller(req)?;
        let grants = self.access.grants(&caller.principal).await?;
        let operator = grants.has(Role::PlatformOperator);
        let platform = operator || grants.has(Role::PlatformSeller);
        Ok(((operator || (any_platform_user && platform))
            && caller.principal.organization().is_some())
        .then(|| caller.email.clone().unwrap_or_default()))
    }

    async fn run_pb(
        &self,
        org: Uuid,
        run: &crate::store::entities::deal_run::Model,
    ) -> Result<pb::DealMigrationRun, ApiError> {
        let (total, migrated, failed) = (run.total, run.migrated, run.failed);
        let pending = total - migrated - failed;
        let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos() as i32,
        };
        Ok(pb::DealMigrationRun {
            name: format!("organizations/{org}/dealMigrationRuns/{}", run.id),
            create_time: Some(ts(run.create_time)),
            finish_time: run.finish_time.map(ts),
            total,
            migrated,
            failed,
            pending,
        })
    }

    /// A watch's next status. Between whole counts (see [`WATCH_FULL_EVERY`]) only the run's
    /// counts are read, and the rest follows from them: a deal the run migrated since `last`
    /// left the eligible deals for the migrated ones. The run's end is always counted whole.
    async fn watched_status(
        &self,
        org: Uuid,
        last: Option<&pb::GetDealMigrationStatusResponse>,
        reads: u32,
    ) -> Result<pb::GetDealMigrationStatusResponse, ApiError> {
        let Some(last) = last.filter(|_| !reads.is_multiple_of(WATCH_FULL_EVERY)) else {
            return self.deal_status(org).await;
        };
        let Some(run) = self.store.latest_run(org).await? else {
            return self.deal_status(org).await;
        };
        let before = last.run.as_ref();
        if run.finish_time.is_some() || before.is_none_or(|b| !b.name.ends_with(&run.id)) {
            return self.deal_status(org).await;
        }
        let run = self.run_pb(org, &run).await?;
        let newly = run.migrated - before.map_or(0, |b| b.migrated);
        Ok(pb::GetDealMigrationStatusResponse {
            eligible: (last.eligible - newly).max(0),
            migrated: last.migrated + newly,
            run: Some(run),
            ..last.clone()
        })
    }

    /// The deal migration's banner: counts over the snapshot and the latest run.
    async fn deal_status(&self, org: Uuid) -> Result<pb::GetDealMigrationStatusResponse, ApiError> {
        // The run and the counts from one snapshot: the deals counted as migrated are those
        // the run's counts have (a watch goes on from them).
        let (run, fact_counts) = self.store.status_snapshot(org).await?;
        let run = match run {
            Some(r) => Some(self.run_pb(org, &r).await?),
            None => None,
        };
        let associations = self.associations(org).await?;
        let cutover = Some(self.cutover_pb(org).await?);
        let mut counts: std::collections::BTreeMap<Ineligible, i64> = Default::default();
        let (mut total, mut eligible, mut migrated) = (0i64, 0i64, 0i64);
        for c in fact_counts {
            total += c.deals;
            // A migrated deal counts as migrated, whatever a later export says of it.
            if c.migrated {
                migrated += c.deals;
                continue;
            }
            let holds = associations.get(&c.account_id).copied().unwrap_or(false);
            match eligibility(&c.facts, holds) {
                Ok(()) => eligible += c.deals,
                Err(reason) => *counts.entry(reason).or_default() += c.deals,
            }
        }
        let in_progress = run.as_ref().is_some_and(|r| r.finish_time.is_none());
        // After a run the banner shows it completed (with its report), and start stays
        // possible while eligible deals remain (failed ones, or new ones of a later export).
        let state = if in_progress {
            pb::DealMigrationState::InProgress
        } else if run.is_some() {
            pb::DealMigrationState::Completed
        } else if eligible > 0 {
            pb::DealMigrationState::NotStarted
        } else {
            pb::DealMigrationState::NothingToMigrate
        };
        Ok(pb::GetDealMigrationStatusResponse {
            state: state as i32,
            total,
            eligible,
            migrated,
            run,
            cutover,
            ineligible: counts
                .into_iter()
                .map(|(reason, deals)| pb::IneligibleCount {
                    reason: reason_pb(reason) as i32,
                    deals,
                })
                .collect(),
        })
    }

    pub fn identity_users(&self) -> ipb::user_service_client::UserServiceClient<Channel> {
        ipb::user_service_client::UserServiceClient::new(self.identity.clone())
    }

    pub fn identity_roles(&self) -> ipb::role_service_client::RoleServiceClient<Channel> {
        ipb::role_service_client::RoleServiceClient::new(self.identity.clone())
    }

    /// A PSC account with its MPN association checked.
    pub async fn psc_account(
        &self,
        organization: Uuid,
        account: crate::psc::files::Account,
        corrected: Option<String>,
    ) -> Result<pb::PscAccount, ApiError> {
        let mpn = corrected.clone().unwrap_or_else(|| account.mpn_id.clone());
        let (association, reason) = self.association(organization, &mpn).await?;
        Ok(pb::PscAccount {
            account_id: account.id,
            display_name: account.name,
            exported_mpn_id: account.mpn_id,
            corrected_mpn_id: corrected.unwrap_or_default(),
            mpn_id: mpn,
            association: association as i32,
            reason,
        })
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

#[tonic::async_trait]
impl MigrationService for Api {
    async fn import_psc_export(
        &self,
        req: Request<Streaming<pb::ImportPscExportRequest>>,
    ) -> Result<Response<pb::ImportPscExportResponse>, Status> {
        let caller = caller(&req).map_err(status)?.clone();
        let mut stream = req.into_inner();
        let result: Result<pb::PscImport, ApiError> = async {
            let first = stream
                .message()
                .await
                .map_err(|s| ApiError::invalid_field("chunk", s.message().to_owned()))?
                .ok_or_else(|| ApiError::invalid_field("organization", "the upload was empty"))?;
            // Authorize on the first message, before anything is buffered.
            let mut check = Request::new(());
            check.extensions_mut().insert(caller);
            let org = self
                .authorize(&check, "organization", &first.organization)
                .await?;
            let mut spool = crate::upload::Spool::new()?;
            let mut next = Some(first);
            while let Some(m) = next {
                spool.add(&m.file_name, &m.chunk).await?;
                next = stream
                    .message()
                    .await
                    .map_err(|s| ApiError::invalid_field("chunk", s.message().to_owned()))?;
            }
            let (files, warnings) = spool.finish().await?;
            let records = crate::psc::stream(files).await.map_err(|issues| {
                ApiError::invalid_argument(
                    issues
                        .iter()
                        .map(|i| cosell_platform::error::FieldViolation {
                            field: if i.column.is_empty() {
                                i.file.clone()
                            } else {
                                format!("{}:{}", i.file, i.column)
                            },
                            description: i.reason.clone(),
                        })
                        .collect(),
                )
            })?;
            let summary = self.store.import(org, records, warnings).await?;
            Ok(import_pb(org, chrono::Utc::now(), &summary))
        }
        .await;
        result
            .map(|import| {
                Response::new(pb::ImportPscExportResponse {
                    import: Some(import),
                })
            })
            .map_err(status)
    }

    async fn list_psc_imports(
        &self,
        req: Request<pb::ListPscImportsRequest>,
    ) -> Result<Response<pb::ListPscImportsResponse>, Status> {
        let parent = req.get_ref().parent.clone();
        let org = self
            .authorize(&req, "parent", &parent)
            .await
            .map_err(status)?;
        let imports = self
            .store
            .imports(org)
            .await
            .map_err(|e| status(e.into()))?;
        Ok(Response::new(pb::ListPscImportsResponse {
            imports: imports
                .iter()
                .map(|(at, s)| import_pb(org, *at, s))
                .collect(),
        }))
    }

    async fn get_mpn_check(
        &self,
        req: Request<pb::GetMpnCheckRequest>,
    ) -> Result<Response<pb::GetMpnCheckResponse>, Status> {
        let parent = req.get_ref().parent.clone();
        let result: Result<pb::GetMpnCheckResponse, ApiError> = async {
            let org = self.authorize(&req, "parent", &parent).await?;
            let mut accounts = Vec::new();
            for (account, corrected) in self.store.accounts(org).await? {
                accounts.push(self.psc_account(org, account, corrected).await?);
            }
            let invalid = accounts
                .iter()
                .filter(|a| a.association == pb::MpnAssociation::Invalid as i32)
                .count() as i64;
            Ok(pb::GetMpnCheckResponse { accounts, invalid })
        }
        .await;
        result.map(Response::new).map_err(status)
    }

    async fn correct_mpn_association(
        &self,
        req: Request<pb::CorrectMpnAssociationRequest>,
    ) -> Result<Response<pb::CorrectMpnAssociationResponse>, Status> {
        let r = req.get_ref().clone();
        let result: Result<pb::PscAccount, ApiError> = async {
            let org = self
                .authorize_roles(&req, "parent", &r.parent, &[Role::AccountAdmin])
                .await?;
            let mpn = cosell_platform::names::mpn_id(&r.mpn_id)
                .map_err(|e| ApiError::invalid_field("mpn_id", e))?;
            let mpn = mpn.as_str();
            let (association, reason) = self.association(org, mpn).await?;
            if association == pb::MpnAssociation::Invalid {
                return Err(ApiError::invalid_field("mpn_id", reason));
            }
            if !self.store.correct_mpn(org, &r.account_id, mpn).await? {
                return Err(ApiError::not_found(format!(
                    "PSC account `{}` of {}",
                    r.account_id, r.parent
                )));
            }
            let (account, corrected) = self
                .store
                .accounts(org)
                .await?
                .into_iter()
                .find(|(a, _)| a.id == r.account_id)
                .ok_or_else(|| ApiError::internal("corrected account vanished"))?;
            self.psc_account(org, account, corrected).await
        }
        .await;
        result
            .map(|account| {
                Response::new(pb::CorrectMpnAssociationResponse {
                    account: Some(account),
                })
            })
            .map_err(status)
    }

    async fn get_deal_migration_status(
        &self,
        req: Request<pb::GetDealMigrationStatusRequest>,
    ) -> Result<Response<pb::GetDealMigrationStatusResponse>, Status> {
        let parent = req.get_ref().parent.clone();
        let result: Result<pb::GetDealMigrationStatusResponse, ApiError> = async {
            let org = self.authorize(&req, "parent", &parent).await?;
            self.deal_status(org).await
        }
        .await;
        result.map(Response::new).map_err(status)
    }

    async fn list_deal_readiness(
        &self,
        req: Request<pb::ListDealReadinessRequest>,
    ) -> Result<Response<pb::ListDealReadinessResponse>, Status> {
        let r = req.get_ref().clone();
        let result: Result<pb::ListDealReadinessResponse, ApiError> = async {
            let org = self.authorize(&req, "parent", &r.parent).await?;
            let mut v = Violations::new();
            let size = v.take("page_size", cosell_platform::page::page_size(r.page_size));
            let query = format!("readiness|{}", r.parent);
            let after = v.take(
                "page_token",
                cosell_platform::page::decode(&r.page_token, &query),
            );
            v.finish()?;
            let size = size.unwrap_or(50).min(500) as usize;
            let associations = self.associations(org).await?;
            let products = self.product_map().await?;
            let mut deals = Vec::new();
            let mut after = after.flatten();
            let mut next_page_token = String::new();
            'scan: loop {
                let page = self
                    .store
                    .deals(org, after.as_deref(), SCAN_PAGE, true)
                    .await?;
                if page.is_empty() {
                    break;
                }
                for d in &page {
                    after = Some(d.deal.id.clone());
                    let holds = associations
                        .get(&d.deal.account_id)
                        .copied()
                        .unwrap_or(false);
                    if eligibility(&Facts::of(&d.deal), holds).is_err() {
                        continue;
                    }
                    let mapped = d
                        .products
                        .iter()
                        .filter(|p| products.contains_key(&p.product_id))
                        .count();
                    let missing = missing_fields(d, mapped);
                    if missing.is_empty() {
                        continue;
                    }
                    if deals.len() == size {
                        // One more exists: the next page starts after the last one returned.
                        next_page_token = cosell_platform::page::encode(
                            &deals
                                .last()
                                .map(|x: &pb::DealReadiness| x.psc_deal_id.clone())
                                .unwrap_or_default(),
                            &query,
                        );
                        break 'scan;
                    }
                    deals.push(pb::DealReadiness {
                        psc_deal_id: d.deal.id.clone(),
                        deal_name: d.deal.name.clone(),
                        missing_fields: missing.into_iter().map(String::from).collect(),
                    });
                }
            }
            Ok(pb::ListDealReadinessResponse {
                deals,
                next_page_token,
            })
        }
        .await;
        result.map(Response::new).map_err(status)
    }

    async fn list_user_migration(
        &self,
        req: Request<pb::ListUserMigrationRequest>,
    ) -> Result<Response<pb::ListUserMigrationResponse>, Status> {
        let parent = req.get_ref().parent.clone();
        let result: Result<Vec<pb::UserMigrationRow>, ApiError> = async {
            let org = self.authorize(&req, "parent", &parent).await?;
            self.user_rows(org, false).await
        }
        .await;
        result
            .map(|rows| Response::new(pb::ListUserMigrationResponse { rows }))
            .map_err(status)
    }

    async fn run_user_migration(
        &self,
        req: Request<pb::RunUserMigrationRequest>,
    ) -> Result<Response<pb::RunUserMigrationResponse>, Status> {
        let parent = req.get_ref().parent.clone();
        let result: Result<pb::RunUserMigrationResponse, ApiError> = async {
            let org = self
                .authorize_roles(&req, "parent", &parent, &[Role::AccountAdmin])
                .await?;
            let before: std::collections::HashSet<(String, String)> = self
                .store
                .user_outcomes(org)
                .await?
                .into_values()
                .filter(|o| o.status == "MIGRATED")
                .map(|o| (o.email, o.account_id))
                .collect();
            let rows = self.user_rows(org, true).await?;
            let migrated = rows
                .iter()
                .filter(|r| {
                    r.status == pb::UserMigrationStatus::Migrated as i32
                        && !before.contains(&(r.email.clone(), r.psc_account_id.clone()))
                })
                .count() as i64;
            let errors = rows
                .iter()
                .filter(|r| r.status == pb::UserMigrationStatus::Error as i32)
                .count() as i64;
            Ok(pb::RunUserMigrationResponse {
                rows,
                migrated,
                errors,
            })
        }
        .await;
        result.map(Response::new).map_err(status)
    }

    async fn start_deal_migration(
        &self,
        req: Request<pb::StartDealMigrationRequest>,
    ) -> Result<Response<pb::StartDealMigrationResponse>, Status> {
        let parent = req.get_ref().parent.clone();
        let result: Result<pb::DealMigrationRun, ApiError> = async {
            let org = self
                .authorize_roles(&req, "parent", &parent, &[Role::ReferralsAdmin])
                .await?;
            if self.store.active_run(org).await?.is_some() {
                return Err(ApiError::failed_precondition(
                    "RUN_IN_PROGRESS",
                    "a deal migration run is in progress; watch it with GetDealMigrationStatus",
                ));
            }
            let associations = self.associations(org).await?;
            let started = self
                .store
                .start_run(org, |d| {
                    let holds = associations.get(&d.account_id).copied().unwrap_or(false);
                    eligibility(&d.facts, holds).is_ok()
                })
                .await?;
            let run = match started {
                Ok(run) => run,
                Err(StartRefused::NothingToMigrate) => {
                    return Err(ApiError::failed_precondition(
                        "NOTHING_TO_MIGRATE",
                        "no eligible deal is left to migrate",
                    ));
                }
                Err(StartRefused::RunInProgress) => {
                    return Err(ApiError::failed_precondition(
                        "RUN_IN_PROGRESS",
                        "a deal migration run is in progress; watch it with GetDealMigrationStatus",
                    ));
                }
            };
            self.run_pb(org, &run).await
        }
        .await;
        result
            .map(|run| Response::new(pb::StartDealMigrationResponse { run: Some(run) }))
            .map_err(status)
    }

    async fn list_deal_migration_report(
        &self,
        req: Request<pb::ListDealMigrationReportRequest>,
    ) -> Result<Response<pb::ListDealMigrationReportResponse>, Status> {
        let r = req.get_ref().clone();
        let result: Result<pb::ListDealMigrationReportResponse, ApiError> = async {
            let org = self.authorize(&req, "parent", &r.parent).await?;
            let mut v = Violations::new();
            let size = v.take("page_size", cosell_platform::page::page_size(r.page_size));
            let query = format!("report|{}", r.parent);
            let after = v.take(
                "page_token",
                cosell_platform::page::decode(&r.page_token, &query),
            );
            v.finish()?;
            let size = size.unwrap_or(50);
            let rows = self
                .store
                .results(org, after.flatten().as_deref(), size + 1)
                .await?;
            let (rows, next_page_token) =
                cosell_platform::page::cut(rows, size, &query, |x| x.deal_id.clone());
            Ok(pb::ListDealMigrationReportResponse {
                results: rows
                    .into_iter()
                    .map(|x| pb::DealMigrationResult {
                        psc_deal_id: x.deal_id,
                        deal_name: x.deal_name,
                        engagement: x.engagement,
                        referral: x.referral,
                        deal_type: x.deal_type,
                        direction: x.direction,
                        error: x.error,
                        notes: x.notes,
                        state: x.state,
                    })
                    .collect(),
                next_page_token,
            })
        }
        .await;
        result.map(Response::new).map_err(status)
    }

    type WatchDealMigrationStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::WatchDealMigrationResponse, Status>>;

    async fn watch_deal_migration(
        &self,
        req: Request<pb::WatchDealMigrationRequest>,
    ) -> Result<Response<Self::WatchDealMigrationStream>, Status> {
        let parent = req.get_ref().parent.clone();
        let org = self
            .authorize(&req, "parent", &parent)
            .await
            .map_err(status)?;
        let migration = self.0.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        // A task of its own, so that a client that goes away ends it at the next send.
        let mut ending = self.streams_end.subscribe();
        tokio::spawn(async move {
            let mut sent: Option<pb::GetDealMigrationStatusResponse> = None;
            let mut reads = 0u32;
            loop {
                let s = match migration.watched_status(org, sent.as_ref(), reads).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(status(e))).await;
                        return;
                    }
                };
                reads += 1;
                let counts = |s: &pb::GetDealMigrationStatusResponse| {
                    s.run.as_ref().map(|r| (r.migrated, r.failed, r.pending))
                };
                let done = s.state() != pb::DealMigrationState::InProgress;
                if sent.as_ref().map(counts) != Some(counts(&s)) || done {
                    let message = pb::WatchDealMigrationResponse {
                        status: Some(s.clone()),
                    };
                    if tx.send(Ok(message)).await.is_err() || done {
                        return;
                    }
                    sent = Some(s);
                }
                let shutting_down = tokio::select! {
                    _ = tokio::time::sleep(WATCH_INTERVAL) => false,
                    _ = tx.closed() => return,
                    _ = ending.wait_for(|end| *end) => true,
                };
                if shutting_down {
                    let _ = tx
                        .send(Err(Status::unavailable(
                            "this replica is shutting down; watch again: the run goes on",
                        )))
                        .await;
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn get_cutover(
        &self,
        req: Request<pb::GetCutoverRequest>,
    ) -> Result<Response<pb::GetCutoverResponse>, Status> {
        let parent = req.get_ref().parent.clone();
        let result: Result<pb::Cutover, ApiError> = async {
            // Platform users read any partner's; the partner's admins read their own.
            let org = if self.platform_caller(&req, true).await?.is_some() {
                cosell_platform::names::parse_one(&parent, "organizations")
                    .map_err(|e| ApiError::invalid_field("parent", e))?
            } else {
                self.authorize(&req, "parent", &parent).await?
            };
            self.cutover_pb(org).await
        }
        .await;
        result
            .map(|c| Response::new(pb::GetCutoverResponse { cutover: Some(c) }))
            .map_err(status)
    }

    async fn update_cutover(
        &self,
        req: Request<pb::UpdateCutoverRequest>,
    ) -> Result<Response<pb::UpdateCutoverResponse>, Status> {
        let r = req.get_ref().clone();
        let result: Result<pb::Cutover, ApiError> = async {
            let Some(email) = self.platform_caller(&req, false).await? else {
                return Err(ApiError::permission_denied(
                    "MISSING_ROLE",
                    "the cut-over switch is made by platform operators (ROLE_PLATFORM_OPERATOR)",
                ));
            };
            let org = cosell_platform::names::parse_one(&r.parent, "organizations")
                .map_err(|e| ApiError::invalid_field("parent", e))?;
            let req = self
                .token
                .request(ipb::GetOrganizationRequest {
                    name: r.parent.clone(),
                })
                .await?;
            let partner = match self.organizations.clone().get_organization(req).await {
                Ok(o) => o
                    .into_inner()
                    .organization
                    .is_some_and(|o| !o.vorg_mpn_id.is_empty()),
                Err(s) if s.code() == tonic::Code::NotFound => false,
                Err(s) => {
                    return Err(upstream("identity", &s));
                }
            };
            if !partner {
                return Err(ApiError::not_found(r.parent.clone()));
            }
            self.store
                .set_cutover(crate::store::entities::cutover::Model {
                    organization: org.to_string(),
                    routed: r.routed_to_new_system,
                    switch_time: chrono::Utc::now(),
                    switched_by: email,
                })
                .await?;
            self.cutover_pb(org).await
        }
        .await;
        result
            .map(|c| Response::new(pb::UpdateCutoverResponse { cutover: Some(c) }))
            .map_err(status)
    }
}

fn reason_pb(reason: Ineligible) -> pb::IneligibleReason {
    match reason {
        Ineligible::Won => pb::IneligibleReason::Won,
        Ineligible::NotOpen => pb::IneligibleReason::NotOpen,
        Ineligible::CreatedBefore2020 => pb::IneligibleReason::CreatedBefore2020,
        Ineligible::InvalidMpnAssociation => pb::IneligibleReason::InvalidMpnAssociation,
        Ineligible::InDealRegistration => pb::IneligibleReason::InDealRegistration,
        Ineligible::SolutionAssessment => pb::IneligibleReason::SolutionAssessment,
        Ineligible::OemLicensing => pb::IneligibleReason::OemLicensing,
    }
}
