//! The rules of SPEC 3, one test each: D1/D6/D7/D8/D9/D10, deal types and upgrades, the
//! 50-solution limit, consent and contact rules, field violations.

use cosell_proto::deals as pb;
use cosell_testkit::{TestDb, authed};
use prost_types::FieldMask;

use crate::harness::*;

fn update(
    name: &str,
    etag: &str,
    fields: pb::Referral,
    paths: &[&str],
) -> pb::UpdateReferralRequest {
    pb::UpdateReferralRequest {
        referral: Some(pb::Referral {
            name: name.into(),
            etag: etag.into(),
            ..fields
        }),
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    }
}

/// Platform operators mark Contoso's solution not co-sell ready (D7).
async fn make_contoso_solution_not_ready(h: &Harness) {
    let oli = h.token(OLI).await;
    h.catalog()
        .update_solution(authed(
            &oli,
            pb::UpdateSolutionRequest {
                solution: Some(pb::Solution {
                    name: h.contoso_solution.clone(),
                    cosell_ready: false,
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["cosell_ready".into()],
                }),
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn d7_creating_needs_a_cosell_ready_solution_of_the_organization() {
    let h = Harness::start().await;
    // Contoso's only solution is made not ready: Contoso can create no referral then, even
    // with a platform SKU on it.
    make_contoso_solution_not_ready(&h).await;
    let err = h
        .try_create(RITA, h.complete(pb::DealType::Private, &h.sku), "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(details(&err).0, "NO_COSELL_READY_SOLUTION");
}

#[tokio::test]
async fn d6_every_missing_field_is_named_before_a_status_change() {
    let h = Harness::start().await;
    let bare = pb::Referral {
        display_name: "Bare".into(),
        deal_type: pb::DealType::Private as i32,
        customer: Some(pb::Customer {
            entity: h.customers[2].0.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = h.create(RITA, bare).await;
    assert_eq!(
        r.status(),
        pb::Status::Active,
        "a referral may exist without them"
    );
    let rita = h.token(RITA).await;
    let err = h
        .referrals()
        .mark_referral_won(authed(
            &rita,
            pb::MarkReferralWonRequest {
                name: r.name.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let (reason, fields) = details(&err);
    assert_eq!(reason, "REQUIRED_FIELDS_MISSING");
    assert_eq!(
        fields,
        [
            "solutions",
            "team",
            "deal_value",
            "estimated_close_date",
            "notes"
        ]
    );
    // Upgrading to CO_SELL needs a customer contact as well.
    let err = h
        .referrals()
        .upgrade_deal_type(authed(
            &rita,
            pb::UpgradeDealTypeRequest {
                name: r.name.clone(),
                deal_type: pb::DealType::CoSell as i32,
                assistance: Some(pb::Assistance {
                    code: pb::AssistanceCode::General as i32,
                    notes: String::new(),
                }),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert!(details(&err).1.contains(&"customer.contacts".to_string()));
    // A lost deal needs a reason as well as the fields.
    let err = h
        .referrals()
        .mark_referral_lost(authed(
            &rita,
            pb::MarkReferralLostRequest {
                name: r.name.clone(),
                reason: String::new(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(details(&err).1, ["reason"]);
}

#[tokio::test]
async fn d8_the_customer_comes_from_the_directory() {
    let h = Harness::start().await;
    let mut r = h.complete(pb::DealType::Private, &h.contoso_solution);
    // Whatever name the client sends, the directory's is kept.
    r.customer.as_mut().unwrap().legal_name = "SOMETHING ELSE".into();
    let created = h.create(RITA, r.clone()).await;
    assert_eq!(created.customer.unwrap().legal_name, h.customers[0].1);
    r.customer.as_mut().unwrap().entity = "entities/NOSUCHLEI00000000000".into();
    let err = h.try_create(RITA, r, "").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(details(&err).1, ["referral.customer.entity"]);
}

#[tokio::test]
async fn bad_input_names_every_field() {
    let h = Harness::start().await;
    let mut r = h.complete(pb::DealType::CoSell, &h.contoso_solution);
    r.display_name = String::new();
    r.deal_value = Some(pb::Money {
        currency_code: "usd".into(),
        amount: "12.345".into(),
    });
    r.estimated_close_date = "31/03/2027".into();
    r.team[0].email = "not-an-email".into();
    r.solutions.push(pb::ReferralSolution {
        solution: "solutions/nope".into(),
        ..Default::default()
    });
    let err = h.try_create(RITA, r, "not-a-uuid").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let mut fields = details(&err).1;
    fields.sort();
    assert_eq!(
        fields,
        [
            "referral.deal_value.currency_code",
            "referral.display_name",
            "referral.estimated_close_date",
            "referral.solutions[1].solution",
            "referral.team[0].email",
            "request_id",
        ]
    );
}

#[tokio::test]
async fn deal_types_need_their_consent_contact_and_assistance() {
    let h = Harness::start().await;
    let mut private = h.complete(pb::DealType::Private, &h.contoso_solution);
    private.consent_to_share = true;
    let err = h.try_create(RITA, private, "").await.unwrap_err();
    assert_eq!(details(&err).1, ["referral.consent_to_share"]);

    let mut led = h.complete(pb::DealType::PartnerLed, &h.contoso_solution);
    led.consent_to_share = false;
    led.assistance = Some(pb::Assistance {
        code: pb::AssistanceCode::General as i32,
        notes: String::new(),
    });
    let err = h.try_create(RITA, led, "").await.unwrap_err();
    assert_eq!(
        details(&err).1,
        ["referral.consent_to_share", "referral.assistance"]
    );

    let mut co_sell = h.complete(pb::DealType::CoSell, &h.contoso_solution);
    co_sell.assistance = None;
    co_sell.customer.as_mut().unwrap().contacts.clear();
    let err = h.try_create(RITA, co_sell, "").await.unwrap_err();
    assert_eq!(
        details(&err).1,
        ["referral.assistance", "referral.customer.contacts"]
    );
}

#[tokio::test]
async fn upgrades_go_one_way_and_cosell_reaches_the_sellers() {
    let h = Harness::start().await;
    let r = h
        .create(RITA, h.complete(pb::DealType::Private, &h.contoso_solution))
        .await;
    let rita = h.token(RITA).await;
    let upgrade = |to: pb::DealType, etag: String| {
        let name = r.name.clone();
        let rita = rita.clone();
        let client = h.referrals();
        async move {
            client
                .clone()
                .upgrade_deal_type(authed(
                    &rita,
                    pb::UpgradeDealTypeRequest {
                        name,
                        deal_type: to as i32,
                        assistance: Some(pb::Assistance {
                            code: pb::AssistanceCode::QuotesOrLicensing as i32,
                            notes: String::new(),
                        }),
                        etag,
                    },
                ))
                .await
                .map(|r| r.into_inner().referral.unwrap())
        }
    };
    // A private deal is invisible to sellers.
    assert_eq!(
        h.get(SAM, &r.name).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let led = upgrade(pb::DealType::PartnerLed, r.etag.clone())
        .await
        .unwrap();
    assert_eq!(led.deal_type(), pb::DealType::PartnerLed);
    assert!(led.consent_to_share);
    assert_eq!(
        h.get(SAM, &r.name).await.unwrap().deal_type(),
        pb::DealType::PartnerLed
    );
    let err = upgrade(pb::DealType::Private, String::new())
        .await
        .unwrap_err();
    assert_eq!(details(&err).0, "DEAL_TYPE_DOWNGRADE");
    let co_sell = upgrade(pb::DealType::CoSell, led.etag.clone())
        .await
        .unwrap();
    assert_eq!(co_sell.deal_type(), pb::DealType::CoSell);
    assert_eq!(
        co_sell.status(),
        pb::Status::Active,
        "no move back to NEW (D1)"
    );
    assert!(
        h.queue().await.iter().any(|q| q.engagement == r.engagement),
        "the upgrade sends the request to the sellers"
    );
    let err = upgrade(pb::DealType::PartnerLed, String::new())
        .await
        .unwrap_err();
    assert_eq!(details(&err).0, "DEAL_TYPE_DOWNGRADE");
}

#[tokio::test]
async fn at_most_50_solutions() {
    let h = Harness::start().await;
    let mut names = vec![h.contoso_solution.clone()];
    for i in 0..50 {
        names.push(
            h.create_solution(
                OLI,
                &format!("SKU {i:02}"),
                pb::SolutionKind::PlatformSku,
                "",
                "",
                false,
            )
            .await
            .name,
        );
    }
    let lines = |n: usize| -> Vec<pb::ReferralSolution> {
        names[..n]
            .iter()
            .map(|s| pb::ReferralSolution {
                solution: s.clone(),
                ..Default::default()
            })
            .collect()
    };
    let mut r = h.complete(pb::DealType::Private, &h.contoso_solution);
    r.solutions = lines(51);
    let err = h.try_create(RITA, r.clone(), "").await.unwrap_err();
    assert_eq!(details(&err).1, ["referral.solutions"]);
    r.solutions = lines(50);
    let created = h.create(RITA, r).await;
    assert_eq!(created.solutions.len(), 50);
    // Nor by an update.
    let rita = h.token(RITA).await;
    let err = h
        .referrals()
        .update_referral(authed(
            &rita,
            update(
                &created.name,
                &created.etag,
                pb::Referral {
                    solutions: lines(51),
                    ..Default::default()
                },
                &["solutions"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(details(&err).1, ["referral.solutions"]);
}

#[tokio::test]
async fn d9_a_stale_etag_is_aborted_and_nothing_is_overwritten() {
    let h = Harness::start().await;
    let r = h
        .create(RITA, h.complete(pb::DealType::Private, &h.contoso_solution))
        .await;
    let rita = h.token(RITA).await;
    let first = h
        .referrals()
        .update_referral(authed(
            &rita,
            update(
                &r.name,
                &r.etag,
                pb::Referral {
                    notes: "first".into(),
                    ..Default::default()
                },
                &["notes"],
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_ne!(first.etag, r.etag);
    let err = h
        .referrals()
        .update_referral(authed(
            &rita,
            update(
                &r.name,
                &r.etag,
                pb::Referral {
                    notes: "second, from a stale read".into(),
                    ..Default::default()
                },
                &["notes"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted);
    assert_eq!(h.get(RITA, &r.name).await.unwrap().notes, "first");
    // Unknown paths and an empty mask are refused.
    let err = h
        .referrals()
        .update_referral(authed(
            &rita,
            update(&r.name, "", pb::Referral::default(), &["status"]),
        ))
        .await
        .unwrap_err();
    assert_eq!(details(&err).1, ["update_mask"]);
}

#[tokio::test]
async fn d10_a_retried_create_returns_the_first_referral() {
    let h = Harness::start_on(TestDb::new().await.unwrap()).await;
    let id = uuid::Uuid::new_v4().to_string();
    let r = h.complete(pb::DealType::CoSell, &h.contoso_solution);
    let first = h.try_create(RITA, r.clone(), &id).await.unwrap();
    let again = h.try_create(RITA, r.clone(), &id).await.unwrap();
    assert_eq!(first.name, again.name);
    let all = h
        .list(RITA, pb::ListReferralsRequest::default())
        .await
        .unwrap()
        .referrals;
    assert_eq!(all.len(), 1);
    assert_eq!(
        h.queue().await.len(),
        1,
        "the platform's side was not created twice either"
    );
    assert_eq!(h.deals.store.count_referrals().await.unwrap(), 2);
    // Concurrent retries too.
    let id = uuid::Uuid::new_v4().to_string();
    let tries = (0..8).map(|_| h.try_create(RITA, r.clone(), &id));
    let results = futures::future::join_all(tries).await;
    let names: std::collections::HashSet<String> =
        results.into_iter().map(|r| r.unwrap().name).collect();
    assert_eq!(names.len(), 1);
    // A retry the rules would refuse now (its solution is no longer co-sell ready, D7) is
    // still answered with its first referral.
    make_contoso_solution_not_ready(&h).await;
    let late = h.try_create(RITA, r.clone(), &id).await.unwrap();
    assert!(names.contains(&late.name));
    let refused = h
        .try_create(RITA, r.clone(), &uuid::Uuid::new_v4().to_string())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
}
