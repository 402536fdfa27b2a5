//! Faults (issue 19). PostgreSQL restarted under a load of creates, updates and lists: while it
//! is down every call answers `UNAVAILABLE` (retryable; never `INTERNAL`, never a hang past
//! the client's deadline), the service recovers without a restart of its own, and every create
//! it acknowledged is there afterwards, once, retries by request id included. The deals
//! database runs on a cluster of the test's own (`PgCluster`), stopped at once as in a crash.
//! And identity or the directory unreachable (a proxy between deals and each, cut and
//! restored): `UNAVAILABLE` at once, recovered by itself.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cosell_proto::deals as pb;
use cosell_testkit::pg_cluster::PgCluster;
use cosell_testkit::{DATABASE_URL_VAR, TestDb, authed};
use prost_types::FieldMask;

use crate::harness::*;

/// Longer than any call should take; a call past it is a hang.
const CALL_DEADLINE: Duration = Duration::from_secs(15);

/// What the load saw.
#[derive(Default)]
struct Seen {
    /// Referrals whose create was answered.
    acknowledged: Mutex<Vec<String>>,
    /// Codes of the calls that failed.
    errors: Mutex<Vec<(tonic::Code, String)>>,
    /// Creates answered so far.
    creates: AtomicUsize,
}

impl Seen {
    fn failed(&self, s: &tonic::Status) {
        self.errors
            .lock()
            .unwrap()
            .push((s.code(), s.message().to_owned()));
    }
}

/// A call of `token` that gives up after [`CALL_DEADLINE`].
fn call<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut req = authed(token, message);
    req.set_timeout(CALL_DEADLINE);
    req
}

/// One client: create (retrying its request id until answered), update the new referral's
/// notes, list the first page; again until `stop`.
async fn client(h: Arc<Harness>, token: String, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let template = h.complete(pb::DealType::Private, &h.contoso_solution);
    let mut referrals = h.referrals();
    while !stop.load(Ordering::SeqCst) {
        let request_id = uuid::Uuid::new_v4().to_string();
        let created = loop {
            let req = call(
                &token,
                pb::CreateReferralRequest {
                    request_id: request_id.clone(),
                    referral: Some(template.clone()),
                },
            );
            match referrals.create_referral(req).await {
                Ok(r) => break r.into_inner().referral.unwrap(),
                Err(s) => {
                    seen.failed(&s);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        seen.acknowledged.lock().unwrap().push(created.name.clone());
        seen.creates.fetch_add(1, Ordering::SeqCst);
        let update = call(
            &token,
            pb::UpdateReferralRequest {
                referral: Some(pb::Referral {
                    name: created.name.clone(),
                    etag: created.etag.clone(),
                    notes: "updated under load".into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["notes".into()],
                }),
            },
        );
        if let Err(s) = referrals.update_referral(update).await {
            seen.failed(&s);
        }
        let list = call(
            &token,
            pb::ListReferralsRequest {
                page_size: 20,
                ..Default::default()
            },
        );
        if let Err(s) = referrals.list_referrals(list).await {
            seen.failed(&s);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_is_unavailable_then_recovered_with_every_write() {
    if std::env::var(DATABASE_URL_VAR).is_err() {
        eprintln!("skipped: needs {DATABASE_URL_VAR} (PostgreSQL)");
        return;
    }
    let Some(cluster) = PgCluster::start().unwrap() else {
        eprintln!("skipped: PostgreSQL's server binaries (pg_ctl, initdb) are not installed");
        return;
    };
    let db = TestDb::postgres(&cluster.admin_url()).await.unwrap();
    let h = Arc::new(Harness::start_on(db).await);
    let token = h.token(RITA).await;
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(client(h.clone(), token.clone(), seen.clone(), stop.clone())))
        .collect();
    let wait_for_creates = |n: usize, what: &'static str| {
        let seen = seen.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(60);
            while seen.creates.load(Ordering::SeqCst) < n {
                assert!(Instant::now() < until, "{what}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for_creates(20, "the load did not get going").await;

    // Down for a few seconds, as in a crash; then back.
    cluster.stop().unwrap();
    let before = seen.creates.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = seen.creates.load(Ordering::SeqCst) - before;
    cluster.start_again().unwrap();
    // Recovered by itself: creates go on.
    let restarted = seen.creates.load(Ordering::SeqCst);
    wait_for_creates(
        restarted + 20,
        "the service did not recover after the restart",
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }

    assert!(
        during <= 4,
        "{during} creates answered while the database was down"
    );
    let errors = seen.errors.lock().unwrap().clone();
    eprintln!(
        "{} creates acknowledged, {during} while down, {} calls failed",
        seen.creates.load(Ordering::SeqCst),
        errors.len()
    );
    assert!(!errors.is_empty(), "the outage was never seen by a caller");
    let wrong: Vec<_> = errors
        .iter()
        .filter(|(code, _)| *code != tonic::Code::Unavailable)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} failed calls were not UNAVAILABLE: {:?}",
        wrong.len(),
        errors.len(),
        &wrong[..wrong.len().min(5)]
    );

    // Every acknowledged create is there, once.
    let acknowledged = seen.acknowledged.lock().unwrap().clone();
    let unique: std::collections::HashSet<_> = acknowledged.iter().collect();
    assert_eq!(unique.len(), acknowledged.len(), "a retry created twice");
    for name in &acknowledged {
        h.get(RITA, name)
            .await
            .unwrap_or_else(|e| panic!("{name} was acknowledged and is gone: {e:?}"));
    }
    let listed = h
        .list(
            RITA,
            pb::ListReferralsRequest {
                page_size: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        listed.referrals.len(),
        acknowledged.len().min(500),
        "the list holds exactly the acknowledged creates"
    );
}

/// A peer that does not answer: creating a referral with the directory down fails fast with
/// `UNAVAILABLE` (`UPSTREAM_UNAVAILABLE`) for a customer the service has not just looked up
/// (one it has is remembered for a while, and its creates go on), and any call once identity is down and the caller's
/// grants are no longer cached (at most 2 s) is `UNAVAILABLE` (`IDENTITY_UNAVAILABLE`); both
/// recover by themselves when the peer is back.
#[tokio::test]
async fn a_peer_service_down_is_unavailable_fast_and_recovered() {
    let h = Harness::start_behind_proxies().await;
    let peers = h.peers.as_ref().unwrap();
    let token = h.token(RITA).await;
    let template = h.complete(pb::DealType::Private, &h.contoso_solution);
    // For another customer: one the service has not looked up yet.
    let mut for_another = template.clone();
    for_another.customer.as_mut().unwrap().entity = h.customers[1].0.clone();
    let create_for = |referral: &pb::Referral| {
        let mut referrals = h.referrals();
        let req = call(
            &token,
            pb::CreateReferralRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                referral: Some(referral.clone()),
            },
        );
        async move { referrals.create_referral(req).await }
    };
    let create = || create_for(&template);
    create().await.expect("works with every peer up");

    // The directory down: a customer it was asked about a moment ago is remembered (upstream
    // REMEMBER), another one cannot be looked up.
    peers.directory.cut();
    create()
        .await
        .expect("the customer just looked up is remembered");
    let started = Instant::now();
    let err = create_for(&for_another).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert_eq!(details(&err).0, "UPSTREAM_UNAVAILABLE");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} to fail",
        started.elapsed()
    );
    peers.directory.restore();
    let until = Instant::now() + Duration::from_secs(30);
    while let Err(e) = create_for(&for_another).await {
        assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
        assert!(Instant::now() < until, "not recovered: {e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Identity down: once the caller's grants are stale, calls cannot be authorized.
    peers.identity.cut();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let started = Instant::now();
    let err = create().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert_eq!(details(&err).0, "IDENTITY_UNAVAILABLE");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} to fail",
        started.elapsed()
    );
    peers.identity.restore();
    let until = Instant::now() + Duration::from_secs(30);
    while let Err(e) = create().await {
        assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
        assert!(Instant::now() < until, "not recovered: {e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
