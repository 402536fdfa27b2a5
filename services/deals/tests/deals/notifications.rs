//! Notifications: who is told of a new Inbound referral and of its expiry (only users who can
//! read it), listing with the unread count, and marking read by name and up to a time.

use chrono::Duration;
use cosell_platform::clock::ManualClock;
use cosell_proto::deals as pb;
use cosell_testkit::{TestDb, authed};

use crate::harness::*;

async fn caught_up(h: &Harness) {
    // Writers do not wait for their events' numbers; the deriver reads numbered events only.
    h.deals.store.sequence().await.unwrap();
    let head = h.deals.store.feed_head().await.unwrap();
    // The service's own deriver runs too: a batch it takes from under this one is derived
    // when its position moved past the head.
    while h.deals.store.notified_through().await.unwrap() < head {
        if h.deals.notify_once().await.unwrap() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

async fn notifications(
    h: &Harness,
    email: &str,
    unread_only: bool,
) -> pb::ListNotificationsResponse {
    let token = h.token(email).await;
    pb::notification_service_client::NotificationServiceClient::new(h.server.channel.clone())
        .list_notifications(authed(
            &token,
            pb::ListNotificationsRequest {
                unread_only,
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

fn about(list: &pb::ListNotificationsResponse, name: &str) -> Vec<pb::NotificationKind> {
    list.notifications
        .iter()
        .filter(|n| n.subject == name)
        .map(|n| n.kind())
        .collect()
}

#[tokio::test]
async fn only_the_users_who_can_read_a_referral_are_told_of_it() {
    let clock = ManualClock::new();
    let h = Harness::start_with(TestDb::new().await.unwrap(), clock.clone()).await;
    // An Inbound referral of location 4000003.
    let sent = h.send_inbound("4000003").await;
    caught_up(&h).await;
    use pb::NotificationKind as K;
    // Rita (org-wide admin) and Leo (admin of 4000003) are told; Uma (user of 4000002), Ada
    // (no referrals role) and Fay (another organization) are not.
    assert_eq!(
        about(&notifications(&h, RITA, false).await, &sent.name),
        [K::NewInboundReferral]
    );
    assert_eq!(
        about(&notifications(&h, LEO, false).await, &sent.name),
        [K::NewInboundReferral]
    );
    for email in [UMA, ADA, FAY] {
        assert!(
            notifications(&h, email, false)
                .await
                .notifications
                .is_empty(),
            "{email}"
        );
    }

    // Nobody answers: expiring soon, then expired, told to the admins who can read it.
    clock.advance(Duration::days(12));
    h.deals.sweep_once().await.unwrap();
    clock.advance(Duration::days(2));
    h.deals.sweep_once().await.unwrap();
    caught_up(&h).await;
    let rita = notifications(&h, RITA, false).await;
    assert_eq!(
        about(&rita, &sent.name),
        [K::Expired, K::ExpiringSoon, K::NewInboundReferral],
        "newest first"
    );
    assert_eq!(rita.unread_count, 3);
    assert!(
        rita.notifications[0]
            .summary
            .contains("Migration to the cloud")
    );
    assert!(notifications(&h, UMA, false).await.notifications.is_empty());
    // The seller who sent it is told it expired (D2), and of nothing before.
    assert_eq!(
        about(&notifications(&h, SAM, false).await, &sent.name),
        [K::Expired]
    );
    // Derived once, however often the deriver runs.
    caught_up(&h).await;
    assert_eq!(notifications(&h, RITA, false).await.notifications.len(), 3);
    assert_eq!(notifications(&h, SAM, false).await.notifications.len(), 1);
}

#[tokio::test]
async fn the_seller_is_told_when_the_partner_declines_the_referral_sent() {
    let h = Harness::start().await;
    let declined = h.send_inbound("").await;
    let waiting = h.send_inbound("").await;
    // The senders are recorded by the deriver from the creations, before any answer.
    caught_up(&h).await;
    h.decline(RITA, &declined.name, "no capacity").await;
    caught_up(&h).await;
    let sam = notifications(&h, SAM, false).await;
    assert_eq!(
        about(&sam, &declined.name),
        [pb::NotificationKind::ReferralDeclined]
    );
    assert!(sam.notifications[0].summary.contains("declined"));
    // A referral still waiting tells its sender nothing.
    assert!(about(&sam, &waiting.name).is_empty());
    // The partner's users are not told of their own decline.
    assert!(
        !about(&notifications(&h, RITA, false).await, &declined.name)
            .contains(&pb::NotificationKind::ReferralDeclined)
    );
}

#[tokio::test]
async fn notifications_are_marked_read_by_name_or_up_to_a_time() {
    let h = Harness::start().await;
    for _ in 0..3 {
        h.send_inbound("").await;
    }
    caught_up(&h).await;
    let list = notifications(&h, RITA, false).await;
    assert_eq!((list.notifications.len(), list.unread_count), (3, 3));
    let client = || {
        pb::notification_service_client::NotificationServiceClient::new(h.server.channel.clone())
    };
    let rita = h.token(RITA).await;
    // The newest by name.
    let marked = client()
        .mark_notifications_read(authed(
            &rita,
            pb::MarkNotificationsReadRequest {
                names: vec![list.notifications[0].name.clone()],
                up_to_time: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .marked;
    assert_eq!(marked, 1);
    let unread = notifications(&h, RITA, true).await;
    assert_eq!((unread.notifications.len(), unread.unread_count), (2, 2));
    assert!(unread.notifications.iter().all(|n| n.read_time.is_none()));
    // Someone else cannot mark Rita's.
    let leo = h.token(LEO).await;
    let err = client()
        .mark_notifications_read(authed(
            &leo,
            pb::MarkNotificationsReadRequest {
                names: vec![list.notifications[1].name.clone()],
                up_to_time: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // The rest, up to the oldest's time... and the one already read is not counted again.
    let marked = client()
        .mark_notifications_read(authed(
            &rita,
            pb::MarkNotificationsReadRequest {
                names: vec![],
                up_to_time: list.notifications[0].create_time,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .marked;
    assert_eq!(marked, 2);
    assert_eq!(notifications(&h, RITA, false).await.unread_count, 0);
}

#[tokio::test]
async fn a_finished_migration_run_is_told_to_its_starter_once() {
    let h = Harness::start().await;
    let rita = h.token(RITA).await;
    let caller = cosell_proto::identity::access_service_client::AccessServiceClient::new(
        h.server.channel.clone(),
    )
    .get_caller(authed(&rita, cosell_proto::identity::GetCallerRequest {}))
    .await
    .unwrap()
    .into_inner();
    let run = format!("{}/dealMigrationRuns/{}", h.contoso, uuid::Uuid::now_v7());
    let request = |recipient: &str, failed: i64| pb::NotifyDealMigrationFinishedRequest {
        run: run.clone(),
        recipient: recipient.to_owned(),
        total: 1000,
        migrated: 1000 - failed,
        failed,
        finish_time: Some(prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 0,
        }),
    };
    let client = || {
        pb::notification_service_client::NotificationServiceClient::new(h.server.channel.clone())
    };
    let migration = h.migration_token().await;
    let tell = |token: String, req: pb::NotifyDealMigrationFinishedRequest| {
        let mut c = client();
        async move {
            c.notify_deal_migration_finished(authed(&token, req))
                .await
                .map(|r| r.into_inner().created)
        }
    };

    // Only the migration service tells it.
    let err = tell(rita.clone(), request(&caller.principal, 50))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(details(&err).0, "MIGRATION_ONLY");
    // A recipient of another organization, or a negative count, names its field.
    let other = format!(
        "organizations/{}/users/{}",
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7()
    );
    let err = tell(migration.clone(), request(&other, 50))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(details(&err).1, ["recipient"]);
    let err = tell(migration.clone(), request(&caller.principal, -1))
        .await
        .unwrap_err();
    assert_eq!(details(&err).1, ["failed"]);

    // Told once, however often the migration service tells it.
    assert!(
        tell(migration.clone(), request(&caller.principal, 50))
            .await
            .unwrap()
    );
    assert!(
        !tell(migration.clone(), request(&caller.principal, 50))
            .await
            .unwrap()
    );
    let list = notifications(&h, RITA, true).await;
    let told: Vec<_> = list
        .notifications
        .iter()
        .filter(|n| n.subject == run)
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].kind(), pb::NotificationKind::MigrationFinished);
    assert!(
        told[0]
            .summary
            .contains("950 of 1000 deals migrated, 50 failed"),
        "{}",
        told[0].summary
    );
    assert_eq!(told[0].create_time.unwrap().seconds, 1_800_000_000);
    // Nobody else.
    assert!(about(&notifications(&h, LEO, false).await, &run).is_empty());
}
