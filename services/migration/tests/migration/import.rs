//! Importing PSC export bundles into an organization's snapshot: good rows kept, problems
//! reported, re-imports idempotent, later exports adding and updating without deleting.

use cosell_migration::psc::{Bundle, InMemory};
use cosell_migration::store::{Store, migration::Migrator};
use cosell_testkit::TestDb;
use uuid::Uuid;

const ACCOUNTS: &str =
    "PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso US,4000002\nA2,Contoso DE,4000003\n";
const USERS: &str = "UserEmail,PartnerAccountId,Role,FirstName\nada@contoso.com,A1,Admin,Ada\nsam@contoso.com,A2,Seller,Sam\n";

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

fn bundle(deals: &str, products: &str) -> Bundle {
    Bundle::read(&InMemory(vec![
        ("accounts.csv".into(), ACCOUNTS.as_bytes().to_vec()),
        ("users.csv".into(), USERS.as_bytes().to_vec()),
        ("deals.csv".into(), deals.as_bytes().to_vec()),
        ("deal_products.csv".into(), products.as_bytes().to_vec()),
    ]))
    .unwrap()
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
    ]);
    let products = "DealId,ProductId,Quantity\nD1,P-1,2\n";
    let summary = store.import(org, &bundle(&first, products)).await.unwrap();
    assert_eq!(
        (summary.accounts, summary.users, summary.deals_added),
        (2, 2, 2)
    );
    assert_eq!(summary.errors.len(), 1, "D3 refers to an unknown account");
    assert_eq!(summary.errors[0].id, "D3");
    let snapshot = store.deals(org, None, 100).await.unwrap();
    assert_eq!(snapshot.len(), 2);
    assert_eq!(snapshot[0].products[0].product_id, "P-1");
    assert_eq!(store.users(org).await.unwrap()[0].first_name, "Ada");

    // The same bundle again: nothing changes.
    let again = store.import(org, &bundle(&first, products)).await.unwrap();
    assert_eq!(
        (
            again.deals_added,
            again.deals_updated,
            again.deals_unchanged
        ),
        (0, 0, 2)
    );
    assert_eq!(store.deals(org, None, 100).await.unwrap(), snapshot);

    // A later export: D1 renamed, D4 new, D2 absent (kept).
    let later = deals(&[
        "D1,Lakehouse (phase 2),A1,Open,2021-01-05T10:00:00Z,yes,Partner,Northwind",
        "D4,Call center,A1,Open,2021-03-01T10:00:00Z,no,Partner,Contoso Bank",
    ]);
    let third = store.import(org, &bundle(&later, products)).await.unwrap();
    assert_eq!(
        (
            third.deals_added,
            third.deals_updated,
            third.deals_unchanged
        ),
        (1, 1, 0)
    );
    let now: Vec<(String, String)> = store
        .deals(org, None, 100)
        .await
        .unwrap()
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
    let page = store.deals(org, Some("D1"), 1).await.unwrap();
    assert_eq!(page[0].deal.id, "D2");
    // Each organization has its own snapshot; the history lists every import.
    assert!(
        store
            .deals(Uuid::now_v7(), None, 10)
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

#[tokio::test]
async fn leases_are_exclusive_and_released_work_goes_to_another_worker() {
    let db = TestDb::new().await.unwrap();
    let store = store(&db).await;
    let org = Uuid::now_v7();
    let deals: Vec<(String, String)> = (0..5)
        .map(|i| (format!("D{i}"), format!("Deal {i}")))
        .collect();
    store.start_run(org, &deals).await.unwrap().unwrap();
    assert!(
        store.start_run(org, &deals).await.unwrap().is_none(),
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
