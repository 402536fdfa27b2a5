//! `ImportPscExport` (the upload of an export bundle) and `ListPscImports`.

use cosell_platform::ApiError;
use cosell_platform::auth::caller;
use cosell_proto::migration as pb;
use tonic::{Request, Streaming};
use uuid::Uuid;

use super::{Migration, timestamp};
use crate::psc::Issue;
use crate::store::ImportSummary;

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

impl Migration {
    pub(super) async fn import_psc_export(
        &self,
        req: Request<Streaming<pb::ImportPscExportRequest>>,
    ) -> Result<pb::ImportPscExportResponse, ApiError> {
        let caller = caller(&req)?.clone();
        let mut stream = req.into_inner();
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
        let mut spool = crate::upload::Spool::new(crate::upload::Limits::default())?;
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
