//! The fault suite against real `martelo node` processes: a short mixed-fault run must pass,
//! and each planted bug must be caught by the checker meant to catch it.
//!
//! Binaries: `MARTELO_BIN` (normal) and `MARTELO_PLANTED_BIN` (built with
//! `--features planted-bugs`). When one is unset, the test builds it with
//! `$CARGO build -p martelo-cluster --bin martelo [--features planted-bugs]` into
//! `<target>/jepsen-martelo` or `<target>/planted` (`<target>` is `CARGO_TARGET_DIR` or the
//! test's target dir). Set `ROCKSDB_LIB_DIR` and `ROCKSDB_STATIC` to reuse a prebuilt RocksDB,
//! or that build compiles RocksDB from source (tens of minutes).

mod support;

use support::{SKIP_DEDUPE_RUN, martelo_bin, must_be_caught, must_run, planted_bin, text};

#[test]
fn a_short_mixed_fault_run_passes() {
    let (code, summary, _dir) = must_run(
        martelo_bin(),
        &[
            "--nodes",
            "3",
            "--shards",
            "2",
            "--duration",
            "60",
            "--nemesis",
            "all",
            "--nemesis-interval",
            "8",
        ],
    );
    assert_eq!(summary["valid"], true, "{}", text(&summary));
    assert_eq!(code, 0);
    let bids = &summary["counts"]["bid"];
    assert!(bids["ok"].as_u64().unwrap_or(0) > 100, "{}", text(&summary));
    assert!(
        summary["run"]["nemesis"].as_array().map_or(0, Vec::len) >= 5,
        "{}",
        text(&summary)
    );
}

/// Partitions that isolate a group leader for 5 s every 7 s: a deposed leader keeps serving
/// for a while, which is what the lost-bid and stale-read bugs need to show.
const ISOLATED_LEADER_EVERY_7S: &[&str] = &[
    "--nemesis",
    "partition",
    "--partition",
    "isolated-leader",
    "--nemesis-interval",
    "7",
    "--fault-duration",
    "5",
];

/// Runs against the planted binary with `bug` and asserts `checker` fails (and the exit
/// code says so).
fn must_catch(bug: &str, checker: &str, args: &[&str]) {
    let mut all = vec!["--nodes", "3", "--shards", "2", "--plant-bug", bug];
    all.extend_from_slice(args);
    let (code, summary, _dir) = must_run(planted_bin(), &all);
    must_be_caught(code, &summary, bug, checker);
}

#[test]
fn planted_ack_before_commit_is_caught_as_lost_bids() {
    must_catch(
        "ack-before-commit",
        "lost",
        &[&["--duration", "30"], ISOLATED_LEADER_EVERY_7S].concat(),
    );
}

#[test]
fn planted_skip_dedupe_is_caught_as_a_duplicate() {
    must_catch("skip-dedupe", "duplicate", SKIP_DEDUPE_RUN);
}

#[test]
fn planted_stale_read_is_caught_as_non_linearizable() {
    must_catch(
        "stale-read",
        "linearizable",
        &[
            &["--duration", "40"],
            ISOLATED_LEADER_EVERY_7S,
            &["--read-percent", "60"],
        ]
        .concat(),
    );
}

#[test]
fn planted_bid_after_close_is_caught_by_the_close_checker() {
    must_catch(
        "bid-after-close",
        "close",
        &[
            "--duration",
            "20",
            "--nemesis",
            "none",
            "--window-min",
            "2",
            "--window-max",
            "4",
        ],
    );
}
