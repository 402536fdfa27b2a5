//! `cosell.identity.v1.RoleService`.

use std::sync::Arc;

use cosell_platform::auth::Actor;
use cosell_platform::{ApiError, Violations, names, page};
use cosell_proto::identity::{self as pb, role_service_server::RoleService};
use tonic::{Request, Response, Status};

use super::errors::DOMAIN;
use super::{Identity, Rule, convert, field};
use crate::domain::{
    IdentityError, LOCATION_SCOPED_ROLES, PLATFORM_ROLES, Role, USER_ADMIN_ROLES, validate,
};

pub struct Api(pub Arc<Identity>);

/// Who may assign or revoke `role` in `org` (rule I3): account and global admins for partner
/// roles, platform operators for platform roles; the migration service for referrals roles only.
fn role_rule(
    i: &Identity,
    actor: &Actor,
    org: uuid::Uuid,
    role: Role,
    resource: &str,
) -> Result<(), IdentityError> {
    let platform_role = PLATFORM_ROLES.contains(&role);
    if platform_role {
        // Operators get through; a partner organization as target is refused afterwards with
        // ROLE_NOT_FOR_ORGANIZATION.
        if i.is_platform_operator(actor) {
            return Ok(());
        }
        return match actor {
            Actor::Member(u) | Actor::Platform(u) if u.organization != org => {
                Err(IdentityError::NotFound(resource.to_owned()))
            }
            _ => Err(IdentityError::denied(
                "MISSING_ROLE",
                "only platform operators assign platform roles",
            )),
        };
    }
    let services: &'static [&'static str] = if LOCATION_SCOPED_ROLES.contains(&role) {
        &["migration"]
    } else {
        &[]
    };
    i.check(
        actor,
        org,
        Rule {
            roles: USER_ADMIN_ROLES,
            services,
            platform_operator: true,
            ..Rule::default()
        },
        resource,
    )
}

impl Identity {
    async fn assign_role(
        &self,
        req: Request<pb::AssignRoleRequest>,
    ) -> Result<pb::AssignRoleResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let ids = v.take("user", names::parse_two(&r.user, "organizations", "users"));
        let role = match v.take("role", super::role_field(r.role)) {
            Some(None) => {
                v.add("role", "is required");
                None
            }
            parsed => parsed.flatten(),
        };
        let scope = if r.mpn_id.is_empty() {
            None
        } else {
            v.take("mpn_id", validate::mpn_id(&r.mpn_id))
        };
        if let (Some(role), Some(_)) = (role, &scope)
            && !LOCATION_SCOPED_ROLES.contains(&role)
        {
            v.add(
                    "mpn_id",
                    format!("{} is an organization-wide role; only referrals roles can be limited to a location", role.as_str_name()),
                );
        }
        v.finish().map_err(IdentityError::from)?;
        let (Some((org, user)), Some(role)) = (ids, role) else {
            return Err(ApiError::internal("validation passed with a missing field"));
        };
        role_rule(i, &actor, org, role, &r.user)?;
        let target = i
            .store
            .get_organization(org)
            .await?
            .ok_or_else(|| IdentityError::NotFound(r.user.clone()))?;
        if PLATFORM_ROLES.contains(&role) != target.platform {
            let msg = if target.platform {
                "the platform organization's users hold platform roles only"
            } else {
                "platform roles are held only by users of the platform organization"
            };
            return Err(IdentityError::precondition(
                "ROLE_NOT_FOR_ORGANIZATION",
                names::organization(org),
                msg,
            )
            .into());
        }
        if let Some(mpn) = &scope
            && !target.locations.iter().any(|l| &l.mpn_id == mpn)
        {
            let hint = if target.vorg_mpn_id.as_deref() == Some(mpn.as_str()) {
                " (it is the vOrg MPN ID: leave mpn_id empty for the entire organization)"
            } else {
                ""
            };
            return Err(
                IdentityError::Invalid(cosell_platform::ApiError::invalid_field(
                    "mpn_id",
                    format!("{mpn} is not an MPN location of this organization{hint}"),
                ))
                .into(),
            );
        }
        let assignment = i
            .store
            .assign_role(org, user, role, scope.as_deref())
            .await?;
        i.invalidate(user);
        tracing::info!(user = %user, role = role.as_str_name(), "role assigned");
        Ok(pb::AssignRoleResponse {
            role_assignment: Some(convert::assignment(&assignment)),
        })
    }

    async fn revoke_role(
        &self,
        req: Request<pb::RevokeRoleRequest>,
    ) -> Result<pb::RevokeRoleResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let name = req.get_ref().name.clone();
        let (org, id) = field(
            "name",
            names::parse_two(&name, "organizations", "roleAssignments"),
        )?;
        // Strangers learn nothing: check membership before looking the assignment up.
        if let Some(u) = actor.user()
            && u.organization != org
            && !i.is_platform_operator(&actor)
        {
            return Err(IdentityError::NotFound(name).into());
        }
        let existing = i
            .store
            .get_role_assignment(org, id)
            .await?
            .ok_or_else(|| IdentityError::NotFound(name.clone()))?;
        role_rule(i, &actor, org, existing.role, &name)?;
        let removed = i.store.revoke_role(org, id).await?;
        i.invalidate(removed.user);
        tracing::info!(user = %removed.user, role = removed.role.as_str_name(), "role revoked");
        Ok(pb::RevokeRoleResponse {
            role_assignment: Some(convert::assignment(&removed)),
        })
    }

    async fn list_role_assignments(
        &self,
        req: Request<pb::ListRoleAssignmentsRequest>,
    ) -> Result<pb::ListRoleAssignmentsResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let org = v.take("parent", names::parse_one(&r.parent, "organizations"));
        let user = if r.user.is_empty() {
            None
        } else {
            v.take("user", names::parse_two(&r.user, "organizations", "users"))
                .map(|(_, u)| u)
        };
        let role = v.take("role", super::role_field(r.role)).flatten();
        let size = v.take("page_size", page::page_size(r.page_size));
        let query = format!("roles|{}|{}|{}", r.parent, r.user, r.role);
        let after = v.take("page_token", page::decode(&r.page_token, &query));
        v.finish().map_err(IdentityError::from)?;
        let (Some(org), Some(size), Some(after)) = (org, size, after) else {
            return Err(ApiError::internal("validation passed with a missing field"));
        };
        let own = actor
            .user()
            .is_some_and(|u| u.organization == org && Some(u.id) == user);
        if !own {
            let rule = Rule::ADMIN_READ;
            i.check(&actor, org, rule, &names::organization(org))?;
        }
        let after = match after {
            Some(k) => Some(field(
                "page_token",
                uuid::Uuid::parse_str(&k).map_err(|_| "is not valid".to_string()),
            )?),
            None => None,
        };
        let rows = i
            .store
            .list_role_assignments(org, user, role, after, size + 1)
            .await?;
        let (rows, next_page_token) = page::cut(rows, size, &query, |last| last.id.to_string());
        Ok(pb::ListRoleAssignmentsResponse {
            role_assignments: rows.iter().map(convert::assignment).collect(),
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl RoleService for Api {
    async fn assign_role(
        &self,
        req: Request<pb::AssignRoleRequest>,
    ) -> Result<Response<pb::AssignRoleResponse>, Status> {
        DOMAIN.respond(self.0.assign_role(req).await)
    }

    async fn revoke_role(
        &self,
        req: Request<pb::RevokeRoleRequest>,
    ) -> Result<Response<pb::RevokeRoleResponse>, Status> {
        DOMAIN.respond(self.0.revoke_role(req).await)
    }

    async fn list_role_assignments(
        &self,
        req: Request<pb::ListRoleAssignmentsRequest>,
    ) -> Result<Response<pb::ListRoleAssignmentsResponse>, Status> {
        DOMAIN.respond(self.0.list_role_assignments(req).await)
    }
}
