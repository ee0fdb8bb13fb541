//! What the bench's end-to-end tests share: run `martelo bench --local` in-process with the
//! given flags and read back its report.
//!
//! The `martelo` binary that the local cluster runs comes from `martelo_devkit::martelo_bin()`
//! (`MARTELO_BIN`, else `$CARGO_TARGET_DIR/debug/martelo`): build it first with
//! `cargo build -p martelo-cluster --bin martelo`.

use clap::Parser;
use martelo_bench::BenchArgs;
use serde_json::Value;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

/// Runs `bench --local --out <temp> <flags>` to the end and returns its `report.json`, after
/// checking that the plot with its p99 series was written beside it.
pub fn must_run_and_read_report(flags: &[&str]) -> Value {
    let out = tempfile::tempdir().expect("temporary directory");
    let out_flag = out.path().to_string_lossy().into_owned();
    let argv = ["bench", "--local", "--out", out_flag.as_str()]
        .into_iter()
        .chain(flags.iter().copied());
    let args = Cli::try_parse_from(argv).expect("flags parse").bench;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(martelo_bench::run(args, martelo_devkit::martelo_bin()))
        .expect("the bench runs");
    let json = std::fs::read_to_string(out.path().join("report.json")).expect("report.json");
    let svg = std::fs::read_to_string(out.path().join("plot.svg")).expect("plot.svg");
    assert!(
        svg.contains("data-series=\"p99\""),
        "plot.svg has the p99 series"
    );
    serde_json::from_str(&json).expect("valid JSON")
}
