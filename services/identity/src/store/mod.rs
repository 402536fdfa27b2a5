//! The identity database: sea-orm entities, schema migrations and every query the service runs,
//! by resource: [`organizations`] (domains, MPN IDs), [`users`], [`roles`] (assignments and the
//! access check's grants), [`credentials`] (service principals, signing keys).
//!
//! Writes that check a rule over several rows (the last account admin, I3) run in one
//! transaction that first locks the organization row, so concurrent changes to one
//! organization's admins are serialized.

mod credentials;
pub mod entities;
pub mod migration;
mod organizations;
mod roles;
mod users;

pub use roles::UserGrants;
pub use users::UserFilter;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use crate::domain::{IdentityError, Result, Role, UserState};
use entities::{organization, role_assignment, user};

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

fn is_unique_violation(e: &DbErr) -> bool {
    let s = e.to_string().to_ascii_lowercase();
    s.contains("unique") || s.contains("duplicate key")
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}

fn conflict(e: DbErr) -> IdentityError {
    if is_unique_violation(&e) {
        IdentityError::exists(
            "CONFLICT",
            "a concurrent change took this name or ID first; retry",
        )
    } else {
        e.into()
    }
}

fn last_admin() -> IdentityError {
    IdentityError::precondition(
        "LAST_ACCOUNT_ADMIN",
        "role_assignments",
        "this is the organization's last account admin; assign ROLE_ACCOUNT_ADMIN to someone else first",
    )
}

/// Serializes admin changes of one organization (FOR UPDATE on PostgreSQL; SQLite has a single
/// writer anyway).
async fn lock_organization<C: ConnectionTrait>(c: &C, org: Uuid) -> Result<()> {
    let q = organization::Entity::find_by_id(org);
    let found = if c.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        q.lock_exclusive().one(c).await?
    } else {
        q.one(c).await?
    };
    found
        .map(|_| ())
        .ok_or_else(|| IdentityError::NotFound(format!("organizations/{org}")))
}

async fn active_account_admins<C: ConnectionTrait>(c: &C, org: Uuid) -> Result<u64> {
    let holders = role_assignment::Entity::find()
        .select_only()
        .column(role_assignment::Column::UserId)
        .filter(role_assignment::Column::OrganizationId.eq(org))
        .filter(role_assignment::Column::Role.eq(Role::AccountAdmin.as_str_name()))
        .into_query();
    Ok(user::Entity::find()
        .filter(user::Column::Id.in_subquery(holders))
        .filter(user::Column::State.eq(UserState::Active.as_str()))
        .count(c)
        .await?)
}
