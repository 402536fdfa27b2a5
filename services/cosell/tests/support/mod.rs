//! `cosell serve` as a user runs it, in its own process, for the tests of this crate: a fresh
//! data folder, PostgreSQL databases when `COSELL_TEST_DATABASE_URL` is set, the address it
//! prints, what it logs, and a stop by SIGTERM.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use cosell_testkit::TestDb;

pub mod curl;
pub mod raw;
pub mod tools;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The bash block of the README between `<!-- tour:NAME -->` and `<!-- /tour:NAME -->`.
pub fn readme_tour(name: &str) -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let start = readme
        .find(&format!("<!-- tour:{name} -->"))
        .expect("tour start marker");
    let end = readme
        .find(&format!("<!-- /tour:{name} -->"))
        .expect("tour end marker");
    let block = &readme[start..end];
    let code_start = block.find("```bash\n").expect("bash block") + "```bash\n".len();
    let code_end = block[code_start..].find("```").unwrap() + code_start;
    block[code_start..code_end].to_owned()
}

pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Every line the server wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
    _data: tempfile::TempDir,
    /// The databases of identity, the directory, deals and migration.
    pub dbs: (TestDb, TestDb, TestDb, TestDb),
}

impl Server {
    /// `cosell serve --demo`.
    pub async fn start() -> Server {
        Self::start_with(&["--demo"]).await
    }

    /// `cosell serve` with `args` (and a fresh data folder, port 0, no drain time unless `args`
    /// give one).
    pub async fn start_with(args: &[&str]) -> Server {
        let db = TestDb::new().await.unwrap();
        let directory_db = TestDb::new().await.unwrap();
        let deals_db = TestDb::new().await.unwrap();
        let migration_db = TestDb::new().await.unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosell"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        if !args.contains(&"--shutdown-drain-ms") {
            cmd.args(["--shutdown-drain-ms", "0"]);
        }
        cmd.args(args)
            .arg("--data-dir")
            .arg(data.path())
            .env_remove("COSELL_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if db.is_postgres() {
            cmd.arg("--database-url-identity").arg(&db.url);
            cmd.arg("--database-url-directory").arg(&directory_db.url);
            cmd.arg("--database-url-deals").arg(&deals_db.url);
            cmd.arg("--database-url-migration").arg(&migration_db.url);
        }
        let mut child = cmd.spawn().expect("cosell starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[cosell] {line}");
                // Logged before the address is announced, so a test that reads the log once
                // the server is up sees the listening line too.
                let addr = line
                    .strip_prefix("cosell listening on ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned);
                lines.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("cosell prints its address");
        Server {
            child,
            addr,
            log,
            _data: data,
            dbs: (db, directory_db, deals_db, migration_db),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's stderr so far, one string.
    pub fn logged(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Runs `cosell ARGS --server URL` with `token` as COSELL_TOKEN; its stdout. Fails the
    /// test when the command fails.
    pub fn cosell(&self, args: &[&str], token: Option<&str>) -> String {
        let out = self.cosell_output(args, token);
        assert!(
            out.status.success(),
            "cosell {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `cosell ARGS --server URL`, whatever it ends with.
    pub fn cosell_output(&self, args: &[&str], token: Option<&str>) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosell"));
        cmd.args(args)
            .arg("--server")
            .arg(self.url())
            .env_remove("COSELL_TOKEN");
        if let Some(t) = token {
            cmd.env("COSELL_TOKEN", t);
        }
        cmd.output().unwrap()
    }

    /// SIGTERM, and the exit status (the test fails if it does not stop within `within`).
    pub fn stop_within(mut self, within: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = std::time::Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("cosell did not stop within {within:?} of SIGTERM");
    }

    /// SIGTERM, and the exit status.
    pub fn stop(self) -> std::process::ExitStatus {
        self.stop_within(Duration::from_secs(10))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
