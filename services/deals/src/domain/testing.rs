//! Referrals and solutions for the domain's unit tests.

use chrono::{DateTime, Utc};
use cosell_proto::deals::{AssistanceCode, CustomerSize, SolutionKind};
use uuid::Uuid;

use super::{
    Address, Assistance, Contact, Customer, DealType, Direction, Money, Party, Referral,
    ReferralSolution, Solution, Stage, Timing,
};

/// `now`, with the default 14 days of waiting (D2).
pub fn at(now: DateTime<Utc>) -> Timing {
    Timing {
        now,
        expiry: chrono::Duration::days(14),
    }
}

pub fn contact() -> Contact {
    Contact {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        email: "ada@contoso.com".into(),
        phone: "+1 425 555 0100".into(),
    }
}

/// A partner's referral with every field D6 asks for.
pub fn complete(deal_type: DealType, stage: Stage) -> Referral {
    let now = crate::domain::now();
    Referral {
        id: Uuid::now_v7(),
        organization: Uuid::now_v7(),
        mpn_location: None,
        party: Party::Partner,
        engagement: Uuid::now_v7(),
        direction: Direction::Outbound,
        deal_type,
        stage,
        status_reason: String::new(),
        display_name: "Deal".into(),
        customer: Customer {
            entity: Some("X".into()),
            legal_name: "CONTOSO BANK".into(),
            address: Address {
                city: "Seattle".into(),
                country_code: "US".into(),
                ..Default::default()
            },
            size: CustomerSize::Unspecified,
            contacts: vec![contact()],
            candidates: Vec::new(),
        },
        consent_to_share: deal_type.shared(),
        assistance: (deal_type == DealType::CoSell).then(|| Assistance {
            code: AssistanceCode::General,
            notes: String::new(),
        }),
        solutions: vec![ReferralSolution {
            solution: Uuid::now_v7(),
            display_name: "S".into(),
            kind: SolutionKind::PartnerSolution,
            quantity: 0,
            unit_price_cents: None,
        }],
        team: vec![contact()],
        deal_value: Some(Money {
            currency: "USD".into(),
            cents: 100,
        }),
        estimated_close_date: chrono::NaiveDate::from_ymd_opt(2027, 1, 1),
        notes: "n".into(),
        seller_contact: None,
        create_time: now,
        update_time: now,
        accept_time: None,
        close_time: None,
        expire_time: None,
        version: 1,
        external_reference_id: String::new(),
        registration: None,
        psc_deal_id: None,
    }
}

/// A co-sell-ready partner solution.
pub fn solution() -> Solution {
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
