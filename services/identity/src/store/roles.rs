//! Role assignments (I3: never the last account admin) and what the access check reads.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::entities::{role_assignment, user};
use super::*;
use crate::domain::{IdentityError, Result, Role, RoleAssignment, UserState};

/// What the access check needs to know about one user.
#[derive(Debug, Clone)]
pub struct UserGrants {
    pub organization: Uuid,
    pub active: bool,
    pub roles: Vec<(Role, Option<String>)>,
}

pub(super) fn role_of(name: &str) -> Option<Role> {
    Role::from_str_name(name)
}

pub(super) fn assignment_of(m: role_assignment::Model, email: String) -> Option<RoleAssignment> {
    Some(RoleAssignment {
        id: m.id,
        organization: m.organization_id,
        user: m.user_id,
        user_email: email,
        role: role_of(&m.role)?,
        scope: (!m.scope.is_empty()).then_some(m.scope),
        create_time: m.create_time,
    })
}

impl Store {
    /// Gives `user` the role at `scope`; an existing identical assignment is returned as is.
    pub async fn assign_role(
        &self,
        org: Uuid,
        user_id: Uuid,
        role: Role,
        scope: Option<&str>,
    ) -> Result<RoleAssignment> {
        let Some(u) = self.get_user(org, user_id).await? else {
            return Err(IdentityError::NotFound(format!(
                "organizations/{org}/users/{user_id}"
            )));
        };
        let now = Utc::now();
        // Assigning a held role again is not an error: the existing assignment is returned.
        if let Err(e) = insert_assignment(&self.db, org, user_id, role, scope, now).await
            && !is_unique_violation(&e)
        {
            return Err(e.into());
        }
        let existing = role_assignment::Entity::find()
            .filter(role_assignment::Column::UserId.eq(user_id))
            .filter(role_assignment::Column::Role.eq(role.as_str_name()))
            .filter(role_assignment::Column::Scope.eq(scope.unwrap_or_default()))
            .one(&self.db)
            .await?
            .ok_or_else(|| {
                IdentityError::Storage(DbErr::RecordNotFound("role assignment".into()))
            })?;
        assignment_of(existing, u.email)
            .ok_or_else(|| IdentityError::Storage(DbErr::Custom("unknown role".into())))
    }

    /// Removes an assignment; refuses to remove the last active account admin (rule I3).
    pub async fn revoke_role(&self, org: Uuid, id: Uuid) -> Result<RoleAssignment> {
        let txn = cosell_platform::db::begin(&self.db).await?;
        lock_organization(&txn, org).await?;
        let Some(a) = role_assignment::Entity::find_by_id(id)
            .filter(role_assignment::Column::OrganizationId.eq(org))
            .one(&txn)
            .await?
        else {
            return Err(IdentityError::NotFound(format!(
                "organizations/{org}/roleAssignments/{id}"
            )));
        };
        let holder = user::Entity::find_by_id(a.user_id).one(&txn).await?;
        let holder_active = holder
            .as_ref()
            .is_some_and(|u| u.state == UserState::Active.as_str());
        if a.role == Role::AccountAdmin.as_str_name()
            && holder_active
            && active_account_admins(&txn, org).await? <= 1
        {
            return Err(last_admin());
        }
        role_assignment::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        let email = holder.map(|u| u.email).unwrap_or_default();
        assignment_of(a, email)
            .ok_or_else(|| IdentityError::Storage(DbErr::Custom("unknown role".into())))
    }

    pub async fn get_role_assignment(&self, org: Uuid, id: Uuid) -> Result<Option<RoleAssignment>> {
        let Some(a) = role_assignment::Entity::find_by_id(id)
            .filter(role_assignment::Column::OrganizationId.eq(org))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let email = user::Entity::find_by_id(a.user_id)
            .one(&self.db)
            .await?
            .map(|u| u.email)
            .unwrap_or_default();
        Ok(assignment_of(a, email))
    }

    /// Assignments of `org` ordered by id, after `after`.
    pub async fn list_role_assignments(
        &self,
        org: Uuid,
        user_id: Option<Uuid>,
        role: Option<Role>,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<RoleAssignment>> {
        let mut q = role_assignment::Entity::find()
            .filter(role_assignment::Column::OrganizationId.eq(org))
            .order_by_asc(role_assignment::Column::Id);
        if let Some(u) = user_id {
            q = q.filter(role_assignment::Column::UserId.eq(u));
        }
        if let Some(r) = role {
            q = q.filter(role_assignment::Column::Role.eq(r.as_str_name()));
        }
        if let Some(a) = after {
            q = q.filter(role_assignment::Column::Id.gt(a));
        }
        let rows = q.limit(limit).all(&self.db).await?;
        let user_ids: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
        let emails: std::collections::HashMap<Uuid, String> = user::Entity::find()
            .filter(user::Column::Id.is_in(user_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.email))
            .collect();
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let email = emails.get(&r.user_id).cloned().unwrap_or_default();
                assignment_of(r, email)
            })
            .collect())
    }

    /// A user's organization, state and roles; `None` for an unknown user.
    pub async fn user_grants(&self, user_id: Uuid) -> Result<Option<UserGrants>> {
        let Some(u) = user::Entity::find_by_id(user_id).one(&self.db).await? else {
            return Ok(None);
        };
        let roles = role_assignment::Entity::find()
            .filter(role_assignment::Column::UserId.eq(user_id))
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|a| Some((role_of(&a.role)?, (!a.scope.is_empty()).then_some(a.scope))))
            .collect();
        Ok(Some(UserGrants {
            organization: u.organization_id,
            active: u.state == UserState::Active.as_str(),
            roles,
        }))
    }
}

pub(super) async fn insert_assignment<C: ConnectionTrait>(
    c: &C,
    org: Uuid,
    user_id: Uuid,
    role: Role,
    scope: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    role_assignment::Entity::insert(role_assignment::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org),
        user_id: Set(user_id),
        role: Set(role.as_str_name().into()),
        scope: Set(scope.unwrap_or_default().into()),
        create_time: Set(now),
    })
    .exec(c)
    .await?;
    Ok(())
}
