//! End to end: short benches against a local cluster of real `martelo node` processes.
//!
//! They need the `martelo` binary, so they are ignored by default:
//!
//! ```text
//! MARTELO_BIN=target/debug/martelo cargo test -p martelo-bench -- --ignored
//! ```

use std::path::PathBuf;

use clap::Parser;
use martelo_bench::BenchArgs;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn binary() -> PathBuf {
    let path = std::env::var_os("MARTELO_BIN")
        .map(PathBuf::from)
        .expect("set MARTELO_BIN to the martelo binary to run these tests");
    assert!(
        path.is_file(),
        "MARTELO_BIN={} is not a file",
        path.display()
    );
    path
}

fn must_run_and_read_report(flags: &[&str]) -> serde_json::Value {
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
        .block_on(martelo_bench::run(args, binary()))
        .expect("the bench runs");
    let json = std::fs::read_to_string(out.path().join("report.json")).expect("report.json");
    let svg = std::fs::read_to_string(out.path().join("plot.svg")).expect("plot.svg");
    assert!(svg.contains("data-series=\"p99\""));
    serde_json::from_str(&json).expect("valid JSON")
}

#[test]
#[ignore = "needs the martelo binary in MARTELO_BIN"]
fn the_ci_smoke_decides_bids_on_a_hot_auction() {
    let report = must_run_and_read_report(&["--duration", "3s", "--warmup", "1s"]);
    assert!(
        report["totals"]["accepted"].as_u64() > Some(0),
        "{report:#}"
    );
    assert!(report["latency"]["p99_us"].as_u64() > Some(0), "{report:#}");
    assert!(
        report["raft_batch"]["batches"].as_f64() > Some(0.0),
        "{report:#}"
    );
}

#[test]
#[ignore = "needs the martelo binary in MARTELO_BIN"]
fn closing_auctions_reject_late_bids_in_an_open_loop() {
    let report = must_run_and_read_report(&[
        "--scenario",
        "closing",
        "--auctions",
        "8",
        "--rate",
        "200",
        "--duration",
        "4s",
        "--warmup",
        "1s",
    ]);
    let rejected = &report["totals"]["rejected_by_reason"];
    let closed = rejected["auction_closed"].as_u64().unwrap_or(0)
        + rejected["auction_not_open"].as_u64().unwrap_or(0);
    assert!(closed > 0, "{report:#}");
    assert!(
        report["auctions_seen_closed"].as_u64() > Some(0),
        "{report:#}"
    );
}
