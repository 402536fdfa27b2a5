//! `cosell.deals.v1.ReferralService`: partners' referrals. Each RPC of [`ReferralApi`] hands
//! its request to a method of [`Deals`] in the file of its verb group:
//!
//! - [`create`]: `CreateReferral` (and the checks of a requested referral that
//!   `CoSellService/CreateInboundReferral` and the import share).
//! - [`list`]: `GetReferral`, `ListReferrals`, `GetEngagement`, `SetFavorite`.
//! - [`update`]: `UpdateReferral` and the verbs (`AcceptReferral`, `DeclineReferral`,
//!   `MarkReferralWon`, `MarkReferralLost`, `UpgradeDealType`).
//! - [`import`]: `ImportReferrals`, the deals migrated from PSC.
//! - [`registration`]: deal registration (`RegisterDeal`, `ListRegistrations`,
//!   `ReviewRegistration`, and what `MarkReferralWon` answers about it; SPEC 3.8).
//!
//! Here: what several of them resolve against the catalog, the directory and identity, and the
//! response with the caller's favorite mark.

pub mod create;
pub mod import;
pub mod list;
pub mod registration;
pub mod update;

use std::sync::Arc;

use cosell_platform::{ApiError, Violations};
use cosell_proto::deals::{self as pb, referral_service_server::ReferralService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert::{self, referral_pb};
use super::{Actor, DOMAIN, Deals, rule_error};
use crate::domain::{
    Customer, Referral, ReferralSolution, Solution, SolutionLine, attach_solutions,
};
use crate::upstream::MpnHolder;

pub struct ReferralApi(pub Arc<Deals>);

fn name_field(v: &mut Violations, field: &str, name: &str) -> Option<Uuid> {
    v.take(field, convert::parse_referral_name(name))
}

/// An optional `request_id` (D10): a UUID, kept in its canonical form.
pub(in crate::api) fn request_id(v: &mut Violations, text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    match Uuid::parse_str(text) {
        Ok(u) => Some(u.to_string()),
        Err(_) => {
            v.add("request_id", format!("`{text}` is not a UUID"));
            None
        }
    }
}

impl Deals {
    /// The catalog entries `lines` name (without asking the database when there are none).
    pub async fn catalog(&self, lines: &[SolutionLine]) -> Result<Vec<Solution>, ApiError> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = lines.iter().map(|l| l.solution).collect();
        Ok(self.store.get_solutions(&ids).await?)
    }

    /// The catalog entries of `lines`, each one checked ([`attach_solutions`]).
    pub async fn resolve_solutions(
        &self,
        lines: &[SolutionLine],
    ) -> Result<Vec<ReferralSolution>, ApiError> {
        let found = self.catalog(lines).await?;
        attach_solutions(lines, &found).map_err(|e| rule_error(e, "referral."))
    }

    /// The directory's entry for `entity` as the customer (rule D8).
    pub async fn resolve_customer(&self, field: &str, entity: &str) -> Result<Customer, ApiError> {
        self.upstream.customer(entity).await?.ok_or_else(|| {
            ApiError::invalid_field(
                field,
                format!("`{entity}` is not an entry of the directory"),
            )
        })
    }

    /// Checks that `mpn` is one of `organization`'s MPN locations.
    pub async fn check_location(
        &self,
        field: &str,
        organization: Uuid,
        mpn: &str,
    ) -> Result<(), ApiError> {
        match self.upstream.mpn(mpn).await? {
            MpnHolder::Location(org) if org == organization => Ok(()),
            _ => Err(ApiError::invalid_field(
                field,
                format!("`{mpn}` is not an MPN location of the organization"),
            )),
        }
    }

    async fn respond(&self, actor: &Actor, r: &Referral) -> Result<pb::Referral, ApiError> {
        let favorite = self
            .store
            .favorites_among(&actor.principal(), &[r.id])
            .await?
            .contains(&r.id);
        Ok(referral_pb(r, favorite))
    }
}

#[tonic::async_trait]
impl ReferralService for ReferralApi {
    async fn create_referral(
        &self,
        req: Request<pb::CreateReferralRequest>,
    ) -> Result<Response<pb::CreateReferralResponse>, Status> {
        DOMAIN.respond(
            self.0
                .create_referral(req)
                .await
                .map(|r| pb::CreateReferralResponse { referral: Some(r) }),
        )
    }

    async fn get_referral(
        &self,
        req: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::GetReferralResponse>, Status> {
        DOMAIN.respond(
            self.0
                .get_referral(req)
                .await
                .map(|r| pb::GetReferralResponse { referral: Some(r) }),
        )
    }

    async fn list_referrals(
        &self,
        req: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        DOMAIN.respond(self.0.list_referrals(req).await)
    }

    async fn update_referral(
        &self,
        req: Request<pb::UpdateReferralRequest>,
    ) -> Result<Response<pb::UpdateReferralResponse>, Status> {
        DOMAIN.respond(
            self.0
                .update_referral(req)
                .await
                .map(|r| pb::UpdateReferralResponse { referral: Some(r) }),
        )
    }

    async fn accept_referral(
        &self,
        req: Request<pb::AcceptReferralRequest>,
    ) -> Result<Response<pb::AcceptReferralResponse>, Status> {
        DOMAIN.respond(
            self.0
                .accept_referral(req)
                .await
                .map(|r| pb::AcceptReferralResponse { referral: Some(r) }),
        )
    }

    async fn decline_referral(
        &self,
        req: Request<pb::DeclineReferralRequest>,
    ) -> Result<Response<pb::DeclineReferralResponse>, Status> {
        DOMAIN.respond(
            self.0
                .decline_referral(req)
                .await
                .map(|r| pb::DeclineReferralResponse { referral: Some(r) }),
        )
    }

    async fn mark_referral_won(
        &self,
        req: Request<pb::MarkReferralWonRequest>,
    ) -> Result<Response<pb::MarkReferralWonResponse>, Status> {
        DOMAIN.respond(self.0.mark_referral_won(req).await)
    }

    async fn mark_referral_lost(
        &self,
        req: Request<pb::MarkReferralLostRequest>,
    ) -> Result<Response<pb::MarkReferralLostResponse>, Status> {
        DOMAIN.respond(
            self.0
                .mark_referral_lost(req)
                .await
                .map(|r| pb::MarkReferralLostResponse { referral: Some(r) }),
        )
    }

    async fn upgrade_deal_type(
        &self,
        req: Request<pb::UpgradeDealTypeRequest>,
    ) -> Result<Response<pb::UpgradeDealTypeResponse>, Status> {
        DOMAIN.respond(
            self.0
                .upgrade_deal_type(req)
                .await
                .map(|r| pb::UpgradeDealTypeResponse { referral: Some(r) }),
        )
    }

    async fn set_favorite(
        &self,
        req: Request<pb::SetFavoriteRequest>,
    ) -> Result<Response<pb::SetFavoriteResponse>, Status> {
        DOMAIN.respond(
            self.0
                .set_favorite(req)
                .await
                .map(|r| pb::SetFavoriteResponse { referral: Some(r) }),
        )
    }

    async fn get_engagement(
        &self,
        req: Request<pb::GetEngagementRequest>,
    ) -> Result<Response<pb::GetEngagementResponse>, Status> {
        DOMAIN.respond(
            self.0
                .get_engagement(req)
                .await
                .map(|e| pb::GetEngagementResponse {
                    engagement: Some(e),
                }),
        )
    }

    async fn import_referrals(
        &self,
        req: Request<pb::ImportReferralsRequest>,
    ) -> Result<Response<pb::ImportReferralsResponse>, Status> {
        DOMAIN.respond(self.0.import_referrals(req).await)
    }

    async fn register_deal(
        &self,
        req: Request<pb::RegisterDealRequest>,
    ) -> Result<Response<pb::RegisterDealResponse>, Status> {
        DOMAIN.respond(self.0.register_deal(req).await)
    }

    async fn list_registrations(
        &self,
        req: Request<pb::ListRegistrationsRequest>,
    ) -> Result<Response<pb::ListRegistrationsResponse>, Status> {
        DOMAIN.respond(self.0.list_registrations(req).await)
    }

    async fn review_registration(
        &self,
        req: Request<pb::ReviewRegistrationRequest>,
    ) -> Result<Response<pb::ReviewRegistrationResponse>, Status> {
        DOMAIN.respond(
            self.0
                .review_registration(req)
                .await
                .map(|r| pb::ReviewRegistrationResponse { referral: Some(r) }),
        )
    }
}
