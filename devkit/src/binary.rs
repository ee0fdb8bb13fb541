//! Where the tests, the bench and the fault suite find the `martelo` binary.
//!
//! Cargo gives `CARGO_BIN_EXE_martelo` only to the crate that builds the binary, so every
//! other crate's tests take it from `MARTELO_BIN`, else `$CARGO_TARGET_DIR/debug/martelo`,
//! else `<workspace>/target/debug/martelo` (build it with
//! `cargo build -p martelo-cluster --bin martelo`).

use std::path::PathBuf;

/// The `martelo` binary to run: `MARTELO_BIN`, else `$CARGO_TARGET_DIR/debug/martelo`, else
/// `<workspace>/target/debug/martelo`.
///
/// # Panics
/// When `MARTELO_BIN` is not set and the binary is not at the default place, with a message
/// saying how to build it. Meant for tests, where that is the clearest failure.
pub fn martelo_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("MARTELO_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join("martelo");
    assert!(
        path.exists(),
        "the martelo binary is not at {}: build it with `cargo build -p martelo-cluster \
         --bin martelo` or set MARTELO_BIN",
        path.display()
    );
    path
}
