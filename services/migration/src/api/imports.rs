//! `ImportPscExport` (the upload of an export bundle) and `ListPscImports`.
//!
//! An upload holds its organization's import lock (one import at a time per organization,
//! whichever replica runs it: [`crate::store`]'s `import_locks`) from its first message to its
//! end, renewed while it runs and let go on every way out; it is cancelled when the client
//! sends nothing for the configured idle time, or when the server shuts down. A cancelled
//! upload imports nothing: the snapshot is written in one transaction, at the end.

use cosell_platform::ApiError;
use cosell_platform::auth::{Principal, caller};
use cosell_proto::migration as pb;
use tonic::{Request, Streaming};
use uuid::Uuid;

use super::{Migration, timestamp};
use crate::psc::Issue;
use crate::store::{ImportSummary, Store};

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
        create_time: Some(timestamp(at)),
        accounts: s.accounts as i64,
        users: s.users as i64,
        deals_added: s.deals_added as i64,
        deals_updated: s.deals_updated as i64,
        deals_unchanged: s.deals_unchanged as i64,
        products: s.products as i64,
        team_members: s.team_members as i64,
        errors: s.errors.iter().map(issue_pb).collect(),
        warnings: s.warnings.iter().map(issue_pb).collect(),
        unlisted_errors: s
            .unlisted_errors
            .iter()
            .map(|(file, n)| (file.clone(), *n as i64))
            .collect(),
    }
}

/// How long an import's lock holds unless renewed: a replica that dies mid-import keeps its
/// organization's next import waiting this long.
const IMPORT_LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// How often a running import renews its lock.
const IMPORT_RENEW: std::time::Duration = std::time::Duration::from_secs(10);

/// An organization's import lock, held by one import of this replica and renewed until
/// released. Dropped unreleased (the call was cancelled), it lets go in the background.
struct ImportLock {
    store: Store,
    org: Uuid,
    holder: String,
    renewing: tokio::task::JoinHandle<()>,
    /// Resolves when a renewal found the lock taken over (this replica stalled past the lease).
    lost: tokio::sync::oneshot::Receiver<()>,
    released: bool,
}

impl ImportLock {
    /// Lets go of the lock; a call dropped while this waits leaves it to `Drop`, which sends
    /// the release again (only a finished release counts).
    async fn release(mut self) {
        self.renewing.abort();
        if let Err(e) = self.store.unlock_import(self.org, &self.holder).await {
            tracing::warn!(error = %e, "releasing an import lock failed; its lease expires instead");
        }
        self.released = true;
    }
}

impl Drop for ImportLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.renewing.abort();
        let (store, org, holder) = (self.store.clone(), self.org, self.holder.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.unlock_import(org, &holder).await {
                    tracing::warn!(error = %e, "releasing an import lock failed; its lease expires instead");
                }
            });
        }
    }
}

/// `UNAVAILABLE`: the replica is shutting down, and the upload goes with it.
fn shutting_down() -> ApiError {
    ApiError::unavailable(
        "SHUTTING_DOWN",
        "this server is shutting down: the upload is cancelled and nothing of it is imported; \
         send the export again",
    )
}

/// The upload's next message, unless the client sends nothing for `idle`.
async fn next_message(
    stream: &mut Streaming<pb::ImportPscExportRequest>,
    idle: std::time::Duration,
) -> Result<Option<pb::ImportPscExportRequest>, ApiError> {
    match tokio::time::timeout(idle, stream.message()).await {
        Ok(message) => {
            // A message over a documented limit is refused by the codec as it is decoded: that
            // refusal, with its field violations, is the answer.
            message.map_err(|s| match s.code() {
                tonic::Code::InvalidArgument => ApiError::from_status(&s),
                _ => ApiError::invalid_field("chunk", s.message().to_owned()),
            })
        }
        Err(_) => Err(ApiError::new(
            tonic::Code::DeadlineExceeded,
            "UPLOAD_IDLE",
            format!(
                "nothing was received for {} s: the upload is cancelled and nothing of it is \
                 imported; send the export again",
                idle.as_secs_f64()
            ),
        )),
    }
}

impl Migration {
    /// The upload, unless the server shuts down meanwhile (then nothing of it is imported).
    pub(super) async fn import_psc_export(
        &self,
        req: Request<Streaming<pb::ImportPscExportRequest>>,
    ) -> Result<pb::ImportPscExportResponse, ApiError> {
        let mut ending = self.streams_end.subscribe();
        if *ending.borrow() {
            return Err(shutting_down());
        }
        tokio::select! {
            biased;
            _ = ending.wait_for(|end| *end) => Err(shutting_down()),
            imported = self.import_upload(req) => imported,
        }
    }

    async fn import_upload(
        &self,
        req: Request<Streaming<pb::ImportPscExportRequest>>,
    ) -> Result<pb::ImportPscExportResponse, ApiError> {
        let caller = caller(&req)?.clone();
        let mut stream = req.into_inner();
        let first = next_message(&mut stream, self.upload_idle)
            .await?
            .ok_or_else(|| ApiError::invalid_field("organization", "the upload was empty"))?;
        // Authorize on the first message, before anything is buffered. No organization: the
        // caller's own (an upload over HTTP names none unless asked to).
        let organization = match (&first.organization, &caller.principal) {
            (named, _) if !named.is_empty() => named.clone(),
            (_, Principal::User { organization, .. }) => {
                cosell_platform::names::organization(*organization)
            }
            (_, Principal::Service(_)) => String::new(),
        };
        let mut check = Request::new(());
        check.extensions_mut().insert(caller);
        let org = self
            .authorize(&check, "organization", &organization)
            .await?;
        let mut lock = self.lock_import(org).await?;
        let imported = tokio::select! {
            imported = self.receive_and_import(org, first, stream) => imported,
            Ok(()) = &mut lock.lost => Err(ApiError::aborted(
                "IMPORT_LOCK_LOST",
                "the import's lock expired and another import of the organization took it: \
                 nothing of this one is imported",
            )),
        };
        lock.release().await;
        imported
    }

    /// Takes the organization's import lock, or refuses the import: one at a time.
    async fn lock_import(&self, org: Uuid) -> Result<ImportLock, ApiError> {
        let holder = Uuid::now_v7().to_string();
        let now = chrono::Utc::now();
        let taken = self
            .store
            .lock_import(org, &holder, &self.worker_id, now, now + IMPORT_LEASE)
            .await?;
        if !taken {
            return Err(ApiError::aborted(
                "IMPORT_IN_PROGRESS",
                "another import of this organization is in progress; import again once it is done",
            ));
        }
        let (lost_tx, lost) = tokio::sync::oneshot::channel();
        let (store, renewer) = (self.store.clone(), holder.clone());
        let renewing = tokio::spawn(async move {
            loop {
                tokio::time::sleep(IMPORT_RENEW).await;
                let until = chrono::Utc::now() + IMPORT_LEASE;
                match store.renew_import_lock(org, &renewer, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = lost_tx.send(());
                        return;
                    }
                    // Tried again at the next round; the lease covers a couple of misses.
                    Err(e) => tracing::warn!(error = %e, "renewing an import lock failed"),
                }
            }
        });
        Ok(ImportLock {
            store: self.store.clone(),
            org,
            holder,
            renewing,
            lost,
            released: false,
        })
    }

    /// Spools the upload, reads it and writes it into the organization's snapshot.
    async fn receive_and_import(
        &self,
        org: Uuid,
        first: pb::ImportPscExportRequest,
        mut stream: Streaming<pb::ImportPscExportRequest>,
    ) -> Result<pb::ImportPscExportResponse, ApiError> {
        let mut spool = crate::upload::Spool::new(crate::upload::Limits::default())?;
        let mut next = Some(first);
        while let Some(m) = next {
            spool.add(&m.file_name, &m.chunk).await?;
            next = next_message(&mut stream, self.upload_idle).await?;
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
        Ok(pb::ImportPscExportResponse {
            import: Some(import_pb(org, chrono::Utc::now(), &summary)),
        })
    }
    pub(super) async fn list_psc_imports(
        &self,
        req: Request<pb::ListPscImportsRequest>,
    ) -> Result<pb::ListPscImportsResponse, ApiError> {
        let parent = req.get_ref().parent.clone();
        let org = self.authorize(&req, "parent", &parent).await?;
        let imports = self.store.imports(org).await?;
        Ok(pb::ListPscImportsResponse {
            imports: imports
                .iter()
                .map(|(at, s)| import_pb(org, *at, s))
                .collect(),
        })
    }
}
