//! The migration as a partner lives it, across the four services, and the cut-over switch
//! (SPEC 5.4, 5.5).

use cosell_proto::migration as pb;
use cosell_testkit::authed;

use crate::harness::{Harness, create_contoso_solution};

/// The whole story across the four services: a PSC export is imported, users and deals migrate,
/// the referrals are in the right tabs with the right types, and a user completes a migrated
/// deal's missing fields and wins it.
#[tokio::test]
async fn the_migration_story_across_the_four_services() {
    use cosell_proto::deals as dpb;
    let h = Harness::start().await;
    // The partner's catalog: a co-sell-ready solution replacing PSC product P-1.
    let oli = h.token("oli.operator@platform.example").await;
    let solution = create_contoso_solution(h.server.channel.clone(), &oli, &h.contoso).await;
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nSEA,Contoso Seattle,4000002\n";
    let users = "UserEmail,FirstName,LastName,PartnerAccountId,Role\nnia.new@contoso.com,Nia,New,SEA,Seller\n";
    let deals = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,AssignedSellerEmail,CustomerName,CustomerCity,CustomerCountry,ContactEmail\n\
        S1,Co-sell deal,SEA,Open,2021-01-05T10:00:00Z,yes,Partner,sam.seller@platform.example,Northwind Traders AS,Oslo,NO,cy@northwind.example\n\
        S2,Sent by a seller,SEA,Open,2021-02-05T10:00:00Z,no,Microsoft,,Tailspin Toys AS,Bergen,NO,\n\
        S3,Own deal to finish,SEA,Open,2021-03-05T10:00:00Z,no,Partner,,Northwind Traders AS,Oslo,NO,\n";
    let products = "DealId,ProductId\nS1,P-1\n";
    h.import_into_contoso(&[
        ("accounts.csv", accounts),
        ("users.csv", users),
        ("deals.csv", deals),
        ("deal_products.csv", products),
    ])
    .await;
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());

    // Users: Nia becomes a member with ROLE_REFERRALS_USER at the Seattle location.
    let run = h.run_user_migration("ada.admin@contoso.com").await.unwrap();
    assert_eq!(run.migrated, 1);

    // Deals: Rita starts the migration and follows it to the end.
    let rita = h.token("rita.referrals@contoso.com").await;
    h.start_run().await;
    let mut watch = client()
        .watch_deal_migration(authed(
            &rita,
            pb::WatchDealMigrationRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(m) = watch.message().await.unwrap() {
        last = m.status;
    }
    let run = last.unwrap().run.unwrap();
    assert_eq!((run.migrated, run.failed), (3, 0));

    // Nia, a migrated user, sees the migrated referrals of her location in the right tabs.
    let nia = h.token("nia.new@contoso.com").await;
    let referrals =
        dpb::referral_service_client::ReferralServiceClient::new(h.server.channel.clone());
    let tab = |direction: dpb::Direction| {
        let referrals = referrals.clone();
        let nia = nia.clone();
        async move {
            referrals
                .clone()
                .list_referrals(authed(
                    &nia,
                    dpb::ListReferralsRequest {
                        direction: direction as i32,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .referrals
        }
    };
    let outbound = tab(dpb::Direction::Outbound).await;
    let inbound = tab(dpb::Direction::Inbound).await;
    let by_psc = |list: &[dpb::Referral], id: &str| {
        list.iter()
            .find(|r| r.tracking.as_ref().is_some_and(|t| t.psc_deal_id == id))
            .cloned()
    };
    let s1 = by_psc(&outbound, "S1").expect("S1 in the Outbound tab");
    assert_eq!(s1.deal_type(), dpb::DealType::CoSell);
    assert_eq!(
        s1.seller_contact.as_ref().unwrap().email,
        "sam.seller@platform.example"
    );
    assert_eq!(s1.solutions[0].solution, solution.name);
    let s2 = by_psc(&inbound, "S2").expect("S2 in the Inbound tab");
    assert_eq!(s2.deal_type(), dpb::DealType::PartnerLed);
    assert_eq!(s2.status(), dpb::Status::Active);
    let s3 = by_psc(&outbound, "S3").expect("S3 in the Outbound tab");
    assert_eq!(s3.deal_type(), dpb::DealType::PartnerLed);
    assert_eq!(outbound.len() + inbound.len(), 3);

    // Nia completes S3's missing fields and wins it.
    let won = referrals
        .clone()
        .mark_referral_won(authed(
            &nia,
            dpb::MarkReferralWonRequest {
                name: s3.name.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        won.code(),
        tonic::Code::FailedPrecondition,
        "fields are missing first"
    );
    let updated = referrals
        .clone()
        .update_referral(authed(
            &nia,
            dpb::UpdateReferralRequest {
                referral: Some(dpb::Referral {
                    name: s3.name.clone(),
                    etag: s3.etag.clone(),
                    solutions: vec![dpb::ReferralSolution {
                        solution: solution.name.clone(),
                        ..Default::default()
                    }],
                    team: vec![dpb::Contact {
                        first_name: "Nia".into(),
                        last_name: "New".into(),
                        email: "nia.new@contoso.com".into(),
                        phone: "+1 425 555 0103".into(),
                    }],
                    deal_value: Some(dpb::Money {
                        currency_code: "NOK".into(),
                        amount: "500000".into(),
                    }),
                    estimated_close_date: "2027-02-28".into(),
                    notes: "Completed after the migration.".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: [
                        "solutions",
                        "team",
                        "deal_value",
                        "estimated_close_date",
                        "notes",
                    ]
                    .map(String::from)
                    .to_vec(),
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let won = referrals
        .clone()
        .mark_referral_won(authed(
            &nia,
            dpb::MarkReferralWonRequest {
                name: updated.name.clone(),
                etag: updated.etag.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(won.status(), dpb::Status::Closed);
    assert_eq!(won.substatus(), dpb::Substatus::Won);
}

#[tokio::test]
async fn the_cutover_switch() {
    let h = Harness::start().await;
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());
    let get = |email: &'static str, parent: String| {
        let h = &h;
        async move {
            let token = h.token(email).await;
            client()
                .get_cutover(authed(&token, pb::GetCutoverRequest { parent }))
                .await
                .map(|r| r.into_inner().cutover.unwrap())
        }
    };
    let update = |email: &'static str, parent: String, on: bool| {
        let h = &h;
        async move {
            let token = h.token(email).await;
            client()
                .update_cutover(authed(
                    &token,
                    pb::UpdateCutoverRequest {
                        parent,
                        routed_to_new_system: on,
                    },
                ))
                .await
                .map(|r| r.into_inner().cutover.unwrap())
        }
    };
    let before = get("rita.referrals@contoso.com", h.contoso.clone())
        .await
        .unwrap();
    assert!(!before.routed_to_new_system);
    assert!(before.switch_time.is_none());
    assert_eq!(
        (
            before.psc_read_only_from.as_str(),
            before.psc_access_ends.as_str()
        ),
        ("2021-04-01", "2021-04-30")
    );
    assert_eq!(
        get("fay.admin@fabrikam.com", h.contoso.clone())
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    // Only platform operators make the switch, and only for a partner organization.
    assert_eq!(
        update("rita.referrals@contoso.com", h.contoso.clone(), true)
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    assert_eq!(
        update(
            "oli.operator@platform.example",
            format!("organizations/{}", uuid::Uuid::new_v4()),
            true
        )
        .await
        .unwrap_err()
        .code(),
        tonic::Code::NotFound
    );
    let on = update("oli.operator@platform.example", h.contoso.clone(), true)
        .await
        .unwrap();
    assert!(on.routed_to_new_system);
    assert_eq!(on.switched_by, "oli.operator@platform.example");
    // Sellers' tooling reads it; the migration status shows it.
    assert!(
        get("sam.seller@platform.example", h.contoso.clone())
            .await
            .unwrap()
            .routed_to_new_system
    );
    let rita = h.token("rita.referrals@contoso.com").await;
    let status = client()
        .get_deal_migration_status(authed(
            &rita,
            pb::GetDealMigrationStatusRequest {
                parent: h.contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(status.cutover.unwrap().routed_to_new_system);
}
