//! What the fault-suite test binaries share: the `martelo-jepsen run` command line they start
//! from and reading the run's `summary.json`.

use std::path::Path;
use std::process::{Command, Output};

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
