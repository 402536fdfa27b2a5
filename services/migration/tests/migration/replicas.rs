//! Two migration processes and two deals processes, each pair on one database of its own, run
//! a deal migration together (issue 19's replicas): imported through one migration replica,
//! started through the other, the run's batches are leased by both, each replica hands its
//! batches to its own deals process, and every eligible deal is in the deals database exactly
//! once. Identity and the directory are the harness's.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cosell_migration::psc::synthetic;
use cosell_proto::migration as pb;
use cosell_testkit::authed;
use sea_orm::ConnectionTrait;

use crate::crash::{Replica, binary, own_database, processes_turn, upload};
use crate::harness::{DEALS_SECRET, Harness, MigrationIn};

const DEALS: usize = 6_000;
/// Leases long enough that a batch is not taken over while it is being sent on a busy machine
/// (the tests run side by side on 2 cores): sharing a run, not taking over from a dead
/// replica (that is the crash test's), is what this test is about.
const LEASE_SECS: &str = "20";

/// The replicas holding leases right now (a worker's id per process).
async fn lease_owners(db: &impl ConnectionTrait) -> Vec<String> {
    db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT DISTINCT lease_owner FROM deal_results WHERE lease_owner <> ''",
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|row| row.try_get::<String>("", "lease_owner").unwrap())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_of_each_share_a_run_and_make_each_deal_once() {
    let _turn = processes_turn().await;
    let h = Harness::start_with(MigrationIn::AnotherProcess).await;
    let work = tempfile::tempdir().unwrap();
    let (_migration_postgres, database_url) = own_database(work.path(), "migration").await;
    let (_deals_postgres, deals_database_url) = own_database(work.path(), "deals").await;
    let harness_url = format!("http://{}", h.server.addr);
    // One after the other: the first creates the deals schema, the second finds it made.
    let deals_process = |log: &str| {
        Replica::service(
            &binary("cosell-deals"),
            &[
                "--database-url",
                &deals_database_url,
                "--identity-url",
                &harness_url,
                "--directory-url",
                &harness_url,
                "--service-secret",
                DEALS_SECRET,
            ],
            work.path().join(log),
        )
    };
    let mut deals_a = deals_process("deals-a.log");
    let mut deals_b = deals_process("deals-b.log");
    deals_a.start().await;
    deals_b.start().await;
    let replica = |deals: &str, log: &str| {
        Replica::new(
            &harness_url,
            deals,
            &database_url,
            LEASE_SECS,
            work.path().join(log),
        )
    };
    let mut a = replica(&deals_a.url, "a.log");
    let mut b = replica(&deals_b.url, "b.log");
    a.start().await;
    b.start().await;
    let logs = || {
        format!(
            "--- a\n{}\n--- b\n{}\n--- deals a\n{}\n--- deals b\n{}",
            a.log_tail(),
            b.log_tail(),
            deals_a.log_tail(),
            deals_b.log_tail()
        )
    };

    let export = work.path().join("export");
    synthetic::write(&export, DEALS).unwrap();
    let ada = h.token("ada.admin@contoso.com").await;
    let rita = h.token("rita.referrals@contoso.com").await;
    let imported = upload(&mut a.client().await, &ada, &h.contoso, &export).await;
    assert_eq!(imported.deals_added as usize, DEALS);
    let eligible = (0..DEALS).filter(|i| synthetic::eligible(*i)).count();
    let co_sell = (0..DEALS)
        .filter(|i| synthetic::eligible(*i) && i.is_multiple_of(3))
        .count();

    let run = b.start_run(&rita, &h.contoso).await;
    assert_eq!(run.total as usize, eligible);

    // Followed through replica A while both work; who holds leases is sampled meanwhile.
    let migration_db = cosell_platform::db::connect(&database_url).await.unwrap();
    let mut owners = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        owners.extend(lease_owners(&migration_db).await);
        let status = a
            .client()
            .await
            .get_deal_migration_status(authed(
                &rita,
                pb::GetDealMigrationStatusRequest {
                    parent: h.contoso.clone(),
                },
            ))
            .await
            .unwrap_or_else(|s| panic!("{s:?}\n{}", logs()))
            .into_inner();
        if status.run.as_ref().is_some_and(|r| r.finish_time.is_some()) {
            break status.run.unwrap();
        }
        assert!(Instant::now() < deadline, "the run did not end\n{}", logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (done.migrated, done.failed, done.pending),
        (eligible as i64, 0, 0),
        "{}",
        logs()
    );
    // Each replica sends only to its own deals process, so both of those took imports too.
    assert_eq!(owners.len(), 2, "both replicas leased work: {owners:?}");
    // Exactly once: a partner referral per eligible deal and a platform side per co-sell one.
    // Counted with the processes stopped: their pools hold most of the server's connections.
    for process in [&mut a, &mut b, &mut deals_a, &mut deals_b] {
        process.terminate().await;
    }
    let deals = cosell_deals::store::Store::new(
        cosell_platform::db::connect(&deals_database_url)
            .await
            .unwrap(),
    );
    let org = uuid::Uuid::parse_str(h.contoso.trim_start_matches("organizations/")).unwrap();
    assert_eq!(deals.count_migrated(org).await.unwrap(), eligible as u64);
    assert_eq!(
        deals.count_referrals().await.unwrap(),
        (eligible + co_sell) as u64
    );
}
