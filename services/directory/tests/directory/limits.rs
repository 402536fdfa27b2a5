//! Input limits through the real server: a search or load field over the limit its proto
//! comment documents is `INVALID_ARGUMENT` naming the field; a value at the limit is served.

use cosell_proto::directory as pb;
use cosell_testkit::{authed, refusal};

use crate::harness::Harness;

const FILE: &str = "\
LEI,Entity.LegalName,Entity.LegalAddress.City,Entity.LegalAddress.Country
529900T8BM49AURSDO55,Siemens Aktiengesellschaft,München,DE
";

/// `INVALID_ARGUMENT` for `fields` over their lengths, in the directory's domain.
#[track_caller]
fn assert_too_long(status: &tonic::Status, fields: &[&str]) {
    let err = refusal(status);
    assert_eq!(
        (err.code, err.reason.as_str(), err.domain.as_str()),
        (
            tonic::Code::InvalidArgument,
            "FIELD_TOO_LONG",
            "directory.cosell"
        ),
        "{status:?}"
    );
    assert_eq!(err.fields(), fields);
}

#[tokio::test(flavor = "multi_thread")]
async fn search_fields_are_bounded() {
    let h = Harness::start(false).await;
    let oli = h.token("oli.operator@platform.example").await;
    h.load(&oli, FILE.as_bytes().to_vec()).await.unwrap();
    let uma = h.token("uma.user@contoso.com").await;
    let search = |query: String, city: String| {
        let mut client = h.client();
        let uma = uma.clone();
        async move {
            client
                .search_entities(authed(
                    &uma,
                    pb::SearchEntitiesRequest {
                        query,
                        city,
                        ..Default::default()
                    },
                ))
                .await
                .map(|r| r.into_inner().results.len())
        }
    };

    // A query of exactly 200 characters (the name, then spaces) is searched as usual.
    let at_limit = format!("{:<200}", "siemens aktiengesellschaft");
    assert_eq!(at_limit.chars().count(), 200);
    assert_eq!(search(at_limit.clone(), String::new()).await.unwrap(), 1);

    let err = search(at_limit + "s", String::new()).await.unwrap_err();
    assert!(err.message().contains("at most 200"), "{}", err.message());
    assert_too_long(&err, &["query"]);

    // Every field over its limit is named, the city's in characters (ü is 2 bytes, 1 character).
    let err = search("x".repeat(300), "ü".repeat(201)).await.unwrap_err();
    assert_too_long(&err, &["query", "city"]);
    assert_eq!(
        search("siemens".into(), "ü".repeat(200)).await.unwrap(),
        0,
        "a city of 200 characters passes (and matches nothing)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_chunk_over_a_limit_ends_the_load() {
    let h = Harness::start(false).await;
    let oli = h.token("oli.operator@platform.example").await;
    let chunks = vec![pb::LoadEntitiesRequest {
        chunk: FILE.as_bytes().to_vec(),
        file_name: "f".repeat(1025),
    }];
    let mut stream = h
        .client()
        .load_entities(authed(&oli, tokio_stream::iter(chunks)))
        .await
        .unwrap()
        .into_inner();
    let err = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the load finished"),
            Err(e) => break e,
        }
    };
    assert_too_long(&err, &["file_name"]);
    // The chunk never reached the parser: nothing was loaded.
    assert!(h.search("siemens", "", "").await.is_empty());
}
