//! Loading: a bad row is reported and the rest loads; loads are idempotent per LEI; only
//! platform operators (and the migration service) load; get and batch get.

use cosell_proto::directory as pb;
use cosell_testkit::authed;

use crate::harness::Harness;

const FILE: &str = "\
LEI,Entity.LegalName,Entity.LegalAddress.FirstAddressLine,Entity.LegalAddress.City,Entity.LegalAddress.Region,Entity.LegalAddress.Country,Entity.LegalAddress.PostalCode
529900T8BM49AURSDO55,Siemens Aktiengesellschaft,Werner-von-Siemens-Str. 1,München,DE-BY,DE,80333
5493001KJTIIGC8Y1R12,,Somewhere 1,Springfield,,US,12345
5493001KJTIIGC8Y1R13,Too Many,Fields,Here,x,y,z,w
5493001KJTIIGC8Y1R14,\"Acme, \"\"Quoted\"\" Widgets Inc.\",1 Main St,Springfield,US-IL,US,62701
5493001KJTIIGC8Y1R15,Nowhere Corp,1 Road,Nowhere,,QQ,1
";

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_row_is_reported_and_the_rest_loads_idempotently() {
    let h = Harness::start(false).await;
    let oli = h.token("oli.operator@platform.example").await;
    let mut bytes = FILE.as_bytes().to_vec();
    // A row with invalid UTF-8 in the name.
    bytes.extend_from_slice(b"5493001KJTIIGC8Y1R16,Bad \xff Name,1 Road,Paris,,FR,75001\n");
    let responses = h.load(&oli, bytes.clone()).await.expect("load runs");
    let last = responses.last().unwrap();
    assert!(last.done);
    assert_eq!((last.rows_read, last.loaded, last.failed), (6, 2, 4));
    let errors: Vec<(i64, String, String)> = responses
        .iter()
        .flat_map(|r| r.errors.iter())
        .map(|e| (e.line, e.column.clone(), e.reason.clone()))
        .collect();
    let lines: Vec<i64> = errors.iter().map(|e| e.0).collect();
    assert_eq!(lines, vec![3, 4, 6, 7], "{errors:?}");
    assert_eq!(errors[0].1, "Entity.LegalName");
    assert!(errors[1].2.contains("8 fields"), "{errors:?}");
    assert_eq!(errors[2].1, "Entity.LegalAddress.Country");
    assert!(errors[3].2.contains("UTF-8"));

    // Searchable at once, with the legal form ignored and accents folded.
    let r = h.search("acme quoted widgets", "", "").await;
    assert_eq!(r[0].legal_name, "Acme, \"Quoted\" Widgets Inc.");
    let r = h
        .search("siemens aktiengesellschaft", "DE", "munchen")
        .await;
    assert_eq!(
        r[0].address.as_ref().unwrap().lines,
        vec!["Werner-von-Siemens-Str. 1"]
    );
    assert!(!r[0].address_generated);

    // Loading the same file again changes nothing; a changed row updates in place.
    h.load(&oli, bytes).await.unwrap();
    let changed = FILE.replace(
        "Siemens Aktiengesellschaft",
        "Siemens Energy Aktiengesellschaft",
    );
    h.load(&oli, changed.into_bytes()).await.unwrap();
    assert_eq!(h.directory.store.count().await.unwrap(), 2);
    let r = h.search("siemens energy", "", "").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].legal_name, "Siemens Energy Aktiengesellschaft");

    // Get and batch get; a missing one is NOT_FOUND naming it.
    let uma = h.token("uma.user@contoso.com").await;
    let got = h
        .client()
        .batch_get_entities(authed(
            &uma,
            pb::BatchGetEntitiesRequest {
                names: vec![
                    "entities/5493001KJTIIGC8Y1R14".into(),
                    "entities/529900T8BM49AURSDO55".into(),
                ],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entities;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].legal_name, "Siemens Energy Aktiengesellschaft",
        "in the order asked"
    );
    let s = h
        .client()
        .batch_get_entities(authed(
            &uma,
            pb::BatchGetEntitiesRequest {
                names: vec![
                    "entities/529900T8BM49AURSDO55".into(),
                    "entities/NOPE".into(),
                ],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::NotFound);
    assert!(s.message().contains("entities/NOPE"));
    let one = h
        .client()
        .get_entity(authed(
            &uma,
            pb::GetEntityRequest {
                name: "entities/529900T8BM49AURSDO55".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entity
        .unwrap();
    assert_eq!(one.address.unwrap().city, "München");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_operators_load_and_a_file_without_the_columns_is_refused() {
    let h = Harness::start(false).await;
    let ada = h.token("ada.admin@contoso.com").await;
    let s = h.load(&ada, FILE.as_bytes().to_vec()).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::PermissionDenied);
    let oli = h.token("oli.operator@platform.example").await;
    let s = h
        .load(&oli, b"Name,Country\nAcme,US\n".to_vec())
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(s.message().contains("`LEI`"), "{}", s.message());
    assert_eq!(h.directory.store.count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_may_outlast_the_request_timeout() {
    // A bulk load is a stream that runs as long as the file is long; the server's timeout for
    // ordinary calls must not cut it.
    let options = cosell_platform::server::ServerOptions {
        request_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let h = Harness::start_with(false, options).await;
    let oli = h.token("oli.operator@platform.example").await;
    let started = std::time::Instant::now();
    let responses = h
        .load(&oli, cosell_directory::SAMPLE.to_vec())
        .await
        .expect("the load finishes");
    assert!(
        started.elapsed() > std::time::Duration::from_millis(300),
        "the load ran longer than the timeout"
    );
    let last = responses.last().unwrap();
    assert!(last.done);
    assert_eq!(last.loaded, 20_000);
}
