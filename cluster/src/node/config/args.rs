//! `martelo node`'s flags: [`NodeArgs`], the top layer of the node's settings.
//!
//! Each flag is named after its setting's key (`raft.heartbeat_ms` is `--raft-heartbeat-ms`)
//! and holds only what was given on the command line: an absent flag leaves the layers below
//! it (environment, file, defaults) to decide. The settings themselves, with their defaults,
//! are documented in `settings`; the flags serialize into the same shape.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::settings::LogFormat;

/// `martelo node`: runs a node. Every setting also comes from a `MARTELO_*` environment
/// variable or the `--config` TOML file (docs/OPERATIONS.md); flags win over the
/// environment, which wins over the file. `--print-config` shows what the node would run
/// with.
#[derive(Args, Debug, Default, Serialize)]
pub struct NodeArgs {
    /// TOML file with any of the node's settings; environment variables and flags win.
    #[arg(long, env = "MARTELO_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the effective settings as TOML (the config file's format) and exit without
    /// starting; invalid settings exit with status 2.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
    /// This node's Raft id: unique in the cluster, never reused, never 0 [env:
    /// MARTELO_NODE_ID].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Address to listen on for gRPC (Raft transport, client and admin APIs), host:port.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Address peers and clients use to reach this node [default: --listen].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// Directory of this node's data (RocksDB and node.json). Created if missing.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The cluster's initial members, `id=host:port,...`; `martelo cluster init` places
    /// groups on them.
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Auction shards created by `martelo cluster init` (fixed for the cluster's life)
    /// [default: 8].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_count: Option<u32>,
    /// Address of the Prometheus `/metrics` HTTP endpoint, host:port [default: off].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Largest clock difference to peers (milliseconds) before this node refuses to lead
    /// [default: 500].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_clock_skew_ms: Option<u64>,
    /// Log format on stderr [default: json].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Local IP address that outgoing peer connections bind to (default: chosen by the
    /// kernel). For hosts with several addresses, and for fault suites that partition nodes
    /// by address.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_address: Option<IpAddr>,
    /// Move leadership of groups this node leads beyond its fair share to voters that lead
    /// fewer, every few seconds (default: on). `--leader-balance=false` turns it off.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_balance: Option<bool>,
    /// Postgres URL of the sink's read and audit model (`postgres://user@host:port/db`);
    /// without it the node runs with the sink off [env: DATABASE_URL, or MARTELO_POSTGRES].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// OTLP/gRPC endpoint that spans are exported to, `http://host:port`; without it no
    /// span leaves the node [env: OTEL_EXPORTER_OTLP_ENDPOINT, or MARTELO_OTLP_ENDPOINT].
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// The exported spans' `service.name` [default: martelo-node] [env: OTEL_SERVICE_NAME].
    #[arg(long, env = "OTEL_SERVICE_NAME", value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_service_name: Option<String>,
    /// Fraction of new traces exported, 0 to 1; a trace started elsewhere follows its
    /// parent's decision [default: 1] [env: OTEL_TRACES_SAMPLER_ARG].
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", value_name = "RATIO")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_sample_ratio: Option<f64>,
    #[command(flatten)]
    pub raft: RaftArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub test: TestArgs,
}

/// Flags of the `[raft]` settings.
#[derive(Args, Debug, Default, Serialize)]
#[command(next_help_heading = "Raft (the [raft] settings)")]
pub struct RaftArgs {
    /// How often a leader sends heartbeats, in milliseconds [default: 100].
    #[arg(long = "raft-heartbeat-ms", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
    /// Shortest election timeout, in milliseconds [default: 600].
    #[arg(long = "raft-election-timeout-min-ms", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub election_timeout_min_ms: Option<u64>,
    /// Longest election timeout and leader lease, in milliseconds [default: 800].
    #[arg(long = "raft-election-timeout-max-ms", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub election_timeout_max_ms: Option<u64>,
    /// Time to send and install a snapshot's last chunk, in milliseconds [default: 10000].
    #[arg(long = "raft-install-snapshot-timeout-ms", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_snapshot_timeout_ms: Option<u64>,
    /// Most log entries in one AppendEntries message [default: 256].
    #[arg(long = "raft-entries-per-append-max", value_name = "ENTRIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries_per_append_max: Option<u64>,
    /// Log entries since the last snapshot before a group builds a new one
    /// [default: 100000].
    #[arg(long = "raft-snapshot-interval-entries", value_name = "ENTRIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_interval_entries: Option<u64>,
    /// Log entries already in a snapshot that a group keeps [default: 10000].
    #[arg(long = "raft-log-kept-after-snapshot-entries", value_name = "ENTRIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_kept_after_snapshot_entries: Option<u64>,
}

/// Flags of the `[store]` settings.
#[derive(Args, Debug, Default, Serialize)]
#[command(next_help_heading = "Store (the [store] settings)")]
pub struct StoreArgs {
    /// Entries a group applies between two checkpoints of its state [default: 16384].
    #[arg(long = "store-checkpoint-interval-entries", value_name = "ENTRIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_entries: Option<u64>,
    /// Size of one stored snapshot chunk, in bytes [default: 1048576].
    #[arg(long = "store-snapshot-chunk-bytes", value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_chunk_bytes: Option<usize>,
    /// Most entries applied in one RocksDB write batch [default: 1024].
    #[arg(long = "store-apply-batch-entries-max", value_name = "ENTRIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_batch_entries_max: Option<usize>,
    /// How long a replica removed from its group keeps its data before it is deleted, in
    /// milliseconds [default: 600000].
    #[arg(long = "store-removed-group-grace-ms", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_group_grace_ms: Option<u64>,
}

/// Flags of the `[test]` settings: for the fault suite and the cluster tests only, hidden
/// from `--help`. The names without `test-` are the ones older callers use; they still work.
#[derive(Args, Debug, Default, Serialize)]
pub struct TestArgs {
    /// Testing only: dial peer `id` at this address instead of its advertised one
    /// (`id=host:port,...`), so a fault-injecting proxy can sit on each link.
    #[arg(
        long = "test-dial-override",
        alias = "dial-override",
        value_delimiter = ',',
        hide = true
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dial_override: Vec<String>,
    /// Testing only: shift this node's wall clock by this many milliseconds.
    #[arg(
        long = "test-clock-offset-ms",
        alias = "clock-offset-ms",
        hide = true,
        allow_hyphen_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<i64>,
    /// Testing only: re-read the clock offset (integer milliseconds) from this file about
    /// every 50 ms.
    #[arg(
        long = "test-clock-offset-file",
        alias = "clock-offset-file",
        hide = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_offset_file: Option<PathBuf>,
    /// Testing only, in builds with the `planted-bugs` feature: plant one deliberate bug
    /// (`skip-dedupe`, `bid-after-close`, `ack-before-commit`, `stale-read`).
    #[cfg(feature = "planted-bugs")]
    #[arg(long = "test-plant-bug", alias = "plant-bug", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plant_bug: Option<String>,
    /// Testing only: run the Postgres sink for every group this node holds, not only the
    /// ones it leads, so several sinks race on each group's cursor.
    #[arg(
        long = "test-sink-every-replica",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        hide = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink_every_replica: Option<bool>,
}
