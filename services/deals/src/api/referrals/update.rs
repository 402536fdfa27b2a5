//! `UpdateReferral` (the fields of a field mask) and the partner's verbs: `AcceptReferral`,
//! `DeclineReferral`, `MarkReferralWon`, `MarkReferralLost`, `UpgradeDealType`.

use cosell_platform::{ApiError, Violations};
use cosell_proto::deals as pb;
use tonic::Request;

use super::super::convert;
use super::super::{Actor, Deals, rule_error};
use super::name_field;
use crate::domain::rules;
use crate::domain::{Customer, Outcome, Referral, ReferralSolution, SolutionLine};

impl Deals {
    pub(super) async fn update_referral(
        &self,
        req: Request<pb::UpdateReferralRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let input = r.referral.clone().unwrap_or_default();
        let mut v = Violations::new();
        let id = name_field(&mut v, "referral.name", &input.name);
        let paths = r
            .update_mask
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default();
        if paths.is_empty() {
            v.add(
                "update_mask",
                "is required: name the fields to change (e.g. `notes`, `team`, `deal_value`)",
            );
        }
        let mut change = Change::default();
        for path in &paths {
            change.parse(&mut v, path, &input);
        }
        v.finish()?;
        let id = id.expect("checked");
        // Resolve what needs other services before the write, once.
        let customer = match &change.entity {
            Some(entity) => Some(
                self.resolve_customer("referral.customer.entity", entity)
                    .await?,
            ),
            None => None,
        };
        let solutions = match &change.solutions {
            Some(lines) => Some(self.resolve_solutions(lines).await?),
            None => None,
        };
        let updated = self
            .mutate(&actor, id, &input.etag, |next, _peer| {
                self.writable(&actor, next)?;
                rules::ensure_open(next).map_err(|e| rule_error(e, "referral."))?;
                change.apply(next, customer.clone(), solutions.clone());
                rules::check_deal_type(next).map_err(|e| rule_error(e, "referral."))
            })
            .await?;
        self.respond(&actor, &updated).await
    }

    /// Runs a partner verb through [`Deals::mutate`].
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
        let mut v = Violations::new();
        let id = name_field(&mut v, "name", name);
        v.finish()?;
        let id = id.expect("checked");
        let updated = self
            .mutate(actor, id, etag, |next, peer| {
                self.writable(actor, next)?;
                f(next, peer).map_err(|e| rule_error(e, ""))
            })
            .await?;
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

    pub(super) async fn mark_referral_won(
        &self,
        req: Request<pb::MarkReferralWonRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        self.verb(&actor, &r.name, &r.etag, |next, peer| {
            rules::finish(next, peer.as_mut(), Outcome::Won, "", self.now())
        })
        .await
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

/// The parsed fields of an update, by mask path.
#[derive(Default)]
struct Change {
    display_name: Option<String>,
    entity: Option<String>,
    size: Option<pb::CustomerSize>,
    contacts: Option<Vec<crate::domain::Contact>>,
    consent: Option<bool>,
    assistance: Option<Option<crate::domain::Assistance>>,
    solutions: Option<Vec<SolutionLine>>,
    team: Option<Vec<crate::domain::Contact>>,
    deal_value: Option<Option<crate::domain::Money>>,
    close_date: Option<Option<chrono::NaiveDate>>,
    notes: Option<String>,
    external_reference_id: Option<String>,
}

impl Change {
    fn parse(&mut self, v: &mut Violations, path: &str, r: &pb::Referral) {
        let customer = r.customer.clone().unwrap_or_default();
        match path {
            "display_name" => {
                self.display_name = convert::display_name(v, "referral.display_name", &r.display_name)
            }
            "customer" | "customer.entity" | "customer.size" | "customer.contacts" => {
                if matches!(path, "customer" | "customer.entity") {
                    if customer.entity.is_empty() {
                        v.add("referral.customer.entity", "is required: the directory entry (`entities/{id}`)");
                    }
                    self.entity = Some(customer.entity.clone());
                }
                if matches!(path, "customer" | "customer.size") {
                    self.size = Some(convert::size(v, "referral.customer.size", customer.size));
                }
                if matches!(path, "customer" | "customer.contacts") {
                    self.contacts = Some(convert::contacts(
                        v,
                        "referral.customer.contacts",
                        &customer.contacts,
                    ));
                }
            }
            "consent_to_share" => self.consent = Some(r.consent_to_share),
            "assistance" => {
                self.assistance = Some(convert::assistance(
                    v,
                    "referral.assistance",
                    r.assistance.as_ref(),
                ))
            }
            "solutions" => {
                self.solutions = Some(convert::solution_lines(v, "referral.solutions", &r.solutions))
            }
            "team" => self.team = Some(convert::contacts(v, "referral.team", &r.team)),
            "deal_value" => {
                self.deal_value = Some(convert::money(v, "referral.deal_value", r.deal_value.as_ref()))
            }
            "estimated_close_date" => {
                self.close_date = Some(convert::close_date(
                    v,
                    "referral.estimated_close_date",
                    &r.estimated_close_date,
                ))
            }
            "notes" => self.notes = convert::notes(v, "referral.notes", &r.notes),
            "tracking" | "tracking.external_reference_id" => {
                let text = r
                    .tracking
                    .as_ref()
                    .map(|t| t.external_reference_id.trim().to_owned())
                    .unwrap_or_default();
                if text.chars().count() > 200 {
                    v.add("referral.tracking.external_reference_id", "is longer than 200 characters");
                }
                self.external_reference_id = Some(text);
            }
            other => v.add(
                "update_mask",
                format!(
                    "`{other}` cannot be updated; updatable: display_name, customer, customer.entity, customer.size, customer.contacts, consent_to_share, assistance, solutions, team, deal_value, estimated_close_date, notes, tracking.external_reference_id (status changes have their own methods)"
                ),
            ),
        }
    }

    fn apply(
        &self,
        r: &mut Referral,
        customer: Option<Customer>,
        solutions: Option<Vec<ReferralSolution>>,
    ) {
        if let Some(n) = &self.display_name {
            r.display_name = n.clone();
        }
        if let Some(mut c) = customer {
            c.size = r.customer.size;
            c.contacts = r.customer.contacts.clone();
            r.customer = c;
        }
        if let Some(s) = self.size {
            r.customer.size = s;
        }
        if let Some(c) = &self.contacts {
            r.customer.contacts = c.clone();
        }
        if let Some(c) = self.consent {
            r.consent_to_share = c;
        }
        if let Some(a) = &self.assistance {
            r.assistance = a.clone();
        }
        if let Some(s) = solutions {
            r.solutions = s;
        }
        if let Some(t) = &self.team {
            r.team = t.clone();
        }
        if let Some(d) = &self.deal_value {
            r.deal_value = d.clone();
        }
        if let Some(d) = self.close_date {
            r.estimated_close_date = d;
        }
        if let Some(n) = &self.notes {
            r.notes = n.clone();
        }
        if let Some(x) = &self.external_reference_id {
            r.external_reference_id = x.clone();
        }
    }
}
