//! `cosell.deals.v1.CutoverService`: each partner organization's cut-over switch (SPEC 5.5).
//! The deals service owns it because it routes by it (`CreateInboundReferral` refuses an
//! organization still on PSC, [`crate::domain::create::ensure_cut_over`]); the migration
//! service, which calls deals and is never called by it, shows and flips it through here.

use std::sync::Arc;

use cosell_platform::auth::actor::User;
use cosell_platform::{ApiError, Violations};
use cosell_proto::deals::{self as pb, cutover_service_server::CutoverService};
use cosell_proto::identity::Role;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{Actor, DOMAIN, Deals};
use crate::store::cutover::Cutover;

pub struct CutoverApi(pub Arc<Deals>);

/// Longest `switched_by` (an email).
const MAX_EMAIL_CHARS: usize = 254;

/// Partner roles that may read their organization's switch, held org-wide (SPEC 5.5: the
/// migration service's readers; a location's referrals users and admins do not see it).
const READ_ROLES: &[Role] = &[Role::AccountAdmin, Role::ReferralsAdmin];

fn parent(v: &mut Violations, parent: &str) -> Option<Uuid> {
    v.take(
        "parent",
        cosell_platform::names::parse_one(parent, "organizations"),
    )
}

fn cutover_pb(organization: Uuid, c: Option<Cutover>) -> pb::Cutover {
    pb::Cutover {
        name: format!(
            "{}/cutover",
            cosell_platform::names::organization(organization)
        ),
        routed_to_new_system: c.as_ref().is_some_and(|c| c.routed),
        switch_time: c.as_ref().map(|c| super::convert::timestamp(c.switch_time)),
        switched_by: c.map(|c| c.switched_by).unwrap_or_default(),
    }
}

impl Deals {
    async fn get_cutover(
        &self,
        req: Request<pb::GetCutoverRequest>,
    ) -> Result<pb::Cutover, ApiError> {
        let actor = self.actor(&req).await?;
        let mut v = Violations::new();
        let org = parent(&mut v, &req.get_ref().parent);
        v.finish()?;
        let org = org.expect("checked");
        match &actor {
            Actor::Platform(_) | Actor::Service(_) => {}
            Actor::Member(User {
                organization,
                grants,
                ..
            }) => {
                if *organization != org {
                    return Err(ApiError::not_found(req.get_ref().parent.clone()));
                }
                if !grants.allows(org, READ_ROLES, None) {
                    return Err(ApiError::permission_denied(
                        "MISSING_ROLE",
                        "the cut-over is shown to account admins and org-wide referrals admins",
                    ));
                }
            }
        }
        Ok(cutover_pb(org, self.store.cutover(org).await?))
    }

    async fn update_cutover(
        &self,
        req: Request<pb::UpdateCutoverRequest>,
    ) -> Result<pb::Cutover, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let org = parent(&mut v, &r.parent);
        let switched_by = match &actor {
            Actor::Platform(u) if u.is_operator() => u.email.clone(),
            Actor::Service(name) if name == "migration" => {
                let email = r.switched_by.trim().to_lowercase();
                if email.is_empty() {
                    v.add(
                        "switched_by",
                        "is required: the platform operator the migration service acts for",
                    );
                } else if email.chars().count() > MAX_EMAIL_CHARS {
                    v.add(
                        "switched_by",
                        format!("is longer than {MAX_EMAIL_CHARS} characters"),
                    );
                }
                email
            }
            _ => {
                return Err(ApiError::permission_denied(
                    "MISSING_ROLE",
                    "the cut-over switch is made by platform operators (ROLE_PLATFORM_OPERATOR)",
                ));
            }
        };
        v.finish()?;
        let org = org.expect("checked");
        if !self.upstream.is_partner_organization(org).await? {
            return Err(ApiError::not_found(r.parent.clone()));
        }
        let c = Cutover {
            routed: r.routed_to_new_system,
            switch_time: self.now(),
            switched_by,
        };
        self.store.set_cutover(org, &c).await?;
        Ok(cutover_pb(org, Some(c)))
    }
}

#[tonic::async_trait]
impl CutoverService for CutoverApi {
    async fn get_cutover(
        &self,
        req: Request<pb::GetCutoverRequest>,
    ) -> Result<Response<pb::GetCutoverResponse>, Status> {
        DOMAIN.respond(
            self.0
                .get_cutover(req)
                .await
                .map(|c| pb::GetCutoverResponse { cutover: Some(c) }),
        )
    }

    async fn update_cutover(
        &self,
        req: Request<pb::UpdateCutoverRequest>,
    ) -> Result<Response<pb::UpdateCutoverResponse>, Status> {
        DOMAIN.respond(
            self.0
                .update_cutover(req)
                .await
                .map(|c| pb::UpdateCutoverResponse { cutover: Some(c) }),
        )
    }
}
