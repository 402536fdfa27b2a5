//! The platform operators' review queue of deal registrations (SPEC 3.8): partners' referrals
//! with one registration status, oldest registration first, paged by key on the index
//! `referrals_by_registration` (status, registration time, id).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::entities::referral;
use super::{Result, Store};
use crate::domain::registration::RegistrationStatus;
use crate::domain::{Party, Referral};

impl Store {
    /// One page of the registrations in `status` (of `organization` only, when given), after
    /// `after` (the registration time and id of the previous page's last).
    pub async fn list_registrations(
        &self,
        status: RegistrationStatus,
        organization: Option<Uuid>,
        after: Option<(DateTime<Utc>, String)>,
        limit: u64,
    ) -> Result<Vec<Referral>> {
        use referral::Column as C;
        let mut q = referral::Entity::find()
            .filter(C::RegistrationStatus.eq(status.as_str()))
            .filter(C::Party.eq(Party::Partner.as_str()));
        if let Some(org) = organization {
            q = q.filter(C::Organization.eq(org.to_string()));
        }
        if let Some((t, id)) = after {
            q = q.filter(
                Expr::tuple([Expr::col(C::RegistrationTime), Expr::col(C::Id)])
                    .gt(Expr::tuple([Expr::val(t), Expr::val(id)])),
            );
        }
        q.order_by_asc(C::RegistrationTime)
            .order_by_asc(C::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .iter()
            .map(referral::to_domain)
            .collect()
    }
}
