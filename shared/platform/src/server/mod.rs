//! The bootstrap every service serves through: one tonic server (TLS when configured) with the
//! standard health service, reflection (v1 and v1alpha, for grpcurl and buf curl), and the
//! layers in this order from the outside in: tracing, RPC metrics, authentication, the
//! concurrency limit ([`fair`]: tenants take turns at the slots), the request time limit
//! ([`deadline`]; not for the long-running methods a service names).
//! Authentication comes before the concurrency limit so that a call holds a slot only once it
//! is known whose it is: a flood of bad tokens waits for nothing and holds nothing. Tonic
//! honours the caller's `grpc-timeout` on every method. Connections are taken by [`accept`]
//! (TLS handshakes there, offering h2 and HTTP/1.1), each one's writes [`gather`]ed so that a
//! small response reaches the socket in one write.
//!
//! Shutdown is graceful and bounded: health flips to NOT_SERVING, the server waits the drain
//! time, then stops taking calls and lets the in-flight ones finish, for at most
//! [`SHUTDOWN_GRACE`]; whatever still runs then (a stuck upload, a stream that never ends) is
//! dropped with its connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tower::ServiceBuilder;

use crate::auth::{AuthLayer, TokenVerifier};

pub mod accept;
pub mod connect;
pub mod cors;
pub mod deadline;
pub mod fair;
pub mod gather;

/// Longest the in-flight calls may take to finish once the drain time is over.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Paths that never need a token.
const ALWAYS_PUBLIC: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection."];

/// Adds one service's routes; a closure so that services of any type can be collected.
type AddRoutes = Box<dyn FnOnce(&mut RoutesBuilder) + Send>;

/// The services one server hosts: one service crate's, or several merged by `cosell serve`.
#[derive(Default)]
pub struct ServiceSet {
    routes: Vec<AddRoutes>,
    /// Fully qualified service names, for health.
    pub names: Vec<&'static str>,
    /// Encoded file descriptor sets, for reflection.
    pub descriptor_sets: Vec<&'static [u8]>,
    /// Method paths (`/package.Service/Method`) callable without a token.
    pub public_methods: Vec<&'static str>,
    /// Method paths that may run longer than the request timeout: uploads whose length grows
    /// with the data.
    pub long_running_methods: Vec<&'static str>,
    /// Routes that take a file as one HTTP `POST` for a client-streaming method.
    pub http_uploads: Vec<connect::upload::HttpUpload>,
}

impl ServiceSet {
    /// Registers a service: `add` puts it into the routes, `name` is its full name for health.
    pub fn add(
        &mut self,
        name: &'static str,
        add: impl FnOnce(&mut RoutesBuilder) + Send + 'static,
    ) {
        self.names.push(name);
        self.routes.push(Box::new(add));
    }

    /// Adds another set's services to this one.
    pub fn merge(mut self, other: ServiceSet) -> Self {
        self.routes.extend(other.routes);
        self.names.extend(other.names);
        self.descriptor_sets.extend(other.descriptor_sets);
        self.public_methods.extend(other.public_methods);
        self.long_running_methods.extend(other.long_running_methods);
        self.http_uploads.extend(other.http_uploads);
        self
    }
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub request_timeout: Duration,
    pub concurrency_limit: usize,
    pub shutdown_drain: Duration,
    /// Serve TLS with this certificate; none: plaintext.
    pub tls: Option<crate::tls::ServerTls>,
    /// Web page origins allowed to call from a browser ([`cors`]); none: no CORS.
    pub cors_origins: Vec<http::HeaderValue>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 1024,
            shutdown_drain: Duration::ZERO,
            tls: None,
            cors_origins: Vec::new(),
        }
    }
}

/// Serves `set` on `listener` until `shutdown` resolves; health says SERVING at once.
pub async fn serve(
    listener: TcpListener,
    set: ServiceSet,
    verifier: Arc<TokenVerifier>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    serve_when_ready(listener, set, verifier, options, async {}, shutdown).await
}

/// How a service binary serves, after its start: binds `args.listen`, logs where (`{name}
/// listening`), and serves `set` with `args`' options until `shutdown`.
pub async fn listen_and_serve(
    name: &str,
    args: &crate::config::ServerArgs,
    set: ServiceSet,
    verifier: Arc<TokenVerifier>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let options = args.options()?;
    let listener = TcpListener::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "{name} listening");
    serve(listener, set, verifier, options, shutdown).await?;
    Ok(())
}

/// [`serve`], with health NOT_SERVING until `ready` resolves: for a server whose start needs
/// calls to itself (`cosell serve --demo` seeds through its own services), so that nobody is
/// told it serves before it can answer correctly.
pub async fn serve_when_ready(
    listener: TcpListener,
    set: ServiceSet,
    verifier: Arc<TokenVerifier>,
    options: ServerOptions,
    ready: impl Future<Output = ()> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let ServiceSet {
        routes: adders,
        names,
        descriptor_sets,
        public_methods,
        long_running_methods,
        http_uploads,
    } = set;
    let mut routes = RoutesBuilder::default();
    for add in adders {
        add(&mut routes);
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, &names, ServingStatus::NotServing).await;
    routes.add_service(health_service);
    let serving = tokio::sync::watch::channel(false).0;
    let (ready_health, ready_names, ready_serving) =
        (health.clone(), names.clone(), serving.clone());
    tokio::spawn(async move {
        ready.await;
        // Not after a shutdown began.
        if ready_serving.send_if_modified(|s| !std::mem::replace(s, true)) {
            set_health(&ready_health, &ready_names, ServingStatus::Serving).await;
        }
    });

    // The services' types, health's, and the google.rpc error details (so that grpcurl and
    // Connect's callers can read an error's details): for reflection and for Connect alike.
    let mut every_set = descriptor_sets;
    every_set.extend([
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_types::pb::FILE_DESCRIPTOR_SET,
    ]);
    let mut v1 = tonic_reflection::server::Builder::configure();
    let mut v1alpha = tonic_reflection::server::Builder::configure();
    for fds in &every_set {
        v1 = v1.register_encoded_file_descriptor_set(fds);
        v1alpha = v1alpha.register_encoded_file_descriptor_set(fds);
    }
    match (v1.build_v1(), v1alpha.build_v1alpha()) {
        (Ok(a), Ok(b)) => {
            routes.add_service(a);
            routes.add_service(b);
        }
        (a, b) => {
            tracing::error!(v1 = ?a.err(), v1alpha = ?b.err(), "reflection disabled: bad descriptor set")
        }
    }

    let connect = connect::ConnectLayer::new(
        connect::Procedures::new(&every_set, &http_uploads).unwrap_or_else(|e| {
            tracing::error!(error = %e, "Connect (HTTP/JSON) disabled: bad descriptor set");
            connect::Procedures::default()
        }),
        options.request_timeout,
    );

    let mut public: Vec<String> = ALWAYS_PUBLIC.iter().map(|s| s.to_string()).collect();
    public.extend(public_methods.iter().map(|s| s.to_string()));
    let cors =
        (!options.cors_origins.is_empty()).then(|| cors::layer(options.cors_origins.clone()));
    let layers = ServiceBuilder::new()
        .option_layer(cors)
        .layer(connect)
        .layer(
            tower_http::trace::TraceLayer::new_for_grpc()
                .make_span_with(|req: &http::Request<_>| crate::telemetry::server_span(req)),
        )
        .layer(crate::telemetry::metrics::RpcMetricsLayer::default())
        .layer(AuthLayer::new(verifier, public))
        .layer(fair::FairLimitLayer::new(
            options.concurrency_limit,
            options.request_timeout,
        ))
        .layer(deadline::DeadlineLayer::new(
            options.request_timeout,
            long_running_methods.iter().map(|s| s.to_string()).collect(),
        ));

    let drain = options.shutdown_drain;
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, finishing in-flight calls");
        serving.send_replace(true);
        set_health(&health, &names, ServingStatus::NotServing).await;
        tokio::time::sleep(drain).await;
        let _ = stopping.send(());
    };
    // Once the server stops taking calls, the in-flight ones have SHUTDOWN_GRACE.
    let grace = async move {
        if stopped.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };

    // HTTP/1.1 too, for Connect's callers.
    let router = Server::builder()
        .accept_http1(true)
        .layer(layers)
        .add_routes(routes.routes());
    let server = match &options.tls {
        None => router
            .serve_with_incoming_shutdown(accept::plain(listener), signal)
            .boxed(),
        Some(tls) => router
            .serve_with_incoming_shutdown(accept::tls(listener, tls.server_config()), signal)
            .boxed(),
    };
    tokio::select! {
        served = server => served,
        _ = grace => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "calls still in flight after the shutdown grace; dropping them");
            Ok(())
        }
    }
}

/// Sets the whole server's and every service's health.
async fn set_health(
    health: &tonic_health::server::HealthReporter,
    names: &[&'static str],
    status: ServingStatus,
) {
    health.set_service_status("", status).await;
    for name in names {
        health.set_service_status(*name, status).await;
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
