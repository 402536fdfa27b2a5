//! Proto <-> domain at the edge. Request fields are checked one by one into [`Violations`]
//! (every bad field reported at once, named by its path in the request); responses are built
//! from the domain, hiding what the viewer may not see.

use cosell_platform::Violations;
use cosell_proto::deals as pb;
use prost_types::Timestamp;
use uuid::Uuid;

use crate::domain::registration::{Blocker, Check, RegistrationStatus};
use crate::domain::values::{format_cents, parse_amount, parse_date};
use crate::domain::{
    Address, Assistance, Candidate, Contact, Customer, DealType, Direction, Money, Outcome, Party,
    Referral, Solution, SolutionLine, Stage, Waiting,
};

/// At most this many solutions on a referral.
pub const MAX_SOLUTIONS: usize = 50;
const MAX_NAME_CHARS: usize = 200;
const MAX_NOTES_CHARS: usize = 10_000;
const MAX_ASSISTANCE_NOTES_CHARS: usize = 2000;
const MAX_CONTACTS: usize = 50;
/// At most this many directory entries are offered for an unmatched customer (D8).
pub const MAX_CANDIDATES: usize = 3;

pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_timestamp(t: &Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::SubsecRound;
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).map(|t| t.trunc_subsecs(6))
}

pub fn referral_name(id: Uuid) -> String {
    format!("referrals/{id}")
}

pub fn parse_referral_name(name: &str) -> Result<Uuid, String> {
    cosell_platform::names::parse_one(name, "referrals")
}

pub fn parse_solution_name(name: &str) -> Result<Uuid, String> {
    cosell_platform::names::parse_one(name, "solutions")
}

// --- request fields ---

pub fn display_name(v: &mut Violations, field: &str, name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        v.add(field, "is required");
        None
    } else if name.chars().count() > MAX_NAME_CHARS {
        v.add(field, format!("is longer than {MAX_NAME_CHARS} characters"));
        None
    } else {
        Some(name.to_owned())
    }
}

pub fn notes(v: &mut Violations, field: &str, notes: &str) -> Option<String> {
    if notes.chars().count() > MAX_NOTES_CHARS {
        v.add(
            field,
            format!("is longer than {MAX_NOTES_CHARS} characters"),
        );
        None
    } else {
        Some(notes.to_owned())
    }
}

pub fn contacts(v: &mut Violations, field: &str, list: &[pb::Contact]) -> Vec<Contact> {
    if list.len() > MAX_CONTACTS {
        v.add(field, format!("has more than {MAX_CONTACTS} entries"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let contact = contact(c);
        for (part, problem) in contact.check() {
            v.add(format!("{field}[{i}].{part}"), problem);
        }
        out.push(contact);
    }
    out
}

pub fn contact(c: &pb::Contact) -> Contact {
    Contact {
        first_name: c.first_name.trim().to_owned(),
        last_name: c.last_name.trim().to_owned(),
        email: c.email.trim().to_owned(),
        phone: c.phone.trim().to_owned(),
    }
}

/// An address as the request writes it: its lengths are bounded by the codec, and its text is
/// free (PSC's, or the directory's).
pub fn address(a: Option<&pb::Address>) -> Address {
    let a = a.cloned().unwrap_or_default();
    Address {
        lines: a.lines,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country_code: a.country_code,
    }
}

/// The directory entries offered for an unmatched migrated customer (D8), each checked, every
/// bad one reported in `v` under `field[i]`. How many there may be ([`MAX_CANDIDATES`]) is a
/// limit of the whole request, checked by the caller before.
pub fn candidates(
    v: &mut Violations,
    field: &str,
    list: &[pb::CustomerCandidate],
) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let entity = v.take(&format!("{at}.entity"), entity_name(c.entity.trim()));
        if let Some(e) = &entity
            && out.iter().any(|o| &o.entity == e)
        {
            v.add(format!("{at}.entity"), "is listed twice");
        }
        let legal_name = c.legal_name.trim();
        if legal_name.is_empty() {
            v.add(format!("{at}.legal_name"), "is required");
        }
        let reason = match pb::CandidateReason::try_from(c.reason) {
            Ok(pb::CandidateReason::Unspecified) | Err(_) => {
                v.add(
                    format!("{at}.reason"),
                    format!(
                        "{} is not a reason: one of the CANDIDATE_REASON_ values",
                        c.reason
                    ),
                );
                None
            }
            Ok(r) => Some(r),
        };
        if let (Some(entity), Some(reason)) = (entity, reason) {
            out.push(Candidate {
                entity,
                legal_name: legal_name.to_owned(),
                address: address(c.address.as_ref()),
                address_generated: c.address_generated,
                reason,
            });
        }
    }
    out
}

/// A directory entry's name, `entities/{id}`, as the directory spells it.
fn entity_name(name: &str) -> Result<String, String> {
    match name.strip_prefix("entities/") {
        Some(id) if !id.is_empty() && !id.contains(|c: char| c == '/' || c.is_whitespace()) => {
            Ok(name.to_owned())
        }
        _ => Err(format!("must be `entities/{{id}}` (got `{name}`)")),
    }
}

pub fn size(v: &mut Violations, field: &str, size: i32) -> pb::CustomerSize {
    pb::CustomerSize::try_from(size).unwrap_or_else(|_| {
        v.add(field, format!("{size} is not a CustomerSize"));
        pb::CustomerSize::Unspecified
    })
}

/// `None` when the request carries no assistance (or an empty one).
pub fn assistance(
    v: &mut Violations,
    field: &str,
    a: Option<&pb::Assistance>,
) -> Option<Assistance> {
    let a = a?;
    if a.code == 0 && a.notes.is_empty() {
        return None;
    }
    let code = match pb::AssistanceCode::try_from(a.code) {
        Ok(pb::AssistanceCode::Unspecified) | Err(_) => {
            v.add(
                format!("{field}.code"),
                "is required: one of the ASSISTANCE_CODE_ values",
            );
            return None;
        }
        Ok(c) => c,
    };
    if a.notes.chars().count() > MAX_ASSISTANCE_NOTES_CHARS {
        v.add(
            format!("{field}.notes"),
            format!("is longer than {MAX_ASSISTANCE_NOTES_CHARS} characters"),
        );
        return None;
    }
    Some(Assistance {
        code,
        notes: a.notes.clone(),
    })
}

/// `None` when no value is given (`deal_value` unset or empty).
pub fn money(v: &mut Violations, field: &str, m: Option<&pb::Money>) -> Option<Money> {
    let m = m?;
    if m.amount.is_empty() && m.currency_code.is_empty() {
        return None;
    }
    match Money::parse(&m.currency_code, &m.amount) {
        Ok(money) => Some(money),
        Err((part, problem)) => {
            v.add(format!("{field}.{part}"), problem);
            None
        }
    }
}

pub fn close_date(v: &mut Violations, field: &str, text: &str) -> Option<chrono::NaiveDate> {
    if text.is_empty() {
        return None;
    }
    v.take(field, parse_date(text))
}

pub fn solution_lines(
    v: &mut Violations,
    field: &str,
    list: &[pb::ReferralSolution],
) -> Vec<SolutionLine> {
    if list.len() > MAX_SOLUTIONS {
        v.add(
            field,
            format!(
                "has {} solutions; a referral has at most {MAX_SOLUTIONS}",
                list.len()
            ),
        );
        return Vec::new();
    }
    let mut out: Vec<SolutionLine> = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let Some(solution) = v.take(
            &format!("{field}[{i}].solution"),
            parse_solution_name(&s.solution),
        ) else {
            continue;
        };
        if out.iter().any(|o| o.solution == solution) {
            v.add(format!("{field}[{i}].solution"), "is listed twice");
            continue;
        }
        if s.quantity < 0 {
            v.add(format!("{field}[{i}].quantity"), "must not be negative");
        }
        let unit_price_cents = if s.unit_price.is_empty() {
            None
        } else {
            v.take(
                &format!("{field}[{i}].unit_price"),
                parse_amount(&s.unit_price),
            )
        };
        out.push(SolutionLine {
            solution,
            quantity: s.quantity.max(0),
            unit_price_cents,
        });
    }
    out
}

/// The integrator's own id of a referral, trimmed; at most 200 characters.
pub fn external_reference_id(
    v: &mut Violations,
    field: &str,
    tracking: Option<&pb::Tracking>,
) -> String {
    let text = tracking.map_or("", |t| t.external_reference_id.trim());
    if text.chars().count() > 200 {
        v.add(field, "is longer than 200 characters");
    }
    text.to_owned()
}

pub fn mpn_location(v: &mut Violations, field: &str, text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return None;
    }
    v.take(field, cosell_platform::names::mpn_id(text))
}

pub fn deal_type(value: i32) -> Result<DealType, String> {
    match pb::DealType::try_from(value) {
        Ok(pb::DealType::Private) => Ok(DealType::Private),
        Ok(pb::DealType::PartnerLed) => Ok(DealType::PartnerLed),
        Ok(pb::DealType::CoSell) => Ok(DealType::CoSell),
        _ => {
            Err("is required: DEAL_TYPE_PRIVATE, DEAL_TYPE_PARTNER_LED or DEAL_TYPE_CO_SELL".into())
        }
    }
}

// --- responses ---

fn contact_pb(c: &Contact) -> pb::Contact {
    pb::Contact {
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        email: c.email.clone(),
        phone: c.phone.clone(),
    }
}

fn address_pb(a: &Address) -> pb::Address {
    pb::Address {
        lines: a.lines.clone(),
        city: a.city.clone(),
        region: a.region.clone(),
        postal_code: a.postal_code.clone(),
        country_code: a.country_code.clone(),
    }
}

fn candidate_pb(c: &Candidate) -> pb::CustomerCandidate {
    pb::CustomerCandidate {
        entity: c.entity.clone(),
        legal_name: c.legal_name.clone(),
        address: Some(address_pb(&c.address)),
        address_generated: c.address_generated,
        reason: c.reason as i32,
    }
}

fn customer_pb(c: &Customer) -> pb::Customer {
    // A matched customer has none stored; hidden anyway, so that no stale guess sits beside a
    // link (D8).
    let candidates = if c.matched() {
        Vec::new()
    } else {
        c.candidates.iter().map(candidate_pb).collect()
    };
    pb::Customer {
        entity: c.entity.clone().unwrap_or_default(),
        legal_name: c.legal_name.clone(),
        address: Some(address_pb(&c.address)),
        size: c.size as i32,
        contacts: c.contacts.iter().map(contact_pb).collect(),
        r#match: if c.matched() {
            pb::CustomerMatch::Matched
        } else {
            pb::CustomerMatch::Unmatched
        } as i32,
        candidates,
    }
}

pub fn stage_pb(s: Stage) -> (pb::Status, pb::Substatus) {
    match s {
        Stage::New(Waiting::Pending) => (pb::Status::New, pb::Substatus::Pending),
        Stage::New(Waiting::Received) => (pb::Status::New, pb::Substatus::Received),
        Stage::Active => (pb::Status::Active, pb::Substatus::Accepted),
        Stage::Closed(Outcome::Won) => (pb::Status::Closed, pb::Substatus::Won),
        Stage::Closed(Outcome::Lost) => (pb::Status::Closed, pb::Substatus::Lost),
        Stage::Closed(Outcome::Declined) => (pb::Status::Closed, pb::Substatus::Declined),
        Stage::Closed(Outcome::Expired) => (pb::Status::Closed, pb::Substatus::Expired),
    }
}

pub fn deal_type_pb(t: DealType) -> pb::DealType {
    match t {
        DealType::Private => pb::DealType::Private,
        DealType::PartnerLed => pb::DealType::PartnerLed,
        DealType::CoSell => pb::DealType::CoSell,
    }
}

pub fn referral_pb(r: &Referral, favorite: bool) -> pb::Referral {
    let (status, substatus) = stage_pb(r.stage);
    pb::Referral {
        name: referral_name(r.id),
        organization: cosell_platform::names::organization(r.organization),
        mpn_location: r.mpn_location.clone().unwrap_or_default(),
        party: match r.party {
            Party::Partner => pb::Party::Partner,
            Party::Platform => pb::Party::Platform,
        } as i32,
        engagement: format!("engagements/{}", r.engagement),
        direction: match r.direction {
            Direction::Inbound => pb::Direction::Inbound,
            Direction::Outbound => pb::Direction::Outbound,
        } as i32,
        deal_type: deal_type_pb(r.deal_type) as i32,
        status: status as i32,
        substatus: substatus as i32,
        status_reason: r.status_reason.clone(),
        display_name: r.display_name.clone(),
        customer: Some(customer_pb(&r.customer)),
        consent_to_share: r.consent_to_share,
        assistance: r.assistance.as_ref().map(|a| pb::Assistance {
            code: a.code as i32,
            notes: a.notes.clone(),
        }),
        solutions: r
            .solutions
            .iter()
            .map(|s| pb::ReferralSolution {
                solution: format!("solutions/{}", s.solution),
                display_name: s.display_name.clone(),
                kind: s.kind as i32,
                quantity: s.quantity,
                unit_price: s.unit_price_cents.map(format_cents).unwrap_or_default(),
            })
            .collect(),
        team: r.team.iter().map(contact_pb).collect(),
        deal_value: r.deal_value.as_ref().map(|m| pb::Money {
            currency_code: m.currency.clone(),
            amount: m.amount(),
        }),
        estimated_close_date: r
            .estimated_close_date
            .map(|d| d.to_string())
            .unwrap_or_default(),
        notes: r.notes.clone(),
        // Stored only once a seller accepted (D4), so there is nothing to hide before.
        seller_contact: r.seller_contact.as_ref().map(contact_pb),
        create_time: Some(timestamp(r.create_time)),
        update_time: Some(timestamp(r.update_time)),
        accept_time: r.accept_time.map(timestamp),
        close_time: r.close_time.map(timestamp),
        expire_time: r.expire_time.map(timestamp),
        etag: r.etag(),
        tracking: Some(pb::Tracking {
            external_reference_id: r.external_reference_id.clone(),
            psc_deal_id: r.psc_deal_id.clone().unwrap_or_default(),
        }),
        registration_status: r
            .registration
            .as_ref()
            .map_or(pb::RegistrationStatus::Unspecified, |g| {
                registration_status_pb(g.status)
            }) as i32,
        favorite,
        registration: r.registration.as_ref().map(|g| pb::Registration {
            status: registration_status_pb(g.status) as i32,
            register_time: Some(timestamp(g.register_time)),
            review_time: g.review_time.map(timestamp),
            reviewed_by: g.reviewed_by.clone(),
            review_reason: g.review_reason.clone(),
        }),
    }
}

pub fn registration_status_pb(s: RegistrationStatus) -> pb::RegistrationStatus {
    match s {
        RegistrationStatus::ReviewPending => pb::RegistrationStatus::ReviewPending,
        RegistrationStatus::Approved => pb::RegistrationStatus::Approved,
        RegistrationStatus::Rejected => pb::RegistrationStatus::Rejected,
    }
}

/// What [`registration::check`](crate::domain::registration::check) found, as the contract
/// shows it.
pub fn registration_check_pb(c: &Check) -> pb::RegistrationCheck {
    pb::RegistrationCheck {
        registrable: c.registrable(),
        issues: c
            .blockers
            .iter()
            .map(|b| pb::RegistrationIssue {
                blocker: blocker_pb(*b) as i32,
                description: b.description().to_owned(),
            })
            .collect(),
        won_within_72_hours: c.won_within_72_hours,
    }
}

pub fn blocker_pb(b: Blocker) -> pb::RegistrationBlocker {
    match b {
        Blocker::NotWon => pb::RegistrationBlocker::NotWon,
        Blocker::AlreadyRegistered => pb::RegistrationBlocker::AlreadyRegistered,
        Blocker::NoIncentiveEligibleSolution => {
            pb::RegistrationBlocker::NoIncentiveEligibleSolution
        }
        Blocker::Private => pb::RegistrationBlocker::Private,
        Blocker::CoSellNotAccepted => pb::RegistrationBlocker::CosellNotAccepted,
        Blocker::NotIsvConnect => pb::RegistrationBlocker::NotIsvConnect,
    }
}

pub fn solution_pb(s: &Solution) -> pb::Solution {
    pb::Solution {
        name: format!("solutions/{}", s.id),
        display_name: s.display_name.clone(),
        publisher: s
            .publisher
            .map(cosell_platform::names::organization)
            .unwrap_or_else(|| "platform".into()),
        kind: s.kind as i32,
        cosell_ready: s.cosell_ready,
        incentive_eligible: s.incentive_eligible,
        mpn_id: s.mpn_id.clone().unwrap_or_default(),
        create_time: Some(timestamp(s.create_time)),
        update_time: Some(timestamp(s.update_time)),
        etag: s.etag(),
        legacy_product_ids: s.legacy_product_ids.clone(),
    }
}

/// The legacy product ids of a solution: at most 50, each 1 to 100 characters, no repeats.
pub fn legacy_product_ids(v: &mut Violations, field: &str, ids: &[String]) -> Vec<String> {
    if ids.len() > 50 {
        v.add(field, format!("has {} ids; at most 50", ids.len()));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let id = id.trim();
        if id.is_empty() || id.chars().count() > 100 {
            v.add(format!("{field}[{i}]"), "must be 1 to 100 characters");
        } else if out.iter().any(|o| o == id) {
            v.add(format!("{field}[{i}]"), "is listed twice");
        } else {
            out.push(id.to_owned());
        }
    }
    out
}
