//! Importing PSC export bundles into an organization's snapshot: good rows kept, problems
//! reported, re-imports idempotent, later exports adding and updating without deleting.

use cosell_migration::psc::InMemory;
use cosell_migration::store::{ImportSummary, StartRefused, Store, migration::Migrator};
use cosell_testkit::TestDb;
use uuid::Uuid;

const ACCOUNTS: &str =
    "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso US,4000002\nA2,Contoso DE,4000003\n";
const USERS: &str = "UserEmail,PartnerAccountId,Role,FirstName\nada@contoso.com,A1,Admin,Ada\nsam@contoso.com,A2,Seller,Sam\n";
/// Who starts the store-level runs.
const STARTER: &str =
    "organizations/00000000-0000-0000-0000-000000000001/users/00000000-0000-0000-0000-000000000002";

fn deals(rows: &[&str]) -> String {
    let mut text = String::from(
        "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,CustomerName\n",
    );
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    text
}

/// Imports a bundle of these deals and products, streamed as the service does.
async fn import(store: &Store, org: Uuid, deals: &str, products: &str) -> ImportSummary {
    let records = cosell_migration::psc::stream(InMemory(vec![
        ("accounts.csv".into(), ACCOUNTS.as_bytes().to_vec()),
        ("users.csv".into(), USERS.as_bytes().to_vec()),
        ("deals.csv".into(), deals.as_bytes().to_vec()),
        ("deal_products.csv".into(), products.as_bytes().to_vec()),
    ]))
    .await
    .unwrap();
    store.import(org, records, Vec::new()).await.unwrap()
}

fn products_of(d: &cosell_migration::store::SnapshotDeal) -> Vec<&str> {
    d.products.iter().map(|p| p.product_id.as_str()).collect()
}

async fn store(db: &TestDb) -> Store {
    Store::new(
        cosell_platform::db::connect_and_migrate::<Migrator>(&db.url)
            .await
            .unwrap(),
    )
}

async fn imports_are_idempotent_and_later_exports_add_and_update(db: TestDb) {
    let store = store(&db).await;
    let org = Uuid::now_v7();
    let first = deals(&[
        "D1,Lakehouse,A1,Open,2021-01-05T10:00:00Z,yes,Partner,Northwind",
        "D2,Backup,A2,Open,2021-02-01T10:00:00Z,no,Microsoft,Fabrikam",
        "D3,Broken,A9,Open,2021-02-01T10:00:00Z,no,Partner,Nobody",
        "D1,Lakehouse again,A1,Open,2021-01-05T10:00:00Z,yes,Partner,Northwind",
    ]);
    let products = "DealId,ProductId,Quantity\nD1,P-1,2\nD2,P-5,1\nD9,P-2,1\n";
    let summary = import(&store, org, &first, products).await;
    assert_eq!(
        (summary.accounts, summary.users, summary.deals_added),
        (2, 2, 2)
    );
    assert_eq!(summary.products, 2);
    let errors: Vec<(&str, u64, &str, &str)> = summary
        .errors
        .iter()
        .map(|i| (i.file.as_str(), i.line, i.column.as_str(), i.id.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            ("deals.csv", 4, "PartnerAccountId", "D3"),
            ("deals.csv", 5, "DealId", "D1"),
            ("deal_products.csv", 4, "DealId", "D9"),
        ],
        "an unknown account, a duplicate deal id (the first row kept), a product of an unknown deal"
    );
    let snapshot = store.deals(org, None, 100, false).await.unwrap();
    assert_eq!(snapshot.len(), 2);
    assert_eq!(snapshot[0].deal.name, "Lakehouse");
    assert_eq!(products_of(&snapshot[0]), ["P-1"]);
    assert_eq!(store.users(org).await.unwrap()[0].first_name, "Ada");

    // The same bundle again: nothing changes.
    let again = import(&store, org, &first, products).await;
    assert_eq!(
        (
            again.deals_added,
            again.deals_updated,
            again.deals_unchanged
        ),
        (0, 0, 2)
    );
    assert_eq!(store.deals(org, None, 100, false).await.unwrap(), snapshot);

    // A later export: D1 renamed, D4 new, D2 absent (kept).
    let later = deals(&[
        "D1,Lakehouse (phase 2),A1,Open,2021-01-05T10:00:00Z,yes,Partner,Northwind",
        "D4,Call center,A1,Open,2021-03-01T10:00:00Z,no,Partner,Contoso Bank",
    ]);
    let third = import(&store, org, &later, "DealId,ProductId\nD1,P-3\n").await;
    assert_eq!(
        (
            third.deals_added,
            third.deals_updated,
            third.deals_unchanged
        ),
        (1, 1, 0)
    );
    let snapshot = store.deals(org, None, 100, false).await.unwrap();
    // The later export's products replace D1's; D2, absent from it, keeps its own.
    assert_eq!(products_of(&snapshot[0]), ["P-3"]);
    assert_eq!(products_of(&snapshot[1]), ["P-5"]);
    let now: Vec<(String, String)> = snapshot
        .into_iter()
        .map(|d| (d.deal.id, d.deal.name))
        .collect();
    assert_eq!(
        now,
        [
            ("D1".to_string(), "Lakehouse (phase 2)".to_string()),
            ("D2".into(), "Backup".into()),
            ("D4".into(), "Call center".into()),
        ]
    );
    // Paging by id.
    let page = store.deals(org, Some("D1"), 1, false).await.unwrap();
    assert_eq!(page[0].deal.id, "D2");
    // Each organization has its own snapshot; the history lists every import.
    assert!(
        store
            .deals(Uuid::now_v7(), None, 10, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.imports(org).await.unwrap().len(), 3);
}

#[tokio::test]
async fn imports_on_sqlite() {
    imports_are_idempotent_and_later_exports_add_and_update(TestDb::sqlite()).await;
}

#[tokio::test]
async fn imports_on_the_test_database() {
    imports_are_idempotent_and_later_exports_add_and_update(TestDb::new().await.unwrap()).await;
}

/// An export with thousands of bad rows keeps the first 1,000 errors of each file, counts the
/// rest per file, and says so in a warning, also when read back from the history.
#[tokio::test]
async fn an_import_lists_the_first_1000_errors_of_a_file_and_counts_the_rest() {
    let db = TestDb::new().await.unwrap();
    let store = store(&db).await;
    let org = Uuid::now_v7();
    // 1,200 rows of an unknown account (found by the reader) and 300 duplicates (found where
    // deals are written): 1,500 errors of deals.csv.
    let mut rows: Vec<String> = (0..1200)
        .map(|i| format!("X{i},Orphan,A9,Open,2021-01-05T10:00:00Z,no,Partner,Nobody"))
        .collect();
    rows.extend((0..300).map(|_| "D1,Twice,A1,Open,2021-01-05T10:00:00Z,no,Partner,N".to_string()));
    rows.push("D1,First,A1,Open,2021-01-05T10:00:00Z,no,Partner,Northwind".into());
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let summary = import(&store, org, &deals(&rows), "DealId,ProductId\nD9,P-1\n").await;
    assert_eq!(summary.deals_added, 1, "the first D1 is kept");
    let of = |file: &str| summary.errors.iter().filter(|i| i.file == file).count();
    assert_eq!(of("deals.csv"), 1000);
    assert_eq!(of("deal_products.csv"), 1, "D9 is unknown");
    assert_eq!(summary.unlisted_errors.get("deals.csv"), Some(&500));
    assert_eq!(summary.unlisted_errors.len(), 1);
    let warning = summary
        .warnings
        .iter()
        .find(|w| w.file == "deals.csv")
        .expect("a warning says how many are not listed");
    assert!(
        warning.reason.starts_with("500 more rows"),
        "{}",
        warning.reason
    );
    let (_, stored) = store.imports(org).await.unwrap().remove(0);
    assert_eq!(stored, summary);
}

#[tokio::test]
async fn leases_are_exclusive_and_released_work_goes_to_another_worker() {
    let db = TestDb::new().await.unwrap();
    let store = store(&db).await;
    let org = Uuid::now_v7();
    let rows: Vec<String> = (0..5)
        .map(|i| format!("D{i},Deal {i},A1,Open,2021-01-05T10:00:00Z,no,Partner,Northwind"))
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    import(&store, org, &deals(&rows), "DealId,ProductId\n").await;
    assert_eq!(
        store
            .start_run(org, STARTER, None, |_| false)
            .await
            .unwrap()
            .unwrap_err(),
        StartRefused::NothingToMigrate
    );
    store
        .start_run(org, STARTER, None, |_| true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .start_run(org, STARTER, None, |_| true)
            .await
            .unwrap()
            .unwrap_err(),
        StartRefused::RunInProgress,
        "one unfinished run per organization"
    );
    let minute = chrono::Duration::seconds(60);
    let first = store.lease("w1", 3, minute).await.unwrap();
    assert_eq!(first.len(), 3);
    let second = store.lease("w2", 10, minute).await.unwrap();
    assert_eq!(second.len(), 2, "leased deals are not handed out twice");
    assert!(store.lease("w3", 10, minute).await.unwrap().is_empty());
    // w1 stops gracefully: its deals go to the next worker at once.
    assert_eq!(store.release_leases("w1").await.unwrap(), 3);
    let third = store.lease("w3", 10, minute).await.unwrap();
    let mut ids: Vec<String> = third.into_iter().map(|r| r.deal_id).collect();
    ids.sort();
    let mut want: Vec<String> = first.into_iter().map(|r| r.deal_id).collect();
    want.sort();
    assert_eq!(ids, want);
    // An expired lease is taken over too.
    assert_eq!(store.release_leases("w2").await.unwrap(), 2);
    let short = store
        .lease("w4", 10, chrono::Duration::milliseconds(-1))
        .await
        .unwrap();
    assert_eq!(short.len(), 2);
    assert_eq!(
        store.lease("w5", 10, minute).await.unwrap().len(),
        2,
        "w4's leases have expired"
    );
}

/// One tenant's large run does not hold back another's small one: the organizations with a
/// run in progress take turns at the leases.
#[tokio::test]
async fn organizations_with_runs_in_progress_take_turns_at_the_leases() {
    let db = TestDb::new().await.unwrap();
    let store = store(&db).await;
    let (large, small) = (Uuid::now_v7(), Uuid::now_v7());
    for (org, n) in [(large, 6), (small, 2)] {
        let rows: Vec<String> = (0..n)
            .map(|i| format!("D{i},Deal {i},A1,Open,2021-01-05T10:00:00Z,no,Partner,Northwind"))
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        import(&store, org, &deals(&rows), "DealId,ProductId\n").await;
        store
            .start_run(org, STARTER, None, |_| true)
            .await
            .unwrap()
            .unwrap();
    }
    let minute = chrono::Duration::seconds(60);
    let mut turns = Vec::new();
    loop {
        let leased = store.lease("w1", 3, minute).await.unwrap();
        if leased.is_empty() {
            break;
        }
        let orgs: std::collections::BTreeSet<_> =
            leased.iter().map(|r| r.organization.clone()).collect();
        assert_eq!(orgs.len(), 1, "a lease holds one organization's deals");
        turns.push((orgs.into_iter().next().unwrap(), leased.len()));
    }
    assert_eq!(
        turns,
        [
            (large.to_string(), 3),
            (small.to_string(), 2),
            (large.to_string(), 3)
        ],
        "the small run's deals are leased before the large run's are all taken"
    );
}

/// A snapshot written before products and team had rows of their own (m0001) reads the same
/// after the schema migration.
#[tokio::test]
async fn a_snapshot_of_the_first_schema_is_moved_over() {
    use sea_orm::ConnectionTrait;
    use sea_orm_migration::MigratorTrait;
    let db = TestDb::new().await.unwrap();
    let conn = cosell_platform::db::connect(&db.url).await.unwrap();
    Migrator::up(&conn, Some(1)).await.unwrap();
    let record = serde_json::json!({
        "deal": {
            "id": "D1", "name": "Lakehouse", "account_id": "A1", "status": "Open",
            "created": "2021-01-05T10:00:00Z", "last_modified": null, "co_sell": true,
            "source": "Partner", "program": "SolutionAssessment", "registration": "None",
            "assigned_seller_email": "", "customer_name": "Northwind",
            "customer_address_line1": "", "customer_city": "", "customer_region": "",
            "customer_postal_code": "", "customer_country": "", "contact_first_name": "",
            "contact_last_name": "", "contact_email": "", "contact_phone": "", "value": null,
            "estimated_close_date": null, "notes": "", "customer_outcome": "", "deal_role": "",
            "licensing_program": ""
        },
        "products": [{"deal_id": "D1", "product_id": "P-1", "product_name": "", "quantity": 2,
                      "unit_price_cents": null}],
        "team": [{"deal_id": "D1", "first_name": "Rita", "last_name": "R", "email": "", "phone": ""}]
    });
    let org = Uuid::now_v7();
    let insert = sea_orm::sea_query::Query::insert()
        .into_table(sea_orm::sea_query::Alias::new("psc_deals"))
        .columns(
            [
                "organization",
                "deal_id",
                "account_id",
                "status",
                "created",
                "record_json",
            ]
            .map(sea_orm::sea_query::Alias::new),
        )
        .values_panic([
            org.to_string().into(),
            "D1".into(),
            "A1".into(),
            "Open".into(),
            chrono::DateTime::parse_from_rfc3339("2021-01-05T10:00:00Z")
                .unwrap()
                .to_utc()
                .into(),
            record.to_string().into(),
        ])
        .to_owned();
    conn.execute(&insert).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();

    let store = Store::new(conn);
    let deals = store.deals(org, None, 10, false).await.unwrap();
    assert_eq!(deals.len(), 1);
    assert_eq!(deals[0].deal.name, "Lakehouse");
    assert_eq!(products_of(&deals[0]), ["P-1"]);
    assert_eq!(deals[0].team[0].first_name, "Rita");
    let (_, counts) = store.status_snapshot(org).await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].deals, 1);
    assert_eq!(
        counts[0].facts.program,
        cosell_migration::psc::files::Program::SolutionAssessment
    );
}

#[tokio::test]
async fn a_run_counts_each_outcome_once_and_not_those_of_a_worker_that_lost_its_lease() {
    let db = TestDb::new().await.unwrap();
    let store = store(&db).await;
    let org = Uuid::now_v7();
    let rows: Vec<String> = (0..5)
        .map(|i| format!("D{i},Deal {i},A1,Open,2021-01-05T10:00:00Z,no,Partner,Northwind"))
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    import(&store, org, &deals(&rows), "DealId,ProductId\n").await;
    let run = store
        .start_run(org, STARTER, None, |_| true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((run.total, run.migrated, run.failed), (5, 0, 0));

    // w1's lease runs out before it records; w2 takes the same deals over.
    let expired = chrono::Duration::milliseconds(-1);
    let lost = store.lease("w1", 3, expired).await.unwrap();
    let taken = store
        .lease("w2", 10, chrono::Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(taken.len(), 5, "w1's expired leases and the free deals");
    let outcome = |r: &cosell_migration::store::entities::deal_result::Model, state: &str| {
        cosell_migration::store::entities::deal_result::Model {
            state: state.into(),
            ..r.clone()
        }
    };
    let w1 = lost.iter().map(|r| outcome(r, "MIGRATED")).collect();
    assert_eq!(store.finish_deals("w1", w1).await.unwrap(), 0);
    let w2 = vec![
        outcome(&taken[0], "MIGRATED"),
        outcome(&taken[1], "MIGRATED"),
        outcome(&taken[2], "FAILED"),
    ];
    assert_eq!(store.finish_deals("w2", w2.clone()).await.unwrap(), 3);
    // Recording the same outcomes again (a retry) counts nothing twice.
    assert_eq!(store.finish_deals("w2", w2).await.unwrap(), 0);
    let now = store.latest_run(org).await.unwrap().unwrap();
    assert_eq!((now.total, now.migrated, now.failed), (5, 2, 1));
}

/// Runs made before the counts had columns of their own (m0003) are counted from their results.
#[tokio::test]
async fn runs_of_the_second_schema_get_their_counts() {
    use sea_orm::ConnectionTrait;
    use sea_orm_migration::MigratorTrait;
    let db = TestDb::new().await.unwrap();
    let conn = cosell_platform::db::connect(&db.url).await.unwrap();
    Migrator::up(&conn, Some(2)).await.unwrap();
    let org = Uuid::now_v7().to_string();
    conn.execute_unprepared(&format!(
        "INSERT INTO deal_runs (id, organization, create_time, finish_time, active) \
         VALUES ('R1', '{org}', '2026-01-01T00:00:00Z', '2026-01-01T00:10:00Z', NULL)"
    ))
    .await
    .unwrap();
    for (deal, state) in [("D1", "MIGRATED"), ("D2", "MIGRATED"), ("D3", "FAILED")] {
        conn.execute_unprepared(&format!(
            "INSERT INTO deal_results (organization, deal_id, run_id, state, lease_owner, \
             lease_until, deal_name, engagement, referral, deal_type, direction, error, notes) \
             VALUES ('{org}', '{deal}', 'R1', '{state}', '', NULL, '', '', '', '', '', '', '')"
        ))
        .await
        .unwrap();
    }
    Migrator::up(&conn, None).await.unwrap();
    let run = Store::new(conn)
        .latest_run(Uuid::parse_str(&org).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((run.total, run.migrated, run.failed), (3, 2, 1));
}

/// An import refreshes the statistics inside its transaction (and so holds their lock until it
/// commits); another organization's import meanwhile goes on without them instead of waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_does_not_wait_for_another_to_commit() {
    let db = TestDb::new().await.unwrap();
    if !db.is_postgres() {
        return; // SQLite writes one transaction at a time anyway.
    }
    let store = store(&db).await;
    let rows: Vec<String> = (0..1200)
        .map(|i| format!("D{i},Deal {i},A1,Open,2021-01-05T10:00:00Z,no,Partner,Northwind"))
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let text = deals(&rows);
    let bundle = || {
        InMemory(vec![
            ("accounts.csv".into(), ACCOUNTS.as_bytes().to_vec()),
            ("deals.csv".into(), text.as_bytes().to_vec()),
        ])
    };

    // The first import gets every record but its stream stays open: it is still going on.
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut records = cosell_migration::psc::stream(bundle()).await.unwrap();
    let forward = tokio::spawn(async move {
        while let Some(batch) = records.recv().await {
            tx.send(batch).await.unwrap();
        }
        tx
    });
    let first = {
        let store = store.clone();
        tokio::spawn(async move { store.import(Uuid::now_v7(), rx, Vec::new()).await })
    };
    let open = forward.await.unwrap();
    // Wait until it holds the statistics' lock.
    let conn = cosell_platform::db::connect(&db.url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let held = crate::count(
            &conn,
            "SELECT COUNT(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'psc_deals' AND l.mode = 'ShareUpdateExclusiveLock' AND l.granted",
        )
        .await;
        if held > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first import never analyzed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let second = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let records = cosell_migration::psc::stream(bundle()).await.unwrap();
        store.import(Uuid::now_v7(), records, Vec::new()).await
    })
    .await
    .expect("the second import finished while the first was open")
    .unwrap();
    assert_eq!(second.deals_added, 1200);
    assert!(!first.is_finished());
    drop(open);
    assert_eq!(first.await.unwrap().unwrap().deals_added, 1200);
}
