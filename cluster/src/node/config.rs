//! How a node is configured: command-line flags, `MARTELO_*` environment variables and an
//! optional TOML file, in that order of precedence, resolved into one checked [`NodeConfig`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use martelo_client::routing::{SHARD_COUNT_MAX, ShardCount};
use serde::Deserialize;

/// `martelo node`: flags. Every flag can also be set by its environment variable or in the
/// `--config` file (same name with underscores, e.g. `data_dir = "/var/lib/martelo"`).
#[derive(Args, Debug, Default)]
pub struct NodeArgs {
    /// TOML file with any of the settings below; flags and environment variables win.
    #[arg(long, env = "MARTELO_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's Raft id: unique in the cluster, never reused, never 0.
    #[arg(long, env = "MARTELO_NODE_ID")]
    pub id: Option<u64>,
    /// Address to listen on for gRPC (Raft transport, client API and admin API), host:port.
    #[arg(long, env = "MARTELO_LISTEN")]
    pub listen: Option<String>,
    /// Address peers and clients use to reach this node; defaults to --listen.
    #[arg(long, env = "MARTELO_ADVERTISE")]
    pub advertise: Option<String>,
    /// Address of the Prometheus `/metrics` HTTP endpoint, host:port. Off when absent.
    #[arg(long, env = "MARTELO_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Directory of this node's data (RocksDB and node.json). Created if missing.
    #[arg(long, env = "MARTELO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The cluster's initial members, `id=host:port,...`; `martelo cluster init` places
    /// groups on them.
    #[arg(long, env = "MARTELO_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Auction shards created by `martelo cluster init` (fixed for the cluster's life).
    #[arg(long, env = "MARTELO_SHARD_COUNT")]
    pub shard_count: Option<u32>,
    /// Largest clock difference to peers (milliseconds) before this node refuses to lead.
    #[arg(long, env = "MARTELO_MAX_CLOCK_SKEW_MS")]
    pub max_clock_skew_ms: Option<u64>,
    /// Log format on stderr: `json` (default) or `text`.
    #[arg(long, env = "MARTELO_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Local IP address that outgoing peer connections bind to (default: chosen by the
    /// kernel). For hosts with several addresses, and for fault suites that partition nodes
    /// by address.
    #[arg(long, env = "MARTELO_SOURCE_ADDRESS")]
    pub source_address: Option<std::net::IpAddr>,
    /// Move leadership of groups this node leads beyond its fair share to voters that lead
    /// fewer, every few seconds (default: on). `--leader-balance=false` turns it off.
    #[arg(
        long,
        env = "MARTELO_LEADER_BALANCE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub leader_balance: Option<bool>,
    /// Testing only: dial peer `id` at this address instead of its advertised one
    /// (`id=host:port,...`), so a fault-injecting proxy can sit on each link.
    #[arg(
        long,
        env = "MARTELO_DIAL_OVERRIDE",
        value_delimiter = ',',
        hide = true
    )]
    pub dial_override: Vec<String>,
    /// Testing only: shift this node's wall clock by this many milliseconds.
    #[arg(
        long,
        env = "MARTELO_CLOCK_OFFSET_MS",
        hide = true,
        allow_hyphen_values = true
    )]
    pub clock_offset_ms: Option<i64>,
    /// Testing only: read the clock offset (integer milliseconds) from this file about every
    /// 50 ms while the node runs, so a fault suite can skew the clock without a restart. A
    /// missing or unreadable file leaves the offset as it is.
    #[arg(long, env = "MARTELO_CLOCK_OFFSET_FILE", hide = true)]
    pub clock_offset_file: Option<PathBuf>,
    /// Testing only, in builds with the `planted-bugs` feature: plant one deliberate bug
    /// (`skip-dedupe`, `bid-after-close`, `ack-before-commit`, `stale-read`) so the fault
    /// suite can show it catches it.
    #[cfg(feature = "planted-bugs")]
    #[arg(long, env = "MARTELO_PLANT_BUG", hide = true)]
    pub plant_bug: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

/// The same settings as [`NodeArgs`], from the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    id: Option<u64>,
    listen: Option<String>,
    advertise: Option<String>,
    metrics_listen: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    peers: Vec<String>,
    shard_count: Option<u32>,
    max_clock_skew_ms: Option<u64>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    dial_override: Vec<String>,
    clock_offset_ms: Option<i64>,
    source_address: Option<std::net::IpAddr>,
    leader_balance: Option<bool>,
}

/// Largest TOML config file read.
const CONFIG_FILE_BYTES_MAX: u64 = 64 * 1024;

/// A node's checked configuration.
#[derive(Clone, Debug)]
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
    pub dial_overrides: BTreeMap<u64, String>,
    pub source_address: Option<std::net::IpAddr>,
    pub clock_offset_ms: i64,
    pub clock_offset_file: Option<PathBuf>,
    /// Whether the node balances leadership of its groups ([`super::balance`]).
    pub leader_balance: bool,
    /// The planted bug, in test builds only.
    pub plant_bug: Option<martelo_engine::planted::Bug>,
}

impl NodeArgs {
    /// Reads the config file (if any), applies flags over it and checks the result.
    pub fn resolve(self) -> anyhow::Result<NodeConfig> {
        let file = match &self.config {
            None => NodeFile::default(),
            Some(path) => read_file(path)?,
        };
        let id = self.id.or(file.id).context(
            "the node id is missing: pass --id N (or MARTELO_NODE_ID, or `id` in the config file)",
        )?;
        if id == 0 {
            bail!("node id 0 is reserved: pick an id from 1 up");
        }
        let listen = self.listen.or(file.listen).context(
            "the listen address is missing: pass --listen HOST:PORT (or MARTELO_LISTEN)",
        )?;
        check_address("--listen", &listen)?;
        let advertise = self
            .advertise
            .or(file.advertise)
            .unwrap_or_else(|| listen.clone());
        check_address("--advertise", &advertise)?;
        let metrics_listen = self.metrics_listen.or(file.metrics_listen);
        if let Some(address) = &metrics_listen {
            check_address("--metrics-listen", address)?;
        }
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .context("the data directory is missing: pass --data-dir DIR (or MARTELO_DATA_DIR)")?;
        let peers = if self.peers.is_empty() {
            file.peers
        } else {
            self.peers
        };
        let peers = parse_id_addresses("--peers", &peers)?;
        let shard_count = self.shard_count.or(file.shard_count).unwrap_or(8);
        let shard_count = ShardCount::try_from(shard_count).map_err(|_| {
            anyhow::anyhow!("--shard-count {shard_count} is outside 1..={SHARD_COUNT_MAX}")
        })?;
        let skew_ms = self
            .max_clock_skew_ms
            .or(file.max_clock_skew_ms)
            .unwrap_or(500);
        if !(1..=60_000).contains(&skew_ms) {
            bail!("--max-clock-skew-ms {skew_ms} is outside 1..=60000");
        }
        let overrides = if self.dial_override.is_empty() {
            file.dial_override
        } else {
            self.dial_override
        };
        let dial_overrides = parse_id_addresses("--dial-override", &overrides)?;
        let clock_offset_ms = self.clock_offset_ms.or(file.clock_offset_ms).unwrap_or(0);
        if clock_offset_ms.unsigned_abs() > 86_400_000 {
            bail!("--clock-offset-ms {clock_offset_ms} is more than a day");
        }
        #[cfg(feature = "planted-bugs")]
        let plant_bug = match self.plant_bug.as_deref() {
            None => None,
            Some(name) => Some(martelo_engine::planted::Bug::from_name(name).with_context(
                || {
                    let names: Vec<&str> = martelo_engine::planted::Bug::ALL
                        .iter()
                        .map(|bug| bug.name())
                        .collect();
                    format!("--plant-bug {name}: expected one of {}", names.join(", "))
                },
            )?),
        };
        #[cfg(not(feature = "planted-bugs"))]
        let plant_bug = None;
        Ok(NodeConfig {
            id,
            listen,
            advertise,
            metrics_listen,
            data_dir,
            peers,
            shard_count,
            max_clock_skew: Duration::from_millis(skew_ms),
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            dial_overrides,
            source_address: self.source_address.or(file.source_address),
            clock_offset_ms,
            clock_offset_file: self.clock_offset_file,
            leader_balance: self.leader_balance.or(file.leader_balance).unwrap_or(true),
            plant_bug,
        })
    }
}

fn read_file(path: &std::path::Path) -> anyhow::Result<NodeFile> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?
        .len();
    if size > CONFIG_FILE_BYTES_MAX {
        bail!(
            "the config file {} is {size} bytes; the limit is {CONFIG_FILE_BYTES_MAX}",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("the config file {} is invalid", path.display()))
}

/// Checks `host:port` loosely: a non-empty host and a numeric port. Names are allowed.
pub fn check_address(flag: &str, address: &str) -> anyhow::Result<()> {
    let valid = address.len() <= 256
        && address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid {
        bail!("{flag} {address:?} is not host:port");
    }
    Ok(())
}

/// Parses `id=host:port` items.
pub fn parse_id_addresses(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut parsed = BTreeMap::new();
    for item in items.iter().filter(|item| !item.trim().is_empty()) {
        let (id, address) = item
            .split_once('=')
            .with_context(|| format!("{flag} item {item:?} is not id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id != 0)
            .with_context(|| format!("{flag} item {item:?}: the id must be a number from 1 up"))?;
        check_address(flag, address.trim())?;
        if parsed.insert(id, address.trim().to_string()).is_some() {
            bail!("{flag} names node {id} twice");
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> NodeArgs {
        NodeArgs {
            id: Some(1),
            listen: Some("127.0.0.1:7001".into()),
            data_dir: Some("/tmp/x".into()),
            ..NodeArgs::default()
        }
    }

    #[test]
    fn defaults_fill_what_flags_leave_out() {
        let config = args().resolve().expect("valid");
        assert_eq!(config.advertise, "127.0.0.1:7001");
        assert_eq!(config.shard_count.get(), 8);
        assert_eq!(config.max_clock_skew, Duration::from_millis(500));
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(config.leader_balance, "leader balancing is on by default");
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let mut bad = args();
        bad.id = Some(0);
        assert!(bad.resolve().unwrap_err().to_string().contains("node id 0"));
        let mut bad = args();
        bad.listen = Some("nowhere".into());
        assert!(bad.resolve().unwrap_err().to_string().contains("--listen"));
        let mut bad = args();
        bad.peers = vec!["1=a:1".into(), "1=b:2".into()];
        assert!(bad.resolve().unwrap_err().to_string().contains("twice"));
        let mut bad = args();
        bad.shard_count = Some(0);
        assert!(
            bad.resolve()
                .unwrap_err()
                .to_string()
                .contains("--shard-count")
        );
        let mut missing = args();
        missing.data_dir = None;
        assert!(
            missing
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("--data-dir")
        );
    }

    #[test]
    fn the_file_fills_in_and_flags_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 7\nlisten = \"127.0.0.1:9\"\ndata_dir = \"/d\"\npeers = [\"7=127.0.0.1:9\"]\n\
             source_address = \"127.0.0.17\"\nleader_balance = false\n",
        )
        .expect("write");
        let from_file = NodeArgs {
            config: Some(path.clone()),
            ..NodeArgs::default()
        }
        .resolve()
        .expect("valid file");
        assert_eq!(from_file.id, 7);
        assert!(!from_file.leader_balance, "the file turns balancing off");
        assert_eq!(
            from_file.source_address,
            Some(std::net::IpAddr::from([127, 0, 0, 17]))
        );
        assert_eq!(
            from_file.peers.get(&7).map(String::as_str),
            Some("127.0.0.1:9")
        );
        let overridden = NodeArgs {
            config: Some(path.clone()),
            id: Some(8),
            ..NodeArgs::default()
        }
        .resolve()
        .expect("valid");
        assert_eq!(overridden.id, 8);
        let balancing = NodeArgs {
            config: Some(path.clone()),
            leader_balance: Some(true),
            ..NodeArgs::default()
        }
        .resolve()
        .expect("valid");
        assert!(balancing.leader_balance, "the flag wins over the file");
        std::fs::write(&path, "identity = 1\n").expect("write");
        let unknown = NodeArgs {
            config: Some(path),
            ..NodeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{unknown:#}").contains("identity"), "{unknown:#}");
    }
}

#[cfg(test)]
mod flag_tests {
    use clap::Parser;

    use super::NodeArgs;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    #[test]
    fn leader_balance_takes_an_optional_boolean_after_an_equals_sign() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("martelo-node").chain(args.iter().copied()))
                .map(|cli| cli.node.leader_balance)
        };
        assert_eq!(parse(&[]).expect("parses"), None);
        assert_eq!(
            parse(&["--leader-balance=false"]).expect("parses"),
            Some(false)
        );
        assert_eq!(parse(&["--leader-balance"]).expect("parses"), Some(true));
        assert!(parse(&["--leader-balance=maybe"]).is_err());
    }
}
