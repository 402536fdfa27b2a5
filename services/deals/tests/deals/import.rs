//! The import of migrated deals: only the migration service, idempotent by PSC deal id, per-deal
//! errors, unmatched customers completed later.

use cosell_proto::deals as pb;

use crate::harness::*;

fn migrated(h: &Harness, psc: &str) -> pb::ImportedReferral {
    pb::ImportedReferral {
        psc_deal_id: psc.into(),
        referral: Some(pb::Referral {
            display_name: format!("PSC deal {psc}"),
            deal_type: pb::DealType::CoSell as i32,
            direction: pb::Direction::Outbound as i32,
            status: pb::Status::Active as i32,
            substatus: pb::Substatus::Accepted as i32,
            customer: Some(pb::Customer {
                entity: h.customers[7].0.clone(),
                ..Default::default()
            }),
            solutions: vec![pb::ReferralSolution {
                solution: h.contoso_solution.clone(),
                ..Default::default()
            }],
            seller_contact: Some(pb::Contact {
                first_name: "Sam".into(),
                last_name: "Seller".into(),
                email: SAM.into(),
                phone: "+1 206 555 0199".into(),
            }),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_577_836_800,
                nanos: 0,
            }),
            ..Default::default()
        }),
    }
}

/// A batch's customers come from the directory in one call; one the directory does not have
/// refuses its deal alone, naming it, and the others still import with the directory's names.
#[tokio::test]
async fn a_batch_with_an_unknown_customer_imports_the_others() {
    let h = Harness::start().await;
    let token = h.migration_token().await;
    let with = |psc: &str, entity: &str| {
        let mut m = migrated(&h, psc);
        m.referral.as_mut().unwrap().customer = Some(pb::Customer {
            entity: entity.into(),
            legal_name: "What the caller says".into(),
            ..Default::default()
        });
        m
    };
    let batch = vec![
        with("PSC-1", &h.customers[1].0),
        with("PSC-2", "entities/NOSUCHENTITY000000000"),
        with("PSC-3", &h.customers[2].0),
        with("PSC-4", &h.customers[1].0),
    ];
    let results = h.import(&token, batch).await.unwrap();
    let created: Vec<bool> = results.iter().map(|r| r.created).collect();
    assert_eq!(created, [true, false, true, true]);
    assert!(
        results[1].error.contains("referral.customer.entity")
            && results[1].error.contains("entities/NOSUCHENTITY000000000"),
        "{}",
        results[1].error
    );
    for (i, want) in [(0, 1), (2, 2), (3, 1)] {
        let customer = results[i]
            .referral
            .as_ref()
            .unwrap()
            .customer
            .clone()
            .unwrap();
        assert_eq!(customer.r#match(), pb::CustomerMatch::Matched);
        assert_eq!(customer.entity, h.customers[want].0);
        assert_eq!(
            customer.legal_name, h.customers[want].1,
            "the directory's name (D8)"
        );
    }
}

#[tokio::test]
async fn migrated_deals_import_once_each() {
    let h = Harness::start().await;
    let token = h.migration_token().await;
    let mut unmatched = migrated(&h, "PSC-2");
    {
        let r = unmatched.referral.as_mut().unwrap();
        r.deal_type = pb::DealType::Private as i32;
        r.customer = Some(pb::Customer {
            legal_name: "Northwind Traders".into(),
            address: Some(pb::Address {
                city: "Oslo".into(),
                country_code: "NO".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut bad = migrated(&h, "PSC-3");
    bad.referral.as_mut().unwrap().status = pb::Status::Closed as i32;
    let batch = vec![migrated(&h, "PSC-1"), unmatched, bad];
    let first = h.import(&token, batch.clone()).await.unwrap();
    assert!(first[0].created && first[1].created);
    assert!(!first[2].created);
    assert!(
        first[2].error.contains("referral.status"),
        "{}",
        first[2].error
    );

    let r1 = first[0].referral.clone().unwrap();
    assert_eq!(r1.tracking.as_ref().unwrap().psc_deal_id, "PSC-1");
    assert_eq!(r1.create_time.as_ref().unwrap().seconds, 1_577_836_800);
    assert_eq!(r1.seller_contact.as_ref().unwrap().email, SAM);
    let r2 = first[1].referral.clone().unwrap();
    let customer = r2.customer.clone().unwrap();
    assert_eq!(customer.r#match(), pb::CustomerMatch::Unmatched);
    assert_eq!(customer.legal_name, "Northwind Traders");

    // Again: nothing new, the same referrals.
    let again = h.import(&token, batch).await.unwrap();
    assert!(!again[0].created && !again[1].created);
    assert_eq!(again[0].referral.as_ref().unwrap().name, r1.name);
    let listed = h
        .list(
            RITA,
            pb::ListReferralsRequest {
                psc_deal_id: "PSC-1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .referrals;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        h.deals.store.count_referrals().await.unwrap(),
        3,
        "PSC-1 has its platform side"
    );

    // A user picks the directory entry for the unmatched customer (D8).
    let fixed = h
        .link_customer(RITA, &r2.name, &h.customers[8].0)
        .await
        .unwrap();
    let customer = fixed.customer.unwrap();
    assert_eq!(customer.r#match(), pb::CustomerMatch::Matched);
    assert_eq!(customer.legal_name, h.customers[8].1);
}

#[tokio::test]
async fn a_batch_partly_imported_before_writes_only_the_new_deals() {
    let h = Harness::start().await;
    let token = h.migration_token().await;
    let import =
        async |referrals: Vec<pb::ImportedReferral>| h.import(&token, referrals).await.unwrap();
    let first = import(vec![migrated(&h, "PSC-1")]).await;
    let name = first[0].referral.as_ref().unwrap().name.clone();

    // PSC-1 again among new ones: the batch's insert meets PSC-1 and each deal goes on its own.
    let mixed = import(vec![
        migrated(&h, "PSC-4"),
        migrated(&h, "PSC-1"),
        migrated(&h, "PSC-5"),
    ])
    .await;
    let created: Vec<bool> = mixed.iter().map(|r| r.created).collect();
    assert_eq!(created, [true, false, true]);
    assert_eq!(mixed[1].referral.as_ref().unwrap().name, name);
    assert_eq!(
        h.deals.store.count_referrals().await.unwrap(),
        6,
        "three co-sell deals, each with its platform side"
    );

    // A deal that would be refused now (closed in PSC since) still answers with what it became.
    let mut closed = migrated(&h, "PSC-1");
    closed.referral.as_mut().unwrap().status = pb::Status::Closed as i32;
    let again = import(vec![closed]).await;
    assert!(again[0].error.is_empty(), "{}", again[0].error);
    assert_eq!(again[0].referral.as_ref().unwrap().name, name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_imports_of_one_batch_make_each_deal_once() {
    let h = std::sync::Arc::new(Harness::start().await);
    let token = h.migration_token().await;
    let batch: Vec<pb::ImportedReferral> = (0..20)
        .map(|i| migrated(&h, &format!("PSC-RACE-{i}")))
        .collect();
    let mut calls = Vec::new();
    for _ in 0..8 {
        let (h, token, batch) = (h.clone(), token.clone(), batch.clone());
        calls.push(tokio::spawn(async move {
            h.import(&token, batch).await.unwrap()
        }));
    }
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.unwrap());
    }
    for i in 0..20 {
        let names: std::collections::HashSet<String> = answers
            .iter()
            .map(|a| a[i].referral.as_ref().unwrap().name.clone())
            .collect();
        assert_eq!(names.len(), 1, "deal {i} answered with one referral");
        let created = answers.iter().filter(|a| a[i].created).count();
        assert_eq!(created, 1, "deal {i} created by exactly one call");
    }
    assert_eq!(h.deals.store.count_referrals().await.unwrap(), 40);
}
