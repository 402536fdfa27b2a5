//! A client nobody here wrote, speaking the Connect protocol to `cosell serve --demo`: a
//! TypeScript client generated from `proto/` by `@bufbuild/protoc-gen-es` (through `buf
//! generate`), compiled by `tsc` and run on Node.js with `@connectrpc/connect-node`
//! (`connect_client/client.ts`: sign in, search, create, list, errors with their details, a
//! PSC upload as a client stream and a watch of a migration run as a server stream). Everything
//! comes from npm, installed once under `.ci/tools/connect-ts`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Server, tools};

/// The npm packages, pinned: the generator must match the runtime it generates for.
const PACKAGES: &[&str] = &[
    "@bufbuild/buf@1.75.0",
    "@bufbuild/protoc-gen-es@2.17.0",
    "@bufbuild/protobuf@2.17.0",
    "@connectrpc/connect@2.3.0",
    "@connectrpc/connect-node@2.3.0",
    "typescript@5.9.3",
    "@types/node@20.19.43",
];

/// Runs `cmd` (a build step) and fails the test with its output unless it succeeds.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = tools::output_within(cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Generates the client's code from `proto/` and compiles it with `client.ts` into `dir`; the
/// compiled client's path.
fn build_client(dir: &Path) -> std::path::PathBuf {
    let modules = tools::npm_install("connect-ts", PACKAGES, "@types/node/package.json");
    tools::generate_es(&modules, &["target=ts"], &dir.join("gen"));
    std::os::unix::fs::symlink(&modules, dir.join("node_modules")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/connect_client/client.ts"),
        dir.join("client.ts"),
    )
    .unwrap();
    std::fs::write(
        dir.join("tsconfig.json"),
        r#"{"compilerOptions": {"target": "ES2022", "module": "node16", "moduleResolution": "node16",
            "strict": true, "skipLibCheck": true, "outDir": "dist", "rootDir": ".",
            "types": ["node"]}, "include": ["client.ts", "gen/**/*.ts"]}"#,
    )
    .unwrap();
    run(
        Command::new(modules.join(".bin/tsc"))
            .arg("-p")
            .arg(dir.join("tsconfig.json")),
        "tsc (the generated code and the client type-check)",
    );
    dir.join("dist/client.js")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generated_typescript_client_speaks_connect() {
    let dir = tempfile::tempdir().unwrap();
    let client = build_client(dir.path());
    let server = Server::start().await;

    let stdout = run(
        Command::new("node").arg(&client).arg(&server.addr),
        "the TypeScript client",
    );
    eprintln!("{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("typescript client: sign in, search, create, list, errors, import and watch passed")
    );
    assert!(server.stop().success());
}
