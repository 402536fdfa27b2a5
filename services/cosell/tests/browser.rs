//! A web page calls `cosell serve --demo` through gRPC-Web from a headless browser (Debian's
//! `chromium`): the page (`browser/page.js`, with code generated from `proto/` by
//! `@bufbuild/protoc-gen-es` and `@connectrpc/connect-web`'s gRPC-Web transport, loaded as ES
//! modules through an import map) is served by this test from two origins. The server allows one
//! of them (`--cors-origin`): from it the page signs in, searches and gets a referral's
//! `NOT_FOUND`; from the other the browser refuses the first call. Preflights are checked with
//! curl too.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use support::{Server, tools};

const PACKAGES: &[&str] = &[
    "@bufbuild/buf@1.75.0",
    "@bufbuild/protoc-gen-es@2.17.0",
    "@bufbuild/protobuf@2.17.0",
    "@connectrpc/connect@2.3.0",
    "@connectrpc/connect-web@2.3.0",
];

/// The browser: `COSELL_CHROMIUM`, or Debian's `chromium` (installed here if missing).
fn chromium() -> PathBuf {
    if let Ok(p) = std::env::var("COSELL_CHROMIUM") {
        return PathBuf::from(p);
    }
    let installed = Path::new("/usr/bin/chromium");
    if !installed.exists() {
        let status = Command::new("sh")
            .args([
                "-c",
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
            ])
            .status()
            .expect("apt-get runs");
        assert!(status.success(), "apt-get install chromium");
    }
    installed.to_owned()
}

/// The page's folder: `index.html` (with the import map), `page.js`, the generated code under
/// `gen/`, and the npm packages under `node_modules/`.
fn build_page(dir: &Path) {
    let modules = tools::npm_install(
        "connect-web",
        PACKAGES,
        "@connectrpc/connect-web/package.json",
    );
    tools::generate_es(
        &modules,
        &["target=js", "import_extension=js"],
        &dir.join("gen"),
    );
    std::os::unix::fs::symlink(&modules, dir.join("node_modules")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/page.js"),
        dir.join("page.js"),
    )
    .unwrap();
    let html = format!(
        r#"<!doctype html><html><head><meta charset="utf-8">
<script type="importmap">{}</script></head>
<body><pre id="result"></pre><script type="module" src="/page.js"></script></body></html>"#,
        import_map(&modules)
    );
    std::fs::write(dir.join("index.html"), html).unwrap();
}

/// Every ES module entry point of the packages, by the name code imports it as.
fn import_map(modules: &Path) -> String {
    let mut imports = serde_json::Map::new();
    for package in [
        "@bufbuild/protobuf",
        "@connectrpc/connect",
        "@connectrpc/connect-web",
    ] {
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(modules.join(package).join("package.json")).unwrap(),
        )
        .unwrap();
        for (entry, targets) in manifest["exports"].as_object().unwrap() {
            let Some(file) = targets["import"].as_str() else {
                continue;
            };
            let name = format!("{package}{}", entry.trim_start_matches('.'));
            let url = format!("/node_modules/{package}/{}", file.trim_start_matches("./"));
            imports.insert(name, url.into());
        }
    }
    serde_json::json!({ "imports": imports }).to_string()
}

/// Serves the files of `dir` over HTTP/1.0 on a port of its own, for the life of the test, and
/// sends what a page posts to `/done` to `done`; the origin (`http://127.0.0.1:PORT`).
fn serve_files(dir: PathBuf, done: mpsc::Sender<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (dir, done) = (dir.clone(), done.clone());
            std::thread::spawn(move || serve_one(&stream, &dir, &done));
        }
    });
    origin
}

fn serve_one(stream: &std::net::TcpStream, dir: &Path, done: &mpsc::Sender<String>) {
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    let _ = reader.read_line(&mut request);
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut writer = stream;
    if request.starts_with("POST /done ") {
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let _ = done.send(String::from_utf8_lossy(&body).into_owned());
        let _ = writer.write_all(b"HTTP/1.0 204 No Content\r\n\r\n");
        return;
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/");
    let path = if path == "/" { "/index.html" } else { path };
    let file = dir.join(path.trim_start_matches('/'));
    let kind = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html",
        Some("js") => "text/javascript",
        _ => "application/octet-stream",
    };
    let _ = match std::fs::read(&file) {
        Ok(body) if !path.contains("..") => writer
            .write_all(
                format!(
                    "HTTP/1.0 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .and_then(|_| writer.write_all(&body)),
        _ => writer.write_all(b"HTTP/1.0 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
    };
}

/// The page's result lines, as it posted them once its work was done (the browser is stopped
/// then).
fn run_page(
    chromium: &Path,
    origin: &str,
    server: &str,
    done: &mpsc::Receiver<String>,
) -> Vec<String> {
    let url = format!("{origin}/index.html?server=http://{server}");
    let profile = tempfile::tempdir().unwrap();
    let mut browser = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium starts");
    let lines = done.recv_timeout(Duration::from_secs(90));
    let _ = browser.kill();
    let _ = browser.wait();
    lines
        .expect("the page posts its result within 90 s")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `curl -X OPTIONS` as a browser's preflight from `origin`: the allowed origin it answers.
fn preflight(server: &str, origin: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "-X", "OPTIONS"])
        .args(["-H", &format!("origin: {origin}")])
        .args(["-H", "access-control-request-method: POST"])
        .args([
            "-H",
            "access-control-request-headers: content-type,x-grpc-web,authorization",
        ])
        .arg(format!(
            "http://{server}/cosell.identity.v1.TokenService/SignInWithEmail"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("access-control-allow-origin:")
            .map(|v| v.trim().to_owned())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_page_calls_through_grpc_web_from_an_allowed_origin_only() {
    let chromium = chromium();
    let page = tempfile::tempdir().unwrap();
    build_page(page.path());
    let (done_tx, done) = mpsc::channel();
    let allowed = serve_files(page.path().to_owned(), done_tx.clone());
    let other = serve_files(page.path().to_owned(), done_tx);
    let server = Server::start_with(&["--demo", "--cors-origin", &allowed]).await;

    assert_eq!(
        preflight(&server.addr, &allowed).as_deref(),
        Some(allowed.as_str())
    );
    assert_eq!(preflight(&server.addr, &other), None, "another origin");

    let lines = run_page(&chromium, &allowed, &server.addr, &done);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("browser: passed"),
        "{lines:#?}"
    );
    assert!(
        lines[0].starts_with("signed in organizations/"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "directory: Dynatrace Global Finance GmbH");
    assert!(lines[2].starts_with("error: NotFound"), "{lines:?}");

    let lines = run_page(&chromium, &other, &server.addr, &done);
    eprintln!("from {other}: {lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("failed:") && lines[0].contains("Failed to fetch"),
        "the browser refuses another origin: {lines:?}"
    );
    assert!(server.stop().success());
}
