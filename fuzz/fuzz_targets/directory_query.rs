//! The directory's search query on any input, as `SearchEntities` takes it: the first four
//! bytes are the page size, the rest the query, country code, region and city, separated by
//! 0xFF (each read as UTF-8 the way the protobuf decoder would have refused or taken it).
//!
//! `parse_search` must refuse or normalize every request without panicking, and what it lets
//! through must search an index (a few real-looking entities in memory) without error: at most
//! the page's size of results, only from the asked country, each with a finite score. The
//! name key (customer matching's) of the same text must be built without panicking too.
#![no_main]

use std::sync::OnceLock;

use cosell_directory::api::{MAX_RESULTS, parse_search};
use cosell_directory::domain::{Entity, name_key::NameKey};
use cosell_directory::index::SearchIndex;
use cosell_proto::directory::SearchEntitiesRequest;
use libfuzzer_sys::fuzz_target;

fn index() -> &'static SearchIndex {
    static INDEX: OnceLock<SearchIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let index = SearchIndex::open(None).expect("an index in memory");
        let entity = |id: &str, name: &str, others: &[&str], city: &str, country: &str| Entity {
            id: id.into(),
            legal_name: name.into(),
            other_names: others.iter().map(|s| s.to_string()).collect(),
            address_lines: vec![],
            city: city.into(),
            region: String::new(),
            postal_code: String::new(),
            country: country.into(),
            address_generated: false,
        };
        index
            .upsert(&[
                entity(
                    "529900T8BM49AURSDO55",
                    "Contoso Holding GmbH",
                    &["Contoso"],
                    "Berlin",
                    "DE",
                ),
                entity(
                    "5493001KJTIIGC8Y1R12",
                    "Fabrikam, Inc.",
                    &[],
                    "Seattle",
                    "US",
                ),
                entity(
                    "213800D1EI4B9WTWWD28",
                    "The Northwind Traders Limited",
                    &["Northwind"],
                    "London",
                    "GB",
                ),
                entity(
                    "969500Q2PFTTP0Y5QL44",
                    "Société Générale S.A.",
                    &[],
                    "Paris",
                    "FR",
                ),
                entity(
                    "549300GKFG0RYRRQ1414",
                    "北京 Alpine Ski House 株式会社",
                    &[],
                    "東京",
                    "JP",
                ),
            ])
            .expect("the entities indexed");
        index.commit(1).expect("committed");
        index
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let page_size = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let mut texts = data[4..]
        .split(|b| *b == 0xFF)
        .map(|b| String::from_utf8(b.to_vec()));
    let mut next = || texts.next().and_then(Result::ok).unwrap_or_default();
    let request = SearchEntitiesRequest {
        query: next(),
        country_code: next(),
        region: next(),
        city: next(),
        page_size,
    };
    let country = request.country_code.trim().to_ascii_uppercase();
    let _ = NameKey::of(&request.query, &country);

    let Ok(query) = parse_search(&request) else {
        return;
    };
    assert!(query.limit <= MAX_RESULTS, "a page of {}", query.limit);
    let found = index()
        .search(&query)
        .expect("a search the parser let through");
    assert!(
        found.len() <= query.limit,
        "{} results for a page of {}",
        found.len(),
        query.limit
    );
    for (entity, score) in &found {
        assert!(score.is_finite(), "score {score} for {}", entity.id);
        if let Some(country) = &query.country {
            assert_eq!(&entity.country, country, "a result from another country");
        }
    }
});
