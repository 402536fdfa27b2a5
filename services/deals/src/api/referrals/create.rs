//! `CreateReferral`: a partner's new referral, by [`create::outbound`], stored by
//! [`Deals::insert`]. Also what every create shares: [`draft`] (the checks of a requested
//! referral, at the edge) and [`Deals::replay`] (D10).

use cosell_platform::auth::Grants;
use cosell_platform::auth::actor::User;
use cosell_platform::{ApiError, Violations};
use cosell_proto::deals as pb;
use tonic::Request;
use uuid::Uuid;

use super::super::convert::{self, referral_pb};
use super::super::{Actor, Deals, REFERRAL_ROLES, rule_error};
use super::request_id;
use crate::domain::change::Change;
use crate::domain::create::{self, Draft};
use crate::domain::event::Cause;
use crate::domain::{Customer, DealType, Referral};
use crate::store::Inserted;

/// Where a requested referral's customer comes from (D8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerFrom {
    /// The directory: `customer.entity` is required.
    Directory,
    /// The directory, or for a migrated deal the directory did not match (no
    /// `customer.entity`), PSC's text.
    DirectoryOrPsc,
}

/// Checks a requested referral into a [`Draft`], every bad field reported in `v`. `deal_type`
/// is the caller's (from the request, or fixed by the way in; `None`: refused, reported).
pub fn draft(
    v: &mut Violations,
    r: &pb::Referral,
    deal_type: Option<DealType>,
    customer_from: CustomerFrom,
) -> Option<Draft> {
    let display_name = convert::display_name(v, "referral.display_name", &r.display_name);
    let empty = pb::Customer::default();
    let customer = r.customer.as_ref().unwrap_or(&empty);
    if customer.entity.is_empty() && customer_from == CustomerFrom::Directory {
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
    let external = convert::external_reference_id(
        v,
        "referral.tracking.external_reference_id",
        r.tracking.as_ref(),
    );
    Some(Draft {
        mpn_location,
        deal_type: deal_type?,
        display_name: display_name?,
        entity: customer.entity.clone(),
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
    /// Stores a new engagement's referrals (the partner's first) under an optional idempotency
    /// key and returns the partner's (the one made before, on a retry: D10).
    pub async fn insert(
        &self,
        actor: &Actor,
        referrals: Vec<Referral>,
        request_id: Option<&str>,
    ) -> Result<Referral, ApiError> {
        let principal = actor.principal();
        let key = request_id.map(|r| (principal.as_str(), r));
        let events = self.events(&new_changes(&referrals), Cause::Command, &principal);
        match self.store.insert(&referrals, key, &events).await? {
            Inserted::Created => Ok(referrals.into_iter().next().expect("one referral")),
            Inserted::Replayed(id) => self.store.get(id).await?.ok_or_else(|| {
                ApiError::internal(format!("idempotency key points at missing referral {id}"))
            }),
        }
    }

    /// What a draft names outside the deals database: its MPN location, checked to be one of
    /// `organization`'s, and its customer, from the directory (D8).
    pub async fn resolve_draft(&self, organization: Uuid, d: &Draft) -> Result<Customer, ApiError> {
        if let Some(m) = &d.mpn_location {
            self.check_location("referral.mpn_location", organization, m)
                .await?;
        }
        self.resolve_customer("referral.customer.entity", &d.entity)
            .await
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

    /// `CreateReferral`: parse, authorize (a partner's referrals user, in the location's
    /// scope), look up what the rule needs, apply [`create::outbound`], store, respond; a retry
    /// is answered with the first result (D10).
    pub(super) async fn create_referral(
        &self,
        req: Request<pb::CreateReferralRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let Actor::Member(User {
            organization,
            grants,
            ..
        }) = &actor
        else {
            return Err(ApiError::permission_denied(
                "PARTNER_ONLY",
                "referrals are created by partners' referrals admins and users (platform sellers use CoSellService.CreateInboundReferral)",
            ));
        };
        let organization = *organization;
        let r = req.get_ref();
        let mut v = Violations::new();
        let request_id = request_id(&mut v, &r.request_id);
        let empty = pb::Referral::default();
        let input = r.referral.as_ref().unwrap_or(&empty);
        let deal_type = v.take("referral.deal_type", convert::deal_type(input.deal_type));
        let d = draft(&mut v, input, deal_type, CustomerFrom::Directory);
        v.finish()?;
        let d = d.ok_or_else(|| ApiError::invalid_field("referral", "is required"))?;
        authorize_create(organization, grants, d.mpn_location.as_deref())?;
        // D10 without a lookup first: the insert finds a retry's first referral by its unique
        // request key, and a retry that the rules or a peer would refuse now is answered with
        // its first result too, so that a new referral costs no extra round trip.
        let created = self
            .create_outbound(&actor, organization, d, request_id.as_deref())
            .await;
        match created {
            // New: nobody can have marked it a favorite yet.
            Ok((created, true)) => Ok(referral_pb(&created, false)),
            Ok((earlier, false)) => self.respond(&actor, &earlier).await,
            Err(e) => match self.replay(&actor, request_id.as_deref()).await {
                Ok(Some(earlier)) => self.respond(&actor, &earlier).await,
                _ => Err(e),
            },
        }
    }

    /// Looks up what the rule needs, applies [`create::outbound`] and stores the result: the
    /// referral, and whether it is new (`false`: the first referral of this request id).
    async fn create_outbound(
        &self,
        actor: &Actor,
        organization: Uuid,
        d: Draft,
        request_id: Option<&str>,
    ) -> Result<(Referral, bool), ApiError> {
        // D7 is answered with the catalog lookup, before the other services are asked anything.
        let (catalog, ready) = self
            .store
            .solutions_for(organization, &d.solution_ids())
            .await?;
        create::ensure_cosell_ready(ready).map_err(|e| rule_error(e, "referral."))?;
        let customer = self.resolve_draft(organization, &d).await?;
        let referrals = create::outbound(organization, d, customer, &catalog, self.timing())
            .map_err(|e| rule_error(e, "referral."))?;
        let id = referrals[0].id;
        let created = self.insert(actor, referrals, request_id).await?;
        let new = created.id == id;
        Ok((created, new))
    }
}

/// A partner creates referrals with a referrals role that covers the referral's MPN location.
fn authorize_create(
    organization: Uuid,
    grants: &Grants,
    mpn_location: Option<&str>,
) -> Result<(), ApiError> {
    if grants.allows(organization, REFERRAL_ROLES, mpn_location) {
        return Ok(());
    }
    Err(match grants.locations_for(REFERRAL_ROLES) {
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
    })
}

/// New referrals as changes (nothing before them), for their events.
pub(in crate::api) fn new_changes(referrals: &[Referral]) -> Vec<Change> {
    referrals
        .iter()
        .map(|r| Change {
            before: None,
            after: r.clone(),
        })
        .collect()
}
