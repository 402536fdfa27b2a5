//! The server's concurrency slots (`--concurrency-limit`), shared fairly between tenants. At
//! most that many calls run at once; when every slot is taken, the calls that wait get the
//! slots freed in turn by tenant, one call of each tenant that waits before a second of any,
//! rather than in the order they came. A tenant that floods the server with calls therefore
//! waits behind its own calls only: another tenant's call takes the next slot freed.
//!
//! A tenant is an organization (all its users together). An organization waits with at most
//! as many calls as the server has slots; the next is refused at once with `RESOURCE_EXHAUSTED`
//! (reason `TOO_MANY_CALLS`, with a retry delay), so that memory stays bounded however many
//! calls one client sends. The public calls (health, sign-in, token exchange, which services
//! also make to verify external tokens) wait together as one tenant, without that bound: their
//! methods have per-principal rate limits of their own. Calls of a service principal (one
//! service calling another for a call it serves) take no slot: the call they serve holds one
//! already, and waiting for a second would deadlock a server (`cosell serve` runs every service
//! in one) whose slots were all held by calls waiting on them. A call that waits longer than
//! the server's request limit is answered `UNAVAILABLE` (reason `SERVER_BUSY`, retryable).
//!
//! The layer sits after authentication ([`crate::auth::layer`]), so that a call takes a slot,
//! or waits for one, only once it is known whose it is.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt};

use crate::auth::claims::{Caller, Principal};
use crate::error::ApiError;

/// Error domain of the slots' refusals.
pub const DOMAIN: &str = "server.cosell";

/// How long a tenant refused for too many waiting calls is asked to wait before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct FairLimitLayer {
    gate: Arc<Gate>,
}

impl FairLimitLayer {
    /// At most `limit` calls at once; a call waits for a slot at most `wait`.
    pub fn new(limit: usize, wait: Duration) -> Self {
        Self {
            gate: Arc::new(Gate {
                limit: limit.max(1),
                wait,
                state: Mutex::default(),
            }),
        }
    }
}

impl<S> Layer<S> for FairLimitLayer {
    type Service = FairLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FairLimit {
            inner,
            gate: self.gate.clone(),
        }
    }
}

#[derive(Clone)]
pub struct FairLimit<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S, B> Service<http::Request<B>> for FairLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    /// Always ready: a call's slot is taken in the call, where its tenant is known.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let gate = self.gate.clone();
        let tenant = tenant(req.extensions().get::<Caller>());
        Box::pin(async move {
            let Some(tenant) = tenant else {
                return inner.oneshot(req).await;
            };
            let _slot = match gate.take(tenant).await {
                Ok(slot) => slot,
                Err(refused) => return Ok(refused.into_status(DOMAIN).into_http()),
            };
            inner.oneshot(req).await
        })
    }
}

/// Whose turn a call waits in; see the module's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tenant {
    /// An organization's users: their waiting calls are bounded.
    Organization(uuid::Uuid),
    /// The calls without a caller (health, sign-in, token exchange).
    Public,
}

/// The tenant of a call of `caller` (none: a service's call, which takes no slot).
fn tenant(caller: Option<&Caller>) -> Option<Tenant> {
    match caller.map(|c| &c.principal) {
        Some(Principal::User { organization, .. }) => Some(Tenant::Organization(*organization)),
        Some(Principal::Service(_)) => None,
        None => Some(Tenant::Public),
    }
}

struct Gate {
    limit: usize,
    wait: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Slots taken, at most `limit`; while any call waits, all of them.
    running: usize,
    /// Per tenant in `turns`, the hand-overs of its waiting calls in the order they came
    /// (emptied when those calls all went away, until its turn comes).
    waiting: HashMap<Tenant, VecDeque<oneshot::Sender<Slot>>>,
    /// The tenants with calls waiting, in turn: the first gets the next slot freed.
    turns: VecDeque<Tenant>,
}

impl Gate {
    /// A slot for a call of `tenant`: at once when one is free and nobody waits, else in the
    /// tenant's turn, refused when it is an organization waiting with `limit` calls already.
    async fn take(self: &Arc<Self>, tenant: Tenant) -> Result<Slot, ApiError> {
        let handed = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.running < self.limit && s.turns.is_empty() {
                s.running += 1;
                return Ok(Slot(Some(self.clone())));
            }
            // A tenant is in turn exactly while it has an entry here (emptied or not).
            let fresh = !s.waiting.contains_key(&tenant);
            let queue = s.waiting.entry(tenant).or_default();
            let bounded = matches!(tenant, Tenant::Organization(_));
            if bounded && queue.len() >= self.limit {
                // Calls whose callers went away wait no longer.
                queue.retain(|waiter| !waiter.is_closed());
                if queue.len() >= self.limit {
                    return Err(ApiError::resource_exhausted(
                        "TOO_MANY_CALLS",
                        format!(
                            "{} calls of your organization already wait for the server; \
                             retry when some are answered",
                            queue.len()
                        ),
                        RETRY_AFTER,
                    ));
                }
            }
            let (hand, handed) = oneshot::channel();
            queue.push_back(hand);
            if fresh {
                s.turns.push_back(tenant);
            }
            handed
        };
        match tokio::time::timeout(self.wait, handed).await {
            Ok(Ok(slot)) => Ok(slot),
            // A slot given as the wait ran out is given on when the receiver drops it.
            Ok(Err(_)) | Err(_) => Err(ApiError::unavailable(
                "SERVER_BUSY",
                format!(
                    "the server is busy: no call slot came free within {} s; retry",
                    self.wait.as_secs_f64()
                ),
            )),
        }
    }

    /// A slot was freed: it goes to the next tenant in turn that still waits, else back.
    fn hand_on(self: &Arc<Self>) {
        loop {
            let hand = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let Some(tenant) = s.turns.pop_front() else {
                    s.running -= 1;
                    return;
                };
                let queue = s
                    .waiting
                    .get_mut(&tenant)
                    .expect("a tenant in turn has an entry");
                let hand = queue.pop_front();
                if queue.is_empty() {
                    s.waiting.remove(&tenant);
                } else {
                    s.turns.push_back(tenant);
                }
                // None: the tenant's waiting calls all went away.
                let Some(hand) = hand else { continue };
                hand
            };
            // Sent without the lock: a slot that cannot be delivered (its call went away) is
            // defused and the next waiting call is tried.
            match hand.send(Slot(Some(self.clone()))) {
                Ok(()) => return,
                Err(mut undelivered) => undelivered.0 = None,
            }
        }
    }

    #[cfg(test)]
    fn running(&self) -> usize {
        self.state.lock().unwrap().running
    }
}

/// A taken slot, handed on when dropped.
struct Slot(Option<Arc<Gate>>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(gate) = self.0.take() {
            gate.hand_on();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Semaphore;
    use uuid::Uuid;

    /// A method that answers once the test lets one call through `done`, recording the order
    /// in which calls started.
    fn held(
        done: Arc<Semaphore>,
        started: Arc<Mutex<Vec<String>>>,
    ) -> impl Service<
        http::Request<()>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future = BoxFuture<
            'static,
            Result<http::Response<tonic::body::Body>, std::convert::Infallible>,
        >,
    > + Clone {
        tower::service_fn(move |req: http::Request<()>| -> BoxFuture<'static, _> {
            let (done, started) = (done.clone(), started.clone());
            Box::pin(async move {
                started.lock().unwrap().push(req.uri().path().to_owned());
                done.acquire().await.unwrap().forget();
                Ok(tonic::Status::ok("").into_http())
            })
        })
    }

    fn call_of(organization: Uuid, path: &str) -> http::Request<()> {
        let mut req = http::Request::builder().uri(path).body(()).unwrap();
        req.extensions_mut().insert(Caller {
            principal: Principal::User {
                organization,
                user: Uuid::now_v7(),
            },
            email: None,
            expires_at: i64::MAX,
        });
        req
    }

    fn grpc_status(r: &http::Response<tonic::body::Body>) -> Option<String> {
        r.headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Lets the spawned calls run until they block.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_flooding_tenant_waits_behind_its_own_calls_only() {
        let (done, started) = (Arc::new(Semaphore::new(0)), Arc::default());
        let layer = FairLimitLayer::new(4, Duration::from_secs(60));
        let svc = layer.layer(held(done.clone(), Arc::clone(&started)));
        let (flooder, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut calls = Vec::new();
        // The flooder takes the four slots and queues four more calls; then the other tenant
        // calls once.
        for i in 0..8 {
            calls.push(tokio::spawn(
                svc.clone()
                    .oneshot(call_of(flooder, &format!("/flood/{i}"))),
            ));
            settle().await;
        }
        calls.push(tokio::spawn(svc.clone().oneshot(call_of(other, "/other"))));
        settle().await;
        assert_eq!(started.lock().unwrap().len(), 4);
        // The slots freed go in turn: the flooder's first waiting call, then the other
        // tenant's, not the flooder's three others before it.
        done.add_permits(2);
        settle().await;
        assert_eq!(started.lock().unwrap()[4..], ["/flood/4", "/other"]);
        done.add_permits(16);
        for call in calls {
            let answer = call.await.unwrap().unwrap();
            assert_eq!(grpc_status(&answer).as_deref(), Some("0"));
        }
        assert_eq!(started.lock().unwrap().len(), 9);
        assert_eq!(layer.gate.running(), 0, "every slot came back");
    }

    #[tokio::test]
    async fn calls_between_services_take_no_slot() {
        let (done, started) = (Arc::new(Semaphore::new(0)), Arc::default());
        let layer = FairLimitLayer::new(1, Duration::from_secs(60));
        let svc = layer.layer(held(done.clone(), Arc::clone(&started)));
        let holding = tokio::spawn(svc.clone().oneshot(call_of(Uuid::now_v7(), "/user")));
        settle().await;
        // The call holding the only slot asks another service; that call runs at once.
        let mut req = http::Request::builder().uri("/service").body(()).unwrap();
        req.extensions_mut().insert(Caller {
            principal: Principal::Service("deals".into()),
            email: None,
            expires_at: i64::MAX,
        });
        let inner = tokio::spawn(svc.clone().oneshot(req));
        settle().await;
        assert_eq!(*started.lock().unwrap(), ["/user", "/service"]);
        done.add_permits(2);
        inner.await.unwrap().unwrap();
        holding.await.unwrap().unwrap();
        assert_eq!(layer.gate.running(), 0);
    }

    #[tokio::test]
    async fn a_tenant_waits_with_at_most_as_many_calls_as_there_are_slots() {
        let (done, started) = (Arc::new(Semaphore::new(0)), Arc::default());
        let layer = FairLimitLayer::new(2, Duration::from_secs(60));
        let svc = layer.layer(held(done.clone(), started));
        let (flooder, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut calls = Vec::new();
        for i in 0..4 {
            calls.push(tokio::spawn(
                svc.clone()
                    .oneshot(call_of(flooder, &format!("/flood/{i}"))),
            ));
        }
        settle().await;
        let refused = svc
            .clone()
            .oneshot(call_of(flooder, "/flood/4"))
            .await
            .unwrap();
        assert_eq!(
            grpc_status(&refused).as_deref(),
            Some("8"),
            "RESOURCE_EXHAUSTED"
        );
        let status = tonic::Status::from_header_map(refused.headers()).unwrap();
        assert!(status.message().contains("2 calls"), "{}", status.message());
        // Another tenant still waits its turn rather than being refused, and public calls
        // (no caller) wait without a bound.
        calls.push(tokio::spawn(svc.clone().oneshot(call_of(other, "/other"))));
        for i in 0..3 {
            let public = http::Request::builder()
                .uri(format!("/public/{i}"))
                .body(())
                .unwrap();
            calls.push(tokio::spawn(svc.clone().oneshot(public)));
        }
        done.add_permits(16);
        for call in calls {
            assert_eq!(
                grpc_status(&call.await.unwrap().unwrap()).as_deref(),
                Some("0")
            );
        }
        assert_eq!(layer.gate.running(), 0);
    }

    #[tokio::test]
    async fn calls_that_stop_waiting_give_up_nothing_and_busy_waits_end() {
        let (done, started) = (Arc::new(Semaphore::new(0)), Arc::default());
        let layer = FairLimitLayer::new(1, Duration::from_millis(200));
        let svc = layer.layer(held(done.clone(), Arc::clone(&started)));
        let org = Uuid::now_v7();
        let first = tokio::spawn(svc.clone().oneshot(call_of(org, "/first")));
        settle().await;
        // A waiting call whose caller goes away (a cancelled stream drops its future).
        let gone = tokio::spawn(svc.clone().oneshot(call_of(org, "/gone")));
        settle().await;
        gone.abort();
        settle().await;
        // One that waits past the limit is told the server is busy.
        let busy = svc.clone().oneshot(call_of(org, "/busy")).await.unwrap();
        assert_eq!(grpc_status(&busy).as_deref(), Some("14"), "UNAVAILABLE");
        done.add_permits(1);
        first.await.unwrap().unwrap();
        // The slot came back, and the next call takes it at once.
        assert_eq!(layer.gate.running(), 0);
        done.add_permits(1);
        let next = svc.clone().oneshot(call_of(org, "/next")).await.unwrap();
        assert_eq!(grpc_status(&next).as_deref(), Some("0"));
        assert_eq!(*started.lock().unwrap(), ["/first", "/next"]);
    }
}
