//! What the fault-suite test binaries share: the `martelo` binaries they drive (normal and
//! planted), the `martelo-jepsen run` command line they start from, and reading the run's
//! `summary.json`.
//!
//! Binaries: `MARTELO_BIN` (normal) and `MARTELO_PLANTED_BIN` (built with
//! `--features planted-bugs`). When one is unset, [`martelo_bin`] or [`planted_bin`] builds it
//! with `$CARGO build -p martelo-cluster --bin martelo [--features planted-bugs]` into
//! `<target>/jepsen-martelo` or `<target>/planted` (`<target>` is `CARGO_TARGET_DIR` or the
//! test's target dir). Set `ROCKSDB_LIB_DIR` and `ROCKSDB_STATIC` to reuse a prebuilt RocksDB,
//! or that build compiles RocksDB from source (tens of minutes).

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// `martelo-jepsen run` against `binary`, writing into `out`, quiet, with `seed`; callers add
/// the rest of the run's arguments.
pub fn jepsen_run(binary: &Path, out: &Path, seed: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_martelo-jepsen"));
    command
        .arg("run")
        .arg("--martelo-bin")
        .arg(binary)
        .arg("--out")
        .arg(out)
        .args(["--quiet", "--seed", seed]);
    command
}

/// The run's exit code and its `summary.json` in `out`; panics with the run's stderr when
/// there is no summary.
pub fn must_read_summary(out: &Path, output: &Output) -> (i32, Value) {
    let code = output.status.code().unwrap_or(-1);
    let summary = std::fs::read(out.join("summary.json")).unwrap_or_else(|error| {
        panic!(
            "no summary.json ({error}); exit {code}; stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let summary: Value = serde_json::from_slice(&summary).expect("summary.json is JSON");
    (code, summary)
}

/// The summary, pretty-printed for an assertion's message.
pub fn text(summary: &Value) -> String {
    serde_json::to_string_pretty(summary).expect("serializes")
}

/// Runs `martelo-jepsen run` with `args` (seed 42) and returns its exit code, `summary.json`
/// and the directory holding the run (kept while the caller holds it).
pub fn must_run(binary: &Path, args: &[&str]) -> (i32, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("run");
    let output = jepsen_run(binary, &out, "42")
        .args(args)
        .output()
        .expect("martelo-jepsen runs");
    let (code, summary) = must_read_summary(&out, &output);
    (code, summary, dir)
}

/// The run that shows `skip-dedupe`: no faults, half of the acknowledged bids sent again.
pub const SKIP_DEDUPE_RUN: &[&str] = &[
    "--duration",
    "15",
    "--nemesis",
    "none",
    "--resend-percent",
    "50",
];

/// Asserts that a run with the planted `bug` was caught by `checker` (its verdict invalid)
/// and that the exit code says so.
pub fn must_be_caught(code: i32, summary: &Value, bug: &str, checker: &str) {
    assert_eq!(
        validity(summary, checker),
        "invalid",
        "planted {bug} not caught by {checker}: {}",
        text(summary)
    );
    assert_eq!(code, 1);
}

/// The verdict of `checker` in a summary (`valid`, `invalid`, `unknown`, or `missing`).
pub fn validity<'a>(summary: &'a Value, checker: &str) -> &'a str {
    summary["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .find(|verdict| verdict["checker"] == checker)
        .and_then(|verdict| verdict["validity"].as_str())
        .unwrap_or("missing")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the test tmp dir is inside the target dir")
            .to_path_buf(),
    }
}

/// Builds `martelo` (with `features`) into `<target>/<subdir>`, once per test process.
fn build_martelo(features: Option<&str>, subdir: &str) -> PathBuf {
    // One build at a time: both builds share the workspace lock anyway.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let target = target_dir().join(subdir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("jepsen/ is inside the workspace");
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "-p", "martelo-cluster", "--bin", "martelo"])
        .arg("--target-dir")
        .arg(&target);
    if let Some(features) = features {
        command.args(["--features", features]);
    }
    let status = command.status().expect("cargo runs");
    assert!(status.success(), "building martelo ({features:?}) failed");
    target.join("debug").join("martelo")
}

/// The normal `martelo` binary: `MARTELO_BIN`, else built.
pub fn martelo_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("MARTELO_BIN") {
        Some(path) => PathBuf::from(path),
        None => build_martelo(None, "jepsen-martelo"),
    })
}

/// The `martelo` binary with planted bugs: `MARTELO_PLANTED_BIN`, else built.
pub fn planted_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("MARTELO_PLANTED_BIN") {
        Some(path) => PathBuf::from(path),
        None => build_martelo(Some("planted-bugs"), "planted"),
    })
}
