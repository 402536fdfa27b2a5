//! The crash test: the migration service runs as a process of its own (`cosell-migration`), is
//! killed with SIGKILL several times during a run of 20,000 deals and started again each time.
//! Afterwards every eligible deal is in the deals service exactly once, and the report and the
//! status say so. Identity, deals and the directory run in this test's process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cosell_migration::psc::synthetic;
use cosell_proto::deals as dpb;
use cosell_proto::migration as pb;
use cosell_testkit::{DATABASE_URL_VAR, TestDb, authed};
use tonic::transport::{Channel, Endpoint};

use crate::harness::{Harness, MigrationIn, SERVICE_SECRET};

const DEALS: usize = 20_000;
/// Short leases, so that a killed replica's batches are taken over within seconds.
const LEASE_SECS: &str = "2";
/// How the replica is stopped once the deals service holds this many referrals (of 24,000: a
/// partner referral per eligible deal, and the platform's side of each co-sell one): killed,
/// the first time as soon as anything arrived, while the first batches are in flight; and
/// once stopped gracefully, with a watch open.
const STOPS: [(u64, Stop); 5] = [
    (1, Stop::Kill),
    (6_000, Stop::Kill),
    (9_000, Stop::Terminate),
    (12_000, Stop::Kill),
    (18_000, Stop::Kill),
];

#[derive(Clone, Copy)]
enum Stop {
    /// SIGKILL: no shutdown, no leases given back.
    Kill,
    /// SIGTERM: a graceful shutdown.
    Terminate,
}
/// The longest the test waits for anything.
const PATIENCE: Duration = Duration::from_secs(300);

/// Held by each test that starts service processes of its own (this one, `replicas`, `traces`):
/// they take turns. Each process keeps a pool (`COSELL_DATABASE_POOL_SIZE`, 8 in CI) and the
/// deals service its lane besides; this test and the replicas test side by side, with the
/// harness's in-process services of both, reached PostgreSQL's 100 connections, and a call
/// failed on "sorry, too many clients already".
static PROCESSES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This test's turn to start processes, held until the guard is dropped.
pub(crate) async fn processes_turn() -> tokio::sync::MutexGuard<'static, ()> {
    PROCESSES.lock().await
}

/// A service as a process of its own: started, killed and started again on one port and
/// database. Here the migration service; the four-process trace test (`traces`) runs each
/// service's binary so.
pub(crate) struct Replica {
    binary: PathBuf,
    command: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    pub(crate) url: String,
    child: Option<Child>,
}

impl Replica {
    /// A migration replica on `database_url`, with identity and the directory at `harness_url`
    /// and deals at `deals_url`, leasing batches for `lease_secs`.
    pub(crate) fn new(
        harness_url: &str,
        deals_url: &str,
        database_url: &str,
        lease_secs: &str,
        log: PathBuf,
    ) -> Self {
        Self::service(
            Path::new(env!("CARGO_BIN_EXE_cosell-migration")),
            &[
                "--identity-url",
                harness_url,
                "--deals-url",
                deals_url,
                "--directory-url",
                harness_url,
                "--service-secret",
                SERVICE_SECRET,
                "--database-url",
                database_url,
                "--lease-secs",
                lease_secs,
            ],
            log,
        )
    }

    /// `binary` (a service's) with `args`, listening on a free port of 127.0.0.1, logging to
    /// `log`; not started yet.
    pub(crate) fn service(binary: &Path, args: &[&str], log: PathBuf) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let listen = format!("127.0.0.1:{port}");
        let mut command = vec!["--listen".to_owned(), listen];
        command.extend(args.iter().map(|a| a.to_string()));
        Self {
            binary: binary.to_owned(),
            command,
            env: vec![("RUST_LOG".into(), "info".into())],
            log,
            url: format!("http://127.0.0.1:{port}"),
            child: None,
        }
    }

    /// Sets an environment variable of the process (from its next start).
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the process and waits until its health check answers.
    pub(crate) async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.binary)
            .args(&self.command)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(channel) = Endpoint::from_shared(self.url.clone())
                .unwrap()
                .connect()
                .await
                && tonic_health::pb::health_client::HealthClient::new(channel)
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not come up: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, and the time the process took to exit, which it must do by itself.
    pub(crate) async fn terminate(&mut self) -> Duration {
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "exited with {status}: {}",
                    self.log_tail()
                );
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "still running 30 s after SIGTERM: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown, no leases given back.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub(crate) async fn client(
        &self,
    ) -> pb::migration_service_client::MigrationServiceClient<Channel> {
        pb::migration_service_client::MigrationServiceClient::new(
            Endpoint::from_shared(self.url.clone())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        )
    }

    /// `token` starts `organization`'s deal migration through this replica.
    pub(crate) async fn start_run(&self, token: &str, organization: &str) -> pb::DealMigrationRun {
        self.client()
            .await
            .start_deal_migration(authed(
                token,
                pb::StartDealMigrationRequest {
                    parent: organization.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap()
    }

    /// `token`'s watch of `organization`'s deal migration.
    async fn watch(
        &self,
        token: &str,
        organization: &str,
    ) -> tonic::Streaming<pb::WatchDealMigrationResponse> {
        self.client()
            .await
            .watch_deal_migration(authed(
                token,
                pb::WatchDealMigrationRequest {
                    parent: organization.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A database for service processes that outlives them: on PostgreSQL when the tests are
/// (keep the `TestDb` as long as it is used), else the SQLite file `{name}.db` in `dir`.
pub(crate) async fn own_database(dir: &Path, name: &str) -> (Option<TestDb>, String) {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(admin) => {
            let db = TestDb::postgres(&admin).await.unwrap();
            let url = db.url.clone();
            (Some(db), url)
        }
        Err(_) => (
            None,
            format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{name}.db")).display()
            ),
        ),
    }
}

/// A service binary that cargo built beside this crate's (`cosell-deals`, ...).
pub(crate) fn binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_cosell-migration")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bins` first (`cargo test --workspace` builds it)",
        path.display()
    );
    path
}

/// Uploads the export in `dir` as `token`, in 1 MiB chunks.
pub(crate) async fn upload(
    client: &mut pb::migration_service_client::MigrationServiceClient<Channel>,
    token: &str,
    organization: &str,
    dir: &Path,
) -> pb::PscImport {
    let files: Vec<(&str, Vec<u8>)> = cosell_migration::upload::BUNDLE_FILES
        .iter()
        .filter_map(|name| Some((*name, std::fs::read(dir.join(name)).ok()?)))
        .collect();
    let messages = cosell_testkit::upload::messages(organization, &files, 1 << 20);
    client
        .import_psc_export(authed(token, tokio_stream::iter(messages)))
        .await
        .unwrap()
        .into_inner()
        .import
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_survives_its_replica_being_killed_again_and_again() {
    // The in-process services' warnings and errors, beside the test's output when it fails.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    let _turn = processes_turn().await;
    let h = Harness::start_with(MigrationIn::AnotherProcess).await;
    let work = tempfile::tempdir().unwrap();
    // The process's own database: it must outlive the process (SQLite in a file, when the
    // tests are not on PostgreSQL).
    let (_postgres, database_url) = own_database(work.path(), "migration").await;
    let harness_url = format!("http://{}", h.server.addr);
    let mut replica = Replica::new(
        &harness_url,
        &harness_url,
        &database_url,
        LEASE_SECS,
        work.path().join("migration.log"),
    );
    replica.start().await;

    let export = work.path().join("export");
    synthetic::write(&export, DEALS).unwrap();
    let ada = h.token("ada.admin@contoso.com").await;
    let rita = h.token("rita.referrals@contoso.com").await;
    let imported = upload(&mut replica.client().await, &ada, &h.contoso, &export).await;
    assert_eq!(imported.deals_added as usize, DEALS);
    assert!(imported.errors.is_empty(), "{:?}", imported.errors);
    let eligible: Vec<usize> = (0..DEALS).filter(|i| synthetic::eligible(*i)).collect();
    let co_sell = eligible.iter().filter(|i| i.is_multiple_of(3)).count() as u64;
    let all_referrals = eligible.len() as u64 + co_sell;

    let run = replica.start_run(&rita, &h.contoso).await;
    assert_eq!(run.total as usize, eligible.len());

    // Stopped whenever the deals service has reached the next mark, and started again. After
    // each kill, the deals the deals service has but the migration has not recorded (a batch
    // in flight) are counted: they are sent again, and must not be made twice.
    let org = uuid::Uuid::parse_str(h.contoso.trim_start_matches("organizations/")).unwrap();
    let migration_db = cosell_platform::db::connect(&database_url).await.unwrap();
    let mut in_limbo = Vec::new();
    let mut killed_at = Vec::new();
    for (mark, stop) in STOPS {
        let deadline = Instant::now() + PATIENCE;
        let reached = loop {
            let n = h.deals.store.count_referrals().await.unwrap();
            if n >= mark {
                break n;
            }
            assert!(
                Instant::now() < deadline,
                "stuck at {n} referrals: {}",
                replica.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        match stop {
            Stop::Kill => {
                replica.kill();
                let recorded = crate::count(
                    &migration_db,
                    "SELECT COUNT(*) AS n FROM deal_results WHERE state = 'MIGRATED'",
                )
                .await as u64;
                let arrived = h.deals.store.count_migrated(org).await.unwrap();
                assert!(
                    arrived >= recorded,
                    "{recorded} recorded, {arrived} arrived"
                );
                in_limbo.push(arrived - recorded);
            }
            Stop::Terminate => {
                // A watch is open: it ends (UNAVAILABLE, watch again) rather than hold the
                // shutdown until the run is done.
                let mut watch = replica.watch(&rita, &h.contoso).await;
                let first = watch.message().await.unwrap().unwrap().status.unwrap();
                assert_eq!(first.state(), pb::DealMigrationState::InProgress);
                let took = replica.terminate().await;
                eprintln!("a graceful stop took {took:?}");
                let ended = loop {
                    match watch.message().await {
                        Ok(Some(_)) => continue,
                        other => break other,
                    }
                };
                let code = ended.err().map(|s| s.code());
                assert_eq!(code, Some(tonic::Code::Unavailable), "the watch ended");
            }
        }
        killed_at.push(reached);
        replica.start().await;
    }
    eprintln!(
        "stopped at {killed_at:?} of {all_referrals} referrals; deals sent but not recorded at each kill: {in_limbo:?}"
    );
    assert!(
        in_limbo.iter().any(|n| *n > 0),
        "some kill came between the deals service's commit and the recording"
    );
    assert!(
        killed_at.iter().all(|n| *n < all_referrals),
        "every stop came before the run was done: {killed_at:?} of {all_referrals}"
    );

    // Followed to the end by the last replica; every update adds up.
    let mut watch = replica.watch(&rita, &h.contoso).await;
    let mut updates = Vec::new();
    let end = tokio::time::timeout(PATIENCE, async {
        while let Some(m) = watch.message().await.unwrap() {
            updates.push(m.status.unwrap());
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "the run did not finish: {}",
        replica.log_tail()
    );
    let done = updates.last().unwrap().clone();
    let mut before = 0;
    let mut percent = 0;
    for s in &updates {
        // The banner's percentage only grows, and says 100 only once the run finished.
        assert!(percent <= s.percent_done, "{s:?}");
        let finished = s.run.as_ref().is_some_and(|r| r.finish_time.is_some());
        assert_eq!(s.percent_done == 100, finished, "{s:?}");
        percent = s.percent_done;
        // Counted from one snapshot and followed from the run's counts, never ahead of what
        // the end shows, never going back.
        assert!(before <= s.migrated && s.migrated <= done.migrated, "{s:?}");
        assert_eq!(s.migrated, s.run.as_ref().unwrap().migrated, "{s:?}");
        assert_eq!(s.eligible + s.migrated, eligible.len() as i64, "{s:?}");
        before = s.migrated;
    }
    // Every eligible deal migrated: "No deals to migrate", start disabled, the run still shown.
    assert_eq!(done.state(), pb::DealMigrationState::NothingToMigrate);
    assert!(!done.start_enabled);
    assert_eq!(done.percent_done, 100);
    let r = done.run.as_ref().unwrap();
    assert_eq!(r.name, run.name);
    assert_eq!(
        (r.total, r.migrated, r.failed, r.pending),
        (eligible.len() as i64, eligible.len() as i64, 0, 0)
    );
    assert_eq!((done.migrated, done.eligible), (eligible.len() as i64, 0));

    // Every eligible deal exactly once in the deals service, and nothing else.
    assert_eq!(
        h.deals.store.count_referrals().await.unwrap(),
        all_referrals,
        "one partner referral per deal and one platform side per co-sell deal"
    );
    let referrals =
        dpb::referral_service_client::ReferralServiceClient::new(h.server.channel.clone());
    let mut by_deal: HashMap<String, (String, i32)> = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = referrals
            .clone()
            .list_referrals(authed(
                &rita,
                dpb::ListReferralsRequest {
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        for referral in page.referrals {
            let psc = referral.tracking.unwrap_or_default().psc_deal_id;
            let earlier = by_deal.insert(psc.clone(), (referral.name, referral.deal_type));
            assert!(earlier.is_none(), "{psc} is in the deals service twice");
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut want: Vec<String> = eligible.iter().map(|i| synthetic::deal_id(*i)).collect();
    let mut have: Vec<String> = by_deal.keys().cloned().collect();
    want.sort();
    have.sort();
    assert_eq!(have, want, "exactly the eligible deals");

    // The report: a row per eligible deal, naming the referral it became.
    let mut rows = 0;
    let mut page_token = String::new();
    loop {
        let page = replica
            .client()
            .await
            .list_deal_migration_report(authed(
                &rita,
                pb::ListDealMigrationReportRequest {
                    parent: h.contoso.clone(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        for row in &page.results {
            rows += 1;
            let (name, deal_type) = &by_deal[&row.psc_deal_id];
            assert_eq!(
                (row.state.as_str(), row.error.as_str()),
                ("MIGRATED", ""),
                "{row:?}"
            );
            assert_eq!(&row.referral, name, "{row:?}");
            let i: usize = row.psc_deal_id["GEN-".len()..].parse().unwrap();
            let co_sell = i.is_multiple_of(3);
            assert_eq!(
                row.deal_type,
                if co_sell { "CO_SELL" } else { "PARTNER_LED" }
            );
            let want_type = if co_sell {
                dpb::DealType::CoSell
            } else {
                dpb::DealType::PartnerLed
            };
            assert_eq!(*deal_type, want_type as i32, "{}", row.psc_deal_id);
            assert_eq!(row.direction, "OUTBOUND");
            assert!(!row.engagement.is_empty());
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(rows, eligible.len());
}
