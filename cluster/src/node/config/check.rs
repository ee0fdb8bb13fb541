//! Checks merged [`Settings`] and turns them into the [`NodeConfig`] the node runs with, or
//! a [`ConfigError`] that lists every problem, each naming the setting, its value and where
//! the value came from (flag, environment variable, config file or default).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use martelo_types::{SHARD_COUNT_MAX, ShardCount, parse_address, parse_nodes};

use super::layers::{CONFIG_FILE_BYTES_MAX, Layers, Source};
use super::settings::{RaftSettings, Settings, StoreSettings, flag, variable};
use super::{NodeConfig, TestConfig};

/// Why the node's settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source}", path.display())]
    FileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the config file {} is {size} bytes; the limit is {CONFIG_FILE_BYTES_MAX}",
        path.display()
    )]
    FileTooLarge { path: PathBuf, size: u64 },
    #[error("the config file {} is not valid TOML: {message}", path.display())]
    FileSyntax { path: PathBuf, message: String },
    #[error(
        "environment variable {name} is not a node setting: unset it (docs/OPERATIONS.md \
         lists the settings and their variables)"
    )]
    UnknownVariable { name: String },
    #[error("environment variable {name} is not valid UTF-8")]
    NotUtf8 { name: String },
    #[error("environment variables {first} and {second} both set {key}: unset one")]
    VariableTwice {
        key: &'static str,
        first: String,
        second: String,
    },
    #[error("{}", Problems(problems))]
    Invalid { problems: Vec<Problem> },
    #[error("{what}")]
    Internal { what: String },
}

/// One setting that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The setting's dotted key, e.g. `raft.heartbeat_ms`.
    pub key: String,
    /// Its value in TOML syntax; `None` when it is missing.
    pub value: Option<String>,
    pub source: Source,
    pub rule: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} = {value} ({}): {}", self.key, self.source, self.rule),
            None => write!(f, "{}: {}", self.key, self.rule),
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "invalid node setting: {one}"),
            many => {
                write!(f, "{} invalid node settings:", many.len())?;
                for problem in many {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// Largest election timeout and clock skew bound, in milliseconds.
const TIMEOUT_MS_MAX: u64 = 60_000;
/// Largest snapshot install timeout, in milliseconds.
const INSTALL_SNAPSHOT_TIMEOUT_MS_MAX: u64 = 600_000;
/// Largest fixed clock offset of a test node, in milliseconds (a day).
const CLOCK_OFFSET_MS_MAX: u64 = 86_400_000;
/// Largest snapshot interval and log tail, in entries.
const LOG_ENTRIES_MAX: u64 = 100_000_000;
/// Heartbeats that must fit in the shortest election timeout, so that one late or lost
/// heartbeat does not start an election.
const HEARTBEATS_PER_ELECTION_TIMEOUT_MIN: u64 = 3;
/// Longest heartbeat interval, in milliseconds: the leader balancer and the stop hand-off
/// count a voter as reachable only if it acknowledged within `balance::ACK_WITHIN`, so at
/// least two heartbeats must fit in that window.
const HEARTBEAT_MS_MAX: u64 = super::super::balance::ACK_WITHIN.as_millis() as u64 / 2;

const _: () = assert!(
    HEARTBEAT_MS_MAX >= 100,
    "the default heartbeat must stay valid"
);

/// Checks `settings` (merged from `layers`, which says where each value came from).
pub fn check(settings: Settings, layers: &Layers) -> Result<NodeConfig, ConfigError> {
    let mut checker = Checker {
        layers,
        problems: Vec::new(),
    };
    let checker = &mut checker;
    let id = match settings.id {
        Some(0) => checker.refuse("id", 0, "node id 0 is reserved: pick an id from 1 up"),
        Some(id) => Some(id),
        None => checker.missing("id"),
    };
    let otlp = checker.otlp(&settings, id);
    let listen = match settings.listen {
        Some(listen) => checker.address("listen", &listen),
        None => checker.missing("listen"),
    };
    let advertise = match settings.advertise {
        Some(advertise) => checker.address("advertise", &advertise),
        None => listen.clone(),
    };
    let metrics_listen = settings
        .metrics_listen
        .and_then(|address| checker.address("metrics_listen", &address));
    let data_dir = match settings.data_dir {
        Some(dir) if dir.as_os_str().is_empty() => checker.refuse("data_dir", "\"\"", "empty"),
        Some(dir) => Some(dir),
        None => checker.missing("data_dir"),
    };
    let peers = checker.nodes("peers", &settings.peers);
    let postgres = settings.postgres.as_ref().and_then(|url| {
        match martelo_sink::PostgresUrl::try_from(url.clone()) {
            Ok(url) => Some(url),
            Err(error) => checker.refuse("postgres", martelo_sink::redact(url), error.to_string()),
        }
    });
    let shard_count = match ShardCount::try_from(settings.shard_count) {
        Ok(shard_count) => Some(shard_count),
        Err(_) => checker.refuse(
            "shard_count",
            settings.shard_count,
            format!("outside 1..={SHARD_COUNT_MAX}"),
        ),
    };
    checker.range(
        "max_clock_skew_ms",
        settings.max_clock_skew_ms,
        1,
        TIMEOUT_MS_MAX,
    );
    checker.raft(&settings.raft);
    checker.store(&settings.store);
    let test = &settings.test;
    let dial_overrides = checker.nodes("test.dial_override", &test.dial_override);
    if test.clock_offset_ms.unsigned_abs() > CLOCK_OFFSET_MS_MAX {
        checker.refuse::<()>(
            "test.clock_offset_ms",
            test.clock_offset_ms,
            "more than a day",
        );
    }
    let plant_bug = test
        .plant_bug
        .as_deref()
        .and_then(|name| checker.plant_bug(name));

    match (id, listen, advertise, data_dir, shard_count) {
        (Some(id), Some(listen), Some(advertise), Some(data_dir), Some(shard_count))
            if checker.problems.is_empty() =>
        {
            Ok(NodeConfig {
                id,
                listen,
                advertise,
                metrics_listen,
                data_dir,
                peers,
                shard_count,
                max_clock_skew: Duration::from_millis(settings.max_clock_skew_ms),
                log_format: settings.log_format,
                source_address: settings.source_address,
                leader_balance: settings.leader_balance,
                postgres,
                otlp,
                otlp_service_name: settings.otlp_service_name.clone(),
                otlp_sample_ratio: settings.otlp_sample_ratio,
                raft: settings.raft,
                store: settings.store,
                test: TestConfig {
                    dial_overrides,
                    clock_offset_ms: test.clock_offset_ms,
                    clock_offset_file: test.clock_offset_file.clone(),
                    plant_bug,
                    sink_every_replica: test.sink_every_replica,
                },
            })
        }
        _ => {
            debug_assert!(
                !checker.problems.is_empty(),
                "a value is missing unexplained"
            );
            Err(ConfigError::Invalid {
                problems: std::mem::take(&mut checker.problems),
            })
        }
    }
}

/// Collects problems, naming where each value came from.
struct Checker<'a> {
    layers: &'a Layers,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    /// `key = value` with its source, for a rule that names another setting.
    fn describe(&self, key: &str, value: impl fmt::Display) -> String {
        format!("{key} = {value} ({})", self.layers.source(key))
    }

    /// Records that `key` (set to `value`) breaks `rule`; returns `None` for the caller's
    /// convenience.
    fn refuse<T>(
        &mut self,
        key: &str,
        value: impl fmt::Display,
        rule: impl Into<String>,
    ) -> Option<T> {
        self.problems.push(Problem {
            key: key.to_owned(),
            value: Some(value.to_string()),
            source: self.layers.source(key),
            rule: rule.into(),
        });
        None
    }

    fn missing<T>(&mut self, key: &str) -> Option<T> {
        self.problems.push(Problem {
            key: key.to_owned(),
            value: None,
            source: Source::Default,
            rule: format!(
                "missing: pass {}, set {} or put `{key}` in the config file (--config)",
                flag(key),
                variable(key)
            ),
        });
        None
    }

    fn range(&mut self, key: &str, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.refuse::<()>(key, value, format!("outside {min}..={max}"));
        }
    }

    /// The span export settings (`martelo_trace::OtlpConfig`'s checks).
    fn otlp(&mut self, settings: &Settings, id: Option<u64>) -> Option<martelo_trace::OtlpConfig> {
        use martelo_trace::OtlpConfig;
        let ratio = settings.otlp_sample_ratio;
        if let Err(rule) = OtlpConfig::check_sample_ratio(ratio) {
            self.refuse::<()>("otlp_sample_ratio", ratio, rule);
        }
        let name = &settings.otlp_service_name;
        if let Err(rule) = OtlpConfig::check_service_name(name) {
            self.refuse::<()>("otlp_service_name", format!("{name:?}"), rule);
        }
        let endpoint = settings.otlp_endpoint.as_ref()?;
        if let Err(rule) = OtlpConfig::check_endpoint(endpoint) {
            return self.refuse("otlp_endpoint", format!("{endpoint:?}"), rule);
        }
        Some(OtlpConfig {
            endpoint: endpoint.clone(),
            service_name: name.clone(),
            sample_ratio: ratio,
            attributes: id
                .map(|id| vec![("service.instance.id".to_owned(), format!("node-{id}"))])
                .unwrap_or_default(),
        })
    }

    fn address(&mut self, key: &str, address: &str) -> Option<String> {
        match parse_address(address) {
            Ok(address) => Some(address),
            Err(error) => self.refuse(key, format!("{address:?}"), error.to_string()),
        }
    }

    fn nodes(&mut self, key: &str, items: &[String]) -> BTreeMap<u64, String> {
        match parse_nodes(items) {
            Ok(nodes) => nodes.into_iter().map(|(id, a)| (id.get(), a)).collect(),
            Err(error) => {
                self.refuse::<()>(key, format!("{items:?}"), error.to_string());
                BTreeMap::new()
            }
        }
    }

    fn raft(&mut self, raft: &RaftSettings) {
        self.range("raft.heartbeat_ms", raft.heartbeat_ms, 1, HEARTBEAT_MS_MAX);
        self.range(
            "raft.election_timeout_max_ms",
            raft.election_timeout_max_ms,
            1,
            TIMEOUT_MS_MAX,
        );
        let heartbeats = HEARTBEATS_PER_ELECTION_TIMEOUT_MIN * raft.heartbeat_ms;
        if raft.election_timeout_min_ms < heartbeats {
            let heartbeat = self.describe("raft.heartbeat_ms", raft.heartbeat_ms);
            self.refuse::<()>(
                "raft.election_timeout_min_ms",
                raft.election_timeout_min_ms,
                format!(
                    "must be at least {HEARTBEATS_PER_ELECTION_TIMEOUT_MIN} heartbeats \
                     ({heartbeat}), so one late heartbeat does not start an election"
                ),
            );
        }
        if raft.election_timeout_min_ms >= raft.election_timeout_max_ms {
            let max = self.describe("raft.election_timeout_max_ms", raft.election_timeout_max_ms);
            self.refuse::<()>(
                "raft.election_timeout_min_ms",
                raft.election_timeout_min_ms,
                format!("must be below {max}"),
            );
        }
        self.range(
            "raft.install_snapshot_timeout_ms",
            raft.install_snapshot_timeout_ms,
            1,
            INSTALL_SNAPSHOT_TIMEOUT_MS_MAX,
        );
        self.range(
            "raft.entries_per_append_max",
            raft.entries_per_append_max,
            1,
            martelo_proto::RAFT_ENTRIES_PER_APPEND_MAX as u64,
        );
        self.range(
            "raft.snapshot_interval_entries",
            raft.snapshot_interval_entries,
            1,
            LOG_ENTRIES_MAX,
        );
        self.range(
            "raft.log_kept_after_snapshot_entries",
            raft.log_kept_after_snapshot_entries,
            0,
            LOG_ENTRIES_MAX,
        );
    }

    /// The store checks its own configuration; each setting is tried alone on top of the
    /// defaults, so a refusal names the setting that caused it.
    fn store(&mut self, store: &StoreSettings) {
        let defaults = StoreSettings::default();
        let alone = [
            (
                "store.checkpoint_interval_entries",
                store.checkpoint_interval_entries.to_string(),
                StoreSettings {
                    checkpoint_interval_entries: store.checkpoint_interval_entries,
                    ..defaults.clone()
                },
            ),
            (
                "store.snapshot_chunk_bytes",
                store.snapshot_chunk_bytes.to_string(),
                StoreSettings {
                    snapshot_chunk_bytes: store.snapshot_chunk_bytes,
                    ..defaults.clone()
                },
            ),
            (
                "store.apply_batch_entries_max",
                store.apply_batch_entries_max.to_string(),
                StoreSettings {
                    apply_batch_entries_max: store.apply_batch_entries_max,
                    ..defaults.clone()
                },
            ),
        ];
        for (key, value, settings) in alone {
            match settings.store_config().validate() {
                Ok(()) => {}
                Err(martelo_raft_store::StoreError::Config(rule)) => {
                    self.refuse::<()>(key, value, rule);
                }
                Err(error) => {
                    self.refuse::<()>(key, value, error.to_string());
                }
            }
        }
    }

    #[cfg(feature = "planted-bugs")]
    fn plant_bug(&mut self, name: &str) -> Option<martelo_engine::planted::Bug> {
        use martelo_engine::planted::Bug;
        Bug::from_name(name).or_else(|| {
            let names: Vec<&str> = Bug::ALL.iter().map(|bug| bug.name()).collect();
            self.refuse(
                "test.plant_bug",
                format!("{name:?}"),
                format!("expected one of {}", names.join(", ")),
            )
        })
    }

    #[cfg(not(feature = "planted-bugs"))]
    fn plant_bug(&mut self, name: &str) -> Option<martelo_engine::planted::Bug> {
        self.refuse(
            "test.plant_bug",
            format!("{name:?}"),
            "this build has no planted bugs (build with --features planted-bugs)",
        )
    }
}
