//! Replicas on one database: each directory process keeps its own index and follows what the
//! others load (`cosell_directory::follow`), so a load through any replica is found through
//! every one within seconds, without a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cosell_directory::Directory;
use cosell_directory::index::SearchQuery;
use cosell_testkit::TestDb;

const HEADER: &str = "LEI,Entity.LegalName,Entity.LegalAddress.FirstAddressLine,Entity.LegalAddress.City,Entity.LegalAddress.Region,Entity.LegalAddress.Country,Entity.LegalAddress.PostalCode\n";

/// A CSV of `n` entities named `{word} Holding {i}`, with LEIs of their own per `word`.
fn file(word: &str, prefix: &str, n: usize) -> Vec<u8> {
    let mut csv = HEADER.to_owned();
    for i in 0..n {
        csv.push_str(&format!(
            "{prefix}{i:0>8}00000000,{word} Holding {i},1 Road,Oslo,,NO,0150\n"
        ));
    }
    csv.into_bytes()
}

/// Loads `bytes` through `d` as its LoadEntities handler does: under the replica's load lock.
async fn load(d: &Directory, bytes: Vec<u8>) -> u64 {
    let _one_at_a_time = d.load_lock.lock().await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let (progress, mut progress_rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move { while progress_rx.recv().await.is_some() {} });
    tx.send(bytes).await.unwrap();
    drop(tx);
    cosell_directory::load::load(&d.store, &d.index, rx, progress)
        .await
        .unwrap()
        .loaded
}

fn hits(d: &Directory, text: &str) -> usize {
    d.index
        .search(&SearchQuery {
            text: text.into(),
            limit: 100,
            ..SearchQuery::default()
        })
        .unwrap()
        .len()
}

/// Waits until `d` finds `want` entities for `text`; how long that took.
async fn found_within(d: &Directory, text: &str, want: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let n = hits(d, text);
        if n == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{text:?}: {n} of {want} found after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two replicas of the directory on one database (a file for SQLite, so that both share it).
async fn two_replicas(db: &TestDb, dir: &std::path::Path) -> (Arc<Directory>, Arc<Directory>) {
    let url = if db.is_postgres() {
        db.url.clone()
    } else {
        format!("sqlite://{}?mode=rwc", dir.join("directory.db").display())
    };
    let config = cosell_directory::Config::new(url);
    let a = cosell_directory::start(&config, None).await.unwrap();
    let b = cosell_directory::start(&config, None).await.unwrap();
    (a.directory, b.directory)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_through_one_replica_is_found_through_the_other() {
    let db = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_replicas(&db, dir.path()).await;

    assert_eq!(load(&a, file("Fjordlys", "5493", 30)).await, 30);
    assert_eq!(
        hits(&a, "fjordlys holding"),
        30,
        "the loading replica at once"
    );
    let took = found_within(&b, "fjordlys holding", 30, Duration::from_secs(5)).await;
    eprintln!("the other replica found the load after {took:?}");

    // And the other way, with a changed name: the update replaces the entity on both.
    let renamed = String::from_utf8(file("Fjordlys", "5493", 1))
        .unwrap()
        .replace("Fjordlys Holding 0", "Havbris Holding 0");
    load(&b, renamed.into_bytes()).await;
    found_within(&a, "havbris holding", 1, Duration::from_secs(5)).await;
    found_within(&a, "fjordlys holding", 29, Duration::from_secs(5)).await;
    assert_eq!(hits(&b, "fjordlys holding"), 29);
}

#[tokio::test(flavor = "multi_thread")]
async fn loads_through_both_replicas_at_once_leave_both_indexes_whole() {
    let db = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_replicas(&db, dir.path()).await;

    // Batches of both loads interleave in the database: each replica's commits must take in the
    // other's rows, never claim a generation whose rows it has not indexed.
    let (through_a, through_b) = tokio::join!(
        load(&a, file("Nordkapp", "5493", 12_000)),
        load(&b, file("Sorlandet", "5299", 12_000)),
    );
    assert_eq!((through_a, through_b), (12_000, 12_000));
    for d in [&a, &b] {
        found_within(d, "nordkapp holding 11999", 1, Duration::from_secs(5)).await;
        found_within(d, "sorlandet holding 11999", 1, Duration::from_secs(5)).await;
    }
    // Every entity of both loads is in both indexes, once.
    let generation = a.store.generation().await.unwrap();
    for d in [&a, &b] {
        let start = Instant::now();
        while d.index.generation() != Some(generation) {
            assert!(start.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(d.index.num_docs(), 24_000);
    }
}
