//! Input limits through the real server: a field over the limit its proto comment documents is
//! `INVALID_ARGUMENT` naming the field, before anything is read or written; a value exactly at
//! the limit is served as usual.

use cosell_proto::deals as pb;
use cosell_testkit::{Refusal, authed, refusal};

use crate::harness::*;

#[tokio::test]
async fn catalog_queries_are_bounded_in_characters_and_words() {
    let h = Harness::start().await;
    let ada = h.token(ADA).await;
    let search = |query: String| {
        let catalog = h.catalog();
        let ada = ada.clone();
        async move {
            catalog
                .clone()
                .list_solutions(authed(
                    &ada,
                    pb::ListSolutionsRequest {
                        query,
                        ..Default::default()
                    },
                ))
                .await
                .map(|r| {
                    r.into_inner()
                        .solutions
                        .into_iter()
                        .map(|s| s.display_name)
                        .collect::<Vec<_>>()
                })
        }
    };

    // 200 characters and 10 words: the most a query may be, and it still finds.
    let mut at_limit = "contoso ".repeat(9) + "cloud";
    at_limit.push_str(&"-".repeat(200 - at_limit.len()));
    assert_eq!(at_limit.chars().count(), 200);
    assert_eq!(search(at_limit).await.unwrap(), ["Contoso Cloud Analytics"]);

    let refused = |reason: &str, description: &str| Refusal {
        code: tonic::Code::InvalidArgument,
        reason: reason.into(),
        domain: "deals.cosell".into(),
        violations: vec![("query".into(), description.into())],
    };
    let err = search("c".repeat(201)).await.unwrap_err();
    assert_eq!(
        refusal(&err),
        refused(
            "FIELD_TOO_LONG",
            "is 201 characters long; at most 200 are accepted"
        )
    );

    let err = search("contoso ".repeat(10) + "cloud").await.unwrap_err();
    assert_eq!(
        refusal(&err),
        refused("TOO_MANY_WORDS", "has 11 words; at most 10 are accepted")
    );
}

#[tokio::test]
async fn a_long_customer_name_filter_is_refused() {
    let h = Harness::start().await;
    h.create(
        RITA,
        h.complete(pb::DealType::PartnerLed, &h.contoso_solution),
    )
    .await;
    let filter = |customer_name: String| pb::ListReferralsRequest {
        customer_name,
        ..Default::default()
    };
    let err = refusal(&h.list(RITA, filter("x".repeat(201))).await.unwrap_err());
    assert_eq!(err.code, tonic::Code::InvalidArgument);
    assert_eq!(err.reason, "FIELD_TOO_LONG");
    assert_eq!(err.fields(), ["customer_name"]);

    // At the limit the filter is applied as usual: no customer's name holds 200 x.
    let page = h.list(RITA, filter("x".repeat(200))).await.unwrap();
    assert!(page.referrals.is_empty());
    // And the referral is there for a filter that matches.
    let customer = &h.customers[0].1;
    let page = h.list(RITA, filter(customer.to_lowercase())).await.unwrap();
    assert_eq!(page.referrals.len(), 1);
}

#[tokio::test]
async fn a_nested_field_over_its_limit_names_its_path_and_writes_nothing() {
    let h = Harness::start().await;
    let mut referral = h.complete(pb::DealType::PartnerLed, &h.contoso_solution);
    let member = referral.team[0].clone();
    referral.team = vec![member.clone(); 4];
    referral.team[3].email = format!("{}@contoso.com", "r".repeat(200));
    let err = refusal(&h.try_create(RITA, referral.clone(), "").await.unwrap_err());
    assert_eq!(
        (err.code, err.reason.as_str(), err.domain.as_str()),
        (
            tonic::Code::InvalidArgument,
            "FIELD_TOO_LONG",
            "deals.cosell"
        )
    );
    assert_eq!(
        err.violations,
        [(
            "referral.team[3].email".to_owned(),
            "is 212 characters long; at most 200 are accepted".to_owned()
        )]
    );
    assert_eq!(h.deals.store.count_referrals().await.unwrap(), 0);

    // 51 team members: counted, not looked at one by one.
    referral.team = vec![member; 51];
    let err = refusal(&h.try_create(RITA, referral, "").await.unwrap_err());
    assert_eq!(err.reason, "TOO_MANY_ITEMS");
    assert_eq!(
        err.violations,
        [(
            "referral.team".to_owned(),
            "has 51 items; at most 50 are accepted".to_owned()
        )]
    );
    assert_eq!(h.deals.store.count_referrals().await.unwrap(), 0);
}
