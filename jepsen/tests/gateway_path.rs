//! The fault suite through the gateway (`--via gateway`): the workload signs bidders up and
//! bids, creates and reads over HTTP through two `martelo gateway` processes, and the same
//! checkers judge the history. A short run with node and gateway kills must pass, and a
//! planted bug must be caught on this path too.
//!
//! Binaries as in `fault_suite.rs` (`MARTELO_BIN`, `MARTELO_PLANTED_BIN`, else built).
//!
//! ```sh
//! MARTELO_BIN=... MARTELO_PLANTED_BIN=... cargo test -p martelo-jepsen --test gateway_path
//! ```

mod support;

use serde_json::Value;
use support::{SKIP_DEDUPE_RUN, martelo_bin, must_be_caught, must_run, planted_bin, text};

const VIA_GATEWAY: &[&str] = &["--nodes", "3", "--shards", "2", "--via", "gateway"];

fn count(summary: &Value, function: &str, kind: &str) -> u64 {
    summary["counts"][function][kind].as_u64().unwrap_or(0)
}

#[test]
fn a_short_run_through_the_gateways_with_node_and_gateway_kills_passes() {
    let (code, summary, _dir) = must_run(
        martelo_bin(),
        &[
            VIA_GATEWAY,
            &[
                // 20 s of workload: the whole test (3 nodes, 61 accounts signed up, which
                // costs two password hashes each, then checking) stays near a minute.
                "--duration",
                "20",
                "--nemesis",
                "kill",
                "--nemesis-interval",
                "6",
                "--gateway-bidders",
                "60",
            ],
        ]
        .concat(),
    );
    assert_eq!(summary["valid"], true, "{}", text(&summary));
    assert_eq!(code, 0);
    assert_eq!(summary["run"]["via"], "gateway", "{}", text(&summary));
    // The workload did go through: bids and reads answered, auctions created and closed.
    assert!(count(&summary, "bid", "ok") > 100, "{}", text(&summary));
    assert!(count(&summary, "read", "ok") > 50, "{}", text(&summary));
    assert!(count(&summary, "close", "ok") >= 2, "{}", text(&summary));
    // Both kinds of fault happened: a node kill and a gateway kill, each healed.
    let timeline = summary["run"]["nemesis"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for kind in ["kill", "gateway"] {
        assert!(
            timeline
                .iter()
                .any(|event| event["kind"] == kind && event["error"].is_null()),
            "no clean {kind} fault: {}",
            text(&summary)
        );
    }
}

/// `skip-dedupe`: the engine ignores its idempotency table, so a bid resent through the
/// gateway with the same `Idempotency-Key` is applied again and answered differently.
#[test]
fn planted_skip_dedupe_through_the_gateway_is_caught_as_a_duplicate() {
    let (code, summary, _dir) = must_run(
        planted_bin(),
        &[
            VIA_GATEWAY,
            &["--plant-bug", "skip-dedupe", "--gateway-bidders", "60"],
            SKIP_DEDUPE_RUN,
        ]
        .concat(),
    );
    assert_eq!(summary["run"]["via"], "gateway", "{}", text(&summary));
    must_be_caught(code, &summary, "skip-dedupe", "duplicate");
}
