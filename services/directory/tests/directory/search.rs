//! Each matching rule of SPEC 4, shown with real names from the bundled sample (GLEIF legal
//! names; cities from GeoNames).

use crate::harness::Harness;

fn names(results: &[cosell_proto::directory::LegalEntity]) -> Vec<String> {
    results.iter().map(|e| e.legal_name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn search_as_you_type_over_the_sample() {
    let h = Harness::start(true).await;
    assert!(
        h.directory.index.num_docs() >= 19_000,
        "sample loaded: {}",
        h.directory.index.num_docs()
    );

    // Exact name, any case: first.
    let r = h.search("cetracore energy gmbh", "", "").await;
    assert_eq!(names(&r)[0], "Cetracore Energy GmbH");
    let first = &r[0];
    assert_eq!(first.name, "entities/25490015VCIORO2N2047");
    assert_eq!(first.identifiers[0].scheme, "LEI");
    assert!(
        first.address_generated,
        "sample addresses are labelled generated"
    );
    assert_eq!(first.address.as_ref().unwrap().country_code, "AT");

    // A dropped legal form: `GmbH` is not needed.
    assert_eq!(
        names(&h.search("Cetracore Energy ", "", "").await)[0],
        "Cetracore Energy GmbH"
    );
    // And `S.A.` written without dots matches.
    assert_eq!(
        names(&h.search("Oil Med SA", "", "").await)[0],
        "OIL MED S.A."
    );

    // One typo in a word of 5+ letters (a transposition, a deletion).
    assert_eq!(
        names(&h.search("Dynatarce Global Finance", "", "").await)[0],
        "Dynatrace Global Finance GmbH"
    );
    assert_eq!(
        names(&h.search("Dynatrce Global", "", "").await)[0],
        "Dynatrace Global Finance GmbH"
    );
    // Short words must match exactly: no typo allowed there.
    assert!(
        h.search("Oil Mex", "", "")
            .await
            .iter()
            .all(|e| e.legal_name != "OIL MED S.A.")
    );

    // Accents do not matter, either way.
    assert_eq!(
        names(&h.search("pyhasalmi mine", "", "").await)[0],
        "PYHÄSALMI MINE OY"
    );
    assert_eq!(
        names(&h.search("loreal share incentive", "", "").await)[0],
        "L'ORÉAL S.A. SHARE INCENTIVE PLAN"
    );

    // The last word is a prefix: 3 characters are enough for a rare word...
    assert!(names(&h.search("Pyh", "", "").await).contains(&"PYHÄSALMI MINE OY".to_string()));
    // ...and the word being typed narrows as it grows.
    assert_eq!(
        names(&h.search("Dynatrace Glo", "", "").await)[0],
        "Dynatrace Global Finance GmbH"
    );

    // Location narrowing: every result is in the city asked for, case and accents aside.
    let all = h.search("investment", "", "").await;
    let berlin = h.search("investment", "DE", "berlin").await;
    assert!(!berlin.is_empty());
    for e in &berlin {
        let a = e.address.as_ref().unwrap();
        assert_eq!(
            (a.country_code.as_str(), a.city.as_str()),
            ("DE", "Berlin"),
            "{}",
            e.legal_name
        );
    }
    assert_ne!(names(&all), names(&berlin));
    let saarbrucken = h.search("mees investment", "DE", "saarbrucken").await;
    assert_eq!(names(&saarbrucken)[0], "Mees Investment GmbH");
    // A country filter excludes the rest.
    assert!(h.search("Cetracore", "DE", "").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_search_requests_name_the_field() {
    let h = Harness::start(false).await;
    let token = h.token("uma.user@contoso.com").await;
    let mut client = h.client();
    for (req, field) in [
        (
            cosell_proto::directory::SearchEntitiesRequest {
                query: "a".into(),
                ..Default::default()
            },
            "query",
        ),
        (
            cosell_proto::directory::SearchEntitiesRequest {
                query: "acme".into(),
                country_code: "Germany".into(),
                ..Default::default()
            },
            "country_code",
        ),
        (
            cosell_proto::directory::SearchEntitiesRequest {
                query: "acme".into(),
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
    ] {
        let s = client
            .search_entities(cosell_testkit::authed(&token, req))
            .await
            .unwrap_err();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        use tonic_types::StatusExt;
        let v = s
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .clone();
        assert_eq!(v[0].field, field, "{s:?}");
    }
    // No token: unauthenticated.
    let s = client
        .search_entities(cosell_proto::directory::SearchEntitiesRequest {
            query: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
}
