//! The gRPC adapter: `cosell.directory.v1.DirectoryService`, its request checks and handlers
//! (methods of [`Directory`] returning `Result<_, ApiError>`), and the trait impl that answers
//! each through [`DOMAIN`].

use std::sync::Arc;

use cosell_platform::auth::{AccessClient, caller};
use cosell_platform::{ApiError, Domain, Violations};
use cosell_proto::directory::{self as pb, directory_service_server::DirectoryService};
use cosell_proto::identity::Role;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::domain::{self, Entity};
use crate::index::{SearchIndex, SearchQuery};
use crate::load::{self, LoadError, Progress};
use crate::matching::{self, Customer, Match, Reason};
use crate::store::Store;

/// `ErrorInfo.domain` of every directory error.
pub const DOMAIN: Domain = Domain("directory.cosell");

/// Results per search when the request says 0; at most [`MAX_RESULTS`].
const DEFAULT_RESULTS: usize = 10;
/// Results a search page holds at most, whatever it asks for.
pub const MAX_RESULTS: usize = 100;
const MAX_BATCH_GET: usize = 1000;

pub struct Directory {
    pub store: Store,
    pub index: Arc<SearchIndex>,
    /// Authorization of loads (identity's access check); `None` lets any caller load (tests of
    /// the directory alone).
    pub access: Option<Arc<AccessClient>>,
    /// One load at a time, so that the index's recorded generation never runs ahead of it.
    pub load_lock: tokio::sync::Mutex<()>,
}

/// A database failure: `UNAVAILABLE` while the database cannot be reached.
fn storage(e: sea_orm::DbErr) -> ApiError {
    ApiError::storage(&e)
}

pub fn entity_name(id: &str) -> String {
    format!("entities/{id}")
}

pub fn to_proto(e: Entity) -> pb::LegalEntity {
    let identifiers = if domain::valid_lei(&e.id) {
        vec![pb::Identifier {
            scheme: "LEI".into(),
            value: e.id.clone(),
        }]
    } else {
        Vec::new()
    };
    pb::LegalEntity {
        name: entity_name(&e.id),
        legal_name: e.legal_name,
        other_names: e.other_names,
        address: Some(pb::Address {
            lines: e.address_lines,
            city: e.city,
            region: e.region,
            postal_code: e.postal_code,
            country_code: e.country,
        }),
        address_generated: e.address_generated,
        identifiers,
    }
}

fn parse_name(name: &str) -> Result<String, String> {
    match name.strip_prefix("entities/") {
        Some(id) if !id.is_empty() && id.len() <= 64 && !id.contains('/') => Ok(id.to_owned()),
        _ => Err(format!("must be `entities/{{id}}` (got `{name}`)")),
    }
}

/// Checks and normalizes a search request.
pub fn parse_search(r: &pb::SearchEntitiesRequest) -> Result<SearchQuery, ApiError> {
    let mut v = Violations::new();
    let text = r.query.trim();
    if text.chars().filter(|c| c.is_alphanumeric()).count() < 2 {
        v.add("query", "needs at least 2 letters or digits");
    } else if text.chars().count() > 200 {
        v.add("query", "is longer than 200 characters");
    }
    let country = if r.country_code.is_empty() {
        None
    } else {
        v.take("country_code", domain::country(&r.country_code))
    };
    let limit = match r.page_size {
        n if n < 0 => {
            v.add("page_size", format!("must not be negative (got {n})"));
            0
        }
        0 => DEFAULT_RESULTS,
        n => (n as usize).min(MAX_RESULTS),
    };
    for (field, value) in [("region", &r.region), ("city", &r.city)] {
        if value.chars().count() > 200 {
            v.add(field, "is longer than 200 characters");
        }
    }
    v.finish()?;
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    Ok(SearchQuery {
        // Keep a trailing space: it says the last word is complete.
        text: r.query.clone(),
        country,
        region: non_empty(&r.region),
        city: non_empty(&r.city),
        limit,
    })
}

/// Checks a MatchEntities request. Lengths and the number of customers are the proto's
/// documented limits, which the codec holds before a request reaches the handler.
fn parse_match(r: &pb::MatchEntitiesRequest) -> Result<Vec<Customer>, ApiError> {
    let mut v = Violations::new();
    if r.customers.is_empty() {
        v.add("customers", "needs at least one customer");
    }
    let mut out = Vec::with_capacity(r.customers.len());
    for (i, c) in r.customers.iter().enumerate() {
        let field = |f: &str| format!("customers[{i}].{f}");
        if c.name.trim().is_empty() {
            v.add(field("name"), "is required");
        }
        let country = if c.country_code.trim().is_empty() {
            v.add(field("country_code"), "is required");
            None
        } else {
            v.take(&field("country_code"), domain::country(&c.country_code))
        };
        out.push(Customer {
            name: c.name.clone(),
            country: country.unwrap_or_default(),
            city: c.city.trim().to_owned(),
        });
    }
    v.finish()?;
    Ok(out)
}

fn match_to_proto(m: Match) -> pb::EntityMatch {
    let candidates = |cs: Vec<matching::Candidate>| {
        cs.into_iter()
            .map(|c| pb::EntityCandidate {
                entity: Some(to_proto(c.entity)),
                reason: match c.reason {
                    Reason::SameName => pb::CandidateReason::SameName,
                    Reason::OtherLegalForm => pb::CandidateReason::OtherLegalForm,
                    Reason::OtherCity => pb::CandidateReason::OtherCity,
                    Reason::SimilarName => pb::CandidateReason::SimilarName,
                } as i32,
            })
            .collect()
    };
    match m {
        Match::Matched(e) => pb::EntityMatch {
            outcome: pb::MatchOutcome::Matched as i32,
            entity: Some(to_proto(e)),
            candidates: Vec::new(),
        },
        Match::Ambiguous(cs) => pb::EntityMatch {
            outcome: pb::MatchOutcome::Ambiguous as i32,
            entity: None,
            candidates: candidates(cs),
        },
        Match::NotFound(cs) => pb::EntityMatch {
            outcome: pb::MatchOutcome::NotFound as i32,
            entity: None,
            candidates: candidates(cs),
        },
    }
}

impl Directory {
    /// Loads need a platform operator or the migration service.
    async fn authorize_load<T>(&self, req: &Request<T>) -> Result<(), ApiError> {
        let caller = caller(req)?;
        let Some(access) = &self.access else {
            return Ok(());
        };
        if caller.principal.is_service("migration") {
            return Ok(());
        }
        let grants = access.grants(&caller.principal).await?;
        if grants.has(Role::PlatformOperator) {
            Ok(())
        } else {
            Err(ApiError::permission_denied(
                "MISSING_ROLE",
                "loading the directory needs ROLE_PLATFORM_OPERATOR",
            ))
        }
    }
}

fn progress_to_proto(p: Progress) -> pb::LoadEntitiesResponse {
    pb::LoadEntitiesResponse {
        rows_read: p.rows_read as i64,
        loaded: p.loaded as i64,
        failed: p.failed as i64,
        errors: p
            .errors
            .into_iter()
            .map(|e| pb::RowError {
                line: e.line as i64,
                column: e.column,
                reason: e.reason,
            })
            .collect(),
        done: p.done,
    }
}

impl Directory {
    async fn search_entities(
        &self,
        req: Request<pb::SearchEntitiesRequest>,
    ) -> Result<pb::SearchEntitiesResponse, ApiError> {
        caller(&req)?;
        let query = parse_search(req.get_ref())?;
        // On the calling worker: a search is CPU work of tens of microseconds over memory-mapped
        // files, less than handing it to the blocking pool and back costs (two thread wake-ups,
        // and at high concurrency far more threads than cores).
        let found = self.index.search(&query).map_err(ApiError::internal)?;
        Ok(pb::SearchEntitiesResponse {
            results: found
                .into_iter()
                .map(|(e, score)| pb::SearchResult {
                    entity: Some(to_proto(e)),
                    score,
                })
                .collect(),
        })
    }

    async fn get_entity(
        &self,
        req: Request<pb::GetEntityRequest>,
    ) -> Result<pb::GetEntityResponse, ApiError> {
        caller(&req)?;
        let name = &req.get_ref().name;
        let id = parse_name(name).map_err(|d| ApiError::invalid_field("name", d))?;
        let entity = self
            .store
            .get(&id)
            .await
            .map_err(storage)?
            .ok_or_else(|| ApiError::not_found(name.clone()))?;
        Ok(pb::GetEntityResponse {
            entity: Some(to_proto(entity)),
        })
    }

    async fn batch_get_entities(
        &self,
        req: Request<pb::BatchGetEntitiesRequest>,
    ) -> Result<pb::BatchGetEntitiesResponse, ApiError> {
        caller(&req)?;
        let names = &req.get_ref().names;
        let mut v = Violations::new();
        if names.is_empty() || names.len() > MAX_BATCH_GET {
            v.add(
                "names",
                format!("needs 1 to {MAX_BATCH_GET} names (got {})", names.len()),
            );
        }
        let mut ids = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if let Some(id) = v.take(&format!("names[{i}]"), parse_name(n)) {
                ids.push(id);
            }
        }
        v.finish()?;
        let found = self.store.get_many(&ids).await.map_err(storage)?;
        let by_id: std::collections::HashMap<String, Entity> =
            found.into_iter().map(|e| (e.id.clone(), e)).collect();
        let missing: Vec<&str> = names
            .iter()
            .zip(&ids)
            .filter(|(_, id)| !by_id.contains_key(*id))
            .map(|(n, _)| n.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(
                ApiError::not_found(missing.join(", ")).with_metadata("missing", missing.join(","))
            );
        }
        Ok(pb::BatchGetEntitiesResponse {
            entities: ids
                .iter()
                .filter_map(|id| by_id.get(id).cloned())
                .map(to_proto)
                .collect(),
        })
    }

    async fn match_entities(
        &self,
        req: Request<pb::MatchEntitiesRequest>,
    ) -> Result<pb::MatchEntitiesResponse, ApiError> {
        caller(&req)?;
        let customers = parse_match(req.get_ref())?;
        // Off the async workers: a thousand customers are tens of milliseconds of CPU.
        let index = self.index.clone();
        let matches = tokio::task::spawn_blocking(move || {
            customers
                .iter()
                .map(|c| matching::match_customer(&index, c))
                .collect::<tantivy::Result<Vec<Match>>>()
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        Ok(pb::MatchEntitiesResponse {
            matches: matches.into_iter().map(match_to_proto).collect(),
        })
    }

    /// The load runs on tasks of its own: its progress and its end reach the caller through
    /// the stream, so a caller that hangs up stops reading, not loading.
    async fn load_entities(
        self: Arc<Self>,
        req: Request<Streaming<pb::LoadEntitiesRequest>>,
    ) -> Result<LoadStream, ApiError> {
        self.authorize_load(&req).await?;
        let mut upload = req.into_inner();
        let (chunks_tx, chunks_rx) = mpsc::channel::<Vec<u8>>(4);
        let (progress_tx, mut progress_rx) = mpsc::channel::<Progress>(4);
        let (out_tx, out_rx) = mpsc::channel(8);
        let directory = self.clone();

        // Upload → parser.
        let upload_errors = out_tx.clone();
        tokio::spawn(async move {
            while let Some(msg) = upload.next().await {
                match msg {
                    Ok(m) => {
                        if !m.file_name.is_empty() {
                            tracing::info!(file = %m.file_name, "directory load started");
                        }
                        if chunks_tx.send(m.chunk).await.is_err() {
                            return;
                        }
                    }
                    Err(s) => {
                        let _ = upload_errors.send(Err(s)).await;
                        return;
                    }
                }
            }
        });
        // Progress → response stream.
        let progress_out = out_tx.clone();
        tokio::spawn(async move {
            while let Some(p) = progress_rx.recv().await {
                if progress_out.send(Ok(progress_to_proto(p))).await.is_err() {
                    return;
                }
            }
        });
        // The load itself.
        tokio::spawn(async move {
            let _one_at_a_time = directory.load_lock.lock().await;
            let result =
                load::load(&directory.store, &directory.index, chunks_rx, progress_tx).await;
            match result {
                Ok(p) => {
                    tracing::info!(loaded = p.loaded, failed = p.failed, "directory load done")
                }
                Err(LoadError::File(e)) => {
                    let _ = out_tx
                        .send(Err(DOMAIN.status(ApiError::invalid_field("chunk", e.0))))
                        .await;
                }
                Err(LoadError::Cancelled) => {
                    tracing::info!("directory load cancelled by the caller")
                }
                Err(LoadError::Storage(e)) => {
                    let _ = out_tx.send(Err(DOMAIN.status(storage(e)))).await;
                }
                Err(e) => {
                    let _ = out_tx.send(Err(DOMAIN.status(ApiError::internal(e)))).await;
                }
            }
        });
        Ok(ReceiverStream::new(out_rx))
    }
}

type LoadStream = ReceiverStream<Result<pb::LoadEntitiesResponse, Status>>;

#[derive(Clone)]
pub struct Api(pub Arc<Directory>);

#[tonic::async_trait]
impl DirectoryService for Api {
    async fn search_entities(
        &self,
        req: Request<pb::SearchEntitiesRequest>,
    ) -> Result<Response<pb::SearchEntitiesResponse>, Status> {
        DOMAIN.respond(self.0.search_entities(req).await)
    }

    async fn get_entity(
        &self,
        req: Request<pb::GetEntityRequest>,
    ) -> Result<Response<pb::GetEntityResponse>, Status> {
        DOMAIN.respond(self.0.get_entity(req).await)
    }

    async fn batch_get_entities(
        &self,
        req: Request<pb::BatchGetEntitiesRequest>,
    ) -> Result<Response<pb::BatchGetEntitiesResponse>, Status> {
        DOMAIN.respond(self.0.batch_get_entities(req).await)
    }

    async fn match_entities(
        &self,
        req: Request<pb::MatchEntitiesRequest>,
    ) -> Result<Response<pb::MatchEntitiesResponse>, Status> {
        DOMAIN.respond(self.0.match_entities(req).await)
    }

    type LoadEntitiesStream = LoadStream;

    async fn load_entities(
        &self,
        req: Request<Streaming<pb::LoadEntitiesRequest>>,
    ) -> Result<Response<Self::LoadEntitiesStream>, Status> {
        DOMAIN.respond(self.0.clone().load_entities(req).await)
    }
}
