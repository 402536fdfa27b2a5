//! The services of the benchmarks that run each service as a process of its own (`migrate`,
//! `soak`): identity, the directory and deals are the benchmark's own executable again, run as
//! one service each (it calls [`serve`] when [`SERVE_VAR`] names one), configured through the
//! environment; the migration service is the real `cosell-migration` binary. [`Suite`] starts
//! the four, each on a PostgreSQL database of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosell_platform::auth::{AccessClient, RemoteKeys, ServiceToken, TokenVerifier};
use cosell_proto::identity as ipb;
use cosell_proto::migration as pb;
use cosell_testkit::TestDb;
use tonic::transport::{Channel, Endpoint};

pub const SECRETS: [(&str, &str); 3] = [
    ("migration", "migration-secret-for-the-bench-01"),
    ("deals", "deals-secret-for-the-bench-000001"),
    ("directory", "directory-secret-for-the-bench-01"),
];

pub fn secret(service: &str) -> String {
    SECRETS
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

/// Set in a child process: the service it runs.
pub const SERVE_VAR: &str = "COSELL_BENCH_SERVE";

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// The benchmark's `main`: `bench`, or in a child the service [`SERVE_VAR`] names.
pub fn main<F: Future<Output = anyhow::Result<()>>>(
    bench: impl FnOnce() -> F,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match std::env::var(SERVE_VAR) {
        Ok(service) => runtime.block_on(serve(&service)),
        Err(_) => runtime.block_on(bench()),
    }
}

/// A child: one service, configured by the parent through the environment.
pub async fn serve(service: &str) -> anyhow::Result<()> {
    let _telemetry = cosell_platform::telemetry::init(
        service,
        &cosell_platform::config::TelemetryArgs {
            log_filter: env("RUST_LOG"),
            log_json: false,
            otlp_endpoint: None,
        },
    );
    let listener = tokio::net::TcpListener::bind(env("COSELL_BENCH_LISTEN")).await?;
    let database_url = env("COSELL_BENCH_DB");
    let options = cosell_platform::server::ServerOptions::default();
    if service == "identity" {
        let mut config = cosell_identity::Config::new(database_url);
        config.dev_auth = true;
        config.demo = true;
        config.service_principals = SECRETS
            .iter()
            .map(|(s, v)| (s.to_string(), v.to_string()))
            .collect();
        cosell_identity::serve(config, listener, options, std::future::pending()).await?;
        return Ok(());
    }
    let identity = Endpoint::from_shared(env("COSELL_BENCH_IDENTITY"))?.connect_lazy();
    let token = Arc::new(ServiceToken::new(
        identity.clone(),
        service.to_owned(),
        secret(service),
    ));
    let services = if service == "directory" {
        let config = cosell_directory::Config {
            database_url,
            index_dir: Some(PathBuf::from(env("COSELL_BENCH_INDEX"))),
            load_sample: false,
        };
        let access = Arc::new(AccessClient::new(identity.clone(), token));
        cosell_directory::start(&config, Some(access))
            .await?
            .services
    } else {
        let directory = Endpoint::from_shared(env("COSELL_BENCH_DIRECTORY"))?.connect_lazy();
        cosell_deals::start(
            &cosell_deals::Config::new(database_url),
            cosell_deals::Links {
                identity: identity.clone(),
                directory,
                token,
            },
        )
        .await?
        .services
    };
    let verifier = Arc::new(TokenVerifier::new(Arc::new(RemoteKeys::new(identity))));
    cosell_platform::server::serve(
        listener,
        services,
        verifier,
        options,
        std::future::pending(),
    )
    .await?;
    Ok(())
}

/// A service process and where it listens.
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
    pub url: String,
}

impl Proc {
    /// Peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.memory_mib("VmHWM:")
    }

    /// Resident memory now (VmRSS), in MiB.
    #[allow(dead_code)] // the soak's; `migrate` reads peaks
    pub fn rss_mib(&self) -> f64 {
        self.memory_mib("VmRSS:")
    }

    /// A `kB` line of the process's `/proc/PID/status`, in MiB.
    fn memory_mib(&self, line: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }

    /// Starts the peak over from the current resident memory (Linux: `clear_refs` 5), so that
    /// each phase's peak is its own.
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }
}

/// Each process's peak resident memory since the last reset, and a reset for the next phase.
pub fn phase_peaks(procs: &[&Proc]) -> Vec<f64> {
    procs
        .iter()
        .map(|p| {
            let peak = p.peak_rss_mib();
            p.reset_peak();
            peak
        })
        .collect()
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn spawn(
    name: &'static str,
    mut command: Command,
    logs: &Path,
    port: u16,
) -> anyhow::Result<Proc> {
    let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
    let child = command
        .env(
            "RUST_LOG",
            std::env::var("COSELL_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()?;
    Ok(Proc {
        name,
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// This benchmark again, as one service; `more`: its further settings.
pub fn child(
    service: &'static str,
    port: u16,
    db: &str,
    logs: &Path,
    more: &[(&str, &str)],
) -> anyhow::Result<Proc> {
    let this = std::env::current_exe()?;
    // The service `COSELL_BENCH_HEAPTRACK` names runs under heaptrack, which writes its record
    // to `logs` (docs/benchmarks.md, "Profiling the heap"): for machines where attaching it to
    // a running process fails.
    let mut c = if env("COSELL_BENCH_HEAPTRACK") == service {
        let mut c = Command::new("heaptrack");
        c.arg("-o")
            .arg(logs.join(format!("heaptrack.{service}")))
            .arg(this);
        c
    } else {
        Command::new(this)
    };
    c.env(SERVE_VAR, service)
        .env("COSELL_BENCH_LISTEN", format!("127.0.0.1:{port}"))
        .env("COSELL_BENCH_DB", db)
        .envs(more.iter().copied());
    spawn(service, c, logs, port)
}

pub async fn wait_until_serving(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(channel) = Endpoint::from_shared(url.to_owned())?.connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            if health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn token(identity: &Channel, email: &str) -> anyhow::Result<String> {
    Ok(
        ipb::token_service_client::TokenServiceClient::new(identity.clone())
            .sign_in_with_email(ipb::SignInWithEmailRequest {
                email: email.into(),
                organization: String::new(),
            })
            .await?
            .into_inner()
            .access_token,
    )
}

/// The four services as processes, each on a PostgreSQL database of its own (dropped with it).
pub struct Suite {
    pub identity: Proc,
    pub directory: Proc,
    pub deals: Proc,
    pub migration: Proc,
    _dbs: [TestDb; 4],
}

impl Suite {
    /// Starts the four on databases of the server `admin`, logging under `logs`, the
    /// directory's index in `work`; returns once each answers its health check.
    pub async fn start(admin: &str, work: &Path, logs: &Path) -> anyhow::Result<Self> {
        let dbs = [
            TestDb::postgres(admin).await?,
            TestDb::postgres(admin).await?,
            TestDb::postgres(admin).await?,
            TestDb::postgres(admin).await?,
        ];
        let ports = [free_port()?, free_port()?, free_port()?, free_port()?];
        let identity = child("identity", ports[0], &dbs[0].url, logs, &[])?;
        wait_until_serving(&identity.url).await?;
        let index = work.join("index");
        let directory = child(
            "directory",
            ports[1],
            &dbs[1].url,
            logs,
            &[
                ("COSELL_BENCH_INDEX", &index.to_string_lossy()),
                ("COSELL_BENCH_IDENTITY", &identity.url),
            ],
        )?;
        let deals = child(
            "deals",
            ports[2],
            &dbs[2].url,
            logs,
            &[
                ("COSELL_BENCH_IDENTITY", &identity.url),
                ("COSELL_BENCH_DIRECTORY", &directory.url),
            ],
        )?;
        let mut migration_cmd = Command::new(env!("CARGO_BIN_EXE_cosell-migration"));
        migration_cmd.args([
            "--listen",
            &format!("127.0.0.1:{}", ports[3]),
            "--identity-url",
            &identity.url,
            "--service-secret",
            &secret("migration"),
            "--deals-url",
            &deals.url,
            "--directory-url",
            &directory.url,
            "--database-url",
            &dbs[3].url,
        ]);
        let migration = spawn("migration", migration_cmd, logs, ports[3])?;
        for p in [&directory, &deals, &migration] {
            wait_until_serving(&p.url).await?;
        }
        Ok(Self {
            identity,
            directory,
            deals,
            migration,
            _dbs: dbs,
        })
    }

    pub fn procs(&self) -> [&Proc; 4] {
        [
            &self.identity,
            &self.directory,
            &self.deals,
            &self.migration,
        ]
    }
}

/// Imports the export in `export` into `organization` as `token`: its files streamed in 1 MiB
/// chunks, as `cosell psc import` sends them.
pub async fn upload(
    client: &mut pb::migration_service_client::MigrationServiceClient<Channel>,
    token: &str,
    organization: &str,
    export: &Path,
) -> anyhow::Result<pb::PscImport> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let files = export.to_owned();
    let org = organization.to_owned();
    let sender = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use std::io::Read;
        let mut first = true;
        for name in cosell_migration::upload::BUNDLE_FILES {
            let Ok(mut f) = std::fs::File::open(files.join(name)) else {
                continue;
            };
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                let organization = if first { org.clone() } else { String::new() };
                first = false;
                let message = pb::ImportPscExportRequest {
                    organization,
                    file_name: name.to_string(),
                    chunk: buf[..n].to_vec(),
                };
                if tx.blocking_send(message).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    });
    let imported = client
        .import_psc_export(cosell_testkit::authed(
            token,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await?
        .into_inner()
        .import
        .unwrap_or_default();
    sender.await??;
    Ok(imported)
}

/// Starts the deal migration of `organization` as `starter` and follows it as `watcher` until
/// it ends, as `cosell migration deals start --wait` does: the watch stream, to its end.
pub async fn run_to_end(
    client: &mut pb::migration_service_client::MigrationServiceClient<Channel>,
    starter: &str,
    watcher: &str,
    organization: &str,
) -> anyhow::Result<()> {
    let parent = organization.to_owned();
    client
        .start_deal_migration(cosell_testkit::authed(
            starter,
            pb::StartDealMigrationRequest {
                parent: parent.clone(),
            },
        ))
        .await?;
    let mut watch = client
        .watch_deal_migration(cosell_testkit::authed(
            watcher,
            pb::WatchDealMigrationRequest { parent },
        ))
        .await?
        .into_inner();
    while watch.message().await?.is_some() {}
    Ok(())
}

/// The report's MIGRATED rows, read a page of 1,000 at a time as `token`.
pub async fn migrated_in_report(
    client: &mut pb::migration_service_client::MigrationServiceClient<Channel>,
    token: &str,
    organization: &str,
) -> anyhow::Result<usize> {
    let (mut migrated, mut page_token) = (0, String::new());
    loop {
        let page = client
            .list_deal_migration_report(cosell_testkit::authed(
                token,
                pb::ListDealMigrationReportRequest {
                    parent: organization.to_owned(),
                    page_size: 1000,
                    page_token,
                },
            ))
            .await?
            .into_inner();
        migrated += page
            .results
            .iter()
            .filter(|r| r.state == "MIGRATED")
            .count();
        if page.next_page_token.is_empty() {
            return Ok(migrated);
        }
        page_token = page.next_page_token;
    }
}
