//! The lifecycle rules: which moves are allowed (D1), what a status change needs (D6), declines
//! with reasons (D3), the seller's answer to a co-sell request (D4), deal-type upgrades and what
//! each deal type implies (3.2), and the platform's side of an engagement ([`platform_side`],
//! waiting; [`activate_platform_side`], accepted by a seller).
//! Each verb changes the referral (and the other party's referral of the engagement, when it
//! has one) in memory; the caller stores both in one transaction.

use chrono::{DateTime, Utc};

use super::{
    Assistance, Contact, DealType, Direction, Outcome, Party, Referral, Stage, Timing, Waiting,
};

/// Longest reason accepted for a decline or a loss.
pub const MAX_REASON_CHARS: usize = 2000;

/// Why a verb was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// The referral is CLOSED: terminal, every edit refused (D1).
    Closed,
    /// The move is not allowed from here (`reason` is the stable ErrorInfo reason).
    NotAllowed {
        reason: &'static str,
        message: String,
    },
    /// Required fields are missing (D6): one (field, description) per missing field.
    Missing(Vec<(&'static str, &'static str)>),
    /// A request field is wrong (field, description).
    Invalid(&'static str, String),
    /// Fields that contradict each other or the catalog: (path in the referral, description)
    /// each, never empty.
    Fields(Vec<(String, String)>),
}

/// The fields D6 asks for before a status change, each missing one named.
pub fn missing_required(r: &Referral) -> Vec<(&'static str, &'static str)> {
    let mut missing = Vec::new();
    if r.customer.legal_name.trim().is_empty() {
        missing.push(("customer.legal_name", "the customer's name is required"));
    }
    let a = &r.customer.address;
    if a.country_code.is_empty() || a.city.trim().is_empty() {
        missing.push((
            "customer.address",
            "the customer's address (city and country) is required",
        ));
    }
    if r.deal_type == DealType::CoSell && r.customer.contacts.is_empty() {
        missing.push((
            "customer.contacts",
            "a CO_SELL referral needs a customer contact",
        ));
    }
    if r.solutions.is_empty() {
        missing.push(("solutions", "at least one solution is required"));
    }
    if !r.team.iter().any(Contact::complete) {
        missing.push((
            "team",
            "at least one team member with first name, last name, email and phone is required",
        ));
    }
    if r.deal_value.is_none() {
        missing.push(("deal_value", "the deal value is required"));
    }
    if r.estimated_close_date.is_none() {
        missing.push((
            "estimated_close_date",
            "the estimated close date is required",
        ));
    }
    if r.notes.trim().is_empty() {
        missing.push(("notes", "notes are required"));
    }
    missing
}

/// What each deal type implies about consent and assistance (3.2): every contradiction named.
pub fn check_deal_type(r: &Referral) -> Result<(), RuleError> {
    let mut out = Vec::new();
    match r.deal_type {
        DealType::Private => {
            if r.consent_to_share {
                out.push((
                    "consent_to_share",
                    "a PRIVATE referral is never shared; upgrade it to share it".to_string(),
                ));
            }
        }
        DealType::PartnerLed | DealType::CoSell => {
            if !r.consent_to_share {
                out.push((
                    "consent_to_share",
                    format!(
                        "a {} referral is shared with platform sellers: consent is required",
                        r.deal_type.as_str()
                    ),
                ));
            }
        }
    }
    match r.deal_type {
        DealType::CoSell => {
            if r.assistance.is_none() {
                out.push((
                    "assistance",
                    "a CO_SELL referral asks platform sellers for help: the assistance code is required"
                        .to_string(),
                ));
            }
            if r.customer.contacts.is_empty() {
                out.push((
                    "customer.contacts",
                    "a CO_SELL referral needs a customer contact".to_string(),
                ));
            }
        }
        _ => {
            if r.assistance.is_some() {
                out.push((
                    "assistance",
                    format!(
                        "help from platform sellers is for CO_SELL referrals; upgrade this {} one",
                        r.deal_type.as_str()
                    ),
                ));
            }
        }
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(RuleError::Fields(
            out.into_iter().map(|(f, d)| (f.to_owned(), d)).collect(),
        ))
    }
}

/// Refuses any edit of a closed referral (D1).
pub fn ensure_open(r: &Referral) -> Result<(), RuleError> {
    if r.stage.is_closed() {
        Err(RuleError::Closed)
    } else {
        Ok(())
    }
}

fn ensure_complete(r: &Referral) -> Result<(), RuleError> {
    let missing = missing_required(r);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RuleError::Missing(missing))
    }
}

pub fn check_reason(reason: &str) -> Result<String, RuleError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(RuleError::Invalid("reason", "is required".into()));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(RuleError::Invalid(
            "reason",
            format!("is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason.to_owned())
}

fn close(r: &mut Referral, outcome: Outcome, reason: String, now: DateTime<Utc>) {
    r.stage = Stage::Closed(outcome);
    r.status_reason = reason;
    r.close_time = Some(now);
    r.expire_time = None;
}

/// When the partner closes its referral, the platform's side of the engagement closes with it:
/// an open invitation is moot once the deal is decided.
fn close_peer(peer: Option<&mut Referral>, outcome: Outcome, now: DateTime<Utc>) {
    if let Some(p) = peer
        && !p.stage.is_closed()
    {
        close(p, outcome, "closed by the partner".into(), now);
    }
}

fn ensure_received(r: &Referral) -> Result<(), RuleError> {
    ensure_open(r)?;
    if r.stage != Stage::New(Waiting::Received) {
        return Err(RuleError::NotAllowed {
            reason: "NOT_AWAITING_ANSWER",
            message: format!(
                "only a NEW/RECEIVED referral can be accepted or declined; this one is {}/{}",
                r.stage.names().0,
                r.stage.names().1
            ),
        });
    }
    Ok(())
}

/// The partner accepts an Inbound referral (D6 applies).
pub fn accept(r: &mut Referral, now: DateTime<Utc>) -> Result<(), RuleError> {
    ensure_received(r)?;
    ensure_complete(r)?;
    r.stage = Stage::Active;
    r.accept_time = Some(now);
    r.expire_time = None;
    Ok(())
}

/// The partner declines an Inbound referral; the sender's side closes too, with the reason (D3).
pub fn decline(
    r: &mut Referral,
    peer: Option<&mut Referral>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), RuleError> {
    let reason = check_reason(reason)?;
    ensure_received(r)?;
    if let Some(p) = peer
        && !p.stage.is_closed()
    {
        close(p, Outcome::Declined, reason.clone(), now);
    }
    close(r, Outcome::Declined, reason, now);
    Ok(())
}

/// The partner marks the deal won or lost (D6 applies; a NEW/RECEIVED one must be accepted
/// first).
pub fn finish(
    r: &mut Referral,
    peer: Option<&mut Referral>,
    outcome: Outcome,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), RuleError> {
    ensure_open(r)?;
    let reason = match outcome {
        Outcome::Lost => check_reason(reason)?,
        _ => reason.trim().to_owned(),
    };
    if r.stage == Stage::New(Waiting::Received) {
        return Err(RuleError::NotAllowed {
            reason: "NOT_ACCEPTED",
            message: "accept the Inbound referral before closing it".into(),
        });
    }
    ensure_complete(r)?;
    close(r, outcome, reason, now);
    close_peer(peer, outcome, now);
    Ok(())
}

/// The partner upgrades the deal type (3.2, D6). Upgrading to CO_SELL asks for help: the
/// request goes to the sellers' queue as a new platform side, unless one is open or accepted
/// already (one declined before is replaced).
pub fn upgrade(
    r: &mut Referral,
    peer: &mut Option<Referral>,
    to: DealType,
    assistance: Option<Assistance>,
    at: Timing,
) -> Result<(), RuleError> {
    ensure_open(r)?;
    if !r.deal_type.can_upgrade_to(to) {
        return Err(RuleError::NotAllowed {
            reason: "DEAL_TYPE_DOWNGRADE",
            message: format!(
                "a {} referral cannot become {}: upgrades go PRIVATE -> PARTNER_LED -> CO_SELL",
                r.deal_type.as_str(),
                to.as_str()
            ),
        });
    }
    let mut next = r.clone();
    next.deal_type = to;
    next.consent_to_share = true;
    if to == DealType::CoSell {
        next.assistance = assistance.or(next.assistance);
        if next.assistance.is_none() {
            return Err(RuleError::Invalid(
                "assistance",
                "is required to upgrade to CO_SELL (the help requested from platform sellers)"
                    .into(),
            ));
        }
    }
    ensure_complete(&next)?;
    *r = next;
    if to == DealType::CoSell && peer.as_ref().is_none_or(|p| p.stage.is_closed()) {
        *peer = Some(platform_side(r, at));
    }
    Ok(())
}

/// The platform's referral of a partner's engagement: its copy of the deal (each side keeps its
/// own status, notes and contacts), NEW/RECEIVED in the sellers' queue, waiting for a seller
/// like any invitation (D2).
pub fn platform_side(partner: &Referral, at: Timing) -> Referral {
    let mut p = partner.clone();
    p.id = uuid::Uuid::now_v7();
    p.party = Party::Platform;
    p.direction = Direction::Inbound;
    p.stage = Stage::New(Waiting::Received);
    p.status_reason = String::new();
    p.notes = String::new();
    p.seller_contact = None;
    p.create_time = at.now;
    p.update_time = at.now;
    p.accept_time = None;
    p.close_time = None;
    p.expire_time = Some(at.expire_time());
    p.version = 1;
    p.external_reference_id = String::new();
    p.psc_deal_id = None;
    p.registration = None;
    p
}

/// The platform's side, accepted: ACTIVE, no longer waiting, `seller` its contact (D4). A
/// seller's answer to a co-sell request, a seller's own inbound referral and a deal a seller
/// had accepted in PSC all end here.
pub fn activate_platform_side(
    platform: &mut Referral,
    seller: Option<Contact>,
    now: DateTime<Utc>,
) {
    platform.stage = Stage::Active;
    platform.accept_time = Some(now);
    platform.expire_time = None;
    platform.seller_contact = seller;
}

fn ensure_invitation(platform: &Referral) -> Result<(), RuleError> {
    ensure_open(platform)?;
    if platform.party != Party::Platform || platform.stage != Stage::New(Waiting::Received) {
        return Err(RuleError::NotAllowed {
            reason: "NOT_AN_OPEN_INVITATION",
            message: "only a NEW/RECEIVED co-sell request of the platform can be answered".into(),
        });
    }
    Ok(())
}

/// A platform seller accepts a co-sell request: both sides become ACTIVE and the partner sees
/// the seller from now on (D4).
pub fn seller_accept(
    platform: &mut Referral,
    partner: Option<&mut Referral>,
    seller: Contact,
    now: DateTime<Utc>,
) -> Result<(), RuleError> {
    ensure_invitation(platform)?;
    activate_platform_side(platform, Some(seller.clone()), now);
    if let Some(p) = partner
        && !p.stage.is_closed()
    {
        if p.stage == Stage::New(Waiting::Pending) {
            p.stage = Stage::Active;
            p.accept_time = Some(now);
        }
        p.expire_time = None;
        p.seller_contact = Some(seller);
    }
    Ok(())
}

/// A platform seller declines a co-sell request: the platform's side closes; the partner's goes
/// on as PARTNER_LED with the reason visible (D4).
pub fn seller_decline(
    platform: &mut Referral,
    partner: Option<&mut Referral>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), RuleError> {
    let reason = check_reason(reason)?;
    ensure_invitation(platform)?;
    close(platform, Outcome::Declined, reason.clone(), now);
    if let Some(p) = partner
        && !p.stage.is_closed()
    {
        if p.stage == Stage::New(Waiting::Pending) {
            p.stage = Stage::Active;
        }
        p.deal_type = DealType::PartnerLed;
        p.assistance = None;
        p.expire_time = None;
        p.status_reason = reason;
    }
    Ok(())
}

/// Nobody answered a waiting referral by its expiry time (D2). An Inbound referral closes
/// CLOSED/EXPIRED with its sender's side; a co-sell request closes on the platform's side and
/// the partner's referral goes on ACTIVE as PARTNER_LED, as after a seller's decline (D4).
pub fn expire(
    r: &mut Referral,
    peer: Option<&mut Referral>,
    now: DateTime<Utc>,
) -> Result<(), RuleError> {
    ensure_received(r)?;
    let party = r.party;
    close(
        r,
        Outcome::Expired,
        "nobody answered before the expiry time".into(),
        now,
    );
    if let Some(p) = peer
        && !p.stage.is_closed()
    {
        match party {
            Party::Partner => close(
                p,
                Outcome::Expired,
                "the partner did not answer before the expiry time".into(),
                now,
            ),
            Party::Platform => {
                if p.stage == Stage::New(Waiting::Pending) {
                    p.stage = Stage::Active;
                }
                p.deal_type = DealType::PartnerLed;
                p.assistance = None;
                p.expire_time = None;
                p.status_reason = "no platform seller answered the co-sell request in time".into();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::{at, complete, contact};

    #[test]
    fn d6_names_every_missing_field() {
        let mut r = complete(DealType::CoSell, Stage::Active);
        assert!(missing_required(&r).is_empty());
        r.customer.contacts.clear();
        r.solutions.clear();
        r.team[0].phone.clear();
        r.deal_value = None;
        r.estimated_close_date = None;
        r.notes.clear();
        r.customer.legal_name.clear();
        r.customer.address.city.clear();
        let fields: Vec<_> = missing_required(&r).into_iter().map(|m| m.0).collect();
        assert_eq!(
            fields,
            [
                "customer.legal_name",
                "customer.address",
                "customer.contacts",
                "solutions",
                "team",
                "deal_value",
                "estimated_close_date",
                "notes"
            ]
        );
        // A PRIVATE referral needs no customer contact.
        r.deal_type = DealType::Private;
        assert!(
            !missing_required(&r)
                .iter()
                .any(|m| m.0 == "customer.contacts")
        );
    }

    #[test]
    fn closed_is_terminal() {
        let now = crate::domain::now();
        let mut r = complete(DealType::Private, Stage::Closed(Outcome::Won));
        assert_eq!(
            finish(&mut r, None, Outcome::Lost, "x", now),
            Err(RuleError::Closed)
        );
        assert_eq!(accept(&mut r, now), Err(RuleError::Closed));
        assert_eq!(
            upgrade(&mut r, &mut None, DealType::CoSell, None, at(now)),
            Err(RuleError::Closed)
        );
    }

    #[test]
    fn lost_and_declined_need_a_reason() {
        let now = crate::domain::now();
        let mut r = complete(DealType::Private, Stage::Active);
        assert!(matches!(
            finish(&mut r, None, Outcome::Lost, "  ", now),
            Err(RuleError::Invalid("reason", _))
        ));
        let mut inbound = complete(DealType::CoSell, Stage::New(Waiting::Received));
        assert!(matches!(
            decline(&mut inbound, None, "", now),
            Err(RuleError::Invalid("reason", _))
        ));
        decline(&mut inbound, None, "no capacity", now).unwrap();
        assert_eq!(inbound.stage, Stage::Closed(Outcome::Declined));
        assert_eq!(inbound.status_reason, "no capacity");
    }

    #[test]
    fn seller_decline_keeps_the_partner_deal_as_partner_led() {
        let now = crate::domain::now();
        let mut partner = complete(DealType::CoSell, Stage::New(Waiting::Pending));
        let mut platform = platform_side(&partner, at(now));
        seller_decline(&mut platform, Some(&mut partner), "out of territory", now).unwrap();
        assert_eq!(platform.stage, Stage::Closed(Outcome::Declined));
        assert_eq!(partner.stage, Stage::Active);
        assert_eq!(partner.deal_type, DealType::PartnerLed);
        assert_eq!(partner.status_reason, "out of territory");
        assert!(partner.seller_contact.is_none());
    }

    #[test]
    fn seller_accept_reveals_the_seller() {
        let now = crate::domain::now();
        let mut partner = complete(DealType::CoSell, Stage::New(Waiting::Pending));
        let mut platform = platform_side(&partner, at(now));
        assert!(platform.seller_contact.is_none());
        seller_accept(&mut platform, Some(&mut partner), contact(), now).unwrap();
        assert_eq!(partner.stage, Stage::Active);
        assert_eq!(partner.seller_contact, Some(contact()));
        // Answering twice is refused.
        assert!(matches!(
            seller_accept(&mut platform, Some(&mut partner), contact(), now),
            Err(RuleError::NotAllowed { .. })
        ));
    }

    #[test]
    fn d2_an_unanswered_co_sell_request_goes_on_as_partner_led() {
        let now = crate::domain::now();
        let mut partner = complete(DealType::CoSell, Stage::New(Waiting::Pending));
        let mut platform = platform_side(&partner, at(now));
        expire(&mut platform, Some(&mut partner), now).unwrap();
        assert_eq!(platform.stage, Stage::Closed(Outcome::Expired));
        assert_eq!(
            (partner.stage, partner.deal_type, partner.expire_time),
            (Stage::Active, DealType::PartnerLed, None)
        );
        // Once expired, nothing more to expire.
        assert_eq!(
            expire(&mut platform, Some(&mut partner), now),
            Err(RuleError::Closed)
        );
    }

    #[test]
    fn d2_an_unanswered_inbound_referral_closes_with_its_senders_side() {
        let now = crate::domain::now();
        let mut inbound = complete(DealType::CoSell, Stage::New(Waiting::Received));
        inbound.direction = Direction::Inbound;
        let mut sender = platform_side(&inbound, at(now));
        activate_platform_side(&mut sender, None, now);
        expire(&mut inbound, Some(&mut sender), now).unwrap();
        assert_eq!(inbound.stage, Stage::Closed(Outcome::Expired));
        assert_eq!(sender.stage, Stage::Closed(Outcome::Expired));
        let mut active = complete(DealType::PartnerLed, Stage::Active);
        assert!(
            expire(&mut active, None, now).is_err(),
            "only a waiting one expires"
        );
    }
}
