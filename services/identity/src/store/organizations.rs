//! Organizations (the platform's and partners'), their verified domains and MPN IDs (I4-I6).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::entities::{mpn_id, organization, verified_domain};
use super::roles::insert_assignment;
use super::users::{insert_user, user_of};
use super::*;
use crate::domain::{
    IdentityError, MpnLocation, NewOrganization, NewUser, Organization, Result, Role, User,
};

impl Store {
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
