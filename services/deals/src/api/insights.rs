//! `cosell.deals.v1.InsightsService`: an organization's figures (SPEC 3.7), read from the
//! counters kept with each change ([`Store::insight_groups`](crate::store::Store::insight_groups))
//! and folded by [`insights::fold`]. Who sees what follows GetReferral's read rule: the
//! organization's referrals admins and users (only their locations when their role is scoped to
//! some), and platform users (never a PRIVATE referral).

use std::sync::Arc;

use cosell_platform::auth::actor::User;
use cosell_platform::{ApiError, Violations};
use cosell_proto::deals::{self as pb, insights_service_server::InsightsService};
use tonic::{Request, Response, Status};

use super::convert::{deal_type_pb, stage_pb};
use super::{Actor, DOMAIN, Deals, REFERRAL_ROLES};
use crate::domain::insights::{self, Tally};
use crate::store::insights::InsightScope;

pub struct InsightsApi(pub Arc<Deals>);

fn tally_pb(t: &Tally) -> pb::Tally {
    pb::Tally {
        count: t.count,
        value: t
            .value
            .iter()
            .map(|(currency, cents)| pb::CurrencyTotal {
                currency_code: currency.clone(),
                amount: amount(*cents),
            })
            .collect(),
    }
}

/// Cents as `Money.amount` writes them (`1250`, `1250.50`), for sums beyond 64
/// bits too.
fn amount(cents: i128) -> String {
    let (sign, cents) = if cents < 0 {
        ("-", -cents)
    } else {
        ("", cents)
    };
    if cents % 100 == 0 {
        format!("{sign}{}", cents / 100)
    } else {
        format!("{sign}{}.{:02}", cents / 100, cents % 100)
    }
}

impl Deals {
    /// `GetInsights`: parse, authorize (the scope the caller may read), one aggregate query,
    /// fold, convert.
    async fn get_insights(
        &self,
        req: Request<pb::GetInsightsRequest>,
    ) -> Result<pb::GetInsightsResponse, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let org = v.take(
            "parent",
            cosell_platform::names::parse_one(&r.parent, "organizations"),
        );
        let mpn = r.mpn_id.trim();
        v.finish()?;
        let organization = org.expect("checked");
        let asked = (!mpn.is_empty()).then(|| mpn.to_owned());
        let (locations, shared_only, check_mpn) = match &actor {
            Actor::Member(User {
                organization: own,
                grants,
                ..
            }) => {
                if *own != organization {
                    return Err(ApiError::not_found(r.parent.clone()));
                }
                match grants.locations_for(REFERRAL_ROLES) {
                    None => (asked.clone().map(|m| vec![m]), false, asked.is_some()),
                    Some(mine) if mine.is_empty() => {
                        return Err(ApiError::permission_denied(
                            "MISSING_ROLE",
                            "insights need ROLE_REFERRALS_ADMIN or ROLE_REFERRALS_USER",
                        ));
                    }
                    // A location-scoped caller sees its locations only (as GetReferral).
                    Some(mine) => match asked {
                        Some(m) if !mine.contains(&m) => {
                            return Err(ApiError::not_found(format!("MPN location {m}")));
                        }
                        Some(m) => (Some(vec![m]), false, false),
                        None => (Some(mine), false, false),
                    },
                }
            }
            Actor::Platform(_) => (asked.clone().map(|m| vec![m]), true, asked.is_some()),
            Actor::Service(_) => {
                return Err(ApiError::permission_denied(
                    "USERS_ONLY",
                    "this method is for users",
                ));
            }
        };
        if check_mpn {
            self.check_location("mpn_id", organization, mpn).await?;
        }
        let scope = InsightScope {
            organization,
            locations,
            shared_only,
        };
        let (groups, expiring) = self.store.insight_groups(&scope, self.now()).await?;
        let figures = insights::fold(&groups, expiring);
        Ok(pb::GetInsightsResponse {
            total: Some(tally_pb(&figures.total)),
            by_stage: figures
                .by_stage
                .iter()
                .map(|(stage, t)| {
                    let (status, substatus) = stage_pb(*stage);
                    pb::StageTally {
                        status: status as i32,
                        substatus: substatus as i32,
                        tally: Some(tally_pb(t)),
                    }
                })
                .collect(),
            by_deal_type: figures
                .by_deal_type
                .iter()
                .map(|(deal_type, t)| pb::DealTypeTally {
                    deal_type: deal_type_pb(*deal_type) as i32,
                    tally: Some(tally_pb(t)),
                })
                .collect(),
            win_rate: figures.win_rate,
            inbound_acceptance_rate: figures.inbound_acceptance_rate,
            average_seconds_to_accept: figures.average_seconds_to_accept,
            expiring_within_7_days: figures.expiring_within_7_days,
        })
    }
}

#[tonic::async_trait]
impl InsightsService for InsightsApi {
    async fn get_insights(
        &self,
        req: Request<pb::GetInsightsRequest>,
    ) -> Result<Response<pb::GetInsightsResponse>, Status> {
        DOMAIN.respond(self.0.get_insights(req).await)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_as_money_writes_them() {
        assert_eq!(super::amount(125_000), "1250");
        assert_eq!(super::amount(125_050), "1250.50");
        assert_eq!(super::amount(7), "0.07");
        // Beyond 64 bits: 100,000 referrals of 10^13 each.
        assert_eq!(
            super::amount(100_000 * 1_000_000_000_000_000),
            "1000000000000000000"
        );
    }
}
