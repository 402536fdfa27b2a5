//! The row reader of the API's gets and lists (`referral::read`, columns read in place) makes
//! the referral that sea-orm's derived reader and `to_domain` make, for a referral with every
//! field set (every text a different value), one with every optional field empty, and one
//! whose customer is unmatched, with candidates.

use chrono::{NaiveDate, TimeZone, Utc};
use cosell_deals::domain::registration::{Registration, RegistrationStatus};
use cosell_deals::domain::{
    Address, Assistance, Candidate, Contact, Customer, DealType, Direction, Money, Outcome, Party,
    Referral, ReferralSolution, Stage,
};
use cosell_deals::store::entities::referral;
use cosell_deals::store::migration::Migrator;
use cosell_proto::deals::{AssistanceCode, CandidateReason, CustomerSize, SolutionKind};
use cosell_testkit::TestDb;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, FromQueryResult, QueryTrait};
use uuid::Uuid;

fn contact(who: &str) -> Contact {
    Contact {
        first_name: format!("{who} first"),
        last_name: format!("{who} last"),
        email: format!("{who}@example.com"),
        phone: format!("+1 {who}"),
    }
}

fn full(n: u128) -> Referral {
    let at = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
    Referral {
        id: Uuid::from_u128(n),
        organization: Uuid::from_u128(1_000 + n),
        mpn_location: Some("4000002".into()),
        party: Party::Platform,
        engagement: Uuid::from_u128(2_000 + n),
        direction: Direction::Inbound,
        deal_type: DealType::PartnerLed,
        stage: Stage::Closed(Outcome::Lost),
        status_reason: "status reason".into(),
        display_name: "display name".into(),
        customer: Customer {
            entity: Some("entities/25490015VCIORO2N2047".into()),
            legal_name: "Cetracore Energy GmbH".into(),
            address: Address {
                lines: vec!["line one".into(), "line two".into()],
                city: "Wien".into(),
                region: "AT-9".into(),
                postal_code: "1010".into(),
                country_code: "AT".into(),
            },
            size: CustomerSize::CustomerSize1To10,
            contacts: vec![contact("customer")],
            // A matched customer has none (D8): see `unmatched`.
            candidates: Vec::new(),
        },
        consent_to_share: true,
        assistance: Some(Assistance {
            code: AssistanceCode::General,
            notes: "assistance notes".into(),
        }),
        solutions: vec![ReferralSolution {
            solution: Uuid::from_u128(3_000 + n),
            display_name: "solution".into(),
            kind: SolutionKind::PartnerSolution,
            quantity: 3,
            unit_price_cents: Some(999),
        }],
        team: vec![contact("team one"), contact("team two")],
        deal_value: Some(Money {
            currency: "EUR".into(),
            cents: 12_345,
        }),
        estimated_close_date: NaiveDate::from_ymd_opt(2027, 3, 31),
        notes: "notes".into(),
        seller_contact: Some(contact("seller")),
        create_time: at(1),
        update_time: at(2),
        accept_time: Some(at(3)),
        close_time: Some(at(4)),
        expire_time: Some(at(5)),
        version: 7,
        external_reference_id: "external reference id".into(),
        psc_deal_id: Some(format!("psc deal {n}")),
        registration: Some(Registration {
            status: RegistrationStatus::Rejected,
            register_time: at(6),
            review_time: Some(at(7)),
            reviewed_by: "reviewer@platform.example".into(),
            review_reason: "review reason".into(),
        }),
    }
}

fn sparse(n: u128) -> Referral {
    Referral {
        mpn_location: None,
        party: Party::Partner,
        direction: Direction::Outbound,
        deal_type: DealType::Private,
        stage: Stage::Active,
        customer: Customer::default(),
        consent_to_share: false,
        assistance: None,
        solutions: Vec::new(),
        team: Vec::new(),
        deal_value: None,
        estimated_close_date: None,
        seller_contact: None,
        accept_time: None,
        close_time: None,
        expire_time: None,
        psc_deal_id: None,
        registration: None,
        ..full(n)
    }
}

/// A migrated customer the directory did not match, with the entries offered for it (D8).
fn unmatched(n: u128) -> Referral {
    let mut r = full(n);
    r.customer.entity = None;
    r.customer.candidates = vec![Candidate {
        entity: "entities/5299000J2N45DDNE4Y28".into(),
        legal_name: "Cetracore Energie AG".into(),
        address: Address {
            lines: vec!["candidate line".into()],
            city: "Graz".into(),
            region: "AT-6".into(),
            postal_code: "8010".into(),
            country_code: "AT".into(),
        },
        address_generated: true,
        reason: CandidateReason::OtherLegalForm,
    }];
    r
}

#[tokio::test]
async fn the_row_reader_reads_what_the_derived_one_does() {
    let test_db = TestDb::new().await.unwrap();
    let db = cosell_platform::db::connect_and_migrate::<Migrator>(&test_db.url)
        .await
        .unwrap();
    let written = [full(1), sparse(2), unmatched(3)];
    for r in &written {
        let mut active = referral::to_active(r);
        active.request_key = Set(Some(format!("request key of {}", r.id)));
        referral::Entity::insert(active)
            .exec_without_returning(&db)
            .await
            .unwrap();
    }
    let select = referral::Entity::find().build(db.get_database_backend());
    let rows = db.query_all_raw(select).await.unwrap();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let derived =
            referral::to_domain(&referral::Model::from_query_result(row, "").unwrap()).unwrap();
        let (read, next) = referral::read(row).unwrap();
        assert_eq!(read, derived);
        let expected = written.iter().find(|r| r.id == read.id).unwrap();
        assert_eq!(&read, expected);
        // The select's own columns would start right after the referral's.
        assert_eq!(next, row.column_names().len());
    }
}
