//! The positional row reader of the API's gets and lists reads what sea-orm's derived reader
//! reads, column for column, for rows with every column set and with every nullable one null.

use chrono::{TimeZone, Utc};
use cosell_deals::store::entities::referral;
use cosell_deals::store::migration::Migrator;
use cosell_testkit::TestDb;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, EntityTrait, FromQueryResult, Iterable, QueryTrait,
};

/// Every text column a different value, so that two columns read in each other's place differ.
fn full(id: &str) -> referral::Model {
    let at = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
    referral::Model {
        id: id.into(),
        organization: "organization".into(),
        mpn_location: Some("mpn location".into()),
        party: "party".into(),
        engagement: "engagement".into(),
        direction: "direction".into(),
        deal_type: "deal type".into(),
        status: "status".into(),
        substatus: "substatus".into(),
        status_reason: "status reason".into(),
        display_name: "display name".into(),
        customer_entity: Some("customer entity".into()),
        customer_name: "customer name".into(),
        customer_search: "customer search".into(),
        customer_json: "customer json".into(),
        consent_to_share: true,
        assistance_json: Some("assistance json".into()),
        solutions_json: "solutions json".into(),
        team_json: "team json".into(),
        team_emails: "team emails".into(),
        deal_value_cents: Some(12_345),
        currency: "currency".into(),
        estimated_close_date: Some("estimated close date".into()),
        notes: "notes".into(),
        seller_contact_json: Some("seller contact json".into()),
        create_time: at(1),
        update_time: at(2),
        accept_time: Some(at(3)),
        close_time: Some(at(4)),
        expire_time: Some(at(5)),
        version: 7,
        external_reference_id: "external reference id".into(),
        psc_deal_id: Some(format!("psc deal of {id}")),
        request_key: Some(format!("request key of {id}")),
    }
}

fn sparse(id: &str) -> referral::Model {
    referral::Model {
        mpn_location: None,
        customer_entity: None,
        consent_to_share: false,
        assistance_json: None,
        deal_value_cents: None,
        estimated_close_date: None,
        seller_contact_json: None,
        accept_time: None,
        close_time: None,
        expire_time: None,
        psc_deal_id: None,
        request_key: None,
        ..full(id)
    }
}

#[tokio::test]
async fn the_positional_reader_reads_what_the_derived_one_does() {
    let test_db = TestDb::new().await.unwrap();
    let db = cosell_platform::db::connect_and_migrate::<Migrator>(&test_db.url)
        .await
        .unwrap();
    let written = [full("a"), sparse("b")];
    for m in &written {
        let mut active: referral::ActiveModel = m.clone().into();
        active.request_key = Set(m.request_key.clone());
        referral::Entity::insert(active)
            .exec_without_returning(&db)
            .await
            .unwrap();
    }
    let select = referral::Entity::find().build(db.get_database_backend());
    let rows = db.query_all_raw(select).await.unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let derived = referral::Model::from_query_result(row, "").unwrap();
        let (positional, next) = referral::read_row(row).unwrap();
        assert_eq!(positional, derived);
        let expected = written.iter().find(|m| m.id == derived.id).unwrap();
        assert_eq!(&positional, expected);
        // The select's own columns would start right after the referral's.
        assert_eq!(next, referral::Column::iter().count());
    }
}
