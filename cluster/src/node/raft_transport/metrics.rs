//! The Raft transport's metrics, for both sides: short names for the constants in
//! `node/metric_names.rs`, and their descriptions.
//!
//! The counters and histograms are recorded where the work happens (`client.rs`,
//! `client_append.rs`, `snapshot_send.rs` on the sending side; `server.rs`,
//! `server_append.rs`, `snapshot_recv.rs` on the receiving side). Installing the recorder and
//! the `/metrics` endpoint is `node/telemetry.rs`.

// The names live with every other node metric name, documented there.
pub use crate::node::metric_names::{
    RAFT_RPC_RECEIVED_TOTAL as RPC_RECEIVED_TOTAL, RAFT_RPC_SECONDS as RPC_SECONDS,
    RAFT_RPC_TOTAL as RPC_TOTAL,
    RAFT_SNAPSHOT_BYTES_RECEIVED_TOTAL as SNAPSHOT_BYTES_RECEIVED_TOTAL,
    RAFT_SNAPSHOT_BYTES_SENT_TOTAL as SNAPSHOT_BYTES_SENT_TOTAL,
};

/// Describes the transport's metrics (both sides) to the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(RPC_TOTAL, "Raft RPCs sent to peers, by rpc and result.");
    metrics::describe_histogram!(
        RPC_SECONDS,
        metrics::Unit::Seconds,
        "Time from sending a Raft RPC to its answer."
    );
    metrics::describe_counter!(
        SNAPSHOT_BYTES_SENT_TOTAL,
        metrics::Unit::Bytes,
        "Snapshot bytes sent to peers."
    );
    metrics::describe_counter!(
        RPC_RECEIVED_TOTAL,
        "Raft messages received from peers, by rpc and result."
    );
    metrics::describe_counter!(
        SNAPSHOT_BYTES_RECEIVED_TOTAL,
        metrics::Unit::Bytes,
        "Snapshot bytes received from peers."
    );
}
