//! `cosell.deals.v1.CatalogService`: the solutions catalog (SPEC 3.9).

use std::sync::Arc;

use cosell_platform::auth::actor::User;
use cosell_platform::{ApiError, Violations, page};
use cosell_proto::deals::{self as pb, catalog_service_server::CatalogService};
use cosell_proto::identity::Role;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert::{self, solution_pb};
use super::{Actor, DOMAIN, Deals};
use crate::domain::{Solution, search_words};
use crate::upstream::MpnHolder;

/// Partner roles that manage their organization's own solutions.
const CATALOG_ROLES: &[Role] = &[
    Role::AccountAdmin,
    Role::GlobalAdmin,
    Role::BusinessProfileAdmin,
    Role::ReferralsAdmin,
];

pub struct CatalogApi(pub Arc<Deals>);

/// Who may manage which solutions.
enum Manager {
    Operator,
    Partner(Uuid),
}

impl Deals {
    fn manager(&self, actor: &Actor) -> Result<Manager, ApiError> {
        match actor {
            Actor::Platform(u) if u.is_operator() => Ok(Manager::Operator),
            Actor::Platform(_) => Err(ApiError::permission_denied(
                "MISSING_ROLE",
                "managing the catalog needs ROLE_PLATFORM_OPERATOR",
            )),
            Actor::Member(User {
                organization,
                grants,
                ..
            }) => {
                if grants.allows(*organization, CATALOG_ROLES, None) {
                    Ok(Manager::Partner(*organization))
                } else {
                    Err(ApiError::permission_denied(
                        "MISSING_ROLE",
                        "managing the organization's solutions needs ROLE_ACCOUNT_ADMIN, ROLE_GLOBAL_ADMIN, ROLE_BUSINESS_PROFILE_ADMIN or an org-wide ROLE_REFERRALS_ADMIN",
                    ))
                }
            }
            Actor::Service(_) => Err(ApiError::permission_denied(
                "USERS_ONLY",
                "the catalog is managed by users",
            )),
        }
    }

    /// Checks a solution's MPN ID against its publisher: a partner's solution needs the
    /// publisher's vOrg MPN ID or one of its locations; the platform's entries take none.
    async fn check_solution_mpn(
        &self,
        field: &str,
        publisher: Option<Uuid>,
        mpn_id: Option<&str>,
    ) -> Result<(), ApiError> {
        match (publisher, mpn_id) {
            (Some(org), Some(mpn_id)) => match self.upstream.mpn(mpn_id).await? {
                MpnHolder::Vorg(holder) | MpnHolder::Location(holder) if holder == org => Ok(()),
                _ => Err(ApiError::invalid_field(
                    field,
                    format!("`{mpn_id}` is not an MPN ID of the publishing organization"),
                )),
            },
            (Some(_), None) => Err(ApiError::invalid_field(
                field,
                "is required: the publisher's vOrg MPN ID or one of its locations",
            )),
            (None, Some(_)) => Err(ApiError::invalid_field(
                field,
                "platform SKUs and third-party entries are attached to no MPN ID",
            )),
            (None, None) => Ok(()),
        }
    }

    async fn create_solution(
        &self,
        req: Request<pb::CreateSolutionRequest>,
    ) -> Result<Solution, ApiError> {
        let actor = self.actor(&req).await?;
        let operator = actor.is_operator();
        let manager = self.manager(&actor)?;
        let r = req.get_ref();
        let input = r.solution.clone().unwrap_or_default();
        let mut v = Violations::new();
        let display_name =
            convert::display_name(&mut v, "solution.display_name", &input.display_name);
        let kind = match pb::SolutionKind::try_from(input.kind) {
            Ok(pb::SolutionKind::Unspecified) | Err(_) => {
                v.add(
                    "solution.kind",
                    "is required: SOLUTION_KIND_PARTNER_SOLUTION, SOLUTION_KIND_PLATFORM_SKU or SOLUTION_KIND_THIRD_PARTY",
                );
                None
            }
            Ok(k) => Some(k),
        };
        let mpn_id = convert::mpn_location(&mut v, "solution.mpn_id", &input.mpn_id);
        let legacy = convert::legacy_product_ids(
            &mut v,
            "solution.legacy_product_ids",
            &input.legacy_product_ids,
        );
        v.finish()?;
        let kind = kind.expect("checked");
        let publisher = match (&manager, kind) {
            (Manager::Partner(org), pb::SolutionKind::PartnerSolution) => {
                if !r.publisher.is_empty()
                    && r.publisher != cosell_platform::names::organization(*org)
                {
                    return Err(ApiError::invalid_field(
                        "publisher",
                        "partners publish for their own organization; leave it empty",
                    ));
                }
                Some(*org)
            }
            (Manager::Partner(_), _) => {
                return Err(ApiError::permission_denied(
                    "OPERATOR_ONLY",
                    "platform SKUs and third-party entries are managed by platform operators",
                ));
            }
            (Manager::Operator, pb::SolutionKind::PartnerSolution) => Some(
                cosell_platform::names::parse_one(&r.publisher, "organizations")
                    .map_err(|e| ApiError::invalid_field("publisher", e))?,
            ),
            (Manager::Operator, _) => None,
        };
        if (input.cosell_ready || input.incentive_eligible) && !operator {
            return Err(ApiError::permission_denied(
                "OPERATOR_ONLY",
                "only platform operators mark solutions co-sell ready or incentive eligible",
            ));
        }
        self.check_solution_mpn("solution.mpn_id", publisher, mpn_id.as_deref())
            .await?;
        let t = self.now();
        let s = Solution {
            id: Uuid::now_v7(),
            display_name: display_name.expect("checked"),
            publisher,
            kind,
            cosell_ready: input.cosell_ready,
            incentive_eligible: input.incentive_eligible,
            mpn_id,
            legacy_product_ids: legacy,
            create_time: t,
            update_time: t,
            version: 1,
        };
        self.store.insert_solution(&s).await?;
        Ok(s)
    }

    async fn update_solution(
        &self,
        req: Request<pb::UpdateSolutionRequest>,
    ) -> Result<Solution, ApiError> {
        let actor = self.actor(&req).await?;
        let operator = actor.is_operator();
        let manager = self.manager(&actor)?;
        let r = req.get_ref();
        let input = r.solution.clone().unwrap_or_default();
        let mut v = Violations::new();
        let id = v.take("solution.name", convert::parse_solution_name(&input.name));
        let paths = r
            .update_mask
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default();
        if paths.is_empty() {
            v.add("update_mask", "is required: name the fields to change");
        }
        let mut display_name = None;
        let mut mpn_id = None;
        let mut legacy = None;
        for p in &paths {
            match p.as_str() {
                "display_name" => {
                    display_name =
                        convert::display_name(&mut v, "solution.display_name", &input.display_name)
                }
                "mpn_id" => mpn_id = Some(convert::mpn_location(&mut v, "solution.mpn_id", &input.mpn_id)),
                "legacy_product_ids" => {
                    legacy = Some(convert::legacy_product_ids(
                        &mut v,
                        "solution.legacy_product_ids",
                        &input.legacy_product_ids,
                    ))
                }
                "cosell_ready" | "incentive_eligible" if !operator => {
                    v.finish()?;
                    return Err(ApiError::permission_denied(
                        "OPERATOR_ONLY",
                        "only platform operators mark solutions co-sell ready or incentive eligible",
                    ));
                }
                "cosell_ready" | "incentive_eligible" => {}
                other => v.add(
                    "update_mask",
                    format!("`{other}` cannot be updated; updatable: display_name, mpn_id, legacy_product_ids, cosell_ready, incentive_eligible"),
                ),
            }
        }
        v.finish()?;
        let id = id.expect("checked");
        let current = self
            .store
            .get_solution(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("solutions/{id}")))?;
        if let Manager::Partner(org) = manager
            && current.publisher != Some(org)
        {
            // Another publisher's solution is readable by all, but not theirs to change.
            return Err(ApiError::permission_denied(
                "NOT_PUBLISHER",
                "only the publishing organization (or a platform operator) changes a solution",
            ));
        }
        if !input.etag.is_empty() && input.etag != current.etag() {
            return Err(ApiError::aborted(
                "ETAG_MISMATCH",
                "the solution changed since you read it; read it again",
            ));
        }
        let mut next = current.clone();
        if let Some(n) = display_name {
            next.display_name = n;
        }
        if let Some(m) = mpn_id {
            self.check_solution_mpn("solution.mpn_id", next.publisher, m.as_deref())
                .await?;
            next.mpn_id = m;
        }
        if let Some(ids) = legacy {
            next.legacy_product_ids = ids;
        }
        if paths.iter().any(|p| p == "cosell_ready") {
            next.cosell_ready = input.cosell_ready;
        }
        if paths.iter().any(|p| p == "incentive_eligible") {
            next.incentive_eligible = input.incentive_eligible;
        }
        next.version = current.version + 1;
        next.update_time = self.now();
        if !self.store.save_solution(&next, current.version).await? {
            return Err(ApiError::aborted(
                "ETAG_MISMATCH",
                "the solution changed while you updated it; read it again",
            ));
        }
        Ok(next)
    }

    async fn list_solutions(
        &self,
        req: Request<pb::ListSolutionsRequest>,
    ) -> Result<pb::ListSolutionsResponse, ApiError> {
        self.actor(&req).await?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let size = v.take("page_size", page::page_size(r.page_size));
        let publisher = match r.publisher.as_str() {
            "" => None,
            "platform" => Some(None),
            other => v
                .take(
                    "publisher",
                    cosell_platform::names::parse_one(other, "organizations"),
                )
                .map(Some),
        };
        let kind = match pb::SolutionKind::try_from(r.kind) {
            Ok(pb::SolutionKind::Unspecified) => None,
            Ok(k) => Some(k.as_str_name()),
            Err(_) => {
                v.add("kind", "is not a SolutionKind");
                None
            }
        };
        let words = search_words(&r.query);
        let query = format!("{words:?}|{publisher:?}|{kind:?}|{}", r.cosell_ready_only);
        let after = v.take("page_token", page::decode(&r.page_token, &query));
        v.finish()?;
        let size = size.unwrap_or(page::DEFAULT_PAGE_SIZE).min(500);
        let after = after
            .flatten()
            .map(|k| match k.rsplit_once('|') {
                Some((name, id)) => Ok((name.to_owned(), id.to_owned())),
                None => Err(ApiError::invalid_field(
                    "page_token",
                    "is not a page token of this list",
                )),
            })
            .transpose()?;
        let rows = self
            .store
            .list_solutions(
                &words,
                publisher,
                kind,
                r.cosell_ready_only,
                after,
                size + 1,
            )
            .await?;
        let (rows, next_page_token) = page::cut(rows, size, &query, |s: &Solution| {
            format!("{}|{}", s.display_name.to_lowercase(), s.id)
        });
        Ok(pb::ListSolutionsResponse {
            solutions: rows.iter().map(solution_pb).collect(),
            next_page_token,
        })
    }

    async fn get_solution(
        &self,
        req: Request<pb::GetSolutionRequest>,
    ) -> Result<pb::GetSolutionResponse, ApiError> {
        self.actor(&req).await?;
        let mut v = Violations::new();
        let id = v.take("name", convert::parse_solution_name(&req.get_ref().name));
        v.finish()?;
        let id = id.expect("checked");
        let s = self
            .store
            .get_solution(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("solutions/{id}")))?;
        Ok(pb::GetSolutionResponse {
            solution: Some(solution_pb(&s)),
        })
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn create_solution(
        &self,
        req: Request<pb::CreateSolutionRequest>,
    ) -> Result<Response<pb::CreateSolutionResponse>, Status> {
        DOMAIN.respond(
            self.0
                .create_solution(req)
                .await
                .map(|s| pb::CreateSolutionResponse {
                    solution: Some(solution_pb(&s)),
                }),
        )
    }

    async fn get_solution(
        &self,
        req: Request<pb::GetSolutionRequest>,
    ) -> Result<Response<pb::GetSolutionResponse>, Status> {
        DOMAIN.respond(self.0.get_solution(req).await)
    }

    async fn update_solution(
        &self,
        req: Request<pb::UpdateSolutionRequest>,
    ) -> Result<Response<pb::UpdateSolutionResponse>, Status> {
        DOMAIN.respond(
            self.0
                .update_solution(req)
                .await
                .map(|s| pb::UpdateSolutionResponse {
                    solution: Some(solution_pb(&s)),
                }),
        )
    }

    async fn list_solutions(
        &self,
        req: Request<pb::ListSolutionsRequest>,
    ) -> Result<Response<pb::ListSolutionsResponse>, Status> {
        DOMAIN.respond(self.0.list_solutions(req).await)
    }
}
