//! The identity database: sea-orm entities, schema migrations and every query the service runs.
//!
//! Writes that check a rule over several rows (the last account admin, I3) run in one
//! transaction that first locks the organization row, so concurrent changes to one
//! organization's admins are serialized.

pub mod entities;
pub mod migration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use crate::domain::keys::NewKey;
use crate::domain::{
    IdentityError, MpnLocation, NewOrganization, NewUser, Organization, Result, Role,
    RoleAssignment, User, UserKind, UserState,
};
use entities::{
    mpn_id, organization, role_assignment, service_principal, signing_key, user, verified_domain,
};

/// What the access check needs to know about one user.
#[derive(Debug, Clone)]
pub struct UserGrants {
    pub organization: Uuid,
    pub active: bool,
    pub roles: Vec<(Role, Option<String>)>,
}

/// A filter for listing users.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub email: Option<String>,
    /// Only active users.
    pub active_only: bool,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

fn is_unique_violation(e: &DbErr) -> bool {
    let s = e.to_string().to_ascii_lowercase();
    s.contains("unique") || s.contains("duplicate key")
}

fn role_of(name: &str) -> Option<Role> {
    Role::from_str_name(name)
}

fn user_of(m: user::Model) -> User {
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

fn assignment_of(m: role_assignment::Model, email: String) -> Option<RoleAssignment> {
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
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    // ---- organizations -------------------------------------------------------------------

    /// The platform organization's id, creating it with `domain` on a new database.
    pub async fn ensure_platform_organization(&self, domain: &str) -> Result<Uuid> {
        if let Some(org) = organization::Entity::find()
            .filter(organization::Column::IsPlatform.eq(true))
            .one(&self.db)
            .await?
        {
            return Ok(org.id);
        }
        let now = Utc::now();
        let id = Uuid::now_v7();
        let txn = cosell_platform::db::begin(&self.db).await?;
        organization::Entity::insert(organization::ActiveModel {
            id: Set(id),
            display_name: Set("Platform".into()),
            tenant_id: Set(String::new()),
            is_platform: Set(true),
            isv_connect_enrolled: Set(false),
            create_time: Set(now),
            update_time: Set(now),
        })
        .exec(&txn)
        .await?;
        verified_domain::Entity::insert(verified_domain::ActiveModel {
            domain: Set(domain.to_owned()),
            organization_id: Set(id),
            create_time: Set(now),
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        Ok(id)
    }

    /// Creates an organization with its first account admin, all or nothing.
    pub async fn create_organization(
        &self,
        new: NewOrganization,
        admin: NewUser,
    ) -> Result<(Organization, User)> {
        let now = Utc::now();
        let org_id = Uuid::now_v7();
        let txn = cosell_platform::db::begin(&self.db).await?;
        for d in &new.verified_domains {
            if verified_domain::Entity::find_by_id(d.clone())
                .one(&txn)
                .await?
                .is_some()
            {
                return Err(IdentityError::exists(
                    "DOMAIN_ALREADY_VERIFIED",
                    format!("domain `{d}` is already verified by another organization"),
                ));
            }
        }
        let mut mpns = vec![new.vorg_mpn_id.clone()];
        mpns.extend(new.locations.iter().map(|l| l.mpn_id.clone()));
        for m in &mpns {
            if mpn_id::Entity::find_by_id(m.clone())
                .one(&txn)
                .await?
                .is_some()
            {
                return Err(IdentityError::exists(
                    "MPN_ID_TAKEN",
                    format!("MPN ID {m} already belongs to an organization"),
                ));
            }
        }
        organization::Entity::insert(organization::ActiveModel {
            id: Set(org_id),
            display_name: Set(new.display_name.clone()),
            tenant_id: Set(new.tenant_id.clone()),
            is_platform: Set(false),
            isv_connect_enrolled: Set(new.isv_connect_enrolled),
            create_time: Set(now),
            update_time: Set(now),
        })
        .exec(&txn)
        .await?;
        for d in &new.verified_domains {
            verified_domain::Entity::insert(verified_domain::ActiveModel {
                domain: Set(d.clone()),
                organization_id: Set(org_id),
                create_time: Set(now),
            })
            .exec(&txn)
            .await?;
        }
        insert_mpn(&txn, org_id, &new.vorg_mpn_id, "VORG", "", "", now).await?;
        for l in &new.locations {
            insert_mpn(
                &txn,
                org_id,
                &l.mpn_id,
                "LOCATION",
                &l.country_code,
                &l.city,
                now,
            )
            .await?;
        }
        let user = insert_user(&txn, org_id, &admin, now).await?;
        insert_assignment(&txn, org_id, user.id, Role::AccountAdmin, None, now).await?;
        txn.commit().await.map_err(conflict)?;
        let org = self
            .get_organization(org_id)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("organizations/{org_id}")))?;
        Ok((org, user_of(user)))
    }

    pub async fn get_organization(&self, id: Uuid) -> Result<Option<Organization>> {
        Ok(self.load_organizations(vec![id]).await?.pop())
    }

    /// Organizations ordered by id (time-ordered UUIDs), after `after`.
    pub async fn list_organizations(
        &self,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Organization>> {
        let mut q = organization::Entity::find()
            .select_only()
            .column(organization::Column::Id)
            .order_by_asc(organization::Column::Id);
        if let Some(after) = after {
            q = q.filter(organization::Column::Id.gt(after));
        }
        let ids: Vec<Uuid> = q.limit(limit).into_tuple().all(&self.db).await?;
        self.load_organizations(ids).await
    }

    /// Loads organizations with their domains and MPN IDs in three queries, in the order of
    /// `ids` (unknown ids are left out).
    async fn load_organizations(&self, ids: Vec<Uuid>) -> Result<Vec<Organization>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let orgs = organization::Entity::find()
            .filter(organization::Column::Id.is_in(ids.clone()))
            .all(&self.db)
            .await?;
        let domains = verified_domain::Entity::find()
            .filter(verified_domain::Column::OrganizationId.is_in(ids.clone()))
            .order_by_asc(verified_domain::Column::Domain)
            .all(&self.db)
            .await?;
        let mpns = mpn_id::Entity::find()
            .filter(mpn_id::Column::OrganizationId.is_in(ids.clone()))
            .order_by_asc(mpn_id::Column::MpnId)
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(org) = orgs.iter().find(|o| o.id == id) else {
                continue;
            };
            let own_mpns = mpns.iter().filter(|m| m.organization_id == id);
            out.push(Organization {
                id,
                display_name: org.display_name.clone(),
                tenant_id: org.tenant_id.clone(),
                verified_domains: domains
                    .iter()
                    .filter(|d| d.organization_id == id)
                    .map(|d| d.domain.clone())
                    .collect(),
                vorg_mpn_id: own_mpns
                    .clone()
                    .find(|m| m.kind == "VORG")
                    .map(|m| m.mpn_id.clone()),
                locations: own_mpns
                    .filter(|m| m.kind == "LOCATION")
                    .map(|m| MpnLocation {
                        mpn_id: m.mpn_id.clone(),
                        country_code: m.country_code.clone(),
                        city: m.city.clone(),
                    })
                    .collect(),
                isv_connect_enrolled: org.isv_connect_enrolled,
                platform: org.is_platform,
                create_time: org.create_time,
                update_time: org.update_time,
            });
        }
        Ok(out)
    }

    /// The organization that verified `domain`.
    pub async fn organization_of_domain(&self, domain: &str) -> Result<Option<Uuid>> {
        Ok(verified_domain::Entity::find_by_id(domain.to_owned())
            .one(&self.db)
            .await?
            .map(|d| d.organization_id))
    }

    pub async fn add_verified_domain(&self, org: Uuid, domain: &str) -> Result<()> {
        match self.organization_of_domain(domain).await? {
            Some(o) if o == org => return Ok(()),
            Some(_) => {
                return Err(IdentityError::exists(
                    "DOMAIN_ALREADY_VERIFIED",
                    format!("domain `{domain}` is already verified by another organization"),
                ));
            }
            None => {}
        }
        let now = Utc::now();
        verified_domain::Entity::insert(verified_domain::ActiveModel {
            domain: Set(domain.to_owned()),
            organization_id: Set(org),
            create_time: Set(now),
        })
        .exec(&self.db)
        .await
        .map_err(conflict)?;
        self.touch_organization(org, now).await
    }

    pub async fn add_location(&self, org: Uuid, location: &MpnLocation) -> Result<()> {
        if mpn_id::Entity::find_by_id(location.mpn_id.clone())
            .one(&self.db)
            .await?
            .is_some()
        {
            return Err(IdentityError::exists(
                "MPN_ID_TAKEN",
                format!(
                    "MPN ID {} already belongs to an organization",
                    location.mpn_id
                ),
            ));
        }
        let now = Utc::now();
        insert_mpn(
            &self.db,
            org,
            &location.mpn_id,
            "LOCATION",
            &location.country_code,
            &location.city,
            now,
        )
        .await
        .map_err(conflict)?;
        self.touch_organization(org, now).await
    }

    async fn touch_organization(&self, org: Uuid, now: DateTime<Utc>) -> Result<()> {
        organization::Entity::update_many()
            .col_expr(organization::Column::UpdateTime, Expr::value(now))
            .filter(organization::Column::Id.eq(org))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The MPN ID's row and its organization's display name.
    pub async fn lookup_mpn(&self, mpn: &str) -> Result<Option<(mpn_id::Model, String)>> {
        let Some(m) = mpn_id::Entity::find_by_id(mpn.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let name = organization::Entity::find_by_id(m.organization_id)
            .one(&self.db)
            .await?
            .map(|o| o.display_name)
            .unwrap_or_default();
        Ok(Some((m, name)))
    }

    // ---- users ---------------------------------------------------------------------------

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

    // ---- roles ---------------------------------------------------------------------------

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

    // ---- service principals --------------------------------------------------------------

    /// Registers a service principal or replaces its secret.
    pub async fn upsert_service_principal(&self, name: &str, secret_sha256: &str) -> Result<()> {
        service_principal::Entity::insert(service_principal::ActiveModel {
            name: Set(name.to_owned()),
            secret_sha256: Set(secret_sha256.to_owned()),
            create_time: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::column(service_principal::Column::Name)
                .update_column(service_principal::Column::SecretSha256)
                .to_owned(),
        )
        .exec(&self.db)
        .await?;
        Ok(())
    }

    pub async fn service_secret_hash(&self, name: &str) -> Result<Option<String>> {
        Ok(service_principal::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
            .map(|s| s.secret_sha256))
    }

    // ---- signing keys --------------------------------------------------------------------

    pub async fn signing_keys(&self) -> Result<Vec<signing_key::Model>, DbErr> {
        signing_key::Entity::find()
            .order_by_desc(signing_key::Column::CreateTime)
            .all(&self.db)
            .await
    }

    /// Stores a new signing key that starts signing at `activate`; keys still signing then
    /// stop at `activate` and stop verifying at `expire`. The first key of a new database
    /// signs at once and retires nothing.
    pub async fn insert_signing_key(
        &self,
        key: NewKey,
        now: DateTime<Utc>,
        rollover: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<()> {
        let txn = cosell_platform::db::begin(&self.db).await?;
        if let Some((activate, expire)) = rollover {
            signing_key::Entity::update_many()
                .col_expr(signing_key::Column::RetireTime, Expr::value(Some(activate)))
                .col_expr(signing_key::Column::ExpireTime, Expr::value(Some(expire)))
                .filter(signing_key::Column::RetireTime.is_null())
                .exec(&txn)
                .await?;
        }
        signing_key::Entity::insert(signing_key::ActiveModel {
            kid: Set(key.kid),
            private_pkcs8: Set(key.private_pkcs8),
            public_x: Set(key.public_x),
            create_time: Set(now),
            activate_time: Set(rollover.map(|(activate, _)| activate)),
            retire_time: Set(None),
            expire_time: Set(None),
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
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

async fn insert_mpn<C: ConnectionTrait>(
    c: &C,
    org: Uuid,
    mpn: &str,
    kind: &str,
    country: &str,
    city: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    mpn_id::Entity::insert(mpn_id::ActiveModel {
        mpn_id: Set(mpn.to_owned()),
        organization_id: Set(org),
        kind: Set(kind.to_owned()),
        country_code: Set(country.to_owned()),
        city: Set(city.to_owned()),
        create_time: Set(now),
    })
    .exec(c)
    .await?;
    Ok(())
}

async fn insert_user<C: ConnectionTrait>(
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

async fn insert_assignment<C: ConnectionTrait>(
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
