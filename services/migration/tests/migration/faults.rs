//! A peer down during a deal migration run (issue 19's faults): with the directory or identity
//! unreachable the run's deals wait as they were (never failed, never marked unmatched for it)
//! and the run resumes by itself once it is back, every deal migrated exactly once with its
//! customer matched. While identity is down, calls that need a caller's roles answer
//! `UNAVAILABLE` at once, and work again when it is back.

use std::time::{Duration, Instant};

use tonic::Code;

use cosell_proto::deals as dpb;
use cosell_proto::migration as pb;
use cosell_testkit::authed;

use crate::harness::{Harness, MigrationIn};

#[tokio::test]
async fn a_run_waits_while_the_directory_is_down_and_resumes() {
    let h = Harness::start_with(MigrationIn::TheServerBehindAProxy).await;
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\n";
    let deals = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,AssignedSellerEmail,CustomerName,CustomerCity,CustomerCountry,ContactEmail,DealValue,Currency,PartnerNotes,CustomerOutcome,DealRole\n\
        F1,Northwind pilot,A1,Open,2021-01-05T10:00:00Z,no,Partner,,Northwind Traders AS,Oslo,NO,,,,,,\n\
        F2,Northwind rollout,A1,Open,2021-02-05T10:00:00Z,no,Partner,,Northwind Traders AS,Oslo,NO,,,,,,\n\
        F3,Tailspin,A1,Open,2021-03-05T10:00:00Z,no,Partner,,Tailspin Toys AS,Bergen,NO,,,,,,\n";
    h.import_into_contoso(&[("accounts.csv", accounts), ("deals.csv", deals)])
        .await;
    let rita = h.token("rita.referrals@contoso.com").await;
    let client =
        || pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone());
    let status = || async {
        client()
            .get_deal_migration_status(authed(
                &rita,
                pb::GetDealMigrationStatusRequest {
                    parent: h.contoso.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
    };

    let link = h.directory_link.as_ref().unwrap();
    link.cut();
    h.start_run().await;
    // Several rounds of the workers meet the directory down.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let waiting = status().await;
    assert_eq!(waiting.state(), pb::DealMigrationState::InProgress);
    let run = waiting.run.unwrap();
    assert_eq!(
        (run.migrated, run.failed, run.pending),
        (0, 0, 3),
        "nothing failed for a directory that did not answer"
    );

    // Resumed within seconds (a failed batch waits 2 s, not its whole 60 s lease).
    link.restore();
    let until = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let s = status().await;
        if s.state() != pb::DealMigrationState::InProgress {
            break s;
        }
        assert!(Instant::now() < until, "the run did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let run = done.run.unwrap();
    assert_eq!((run.migrated, run.failed, run.pending), (3, 0, 0));

    // Once each in the deals service, the customers matched as if nothing happened.
    let listed = dpb::referral_service_client::ReferralServiceClient::new(h.server.channel.clone())
        .list_referrals(authed(
            &rita,
            dpb::ListReferralsRequest {
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referrals;
    let mut ids: Vec<_> = listed
        .iter()
        .filter_map(|r| r.tracking.as_ref().map(|t| t.psc_deal_id.clone()))
        .collect();
    ids.sort();
    assert_eq!(ids, ["F1", "F2", "F3"]);
    let matched = |id: &str| {
        listed
            .iter()
            .find(|r| r.tracking.as_ref().is_some_and(|t| t.psc_deal_id == id))
            .and_then(|r| r.customer.as_ref())
            .map(|c| c.r#match())
            .unwrap()
    };
    assert_eq!(matched("F1"), dpb::CustomerMatch::Matched);
    assert_eq!(matched("F2"), dpb::CustomerMatch::Matched);
    assert_eq!(
        matched("F3"),
        dpb::CustomerMatch::Unmatched,
        "two Tailspins in Bergen: no confident match, as without the outage"
    );
}

#[tokio::test]
async fn a_run_waits_while_identity_is_down_and_resumes() {
    let h = Harness::start_with(MigrationIn::TheServerBehindAProxy).await;
    let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\n";
    // A co-sell deal naming a platform seller: its batch asks identity whether Sam is one.
    let deals = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,AssignedSellerEmail,CustomerName,CustomerCity,CustomerCountry\n\
        G1,Northwind pilot,A1,Open,2021-01-05T10:00:00Z,yes,Partner,sam.seller@platform.example,Northwind Traders AS,Oslo,NO\n\
        G2,Northwind rollout,A1,Open,2021-02-05T10:00:00Z,no,Partner,,Northwind Traders AS,Oslo,NO\n";
    h.import_into_contoso(&[("accounts.csv", accounts), ("deals.csv", deals)])
        .await;
    let rita = h.token("rita.referrals@contoso.com").await;
    let status = || async {
        let mut req = authed(
            &rita,
            pb::GetDealMigrationStatusRequest {
                parent: h.contoso.clone(),
            },
        );
        req.set_timeout(Duration::from_secs(10));
        let asked = Instant::now();
        let answer =
            pb::migration_service_client::MigrationServiceClient::new(h.server.channel.clone())
                .get_deal_migration_status(req)
                .await
                .map(|r| r.into_inner());
        (answer, asked.elapsed())
    };

    // The run starts (identity answers the MPN check), its batch held back by the directory;
    // then identity goes, and the directory comes back: the batch now needs identity.
    let (directory, identity) = (
        h.directory_link.as_ref().unwrap(),
        h.identity_link.as_ref().unwrap(),
    );
    directory.cut();
    h.start_run().await;
    identity.cut();
    directory.restore();

    // Rita's roles are asked again after at most 2 s: until identity is back, UNAVAILABLE
    // (retryable) at once, not a hang and not INTERNAL.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (refused, took) = status().await;
    let refused = refused.expect_err("identity is down");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");

    // Nothing failed meanwhile: the migration's own view, read from its database.
    let org = uuid::Uuid::parse_str(h.contoso.trim_start_matches("organizations/")).unwrap();
    let run = h.migration.as_ref().unwrap().store.latest_run(org).await;
    let run = run.unwrap().expect("the run");
    assert_eq!(
        (run.total, run.migrated, run.failed, run.finish_time),
        (2, 0, 0, None),
        "nothing migrated or failed while identity is down"
    );

    identity.restore();
    let until = Instant::now() + Duration::from_secs(30);
    let done = loop {
        if let (Ok(s), _) = status().await
            && s.state() != pb::DealMigrationState::InProgress
        {
            break s;
        }
        assert!(Instant::now() < until, "the run did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let run = done.run.unwrap();
    assert_eq!((run.migrated, run.failed, run.pending), (2, 0, 0));
    // Once each, and Sam's co-sell referral accepted as it would have been without the outage.
    let sam = h.token("sam.seller@platform.example").await;
    let listed = dpb::referral_service_client::ReferralServiceClient::new(h.server.channel.clone())
        .list_referrals(authed(
            &sam,
            dpb::ListReferralsRequest {
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referrals;
    let g1: Vec<_> = listed
        .iter()
        // The platform's side carries no PSC tracking of the partner's: found by its name.
        .filter(|r| r.display_name == "Northwind pilot")
        .collect();
    assert_eq!(g1.len(), 1, "{listed:?}");
    assert_eq!(
        (g1[0].status(), g1[0].substatus()),
        (dpb::Status::Active, dpb::Substatus::Accepted),
        "{:?}",
        g1[0]
    );
}
