//! PSC uploads against the `cosell` binary as a user runs it (`cosell serve --demo` in its own
//! process, on a fresh data folder; PostgreSQL databases when `COSELL_TEST_DATABASE_URL` is
//! set), through gRPC as Contoso's account admin: zip bombs refused while the server stays
//! small and healthy, a record past the reader's limit reported as a row, one import at a time
//! per organization, and an upload that sends nothing cancelled.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cosell_proto::identity as ipb;
use cosell_proto::migration as pb;
use cosell_testkit::TestDb;
use cosell_testkit::upload::OpenUpload;
use cosell_testkit::zip::{Entry, archive, crc32, deflate, deflate_repeated};
use tonic::Status;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// `cosell serve --demo` in a process of its own.
struct Server {
    child: Child,
    channel: Channel,
    /// The server's temporary folder (`TMPDIR`), where it spools uploads.
    tmp: tempfile::TempDir,
    _data: tempfile::TempDir,
    _dbs: Vec<TestDb>,
}

/// How long the test servers let an upload send nothing.
const UPLOAD_IDLE_SECS: u64 = 3;

impl Server {
    async fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut dbs = Vec::new();
        for _ in 0..4 {
            dbs.push(TestDb::new().await.unwrap());
        }
        Self::start_on(data, tmp, dbs).await
    }

    /// Starts again on the same data folder and databases, once this one has exited.
    async fn restart(mut self) -> Server {
        assert!(self.child.try_wait().unwrap().is_some(), "stopped first");
        let data = std::mem::replace(&mut self._data, tempfile::tempdir().unwrap());
        let tmp = std::mem::replace(&mut self.tmp, tempfile::tempdir().unwrap());
        let dbs = std::mem::take(&mut self._dbs);
        Self::start_on(data, tmp, dbs).await
    }

    async fn start_on(data: tempfile::TempDir, tmp: tempfile::TempDir, dbs: Vec<TestDb>) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosell"));
        cmd.args(["serve", "--demo", "--listen", "127.0.0.1:0"])
            .args(["--upload-idle-secs", &UPLOAD_IDLE_SECS.to_string()])
            .arg("--data-dir")
            .arg(data.path())
            .env("TMPDIR", tmp.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (service, db) in ["identity", "directory", "deals", "migration"]
            .iter()
            .zip(&dbs)
        {
            if db.is_postgres() {
                cmd.arg(format!("--database-url-{service}")).arg(&db.url);
            }
        }
        let mut child = cmd.spawn().expect("cosell starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("cosell listening on ") {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                eprintln!("[cosell] {line}");
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("cosell prints its address");
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Server {
            child,
            channel,
            tmp,
            _data: data,
            _dbs: dbs,
        }
    }

    /// The process's resident memory now and at its peak, in MB (`/proc/<pid>/status`).
    fn memory_mb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} in {status}"))
                / 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    async fn serving(&self) -> bool {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
        tonic_health::pb::health_client::HealthClient::new(self.channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving)
    }

    async fn token(&self, email: &str) -> String {
        ipb::token_service_client::TokenServiceClient::new(self.channel.clone())
            .sign_in_with_email(ipb::SignInWithEmailRequest {
                email: email.into(),
                organization: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_token
    }

    async fn organization_of(&self, token: &str) -> String {
        ipb::access_service_client::AccessServiceClient::new(self.channel.clone())
            .get_caller(authed(token, ipb::GetCallerRequest {}))
            .await
            .unwrap()
            .into_inner()
            .organization
    }

    /// Uploads `files` (name, bytes) 1 MiB at a time, as the CLI does.
    async fn import(
        &self,
        token: &str,
        organization: &str,
        files: &[(&str, Vec<u8>)],
    ) -> Result<pb::PscImport, Status> {
        let messages = cosell_testkit::upload::messages(organization, files, 1 << 20);
        pb::migration_service_client::MigrationServiceClient::new(self.channel.clone())
            .import_psc_export(authed(token, tokio_stream::iter(messages)))
            .await
            .map(|r| r.into_inner().import.unwrap())
    }

    /// The uploads spooled in the server's temporary folder.
    fn spools(&self) -> Vec<String> {
        spools(self.tmp.path())
    }
}

fn spools(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cosell-psc-upload-"))
        .collect()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    cosell_testkit::authed(token, message)
}

/// The `ErrorInfo` of `status`: reason and metadata.
fn error_info(status: &Status) -> (String, std::collections::HashMap<String, String>) {
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    (info.reason, info.metadata)
}

const ACCOUNTS: &[u8] = b"PartnerAccountId,PartnerAccountName,MpnId\nA1,Contoso Seattle,4000002\n";
const DEALS: &[u8] = b"DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n\
    D1,Lakehouse,A1,Open,2021-01-05T10:00:00Z,no,Partner\n";

/// A plain bundle of one account and one deal.
fn bundle() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("accounts.csv", ACCOUNTS.to_vec()),
        ("deals.csv", DEALS.to_vec()),
    ]
}

/// A zip of `accounts` and `deals` (each an honest entry unless given as a bomb).
fn zip(accounts: Entry<'_>, deals: Entry<'_>) -> Vec<u8> {
    archive(&[accounts, deals])
}

/// A bomb entry: a deflate stream of `block` repeated `times`, declaring 1 MiB and no checksum.
fn bomb<'a>(name: &'a str, stream: &'a [u8]) -> Entry<'a> {
    Entry {
        name,
        deflated: true,
        data: stream,
        crc32: 0,
        size: 1 << 20,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn zip_bombs_are_refused_while_the_server_stays_small_and_serving() {
    let server = Server::start().await;
    let ada = server.token("ada.admin@contoso.com").await;
    let contoso = server.organization_of(&ada).await;
    let (accounts_z, deals_z) = (deflate(ACCOUNTS), deflate(DEALS));

    // accounts.csv: 256 MiB of commas, one record, in a 255 KB zip (the attack).
    let commas = deflate_repeated(&[b','; 1 << 20], 256);
    let upload = zip(
        bomb("accounts.csv", &commas),
        Entry::deflated("deals.csv", DEALS, &deals_z),
    );
    assert!(upload.len() < 400 << 10, "{} bytes", upload.len());
    let refused = server
        .import(&ada, &contoso, &[("psc-export.zip", upload)])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let (reason, metadata) = error_info(&refused);
    assert_eq!(reason, "EXPORT_TOO_LARGE");
    assert_eq!(metadata["file"], "psc-export.zip");
    assert_eq!(metadata["entry"], "accounts.csv");
    assert!(
        refused.message().contains("times its compressed size"),
        "{refused:?}"
    );

    // deals.csv: 4 GiB of lines, a few MB of deflate.
    let lines = b"D1,Lakehouse,A1,Open,2021-01-05T10:00:00Z,no,Partner\n".repeat(20_000);
    let block = &lines[..1 << 20];
    let lines = deflate_repeated(block, 4096);
    let upload = zip(
        Entry::deflated("accounts.csv", ACCOUNTS, &accounts_z),
        bomb("deals.csv", &lines),
    );
    let refused = server
        .import(&ada, &contoso, &[("psc-export.zip", upload)])
        .await
        .unwrap_err();
    let (reason, metadata) = error_info(&refused);
    assert_eq!(reason, "EXPORT_TOO_LARGE", "{refused:?}");
    assert_eq!(metadata["entry"], "deals.csv");

    // A record past the reader's limit that a zip does not give away (stored: 20 values of
    // 60 KiB, 1.2 MiB together) is one row error; the rows around it are kept.
    let value: Vec<u8> = (0..60 << 10).map(|i| b'a' + (i * 7 % 26) as u8).collect();
    let big = vec![value; 20].join(&b',');
    let mut accounts =
        b"PartnerAccountId,PartnerAccountName,MpnId\nA1,Seattle,4000002\nA9,".to_vec();
    accounts.extend_from_slice(&big);
    accounts.extend_from_slice(b",4000001\nA2,Global,4000001\n");
    let stored = Entry {
        name: "accounts.csv",
        deflated: false,
        data: &accounts,
        crc32: crc32(&accounts),
        size: accounts.len() as u32,
    };
    let imported = server
        .import(
            &ada,
            &contoso,
            &[(
                "psc-export.zip",
                zip(stored, Entry::deflated("deals.csv", DEALS, &deals_z)),
            )],
        )
        .await
        .unwrap();
    assert_eq!(imported.accounts, 2);
    assert_eq!(imported.errors.len(), 1, "{:?}", imported.errors);
    assert_eq!(
        (imported.errors[0].file.as_str(), imported.errors[0].line),
        ("accounts.csv", 3)
    );
    assert!(imported.errors[0].reason.contains("1048576 bytes"));

    let (rss, peak) = server.memory_mb();
    eprintln!("server memory after the uploads: {rss} MB resident, {peak} MB at its peak");
    assert!(
        peak < 300,
        "the server's peak resident memory was {peak} MB"
    );
    assert!(server.serving().await, "health stays SERVING");
    assert_eq!(
        server.spools(),
        Vec::<String>::new(),
        "no spool is left behind"
    );

    // A normal import right after works.
    let imported = server.import(&ada, &contoso, &bundle()).await.unwrap();
    assert_eq!((imported.accounts, imported.errors.len()), (1, 0));
}

fn first(organization: &str) -> pb::ImportPscExportRequest {
    pb::ImportPscExportRequest {
        organization: organization.to_owned(),
        file_name: "accounts.csv".into(),
        chunk: ACCOUNTS.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_import_at_a_time_per_organization_and_a_silent_upload_is_cancelled() {
    let server = Server::start().await;
    let ada = server.token("ada.admin@contoso.com").await;
    let rita = server.token("rita.referrals@contoso.com").await;
    let fay = server.token("fay.admin@fabrikam.com").await;
    let contoso = server.organization_of(&ada).await;
    let fabrikam = server.organization_of(&fay).await;

    // Two uploads of Contoso at once: one goes on, the other is refused at once.
    let channel = || server.channel.clone();
    let (refused, going_on) = OpenUpload::first_answer(
        OpenUpload::start(channel(), &ada, first(&contoso)).await,
        OpenUpload::start(channel(), &rita, first(&contoso)).await,
    )
    .await;
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Aborted, "{refused:?}");
    assert_eq!(error_info(&refused).0, "IMPORT_IN_PROGRESS");
    // Fabrikam imports meanwhile.
    let imported = server
        .import(
            &fay,
            &fabrikam,
            &[
                (
                    "accounts.csv",
                    b"PartnerAccountId,PartnerAccountName,MpnId\nF1,Fabrikam,5000001\n".to_vec(),
                ),
                (
                    "deals.csv",
                    String::from_utf8_lossy(DEALS)
                        .replace(",A1,", ",F1,")
                        .into_bytes(),
                ),
            ],
        )
        .await
        .expect("another organization imports meanwhile");
    assert_eq!(imported.deals_added, 1);
    let last = pb::ImportPscExportRequest {
        file_name: "deals.csv".into(),
        chunk: DEALS.to_vec(),
        ..Default::default()
    };
    assert_eq!(going_on.finish(last).await.unwrap().deals_added, 1);

    // An upload that sends nothing more is cancelled after the server's idle time
    // (`--upload-idle-secs`), imports nothing, and lets the next one go on.
    let silent = OpenUpload::start(channel(), &ada, first(&contoso)).await;
    let cancelled = tokio::time::timeout(Duration::from_secs(60), silent.call)
        .await
        .expect("the server cancels a silent upload")
        .unwrap()
        .unwrap_err();
    assert_eq!(
        cancelled.code(),
        tonic::Code::DeadlineExceeded,
        "{cancelled:?}"
    );
    assert_eq!(error_info(&cancelled).0, "UPLOAD_IDLE");
    drop(silent.messages);
    let history = pb::migration_service_client::MigrationServiceClient::new(server.channel.clone())
        .list_psc_imports(authed(
            &ada,
            pb::ListPscImportsRequest {
                parent: contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .imports;
    // The demo's import and the one that went on above; not the silent one.
    assert_eq!(history.len(), 2, "{history:?}");
    server
        .import(&ada, &contoso, &bundle())
        .await
        .expect("the silent upload's lock went with it");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_an_upload_exits_in_time_and_imports_nothing_of_it() {
    let server = Server::start().await;
    let ada = server.token("ada.admin@contoso.com").await;
    let contoso = server.organization_of(&ada).await;
    let imports = |server: &Server| {
        let channel = server.channel.clone();
        let (ada, contoso) = (ada.clone(), contoso.clone());
        async move {
            pb::migration_service_client::MigrationServiceClient::new(channel)
                .list_psc_imports(authed(&ada, pb::ListPscImportsRequest { parent: contoso }))
                .await
                .unwrap()
                .into_inner()
                .imports
        }
    };
    let before = imports(&server).await;

    // A large upload in flight: a file of new deals, 1 MiB at a time, that never ends.
    let upload = OpenUpload::start(
        server.channel.clone(),
        &ada,
        pb::ImportPscExportRequest {
            organization: contoso.clone(),
            file_name: "accounts.csv".into(),
            chunk: ACCOUNTS.to_vec(),
        },
    )
    .await;
    let sender = upload.messages.clone();
    let feeding = tokio::spawn(async move {
        let mut n = 0u64;
        let header = b"DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n";
        let mut first = true;
        loop {
            let mut chunk = if first { header.to_vec() } else { Vec::new() };
            first = false;
            while chunk.len() < 1 << 20 {
                n += 1;
                chunk.extend_from_slice(
                    format!("T{n},Deal {n},A1,Open,2021-01-05T10:00:00Z,no,Partner\n").as_bytes(),
                );
            }
            let message = pb::ImportPscExportRequest {
                file_name: "deals.csv".into(),
                chunk,
                ..Default::default()
            };
            if sender.send(message).await.is_err() {
                return;
            }
        }
    });
    // And a watch of the change feed (a referrals user's), open and idle.
    let rita = server.token("rita.referrals@contoso.com").await;
    let mut watch =
        cosell_proto::deals::event_service_client::EventServiceClient::new(server.channel.clone())
            .watch_events(authed(
                &rita,
                cosell_proto::deals::WatchEventsRequest {
                    parent: contoso.clone(),
                    after: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid = server.child.id().to_string();
    let started = std::time::Instant::now();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut server = server;
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        // The bound: the drain time (500 ms by default) plus 30 s.
        assert!(
            started.elapsed() < Duration::from_secs(31),
            "still running {:?} after SIGTERM",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "a graceful exit");
    let answer = upload.call.await.unwrap().unwrap_err();
    assert_eq!(answer.code(), tonic::Code::Unavailable, "{answer:?}");
    // The watch ended with UNAVAILABLE too (resume elsewhere with the last cursor), not
    // with a dropped connection.
    let ended = loop {
        match watch.message().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    let ended = ended.expect_err("the watch ends with a status");
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    feeding.abort();

    let server = server.restart().await;
    let ada = server.token("ada.admin@contoso.com").await;
    let after = pb::migration_service_client::MigrationServiceClient::new(server.channel.clone())
        .list_psc_imports(authed(
            &ada,
            pb::ListPscImportsRequest {
                parent: contoso.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .imports;
    assert_eq!(
        after.len(),
        before.len(),
        "nothing of the cut upload imported: {after:?}"
    );
    server
        .import(&ada, &contoso, &bundle())
        .await
        .expect("the next import works: no lock left behind");
}
