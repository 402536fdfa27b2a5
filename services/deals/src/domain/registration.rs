//! Deal registration (SPEC 3.8): whether a won referral can be registered ([`check`]), the
//! partner registering it ([`register`]) and a platform operator's review ([`review`]).
//!
//! A registration is the one change a CLOSED referral still takes (D1 otherwise): it is about
//! the deal after it was won. It is the partner's referral's; the platform's side carries none.

use chrono::{DateTime, Duration, Utc};

use super::rules::{RuleError, check_reason};
use super::{DealType, Outcome, Referral, Solution, Stage};

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationStatus {
    ReviewPending,
    Approved,
    Rejected,
}

impl RegistrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationStatus::ReviewPending => "REVIEW_PENDING",
            RegistrationStatus::Approved => "APPROVED",
            RegistrationStatus::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "REVIEW_PENDING" => RegistrationStatus::ReviewPending,
            "APPROVED" => RegistrationStatus::Approved,
            "REJECTED" => RegistrationStatus::Rejected,
            _ => return None,
        })
    }
}

/// A won deal's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub status: RegistrationStatus,
    pub register_time: DateTime<Utc>,
    /// Set by the review: when, by whom (an operator's email), and why.
    pub review_time: Option<DateTime<Utc>>,
    pub reviewed_by: String,
    pub review_reason: String,
}

/// Why a referral cannot be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Blocker {
    NotWon,
    AlreadyRegistered,
    NoIncentiveEligibleSolution,
    Private,
    CoSellNotAccepted,
    NotIsvConnect,
}

impl Blocker {
    /// The stable name (the PreconditionFailure violation's type).
    pub fn as_str(self) -> &'static str {
        match self {
            Blocker::NotWon => "NOT_WON",
            Blocker::AlreadyRegistered => "ALREADY_REGISTERED",
            Blocker::NoIncentiveEligibleSolution => "NO_INCENTIVE_ELIGIBLE_SOLUTION",
            Blocker::Private => "PRIVATE",
            Blocker::CoSellNotAccepted => "COSELL_NOT_ACCEPTED",
            Blocker::NotIsvConnect => "NOT_ISV_CONNECT",
        }
    }

    /// The referral field the blocker is about (the violation's subject).
    pub fn subject(self) -> &'static str {
        match self {
            Blocker::NotWon => "status",
            Blocker::AlreadyRegistered => "registration",
            Blocker::NoIncentiveEligibleSolution => "solutions",
            Blocker::Private | Blocker::CoSellNotAccepted | Blocker::NotIsvConnect => "deal_type",
        }
    }

    /// What a person can do about it.
    pub fn description(self) -> &'static str {
        match self {
            Blocker::NotWon => "only a won deal (CLOSED/WON) is registered",
            Blocker::AlreadyRegistered => "the deal is registered already",
            Blocker::NoIncentiveEligibleSolution => {
                "none of the deal's solutions is incentive eligible"
            }
            Blocker::Private => "a PRIVATE deal is never registered",
            Blocker::CoSellNotAccepted => {
                "no platform seller accepted the co-sell request: the platform's referral must be ACCEPTED or WON"
            }
            Blocker::NotIsvConnect => {
                "a deal without a co-sell referral is registered only by organizations enrolled in ISV Connect"
            }
        }
    }
}

/// Below this, between creation and the win, a registration carries a warning.
pub const QUICK_WIN: Duration = Duration::hours(72);

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Every reason it cannot be registered, in a fixed order; empty: it can.
    pub blockers: Vec<Blocker>,
    /// Won fewer than 72 hours after it was created (a warning, not a blocker).
    pub won_within_72_hours: bool,
}

impl Check {
    pub fn registrable(&self) -> bool {
        self.blockers.is_empty()
    }
}

/// SPEC 3.8: whether the partner's referral `r` can be registered. It must be won and not yet
/// registered, carry an incentive-eligible solution (as `catalog`, the entries its solutions
/// name, says now), and be shared: a CO_SELL deal needs the platform's side (`platform`)
/// accepted by a seller (ACCEPTED, or WON after that; closed with the partner's win without a
/// seller's answer does not count), and a deal without a co-sell referral (PARTNER_LED) needs
/// the organization enrolled in ISV Connect. Every reason is named.
pub fn check(
    r: &Referral,
    platform: Option<&Referral>,
    catalog: &[Solution],
    isv_connect_enrolled: bool,
) -> Check {
    let mut blockers = Vec::new();
    if r.stage != Stage::Closed(Outcome::Won) {
        blockers.push(Blocker::NotWon);
    }
    if r.registration.is_some() {
        blockers.push(Blocker::AlreadyRegistered);
    }
    let eligible = r.solutions.iter().any(|line| {
        catalog
            .iter()
            .any(|s| s.id == line.solution && s.incentive_eligible)
    });
    if !eligible {
        blockers.push(Blocker::NoIncentiveEligibleSolution);
    }
    match r.deal_type {
        DealType::Private => blockers.push(Blocker::Private),
        DealType::CoSell => {
            let accepted = platform.is_some_and(|p| {
                p.accept_time.is_some()
                    && matches!(p.stage, Stage::Active | Stage::Closed(Outcome::Won))
            });
            if !accepted {
                blockers.push(Blocker::CoSellNotAccepted);
            }
        }
        DealType::PartnerLed => {
            if !isv_connect_enrolled {
                blockers.push(Blocker::NotIsvConnect);
            }
        }
    }
    let won_within_72_hours = r
        .close_time
        .is_some_and(|won| won - r.create_time < QUICK_WIN);
    Check {
        blockers,
        won_within_72_hours,
    }
}

/// The partner registers its won deal: REVIEW_PENDING, for a platform operator. `found` is
/// [`check`]'s answer for `r` as it is now.
pub fn register(r: &mut Referral, found: &Check, now: DateTime<Utc>) -> Result<(), Vec<Blocker>> {
    if !found.registrable() {
        return Err(found.blockers.clone());
    }
    r.registration = Some(Registration {
        status: RegistrationStatus::ReviewPending,
        register_time: now,
        review_time: None,
        reviewed_by: String::new(),
        review_reason: String::new(),
    });
    Ok(())
}

/// A platform operator (`operator`, an email) approves or rejects a pending registration; a
/// rejection needs a reason (1-2,000 characters), which the partner sees.
pub fn review(
    r: &mut Referral,
    approve: bool,
    reason: &str,
    operator: &str,
    now: DateTime<Utc>,
) -> Result<(), RuleError> {
    let reason = if approve {
        reason.trim().to_owned()
    } else {
        check_reason(reason)?
    };
    if reason.chars().count() > super::rules::MAX_REASON_CHARS {
        return Err(RuleError::Invalid(
            "reason",
            format!(
                "is longer than {} characters",
                super::rules::MAX_REASON_CHARS
            ),
        ));
    }
    let Some(reg) = r
        .registration
        .as_mut()
        .filter(|g| g.status == RegistrationStatus::ReviewPending)
    else {
        return Err(RuleError::NotAllowed {
            reason: "NOT_PENDING_REVIEW",
            message:
                "only a registration waiting for review (REVIEW_PENDING) is approved or rejected"
                    .into(),
        });
    };
    reg.status = if approve {
        RegistrationStatus::Approved
    } else {
        RegistrationStatus::Rejected
    };
    reg.review_time = Some(now);
    reg.reviewed_by = operator.to_owned();
    reg.review_reason = reason;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rules::platform_side;
    use crate::domain::testing::{at, complete, solution};

    /// A won CO_SELL referral whose co-sell request a seller accepted, with an eligible
    /// solution: registrable. Each test below breaks one condition.
    fn qualifying() -> (Referral, Referral, Vec<Solution>) {
        let now = crate::domain::now();
        let mut r = complete(DealType::CoSell, Stage::Closed(Outcome::Won));
        r.create_time = now - Duration::days(30);
        r.close_time = Some(now);
        let mut p = platform_side(&r, at(now));
        p.stage = Stage::Closed(Outcome::Won);
        p.accept_time = Some(now - Duration::days(20));
        let mut s = solution();
        s.id = r.solutions[0].solution;
        s.incentive_eligible = true;
        (r, p, vec![s])
    }

    #[test]
    fn a_qualifying_deal_is_registrable_and_each_condition_alone_blocks() {
        let (r, p, catalog) = qualifying();
        assert_eq!(check(&r, Some(&p), &catalog, false).blockers, []);

        let mut ineligible = catalog.clone();
        ineligible[0].incentive_eligible = false;
        assert_eq!(
            check(&r, Some(&p), &ineligible, false).blockers,
            [Blocker::NoIncentiveEligibleSolution]
        );

        let mut open = p.clone();
        open.accept_time = None;
        assert_eq!(
            check(&r, Some(&open), &catalog, false).blockers,
            [Blocker::CoSellNotAccepted]
        );
        assert_eq!(
            check(&r, None, &catalog, true).blockers,
            [Blocker::CoSellNotAccepted]
        );

        let mut private = r.clone();
        private.deal_type = DealType::Private;
        assert_eq!(
            check(&private, None, &catalog, true).blockers,
            [Blocker::Private]
        );

        let mut partner_led = r.clone();
        partner_led.deal_type = DealType::PartnerLed;
        assert_eq!(
            check(&partner_led, None, &catalog, false).blockers,
            [Blocker::NotIsvConnect]
        );
        assert_eq!(check(&partner_led, None, &catalog, true).blockers, []);
    }

    #[test]
    fn the_72_hour_warning_ends_at_72_hours() {
        let (mut r, p, catalog) = qualifying();
        let won = r.close_time.unwrap();
        r.create_time = won - Duration::hours(72) + Duration::minutes(1);
        assert!(check(&r, Some(&p), &catalog, false).won_within_72_hours);
        r.create_time = won - Duration::hours(72);
        assert!(!check(&r, Some(&p), &catalog, false).won_within_72_hours);
    }

    #[test]
    fn register_once_then_review_once() {
        let (mut r, p, catalog) = qualifying();
        let now = crate::domain::now();
        let found = check(&r, Some(&p), &catalog, false);
        register(&mut r, &found, now).unwrap();
        assert_eq!(
            r.registration.as_ref().map(|g| g.status),
            Some(RegistrationStatus::ReviewPending)
        );
        assert_eq!(
            check(&r, Some(&p), &catalog, false).blockers,
            [Blocker::AlreadyRegistered]
        );
        assert!(matches!(
            review(&mut r, false, " ", "oli@platform.example", now),
            Err(RuleError::Invalid("reason", _))
        ));
        review(&mut r, false, "duplicate", "oli@platform.example", now).unwrap();
        let g = r.registration.clone().unwrap();
        assert_eq!(
            (g.status, g.reviewed_by.as_str(), g.review_reason.as_str()),
            (
                RegistrationStatus::Rejected,
                "oli@platform.example",
                "duplicate"
            )
        );
        assert!(matches!(
            review(&mut r, true, "", "oli@platform.example", now),
            Err(RuleError::NotAllowed {
                reason: "NOT_PENDING_REVIEW",
                ..
            })
        ));
    }
}
