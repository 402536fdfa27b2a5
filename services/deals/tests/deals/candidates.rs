//! The directory entries offered for a migrated customer the migration could not link (D8):
//! imported with the deal, shown while the customer is unmatched, cleared by the link, and
//! refused like any other input when malformed.

use cosell_proto::deals as pb;
use cosell_testkit::{Refusal, refusal};

use crate::harness::*;

fn candidate(
    h: &Harness,
    i: usize,
    reason: pb::CandidateReason,
    generated: bool,
) -> pb::CustomerCandidate {
    pb::CustomerCandidate {
        entity: h.customers[i].0.clone(),
        legal_name: h.customers[i].1.clone(),
        address: Some(pb::Address {
            lines: vec![format!("{i} Harbour Street")],
            city: "Oslo".into(),
            region: String::new(),
            postal_code: format!("01{i:02}"),
            country_code: "NO".into(),
        }),
        address_generated: generated,
        reason: reason as i32,
    }
}

/// A CO_SELL deal (so with its platform side) whose customer PSC named as free text, complete
/// enough for D6 that an update of it is not refused for another field.
fn unmatched(
    h: &Harness,
    psc: &str,
    candidates: Vec<pb::CustomerCandidate>,
) -> pb::ImportedReferral {
    pb::ImportedReferral {
        psc_deal_id: psc.into(),
        referral: Some(pb::Referral {
            display_name: format!("PSC deal {psc}"),
            deal_type: pb::DealType::CoSell as i32,
            direction: pb::Direction::Outbound as i32,
            status: pb::Status::Active as i32,
            substatus: pb::Substatus::Accepted as i32,
            customer: Some(pb::Customer {
                legal_name: "Northwind Traders AS".into(),
                address: Some(pb::Address {
                    city: "Oslo".into(),
                    country_code: "NO".into(),
                    ..Default::default()
                }),
                contacts: vec![pb::Contact {
                    first_name: "Nora".into(),
                    last_name: "Nilsen".into(),
                    email: "nora@northwind.example".into(),
                    phone: String::new(),
                }],
                candidates,
                ..Default::default()
            }),
            assistance: Some(pb::Assistance {
                code: pb::AssistanceCode::General as i32,
                notes: String::new(),
            }),
            solutions: vec![pb::ReferralSolution {
                solution: h.contoso_solution.clone(),
                ..Default::default()
            }],
            seller_contact: Some(pb::Contact {
                first_name: "Sam".into(),
                last_name: "Seller".into(),
                email: SAM.into(),
                phone: String::new(),
            }),
            ..Default::default()
        }),
    }
}

async fn import(
    h: &Harness,
    referrals: Vec<pb::ImportedReferral>,
) -> Result<Vec<pb::ImportResult>, tonic::Status> {
    h.import(&h.migration_token().await, referrals).await
}

fn id_of(name: &str, collection: &str) -> uuid::Uuid {
    cosell_platform::names::parse_one(name, collection).unwrap()
}

#[tokio::test]
async fn an_unmatched_customer_shows_its_candidates_until_one_is_linked() {
    let h = Harness::start().await;
    let offered = vec![
        candidate(&h, 3, pb::CandidateReason::SameName, true),
        candidate(&h, 4, pb::CandidateReason::OtherCity, false),
    ];
    let first = import(&h, vec![unmatched(&h, "PSC-C1", offered.clone())])
        .await
        .unwrap();
    assert!(first[0].created, "{}", first[0].error);
    let name = first[0].referral.as_ref().unwrap().name.clone();
    let customer = first[0]
        .referral
        .as_ref()
        .unwrap()
        .customer
        .clone()
        .unwrap();
    assert_eq!(customer.candidates, offered, "the import answers with them");

    // Read back as the partner's user sees it: the PSC text, UNMATCHED, and every candidate.
    let got = h.get(RITA, &name).await.unwrap();
    let customer = got.customer.clone().unwrap();
    assert_eq!(customer.r#match(), pb::CustomerMatch::Unmatched);
    assert_eq!(customer.legal_name, "Northwind Traders AS");
    assert_eq!(customer.candidates, offered);
    let listed = h
        .list(
            RITA,
            pb::ListReferralsRequest {
                psc_deal_id: "PSC-C1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .referrals;
    assert_eq!(listed[0].customer.as_ref().unwrap().candidates, offered);

    // The same deal again, with other candidates: nothing is created or changed.
    let again = import(
        &h,
        vec![unmatched(
            &h,
            "PSC-C1",
            vec![candidate(&h, 5, pb::CandidateReason::SimilarName, false)],
        )],
    )
    .await
    .unwrap();
    assert!(!again[0].created && again[0].error.is_empty());
    let customer = again[0]
        .referral
        .as_ref()
        .unwrap()
        .customer
        .clone()
        .unwrap();
    assert_eq!(customer.candidates, offered);
    assert_eq!(h.get(RITA, &name).await.unwrap(), got);
    assert_eq!(h.deals.store.count_referrals().await.unwrap(), 2);

    // Linking the second one is one update of `customer.entity`.
    let linked = h
        .link_customer(RITA, &name, &offered[1].entity)
        .await
        .unwrap();
    let customer = linked.customer.unwrap();
    assert_eq!(customer.r#match(), pb::CustomerMatch::Matched);
    assert_eq!(customer.entity, offered[1].entity);
    assert_eq!(customer.legal_name, h.customers[4].1, "from the directory");
    assert!(customer.candidates.is_empty());
    let customer = h.get(RITA, &name).await.unwrap().customer.unwrap();
    assert_eq!(customer.r#match(), pb::CustomerMatch::Matched);
    assert!(customer.candidates.is_empty());

    // Cleared where they are kept, on both sides of the engagement, not only hidden.
    let engagement = id_of(&linked.engagement, "engagements");
    let sides = h.deals.store.engagement(engagement).await.unwrap();
    assert_eq!(sides.len(), 2);
    for side in sides {
        assert_eq!(side.customer.entity.as_deref(), Some(&*offered[1].entity));
        assert!(side.customer.candidates.is_empty(), "{:?}", side.party);
    }
}

#[tokio::test]
async fn a_matched_customer_keeps_no_candidates() {
    let h = Harness::start().await;
    let mut deal = unmatched(
        &h,
        "PSC-M1",
        vec![candidate(&h, 3, pb::CandidateReason::SameName, false)],
    );
    let customer = deal.referral.as_mut().unwrap().customer.as_mut().unwrap();
    customer.entity = h.customers[2].0.clone();
    let results = import(&h, vec![deal]).await.unwrap();
    assert!(results[0].created, "{}", results[0].error);
    let referral = results[0].referral.clone().unwrap();
    let customer = referral.customer.unwrap();
    assert_eq!(customer.r#match(), pb::CustomerMatch::Matched);
    assert_eq!(customer.legal_name, h.customers[2].1);
    assert!(customer.candidates.is_empty());
    let stored = h
        .deals
        .store
        .get(id_of(&referral.name, "referrals"))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.customer.candidates.is_empty());

    // A partner's own referral never takes them either: they are output only.
    let mut mine = h.complete(pb::DealType::PartnerLed, &h.contoso_solution);
    mine.customer.as_mut().unwrap().candidates =
        vec![candidate(&h, 3, pb::CandidateReason::SameName, false)];
    let created = h.create(RITA, mine).await;
    assert!(created.customer.unwrap().candidates.is_empty());
}

#[tokio::test]
async fn a_bad_candidate_refuses_its_deal_naming_the_field() {
    let h = Harness::start().await;
    let good = candidate(&h, 3, pb::CandidateReason::SameName, false);
    let mut bad_entity = good.clone();
    bad_entity.entity = "customers/3".into();
    let mut no_reason = candidate(&h, 4, pb::CandidateReason::OtherCity, false);
    no_reason.reason = pb::CandidateReason::Unspecified as i32;
    let mut unknown_reason = no_reason.clone();
    unknown_reason.reason = 99;
    let results = import(
        &h,
        vec![
            unmatched(&h, "PSC-OK", vec![good.clone()]),
            unmatched(&h, "PSC-E", vec![bad_entity]),
            unmatched(&h, "PSC-R", vec![good.clone(), no_reason]),
            unmatched(&h, "PSC-U", vec![unknown_reason]),
            unmatched(&h, "PSC-D", vec![good.clone(), good]),
        ],
    )
    .await
    .unwrap();
    assert!(results[0].created, "{}", results[0].error);
    let refused: Vec<(bool, &str)> = results[1..]
        .iter()
        .map(|r| (r.created || r.referral.is_some(), r.error.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            (
                false,
                "referral.customer.candidates[0].entity: must be `entities/{id}` (got `customers/3`)"
            ),
            (
                false,
                "referral.customer.candidates[1].reason: 0 is not a reason: one of the CANDIDATE_REASON_ values"
            ),
            (
                false,
                "referral.customer.candidates[0].reason: 99 is not a reason: one of the CANDIDATE_REASON_ values"
            ),
            (
                false,
                "referral.customer.candidates[1].entity: is listed twice"
            ),
        ]
    );
    assert_eq!(
        h.deals.store.count_referrals().await.unwrap(),
        2,
        "only PSC-OK, with its platform side"
    );
}

#[tokio::test]
async fn candidates_over_their_limits_refuse_the_whole_call() {
    let h = Harness::start().await;
    let four: Vec<pb::CustomerCandidate> = (3..7)
        .map(|i| candidate(&h, i, pb::CandidateReason::SimilarName, false))
        .collect();
    let err = import(
        &h,
        vec![
            unmatched(&h, "PSC-1", four[..3].to_vec()),
            unmatched(&h, "PSC-2", four.clone()),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(
        refusal(&err),
        Refusal {
            code: tonic::Code::InvalidArgument,
            reason: "TOO_MANY_ITEMS".into(),
            domain: "deals.cosell".into(),
            violations: vec![(
                "referrals[1].referral.customer.candidates".into(),
                "has 4 items; at most 3 are accepted".into()
            )],
        }
    );
    assert_eq!(h.deals.store.count_referrals().await.unwrap(), 0);

    // Lengths are the proto's: refused as the request is read.
    let mut long = four[0].clone();
    long.legal_name = "N".repeat(1001);
    let err = import(
        &h,
        vec![
            unmatched(&h, "PSC-1", vec![four[1].clone()]),
            unmatched(&h, "PSC-2", vec![long]),
        ],
    )
    .await
    .unwrap_err();
    let err = refusal(&err);
    assert_eq!(
        (err.code, err.reason.as_str()),
        (tonic::Code::InvalidArgument, "FIELD_TOO_LONG")
    );
    assert_eq!(
        err.fields(),
        ["referrals[1].referral.customer.candidates[0].legal_name"]
    );
    assert_eq!(h.deals.store.count_referrals().await.unwrap(), 0);
}
