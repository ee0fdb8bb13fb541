//! The node's settings in the shape of its TOML file: [`Settings`] with the `[raft]`,
//! `[store]` and `[test]` sections, every default, the name of each setting's flag and
//! environment variable, and the printed form (`martelo node --print-config`).
//!
//! Reading the layers lives in `layers`, the checks in `check`; what the node runs with is
//! the checked [`super::NodeConfig`].

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Every setting of a node, as the config file holds it. A setting left out takes its
/// default; `id`, `listen` and `data_dir` have none and must be set in some layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// This node's Raft id: unique in the cluster, never reused, never 0. Required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Address the node serves gRPC on (Raft transport, client and admin APIs), `host:port`.
    /// Required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Address peers and clients use to reach this node, `host:port`. Default: `listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// Directory of this node's data (RocksDB and `node.json`), created if missing. Required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The cluster's initial members as `id=host:port` items (a list, or one comma-separated
    /// string); `martelo cluster init` places groups on them. Default: none.
    #[serde(deserialize_with = "string_or_list")]
    pub peers: Vec<String>,
    /// Auction shards that `martelo cluster init` creates, fixed for the cluster's life
    /// (1..=`SHARD_COUNT_MAX`). Default: 8.
    pub shard_count: u32,
    /// Address of the Prometheus `/metrics` HTTP endpoint, `host:port`. Default: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Largest clock difference to its peers, in milliseconds, before this node refuses to
    /// lead (1..=60000). Default: 500.
    pub max_clock_skew_ms: u64,
    /// Log format on stderr: `json` or `text`. Default: `json`.
    pub log_format: LogFormat,
    /// Local IP address that outgoing peer connections bind to, for hosts with several
    /// addresses. Default: the kernel's choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_address: Option<IpAddr>,
    /// Whether the node moves leadership of the groups it leads beyond its fair share to
    /// voters that lead fewer, every few seconds. Default: true.
    pub leader_balance: bool,
    /// Postgres URL for the sink (`postgres://user@host:port/db`). Default: none, and the
    /// sink is off. Also `DATABASE_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// OTLP/gRPC endpoint spans are exported to (`http://host:port`). Default: none, and no
    /// span is exported. Also `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// The exported spans' `service.name`. Default: `martelo-node`. Also `OTEL_SERVICE_NAME`.
    pub otlp_service_name: String,
    /// Fraction of new traces exported (0..=1); traces started elsewhere follow their
    /// parent's decision. Default: 1. Also `OTEL_TRACES_SAMPLER_ARG`.
    pub otlp_sample_ratio: f64,
    /// `[raft]`: timings and sizes of every group's openraft instance.
    pub raft: RaftSettings,
    /// `[store]`: the node's RocksDB store.
    pub store: StoreSettings,
    /// `[test]`: knobs for the fault suite and the cluster tests only.
    #[serde(skip_serializing_if = "TestSettings::is_unset")]
    pub test: TestSettings,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            id: None,
            listen: None,
            advertise: None,
            data_dir: None,
            peers: Vec::new(),
            shard_count: 8,
            metrics_listen: None,
            max_clock_skew_ms: 500,
            log_format: LogFormat::Json,
            source_address: None,
            leader_balance: true,
            postgres: None,
            otlp_endpoint: None,
            otlp_service_name: "martelo-node".to_owned(),
            otlp_sample_ratio: 1.0,
            raft: RaftSettings::default(),
            store: StoreSettings::default(),
            test: TestSettings::default(),
        }
    }
}

/// Log format on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// `[raft]`: what every group's openraft instance runs with (see `registry::raft_config`,
/// which explains the defaults). Times are in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    /// How often a leader sends heartbeats, in milliseconds (1..=250: the leader balancer and
    /// the stop hand-off count a voter as reachable only if it acknowledged within 500 ms).
    /// Default: 100.
    pub heartbeat_ms: u64,
    /// Shortest wait without a leader before a follower campaigns, in milliseconds; at least
    /// 3 heartbeats, so one late heartbeat does not start an election. Default: 600.
    pub election_timeout_min_ms: u64,
    /// Longest such wait, in milliseconds (above the minimum, at most 60000). It is also the
    /// leader lease, during which followers refuse to vote for another node, so a dead leader
    /// is replaced within about twice this: keep it at 1000 or less for failover within 2 s.
    /// Default: 800.
    pub election_timeout_max_ms: u64,
    /// How long sending and installing a snapshot's last chunk may take, in milliseconds
    /// (1..=600000). Default: 10000.
    pub install_snapshot_timeout_ms: u64,
    /// Most log entries in one AppendEntries message (1..=256, the Raft transport's limit,
    /// `RAFT_ENTRIES_PER_APPEND_MAX`). Default: 256.
    pub entries_per_append_max: u64,
    /// Log entries since a group's last snapshot before it builds a new one (>= 1).
    /// Default: 100000.
    pub snapshot_interval_entries: u64,
    /// Log entries already in a snapshot that a group keeps, so a follower a little behind
    /// catches up from the log instead of a whole snapshot. Default: 10000.
    pub log_kept_after_snapshot_entries: u64,
}

impl Default for RaftSettings {
    fn default() -> RaftSettings {
        RaftSettings {
            heartbeat_ms: 100,
            election_timeout_min_ms: 600,
            election_timeout_max_ms: 800,
            install_snapshot_timeout_ms: 10_000,
            entries_per_append_max: martelo_proto::RAFT_ENTRIES_PER_APPEND_MAX as u64,
            snapshot_interval_entries: 100_000,
            log_kept_after_snapshot_entries: 10_000,
        }
    }
}

/// `[store]`: the node's RocksDB store, [`martelo_raft_store::StoreConfig`], whose docs say
/// more about each setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Entries a group applies between two durable checkpoints of its engine state (>= 1);
    /// between checkpoints the log is the durable copy, re-applied at start.
    /// Default: 16384.
    pub checkpoint_interval_entries: u64,
    /// Size of one snapshot chunk as stored and installed, in bytes (4096..=67108864).
    /// Default: 1048576 (1 MiB).
    pub snapshot_chunk_bytes: usize,
    /// Most entries applied under one lock and written in one RocksDB write batch
    /// (1..=65536). Default: 1024.
    pub apply_batch_entries_max: usize,
    /// How long the data of a replica removed from its group is kept before it is deleted,
    /// in milliseconds (0 deletes it at once), so that a removal made by mistake can still
    /// be undone by hand. Default: 600000 (10 minutes).
    pub removed_group_grace_ms: u64,
}

/// Default of `store.removed_group_grace_ms`.
pub const REMOVED_GROUP_GRACE_MS_DEFAULT: u64 = 10 * 60 * 1000;

impl Default for StoreSettings {
    fn default() -> StoreSettings {
        StoreSettings::from(&martelo_raft_store::StoreConfig::default())
    }
}

impl From<&martelo_raft_store::StoreConfig> for StoreSettings {
    fn from(config: &martelo_raft_store::StoreConfig) -> StoreSettings {
        StoreSettings {
            checkpoint_interval_entries: config.checkpoint_interval_entries,
            snapshot_chunk_bytes: config.snapshot_chunk_bytes,
            apply_batch_entries_max: config.apply_batch_entries_max,
            removed_group_grace_ms: REMOVED_GROUP_GRACE_MS_DEFAULT,
        }
    }
}

impl StoreSettings {
    /// The store's own configuration type (the grace period is the node's, not the store's).
    pub fn store_config(&self) -> martelo_raft_store::StoreConfig {
        martelo_raft_store::StoreConfig {
            checkpoint_interval_entries: self.checkpoint_interval_entries,
            snapshot_chunk_bytes: self.snapshot_chunk_bytes,
            apply_batch_entries_max: self.apply_batch_entries_max,
        }
    }
}

/// `[test]`: for the fault suite (`martelo-jepsen`) and the cluster tests only; a production
/// node leaves them unset. Their flags are hidden and start with `--test-`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestSettings {
    /// Dial peer `id` at this address instead of its advertised one, `id=host:port` items,
    /// so that a fault-injecting proxy can sit on each link. Default: none.
    #[serde(
        deserialize_with = "string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dial_override: Vec<String>,
    /// Shift this node's wall clock by this many milliseconds (at most a day either way).
    /// Default: 0.
    pub clock_offset_ms: i64,
    /// Read the clock offset (integer milliseconds) from this file about every 50 ms while
    /// the node runs, so a fault suite can skew the clock without a restart. A missing or
    /// unreadable file leaves the offset as it is. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_offset_file: Option<PathBuf>,
    /// In builds with the `planted-bugs` feature only: plant one deliberate bug
    /// (`skip-dedupe`, `bid-after-close`, `ack-before-commit`, `stale-read`) so the fault
    /// suite can show that it catches it. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plant_bug: Option<String>,
    /// Run the Postgres sink for every group this node holds, as leader or not, so that
    /// several sinks write each group at once and only the cursor's compare-and-set keeps
    /// them apart (the sink tests' two-writers case). Never on a production node: it
    /// multiplies the load on Postgres. Default: false.
    pub sink_every_replica: bool,
}

impl TestSettings {
    fn is_unset(&self) -> bool {
        *self == TestSettings::default()
    }
}

/// Every setting's key: the dotted path of its TOML key (`raft.heartbeat_ms` is
/// `heartbeat_ms` under `[raft]`). A test checks that it matches [`Settings`].
pub const KEYS: &[&str] = &[
    "id",
    "listen",
    "advertise",
    "data_dir",
    "peers",
    "shard_count",
    "metrics_listen",
    "max_clock_skew_ms",
    "log_format",
    "source_address",
    "leader_balance",
    "postgres",
    "otlp_endpoint",
    "otlp_service_name",
    "otlp_sample_ratio",
    "raft.heartbeat_ms",
    "raft.election_timeout_min_ms",
    "raft.election_timeout_max_ms",
    "raft.install_snapshot_timeout_ms",
    "raft.entries_per_append_max",
    "raft.snapshot_interval_entries",
    "raft.log_kept_after_snapshot_entries",
    "store.checkpoint_interval_entries",
    "store.snapshot_chunk_bytes",
    "store.apply_batch_entries_max",
    "store.removed_group_grace_ms",
    "test.dial_override",
    "test.clock_offset_ms",
    "test.clock_offset_file",
    "test.plant_bug",
    "test.sink_every_replica",
];

/// Prefix of every environment variable that sets a node setting.
pub const VARIABLE_PREFIX: &str = "MARTELO_";

/// Names that older versions used and that still set their setting.
pub const VARIABLE_ALIASES: &[(&str, &str)] = &[
    ("MARTELO_DIAL_OVERRIDE", "test.dial_override"),
    ("MARTELO_CLOCK_OFFSET_MS", "test.clock_offset_ms"),
    ("MARTELO_CLOCK_OFFSET_FILE", "test.clock_offset_file"),
    ("MARTELO_PLANT_BUG", "test.plant_bug"),
];

/// `MARTELO_*` variables that belong to something else than the node's settings: the config
/// file's path, the CLI's node address, and the programs the test suites run (the binaries,
/// Python, Chromium, Prometheus, Phoenix). The node leaves them alone; any other `MARTELO_*`
/// variable must name a setting.
pub const NOT_SETTINGS: &[&str] = &[
    "MARTELO_CONFIG",
    "MARTELO_ADDR",
    "MARTELO_BIN",
    "MARTELO_PLANTED_BIN",
    "MARTELO_PYTHON",
    "MARTELO_CHROMIUM",
    "MARTELO_PROMETHEUS",
    "MARTELO_PHOENIX",
];

/// The environment variable that sets `key`: `MARTELO_` and the key in capitals, with `__`
/// between a section and its key (`raft.heartbeat_ms` is `MARTELO_RAFT__HEARTBEAT_MS`).
/// The node id's is `MARTELO_NODE_ID`, as it always was.
pub fn variable(key: &str) -> String {
    if key == "id" {
        return format!("{VARIABLE_PREFIX}NODE_ID");
    }
    format!(
        "{VARIABLE_PREFIX}{}",
        key.to_ascii_uppercase().replace('.', "__")
    )
}

/// The flag that sets `key`: `--` and the key with dashes (`--raft-heartbeat-ms`).
pub fn flag(key: &str) -> String {
    format!("--{}", key.replace(['.', '_'], "-"))
}

/// Accepts `id=host:port` items as a TOML list or as one comma-separated string (the form an
/// environment variable takes); [`martelo_types::parse_nodes`] splits and checks them later.
fn string_or_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct Items;
    impl<'de> serde::de::Visitor<'de> for Items {
        type Value = Vec<String>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("`id=host:port` items: a list of strings or one string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Vec<String>, E> {
            Ok(vec![text.to_owned()])
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_any(Items)
}
