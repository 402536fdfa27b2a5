//! Users of an organization: members and guests (I1, I2), and their states.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::entities::{role_assignment, user};
use super::*;
use crate::domain::{IdentityError, NewUser, Result, Role, User, UserKind, UserState};

/// A filter for listing users.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub email: Option<String>,
    /// Only active users.
    pub active_only: bool,
}

pub(super) fn user_of(m: user::Model) -> User {
    User {
        id: m.id,
        organization: m.organization_id,
        email: m.email,
        given_name: m.given_name,
        family_name: m.family_name,
        kind: UserKind::parse(&m.kind),
        state: UserState::parse(&m.state),
        create_time: m.create_time,
        update_time: m.update_time,
    }
}

impl Store {
    pub async fn create_user(&self, org: Uuid, new: &NewUser) -> Result<User> {
        let m = insert_user(&self.db, org, new, Utc::now())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    IdentityError::exists(
                        "USER_EXISTS",
                        format!("{} is already a user of this organization", new.email),
                    )
                } else {
                    e.into()
                }
            })?;
        Ok(user_of(m))
    }

    pub async fn get_user(&self, org: Uuid, id: Uuid) -> Result<Option<User>> {
        Ok(user::Entity::find_by_id(id)
            .filter(user::Column::OrganizationId.eq(org))
            .one(&self.db)
            .await?
            .map(user_of))
    }

    /// Every user with this email, in any organization (a guest elsewhere is another user).
    pub async fn users_by_email(&self, email: &str) -> Result<Vec<User>> {
        Ok(user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .order_by_asc(user::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(user_of)
            .collect())
    }

    /// Users of `org` ordered by email, after `after_email`.
    pub async fn list_users(
        &self,
        org: Uuid,
        filter: &UserFilter,
        after_email: Option<&str>,
        limit: u64,
    ) -> Result<Vec<User>> {
        let mut q = user::Entity::find()
            .filter(user::Column::OrganizationId.eq(org))
            .order_by_asc(user::Column::Email);
        if let Some(role) = filter.role {
            let holders = role_assignment::Entity::find()
                .select_only()
                .column(role_assignment::Column::UserId)
                .filter(role_assignment::Column::OrganizationId.eq(org))
                .filter(role_assignment::Column::Role.eq(role.as_str_name()))
                .into_query();
            q = q.filter(user::Column::Id.in_subquery(holders));
        }
        if let Some(email) = &filter.email {
            q = q.filter(user::Column::Email.eq(email.as_str()));
        }
        if filter.active_only {
            q = q.filter(user::Column::State.eq(UserState::Active.as_str()));
        }
        if let Some(after) = after_email {
            q = q.filter(user::Column::Email.gt(after));
        }
        Ok(q.limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(user_of)
            .collect())
    }

    /// Disables or enables a user; the last active account admin stays enabled.
    pub async fn set_user_state(&self, org: Uuid, id: Uuid, state: UserState) -> Result<User> {
        let txn = cosell_platform::db::begin(&self.db).await?;
        lock_organization(&txn, org).await?;
        let Some(u) = user::Entity::find_by_id(id)
            .filter(user::Column::OrganizationId.eq(org))
            .one(&txn)
            .await?
        else {
            return Err(IdentityError::NotFound(format!(
                "organizations/{org}/users/{id}"
            )));
        };
        if state == UserState::Disabled && u.state == UserState::Active.as_str() {
            let is_admin = role_assignment::Entity::find()
                .filter(role_assignment::Column::UserId.eq(id))
                .filter(role_assignment::Column::Role.eq(Role::AccountAdmin.as_str_name()))
                .count(&txn)
                .await?
                > 0;
            if is_admin && active_account_admins(&txn, org).await? <= 1 {
                return Err(last_admin());
            }
        }
        let now = Utc::now();
        user::Entity::update_many()
            .col_expr(user::Column::State, Expr::value(state.as_str()))
            .col_expr(user::Column::UpdateTime, Expr::value(now))
            .filter(user::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(User {
            state,
            update_time: now,
            ..user_of(u)
        })
    }
}

pub(super) async fn insert_user<C: ConnectionTrait>(
    c: &C,
    org: Uuid,
    new: &NewUser,
    now: DateTime<Utc>,
) -> Result<user::Model, DbErr> {
    let m = user::Model {
        id: Uuid::now_v7(),
        organization_id: org,
        email: new.email.clone(),
        given_name: new.given_name.clone(),
        family_name: new.family_name.clone(),
        kind: new.kind.as_str().into(),
        state: UserState::Active.as_str().into(),
        create_time: now,
        update_time: now,
    };
    user::Entity::insert(user::ActiveModel::from(m.clone()))
        .exec(c)
        .await?;
    Ok(m)
}
