//! End to end through a gateway: short benches with `--local`, which starts three real
//! `martelo node` processes and one `martelo gateway` process on loopback, with bids over
//! HTTP and over WebSocket, and a run with a few WebSocket watchers.
//!
//! The `martelo` binary comes from `martelo_devkit::martelo_bin()` (`MARTELO_BIN`, else
//! `$CARGO_TARGET_DIR/debug/martelo`): build it first with
//! `cargo build -p martelo-cluster --bin martelo`.
//!
//! These assert what a run produced (bids decided, no unexpected codes, no gaps), never how
//! fast: speed is for the benchmark itself (docs/PERFORMANCE.md).

mod support;

use serde_json::Value;
use support::must_run_and_read_report;

/// Error and unknown codes a short healthy run may show: none. (Rejections such as
/// `bid_too_low` are decisions, counted apart.)
const EXPECTED_ERROR_CODES: [&str; 0] = [];

/// Rejections that concurrent bidders on one hot auction cause by racing each other.
const RACE_REJECTIONS: [&str; 2] = ["bid_too_low", "max_not_raised"];

fn must_have_decided_bids_and_no_unexpected_codes(report: &Value, kind: &str) {
    assert_eq!(report["target"]["kind"], kind, "{report:#}");
    assert_eq!(report["target"]["gateway_local"], true, "{report:#}");
    assert!(
        report["totals"]["decided"].as_u64() > Some(0),
        "no bid decided: {report:#}"
    );
    assert!(
        report["totals"]["accepted"].as_u64() > Some(0),
        "no bid accepted: {report:#}"
    );
    for field in ["errors_by_code", "unknown_by_code"] {
        let codes = report["totals"][field].as_object().expect("a map of codes");
        let unexpected: Vec<&String> = codes
            .keys()
            .filter(|code| !EXPECTED_ERROR_CODES.contains(&code.as_str()))
            .collect();
        assert!(unexpected.is_empty(), "{field}: {unexpected:?}\n{report:#}");
    }
    let rejected = report["totals"]["rejected_by_reason"]
        .as_object()
        .expect("a map of reasons");
    for reason in rejected.keys() {
        // The hot auction's races make bids too low, or a leader's new maximum no higher
        // than the one it already has (the bidder had not seen its own last reply: the
        // workload's unit test in src/workload.rs allows the same two). Anything else means
        // the bench sent something the engine or the gateway refused for another reason.
        assert!(
            RACE_REJECTIONS.contains(&reason.as_str()),
            "rejected as {reason}: {report:#}"
        );
    }
}

/// A 3-second run of 4 bidders over `target` (`http` or `ws`) with the `load` flags (how
/// many in flight, or a rate), judged by [`must_have_decided_bids_and_no_unexpected_codes`].
fn must_decide_bids_over(target: &str, load: &[&str]) -> Value {
    let mut flags = vec!["--target", target, "--bidders", "4"];
    flags.extend_from_slice(load);
    flags.extend_from_slice(&["--duration", "3s", "--warmup", "1s"]);
    let report = must_run_and_read_report(&flags);
    must_have_decided_bids_and_no_unexpected_codes(&report, target);
    report
}

#[test]
fn bids_over_http_through_a_local_gateway_are_decided() {
    must_decide_bids_over("http", &["--concurrency", "16"]);
}

#[test]
fn bids_over_websockets_through_a_local_gateway_are_decided() {
    must_decide_bids_over("ws", &["--concurrency", "16"]);
}

#[test]
fn watchers_receive_every_event_of_the_hot_auction_in_seq_order() {
    let watchers = 8;
    let report = must_decide_bids_over("ws", &["--watchers", "8", "--rate", "100"]);
    let seen = &report["watchers"];
    assert_eq!(seen["requested"], watchers, "{seen:#}");
    assert_eq!(seen["connected"], watchers, "{seen:#}");
    assert_eq!(seen["closed_early"], 0, "{seen:#}");
    assert_eq!(seen["gaps"], 0, "{seen:#}");
    assert_eq!(seen["duplicates"], 0, "{seen:#}");
    assert_eq!(seen["resnapshots"], serde_json::json!({}), "{seen:#}");
    assert_eq!(
        seen["behind_at_end"], 0,
        "every watcher reached the final seq: {seen:#}"
    );
    let final_seq = seen["final_seq"].as_u64().expect("final seq");
    assert!(final_seq > 1, "the bids made events: {seen:#}");
    // Each watcher got exactly the events after its first snapshot, up to the final seq.
    assert_eq!(seen["events_received"], seen["events_expected"], "{seen:#}");
    assert!(
        seen["events_received"].as_u64() >= Some(watchers * (final_seq / 2)),
        "subscribed before the bids: {seen:#}"
    );
    assert!(seen["latency"]["p50_us"].as_u64() > Some(0), "{seen:#}");
}
