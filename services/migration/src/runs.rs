//! Deal migration runs (SPEC 5.4): starting one, and the worker that every replica runs. A run's
//! deals are PENDING rows; a worker leases a batch, maps each deal to a referral and sends the
//! batch to the deals service's import, which is idempotent by PSC deal id: a worker that dies
//! after sending loses nothing (its lease expires, another worker sends the batch again and gets
//! the same referrals back), and nothing is created twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cosell_platform::ApiError;
use cosell_proto::deals as dpb;
use cosell_proto::migration as pb;
use tracing::Instrument;
use uuid::Uuid;

use crate::api::{Migration, run_name, timestamp, upstream};
use crate::customers::{CustomerMatch, customer_key};
use crate::mapping::{Mapped, map_deal};
use crate::sellers::email_key;
use crate::store::SnapshotDeal;
use crate::store::entities::deal_result;

/// Deals per lease (and per import call).
pub const BATCH: u64 = 250;
/// How long a lease holds unless configured: a worker that has not finished its batch by then
/// is taken as dead. A batch takes well under a second; a minute leaves room for a slow
/// database without letting a dead replica's deals wait long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Batches each replica works on at once: while one waits on the deals service, another
/// reads the snapshot or asks the directory.
pub const WORKERS: usize = 8;
/// Pause when there is no work.
const IDLE: Duration = Duration::from_millis(300);
/// A batch that could not be worked (a peer did not answer) is tried again this much later.
const RETRY_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(2);
/// Pause between looks for finished runs whose starter is still to tell.
const TELL_EVERY: Duration = Duration::from_secs(1);
/// Runs told per look.
const TELL_BATCH: u64 = 20;

impl Migration {
    /// One round of work: lease a batch, migrate it, record the outcomes. `Ok(false)`: no work.
    /// When a peer (identity, the directory, deals) does not answer, the batch's deals stay
    /// PENDING as they were, never failed or unmatched for it, and are tried again after
    /// [`RETRY_AFTER`].
    pub async fn work_once(&self, owner: &str) -> Result<bool, ApiError> {
        let leased = self.store.lease(owner, BATCH, self.lease).await?;
        if leased.is_empty() {
            self.store.finish_runs().await?;
            return Ok(false);
        }
        let keys: Vec<(String, String)> = leased
            .iter()
            .map(|r| (r.organization.clone(), r.deal_id.clone()))
            .collect();
        match self.work_leased(owner, leased).await {
            Ok(()) => Ok(true),
            Err(e) => {
                // Deals already recorded are no longer PENDING: only the rest wait.
                if let Err(later) = self.store.retry_later(owner, &keys, RETRY_AFTER).await {
                    tracing::warn!(error = %later, "shortening a failed batch's lease failed; it waits for its expiry");
                }
                Err(e)
            }
        }
    }

    /// Migrates leased deals and records their outcomes, organization by organization.
    async fn work_leased(
        &self,
        owner: &str,
        leased: Vec<deal_result::Model>,
    ) -> Result<(), ApiError> {
        let started = std::time::Instant::now();
        let mut by_org: HashMap<String, Vec<deal_result::Model>> = HashMap::new();
        for r in leased {
            by_org.entry(r.organization.clone()).or_default().push(r);
        }
        let products = self.product_map().await?;
        for (org, results) in by_org {
            let org_id = Uuid::parse_str(&org).map_err(ApiError::internal)?;
            let span = self.batch_span(&org, &results).await?;
            async {
                let outcomes = self.migrate_batch(org_id, results, &products).await?;
                let sent = outcomes.len() as u64;
                let recorded = self.store.finish_deals(owner, outcomes).await?;
                tracing::debug!(
                    deals = sent,
                    elapsed = ?started.elapsed(),
                    "deal migration batch recorded"
                );
                if recorded < sent {
                    // Another worker took these deals over; the import is idempotent, so its
                    // outcome is the same referrals.
                    tracing::warn!(
                        lost = sent - recorded,
                        "deal migration leases lost before recording"
                    );
                }
                Ok::<_, ApiError>(())
            }
            .instrument(span)
            .await?;
        }
        self.store.finish_runs().await?;
        Ok(())
    }

    /// The span of one organization's batch: the root of a trace of its own (the worker is a
    /// background task), linked to the trace of the StartDealMigration call of each run whose
    /// deals it holds.
    async fn batch_span(
        &self,
        org: &str,
        results: &[deal_result::Model],
    ) -> Result<tracing::Span, ApiError> {
        let span = tracing::info_span!(
            parent: None,
            "deal_migration.batch",
            organization = %org,
            deals = results.len(),
        );
        let mut runs: Vec<&str> = results.iter().map(|r| r.run_id.as_str()).collect();
        runs.sort_unstable();
        runs.dedup();
        for traceparent in self.store.start_traceparents(&runs).await? {
            cosell_platform::telemetry::link_to(&span, &traceparent);
        }
        Ok(span)
    }

    /// Migrates one organization's leased deals; the outcome of each.
    async fn migrate_batch(
        &self,
        org: Uuid,
        results: Vec<deal_result::Model>,
        products: &HashMap<String, String>,
    ) -> Result<Vec<deal_result::Model>, ApiError> {
        let scopes = self.locations(org).await?;
        let ids: Vec<&str> = results.iter().map(|r| r.deal_id.as_str()).collect();
        let deals: HashMap<String, SnapshotDeal> = self
            .store
            .deals_by_ids(org, &ids)
            .await?
            .into_iter()
            .map(|d| (d.deal.id.clone(), d))
            .collect();
        let customers = self.match_customers(deals.values()).await?;
        let sellers = self
            .sellers(
                deals
                    .values()
                    .map(|d| d.deal.assigned_seller_email.as_str()),
            )
            .await?;
        let mut outcomes = Vec::with_capacity(results.len());
        let mut batch = Vec::new();
        let mut sent: HashMap<String, (deal_result::Model, Mapped)> = HashMap::new();
        for r in results {
            let failed = |r: deal_result::Model, reason: &str| deal_result::Model {
                state: "FAILED".into(),
                error: reason.to_owned(),
                ..r
            };
            let Some(d) = deals.get(&r.deal_id) else {
                outcomes.push(failed(r, "the deal is no longer in the snapshot"));
                continue;
            };
            // A deal that fails still reports how its customer came out.
            let customer = customers.get(&customer_key(d));
            let r = deal_result::Model {
                customer_match: CustomerMatch::outcome_name(
                    customer.map_or(pb::CustomerMatchOutcome::NotLookedUp, |c| c.outcome),
                )
                .into(),
                ..r
            };
            // Checked again here: the association may have changed since the run started.
            let location = match scopes.get(&d.deal.account_id) {
                Some(Ok(location)) => location.clone(),
                Some(Err(reason)) => {
                    outcomes.push(failed(r, reason));
                    continue;
                }
                None => {
                    outcomes.push(failed(
                        r,
                        "the deal's partner account is no longer in the snapshot",
                    ));
                    continue;
                }
            };
            let seller = sellers.get(&email_key(&d.deal.assigned_seller_email));
            let m = map_deal(d, location.as_deref(), products, customer, seller);
            // A deal the deals service would refuse for a field over its documented limit
            // would make it refuse the whole batch, sent again and again: it fails alone.
            let mut over = Vec::new();
            cosell_proto::limits::Bounded::check(
                &m.referral,
                &cosell_proto::limits::Path::ROOT,
                &mut over,
            );
            if !over.is_empty() {
                let why: Vec<String> = over
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect();
                outcomes.push(failed(r, &why.join("; ")));
                continue;
            }
            batch.push(m.referral.clone());
            sent.insert(r.deal_id.clone(), (r, m));
        }
        if batch.is_empty() {
            return Ok(outcomes);
        }
        let req = self
            .token
            .request(dpb::ImportReferralsRequest {
                organization: cosell_platform::names::organization(org),
                referrals: batch,
            })
            .await?;
        // A failed call leaves the batch leased: it is sent again once the lease expires.
        let answered = self
            .referrals
            .clone()
            .import_referrals(req)
            .await
            .map_err(|s| upstream("deals", &s))?
            .into_inner()
            .results;
        for a in answered {
            let Some((r, m)) = sent.remove(&a.psc_deal_id) else {
                continue;
            };
            let mut done = deal_result::Model {
                deal_type: m.deal_type.into(),
                direction: m.direction.into(),
                notes: m.notes,
                ..r
            };
            match a.referral {
                Some(referral) if a.error.is_empty() => {
                    done.state = "MIGRATED".into();
                    done.engagement = referral.engagement;
                    done.referral = referral.name;
                    done.error = String::new();
                }
                _ => {
                    done.state = "FAILED".into();
                    done.error = a.error;
                }
            }
            outcomes.push(done);
        }
        // A deal the deals service did not answer for stays leased, and is sent again.
        Ok(outcomes)
    }

    /// Each account's location MPN ID (`None` inside: the vOrg, i.e. the whole organization).
    /// Each account's scope: `Ok(Some(mpn))` a location, `Ok(None)` the whole organization,
    /// `Err(reason)` an MPN association that no longer holds.
    async fn locations(
        &self,
        org: Uuid,
    ) -> Result<HashMap<String, Result<Option<String>, String>>, ApiError> {
        let mut out = HashMap::new();
        for (account, corrected) in self.store.accounts(org).await? {
            let id = account.id.clone();
            let a = self.psc_account(org, account, corrected).await?;
            let scope = match pb::MpnAssociation::try_from(a.association) {
                Ok(pb::MpnAssociation::Location) => Ok(Some(a.mpn_id)),
                Ok(pb::MpnAssociation::Vorg) => Ok(None),
                _ => Err(a.reason),
            };
            out.insert(id, scope);
        }
        Ok(out)
    }
}

impl Migration {
    /// Ends the open watches (with UNAVAILABLE, so that clients watch again elsewhere): call it
    /// when the server starts shutting down, before it waits for the calls in flight.
    pub fn end_streams(&self) {
        self.streams_end.send_replace(true);
    }

    /// The process's shutdown signal (SIGTERM or Ctrl-C), which ends the open watches when it
    /// comes: what a server with this service in it waits on to shut down.
    pub fn shutdown_signal(self: &Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        let migration = self.clone();
        async move {
            cosell_platform::server::shutdown_signal().await;
            migration.end_streams();
        }
    }

    /// Stops this replica's worker and gives its leased deals back at once, so that another
    /// replica takes them without waiting for the leases to expire, and lets go of its imports'
    /// locks (graceful shutdown).
    pub async fn release(&self) {
        self.end_streams();
        self.stopping.store(true, Ordering::SeqCst);
        match self.store.release_leases(&self.worker_id).await {
            Ok(n) if n > 0 => tracing::info!(deals = n, "deal migration work released"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "releasing deal migration work failed; its leases expire instead")
            }
        }
        match self.store.unlock_imports_of(&self.worker_id).await {
            Ok(n) if n > 0 => tracing::info!(imports = n, "import locks released"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "releasing import locks failed; their leases expire instead")
            }
        }
    }
}

impl Migration {
    /// Tells the starter of each finished run that it finished (MIGRATION_FINISHED, through the
    /// deals service, which keeps one notification per run and starter), then records it: a run
    /// told twice, by two replicas or after a lost answer, is still one notification. While
    /// the deals service does not answer, the runs wait for the next look; one it refuses as
    /// malformed is logged and not told again.
    pub async fn tell_finished(&self) -> Result<(), ApiError> {
        for run in self.store.untold_runs(TELL_BATCH).await? {
            let Some(recipient) = run.started_by.clone() else {
                continue;
            };
            let req = self
                .token
                .request(dpb::NotifyDealMigrationFinishedRequest {
                    run: run_name(&run.organization, &run.id),
                    recipient,
                    total: run.total,
                    migrated: run.migrated,
                    failed: run.failed,
                    finish_time: run.finish_time.map(timestamp),
                })
                .await?;
            match self
                .notifications
                .clone()
                .notify_deal_migration_finished(req)
                .await
            {
                Ok(_) => {}
                Err(s) if s.code() == tonic::Code::InvalidArgument => {
                    tracing::error!(run = %run.id, error = %s.message(), "the deals service refused a finished run's notification; not telling it again");
                }
                Err(s) => return Err(upstream("deals", &s)),
            }
            self.store.mark_told(&run.id).await?;
        }
        Ok(())
    }
}

/// Works until [`Migration::release`]: every replica runs one, and a restarted one resumes
/// whatever runs are unfinished.
pub fn spawn_worker(migration: Arc<Migration>) {
    let teller = migration.clone();
    tokio::spawn(async move {
        while !teller.stopping.load(Ordering::SeqCst) {
            if let Err(e) = teller.tell_finished().await {
                tracing::warn!(error = %e, "telling finished deal migration runs: will retry");
            }
            tokio::time::sleep(TELL_EVERY).await;
        }
    });
    for _ in 0..WORKERS {
        let migration = migration.clone();
        tokio::spawn(async move {
            // One lease owner per replica: its leases are given back together at shutdown.
            let owner = migration.worker_id.clone();
            while !migration.stopping.load(Ordering::SeqCst) {
                match migration.work_once(&owner).await {
                    Ok(true) => {}
                    Ok(false) => tokio::time::sleep(IDLE).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "deal migration worker: will retry");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}
