//! `cosell.identity.v1.UserService`.

use std::sync::Arc;

use cosell_platform::{ApiError, Violations, names, page};
use cosell_proto::identity::{self as pb, user_service_server::UserService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::errors::DOMAIN;
use super::{Identity, Rule, convert, field};
use crate::domain::{
    IdentityError, NewUser, Role, USER_ADMIN_ROLES, UserKind, UserState, validate,
};
use crate::store::UserFilter;

pub struct Api(pub Arc<Identity>);

/// Checked fields of CreateUser and InviteGuestUser.
struct UserInput {
    org: Uuid,
    email: String,
    domain: String,
    given_name: String,
    family_name: String,
}

fn parse_user_input(
    parent: &str,
    email: &str,
    given: &str,
    family: &str,
) -> Result<UserInput, IdentityError> {
    let mut v = Violations::new();
    let org = v.take("parent", names::parse_one(parent, "organizations"));
    let email = v.take("email", validate::work_email(email));
    let given = v.take("given_name", validate::text(given, 100, false));
    let family = v.take("family_name", validate::text(family, 100, false));
    v.finish()?;
    match (org, email, given, family) {
        (Some(org), Some((email, domain)), Some(given_name), Some(family_name)) => Ok(UserInput {
            org,
            email,
            domain,
            given_name,
            family_name,
        }),
        _ => Err(IdentityError::Internal(
            "validation passed with a missing field".into(),
        )),
    }
}

impl Identity {
    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Result<pb::CreateUserResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let r = req.into_inner();
        let input = parse_user_input(&r.parent, &r.email, &r.given_name, &r.family_name)?;
        let resource = names::organization(input.org);
        let rule = Rule {
            roles: USER_ADMIN_ROLES,
            services: &["migration"],
            platform_operator: true,
            ..Rule::default()
        };
        i.check(&actor, input.org, rule, &resource)?;
        if i.store.get_organization(input.org).await?.is_none() {
            return Err(IdentityError::NotFound(resource).into());
        }
        // Rule I2: a member's domain is a verified domain of the organization.
        if i.store.organization_of_domain(&input.domain).await? != Some(input.org) {
            return Err(IdentityError::precondition(
                "DOMAIN_NOT_VERIFIED",
                format!("email:{}", input.email),
                format!(
                    "`{}` is not a verified domain of this organization; a user of another domain must be invited as a guest by a global admin (InviteGuestUser)",
                    input.domain
                ),
            )
            .into());
        }
        let user = i
            .store
            .create_user(
                input.org,
                &NewUser {
                    email: input.email,
                    given_name: input.given_name,
                    family_name: input.family_name,
                    kind: UserKind::Member,
                },
            )
            .await?;
        Ok(pb::CreateUserResponse {
            user: Some(convert::user(&user)),
        })
    }

    async fn invite_guest_user(
        &self,
        req: Request<pb::InviteGuestUserRequest>,
    ) -> Result<pb::InviteGuestUserResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let r = req.into_inner();
        let input = parse_user_input(&r.parent, &r.email, &r.given_name, &r.family_name)?;
        let resource = names::organization(input.org);
        let rule = Rule {
            roles: &[Role::GlobalAdmin],
            ..Rule::default()
        };
        // Rule I2: only a global admin invites guests (in the platform organization, its
        // operators).
        let platform_target = input.org == i.platform_org && i.is_platform_operator(&actor);
        if !platform_target {
            i.check(&actor, input.org, rule, &resource)?;
        }
        if i.store.get_organization(input.org).await?.is_none() {
            return Err(IdentityError::NotFound(resource).into());
        }
        if i.store.organization_of_domain(&input.domain).await? == Some(input.org) {
            return Err(IdentityError::precondition(
                "MEMBER_DOMAIN",
                format!("email:{}", input.email),
                format!("`{}` is a verified domain of this organization: create a member user instead (CreateUser)", input.domain),
            )
            .into());
        }
        let user = i
            .store
            .create_user(
                input.org,
                &NewUser {
                    email: input.email,
                    given_name: input.given_name,
                    family_name: input.family_name,
                    kind: UserKind::Guest,
                },
            )
            .await?;
        Ok(pb::InviteGuestUserResponse {
            user: Some(convert::user(&user)),
        })
    }

    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<pb::GetUserResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let (org, id) = field(
            "name",
            names::parse_two(&req.get_ref().name, "organizations", "users"),
        )?;
        let resource = req.get_ref().name.clone();
        let rule = Rule::READ;
        i.check(&actor, org, rule, &resource)?;
        let user = i
            .store
            .get_user(org, id)
            .await?
            .ok_or(IdentityError::NotFound(resource))?;
        let assignments = i
            .store
            .list_role_assignments(org, Some(id), None, None, 1000)
            .await?;
        Ok(pb::GetUserResponse {
            user: Some(convert::user(&user)),
            role_assignments: assignments.iter().map(convert::assignment).collect(),
        })
    }

    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> Result<pb::ListUsersResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let org = v.take("parent", names::parse_one(&r.parent, "organizations"));
        let role = v.take("role", super::role_field(r.role)).flatten();
        let email = if r.email.is_empty() {
            None
        } else {
            v.take("email", validate::email(&r.email)).map(|(e, _)| e)
        };
        let size = v.take("page_size", page::page_size(r.page_size));
        let query = format!("users|{}|{}|{}", r.parent, r.role, r.email);
        let after = v.take("page_token", page::decode(&r.page_token, &query));
        v.finish().map_err(IdentityError::from)?;
        let (Some(org), Some(size), Some(after)) = (org, size, after) else {
            return Err(ApiError::internal("validation passed with a missing field"));
        };
        let resource = names::organization(org);
        let rule = Rule::ADMIN_READ;
        i.check(&actor, org, rule, &resource)?;
        let filter = UserFilter {
            role,
            email,
            active_only: false,
        };
        let users = i
            .store
            .list_users(org, &filter, after.as_deref(), size + 1)
            .await?;
        let (users, next_page_token) = page::cut(users, size, &query, |last| last.email.clone());
        Ok(pb::ListUsersResponse {
            users: users.iter().map(convert::user).collect(),
            next_page_token,
        })
    }

    async fn list_admins(
        &self,
        req: Request<pb::ListAdminsRequest>,
    ) -> Result<pb::ListAdminsResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let org = field(
            "parent",
            names::parse_one(&req.get_ref().parent, "organizations"),
        )?;
        let resource = names::organization(org);
        let rule = Rule::READ;
        i.check(&actor, org, rule, &resource)?;
        let mut lists = Vec::new();
        for role in [Role::AccountAdmin, Role::GlobalAdmin] {
            let filter = UserFilter {
                role: Some(role),
                email: None,
                active_only: true,
            };
            let users = i
                .store
                .list_users(org, &filter, None, page::MAX_PAGE_SIZE)
                .await?;
            lists.push(users.iter().map(convert::user).collect::<Vec<_>>());
        }
        let global_admins = lists.pop().unwrap_or_default();
        let account_admins = lists.pop().unwrap_or_default();
        Ok(pb::ListAdminsResponse {
            account_admins,
            global_admins,
        })
    }

    async fn set_user_state(
        &self,
        req: Request<pb::SetUserStateRequest>,
    ) -> Result<pb::SetUserStateResponse, ApiError> {
        let i = self;
        let actor = i.actor(&req).await?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let ids = v.take("name", names::parse_two(&r.name, "organizations", "users"));
        let state = match pb::UserState::try_from(r.state) {
            Ok(pb::UserState::Active) => Some(UserState::Active),
            Ok(pb::UserState::Disabled) => Some(UserState::Disabled),
            _ => {
                v.add("state", "must be USER_STATE_ACTIVE or USER_STATE_DISABLED");
                None
            }
        };
        v.finish().map_err(IdentityError::from)?;
        let (Some((org, id)), Some(state)) = (ids, state) else {
            return Err(ApiError::internal("validation passed with a missing field"));
        };
        let rule = Rule::ADMIN_WRITE;
        i.check(&actor, org, rule, &r.name)?;
        if actor.user().is_some_and(|me| me.id == id) && state == UserState::Disabled {
            return Err(IdentityError::precondition(
                "SELF_DISABLE",
                r.name,
                "you cannot disable yourself",
            )
            .into());
        }
        let user = i.store.set_user_state(org, id, state).await?;
        i.invalidate(id);
        Ok(pb::SetUserStateResponse {
            user: Some(convert::user(&user)),
        })
    }
}

#[tonic::async_trait]
impl UserService for Api {
    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        DOMAIN.respond(self.0.create_user(req).await)
    }

    async fn invite_guest_user(
        &self,
        req: Request<pb::InviteGuestUserRequest>,
    ) -> Result<Response<pb::InviteGuestUserResponse>, Status> {
        DOMAIN.respond(self.0.invite_guest_user(req).await)
    }

    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        DOMAIN.respond(self.0.get_user(req).await)
    }

    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        DOMAIN.respond(self.0.list_users(req).await)
    }

    async fn list_admins(
        &self,
        req: Request<pb::ListAdminsRequest>,
    ) -> Result<Response<pb::ListAdminsResponse>, Status> {
        DOMAIN.respond(self.0.list_admins(req).await)
    }

    async fn set_user_state(
        &self,
        req: Request<pb::SetUserStateRequest>,
    ) -> Result<Response<pb::SetUserStateResponse>, Status> {
        DOMAIN.respond(self.0.set_user_state(req).await)
    }
}
