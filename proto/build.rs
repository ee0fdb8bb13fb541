//! Generates the prost messages and tonic services from `proto/martelo/v1/*.proto`.
//!
//! `protox` parses the .proto files in pure Rust, so building needs no system `protoc`
//! (CI and developer machines do not have one). The resulting descriptor set goes to
//! `tonic-prost-build`, which writes `martelo.v1.rs` into `OUT_DIR`; `src/lib.rs` includes it.

use std::path::Path;

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: [&str; 4] = [
    "proto/martelo/v1/common.proto",
    "proto/martelo/v1/raft.proto",
    "proto/martelo/v1/client.proto",
    "proto/martelo/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `compile_fds` does not emit rerun-if-changed lines (protoc is never run), so list every
    // input here; otherwise editing a .proto would not regenerate the code.
    println!("cargo:rerun-if-changed=build.rs");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    assert!(
        Path::new(PROTO_ROOT).is_dir(),
        "proto root {PROTO_ROOT} is missing"
    );

    // protox keeps source comments, so the generated Rust carries the field documentation.
    let descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // `bytes::Bytes` for opaque payloads: log entries and snapshot chunks are passed on
        // to the codec or the disk without a copy into a `Vec`.
        .bytes(".martelo.v1")
        .compile_fds(descriptors)?;
    Ok(())
}
