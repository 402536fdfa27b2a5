//! `CreateReferral`: a partner's new referral.

use cosell_platform::{ApiError, Violations};
use cosell_proto::deals as pb;
use tonic::Request;
use uuid::Uuid;

use super::super::convert::{self, referral_pb};
use super::super::{Actor, Deals, REFERRAL_ROLES, rule_error};
use super::request_id;
use crate::domain::rules::{self, platform_side};
use crate::domain::{
    Customer, DealType, Direction, Party, Referral, ReferralSolution, SolutionLine, Stage, Waiting,
    attach_solutions, now,
};
use crate::store::Inserted;

/// The fields of a new referral as requested, checked but not yet resolved against the
/// catalog, the directory and identity.
pub struct Draft {
    pub mpn_location: Option<String>,
    pub deal_type: DealType,
    pub display_name: String,
    pub entity: String,
    pub customer_size: pb::CustomerSize,
    pub contacts: Vec<crate::domain::Contact>,
    pub consent_to_share: bool,
    pub assistance: Option<crate::domain::Assistance>,
    pub solutions: Vec<SolutionLine>,
    pub team: Vec<crate::domain::Contact>,
    pub deal_value: Option<crate::domain::Money>,
    pub estimated_close_date: Option<chrono::NaiveDate>,
    pub notes: String,
    pub external_reference_id: String,
}

/// Checks a requested referral; `deal_type` is taken from the request unless `fixed`.
pub fn draft(v: &mut Violations, r: &pb::Referral, fixed: Option<DealType>) -> Option<Draft> {
    let p = "referral.";
    let deal_type = match fixed {
        Some(t) => Some(t),
        None => v.take("referral.deal_type", convert::deal_type(r.deal_type)),
    };
    let display_name = convert::display_name(v, "referral.display_name", &r.display_name);
    let customer = r.customer.clone().unwrap_or_default();
    if customer.entity.is_empty() {
        v.add(
            "referral.customer.entity",
            "is required: the directory entry (`entities/{id}`) of the customer; search the directory to find it",
        );
    }
    let customer_size = convert::size(v, "referral.customer.size", customer.size);
    let contacts = convert::contacts(v, "referral.customer.contacts", &customer.contacts);
    let assistance = convert::assistance(v, "referral.assistance", r.assistance.as_ref());
    let solutions = convert::solution_lines(v, "referral.solutions", &r.solutions);
    let team = convert::contacts(v, "referral.team", &r.team);
    let deal_value = convert::money(v, "referral.deal_value", r.deal_value.as_ref());
    let estimated_close_date =
        convert::close_date(v, "referral.estimated_close_date", &r.estimated_close_date);
    let notes = convert::notes(v, "referral.notes", &r.notes);
    let mpn_location = convert::mpn_location(v, "referral.mpn_location", &r.mpn_location);
    let external = r
        .tracking
        .as_ref()
        .map(|t| t.external_reference_id.trim().to_owned())
        .unwrap_or_default();
    if external.chars().count() > 200 {
        v.add(
            format!("{p}tracking.external_reference_id"),
            "is longer than 200 characters",
        );
    }
    Some(Draft {
        mpn_location,
        deal_type: deal_type?,
        display_name: display_name?,
        entity: customer.entity,
        customer_size,
        contacts,
        consent_to_share: r.consent_to_share,
        assistance,
        solutions,
        team,
        deal_value,
        estimated_close_date,
        notes: notes?,
        external_reference_id: external,
    })
}

impl Deals {
    /// A new partner referral from a resolved draft.
    pub fn new_referral(
        &self,
        organization: Uuid,
        direction: Direction,
        stage: Stage,
        d: Draft,
        mut customer: Customer,
        solutions: Vec<ReferralSolution>,
    ) -> Referral {
        let t = now();
        customer.size = d.customer_size;
        customer.contacts = d.contacts;
        Referral {
            id: Uuid::now_v7(),
            organization,
            mpn_location: d.mpn_location,
            party: Party::Partner,
            engagement: Uuid::now_v7(),
            direction,
            deal_type: d.deal_type,
            stage,
            status_reason: String::new(),
            display_name: d.display_name,
            customer,
            consent_to_share: d.consent_to_share,
            assistance: d.assistance,
            solutions,
            team: d.team,
            deal_value: d.deal_value,
            estimated_close_date: d.estimated_close_date,
            notes: d.notes,
            seller_contact: None,
            create_time: t,
            update_time: t,
            accept_time: None,
            close_time: None,
            expire_time: matches!(stage, Stage::New(_)).then(|| t + self.expiry),
            version: 1,
            external_reference_id: d.external_reference_id,
            psc_deal_id: None,
        }
    }

    /// Stores a new engagement's referrals under an optional idempotency key and returns the
    /// first referral (the one made before, on a retry).
    pub async fn create(
        &self,
        actor: &Actor,
        referrals: Vec<Referral>,
        request_id: Option<&str>,
    ) -> Result<Referral, ApiError> {
        let principal = actor.principal();
        let key = request_id.map(|r| (principal.as_str(), r));
        match self.store.insert(&referrals, key).await? {
            Inserted::Created => Ok(referrals.into_iter().next().expect("one referral")),
            Inserted::Replayed(id) => self.store.get(id).await?.ok_or_else(|| {
                ApiError::internal(format!("idempotency key points at missing referral {id}"))
            }),
        }
    }

    /// A referral created before under the caller's `request_id`, if any (rule D10).
    pub async fn replay(
        &self,
        actor: &Actor,
        request_id: Option<&str>,
    ) -> Result<Option<Referral>, ApiError> {
        let Some(request_id) = request_id else {
            return Ok(None);
        };
        let Some(id) = self.store.replayed(&actor.principal(), request_id).await? else {
            return Ok(None);
        };
        Ok(self.store.get(id).await?)
    }

    pub(super) async fn create_referral(
        &self,
        req: Request<pb::CreateReferralRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let Actor::Partner {
            organization,
            grants,
            ..
        } = &actor
        else {
            return Err(ApiError::permission_denied(
                "PARTNER_ONLY",
                "referrals are created by partners' referrals admins and users (platform sellers use CoSellService.CreateInboundReferral)",
            ));
        };
        let r = req.get_ref();
        let mut v = Violations::new();
        let request_id = request_id(&mut v, &r.request_id);
        let d = draft(&mut v, &r.referral.clone().unwrap_or_default(), None);
        v.finish()?;
        let d = d.ok_or_else(|| ApiError::invalid_field("referral", "is required"))?;
        if !grants.allows(*organization, REFERRAL_ROLES, d.mpn_location.as_deref()) {
            return Err(match grants.locations_for(REFERRAL_ROLES) {
                Some(l) if !l.is_empty() => ApiError::permission_denied(
                    "LOCATION_SCOPE",
                    format!(
                        "your referral role covers only the MPN location(s) {}: set referral.mpn_location to one of them",
                        l.join(", ")
                    ),
                ),
                _ => ApiError::permission_denied(
                    "MISSING_ROLE",
                    "creating referrals needs ROLE_REFERRALS_ADMIN or ROLE_REFERRALS_USER",
                ),
            });
        }
        if let Some(earlier) = self.replay(&actor, request_id.as_deref()).await? {
            return self.respond(&actor, &earlier).await;
        }
        let ids: Vec<Uuid> = d.solutions.iter().map(|l| l.solution).collect();
        let (found, ready) = self.store.solutions_for(*organization, &ids).await?;
        if !ready {
            return Err(ApiError::failed_precondition(
                "NO_COSELL_READY_SOLUTION",
                "the organization has no co-sell-ready solution yet; publish one in the catalog and have it marked co-sell ready",
            ));
        }
        if let Some(m) = &d.mpn_location {
            self.check_location("referral.mpn_location", *organization, m)
                .await?;
        }
        let customer = self
            .resolve_customer("referral.customer.entity", &d.entity)
            .await?;
        let solutions =
            attach_solutions(&d.solutions, &found).map_err(|e| rule_error(e, "referral."))?;
        let stage = if d.deal_type == DealType::CoSell {
            Stage::New(Waiting::Pending)
        } else {
            Stage::Active
        };
        let partner = self.new_referral(
            *organization,
            Direction::Outbound,
            stage,
            d,
            customer,
            solutions,
        );
        rules::check_deal_type(&partner).map_err(|e| rule_error(e, "referral."))?;
        let mut referrals = vec![partner.clone()];
        if partner.deal_type == DealType::CoSell {
            referrals.push(self.platform_side(&partner));
        }
        let created = self
            .create(&actor, referrals, request_id.as_deref())
            .await?;
        if created.id == partner.id {
            // New: nobody can have marked it a favorite yet.
            return Ok(referral_pb(&created, false));
        }
        self.respond(&actor, &created).await
    }

    /// The platform's referral for the partner's co-sell request, expiring like any invitation.
    pub fn platform_side(&self, partner: &Referral) -> Referral {
        let t = now();
        let mut p = platform_side(partner, Uuid::now_v7(), t);
        p.expire_time = Some(t + self.expiry);
        p
    }
}
