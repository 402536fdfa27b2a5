//! `GetReferral`, `ListReferrals`, `GetEngagement` and `SetFavorite` (the caller's mark,
//! which filters lists; not a change to the referral).

use cosell_platform::auth::actor::User;
use cosell_platform::{ApiError, Violations, page};
use cosell_proto::deals as pb;
use tonic::Request;

use super::super::convert::{self, referral_pb};
use super::super::{Actor, Deals, REFERRAL_ROLES};
use super::name_field;
use crate::domain::{Direction, Party, Referral};
use crate::store::{Order, ReferralFilter};

/// Largest list page.
const MAX_PAGE: u64 = 500;

impl Deals {
    pub(super) async fn list_referrals(
        &self,
        req: Request<pb::ListReferralsRequest>,
    ) -> Result<pb::ListReferralsResponse, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let size = v.take("page_size", page::page_size(r.page_size));
        let direction = match pb::Direction::try_from(r.direction) {
            Ok(pb::Direction::Inbound) => Some(Direction::Inbound),
            Ok(pb::Direction::Outbound) => Some(Direction::Outbound),
            Ok(pb::Direction::Unspecified) => None,
            Err(_) => {
                v.add("direction", "is not a Direction");
                None
            }
        };
        let status = match pb::Status::try_from(r.status) {
            Ok(pb::Status::Unspecified) => None,
            Ok(s) => Some(stage_name(s.as_str_name(), "STATUS_")),
            Err(_) => {
                v.add("status", "is not a Status");
                None
            }
        };
        let substatus = match pb::Substatus::try_from(r.substatus) {
            Ok(pb::Substatus::Unspecified) => None,
            Ok(s) => Some(stage_name(s.as_str_name(), "SUBSTATUS_")),
            Err(_) => {
                v.add("substatus", "is not a Substatus");
                None
            }
        };
        let deal_type = if r.deal_type == 0 {
            None
        } else {
            v.take("deal_type", convert::deal_type(r.deal_type))
        };
        let order = match pb::ReferralOrder::try_from(r.order_by) {
            Ok(pb::ReferralOrder::UpdateTime) => Order::Updated,
            Ok(pb::ReferralOrder::Unspecified) => Order::Created,
            Err(_) => {
                v.add("order_by", "is not a ReferralOrder");
                Order::Created
            }
        };
        let engagement = if r.engagement.is_empty() {
            None
        } else {
            v.take(
                "engagement",
                cosell_platform::names::parse_one(&r.engagement, "engagements"),
            )
        };
        let mpn_location = convert::mpn_location(&mut v, "mpn_location", &r.mpn_location);
        let team_email = r.team_member_email.trim().to_lowercase();
        let customer_name = r.customer_name.trim().to_owned();
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let mut filter = ReferralFilter {
            party: Party::Partner,
            organization: None,
            direction,
            status,
            substatus,
            deal_type,
            customer_name: non_empty(&customer_name),
            team_email: non_empty(&team_email),
            engagement,
            favorites_of: r.favorites_only.then(|| actor.principal()),
            psc_deal_id: non_empty(r.psc_deal_id.trim()),
            mpn_location,
            locations: None,
            shared_only: false,
            order,
        };
        match &actor {
            Actor::Member(User {
                organization,
                grants,
                ..
            }) => {
                if !r.organization.is_empty()
                    && r.organization != cosell_platform::names::organization(*organization)
                {
                    v.add(
                        "organization",
                        "partners list their own organization's referrals; leave it empty",
                    );
                }
                filter.organization = Some(*organization);
                filter.locations = grants.locations_for(REFERRAL_ROLES);
                if filter.locations.as_ref().is_some_and(Vec::is_empty) {
                    v.finish()?;
                    return Err(ApiError::permission_denied(
                        "MISSING_ROLE",
                        "referrals need ROLE_REFERRALS_ADMIN or ROLE_REFERRALS_USER",
                    ));
                }
            }
            Actor::Platform(_) => {
                filter.party = Party::Platform;
                if !r.organization.is_empty() {
                    filter.organization = v.take(
                        "organization",
                        cosell_platform::names::parse_one(&r.organization, "organizations"),
                    );
                }
            }
            Actor::Service(_) => {
                return Err(ApiError::permission_denied(
                    "USERS_ONLY",
                    "this method is for users",
                ));
            }
        }
        let query = format!("{filter:?}|{}", actor.principal());
        let after = v.take("page_token", page::decode(&r.page_token, &query));
        v.finish()?;
        let size = size.unwrap_or(page::DEFAULT_PAGE_SIZE).min(MAX_PAGE);
        let after = match after.flatten() {
            None => None,
            Some(key) => Some(parse_key(&key)?),
        };
        let rows = self
            .store
            .list_for(&filter, after, size + 1, &actor.principal())
            .await?;
        let (rows, next_page_token) = page::cut(rows, size, &query, |(r, _): &(Referral, bool)| {
            let t = match order {
                Order::Created => r.create_time,
                Order::Updated => r.update_time,
            };
            format!("{}|{}", t.to_rfc3339(), r.id)
        });
        Ok(pb::ListReferralsResponse {
            referrals: rows
                .iter()
                .map(|(r, favorite)| referral_pb(r, *favorite))
                .collect(),
            next_page_token,
        })
    }

    pub(super) async fn get_referral(
        &self,
        req: Request<pb::GetReferralRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let mut v = Violations::new();
        let id = name_field(&mut v, "name", &req.get_ref().name);
        v.finish()?;
        let id = id.expect("checked");
        let (r, favorite) = self
            .store
            .get_for(id, &actor.principal())
            .await?
            .ok_or_else(|| super::super::not_found(id))?;
        self.readable(&actor, &r)?;
        Ok(referral_pb(&r, favorite))
    }

    pub(super) async fn get_engagement(
        &self,
        req: Request<pb::GetEngagementRequest>,
    ) -> Result<pb::Engagement, ApiError> {
        let actor = self.actor(&req).await?;
        let name = &req.get_ref().name;
        let mut v = Violations::new();
        let id = v.take(
            "name",
            cosell_platform::names::parse_one(name, "engagements"),
        );
        v.finish()?;
        let all = self.store.engagement(id.expect("checked")).await?;
        let create_time = all.first().map(|r| convert::timestamp(r.create_time));
        let visible: Vec<String> = all
            .iter()
            .filter(|r| self.readable(&actor, r).is_ok())
            .map(|r| convert::referral_name(r.id))
            .collect();
        if visible.is_empty() {
            return Err(ApiError::not_found(name.clone()));
        }
        Ok(pb::Engagement {
            name: name.clone(),
            referrals: visible,
            create_time,
        })
    }

    pub(super) async fn set_favorite(
        &self,
        req: Request<pb::SetFavoriteRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let id = name_field(&mut v, "name", &r.name);
        v.finish()?;
        let referral = self.load(&actor, id.expect("checked")).await?;
        self.store
            .set_favorite(&actor.principal(), referral.id, r.favorite)
            .await?;
        Ok(referral_pb(&referral, r.favorite))
    }
}

/// `STATUS_NEW` -> `NEW`.
fn stage_name(name: &'static str, prefix: &str) -> &'static str {
    name.strip_prefix(prefix).unwrap_or(name)
}

/// A page token's key: the sort time and id of the previous page's last referral.
pub(in crate::api) fn parse_key(
    key: &str,
) -> Result<(chrono::DateTime<chrono::Utc>, String), ApiError> {
    let bad = || ApiError::invalid_field("page_token", "is not a page token of this list");
    let (t, id) = key.split_once('|').ok_or_else(bad)?;
    let t = chrono::DateTime::parse_from_rfc3339(t).map_err(|_| bad())?;
    Ok((t.with_timezone(&chrono::Utc), id.to_owned()))
}
