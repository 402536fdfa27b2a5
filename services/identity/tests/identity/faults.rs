//! A database that goes away: calls answer `UNAVAILABLE` (retryable), never `INTERNAL`, and the
//! service recovers by itself when the database is back. PostgreSQL only (a SQLite file does
//! not go away); CI runs it.

use std::time::Duration;

use cosell_proto::identity as pb;
use cosell_testkit::proxy::TcpProxy;
use cosell_testkit::{DATABASE_URL_VAR, TestDb, authed};
use tonic::Code;

use crate::harness::{Harness, reason};

#[tokio::test]
async fn a_database_outage_is_unavailable_and_recovers_by_itself() {
    let Ok(admin) = std::env::var(DATABASE_URL_VAR) else {
        eprintln!("skipped: needs {DATABASE_URL_VAR} (PostgreSQL)");
        return;
    };
    let db = TestDb::postgres(&admin).await.unwrap();
    let (proxy, url) = TcpProxy::in_front_of(&db.url).await.unwrap();
    let h = Harness::start_with(|c| c.database_url = url).await;
    let ada = h.token("ada.admin@contoso.com").await;
    let org = h.org("contoso.com").await;
    let list = || {
        let mut users = h.users();
        let req = authed(
            &ada,
            pb::ListUsersRequest {
                parent: org.clone(),
                ..Default::default()
            },
        );
        async move { users.list_users(req).await }
    };
    list().await.expect("works while the database is up");

    proxy.cut();
    let mut req_deadline = std::time::Instant::now() + Duration::from_secs(60);
    let err = loop {
        match list().await {
            Ok(_) if std::time::Instant::now() < req_deadline => continue,
            Ok(_) => panic!("still answering a minute after the database went away"),
            Err(s) => break s,
        }
    };
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(reason(&err), "DATABASE_UNAVAILABLE");

    proxy.restore();
    req_deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match list().await {
            Ok(_) => break,
            Err(s) if s.code() == Code::Unavailable && std::time::Instant::now() < req_deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(s) => panic!("did not recover: {s:?}"),
        }
    }
}
