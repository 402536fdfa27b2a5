//! Deal registration (SPEC 3.8): what `MarkReferralWon` answers about it
//! ([`Deals::registration_check`]), `RegisterDeal` ([`registration::register`]), the operators'
//! queue (`ListRegistrations`) and their review (`ReviewRegistration`,
//! [`registration::review`]). Registering and reviewing change the referral through
//! [`Deals::mutate`] like any verb.

use cosell_platform::{ApiError, Violations, page};
use cosell_proto::deals as pb;
use tonic::Request;

use super::super::convert::{self, referral_pb};
use super::super::{Actor, Deals, rule_error};
use super::name_field;
use crate::domain::event::Cause;
use crate::domain::registration::{self, Blocker, Check, RegistrationStatus};
use crate::domain::{DealType, Referral, Solution};

/// `FAILED_PRECONDITION` naming every reason a deal cannot be registered.
fn not_registrable(blockers: &[Blocker]) -> ApiError {
    let names: Vec<&str> = blockers.iter().map(|b| b.as_str()).collect();
    let mut err = ApiError::failed_precondition(
        "NOT_REGISTRABLE",
        format!("the deal cannot be registered: {}", names.join(", ")),
    );
    for b in blockers {
        err = err.with_precondition(b.as_str(), b.subject(), b.description());
    }
    err
}

/// The calling platform operator's email, or `PERMISSION_DENIED`.
fn operator(actor: &Actor) -> Result<String, ApiError> {
    match actor {
        Actor::Platform(u) if u.is_operator() => Ok(u.email.clone()),
        _ => Err(ApiError::permission_denied(
            "MISSING_ROLE",
            "deal registrations are reviewed by platform operators (ROLE_PLATFORM_OPERATOR)",
        )),
    }
}

impl Deals {
    /// What [`registration::check`] needs beyond the referral: the catalog entries of its
    /// solutions and, for a deal without a co-sell referral, whether the organization is
    /// enrolled in ISV Connect (identity's; asked only then).
    async fn registration_facts(&self, r: &Referral) -> Result<(Vec<Solution>, bool), ApiError> {
        let ids: Vec<_> = r.solutions.iter().map(|s| s.solution).collect();
        let catalog = if ids.is_empty() {
            Vec::new()
        } else {
            self.store.get_solutions(&ids).await?
        };
        let isv_connect = r.deal_type == DealType::PartnerLed
            && self
                .upstream
                .partner(r.organization)
                .await?
                .is_some_and(|p| p.isv_connect_enrolled);
        Ok((catalog, isv_connect))
    }

    /// Whether the partner's referral `r` can be registered now, and why not (3.8).
    pub(super) async fn registration_check(&self, r: &Referral) -> Result<Check, ApiError> {
        let (catalog, isv_connect) = self.registration_facts(r).await?;
        let platform = self.peer(r).await?;
        Ok(registration::check(
            r,
            platform.as_ref(),
            &catalog,
            isv_connect,
        ))
    }

    /// `RegisterDeal`: parse, load and authorize (the partner, as for any change), look up what
    /// the rule needs, then [`registration::check`] and [`registration::register`] on the
    /// referral as [`Deals::mutate`] reads it.
    pub(super) async fn register_deal(
        &self,
        req: Request<pb::RegisterDealRequest>,
    ) -> Result<pb::RegisterDealResponse, ApiError> {
        let actor = self.actor(&req).await?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let id = name_field(&mut v, "name", &r.name);
        v.finish()?;
        let id = id.expect("checked");
        let current = self.load(&actor, id).await?;
        self.writable(&actor, &current)?;
        // A won referral's solutions and deal type no longer change (D1).
        let (catalog, isv_connect) = self.registration_facts(&current).await?;
        let registered = self
            .mutate_as(&actor, id, &r.etag, Cause::Registration, |next, peer| {
                self.writable(&actor, next)?;
                let found = registration::check(next, peer.as_ref(), &catalog, isv_connect);
                registration::register(next, &found, self.now()).map_err(|b| not_registrable(&b))
            })
            .await?;
        let won_within_72_hours =
            registration::check(&registered, None, &[], false).won_within_72_hours;
        Ok(pb::RegisterDealResponse {
            referral: Some(self.respond(&actor, &registered).await?),
            won_within_72_hours,
        })
    }

    /// `ListRegistrations`: platform operators' queue, oldest registration first.
    pub(super) async fn list_registrations(
        &self,
        req: Request<pb::ListRegistrationsRequest>,
    ) -> Result<pb::ListRegistrationsResponse, ApiError> {
        let actor = self.actor(&req).await?;
        operator(&actor)?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let size = v.take("page_size", page::page_size(r.page_size));
        let status = match pb::RegistrationStatus::try_from(r.registration_status) {
            Ok(pb::RegistrationStatus::Unspecified | pb::RegistrationStatus::ReviewPending) => {
                RegistrationStatus::ReviewPending
            }
            Ok(pb::RegistrationStatus::Approved) => RegistrationStatus::Approved,
            Ok(pb::RegistrationStatus::Rejected) => RegistrationStatus::Rejected,
            Err(_) => {
                v.add("registration_status", "is not a RegistrationStatus");
                RegistrationStatus::ReviewPending
            }
        };
        let organization = if r.organization.is_empty() {
            None
        } else {
            v.take(
                "organization",
                cosell_platform::names::parse_one(&r.organization, "organizations"),
            )
        };
        let query = format!(
            "registrations|{}|{}",
            status.as_str(),
            organization.map(|o| o.to_string()).unwrap_or_default()
        );
        let after = v.take("page_token", page::decode(&r.page_token, &query));
        v.finish()?;
        let size = size.unwrap_or(page::DEFAULT_PAGE_SIZE).min(500);
        let after = match after.flatten() {
            None => None,
            Some(key) => Some(super::list::parse_key(&key)?),
        };
        let rows = self
            .store
            .list_registrations(status, organization, after, size + 1)
            .await?;
        let (rows, next_page_token) = page::cut(rows, size, &query, |r: &Referral| {
            let at = r.registration.as_ref().map(|g| g.register_time);
            format!("{}|{}", at.unwrap_or(r.create_time).to_rfc3339(), r.id)
        });
        Ok(pb::ListRegistrationsResponse {
            referrals: rows.iter().map(|r| referral_pb(r, false)).collect(),
            next_page_token,
        })
    }

    /// `ReviewRegistration`: a platform operator approves or rejects a pending registration
    /// ([`registration::review`]).
    pub(super) async fn review_registration(
        &self,
        req: Request<pb::ReviewRegistrationRequest>,
    ) -> Result<pb::Referral, ApiError> {
        let actor = self.actor(&req).await?;
        let email = operator(&actor)?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let id = name_field(&mut v, "name", &r.name);
        let approve = match pb::RegistrationStatus::try_from(r.decision) {
            Ok(pb::RegistrationStatus::Approved) => true,
            Ok(pb::RegistrationStatus::Rejected) => false,
            _ => {
                v.add(
                    "decision",
                    "is REGISTRATION_STATUS_APPROVED or REGISTRATION_STATUS_REJECTED",
                );
                false
            }
        };
        v.finish()?;
        let id = id.expect("checked");
        let reviewed = self
            .mutate_as(&actor, id, &r.etag, Cause::Registration, |next, _| {
                registration::review(next, approve, &r.reason, &email, self.now())
                    .map_err(|e| rule_error(e, ""))
            })
            .await?;
        Ok(convert::referral_pb(&reviewed, false))
    }
}
