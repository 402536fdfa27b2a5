//! `UpdateReferral` (the fields of a field mask, by [`update::apply`]) and the partner's verbs,
//! each a rule of [`rules`]: `AcceptReferral` ([`rules::accept`]), `DeclineReferral`
//! ([`rules::decline`]), `MarkReferralWon` and `MarkReferralLost` ([`rules::finish`]; won, it
//! answers whether the deal can be registered: `registration`),
//! `UpgradeDealType` ([`rules::upgrade`]). All of them write through [`Deals::mutate`].

use cosell_platform::{ApiError, Violations};
use cosell_proto::deals as pb;
use tonic::Request;

use super::super::convert;
use super::super::{Actor, Deals, rule_error};
use super::name_field;
use crate::domain::update::{self, Edit};
use crate::domain::{Outcome, Referral, rules};

impl Deals {
    /// `UpdateReferral`: parse the mask into an [`Edit`], resolve the customer and solutions
    /// it names, then load, authorize, apply [`update::apply`] and store by [`Deals::mutate`].
    pub(super) async fn update_referral(
        &self,
        req: Request<pb::UpdateReferralRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let empty = pb::Referral::default();
        let input = r.referral.as_ref().unwrap_or(&empty);
        let mut v = Violations::new();
        let id = name_field(&mut v, "referral.name", &input.name);
        let paths = r.update_mask.as_ref().map_or(&[][..], |m| &m.paths[..]);
        if paths.is_empty() {
            v.add(
                "update_mask",
                "is required: name the fields to change (e.g. `notes`, `team`, `deal_value`)",
            );
        }
        let mut edit = Edit::default();
        for path in paths {
            parse_path(&mut edit, &mut v, path, input);
        }
        v.finish()?;
        let id = id.expect("checked");
        // Resolve what needs other services before the write, once.
        let customer = match &edit.entity {
            Some(entity) => Some(
                self.resolve_customer("referral.customer.entity", entity)
                    .await?,
            ),
            None => None,
        };
        let solutions = match &edit.solutions {
            Some(lines) => Some(self.resolve_solutions(lines).await?),
            None => None,
        };
        let updated = self
            .mutate(&actor, id, &input.etag, |next, _peer| {
                self.writable(&actor, next)?;
                update::apply(next, &edit, customer.clone(), solutions.clone())
                    .map_err(|e| rule_error(e, "referral."))
            })
            .await?;
        self.respond(&actor, &updated).await
    }

    /// Runs a partner verb through [`Deals::mutate`]; answers the referral as changed.
    async fn change<F>(
        &self,
        actor: &Actor,
        name: &str,
        etag: &str,
        f: F,
    ) -> Result<Referral, ApiError>
    where
        F: Fn(&mut Referral, &mut Option<Referral>) -> Result<(), rules::RuleError>,
    {
        let mut v = Violations::new();
        let id = name_field(&mut v, "name", name);
        v.finish()?;
        let id = id.expect("checked");
        self.mutate(actor, id, etag, |next, peer| {
            self.writable(actor, next)?;
            f(next, peer).map_err(|e| rule_error(e, ""))
        })
        .await
    }

    /// [`Deals::change`], answered as the contract shows it.
    async fn verb<F>(
        &self,
        actor: &Actor,
        name: &str,
        etag: &str,
        f: F,
    ) -> Result<pb::Referral, ApiError>
    where
        F: Fn(&mut Referral, &mut Option<Referral>) -> Result<(), rules::RuleError>,
    {
        let updated = self.change(actor, name, etag, f).await?;
        self.respond(actor, &updated).await
    }

    pub(super) async fn accept_referral(
        &self,
        req: Request<pb::AcceptReferralRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        self.verb(&actor, &r.name, &r.etag, |next, _| {
            rules::accept(next, self.now())
        })
        .await
    }

    pub(super) async fn decline_referral(
        &self,
        req: Request<pb::DeclineReferralRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        self.verb(&actor, &r.name, &r.etag, |next, peer| {
            rules::decline(next, peer.as_mut(), &r.reason, self.now())
        })
        .await
    }

    /// `MarkReferralWon`, answered with whether the won deal can be registered (3.8).
    pub(super) async fn mark_referral_won(
        &self,
        req: Request<pb::MarkReferralWonRequest>,
    ) -> Result<pb::MarkReferralWonResponse, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let won = self
            .change(&actor, &r.name, &r.etag, |next, peer| {
                rules::finish(next, peer.as_mut(), Outcome::Won, "", self.now())
            })
            .await?;
        let check = self.registration_check(&won).await?;
        Ok(pb::MarkReferralWonResponse {
            referral: Some(self.respond(&actor, &won).await?),
            registration_check: Some(convert::registration_check_pb(&check)),
        })
    }

    pub(super) async fn mark_referral_lost(
        &self,
        req: Request<pb::MarkReferralLostRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        self.verb(&actor, &r.name, &r.etag, |next, peer| {
            rules::finish(next, peer.as_mut(), Outcome::Lost, &r.reason, self.now())
        })
        .await
    }

    pub(super) async fn upgrade_deal_type(
        &self,
        req: Request<pb::UpgradeDealTypeRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let to = v.take("deal_type", convert::deal_type(r.deal_type));
        let assistance = convert::assistance(&mut v, "assistance", r.assistance.as_ref());
        v.finish()?;
        let to = to.expect("checked");
        self.verb(&actor, &r.name, &r.etag, |next, peer| {
            rules::upgrade(next, peer, to, assistance.clone(), self.timing())
        })
        .await
    }
}

/// What the mask may name.
const UPDATABLE: &str = "display_name, customer, customer.entity, customer.size, customer.contacts, consent_to_share, assistance, solutions, team, deal_value, estimated_close_date, notes, tracking.external_reference_id";

/// Parses the field of `r` at mask path `path` into `edit`.
fn parse_path(edit: &mut Edit, v: &mut Violations, path: &str, r: &pb::Referral) {
    let empty = pb::Customer::default();
    let customer = r.customer.as_ref().unwrap_or(&empty);
    match path {
        "display_name" => {
            edit.display_name =
                convert::display_name(v, "referral.display_name", &r.display_name)
        }
        "customer" | "customer.entity" | "customer.size" | "customer.contacts" => {
            if matches!(path, "customer" | "customer.entity") {
                if customer.entity.is_empty() {
                    v.add(
                        "referral.customer.entity",
                        "is required: the directory entry (`entities/{id}`)",
                    );
                }
                edit.entity = Some(customer.entity.clone());
            }
            if matches!(path, "customer" | "customer.size") {
                edit.size = Some(convert::size(v, "referral.customer.size", customer.size));
            }
            if matches!(path, "customer" | "customer.contacts") {
                edit.contacts = Some(convert::contacts(
                    v,
                    "referral.customer.contacts",
                    &customer.contacts,
                ));
            }
        }
        "consent_to_share" => edit.consent = Some(r.consent_to_share),
        "assistance" => {
            edit.assistance = Some(convert::assistance(
                v,
                "referral.assistance",
                r.assistance.as_ref(),
            ))
        }
        "solutions" => {
            edit.solutions = Some(convert::solution_lines(
                v,
                "referral.solutions",
                &r.solutions,
            ))
        }
        "team" => edit.team = Some(convert::contacts(v, "referral.team", &r.team)),
        "deal_value" => {
            edit.deal_value = Some(convert::money(
                v,
                "referral.deal_value",
                r.deal_value.as_ref(),
            ))
        }
        "estimated_close_date" => {
            edit.close_date = Some(convert::close_date(
                v,
                "referral.estimated_close_date",
                &r.estimated_close_date,
            ))
        }
        "notes" => edit.notes = convert::notes(v, "referral.notes", &r.notes),
        "tracking" | "tracking.external_reference_id" => {
            edit.external_reference_id = Some(convert::external_reference_id(
                v,
                "referral.tracking.external_reference_id",
                r.tracking.as_ref(),
            ))
        }
        other => v.add(
            "update_mask",
            format!(
                "`{other}` cannot be updated; updatable: {UPDATABLE} (status changes have their own methods)"
            ),
        ),
    }
}
