//! The cut-over (SPEC 5.5): `GetCutover` for the partner's admins and platform users,
//! `UpdateCutover` for platform operators. The switch itself is the deals service's, which
//! routes the platform sellers' referrals by it (`cosell.deals.v1.CutoverService`): this
//! service reads and flips it there with its own token, and adds the PSC timeline of its
//! configuration.

use cosell_platform::ApiError;
use cosell_proto::deals as dpb;
use cosell_proto::migration as pb;
use tonic::Request;
use uuid::Uuid;

use super::{Migration, upstream};

/// The deals service's answer about `parent`, with its refusals kept: `NOT_FOUND` stays
/// `NOT_FOUND`; anything else it could not do is `UNAVAILABLE`.
fn from_deals(parent: &str, s: &tonic::Status) -> ApiError {
    match s.code() {
        tonic::Code::NotFound => ApiError::not_found(parent.to_owned()),
        _ => upstream("deals", s),
    }
}

impl Migration {
    fn cutover_of(&self, c: Option<dpb::Cutover>) -> pb::Cutover {
        let c = c.unwrap_or_default();
        pb::Cutover {
            name: c.name,
            routed_to_new_system: c.routed_to_new_system,
            switch_time: c.switch_time,
            switched_by: c.switched_by,
            psc_read_only_from: self.timeline.0.to_string(),
            psc_access_ends: self.timeline.1.to_string(),
        }
    }

    /// The organization's cut-over as the contract shows it: the deals service's switch and
    /// this service's PSC timeline.
    pub(super) async fn cutover_pb(&self, org: Uuid) -> Result<pb::Cutover, ApiError> {
        let parent = cosell_platform::names::organization(org);
        let req = self
            .token
            .request(dpb::GetCutoverRequest {
                parent: parent.clone(),
            })
            .await?;
        let c = self
            .cutovers
            .clone()
            .get_cutover(req)
            .await
            .map_err(|s| from_deals(&parent, &s))?
            .into_inner()
            .cutover;
        Ok(self.cutover_of(c))
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

    /// Flips the switch in the deals service on behalf of the calling operator, who is
    /// recorded as having flipped it; the deals service refuses (`NOT_FOUND`) anything but a
    /// partner organization.
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
        let parent = cosell_platform::names::organization(org);
        let update = self
            .token
            .request(dpb::UpdateCutoverRequest {
                parent: parent.clone(),
                routed_to_new_system: r.routed_to_new_system,
                switched_by: email,
            })
            .await?;
        let c = self
            .cutovers
            .clone()
            .update_cutover(update)
            .await
            .map_err(|s| from_deals(&r.parent, &s))?
            .into_inner()
            .cutover;
        Ok(pb::UpdateCutoverResponse {
            cutover: Some(self.cutover_of(c)),
        })
    }
}
