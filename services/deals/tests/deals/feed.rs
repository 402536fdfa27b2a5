//! The change feed (SPEC 3.6): events in order with the referral after each change, only what
//! the caller may read, a watch dropped and resumed with its last cursor missing and repeating
//! nothing, a restarted service resumed the same way, and cursors past the retention.

use std::time::Duration;

use cosell_platform::clock::ManualClock;
use cosell_proto::deals as pb;
use cosell_testkit::{TestDb, authed};
use tokio_stream::StreamExt;

use crate::harness::*;

async fn list(h: &Harness, email: &str, parent: &str, after: &str) -> pb::ListEventsResponse {
    let token = h.token(email).await;
    h.events()
        .list_events(authed(
            &token,
            pb::ListEventsRequest {
                parent: parent.into(),
                after: after.into(),
                page_size: 1_000,
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

fn kinds(events: &[pb::ReferralEvent]) -> Vec<(pb::EventKind, String)> {
    events
        .iter()
        .map(|e| (e.kind(), e.referral.as_ref().unwrap().name.clone()))
        .collect()
}

async fn rename(h: &Harness, email: &str, r: &pb::Referral, name: &str) -> pb::Referral {
    let token = h.token(email).await;
    h.referrals()
        .update_referral(authed(
            &token,
            pb::UpdateReferralRequest {
                referral: Some(pb::Referral {
                    name: r.name.clone(),
                    display_name: name.into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into()],
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap()
}

#[tokio::test]
async fn each_change_is_an_event_in_order_with_the_referral_after_it() {
    let h = Harness::start().await;
    let r = h
        .create(
            RITA,
            h.complete(pb::DealType::PartnerLed, &h.contoso_solution),
        )
        .await;
    let renamed = rename(&h, RITA, &r, "Renamed deal").await;
    let page = list(&h, RITA, &h.contoso, "").await;
    assert_eq!(
        kinds(&page.events),
        [
            (pb::EventKind::Created, r.name.clone()),
            (pb::EventKind::Updated, r.name.clone()),
        ]
    );
    let updated = &page.events[1];
    assert_eq!(updated.changed_fields, ["display_name"]);
    assert_eq!(
        updated.referral.as_ref().unwrap().display_name,
        "Renamed deal"
    );
    assert_eq!(updated.referral.as_ref().unwrap().etag, renamed.etag);
    assert!(updated.actor.contains("/users/"), "{}", updated.actor);
    assert_eq!(page.next_cursor, updated.cursor);

    // After the last cursor: nothing, and the same cursor to go on from.
    let rest = list(&h, RITA, &h.contoso, &page.next_cursor).await;
    assert!(rest.events.is_empty());
    assert_eq!(rest.next_cursor, page.next_cursor);
    // After the first: the second only.
    let after_first = list(&h, RITA, &h.contoso, &page.events[0].cursor).await;
    assert_eq!(kinds(&after_first.events), kinds(&page.events[1..]));
}

#[tokio::test]
async fn nobody_sees_the_events_of_a_referral_they_cannot_read() {
    let h = Harness::start().await;
    // Contoso's org-wide private deal, and inbound referrals of its locations 4000003 and
    // 4000002.
    let private = h
        .create(RITA, h.complete(pb::DealType::Private, &h.contoso_solution))
        .await;
    let located = h.send_inbound("4000003").await;
    h.send_inbound("4000002").await;

    let org_wide = list(&h, RITA, &h.contoso, "").await;
    let names: Vec<String> = kinds(&org_wide.events).into_iter().map(|k| k.1).collect();
    assert!(names.contains(&private.name) && names.contains(&located.name));

    // Leo holds a role of location 4000003 only: its referral, no other.
    let leo = list(&h, LEO, &h.contoso, "").await;
    let names: Vec<String> = kinds(&leo.events).into_iter().map(|k| k.1).collect();
    assert_eq!(names, std::slice::from_ref(&located.name));

    // Another organization's user: Contoso's feed does not exist for them; their own is empty.
    let fay = h.token(FAY).await;
    let err = h
        .events()
        .list_events(authed(
            &fay,
            pb::ListEventsRequest {
                parent: h.contoso.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(list(&h, FAY, &h.fabrikam, "").await.events.is_empty());

    // Platform users: the platform's side and shared deals, never the PRIVATE one.
    let platform = list(&h, SAM, "platform", "").await;
    let names: Vec<String> = kinds(&platform.events).into_iter().map(|k| k.1).collect();
    assert!(!names.contains(&private.name), "{names:?}");
    assert!(!names.is_empty());

    // A cursor that is not one: INVALID_ARGUMENT naming `after`.
    let rita = h.token(RITA).await;
    let err = h
        .events()
        .list_events(authed(
            &rita,
            pb::ListEventsRequest {
                parent: h.contoso.clone(),
                after: "not-a-cursor".into(),
                page_size: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(details(&err).1, ["after"]);
}

async fn watch(h: &Harness, email: &str, after: &str) -> tonic::Streaming<pb::WatchEventsResponse> {
    let token = h.token(email).await;
    h.events()
        .watch_events(authed(
            &token,
            pb::WatchEventsRequest {
                parent: h.contoso.clone(),
                after: after.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn next(stream: &mut tonic::Streaming<pb::WatchEventsResponse>) -> pb::ReferralEvent {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("an event within 20 s")
        .expect("the stream goes on")
        .expect("an event, not an error")
        .event
        .unwrap()
}

#[tokio::test]
async fn a_watch_dropped_and_resumed_with_its_last_cursor_misses_and_repeats_nothing() {
    let h = Harness::start().await;
    let first = h
        .create(
            RITA,
            h.complete(pb::DealType::PartnerLed, &h.contoso_solution),
        )
        .await;
    // From the start: the backlog, then live events.
    let mut stream = watch(&h, RITA, "").await;
    // An empty cursor means from now on: the create before the watch is not sent.
    let r = h
        .create(
            RITA,
            h.complete(pb::DealType::PartnerLed, &h.contoso_solution),
        )
        .await;
    let created = next(&mut stream).await;
    assert_eq!(created.kind(), pb::EventKind::Created);
    assert_eq!(created.referral.as_ref().unwrap().name, r.name);
    let mut seen = vec![created.cursor.clone()];
    for i in 0..3 {
        rename(&h, RITA, &r, &format!("Name {i}")).await;
        seen.push(next(&mut stream).await.cursor);
    }
    let last = seen.last().unwrap().clone();
    drop(stream);

    // Changes while nobody watches, then a watch from the last cursor.
    for i in 3..6 {
        rename(&h, RITA, &r, &format!("Name {i}")).await;
    }
    rename(&h, RITA, &first, "First renamed").await;
    let mut resumed = watch(&h, RITA, &last).await;
    let mut names = Vec::new();
    for _ in 0..4 {
        let e = next(&mut resumed).await;
        assert!(!seen.contains(&e.cursor), "repeated {}", e.cursor);
        seen.push(e.cursor);
        names.push(e.referral.unwrap().display_name);
    }
    assert_eq!(names, ["Name 3", "Name 4", "Name 5", "First renamed"]);
    // And the live ones after them.
    rename(&h, RITA, &r, "Live").await;
    assert_eq!(
        next(&mut resumed).await.referral.unwrap().display_name,
        "Live"
    );
    // Nothing more was sent: the whole feed, listed, is what was seen plus the first create.
    let all = list(&h, RITA, &h.contoso, "").await;
    assert_eq!(all.events.len(), seen.len() + 2);
}

#[tokio::test]
async fn a_client_resumes_across_a_restart_of_the_deals_service() {
    let db = TestDb::new().await.unwrap();
    if !db.is_postgres() {
        // An in-memory SQLite database does not outlive its service.
        return;
    }
    let h = Harness::start_on(db).await;
    let r = h
        .create(
            RITA,
            h.complete(pb::DealType::PartnerLed, &h.contoso_solution),
        )
        .await;
    let before = list(&h, RITA, &h.contoso, "").await;
    let cursor = before.next_cursor.clone();

    // Another deals service on the same database, started fresh (nothing in memory), takes
    // the second batch of changes and answers the resumed client.
    let restarted = h.replica(cosell_platform::clock::system()).await;
    let server = cosell_testkit::TestServer::start(
        restarted.services,
        std::sync::Arc::new(cosell_platform::auth::TokenVerifier::new(
            std::sync::Arc::new(cosell_platform::auth::RemoteKeys::new(
                h.server.channel.clone(),
            )),
        )),
    )
    .await
    .unwrap();
    let token = h.token(RITA).await;
    let mut referrals =
        pb::referral_service_client::ReferralServiceClient::new(server.channel.clone());
    for i in 0..3 {
        referrals
            .update_referral(authed(
                &token,
                pb::UpdateReferralRequest {
                    referral: Some(pb::Referral {
                        name: r.name.clone(),
                        notes: format!("batch two, {i}"),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["notes".into()],
                    }),
                },
            ))
            .await
            .unwrap();
    }
    let resumed = pb::event_service_client::EventServiceClient::new(server.channel.clone())
        .list_events(authed(
            &token,
            pb::ListEventsRequest {
                parent: h.contoso.clone(),
                after: cursor,
                page_size: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let notes: Vec<String> = resumed
        .events
        .iter()
        .map(|e| e.referral.as_ref().unwrap().notes.clone())
        .collect();
    assert_eq!(notes, ["batch two, 0", "batch two, 1", "batch two, 2"]);
}

#[tokio::test]
async fn a_cursor_older_than_the_retention_is_out_of_range() {
    let clock = ManualClock::new();
    let h = Harness::start_with(TestDb::new().await.unwrap(), clock.clone()).await;
    let r = h
        .create(
            RITA,
            h.complete(pb::DealType::PartnerLed, &h.contoso_solution),
        )
        .await;
    let old = list(&h, RITA, &h.contoso, "").await.next_cursor;
    rename(&h, RITA, &r, "Still within").await;
    // 31 days later the two events are past the retention (30 days) and pruned.
    clock.advance(chrono::Duration::days(31));
    h.deals.sweep_once().await.unwrap();
    let rita = h.token(RITA).await;
    let err = h
        .events()
        .list_events(authed(
            &rita,
            pb::ListEventsRequest {
                parent: h.contoso.clone(),
                after: old,
                page_size: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange);
    // A fresh start sees only what came after the pruning.
    rename(&h, RITA, &r, "After").await;
    let fresh = list(&h, RITA, &h.contoso, "").await;
    assert_eq!(
        kinds(&fresh.events),
        [(pb::EventKind::Updated, r.name.clone())]
    );
}
