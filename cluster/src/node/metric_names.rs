//! The name of every metric a node exports, once, with its type, labels and meaning.
//!
//! Code that records a metric uses these constants; it never spells a name out. What does not
//! live here: describing and registering the series (`telemetry`), the store's series
//! (`martelo_raft_store_*`, named in martelo-raft-store's `metrics.rs`), and the client
//! library's (`martelo_client_*`, in martelo-client's `telemetry.rs`). A name another crate
//! reads back, such as the load generator's batch histogram, lives in
//! [`martelo_types::metric_names`] and is re-exported here, so this module still lists every
//! series.
//!
//! Rules for a new metric:
//! - the constant is the name without its `martelo_` prefix, in capitals;
//! - units go last (`_seconds`, `_bytes`, `_entries`), and counters end in `_total`;
//! - a histogram's name ends in `_seconds` (latency buckets) or `_entries` (size buckets), the
//!   two suffixes `telemetry::serve_metrics` gives buckets to;
//! - describe it in `telemetry::describe` and register it at zero where `telemetry` says, so
//!   an idle node shows zeros rather than no series.
//!
//! The strings are a contract with dashboards, alerts (docs/OPERATIONS.md) and tests: never
//! rename one.

// ---- The node as a whole --------------------------------------------------------------

/// Gauge `martelo_groups`: groups this node holds a replica of.
pub const GROUPS: &str = "martelo_groups";

/// Gauge `martelo_subscriptions`: event subscriptions open on this node.
pub const SUBSCRIPTIONS: &str = "martelo_subscriptions";

/// Counter `martelo_client_api_requests_total{rpc, result}`: client API calls, by rpc
/// (`propose`, auction requests and meta commands alike; `read_user`, `list_users`) and
/// result (`applied` for a proposal, `ok` for a read, or the error code of the refusal).
pub const CLIENT_API_REQUESTS_TOTAL: &str = "martelo_client_api_requests_total";

/// Counter `martelo_admin_api_requests_total{rpc, result}`: admin API calls that change the
/// meta group's state, by rpc (`propose_meta`) and result (`applied`, or the error code).
pub const ADMIN_API_REQUESTS_TOTAL: &str = "martelo_admin_api_requests_total";

/// Counter `martelo_close_proposals_total{result}`: `Close` commands the leader's timers
/// proposed, by result (`applied`, `failed`; a failed close is proposed again next tick).
pub const CLOSE_PROPOSALS_TOTAL: &str = "martelo_close_proposals_total";

/// Counter `martelo_leader_balance_transfers_total{result}`: leadership transfers the leader
/// balancer made, by result (`moved`, `not_moved`).
pub const LEADER_BALANCE_TRANSFERS_TOTAL: &str = "martelo_leader_balance_transfers_total";

/// The prefix of the process series (`martelo_process_cpu_seconds_total`,
/// `martelo_process_resident_memory_bytes`, ...) that `metrics-process` exports.
pub const PROCESS_PREFIX: &str = "martelo_";

// ---- The clock-skew guard (I7) --------------------------------------------------------

/// Gauge `martelo_clock_offset_seconds{peer}`: the measured clock offset of each peer
/// relative to this node (the peer's clock minus ours).
pub const CLOCK_OFFSET_SECONDS: &str = "martelo_clock_offset_seconds";

/// Gauge `martelo_clock_refusing_to_lead`: 1 while this node refuses to lead because its
/// clock is off from a majority of its peers by more than the bound, else 0.
pub const CLOCK_REFUSING_TO_LEAD: &str = "martelo_clock_refusing_to_lead";

// ---- Each group's Raft, sampled from openraft every second -----------------------------

/// Gauge `martelo_raft_term{group}`: the current Raft term.
pub const RAFT_TERM: &str = "martelo_raft_term";

/// Gauge `martelo_raft_is_leader{group}`: 1 when this node leads the group, else 0. Summed
/// over the nodes it is 1 for a healthy group.
pub const RAFT_IS_LEADER: &str = "martelo_raft_is_leader";

/// Gauge `martelo_raft_last_log_index{group}`: the last log index on this replica.
pub const RAFT_LAST_LOG_INDEX: &str = "martelo_raft_last_log_index";

/// Gauge `martelo_raft_committed_index{group}`: the committed log index known here.
pub const RAFT_COMMITTED_INDEX: &str = "martelo_raft_committed_index";

/// Gauge `martelo_raft_applied_index{group}`: the last log index applied here.
pub const RAFT_APPLIED_INDEX: &str = "martelo_raft_applied_index";

/// Gauge `martelo_raft_snapshot_index{group}`: the last log index of the latest snapshot.
pub const RAFT_SNAPSHOT_INDEX: &str = "martelo_raft_snapshot_index";

/// Counter `martelo_raft_applied_entries_total{group}`: entries applied here; its rate is
/// the apply rate.
pub const RAFT_APPLIED_ENTRIES_TOTAL: &str = "martelo_raft_applied_entries_total";

/// Counter `martelo_raft_snapshots_total{group}`: snapshots built or installed here.
pub const RAFT_SNAPSHOTS_TOTAL: &str = "martelo_raft_snapshots_total";

/// Counter `martelo_raft_leader_changes_total{group}`: leaders this replica came to know, the
/// first one after a start included (`telemetry::count_leader_changes`). Rising quickly:
/// elections are flapping.
pub const RAFT_LEADER_CHANGES_TOTAL: &str = "martelo_raft_leader_changes_total";

// ---- The write path -------------------------------------------------------------------

/// Histogram `martelo_propose_seconds{group}`: time from queueing a proposal to its apply,
/// on the leader.
pub const PROPOSE_SECONDS: &str = "martelo_propose_seconds";

/// Histogram `martelo_propose_batch_entries{group}`: commands per `client_write_many` batch
/// (shared: the load generator reads it back).
pub use martelo_types::metric_names::PROPOSE_BATCH_ENTRIES;

/// Counter `martelo_propose_decided_without_log_total{group}`: first attempts of bids the
/// leader rejected from a lease read, without a log entry (too low to win; see
/// `client_api::early_rejection`).
pub const PROPOSE_DECIDED_WITHOUT_LOG_TOTAL: &str = "martelo_propose_decided_without_log_total";

// ---- The Raft transport ---------------------------------------------------------------

/// Counter `martelo_raft_rpc_total{rpc, result}`: Raft RPCs this node sent, by outcome (`ok`,
/// `unreachable`, `timeout`, `network`, `closed`, `storage`). For `stream_append`, one per
/// response (or failure) of the stream.
pub const RAFT_RPC_TOTAL: &str = "martelo_raft_rpc_total";

/// Histogram `martelo_raft_rpc_seconds{rpc}`: time from sending a Raft RPC to its answer. For
/// `stream_append`, from sending each request to its response; for `install_snapshot`, the
/// whole transfer and install.
pub const RAFT_RPC_SECONDS: &str = "martelo_raft_rpc_seconds";

/// Counter `martelo_raft_snapshot_bytes_sent_total`: snapshot data bytes handed to the
/// transport.
pub const RAFT_SNAPSHOT_BYTES_SENT_TOTAL: &str = "martelo_raft_snapshot_bytes_sent_total";

/// Counter `martelo_raft_rpc_received_total{rpc, result}`: Raft messages this node answered,
/// with `result` `ok`, `raft_error` (the Raft returned an error, sent back encoded) or the
/// error code of a rejection (`wrong_node`, `unknown_group`, ...).
pub const RAFT_RPC_RECEIVED_TOTAL: &str = "martelo_raft_rpc_received_total";

/// Counter `martelo_raft_snapshot_bytes_received_total`: snapshot data bytes stored by
/// `InstallSnapshot`, counted as they arrive (including transfers that fail later).
pub const RAFT_SNAPSHOT_BYTES_RECEIVED_TOTAL: &str = "martelo_raft_snapshot_bytes_received_total";
