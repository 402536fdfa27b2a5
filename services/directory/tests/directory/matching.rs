//! `MatchEntities` through the server: a customer typed as people type it links to the one
//! entity with its name key in its country, never by a guess (SPEC 5.4).

use cosell_proto::directory as pb;
use cosell_testkit::{authed, refusal};
use pb::{CandidateReason as Why, MatchOutcome as Outcome};

use crate::harness::Harness;

const ENTITIES: &str = "\
LEI,Entity.LegalName,Entity.LegalAddress.City,Entity.LegalAddress.Country,Cosell.AddressGenerated,Entity.OtherEntityNames.OtherEntityName.1
HWMACHINETOOLS000001,H.W. MACHINE TOOLS LIMITED,Leeds,GB,false,
TRINITYDISTRIBUTION1,\"Trinity Distribution Services, Inc.\",Dallas,US,false,
MULLERMUNCHEN0000001,Müller Maschinenbau GmbH,München,DE,false,
MULLERBERLIN00000001,Müller Maschinenbau GmbH,Berlin,DE,false,
NORDWINDAG0000000001,Nordwind Handel AG,Hamburg,DE,true,
NORDWINDGMBH00000001,Nordwind Handel GmbH,Köln,DE,false,
ACMELLC0000000000001,Acme LLC,Boston,US,false,
FABRIKAMHOLDINGS0001,Fabrikam Holdings PLC,London,GB,false,Fabrikam
";

fn customer(name: &str, country: &str, city: &str) -> pb::CustomerName {
    pb::CustomerName {
        name: name.into(),
        country_code: country.into(),
        city: city.into(),
    }
}

/// The outcome, the matched entity's id (or ""), and the candidates' ids with their reasons.
type Seen = (Outcome, String, Vec<(String, Why)>);

fn seen(m: &pb::EntityMatch) -> Seen {
    let id = |e: &pb::LegalEntity| e.name.trim_start_matches("entities/").to_owned();
    (
        m.outcome(),
        m.entity.as_ref().map(id).unwrap_or_default(),
        m.candidates
            .iter()
            .map(|c| (id(c.entity.as_ref().unwrap()), c.reason()))
            .collect(),
    )
}

fn matched(id: &str) -> Seen {
    (Outcome::Matched, id.into(), Vec::new())
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_link_as_a_person_would_link_them() {
    let h = Harness::start(false).await;
    let oli = h.token("oli.operator@platform.example").await;
    h.load(&oli, ENTITIES.as_bytes().to_vec()).await.unwrap();
    let uma = h.token("uma.user@contoso.com").await;
    let cases: Vec<(pb::CustomerName, Seen)> = vec![
        // Punctuation, spacing, case and an abbreviated form.
        (
            customer("HW Machine Tools Ltd", "GB", ""),
            matched("HWMACHINETOOLS000001"),
        ),
        (
            customer("h w machine-tools limited", "gb", "Leeds"),
            matched("HWMACHINETOOLS000001"),
        ),
        // No form at all, and the form written out.
        (
            customer("Trinity Distribution Services", "US", ""),
            matched("TRINITYDISTRIBUTION1"),
        ),
        (
            customer("TRINITY DISTRIBUTION SERVICES INCORPORATED", "US", ""),
            matched("TRINITYDISTRIBUTION1"),
        ),
        // Not in another country.
        (
            customer("HW Machine Tools Ltd", "US", ""),
            (Outcome::NotFound, String::new(), Vec::new()),
        ),
        // Two entities with one key: no guess; the city tells them apart (accents aside).
        (
            customer("Muller Maschinenbau GmbH", "DE", ""),
            (
                Outcome::Ambiguous,
                String::new(),
                vec![
                    ("MULLERBERLIN00000001".into(), Why::SameName),
                    ("MULLERMUNCHEN0000001".into(), Why::SameName),
                ],
            ),
        ),
        (
            customer("Muller Maschinenbau GmbH", "DE", "Munchen"),
            matched("MULLERMUNCHEN0000001"),
        ),
        (
            customer("Muller Maschinenbau GmbH", "DE", "Frankfurt"),
            (
                Outcome::NotFound,
                String::new(),
                vec![
                    ("MULLERBERLIN00000001".into(), Why::OtherCity),
                    ("MULLERMUNCHEN0000001".into(), Why::OtherCity),
                ],
            ),
        ),
        // A generated address says nothing of the city.
        (
            customer("Nordwind Handel AG", "DE", "Stuttgart"),
            matched("NORDWINDAG0000000001"),
        ),
        // Without a form, two entities have the rest: no guess.
        (
            customer("Nordwind Handel", "DE", ""),
            (
                Outcome::Ambiguous,
                String::new(),
                vec![
                    ("NORDWINDAG0000000001".into(), Why::SameName),
                    ("NORDWINDGMBH00000001".into(), Why::SameName),
                ],
            ),
        ),
        // Another legal form is another company: offered, not linked.
        (
            customer("Acme Inc", "US", ""),
            (
                Outcome::NotFound,
                String::new(),
                vec![("ACMELLC0000000000001".into(), Why::OtherLegalForm)],
            ),
        ),
        // Other names count.
        (
            customer("Fabrikam", "GB", ""),
            matched("FABRIKAMHOLDINGS0001"),
        ),
    ];
    let answer = h
        .client()
        .match_entities(authed(
            &uma,
            pb::MatchEntitiesRequest {
                customers: cases.iter().map(|(c, _)| c.clone()).collect(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.matches.len(), cases.len());
    for ((c, want), got) in cases.iter().zip(&answer.matches) {
        let mut got = seen(got);
        got.2.sort_by(|a, b| a.0.cmp(&b.0));
        // Similar names may follow the candidates that have a reason of their own.
        if want.0 == Outcome::NotFound {
            got.2.retain(|(_, why)| *why != Why::SimilarName);
        }
        assert_eq!(&got, want, "{c:?}");
    }
    // A matched entity comes whole; a candidate too.
    let m = &answer.matches[0];
    assert_eq!(
        m.entity.as_ref().unwrap().legal_name,
        "H.W. MACHINE TOOLS LIMITED"
    );
    let similar = &answer.matches[4];
    assert!(
        similar.candidates.is_empty(),
        "nothing near in the US: {similar:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_name_the_field() {
    let h = Harness::start(false).await;
    let uma = h.token("uma.user@contoso.com").await;
    let refused = |customers: Vec<pb::CustomerName>| {
        let mut client = h.client();
        let uma = uma.clone();
        async move {
            let status = client
                .match_entities(authed(&uma, pb::MatchEntitiesRequest { customers }))
                .await
                .unwrap_err();
            let r = refusal(&status);
            assert_eq!(r.code, tonic::Code::InvalidArgument, "{status:?}");
            r.fields().into_iter().map(String::from).collect::<Vec<_>>()
        }
    };
    assert_eq!(refused(Vec::new()).await, ["customers"]);
    assert_eq!(
        refused(vec![customer("Acme", "US", ""); 1001]).await,
        ["customers"]
    );
    assert_eq!(
        refused(vec![
            customer("Acme", "US", ""),
            customer("Acme", "UK", ""),
            customer(" ", "", ""),
        ])
        .await,
        [
            "customers[1].country_code",
            "customers[2].name",
            "customers[2].country_code"
        ]
    );
    // Over a documented limit: refused before the request is looked at.
    assert_eq!(
        refused(vec![customer("Acme", "US", &"x".repeat(201))]).await,
        ["customers[0].city"]
    );
    // Without a token: refused before anything is read.
    let status = h
        .client()
        .match_entities(pb::MatchEntitiesRequest {
            customers: vec![customer("Acme", "US", "")],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}

/// The evaluation set made from the bundled sample (`scripts/make_match_set.py --sample`):
/// nothing linked wrong, and at least 95% of the names unambiguous in their country linked.
#[test]
fn the_sample_evaluation_set_links_right_or_not_at_all() {
    use cosell_directory::evaluation::{evaluate, read};
    use cosell_directory::index::SearchIndex;
    use cosell_directory::load::{Row, Rows};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let index = SearchIndex::open(None).unwrap();
    let entities: Vec<_> = Rows::new(cosell_directory::SAMPLE)
        .unwrap()
        .filter_map(|r| match r {
            Row::Entity(e) => Some(e),
            Row::Error(_) => None,
        })
        .collect();
    index.upsert(&entities).unwrap();
    index.commit(1).unwrap();
    let set = read(&root.join("data/match-eval-sample.csv")).unwrap();
    let e = evaluate(&index, &set).unwrap();
    println!("{}", e.table());
    assert!(e.by_kind.len() >= 7, "every variant: {:?}", e.by_kind.len());
    assert_eq!(e.all.wrong, 0, "linked wrong: {:#?}", e.wrong);
    assert!(
        e.all.unambiguous_linked() >= 0.95,
        "{}\nmissed: {:#?}",
        e.table(),
        e.missed
    );
}
