//! Compiles every package under `proto/` with protox (pure Rust: no protoc anywhere), writes one
//! file descriptor set per package for server reflection, generates the Rust code once from
//! the union of them, and generates the input-limit checks from the field comments
//! (`build/limits.rs`), which the codec of every client and server runs.

use std::path::{Path, PathBuf};

#[path = "src/limits/grammar.rs"]
mod grammar;
#[path = "build/limits.rs"]
mod limits;

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
    println!("cargo:rerun-if-changed=build");
    println!("cargo:rerun-if-changed=src/limits/grammar.rs");

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

    let packages: Vec<String> = PACKAGES.iter().map(|p| p.replace('/', ".")).collect();
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    limits::generate(&all, &packages, &out)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::limits::Codec")
        .compile_fds(all)?;
    Ok(())
}
