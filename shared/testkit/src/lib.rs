//! Test helpers shared by every crate's integration tests.
//!
//! - [`TestDb`]: a fresh database per test: a new PostgreSQL database (dropped afterwards) when
//!   `COSELL_TEST_DATABASE_URL` is set, else in-memory SQLite, so a bare `cargo test` works on a
//!   fresh machine and CI exercises PostgreSQL.
//! - [`TestServer`]: serves a [`ServiceSet`] on `127.0.0.1:0` with an explicit shutdown.
//! - [`authed`]: a request carrying a bearer token; [`refusal`]: what an error status says.
//! - [`bench`]: concurrent latency and throughput measurement for the benchmarks.
//! - [`oidc`]: an OpenID Connect issuer on 127.0.0.1 (discovery, JWKS, signed tokens).
//! - [`otlp`]: a stand-in OpenTelemetry collector that keeps the spans and metrics it is sent.
//! - [`proxy`]: a TCP proxy in front of a database, cut and restored by a test.
//! - [`pg_cluster`]: a PostgreSQL cluster of the test's own, stopped and started under a service.
//! - [`cut_short`]: a future dropped part-way, as a cancelled call drops its handler.
//! - [`zip`]: zip archives made by hand (lying sizes, gigabytes of deflate in milliseconds).
//! - [`upload`]: PSC uploads cut into messages, and uploads held open.

pub mod bench;
pub mod oidc;
pub mod otlp;
pub mod pg_cluster;
pub mod proxy;
pub mod upload;
pub mod zip;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cosell_platform::auth::TokenVerifier;
use cosell_platform::server::{ServerOptions, ServiceSet};
use sea_orm::{ConnectionTrait, Database};
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

/// Where CI points the tests at PostgreSQL (any database of the server; tests create their own).
pub const DATABASE_URL_VAR: &str = "COSELL_TEST_DATABASE_URL";

/// Polls `future` once (its first message sent), waits `after` (blocking the thread, so that the
/// server's answer may or may not have arrived meanwhile), polls it once more and drops it: how
/// a gRPC handler is dropped at an await when its client goes away. A timer could not cut this
/// fine: tokio's tick is 1 ms.
pub fn cut_short<F: std::future::Future>(future: F, after: Duration) {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    if future.as_mut().poll(&mut cx).is_pending() {
        std::thread::sleep(after);
        let _ = future.as_mut().poll(&mut cx);
    }
}

/// One test's database.
pub struct TestDb {
    pub url: String,
    /// Set for PostgreSQL: (admin URL, database name) to drop on drop.
    drop: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> anyhow::Result<Self> {
        match std::env::var(DATABASE_URL_VAR) {
            Ok(admin_url) => Self::postgres(&admin_url).await,
            Err(_) => Ok(Self::sqlite()),
        }
    }

    /// A new database on the PostgreSQL server of `admin_url` (dropped on drop).
    pub async fn postgres(admin_url: &str) -> anyhow::Result<Self> {
        let admin_url = admin_url.to_owned();
        let name = format!("cosell_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        admin.close().await?;
        Ok(Self {
            url: replace_database(&admin_url, &name),
            drop: Some((admin_url, name)),
        })
    }

    /// An in-memory SQLite database, whatever the environment says: for tests that must run on
    /// both backends in one run.
    pub fn sqlite() -> Self {
        Self {
            url: "sqlite::memory:".into(),
            drop: None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.drop.is_some()
    }

    /// Connections open to this database now, other than the one asking (PostgreSQL; `None`
    /// on SQLite).
    pub async fn connections(&self) -> anyhow::Result<Option<i64>> {
        let Some((admin_url, name)) = &self.drop else {
            return Ok(None);
        };
        let admin = Database::connect(admin_url).await?;
        let row = admin
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1",
                [name.clone().into()],
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no count"))?;
        admin.close().await?;
        Ok(Some(row.try_get::<i64>("", "n")?))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.drop.take() else {
            return;
        };
        // Drop runs outside any runtime guarantee; a short-lived thread with its own runtime
        // keeps it independent of the test's runtime being shut down.
        let (done, dropped) = std::sync::mpsc::channel::<()>();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            });
            let _ = done.send(());
        });
        // Waited for, but not forever. A DROP DATABASE waits until every backend of the server
        // has taken note of it, and a backend blocked writing a result to a client that is not
        // reading takes no note: a harness dropped on its test's one runtime thread, while a
        // service of it had a large result in flight on that thread, waited on itself (and
        // every other test's drop with it) until CI's time ran out. Once the test returns, its
        // runtime goes, the connection closes and the drop finishes in the background.
        let _ = dropped.recv_timeout(DROP_PATIENCE);
    }
}

/// How long dropping a test database holds its test.
const DROP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// `postgres://user@host:port/db?x` with `db` replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let root = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A server on an ephemeral port; stops when dropped or on [`TestServer::shutdown`].
pub struct TestServer {
    pub addr: SocketAddr,
    pub channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl TestServer {
    pub async fn start(set: ServiceSet, verifier: Arc<TokenVerifier>) -> anyhow::Result<Self> {
        Self::start_with(set, verifier, ServerOptions::default()).await
    }

    pub async fn start_with(
        set: ServiceSet,
        verifier: Arc<TokenVerifier>,
        options: ServerOptions,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, set, verifier, options).await
    }

    /// Serves on a listener bound beforehand (so that services can be given its address before
    /// they start, as `cosell serve` does).
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        set: ServiceSet,
        verifier: Arc<TokenVerifier>,
        options: ServerOptions,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(cosell_platform::server::serve(
            listener,
            set,
            verifier,
            options,
            async move {
                let _ = stopped.await;
            },
        ));
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await?;
        Ok(Self {
            addr,
            channel,
            stop: Some(stop),
            handle: Some(handle),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts the graceful shutdown and returns without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down gracefully and waits until the server has stopped.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        if let Some(handle) = self.handle.take() {
            handle.await??;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Ok(v) = format!("Bearer {token}").parse() {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// What an error status tells a client: its code, its `ErrorInfo` reason and domain, and its
/// `BadRequest` violations as (field, description).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: tonic::Code,
    pub reason: String,
    pub domain: String,
    pub violations: Vec<(String, String)>,
}

impl Refusal {
    /// The violated fields, in the order reported.
    pub fn fields(&self) -> Vec<&str> {
        self.violations.iter().map(|(f, _)| f.as_str()).collect()
    }
}

/// Reads a status as [`Refusal`].
pub fn refusal(status: &tonic::Status) -> Refusal {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let (reason, domain) = details
        .error_info()
        .map(|i| (i.reason.clone(), i.domain.clone()))
        .unwrap_or_default();
    let violations = details
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default();
    Refusal {
        code: status.code(),
        reason,
        domain,
        violations,
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn database_in_url_is_replaced() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            replace_database("postgres://u@h:1", "t1"),
            "postgres://u@h:1/t1"
        );
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "t1"),
            "postgres://u@h/t1?sslmode=disable"
        );
    }
}
