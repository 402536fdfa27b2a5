//! The cut-over (SPEC 5.5): `GetCutover` for the partner's admins and platform users,
//! `UpdateCutover` for platform operators.

use cosell_platform::ApiError;
use cosell_proto::identity as ipb;
use cosell_proto::migration as pb;
use tonic::Request;
use uuid::Uuid;

use super::{Migration, timestamp, upstream};

impl Migration {
    /// The organization's cut-over as the contract shows it.
    pub(super) async fn cutover_pb(&self, org: Uuid) -> Result<pb::Cutover, ApiError> {
        let row = self.store.cutover(org).await?;
        Ok(pb::Cutover {
            name: format!("organizations/{org}/cutover"),
            routed_to_new_system: row.as_ref().is_some_and(|r| r.routed),
            switch_time: row.as_ref().map(|r| timestamp(r.switch_time)),
            switched_by: row.map(|r| r.switched_by).unwrap_or_default(),
            psc_read_only_from: self.timeline.0.to_string(),
            psc_access_ends: self.timeline.1.to_string(),
        })
    }

    pub(super) async fn get_cutover(
        &self,
        req: Request<pb::GetCutoverRequest>,
    ) -> Result<pb::GetCutoverResponse, ApiError> {
        let parent = req.get_ref().parent.clone();
        // Platform users read any partner's; the partner's admins read their own.
        let org = if self.platform_caller(&req, true).await?.is_some() {
            cosell_platform::names::parse_one(&parent, "organizations")
                .map_err(|e| ApiError::invalid_field("parent", e))?
        } else {
            self.authorize(&req, "parent", &parent).await?
        };
        Ok(pb::GetCutoverResponse {
            cutover: Some(self.cutover_pb(org).await?),
        })
    }

    pub(super) async fn update_cutover(
        &self,
        req: Request<pb::UpdateCutoverRequest>,
    ) -> Result<pb::UpdateCutoverResponse, ApiError> {
        let r = req.get_ref().clone();
        let Some(email) = self.platform_caller(&req, false).await? else {
            return Err(ApiError::permission_denied(
                "MISSING_ROLE",
                "the cut-over switch is made by platform operators (ROLE_PLATFORM_OPERATOR)",
            ));
        };
        let org = cosell_platform::names::parse_one(&r.parent, "organizations")
            .map_err(|e| ApiError::invalid_field("parent", e))?;
        let lookup = self
            .token
            .request(ipb::GetOrganizationRequest {
                name: r.parent.clone(),
            })
            .await?;
        let partner = match self.organizations.clone().get_organization(lookup).await {
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
        Ok(pb::UpdateCutoverResponse {
            cutover: Some(self.cutover_pb(org).await?),
        })
    }
}
