//! The fault suite with the Postgres sink on (`--sink private`): the nodes copy what they
//! commit into a Postgres server of the run's own, the `postgres` nemesis stops or kills it
//! and starts it again, and after the run the I6 checker (`sink`) compares Postgres with the
//! Raft state. A short run with Postgres restarts and node faults must pass with rows
//! compared, and the planted `sink-cursor-outside-tx` (the cursor committed apart from the
//! rows) must be caught as rows missing from Postgres.
//!
//! Needs `initdb` and `pg_ctl` (on PATH or under /usr/lib/postgresql/<version>/bin).
//! Binaries as in `fault_suite.rs` (`MARTELO_BIN`, `MARTELO_PLANTED_BIN`, else built).
//!
//! ```sh
//! MARTELO_BIN=... MARTELO_PLANTED_BIN=... cargo test -p martelo-jepsen --test sink_path
//! ```

mod support;

use serde_json::Value;
use support::{martelo_bin, must_be_caught, must_run, planted_bin, text, validity};

/// Three nodes, two shards, the sink on a private Postgres, a fault every 4 s. With seed 42
/// (`must_run`) the postgres nemesis is drawn in both runs (the first test checks it).
const SINK_RUN: &[&str] = &[
    "--nodes",
    "3",
    "--shards",
    "2",
    "--sink",
    "private",
    "--nemesis-interval",
    "4",
    "--window-min",
    "4",
    "--window-max",
    "8",
];

/// The `sink` verdict's entry in the summary.
fn sink_verdict(summary: &Value) -> Value {
    summary["verdicts"]
        .as_array()
        .and_then(|verdicts| verdicts.iter().find(|verdict| verdict["checker"] == "sink"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Whether the timeline holds a healed `kind` fault without error.
fn clean_fault(summary: &Value, kind: &str) -> bool {
    summary["run"]["nemesis"]
        .as_array()
        .is_some_and(|timeline| {
            timeline.iter().any(|event| {
                event["kind"] == kind && event["error"].is_null() && event["end_ns"].is_u64()
            })
        })
}

#[test]
fn a_short_run_with_postgres_restarts_and_node_faults_keeps_postgres_equal_to_raft() {
    let (code, summary, _dir) = must_run(
        martelo_bin(),
        &[
            SINK_RUN,
            &[
                "--duration",
                "30",
                "--nemesis",
                "postgres,kill,partition,transfer",
            ],
        ]
        .concat(),
    );
    assert_eq!(summary["valid"], true, "{}", text(&summary));
    assert_eq!(code, 0);
    assert_eq!(summary["run"]["sink"], "private", "{}", text(&summary));
    let sink = sink_verdict(&summary);
    assert_eq!(sink["validity"], "valid", "{}", text(&summary));
    assert!(
        sink["checked"].as_u64().unwrap_or(0) > 100,
        "too few rows compared: {}",
        text(&summary)
    );
    assert!(
        clean_fault(&summary, "postgres"),
        "no clean postgres restart: {}",
        text(&summary)
    );
}

#[test]
fn planted_sink_cursor_outside_tx_is_caught_as_rows_missing_from_postgres() {
    let bug = "sink-cursor-outside-tx";
    let (code, summary, _dir) = must_run(
        planted_bin(),
        &[
            SINK_RUN,
            &[
                "--plant-bug",
                bug,
                "--duration",
                "30",
                "--nemesis",
                "postgres",
            ],
        ]
        .concat(),
    );
    must_be_caught(code, &summary, bug, "sink");
    // Caught for the right reason: rows missing, not a sink that never caught up.
    let sink = sink_verdict(&summary);
    let kinds: Vec<&str> = sink["anomalies"]
        .as_array()
        .map(|anomalies| {
            anomalies
                .iter()
                .filter_map(|anomaly| anomaly["kind"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        kinds.contains(&"sink_differs"),
        "no row difference found: {}",
        text(&summary)
    );
    assert!(
        !kinds.contains(&"sink_not_caught_up") && !kinds.contains(&"sink_unchecked"),
        "{}",
        text(&summary)
    );
    // The history checkers still pass: only the read model lost rows.
    for checker in ["linearizable", "lost", "duplicate", "close", "digest"] {
        assert_eq!(validity(&summary, checker), "valid", "{}", text(&summary));
    }
}
