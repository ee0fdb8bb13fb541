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

#[test]
fn with_local_postgres_the_report_says_what_the_sink_wrote() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(martelo_sink::testing::TestDb::create());
    let report = must_run_and_read_report(&[
        "--local-postgres",
        db.url(),
        "--duration",
        "3s",
        "--warmup",
        "1s",
    ]);
    let sink = &report["sink"];
    assert!(
        sink["events_written"].as_f64() > Some(0.0),
        "the sink wrote nothing: {report:#}"
    );
    assert!(sink["lag_entries_at_end"].as_f64().is_some(), "{sink:#}");
    let events: i64 = runtime.block_on(async {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&db.pool())
            .await
            .expect("count the events")
    });
    assert!(events > 0, "no event in Postgres");
}
