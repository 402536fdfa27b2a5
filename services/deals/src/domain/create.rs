//! New referrals: the rules that start an engagement. Each way in has its rule, which decides
//! the new referral's stage, checks it, and makes the platform's side when there is one:
//!
//! - [`outbound`]: a partner's own referral (`ReferralService/CreateReferral`), after
//!   [`ensure_cosell_ready`] (D7).
//! - [`inbound`]: a platform seller's referral for a partner (`CoSellService/
//!   CreateInboundReferral`, D5), after [`ensure_cut_over`] (5.5).
//! - [`migrated`]: a deal brought over from PSC (`ReferralService/ImportReferrals`, 5.4), after
//!   [`check_migrated_stage`].
//!
//! The requested fields arrive as a [`Draft`], checked at the edge; the customer and the
//! catalog entries it names are looked up by the caller, which stores what the rule returns
//! (the partner's referral first) in one transaction.

use chrono::{DateTime, Utc};
use cosell_proto::deals::{AssistanceCode, CustomerSize};
use uuid::Uuid;

use super::rules::{self, RuleError};
use super::{
    Assistance, Contact, Customer, DealType, Direction, Money, Party, Referral, ReferralSolution,
    Solution, SolutionLine, Stage, Timing, Waiting, attach_solutions,
};

/// The fields of a new referral as requested, checked but not yet resolved against the
/// catalog, the directory and identity.
#[derive(Debug, Clone)]
pub struct Draft {
    pub mpn_location: Option<String>,
    pub deal_type: DealType,
    pub display_name: String,
    /// The directory entry of the customer (D8).
    pub entity: String,
    pub customer_size: CustomerSize,
    pub contacts: Vec<Contact>,
    pub consent_to_share: bool,
    pub assistance: Option<Assistance>,
    pub solutions: Vec<SolutionLine>,
    pub team: Vec<Contact>,
    pub deal_value: Option<Money>,
    pub estimated_close_date: Option<chrono::NaiveDate>,
    pub notes: String,
    pub external_reference_id: String,
}

impl Draft {
    /// The catalog entries the draft names.
    pub fn solution_ids(&self) -> Vec<Uuid> {
        self.solutions.iter().map(|l| l.solution).collect()
    }
}

/// D7: an organization creates referrals only once it has a co-sell-ready solution.
pub fn ensure_cosell_ready(has_cosell_ready_solution: bool) -> Result<(), RuleError> {
    if has_cosell_ready_solution {
        Ok(())
    } else {
        Err(RuleError::NotAllowed {
            reason: "NO_COSELL_READY_SOLUTION",
            message: "the organization has no co-sell-ready solution yet; publish one in the catalog and have it marked co-sell ready".into(),
        })
    }
}

/// SPEC 5.5: a platform seller's new referral goes to an organization only once it is cut over
/// to this system; until then the organization still takes them in PSC. Partners' own
/// referrals and migrated deals are not routed by the switch.
pub fn ensure_cut_over(routed_to_new_system: bool) -> Result<(), RuleError> {
    if routed_to_new_system {
        Ok(())
    } else {
        Err(RuleError::NotAllowed {
            reason: "ORGANIZATION_ON_PSC",
            message: "the organization still takes referrals in PSC: send this referral there, \
                      or ask a platform operator to cut the organization over"
                .into(),
        })
    }
}

/// A partner's own referral (3.2): a CO_SELL one is a request waiting for a platform seller
/// (NEW/PENDING, with the platform's side in the sellers' queue); any other is the partner's to
/// work at once (ACTIVE). `catalog` holds the entries the draft names.
pub fn outbound(
    organization: Uuid,
    d: Draft,
    customer: Customer,
    catalog: &[Solution],
    at: Timing,
) -> Result<Vec<Referral>, RuleError> {
    let solutions = attach_solutions(&d.solutions, catalog)?;
    let stage = if d.deal_type == DealType::CoSell {
        Stage::New(Waiting::Pending)
    } else {
        Stage::Active
    };
    let partner = partner_referral(
        organization,
        Direction::Outbound,
        stage,
        d,
        customer,
        solutions,
        at,
    );
    rules::check_deal_type(&partner)?;
    if partner.deal_type != DealType::CoSell {
        return Ok(vec![partner]);
    }
    let platform = rules::platform_side(&partner, at);
    Ok(vec![partner, platform])
}

/// A platform seller's referral for a partner (D5): NEW/RECEIVED in the partner's Inbound tab,
/// CO_SELL and shared by nature, with the seller's help on offer; the platform's own side is
/// the seller's outbound referral, accepted by the seller and being worked.
pub fn inbound(
    organization: Uuid,
    mut d: Draft,
    customer: Customer,
    catalog: &[Solution],
    seller: Contact,
    at: Timing,
) -> Result<Vec<Referral>, RuleError> {
    let solutions = attach_solutions(&d.solutions, catalog)?;
    d.deal_type = DealType::CoSell;
    d.consent_to_share = true;
    if d.assistance.is_none() {
        d.assistance = Some(Assistance {
            code: AssistanceCode::General,
            notes: String::new(),
        });
    }
    let mut partner = partner_referral(
        organization,
        Direction::Inbound,
        Stage::New(Waiting::Received),
        d,
        customer,
        solutions,
        at,
    );
    partner.seller_contact = Some(seller.clone());
    let mut platform = rules::platform_side(&partner, at);
    platform.direction = Direction::Outbound;
    rules::activate_platform_side(&mut platform, Some(seller), at.now);
    Ok(vec![partner, platform])
}

/// Where a deal stood in PSC: what a migrated deal brings beyond a draft.
#[derive(Debug, Clone)]
pub struct Migrated {
    pub psc_deal_id: String,
    pub direction: Direction,
    /// Open stages only: closed deals do not migrate.
    pub stage: Stage,
    /// The platform seller who had accepted, if any.
    pub seller_contact: Option<Contact>,
    /// When PSC created it (`None`: unknown, now).
    pub create_time: Option<DateTime<Utc>>,
}

/// A migrated deal's stage must fit its direction: NEW/RECEIVED is an Inbound deal waiting for
/// the partner, NEW/PENDING an Outbound co-sell request waiting for a seller.
pub fn check_migrated_stage(
    deal_type: DealType,
    direction: Direction,
    stage: Stage,
) -> Result<(), RuleError> {
    let consistent = match (direction, stage) {
        (Direction::Inbound, Stage::New(Waiting::Pending)) => false,
        (Direction::Outbound, Stage::New(Waiting::Received)) => false,
        (Direction::Outbound, Stage::New(Waiting::Pending)) => deal_type == DealType::CoSell,
        _ => true,
    };
    if consistent {
        Ok(())
    } else {
        Err(RuleError::Invalid(
            "status",
            "NEW/RECEIVED is for Inbound deals; NEW/PENDING for Outbound CO_SELL requests".into(),
        ))
    }
}

/// A deal migrated from PSC (5.4), as it stood there: its stage, its creation time, consent as
/// its deal type implies, help requested only on CO_SELL, and the seller who accepted shown
/// once the deal is ACTIVE. A CO_SELL deal has the platform's side too: accepted by the seller
/// when the seller sent it (Inbound) or had answered it, else waiting in the sellers' queue.
/// Migrated deals may be incomplete (D6 applies at their next status change, not here).
pub fn migrated(
    organization: Uuid,
    mut d: Draft,
    deal: Migrated,
    customer: Customer,
    catalog: &[Solution],
    at: Timing,
) -> Result<Vec<Referral>, RuleError> {
    let solutions = attach_solutions(&d.solutions, catalog)?;
    let deal_type = d.deal_type;
    d.consent_to_share = deal_type.shared();
    if deal_type != DealType::CoSell {
        d.assistance = None;
    }
    let active = deal.stage == Stage::Active;
    let mut partner = partner_referral(
        organization,
        deal.direction,
        deal.stage,
        d,
        customer,
        solutions,
        at,
    );
    partner.create_time = deal.create_time.unwrap_or(at.now);
    partner.accept_time = active.then_some(at.now);
    partner.seller_contact = deal.seller_contact.clone().filter(|_| active);
    partner.psc_deal_id = Some(deal.psc_deal_id);
    if deal_type != DealType::CoSell {
        return Ok(vec![partner]);
    }
    let mut platform = rules::platform_side(&partner, at);
    if deal.direction == Direction::Inbound {
        platform.direction = Direction::Outbound;
        rules::activate_platform_side(&mut platform, deal.seller_contact, at.now);
    } else if partner.seller_contact.is_some() {
        rules::activate_platform_side(&mut platform, partner.seller_contact.clone(), at.now);
    }
    Ok(vec![partner, platform])
}

/// The partner's referral of a new engagement, from a draft and what it names. A NEW one
/// starts waiting for its answer (D2).
fn partner_referral(
    organization: Uuid,
    direction: Direction,
    stage: Stage,
    d: Draft,
    mut customer: Customer,
    solutions: Vec<ReferralSolution>,
    at: Timing,
) -> Referral {
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
        create_time: at.now,
        update_time: at.now,
        accept_time: None,
        close_time: None,
        expire_time: matches!(stage, Stage::New(_)).then(|| at.expire_time()),
        version: 1,
        external_reference_id: d.external_reference_id,
        psc_deal_id: None,
        registration: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::{self, contact, solution};

    fn at() -> Timing {
        testing::at(crate::domain::now())
    }

    fn draft(deal_type: DealType, catalog: &[Solution]) -> Draft {
        Draft {
            mpn_location: None,
            deal_type,
            display_name: "Deal".into(),
            entity: "entities/1".into(),
            customer_size: CustomerSize::Unspecified,
            contacts: vec![contact()],
            consent_to_share: deal_type.shared(),
            assistance: (deal_type == DealType::CoSell).then(|| Assistance {
                code: AssistanceCode::TechnicalArchitecture,
                notes: String::new(),
            }),
            solutions: catalog
                .iter()
                .map(|s| SolutionLine {
                    solution: s.id,
                    quantity: 0,
                    unit_price_cents: None,
                })
                .collect(),
            team: Vec::new(),
            deal_value: None,
            estimated_close_date: None,
            notes: String::new(),
            external_reference_id: String::new(),
        }
    }

    #[test]
    fn d7_needs_a_cosell_ready_solution() {
        assert_eq!(ensure_cosell_ready(true), Ok(()));
        assert!(matches!(
            ensure_cosell_ready(false),
            Err(RuleError::NotAllowed {
                reason: "NO_COSELL_READY_SOLUTION",
                ..
            })
        ));
    }

    #[test]
    fn a_partners_deal_is_worked_at_once_and_a_cosell_request_waits() {
        let catalog = [solution()];
        let at = at();
        let private = outbound(
            Uuid::now_v7(),
            draft(DealType::Private, &catalog),
            Customer::default(),
            &catalog,
            at,
        )
        .unwrap();
        assert_eq!(private.len(), 1, "no platform side for a PRIVATE deal");
        assert_eq!(private[0].stage, Stage::Active);
        assert_eq!(private[0].expire_time, None);
        assert_eq!(private[0].solutions[0].solution, catalog[0].id);

        let cosell = outbound(
            Uuid::now_v7(),
            draft(DealType::CoSell, &catalog),
            Customer::default(),
            &catalog,
            at,
        )
        .unwrap();
        let [partner, platform] = &cosell[..] else {
            panic!("a CO_SELL request has two sides: {cosell:?}");
        };
        assert_eq!(partner.stage, Stage::New(Waiting::Pending));
        assert_eq!(partner.expire_time, Some(at.now + at.expiry));
        assert_eq!(
            (platform.party, platform.direction, platform.stage),
            (
                Party::Platform,
                Direction::Inbound,
                Stage::New(Waiting::Received)
            )
        );
        assert_eq!(platform.engagement, partner.engagement);
        assert_eq!(platform.expire_time, Some(at.now + at.expiry));
    }

    #[test]
    fn a_contradicting_deal_type_is_refused_before_anything_is_made() {
        let catalog = [solution()];
        let mut d = draft(DealType::CoSell, &catalog);
        d.assistance = None;
        d.contacts.clear();
        let err = outbound(Uuid::now_v7(), d, Customer::default(), &catalog, at()).unwrap_err();
        let RuleError::Fields(fields) = err else {
            panic!("{err:?}")
        };
        let names: Vec<&str> = fields.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names, ["assistance", "customer.contacts"]);
    }

    #[test]
    fn a_sellers_inbound_referral_waits_for_the_partner_and_is_worked_by_the_seller() {
        let catalog = [solution()];
        let mut d = draft(DealType::Private, &catalog);
        d.consent_to_share = false;
        let mut seller = contact();
        seller.email = "sam@platform.example".into();
        let at = at();
        let made = inbound(
            Uuid::now_v7(),
            d,
            Customer::default(),
            &catalog,
            seller.clone(),
            at,
        )
        .unwrap();
        let [partner, platform] = &made[..] else {
            panic!("{made:?}")
        };
        assert_eq!(partner.deal_type, DealType::CoSell);
        assert!(partner.consent_to_share);
        assert_eq!(
            partner.assistance.as_ref().map(|a| a.code),
            Some(AssistanceCode::General)
        );
        assert_eq!(
            (partner.direction, partner.stage),
            (Direction::Inbound, Stage::New(Waiting::Received))
        );
        assert_eq!(partner.expire_time, Some(at.now + at.expiry));
        assert_eq!(
            (platform.direction, platform.stage, platform.expire_time),
            (Direction::Outbound, Stage::Active, None)
        );
        assert_eq!(platform.accept_time, Some(at.now));
        assert_eq!(platform.seller_contact, Some(seller));
    }

    fn psc(direction: Direction, stage: Stage, seller: Option<Contact>) -> Migrated {
        Migrated {
            psc_deal_id: "PSC-1".into(),
            direction,
            stage,
            seller_contact: seller,
            create_time: None,
        }
    }

    #[test]
    fn a_migrated_stage_must_fit_its_direction() {
        use Direction::*;
        let received = Stage::New(Waiting::Received);
        let pending = Stage::New(Waiting::Pending);
        assert!(check_migrated_stage(DealType::CoSell, Inbound, received).is_ok());
        assert!(check_migrated_stage(DealType::CoSell, Outbound, pending).is_ok());
        assert!(check_migrated_stage(DealType::Private, Outbound, Stage::Active).is_ok());
        for (t, d, s) in [
            (DealType::CoSell, Inbound, pending),
            (DealType::CoSell, Outbound, received),
            (DealType::PartnerLed, Outbound, pending),
        ] {
            assert!(
                matches!(
                    check_migrated_stage(t, d, s),
                    Err(RuleError::Invalid("status", _))
                ),
                "{t:?} {d:?} {s:?}"
            );
        }
    }

    #[test]
    fn a_migrated_cosell_deal_keeps_where_the_seller_stood() {
        let catalog = [solution()];
        let at = at();
        let sides = |direction, stage, seller| {
            migrated(
                Uuid::now_v7(),
                draft(DealType::CoSell, &catalog),
                psc(direction, stage, seller),
                Customer::default(),
                &catalog,
                at,
            )
            .unwrap()
        };
        // Sent by a seller: the seller's side is being worked.
        let inbound = sides(Direction::Inbound, Stage::New(Waiting::Received), None);
        assert_eq!(inbound[0].psc_deal_id.as_deref(), Some("PSC-1"));
        assert_eq!(inbound[0].expire_time, Some(at.now + at.expiry));
        assert_eq!(
            (
                inbound[1].direction,
                inbound[1].stage,
                inbound[1].expire_time
            ),
            (Direction::Outbound, Stage::Active, None)
        );
        // A request a seller had accepted: both sides ACTIVE, the seller shown to the partner.
        let accepted = sides(Direction::Outbound, Stage::Active, Some(contact()));
        assert_eq!(accepted[0].seller_contact, Some(contact()));
        assert_eq!(accepted[0].accept_time, Some(at.now));
        assert_eq!(accepted[1].stage, Stage::Active);
        assert_eq!(accepted[1].seller_contact, Some(contact()));
        // A request still waiting: the platform's side is in the sellers' queue, and the
        // seller named for a deal that is not ACTIVE is not shown.
        let waiting = sides(
            Direction::Outbound,
            Stage::New(Waiting::Pending),
            Some(contact()),
        );
        assert_eq!(waiting[0].seller_contact, None);
        assert_eq!(waiting[1].stage, Stage::New(Waiting::Received));
        assert_eq!(waiting[1].expire_time, Some(at.now + at.expiry));
    }

    #[test]
    fn a_migrated_deal_shares_as_its_type_says() {
        let catalog = [solution()];
        let mut d = draft(DealType::PartnerLed, &catalog);
        d.consent_to_share = false;
        d.assistance = Some(Assistance {
            code: AssistanceCode::General,
            notes: String::new(),
        });
        let made = migrated(
            Uuid::now_v7(),
            d,
            psc(Direction::Outbound, Stage::Active, None),
            Customer::default(),
            &catalog,
            at(),
        )
        .unwrap();
        assert_eq!(made.len(), 1);
        assert!(made[0].consent_to_share);
        assert_eq!(made[0].assistance, None);
    }
}
