//! How a node is configured: one set of settings, layered from defaults, an optional TOML
//! file (`--config`), `MARTELO_*` environment variables and flags, each layer above the one
//! before, then checked at start into the [`NodeConfig`] the node runs with.
//!
//! ```text
//!   defaults < config file < MARTELO_* environment < flags
//!        └──────── figment merge (layers) ────────┘
//!                        │ Settings (the file's shape)
//!                        ▼
//!                 check ─► NodeConfig, or ConfigError naming each bad value's source
//! ```
//!
//! - `settings`: [`Settings`], the config file's shape (top-level keys and the `[raft]`,
//!   `[store]` and `[test]` sections) with every default and its unit, and the flag and
//!   environment variable of each key.
//! - `args`: [`NodeArgs`], the flags.
//! - `layers`: reading the file and the environment, the merge, and where each value came
//!   from.
//! - `check`: the checks, and [`ConfigError`].
//!
//! `[test]` holds the fault suite's knobs (dial overrides, clock offsets, planted bugs, a sink
//! on every replica); their flags are hidden and start with `--test-`. How the node uses its
//! settings lives with the code that uses them (`registry::raft_config` turns `[raft]` into
//! openraft's config).

mod args;
mod check;
mod layers;
mod settings;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use martelo_types::ShardCount;

pub use args::{NodeArgs, RaftArgs, StoreArgs, TestArgs};
pub use check::{ConfigError, Problem};
pub use layers::{CONFIG_FILE_BYTES_MAX, Source};
pub use settings::{LogFormat, RaftSettings, Settings, StoreSettings, TestSettings};

/// A node's checked configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    pub id: u64,
    pub listen: String,
    pub advertise: String,
    pub metrics_listen: Option<String>,
    pub data_dir: PathBuf,
    /// Initial members by id (may be empty: then `cluster init` must name the nodes).
    pub peers: BTreeMap<u64, String>,
    pub shard_count: ShardCount,
    pub max_clock_skew: Duration,
    pub log_format: LogFormat,
    pub source_address: Option<IpAddr>,
    /// Whether the node balances leadership of its groups (`super::balance`).
    pub leader_balance: bool,
    /// The sink's database; `None`: the sink is off.
    pub postgres: Option<martelo_sink::PostgresUrl>,
    /// Where spans go; `None`: none is exported.
    pub otlp: Option<martelo_trace::OtlpConfig>,
    /// The exported spans' service name and sample ratio (kept when no endpoint is set, so
    /// that `--print-config` shows them).
    pub otlp_service_name: String,
    pub otlp_sample_ratio: f64,
    pub raft: RaftSettings,
    pub store: StoreSettings,
    /// The fault suite's knobs; all off on a production node.
    pub test: TestConfig,
}

/// The checked `[test]` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestConfig {
    /// Addresses to dial instead of the advertised ones, by peer id.
    pub dial_overrides: BTreeMap<u64, String>,
    pub clock_offset_ms: i64,
    pub clock_offset_file: Option<PathBuf>,
    /// The planted bug, in builds with the `planted-bugs` feature only.
    pub plant_bug: Option<martelo_engine::planted::Bug>,
    /// Every replica runs the sink for its groups, not only the leader (`node::sink`).
    pub sink_every_replica: bool,
}

impl NodeArgs {
    /// Merges the flags with the process's `MARTELO_*` environment variables and the config
    /// file, and checks the result. (`--print-config` is the caller's to act on: see
    /// [`NodeArgs::print_config`].)
    pub fn resolve(self) -> Result<NodeConfig, ConfigError> {
        self.resolve_in(std::env::vars_os())
    }

    /// [`NodeArgs::resolve`] with the environment variables given, for tests and callers that
    /// hold their own environment.
    pub fn resolve_in(
        &self,
        environment: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<NodeConfig, ConfigError> {
        let layers = layers::Layers::gather(self, environment)?;
        let settings = layers.extract()?;
        check::check(settings, &layers)
    }
}

impl NodeConfig {
    /// What the node runs with, in the config file's shape: every setting filled in.
    pub fn settings(&self) -> Settings {
        let items = |nodes: &BTreeMap<u64, String>| {
            nodes
                .iter()
                .map(|(id, address)| format!("{id}={address}"))
                .collect()
        };
        Settings {
            id: Some(self.id),
            listen: Some(self.listen.clone()),
            advertise: Some(self.advertise.clone()),
            data_dir: Some(self.data_dir.clone()),
            peers: items(&self.peers),
            shard_count: self.shard_count.get(),
            metrics_listen: self.metrics_listen.clone(),
            max_clock_skew_ms: u64::try_from(self.max_clock_skew.as_millis()).unwrap_or(u64::MAX),
            log_format: self.log_format,
            source_address: self.source_address,
            leader_balance: self.leader_balance,
            postgres: self.postgres.as_ref().map(|url| url.expose().to_owned()),
            otlp_endpoint: self.otlp.as_ref().map(|otlp| otlp.endpoint.clone()),
            otlp_service_name: self.otlp_service_name.clone(),
            otlp_sample_ratio: self.otlp_sample_ratio,
            raft: self.raft.clone(),
            store: self.store.clone(),
            test: TestSettings {
                dial_override: items(&self.test.dial_overrides),
                clock_offset_ms: self.test.clock_offset_ms,
                clock_offset_file: self.test.clock_offset_file.clone(),
                plant_bug: self.test.plant_bug.map(|bug| bug.name().to_owned()),
                sink_every_replica: self.test.sink_every_replica,
            },
        }
    }

    /// [`NodeConfig::settings`] as a TOML config file (`martelo node --print-config`), with
    /// the Postgres URL's password shown as `***`: printed settings end up in terminals,
    /// tickets and logs.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let mut settings = self.settings();
        let redacted = self
            .postgres
            .as_ref()
            .map(martelo_sink::PostgresUrl::redacted);
        let hidden = redacted.is_some() && redacted != settings.postgres;
        settings.postgres = redacted;
        let body = toml::to_string_pretty(&settings).map_err(|error| ConfigError::Internal {
            what: format!("the settings do not print as TOML: {error}"),
        })?;
        let note = if hidden {
            "\n# The Postgres password is shown as ***: put the real one back to use this file."
        } else {
            ""
        };
        Ok(format!(
            "# Effective settings of martelo node {}: defaults < config file < MARTELO_* \
             environment < flags.{note}\n{body}",
            self.id
        ))
    }
}

/// Checks a `host:port` address, naming it `what` in the error.
///
/// Kept for the admin API, which should call [`martelo_types::parse_address`] itself.
pub fn check_address(what: &str, address: &str) -> anyhow::Result<()> {
    martelo_types::parse_address(address)
        .map(drop)
        .map_err(|error| anyhow::anyhow!("{what}: {error}"))
}
