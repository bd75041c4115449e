//! Compiles EVA's contracts (every `.proto` under `eva/`) into Rust with tonic and prost.
//!
//! No system `protoc` is assumed: the compiler and the well-known types
//! (`google/protobuf/timestamp.proto`…) come from the `protoc-bin-vendored` crate, and
//! the path to the binary is handed to prost through its `Config`, so the build script
//! needs neither `PROTOC` in the environment nor `unsafe` code.
//!
//! Besides the generated code, the script writes the file-descriptor set
//! `$OUT_DIR/eva_descriptor.bin`, which the crate exports for gRPC reflection.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let contracts = manifest_dir.join("eva");

    let mut protos = Vec::new();
    collect_protos(&contracts, &mut protos)?;
    protos.sort();

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known_types = protoc_bin_vendored::include_path()?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(out_dir.join("eva_descriptor.bin"))
        .compile_with_config(config, &protos, &[manifest_dir, well_known_types])?;

    println!("cargo:rerun-if-changed=eva");
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}

/// Every `.proto` file under `dir`, recursively.
fn collect_protos(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, found)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            found.push(path);
        }
    }
    Ok(())
}
