//! One import at a time per organization, across replicas sharing the database: two stores
//! on one database stand for two replicas. The clock is passed in, so expiry needs no waiting.

use chrono::{Duration, Utc};
use cosell_migration::store::{Store, migration::Migrator};
use cosell_testkit::TestDb;
use uuid::Uuid;

async fn replica(url: &str) -> Store {
    Store::new(
        cosell_platform::db::connect_and_migrate::<Migrator>(url)
            .await
            .unwrap(),
    )
}

async fn one_import_at_a_time_across_replicas(url: &str) {
    let (a, b) = (replica(url).await, replica(url).await);
    let (contoso, fabrikam) = (Uuid::now_v7(), Uuid::now_v7());
    let now = Utc::now();
    let lease = Duration::seconds(30);
    assert!(
        a.lock_import(contoso, "import-1", "a", now, now + lease)
            .await
            .unwrap()
    );
    // Another replica's import of the same organization waits; another organization's goes on.
    assert!(
        !b.lock_import(contoso, "import-2", "b", now, now + lease)
            .await
            .unwrap()
    );
    assert!(
        b.lock_import(fabrikam, "import-3", "b", now, now + lease)
            .await
            .unwrap()
    );
    // Renewed, the lease holds past its first expiry.
    assert!(
        a.renew_import_lock(contoso, "import-1", now + lease * 2)
            .await
            .unwrap()
    );
    let later = now + lease + Duration::seconds(1);
    assert!(
        !b.lock_import(contoso, "import-2", "b", later, later + lease)
            .await
            .unwrap()
    );
    // Released, it is free at once.
    a.unlock_import(contoso, "import-1").await.unwrap();
    assert!(
        b.lock_import(contoso, "import-2", "b", now, now + lease)
            .await
            .unwrap()
    );

    // A replica that died holds its lock until the lease expires, then another takes it over,
    // and the dead one's renewal finds it lost.
    let expired = now + lease + Duration::seconds(1);
    assert!(
        a.lock_import(contoso, "import-4", "a", expired, expired + lease)
            .await
            .unwrap()
    );
    assert!(
        !b.renew_import_lock(contoso, "import-2", expired + lease)
            .await
            .unwrap()
    );
    // A replica shutting down lets go of its own locks only.
    assert_eq!(b.unlock_imports_of("b").await.unwrap(), 1, "fabrikam's");
    assert!(
        !b.lock_import(contoso, "import-5", "b", expired, expired + lease)
            .await
            .unwrap()
    );
    assert!(
        a.lock_import(fabrikam, "import-6", "a", expired, expired + lease)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn one_import_at_a_time_on_the_test_database() {
    let db = TestDb::new().await.unwrap();
    if db.is_postgres() {
        one_import_at_a_time_across_replicas(&db.url).await;
    }
}

#[tokio::test]
async fn one_import_at_a_time_on_sqlite() {
    // A file, so that both replicas open the same database.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    one_import_at_a_time_across_replicas(&url).await;
}

/// A release cut short (dropped mid-way, as a server drops the future of a call its client
/// cancelled) still lets go of the lock, as soon as it can: not when the lease runs out. Here it
/// is dropped while it waits for its pool's one connection, which a transaction holds.
async fn a_release_cut_short_still_lets_go(url: &str) {
    let b = replica(url).await;
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options.max_connections(1).sqlx_logging(false);
    let pool = sea_orm::Database::connect(options).await.unwrap();
    let a = Store::new(pool.clone());
    let contoso = Uuid::now_v7();
    let now = Utc::now();
    let lease = Duration::seconds(30);
    assert!(
        a.lock_import(contoso, "import-1", "a", now, now + lease)
            .await
            .unwrap()
    );
    let busy = cosell_platform::db::begin(&pool).await.unwrap();
    let cut_short = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        a.unlock_import(contoso, "import-1"),
    )
    .await;
    assert!(cut_short.is_err(), "the release waited for the connection");
    busy.commit().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !b
        .lock_import(contoso, "import-2", "b", now, now + lease)
        .await
        .unwrap()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the release cut short left the lock held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_release_cut_short_still_lets_go_on_the_test_database() {
    let db = TestDb::new().await.unwrap();
    if db.is_postgres() {
        a_release_cut_short_still_lets_go(&db.url).await;
    }
}

#[tokio::test]
async fn a_release_cut_short_still_lets_go_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    a_release_cut_short_still_lets_go(&url).await;
}
