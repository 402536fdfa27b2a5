//! The deal migration's RPCs (SPEC 5.4): the status banner and its watch stream, the start of a
//! run, and the report (readiness is [`super::readiness`]). The runs themselves are [`crate::runs`].

use std::sync::Arc;

use cosell_platform::{ApiError, Violations};
use cosell_proto::deals as dpb;
use cosell_proto::identity::Role;
use cosell_proto::migration as pb;
use tonic::{Request, Status};
use uuid::Uuid;

use super::{DOMAIN, Migration, run_name, timestamp, upstream};
use crate::customers::CustomerMatch;
use crate::eligibility::{Ineligible, eligibility};
use crate::store::StartRefused;

/// How often a watch reads the run's counts.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// A whole status is counted over the whole snapshot: a watch does that at its start, at the
/// run's end and every this many reads, and in between follows the run's counts only.
const WATCH_FULL_EVERY: u32 = 120;

/// Deals read per page while scanning a snapshot.
pub(super) const SCAN_PAGE: u64 = 1000;

/// The stream `WatchDealMigration` answers with.
pub type WatchStream =
    tokio_stream::wrappers::ReceiverStream<Result<pb::WatchDealMigrationResponse, Status>>;

impl Migration {
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

    async fn run_pb(
        &self,
        org: Uuid,
        run: &crate::store::entities::deal_run::Model,
    ) -> Result<pb::DealMigrationRun, ApiError> {
        let (total, migrated, failed) = (run.total, run.migrated, run.failed);
        let pending = total - migrated - failed;
        Ok(pb::DealMigrationRun {
            name: run_name(org, &run.id),
            create_time: Some(timestamp(run.create_time)),
            finish_time: run.finish_time.map(timestamp),
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
        // The seed's banner: after a run, "completed" with its report while eligible deals
        // remain (failed ones, or new ones of a later export), "No deals to migrate" once every
        // one migrated; the run stays in `run` either way.
        let state = if in_progress {
            pb::DealMigrationState::InProgress
        } else if eligible == 0 {
            pb::DealMigrationState::NothingToMigrate
        } else if run.is_some() {
            pb::DealMigrationState::Completed
        } else {
            pb::DealMigrationState::NotStarted
        };
        let percent_done = run.as_ref().map_or(0, |r| match r.finish_time {
            Some(_) => 100,
            None if r.total <= 0 => 0,
            None => ((r.migrated + r.failed) * 100 / r.total).clamp(0, 99) as i32,
        });
        Ok(pb::GetDealMigrationStatusResponse {
            state: state as i32,
            total,
            eligible,
            migrated,
            run,
            cutover,
            start_enabled: !in_progress && eligible > 0,
            percent_done,
            ineligible: counts
                .into_iter()
                .map(|(reason, deals)| pb::IneligibleCount {
                    reason: reason_pb(reason) as i32,
                    deals,
                })
                .collect(),
        })
    }

    pub(super) async fn get_deal_migration_status(
        &self,
        req: Request<pb::GetDealMigrationStatusRequest>,
    ) -> Result<pb::GetDealMigrationStatusResponse, ApiError> {
        let parent = req.get_ref().parent.clone();
        let org = self.authorize(&req, "parent", &parent).await?;
        self.deal_status(org).await
    }

    pub(super) async fn start_deal_migration(
        &self,
        req: Request<pb::StartDealMigrationRequest>,
    ) -> Result<pb::StartDealMigrationResponse, ApiError> {
        let parent = req.get_ref().parent.clone();
        let org = self
            .authorize_roles(&req, "parent", &parent, &[Role::ReferralsAdmin])
            .await?;
        let in_progress = || {
            ApiError::failed_precondition(
                "RUN_IN_PROGRESS",
                "a deal migration run is in progress; watch it with GetDealMigrationStatus",
            )
        };
        if self.store.active_run(org).await?.is_some() {
            return Err(in_progress());
        }
        let started_by = cosell_platform::auth::caller(&req)?.principal.to_string();
        let traceparent = cosell_platform::telemetry::current_traceparent();
        let associations = self.associations(org).await?;
        let started = self
            .store
            // This call's trace context, so that the batches' spans link to it.
            .start_run(org, &started_by, traceparent.as_deref(), |d| {
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
            Err(StartRefused::RunInProgress) => return Err(in_progress()),
        };
        Ok(pb::StartDealMigrationResponse {
            run: Some(self.run_pb(org, &run).await?),
        })
    }

    pub(super) async fn list_deal_migration_report(
        &self,
        req: Request<pb::ListDealMigrationReportRequest>,
    ) -> Result<pb::ListDealMigrationReportResponse, ApiError> {
        let r = req.get_ref().clone();
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
                    customer_match: CustomerMatch::outcome_of(&x.customer_match) as i32,
                })
                .collect(),
            next_page_token,
        })
    }

    pub(super) async fn watch_deal_migration(
        migration: Arc<Migration>,
        req: Request<pb::WatchDealMigrationRequest>,
    ) -> Result<WatchStream, ApiError> {
        let parent = req.get_ref().parent.clone();
        let org = migration.authorize(&req, "parent", &parent).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        // A task of its own, so that a client that goes away ends it at the next send.
        let mut ending = migration.streams_end.subscribe();
        tokio::spawn(async move {
            let mut sent: Option<pb::GetDealMigrationStatusResponse> = None;
            let mut reads = 0u32;
            loop {
                let s = match migration.watched_status(org, sent.as_ref(), reads).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(DOMAIN.status(e))).await;
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
                        .send(Err(DOMAIN.status(ApiError::unavailable(
                            "SHUTTING_DOWN",
                            "this server is shutting down; watch again: the run goes on",
                        ))))
                        .await;
                    return;
                }
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
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
