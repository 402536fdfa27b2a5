//! Expiry (D2) with an injected clock: an Inbound referral expires right after its period and
//! not a second before, is announced once, a co-sell request nobody answers expires on the
//! platform's side while the partner's referral goes on as PARTNER_LED, and two sweepers on
//! one database expire and announce each referral once.

use std::sync::Arc;

use chrono::Duration;
use cosell_platform::clock::{Clock, ManualClock, SharedClock};
use cosell_proto::deals as pb;
use cosell_testkit::{TestDb, authed};

use crate::harness::*;

async fn feed(h: &Harness, email: &str, parent: &str) -> Vec<pb::ReferralEvent> {
    let token = h.token(email).await;
    h.events()
        .list_events(authed(
            &token,
            pb::ListEventsRequest {
                parent: parent.into(),
                after: String::new(),
                page_size: 1_000,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events
}

fn count(events: &[pb::ReferralEvent], kind: pb::EventKind, name: &str) -> usize {
    events
        .iter()
        .filter(|e| e.kind() == kind && e.referral.as_ref().unwrap().name == name)
        .count()
}

#[tokio::test]
async fn an_inbound_referral_expires_right_after_its_period_and_is_announced_once() {
    let clock = ManualClock::new();
    let h = Harness::start_with(TestDb::new().await.unwrap(), clock.clone()).await;
    let sent = h.send_inbound("").await;
    let created = h.get(RITA, &sent.name).await.unwrap();
    let expire = created.expire_time.unwrap();
    let start = clock.now();
    assert_eq!(expire.seconds - start.timestamp(), 14 * 86_400, "14 days");

    // 11 days on: not yet within the notice (3 days).
    clock.advance(Duration::days(11) - Duration::seconds(1));
    h.deals.sweep_once().await.unwrap();
    assert_eq!(
        count(
            &feed(&h, RITA, &h.contoso).await,
            pb::EventKind::ExpiringSoon,
            &sent.name
        ),
        0
    );
    // Within it: announced, once however often the sweeper passes.
    clock.advance(Duration::seconds(1));
    for _ in 0..3 {
        h.deals.sweep_once().await.unwrap();
    }
    let events = feed(&h, RITA, &h.contoso).await;
    assert_eq!(count(&events, pb::EventKind::ExpiringSoon, &sent.name), 1);

    // One second before the expiry time: still waiting.
    clock.set(start + Duration::days(14) - Duration::seconds(1));
    h.deals.sweep_once().await.unwrap();
    let r = h.get(RITA, &sent.name).await.unwrap();
    assert_eq!(
        (r.status(), r.substatus()),
        (pb::Status::New, pb::Substatus::Received)
    );

    // At it: CLOSED/EXPIRED, one EXPIRED event, and the sender's side closed too.
    clock.advance(Duration::seconds(1));
    h.deals.sweep_once().await.unwrap();
    h.deals.sweep_once().await.unwrap();
    let r = h.get(RITA, &sent.name).await.unwrap();
    assert_eq!(
        (r.status(), r.substatus()),
        (pb::Status::Closed, pb::Substatus::Expired)
    );
    let events = feed(&h, RITA, &h.contoso).await;
    assert_eq!(count(&events, pb::EventKind::Expired, &sent.name), 1);
    let expired = events
        .iter()
        .rfind(|e| e.kind() == pb::EventKind::Expired)
        .unwrap();
    assert_eq!(expired.actor, "system");
    let platform = feed(&h, SAM, "platform").await;
    assert!(
        platform.iter().any(|e| e.kind() == pb::EventKind::Expired
            && e.referral.as_ref().unwrap().party() == pb::Party::Platform),
        "the sender's side is told"
    );
}

#[tokio::test]
async fn an_unanswered_co_sell_request_expires_on_the_platforms_side_only() {
    let clock = ManualClock::new();
    let h = Harness::start_with(TestDb::new().await.unwrap(), clock.clone()).await;
    let r = h
        .create(RITA, h.complete(pb::DealType::CoSell, &h.contoso_solution))
        .await;
    clock.advance(Duration::days(14));
    h.deals.sweep_once().await.unwrap();
    let partner = h.get(RITA, &r.name).await.unwrap();
    assert_eq!(partner.status(), pb::Status::Active);
    assert_eq!(partner.deal_type(), pb::DealType::PartnerLed);
    assert!(partner.expire_time.is_none());
    assert!(
        h.queue().await.iter().all(|q| q.engagement != r.engagement),
        "the request left the sellers' queue"
    );
    let events = feed(&h, RITA, &h.contoso).await;
    assert_eq!(count(&events, pb::EventKind::Expired, &r.name), 1);
}

#[tokio::test]
async fn two_sweepers_on_one_database_expire_and_announce_each_referral_once() {
    let db = TestDb::new().await.unwrap();
    if !db.is_postgres() {
        // Two services cannot share an in-memory SQLite database.
        return;
    }
    let clock = ManualClock::new();
    let h = Harness::start_with(db, clock.clone()).await;
    let mut sent = Vec::new();
    for _ in 0..6 {
        sent.push(h.send_inbound("").await);
    }
    let other = h.replica(clock.clone() as SharedClock).await;
    let (a, b): (Arc<cosell_deals::Deals>, Arc<cosell_deals::Deals>) =
        (h.deals.clone(), other.deals.clone());

    clock.advance(Duration::days(12));
    let (x, y) = tokio::join!(a.sweep_once(), b.sweep_once());
    assert_eq!(x.unwrap().announced + y.unwrap().announced, 6);
    clock.advance(Duration::days(2));
    let (x, y) = tokio::join!(a.sweep_once(), b.sweep_once());
    assert_eq!(x.unwrap().expired + y.unwrap().expired, 6);

    let events = feed(&h, RITA, &h.contoso).await;
    for r in &sent {
        assert_eq!(count(&events, pb::EventKind::ExpiringSoon, &r.name), 1);
        assert_eq!(count(&events, pb::EventKind::Expired, &r.name), 1);
    }
}
