//! `cosell health`, the container health check of `docker-compose.yml`: exit 0 while a server
//! says SERVING, 1 with one line saying why when it does not (draining on SIGTERM, an unknown
//! service) or cannot be reached.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::Server;

fn health(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cosell"))
        .arg("health")
        .args(args)
        .env_remove("COSELL_SERVER")
        .env_remove("COSELL_CA_CERT")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_owned()
}

/// The one line of stderr a failed check prints.
fn one_line_error(out: &Output) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn a_serving_server_passes_and_a_draining_one_fails() {
    let server = Server::start_with(&["--demo", "--shutdown-drain-ms", "10000"]).await;
    let url = server.url();

    let out = health(&["--addr", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{url}: SERVING"));

    // Each service of the suite by its full name, as the health service registers them.
    for service in [
        "cosell.identity.v1.AccessService",
        "cosell.directory.v1.DirectoryService",
        "cosell.deals.v1.ReferralService",
        "cosell.migration.v1.MigrationService",
    ] {
        let out = health(&["--server", &url, "--service", service]);
        assert!(out.status.success(), "{service}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{service} at {url}: SERVING"));
    }

    let out = health(&["--server", &url, "--service", "cosell.nothing.v1.NoService"]);
    let err = one_line_error(&out);
    assert!(
        err.contains("cosell.nothing.v1.NoService") && err.contains("NOT_FOUND"),
        "{err}"
    );

    // SIGTERM: health turns NOT_SERVING for the drain time while calls are still answered.
    let _ = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let started = Instant::now();
    let err = loop {
        let out = health(&["--server", &url]);
        if !out.status.success() {
            break one_line_error(&out);
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "health still SERVING 8 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(err, format!("error: {url}: NOT_SERVING"));
}

#[test]
fn a_server_that_is_down_fails_with_a_clear_message() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let out = health(&["--addr", &url, "--timeout-secs", "2"]);
    let err = one_line_error(&out);
    assert!(
        err.starts_with(&format!("error: {url} is not reachable")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A URL that cannot work is a usage error (exit 2), not a failed check.
    let out = health(&["--addr", "not a url"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
