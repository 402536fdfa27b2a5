//! Deal migration runs (SPEC 5.4): each eligible deal migrated once, its report, and the
//! starter told when it finished.

use cosell_proto::migration as pb;
use cosell_testkit::authed;

use crate::harness::{Harness, create_contoso_solution};

#[tokio::test]
async fn deal_migration_runs_migrate_each_eligible_deal_once() {
    let h = Harness::start().await;
    let oli = h.token("oli.operator@platform.example").await;
    create_contoso_solution(h.server.channel.clone(), &oli, &h.contoso).await;
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\n";
    let header = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,AssignedSellerEmail,CustomerName,CustomerCity,CustomerCountry,ContactEmail,DealValue,Currency,PartnerNotes,CustomerOutcome,DealRole\n";
    let first = format!(
        "{header}\
        E1,Co-sell with a seller,A1,Open,2021-01-05T10:00:00Z,yes,Partner,sam.seller@platform.example,Northwind Traders,Oslo,NO,cy@northwind.example,1200.50,USD,pilot first,won the pilot,Influencer\n\
        E2,From a seller,A1,Open,2021-02-01T10:00:00Z,no,Microsoft,,Tailspin Toys AS,Bergen,NO,,,,,,\n\
        E3,Bad currency,A1,Open,2021-03-01T10:00:00Z,yes,Partner,,Somebody,Oslo,NO,not-an-email,100,ABC,,,\n\
        X1,Too old,A1,Open,2019-06-01T10:00:00Z,no,Partner,,,,,,,,,,\n"
    );
    let products = "DealId,ProductId\nE1,P-1\nE1,P-404\n";
    let import = |deals: String| {
        let h = &h;
        async move {
            h.import(
                "ada.admin@contoso.com",
                &h.contoso,
                &[
                    ("accounts.csv", accounts.as_bytes().to_vec()),
                    ("deals.csv", deals.into_bytes()),
                    ("deal_products.csv", products.as_bytes().to_vec()),
                ],
            )
            .await
            .unwrap()
        }
    };
    import(first.clone()).await;
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());
    let start = |email: &'static str| {
        let parent = h.contoso.clone();
        let h = &h;
        async move {
            let token = h.token(email).await;
            client()
                .start_deal_migration(authed(&token, pb::StartDealMigrationRequest { parent }))
                .await
                .map(|r| r.into_inner().run.unwrap())
        }
    };
    let rita = h.token("rita.referrals@contoso.com").await;
    let status = || {
        let rita = rita.clone();
        let parent = h.contoso.clone();
        async move {
            client()
                .get_deal_migration_status(authed(
                    &rita,
                    pb::GetDealMigrationStatusRequest { parent },
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let wait = || async {
        for _ in 0..200 {
            let s = status().await;
            if s.state() != pb::DealMigrationState::InProgress {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the run did not finish");
    };
    let report = || h.report();

    // Only org-wide referrals admins start it.
    let refused = start("ada.admin@contoso.com").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let run = start("rita.referrals@contoso.com").await.unwrap();
    assert_eq!(run.total, 3, "E1, E2, E3; X1 is too old");
    let done = wait().await;
    // One deal failed: completed, with start enabled again for it.
    assert_eq!(done.state(), pb::DealMigrationState::Completed);
    assert!(done.start_enabled);
    assert_eq!((done.eligible, done.percent_done), (1, 100));
    let run = done.run.unwrap();
    assert_eq!((run.migrated, run.failed, run.pending), (2, 1, 0));
    assert!(run.finish_time.is_some());

    let rows = report().await;
    let row = |id: &str| rows.iter().find(|r| r.psc_deal_id == id).unwrap().clone();
    let e1 = row("E1");
    assert_eq!(
        (
            e1.state.as_str(),
            e1.deal_type.as_str(),
            e1.direction.as_str()
        ),
        ("MIGRATED", "CO_SELL", "OUTBOUND")
    );
    assert!(e1.referral.starts_with("referrals/") && e1.engagement.starts_with("engagements/"));
    assert!(
        e1.notes.contains("P-404") && e1.notes.contains("Influencer"),
        "{}",
        e1.notes
    );
    let e2 = row("E2");
    assert_eq!(
        (
            e2.state.as_str(),
            e2.deal_type.as_str(),
            e2.direction.as_str()
        ),
        ("MIGRATED", "PARTNER_LED", "INBOUND")
    );
    let e3 = row("E3");
    assert_eq!(e3.state, "FAILED");
    // How each customer came out: E1's (its legal form left out) is the one Northwind Traders
    // in Oslo, E2's is two entities, E3's none.
    assert_eq!(
        [&e1, &e2, &e3].map(|r| r.customer_match()),
        [
            pb::CustomerMatchOutcome::Matched,
            pb::CustomerMatchOutcome::Ambiguous,
            pb::CustomerMatchOutcome::NotFound
        ]
    );
    assert!(e3.error.contains("currency_code"), "{}", e3.error);
    assert!(
        e3.notes.contains("customer contact left out"),
        "a contact without a usable email does not fail the deal: {}",
        e3.notes
    );

    // In the deals service, as the partner sees them.
    let referrals = cosell_proto::deals::referral_service_client::ReferralServiceClient::new(
        h.server.channel.clone(),
    );
    let get = |name: String| {
        let rita = rita.clone();
        let referrals = referrals.clone();
        async move {
            referrals
                .clone()
                .get_referral(authed(
                    &rita,
                    cosell_proto::deals::GetReferralRequest { name },
                ))
                .await
                .unwrap()
                .into_inner()
                .referral
                .unwrap()
        }
    };
    let r1 = get(e1.referral.clone()).await;
    use cosell_proto::deals as dpb;
    assert_eq!(r1.deal_type(), dpb::DealType::CoSell);
    assert_eq!(r1.status(), dpb::Status::Active);
    assert_eq!(r1.mpn_location, "4000002");
    assert_eq!(r1.tracking.as_ref().unwrap().psc_deal_id, "E1");
    let customer = r1.customer.clone().unwrap();
    assert_eq!(
        customer.r#match(),
        dpb::CustomerMatch::Matched,
        "one Northwind in Oslo"
    );
    assert_eq!(customer.legal_name, "NORTHWIND TRADERS AS");
    assert_eq!(r1.solutions.len(), 1);
    assert_eq!(r1.deal_value.as_ref().unwrap().amount, "1200.50");
    assert!(r1.notes.contains("pilot first") && r1.notes.contains("won the pilot"));
    assert_eq!(
        r1.seller_contact.as_ref().unwrap().email,
        "sam.seller@platform.example"
    );
    let r2 = get(e2.referral.clone()).await;
    assert_eq!(r2.direction(), dpb::Direction::Inbound);
    assert_eq!(
        r2.status(),
        dpb::Status::Active,
        "inbound migrated deals arrive accepted"
    );
    let customer = r2.customer.unwrap();
    assert_eq!(
        customer.r#match(),
        dpb::CustomerMatch::Unmatched,
        "two Tailspins in Bergen: no confident match"
    );
    assert!(customer.entity.is_empty());
    // Both offered, for the partner to pick one.
    let mut offered: Vec<(&str, dpb::CandidateReason, &str)> = customer
        .candidates
        .iter()
        .map(|c| {
            (
                c.legal_name.as_str(),
                c.reason(),
                c.address.as_ref().map_or("", |a| a.city.as_str()),
            )
        })
        .collect();
    offered.dedup();
    assert_eq!(
        offered,
        [("TAILSPIN TOYS AS", dpb::CandidateReason::SameName, "Bergen")],
        "{:?}",
        customer.candidates
    );
    assert_eq!(customer.candidates.len(), 2);
    assert_ne!(customer.candidates[0].entity, customer.candidates[1].entity);

    // Migrated deals are never sent again: a second run takes only the failed one, and a later
    // export's new deal migrates on the next run.
    let again = start("rita.referrals@contoso.com").await.unwrap();
    assert_eq!(again.total, 1);
    wait().await;
    let later = format!("{first}E4,New in PSC,A1,Open,2022-01-05T10:00:00Z,no,Partner,,,,,,,,,,\n");
    import(later).await;
    let third = start("rita.referrals@contoso.com").await.unwrap();
    assert_eq!(third.total, 2, "E3 (failed before) and E4");
    // Followed as a stream until it is done.
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
    let mut updates = Vec::new();
    while let Some(m) = watch.message().await.unwrap() {
        updates.push(m.status.unwrap());
    }
    let last = updates.last().expect("at least one update").clone();
    assert_ne!(last.state(), pb::DealMigrationState::InProgress);
    let last_run = last.run.clone().unwrap();
    assert_eq!(last_run.name, third.name);
    assert!(last_run.finish_time.is_some());
    assert_eq!((last_run.migrated, last_run.failed), (1, 1));
    assert_eq!(last.migrated, 3);
    let rows = report().await;
    assert_eq!(
        rows.iter()
            .find(|r| r.psc_deal_id == "E1")
            .unwrap()
            .referral,
        e1.referral
    );
    let listed = referrals
        .clone()
        .list_referrals(authed(&rita, dpb::ListReferralsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .referrals;
    assert_eq!(listed.len(), 3, "E1, E2, E4: each once");
}

/// The admin who started a run is told when it finished, once, in the deals service's
/// notifications; nobody else is.
#[tokio::test]
async fn the_starter_is_told_once_the_run_finished() {
    use cosell_proto::deals as dpb;
    let h = Harness::start().await;
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\n";
    let deals = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,AssignedSellerEmail,CustomerName,CustomerCity,CustomerCountry,ContactEmail,DealValue,Currency,PartnerNotes,CustomerOutcome,DealRole\n\
        E2,From a seller,A1,Open,2021-02-01T10:00:00Z,no,Microsoft,,Tailspin Toys AS,Bergen,NO,,,,,,\n";
    h.import_into_contoso(&[("accounts.csv", accounts), ("deals.csv", deals)])
        .await;
    let run = h.start_run().await;
    let told = |email: &'static str| {
        let h = &h;
        let run = run.name.clone();
        async move {
            let token = h.token(email).await;
            dpb::notification_service_client::NotificationServiceClient::new(
                h.server.channel.clone(),
            )
            .list_notifications(authed(&token, dpb::ListNotificationsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .notifications
            .into_iter()
            .filter(|n| n.subject == run)
            .collect::<Vec<_>>()
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let first = loop {
        let list = told("rita.referrals@contoso.com").await;
        if !list.is_empty() {
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Rita was not told that her run finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kind(), dpb::NotificationKind::MigrationFinished);
    assert!(
        first[0].summary.ends_with("1 of 1 deal migrated, 0 failed"),
        "{}",
        first[0].summary
    );
    // The teller looks again every second: still once.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(told("rita.referrals@contoso.com").await.len(), 1);
    assert!(told("ada.admin@contoso.com").await.is_empty());
}
