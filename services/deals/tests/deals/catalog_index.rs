//! The catalog's word index: kept in step with a solution's name, built for the solutions a
//! database had before it existed, and what PostgreSQL's planner does with it at 50,000
//! solutions.

use chrono::Utc;
use cosell_deals::domain::Solution;
use cosell_deals::store::entities::{solution, solution_word};
use cosell_deals::store::{Store, list_solutions_query, migration::Migrator};
use cosell_proto::deals as pb;
use cosell_testkit::{TestDb, authed};
use prost_types::FieldMask;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, QueryTrait, Statement};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;

use crate::harness::*;

fn solution(name: &str) -> Solution {
    Solution {
        id: Uuid::now_v7(),
        display_name: name.into(),
        publisher: None,
        kind: pb::SolutionKind::PlatformSku,
        cosell_ready: false,
        incentive_eligible: false,
        mpn_id: None,
        legacy_product_ids: Vec::new(),
        create_time: Utc::now(),
        update_time: Utc::now(),
        version: 1,
    }
}

async fn names(store: &Store, query: &str) -> Vec<String> {
    let words = cosell_deals::domain::search_words(query);
    store
        .list_solutions(&words, None, None, false, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.display_name)
        .collect()
}

#[tokio::test]
async fn a_renamed_solution_is_found_by_its_new_words_only() {
    let h = Harness::start().await;
    let oli = h.token(OLI).await;
    let edge = h
        .create_solution(
            OLI,
            "Contoso Édge Security",
            pb::SolutionKind::ThirdParty,
            "",
            "",
            false,
        )
        .await;
    let rename = |name: &str, etag: &str| {
        let catalog = h.catalog();
        let request = pb::UpdateSolutionRequest {
            solution: Some(pb::Solution {
                name: edge.name.clone(),
                display_name: name.into(),
                etag: etag.into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["display_name".into()],
            }),
        };
        let oli = oli.clone();
        async move { catalog.clone().update_solution(authed(&oli, request)).await }
    };
    rename("Contoso Lakehouse Migration", &edge.etag)
        .await
        .unwrap();
    let store = &h.deals.store;
    assert_eq!(
        names(store, "lake mig").await,
        ["Contoso Lakehouse Migration"]
    );
    assert!(names(store, "edge").await.is_empty(), "old words are gone");
    assert_eq!(
        names(store, "contoso").await,
        ["Contoso Cloud Analytics", "Contoso Lakehouse Migration"]
    );

    // A stale write changes neither the name nor its words.
    let err = rename("Something Else", &edge.etag).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted);
    assert!(names(store, "something").await.is_empty());
    assert_eq!(
        names(store, "lakehouse").await,
        ["Contoso Lakehouse Migration"]
    );
}

#[tokio::test]
async fn the_index_is_built_for_solutions_stored_before_it() {
    let db_ = TestDb::new().await.unwrap();
    let db = cosell_platform::db::connect(&db_.url).await.unwrap();
    Migrator::up(&db, Some(1)).await.unwrap();
    // Written as the first schema had them: no word rows.
    for name in ["Ünïted Data Cloud", "Data Fabric", "Cloud Data Data"] {
        solution::Entity::insert(solution::to_active(&solution(name)))
            .exec_without_returning(&db)
            .await
            .unwrap();
    }
    Migrator::up(&db, None).await.unwrap();
    let store = Store::new(db);
    assert_eq!(
        names(&store, "data cl").await,
        ["Cloud Data Data", "Ünïted Data Cloud"]
    );
    assert_eq!(names(&store, "united").await, ["Ünïted Data Cloud"]);
    assert_eq!(
        names(&store, "").await,
        ["Cloud Data Data", "Data Fabric", "Ünïted Data Cloud"]
    );
}

/// What PostgreSQL plans for a picker search over 50,000 solutions (a few thousand distinct
/// words, each solution a handful of them): a range scan of the word index, never a scan of
/// every name. Printed, for the record. SQLite has no planner statistics to ask; skipped there.
#[tokio::test]
async fn postgres_answers_a_search_from_the_word_index() {
    const SOLUTIONS: usize = 50_000;
    let db_ = TestDb::new().await.unwrap();
    if !db_.is_postgres() {
        return;
    }
    let db = cosell_platform::db::connect_and_migrate::<Migrator>(&db_.url)
        .await
        .unwrap();
    // Names of pronounceable words, so that a word is shared by a few dozen solutions.
    let word = |n: usize| {
        const SYLLABLES: [&str; 16] = [
            "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "qu", "do", "fe", "gu",
            "ha", "jo",
        ];
        format!(
            "{}{}{}",
            SYLLABLES[n % 16],
            SYLLABLES[(n / 16) % 16],
            SYLLABLES[(n / 256) % 16]
        )
    };
    let all: Vec<Solution> = (0..SOLUTIONS)
        .map(|i| {
            solution(&format!(
                "{} {} {}",
                word(i * 7 % 4096),
                word(i * 13 % 4093),
                word(i % 1021)
            ))
        })
        .collect();
    for chunk in all.chunks(1000) {
        solution::Entity::insert_many(chunk.iter().map(solution::to_active))
            .exec_without_returning(&db)
            .await
            .unwrap();
        solution_word::Entity::insert_many(chunk.iter().flat_map(solution_word::rows))
            .exec_without_returning(&db)
            .await
            .unwrap();
    }
    cosell_platform::db::analyze(&db, &["solutions", "solution_words"])
        .await
        .unwrap();

    // The first word of one solution's name, and the start of its last.
    let one: Vec<&str> = all[12_345].display_name.split(' ').collect();
    let query = vec![one[0].to_owned(), one[2][..3].to_owned()];
    let statement =
        list_solutions_query(&query, None, None, false, None, 51).build(DbBackend::Postgres);
    let explain = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("EXPLAIN {}", statement.sql),
        statement.values.unwrap().0,
    );
    let plan: Vec<String> = db
        .query_all_raw(explain)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    let plan = plan.join("\n");
    println!("{query:?} over {SOLUTIONS} solutions:\n{plan}");
    assert!(plan.contains("solution_words_pkey"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");

    // And it answers what the words say.
    let found = Store::new(db)
        .list_solutions(&query, None, None, false, None, 51)
        .await
        .unwrap();
    let expected: Vec<&str> = all
        .iter()
        .filter(|s| {
            query
                .iter()
                .all(|q| s.display_name.split(' ').any(|w| w.starts_with(q.as_str())))
        })
        .map(|s| s.display_name.as_str())
        .collect();
    let mut expected = expected;
    expected.sort();
    let got: Vec<&str> = found.iter().map(|s| s.display_name.as_str()).collect();
    assert_eq!(got, expected[..expected.len().min(51)]);
}
