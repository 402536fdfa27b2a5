//! The index is derived from the database: kept when current, rebuilt at start when missing or
//! stale (the database moved on without it, as after a crash between the two writes).

use cosell_directory::domain::Entity;
use cosell_directory::index::SearchQuery;
use cosell_testkit::TestDb;

fn entity(id: &str, name: &str) -> Entity {
    Entity {
        id: id.into(),
        legal_name: name.into(),
        other_names: Vec::new(),
        address_lines: Vec::new(),
        city: "Oslo".into(),
        region: String::new(),
        postal_code: String::new(),
        country: "NO".into(),
        address_generated: false,
    }
}

fn query(text: &str) -> SearchQuery {
    SearchQuery {
        text: text.into(),
        limit: 5,
        ..SearchQuery::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_index_is_rebuilt_when_missing_or_stale() {
    let db = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // In-memory SQLite would not survive a restart: use a file unless on PostgreSQL.
    let url = if db.is_postgres() {
        db.url.clone()
    } else {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("directory.db").display()
        )
    };
    let mut config = cosell_directory::Config::new(url);
    config.index_dir = Some(dir.path().join("index"));

    let started = cosell_directory::start(&config, None).await.unwrap();
    started
        .directory
        .store
        .upsert(&[entity("529900T8BM49AURSDO55", "Nordlys Shipping AS")])
        .await
        .unwrap();
    // Written to the database only: the index does not know it yet.
    assert!(
        started
            .directory
            .index
            .search(&query("nordlys"))
            .unwrap()
            .is_empty()
    );
    drop(started);

    // Restart: the generation differs, so the index is rebuilt and finds it.
    let started = cosell_directory::start(&config, None).await.unwrap();
    let found = started.directory.index.search(&query("nordlys")).unwrap();
    assert_eq!(found[0].0.legal_name, "Nordlys Shipping AS");
    drop(started);

    // Missing altogether: rebuilt too.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let started = cosell_directory::start(&config, None).await.unwrap();
    assert_eq!(started.directory.index.num_docs(), 1);
    assert_eq!(
        started
            .directory
            .index
            .search(&query("nordlys ship"))
            .unwrap()
            .len(),
        1
    );
}
