//! End to end: short benches against a local cluster of real `martelo node` processes.
//!
//! They need the `martelo` binary: `martelo_devkit::martelo_bin()` finds it (`MARTELO_BIN`,
//! else `$CARGO_TARGET_DIR/debug/martelo`); build it first with
//! `cargo build -p martelo-cluster --bin martelo`.

mod support;

use support::must_run_and_read_report;

#[test]
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
