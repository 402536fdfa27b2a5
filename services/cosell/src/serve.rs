//! `cosell serve`: the embedded suite. Every service is mounted on one server; they reach each
//! other only through gRPC clients over loopback (the verifier fetches identity's public keys
//! through `ListSigningKeys` like any other service would), so this one-process default and a
//! deployment of separate processes run the same paths.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use cosell_platform::auth::{AccessClient, ServiceToken, TokenVerifier};
use cosell_platform::config::{ServerArgs, SignInArgs};
use tonic::transport::Endpoint;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Folder for the embedded SQLite databases (one file per service); created if missing.
    #[arg(long, env = "COSELL_DATA_DIR", default_value = "./.cosell")]
    data_dir: PathBuf,
    #[command(flatten)]
    sign_in: SignInArgs,
    /// Seed the demo organizations, users and data (seeding twice changes nothing); switches
    /// development sign-in on.
    #[arg(long)]
    demo: bool,
    /// Switch development sign-in by email on: anyone may sign in as any user by email alone.
    /// For development and demos only; `--demo` switches it on too.
    #[arg(long, env = "COSELL_DEV_AUTH")]
    dev_auth: bool,
    /// Keep development sign-in off even with `--demo` (the demo deals are then not seeded).
    #[arg(long, env = "COSELL_NO_DEV_AUTH", conflicts_with = "dev_auth")]
    no_dev_auth: bool,
    /// More CA certificates (PEM) the services trust when they reach each other over this
    /// server's TLS listener, beside its own certificate chain and the system's roots.
    #[arg(long, env = "COSELL_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Put identity on this database instead of the SQLite file (e.g. `postgres://...`).
    #[arg(long, env = "COSELL_DATABASE_URL_IDENTITY")]
    database_url_identity: Option<String>,
    /// Put the directory on this database instead of the SQLite file.
    #[arg(long, env = "COSELL_DATABASE_URL_DIRECTORY")]
    database_url_directory: Option<String>,
    /// Put deals on this database instead of the SQLite file.
    #[arg(long, env = "COSELL_DATABASE_URL_DEALS")]
    database_url_deals: Option<String>,
    /// The PSC timeline shown with the cut-over: read-only from (`YYYY-MM-DD`).
    #[arg(long, env = "COSELL_PSC_READ_ONLY_FROM", default_value = "2021-04-01")]
    psc_read_only_from: chrono::NaiveDate,
    /// The PSC timeline: access ends (`YYYY-MM-DD`).
    #[arg(long, env = "COSELL_PSC_ACCESS_ENDS", default_value = "2021-04-30")]
    psc_access_ends: chrono::NaiveDate,
    /// Put the migration service on this database instead of the SQLite file.
    #[arg(long, env = "COSELL_DATABASE_URL_MIGRATION")]
    database_url_migration: Option<String>,
    #[command(flatten)]
    deals: cosell_deals::DealsArgs,
    /// Seconds an upload (a PSC export) may send nothing before it is cancelled.
    #[arg(long, env = "COSELL_UPLOAD_IDLE_SECS", default_value_t = 60)]
    upload_idle_secs: u64,
    /// Do not load the bundled sample of legal entities into an empty directory.
    #[arg(long, env = "COSELL_NO_SAMPLE")]
    no_sample: bool,
    /// Verified email domain of the platform organization (its sellers' and operators' emails).
    #[arg(
        long,
        env = "COSELL_PLATFORM_DOMAIN",
        default_value = "platform.example"
    )]
    platform_domain: String,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "COSELL_TOKEN_TTL_SECS", default_value_t = 3600)]
    token_ttl_secs: u64,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let _telemetry = cosell_platform::telemetry::init("cosell", &args.server.telemetry);
    cosell_platform::db::set_pool_size(args.server.database_pool_size);
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let options = args.server.options().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(args.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.server.listen))?;
    let addr = listener.local_addr()?;
    let dev_auth = (args.demo || args.dev_auth) && !args.no_dev_auth;

    let identity_url = args
        .database_url_identity
        .clone()
        .unwrap_or_else(|| cosell_platform::db::sqlite_file_url(&args.data_dir, "identity"));
    // Each service proves itself to identity with a client secret; inside one process a fresh
    // random one per start is enough.
    let secret = || {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    };
    let (directory_secret, deals_secret, migration_secret) = (secret(), secret(), secret());
    let mut identity = cosell_identity::Config::new(identity_url);
    identity.dev_auth = dev_auth;
    identity.demo = args.demo;
    identity.oidc = args
        .sign_in
        .oidc()
        .map(|(issuer, audience)| cosell_identity::oidc::OidcConfig { issuer, audience });
    identity.platform_operators = args.sign_in.platform_operators.clone();
    identity.platform_domain = args.platform_domain.clone();
    let sign_in = identity.sign_in_methods();
    identity.token_ttl = Duration::from_secs(args.token_ttl_secs);
    identity.service_principals = vec![
        ("directory".into(), directory_secret.clone()),
        ("deals".into(), deals_secret.clone()),
        ("migration".into(), migration_secret.clone()),
    ];
    let identity = cosell_identity::start(&identity)
        .await
        .context("identity failed to start")?;

    // The loopback channel the services use to reach each other; lazy, as the server starts
    // listening only below. Over TLS when the listener is.
    let endpoint = match &options.tls {
        Some(tls) => {
            let ca = cosell_platform::tls::read_ca(args.ca_cert.as_deref())
                .map_err(anyhow::Error::msg)?;
            tls.loopback(addr, ca.as_deref())
                .map_err(anyhow::Error::msg)?
        }
        None => Endpoint::from_shared(format!("http://{addr}"))?,
    }
    .connect_timeout(Duration::from_secs(5));
    let loopback = endpoint.connect_lazy();
    let verifier = Arc::new(TokenVerifier::remote(loopback.clone()));

    let directory_token = Arc::new(ServiceToken::new(
        loopback.clone(),
        "directory",
        directory_secret,
    ));
    let directory = cosell_directory::Config {
        database_url: args
            .database_url_directory
            .clone()
            .unwrap_or_else(|| cosell_platform::db::sqlite_file_url(&args.data_dir, "directory")),
        index_dir: Some(args.data_dir.join("directory-index")),
        load_sample: !args.no_sample,
    };
    let access = Arc::new(AccessClient::new(loopback, directory_token));
    let directory = cosell_directory::start(&directory, Some(access))
        .await
        .context("directory failed to start")?;

    // Deals has connections of its own: a large stream on a shared connection could hold up
    // its calls behind the stream's flow-control window.
    let deals_channel = endpoint.connect_lazy();
    let mut deals = cosell_deals::Config::new(
        args.database_url_deals
            .clone()
            .unwrap_or_else(|| cosell_platform::db::sqlite_file_url(&args.data_dir, "deals")),
    );
    args.deals.apply(&mut deals);
    let deals = cosell_deals::start(
        &deals,
        cosell_deals::Links {
            identity: deals_channel.clone(),
            directory: deals_channel.clone(),
            token: Arc::new(ServiceToken::new(deals_channel, "deals", deals_secret)),
        },
    )
    .await
    .context("deals failed to start")?;

    let migration_channel = endpoint.connect_lazy();
    let migration_token = Arc::new(ServiceToken::new(
        migration_channel.clone(),
        "migration",
        migration_secret,
    ));
    let cosell_migration::Started {
        services: migration,
        migration: migration_handle,
    } = cosell_migration::start_with(
        &cosell_migration::Config {
            database_url: args.database_url_migration.clone().unwrap_or_else(|| {
                cosell_platform::db::sqlite_file_url(&args.data_dir, "migration")
            }),
            psc_read_only_from: args.psc_read_only_from,
            psc_access_ends: args.psc_access_ends,
            lease: cosell_migration::runs::DEFAULT_LEASE,
        },
        &cosell_migration::Options {
            upload_idle: Duration::from_secs(args.upload_idle_secs.max(1)),
        },
        cosell_migration::Links {
            identity: migration_channel.clone(),
            deals: migration_channel.clone(),
            directory: migration_channel,
            token: migration_token,
        },
    )
    .await
    .context("migration failed to start")?;

    // Health says SERVING once the demo is seeded (through the server itself), not before.
    let (seeded, ready) = tokio::sync::oneshot::channel::<()>();
    // One signal ends the open watches of both services (UNAVAILABLE: clients resume
    // elsewhere) before the server waits for the calls in flight.
    let (migration_signal, deals_core) = (migration_handle.shutdown_signal(), deals.deals.clone());
    let shutdown = async move {
        migration_signal.await;
        deals_core.end_streams();
    };
    let server = tokio::spawn(cosell_platform::server::serve_when_ready(
        listener,
        identity
            .services
            .merge(directory.services)
            .merge(deals.services)
            .merge(migration),
        verifier,
        options.clone(),
        async move {
            let _ = ready.await;
        },
        shutdown,
    ));
    if args.demo {
        if !dev_auth {
            tracing::warn!("the demo deals need development sign-in; not seeded");
        } else {
            let unanswered = crate::demo::seed(endpoint.connect_lazy())
                .await
                .context("seeding the demo deals failed")?;
            if let Some(u) = unanswered {
                // Real expiry on back-dated times: one past its expiry, one within the notice;
                // the sweeper then does what it would do 14 days on (D2).
                let (d, now) = (&deals.deals, deals.deals.now());
                async {
                    d.backdate_expiry(&u.expired, now - chrono::Duration::minutes(1))
                        .await?;
                    d.backdate_expiry(&u.expiring, now + chrono::Duration::days(2))
                        .await?;
                    d.sweep_once().await
                }
                .await
                .context("making the demo's expired and expiring referrals")?;
            }
            crate::demo::seed_psc_export(endpoint.connect_lazy())
                .await
                .context("importing the demo PSC export failed")?;
        }
    }
    let _ = seeded.send(());
    tracing::info!(%addr, data_dir = %args.data_dir.display(), demo = args.demo, "cosell serving");
    eprintln!("cosell sign-in: {sign_in}");
    eprintln!(
        "cosell listening on {addr} ({}; services: identity, directory, deals, migration)",
        if options.tls.is_some() {
            "TLS"
        } else {
            "plaintext"
        }
    );
    let served = server.await?;
    // Graceful shutdown: the migration's leased deals go back for another replica.
    migration_handle.release().await;
    served?;
    Ok(())
}
