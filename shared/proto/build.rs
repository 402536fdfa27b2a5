//! Compiles every package under `proto/` with protox (pure Rust: no protoc anywhere), writes one
//! file descriptor set per package for server reflection, and generates the Rust code once from
//! the union of them.

use std::path::{Path, PathBuf};

/// The packages, by directory under `proto/`. Each one gets `<dir with _>.bin` in OUT_DIR.
const PACKAGES: &[&str] = &[
    "cosell/identity/v1",
    "cosell/directory/v1",
    "cosell/deals/v1",
    "cosell/migration/v1",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", root.display());

    let mut all = prost_types::FileDescriptorSet::default();
    for package in PACKAGES {
        let dir = root.join(package);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "proto"))
            .collect();
        files.sort();
        let fds = protox::compile(&files, [&root])?;
        let bin = out.join(format!("{}.bin", package.replace('/', "_")));
        std::fs::write(&bin, prost::Message::encode_to_vec(&fds))?;
        for file in fds.file {
            if !all.file.iter().any(|f| f.name == file.name) {
                all.file.push(file);
            }
        }
    }

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(all)?;
    Ok(())
}
