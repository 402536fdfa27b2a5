//! New referrals: the rules that start an engagement. Each way in has its rule, which decides
//! the new referral's stage, checks it, and makes the platform's side when there is one:
//!
//! - [`outbound`]: a partner's own referral (`ReferralService/CreateReferral`), after
//!   [`ensure_cosell_ready`] (D7).
//! - [`inbound`]: a platform seller's referral for a partner (`CoSellService/
//!   CreateInboundReferral`, D5).
//!
//! The requested fields arrive as a [`Draft`], checked at the edge; the customer and the
//! catalog entries it names are looked up by the caller, which stores what the rule returns
//! (the partner's referral first) in one transaction.

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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cosell_proto::deals::SolutionKind;

    fn at() -> Timing {
        Timing {
            now: crate::domain::now(),
            expiry: chrono::Duration::days(14),
        }
    }

    fn contact() -> Contact {
        Contact {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: "ada@contoso.com".into(),
            phone: "+1 425 555 0100".into(),
        }
    }

    fn solution() -> Solution {
        let now = crate::domain::now();
        Solution {
            id: Uuid::now_v7(),
            display_name: "Contoso Cloud Analytics".into(),
            publisher: Some(Uuid::now_v7()),
            kind: SolutionKind::PartnerSolution,
            cosell_ready: true,
            incentive_eligible: false,
            mpn_id: None,
            legacy_product_ids: Vec::new(),
            create_time: now,
            update_time: now,
            version: 1,
        }
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
}
