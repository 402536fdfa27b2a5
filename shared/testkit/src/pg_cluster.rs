//! A PostgreSQL cluster of a test's own (`initdb` in a temporary folder, `pg_ctl` on a free
//! port), so that the test can stop and start the database under a running service, as an
//! operator's restart or a failover does. Stopped and removed on drop.
//!
//! Needs PostgreSQL's server binaries (`pg_config --bindir`, or `/usr/lib/postgresql/*/bin`);
//! [`PgCluster::start`] says `None` when they are missing, and the test skips. As root (CI
//! containers), the cluster runs as the `postgres` system user, since PostgreSQL refuses root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running (or stopped) PostgreSQL cluster owned by the test.
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The system user it runs as, when the test runs as root.
    user: Option<String>,
}

/// Where PostgreSQL's server binaries are, if installed.
fn bindir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("pg_ctl").exists() {
            return Some(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PgCluster {
    /// Creates and starts a cluster with trust authentication for `postgres` on 127.0.0.1.
    /// `Ok(None)`: PostgreSQL's server binaries are not installed here.
    pub fn start() -> anyhow::Result<Option<Self>> {
        let Some(bin) = bindir() else {
            return Ok(None);
        };
        let dir = std::env::temp_dir().join(format!("cosell-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let user = running_as_root().then(|| "postgres".to_owned());
        if let Some(u) = &user {
            let status = Command::new("chown").arg(u).arg(&dir).status()?;
            anyhow::ensure!(status.success(), "chown {u} {}", dir.display());
        }
        let cluster = Self {
            bin,
            dir,
            port: free_port()?,
            user,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data().to_string_lossy(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        )?;
        cluster.start_again()?;
        Ok(Some(cluster))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs one of PostgreSQL's programs (as the cluster's user when there is one).
    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let path = self.bin.join(program);
        let mut command = match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let out = command.args(args).current_dir(&self.dir).output()?;
        anyhow::ensure!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`: the admin URL for [`crate::TestDb`].
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once: open connections are cut, as in a crash or a failover (`pg_ctl
    /// stop -m immediate`; recovery replays the WAL at the next start).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.run(
            "pg_ctl",
            &[
                "stop",
                "-D",
                &self.data().to_string_lossy(),
                "-m",
                "immediate",
                "-w",
            ],
        )
    }

    /// Starts the server (again), waiting until it takes connections.
    pub fn start_again(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "start",
                "-D",
                &self.data().to_string_lossy(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
                "-w",
            ],
        )
    }

    /// The folder of the cluster (its data and log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
