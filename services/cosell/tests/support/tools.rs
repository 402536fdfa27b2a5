//! Tools and client libraries from package registries (PyPI, npm), installed once into ignored
//! folders under `.ci/tools/` with the machine's own `python3 -m pip` and `npm`, and other
//! programs run with a time limit.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::workspace_root;

/// `requirement` installed by `python3 -m pip install --target .ci/tools/FOLDER`, unless
/// `installed` (a path inside that folder) is there already; the folder.
pub fn pip_install(folder: &str, requirement: &str, installed: &str) -> PathBuf {
    let target = workspace_root().join(".ci/tools").join(folder);
    if !target.join(installed).exists() {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&target)
            .arg(requirement)
            .status()
            .unwrap_or_else(|e| panic!("python3 -m pip runs (to install {requirement}): {e}"));
        assert!(
            status.success(),
            "installing {requirement} from PyPI failed"
        );
    }
    assert!(
        target.join(installed).exists(),
        "{installed} not found in {} after installing {requirement}",
        target.display()
    );
    target
}

/// `packages` installed by `npm install --prefix .ci/tools/FOLDER`, unless `installed` (a path
/// inside its `node_modules`) is there already; that `node_modules`, for NODE_PATH.
pub fn npm_install(folder: &str, packages: &[&str], installed: &str) -> PathBuf {
    let prefix = workspace_root().join(".ci/tools").join(folder);
    let modules = prefix.join("node_modules");
    if !modules.join(installed).exists() {
        let status = Command::new("npm")
            .args(["install", "--prefix"])
            .arg(&prefix)
            .args([
                "--no-save",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "--silent",
            ])
            .args(packages)
            .status()
            .unwrap_or_else(|e| {
                panic!("npm runs (to install {packages:?}; apt-get install -y nodejs npm): {e}")
            });
        assert!(status.success(), "installing {packages:?} from npm failed");
    }
    assert!(
        modules.join(installed).exists(),
        "{installed} not found in {} after installing {packages:?}",
        modules.display()
    );
    modules
}

/// Runs `cmd` to its end, its output captured; fails the test when it runs longer than
/// `within` (and kills it).
pub fn output_within(cmd: &mut Command, within: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} starts: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{cmd:?} did not finish within {within:?}");
        }
    }
}

/// Code for every `.proto` of `proto/`, made by `protoc-gen-es` (in `modules`, with `buf`) with
/// the options `opts` (e.g. `"target=ts"`), into `out`.
pub fn generate_es(modules: &std::path::Path, opts: &[&str], out: &std::path::Path) {
    let bin = modules.join(".bin");
    let template = serde_json::json!({
        "version": "v2",
        "plugins": [{"local": bin.join("protoc-gen-es"), "out": out, "opt": opts}],
    });
    let generated = output_within(
        Command::new(bin.join("buf"))
            .arg("generate")
            .arg(workspace_root().join("proto"))
            .args(["--template", &template.to_string()]),
        Duration::from_secs(300),
    );
    assert!(
        generated.status.success(),
        "buf generate with protoc-gen-es: {}",
        String::from_utf8_lossy(&generated.stderr)
    );
}
