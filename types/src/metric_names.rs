//! Metric names that cross a crate boundary: series a node exports and another crate reads
//! back by name (the load generator scrapes them from `/metrics`).
//!
//! A name lives here only when a crate other than its writer reads it; the node's other
//! series are named in `martelo-cluster`'s `node::metric_names`, and the client library's in
//! `martelo-client`'s `telemetry`. The node re-exports these, so its module still lists every
//! series it exports. The strings are a contract with dashboards, alerts and tests: never
//! rename one.

/// Histogram `martelo_propose_batch_entries{group}`: commands per `client_write_many` batch,
/// recorded by the group's leader for each batch it proposes. The load generator scrapes its
/// `_sum` and `_count` before and after a run to report the mean batch size.
pub const PROPOSE_BATCH_ENTRIES: &str = "martelo_propose_batch_entries";
