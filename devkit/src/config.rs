//! How to run a local cluster: [`LocalClusterConfig`], its defaults and limits, and
//! [`LocalClusterConfig::validate`], which rejects configurations that cannot work before
//! any process starts.
//!
//! Picking ports is in [`crate::ports`], and turning a configuration into command lines is in
//! [`crate::process`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use martelo_types::NodeId;
pub use martelo_types::SHARD_COUNT_MAX;

use crate::error::LocalError;
use crate::ports::port_range_fits;

/// The host every node listens on unless [`LocalClusterConfig::hosts`] says otherwise.
pub const LOCAL_HOST: &str = "127.0.0.1";
/// Most nodes one local cluster may hold (initial and added); a limit, so a typo cannot
/// spawn thousands of processes.
pub const NODE_COUNT_MAX: usize = 64;
/// How long [`crate::LocalCluster::start`], `restart` and `add_node` wait for a node to be
/// ready.
pub const READY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// How long [`crate::LocalCluster::init`] waits for the cluster to become healthy.
pub const HEALTHY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// How long [`crate::LocalCluster::stop`] waits after SIGTERM before it sends SIGKILL.
pub const STOP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// How to run a local cluster. [`LocalClusterConfig::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct LocalClusterConfig {
    /// The `martelo` binary; each node runs `binary node …`.
    pub binary: PathBuf,
    /// Nodes started by [`crate::LocalCluster::start`], with ids `1..=nodes`.
    pub nodes: usize,
    /// `--shard-count`, used by `InitCluster`.
    pub shard_count: u32,
    /// Holds the data dir `node-<id>/` and the log `node-<id>.log` of each node.
    pub dir: PathBuf,
    /// Node `id` listens on `base_port + id - 1`. `None` picks free ports.
    pub base_port: Option<u16>,
    /// Explicit ports for nodes `1..=nodes`, in order; empty means `base_port` or free
    /// ports. For callers that must know every address before the nodes start (the fault
    /// suite points `--test-dial-override` at proxies in front of each node).
    pub ports: Vec<u16>,
    /// Whether nodes serve Prometheus metrics (`--metrics-listen`).
    pub metrics: bool,
    /// Node `id` serves metrics on `metrics_base_port + id - 1`. `None` picks free ports.
    pub metrics_base_port: Option<u16>,
    /// Appended to every node's command line, including nodes added later.
    pub extra_args: Vec<String>,
    /// Appended after `extra_args` for one node (for example `--test-dial-override …` or
    /// `--test-clock-offset-ms …`).
    pub node_args: BTreeMap<NodeId, Vec<String>>,
    /// The IPv4 address node `id` listens on (API and metrics), for nodes that must not share
    /// [`LOCAL_HOST`] (the fault suite's iptables mode gives each node its own loopback
    /// address). Nodes not listed, including nodes added later, use [`LOCAL_HOST`].
    pub hosts: BTreeMap<NodeId, String>,
    /// Set in every node's environment, on top of this process's.
    pub env: Vec<(String, String)>,
    /// Starts each node in a process group of its own, so a Ctrl-C in the terminal reaches
    /// only this process, which then stops the nodes with SIGTERM (`martelo dev`). Leave
    /// it off in tests: when the test process dies without unwinding, nodes in its process
    /// group still receive the terminal's signals.
    pub own_process_group: bool,
    pub ready_timeout: Duration,
    pub healthy_timeout: Duration,
    pub stop_timeout: Duration,
}

impl LocalClusterConfig {
    /// Three nodes, eight shards, free ports, no metrics, default timeouts.
    pub fn new(binary: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> LocalClusterConfig {
        LocalClusterConfig {
            binary: binary.into(),
            nodes: 3,
            shard_count: 8,
            dir: dir.into(),
            base_port: None,
            ports: Vec::new(),
            metrics: false,
            metrics_base_port: None,
            extra_args: Vec::new(),
            node_args: BTreeMap::new(),
            hosts: BTreeMap::new(),
            env: Vec::new(),
            own_process_group: false,
            ready_timeout: READY_TIMEOUT_DEFAULT,
            healthy_timeout: HEALTHY_TIMEOUT_DEFAULT,
            stop_timeout: STOP_TIMEOUT_DEFAULT,
        }
    }

    /// Rejects configurations that cannot work, naming the values.
    pub fn validate(&self) -> Result<(), LocalError> {
        let invalid = |message: String| Err(LocalError::Config(message));
        if self.nodes == 0 || self.nodes > NODE_COUNT_MAX {
            return invalid(format!(
                "nodes = {}, expected 1..={NODE_COUNT_MAX}",
                self.nodes
            ));
        }
        if self.shard_count == 0 || self.shard_count > SHARD_COUNT_MAX {
            return invalid(format!(
                "shard_count = {}, expected 1..={SHARD_COUNT_MAX}",
                self.shard_count
            ));
        }
        if !self.ports.is_empty() && self.base_port.is_some() {
            return invalid("both ports and base_port are set; choose one".to_owned());
        }
        if !self.ports.is_empty() && self.ports.len() != self.nodes {
            return invalid(format!(
                "{} ports given for {} nodes",
                self.ports.len(),
                self.nodes
            ));
        }
        for (name, base) in [
            ("base_port", self.base_port),
            ("metrics_base_port", self.metrics_base_port),
        ] {
            if let Some(base) = base
                && !port_range_fits(base, self.nodes)
            {
                return invalid(format!(
                    "{name} = {base} leaves no room for {} nodes below 65536",
                    self.nodes
                ));
            }
        }
        if self.ports.contains(&0) {
            return invalid(format!("ports {:?} contain 0", self.ports));
        }
        if let Some(&id) = self.node_args.keys().find(|id| !id.is_valid()) {
            return invalid(format!("node_args names node {id}; node ids start at 1"));
        }
        if let Some(&id) = self.hosts.keys().find(|id| !id.is_valid()) {
            return invalid(format!("hosts names node {id}; node ids start at 1"));
        }
        if let Some((id, host)) = self
            .hosts
            .iter()
            .find(|(_, host)| host.parse::<Ipv4Addr>().is_err())
        {
            return invalid(format!("hosts[{id}] = {host:?} is not an IPv4 address"));
        }
        Ok(())
    }

    /// The address node `id` listens on: `hosts[id]`, else [`LOCAL_HOST`].
    pub fn host_of(&self, id: NodeId) -> &str {
        self.hosts.get(&id).map_or(LOCAL_HOST, String::as_str)
    }

    /// The per-node arguments of node `id` (empty when none are set).
    pub(crate) fn node_extra_args(&self, id: NodeId) -> &[String] {
        self.node_args
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_impossible_configurations() {
        let valid = LocalClusterConfig::new("/bin/martelo", "/tmp/x");
        assert!(valid.validate().is_ok());
        let cases: Vec<(&str, LocalClusterConfig)> = vec![
            (
                "nodes = 0",
                LocalClusterConfig {
                    nodes: 0,
                    ..valid.clone()
                },
            ),
            (
                "nodes = 65",
                LocalClusterConfig {
                    nodes: 65,
                    ..valid.clone()
                },
            ),
            (
                "shard_count = 0",
                LocalClusterConfig {
                    shard_count: 0,
                    ..valid.clone()
                },
            ),
            (
                "shard_count = 1025",
                LocalClusterConfig {
                    shard_count: 1025,
                    ..valid.clone()
                },
            ),
            (
                "base_port = 65535",
                LocalClusterConfig {
                    base_port: Some(65535),
                    ..valid.clone()
                },
            ),
            (
                "3 nodes",
                LocalClusterConfig {
                    ports: vec![7001, 7002],
                    ..valid.clone()
                },
            ),
            (
                "choose one",
                LocalClusterConfig {
                    ports: vec![1, 2, 3],
                    base_port: Some(7001),
                    ..valid.clone()
                },
            ),
            (
                "contain 0",
                LocalClusterConfig {
                    ports: vec![1, 0, 3],
                    ..valid.clone()
                },
            ),
            (
                "node ids start at 1",
                LocalClusterConfig {
                    node_args: BTreeMap::from([(NodeId(0), vec![])]),
                    ..valid.clone()
                },
            ),
            (
                "hosts names node 0",
                LocalClusterConfig {
                    hosts: BTreeMap::from([(NodeId(0), "127.0.0.11".to_owned())]),
                    ..valid.clone()
                },
            ),
            (
                "is not an IPv4 address",
                LocalClusterConfig {
                    hosts: BTreeMap::from([(NodeId(2), "127.0.0.12:7002".to_owned())]),
                    ..valid.clone()
                },
            ),
        ];
        for (expected, config) in cases {
            let message = config.validate().expect_err(expected).to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn a_node_listens_on_its_own_host_when_one_is_given() {
        let mut config = LocalClusterConfig::new("/bin/martelo", "/tmp/cluster");
        config.hosts = BTreeMap::from([(NodeId(2), "127.0.0.12".to_owned())]);
        assert!(config.validate().is_ok());
        assert_eq!(config.host_of(NodeId(1)), LOCAL_HOST);
        assert_eq!(config.host_of(NodeId(2)), "127.0.0.12");
    }

    #[test]
    fn node_extra_args_are_empty_for_a_node_without_any() {
        let mut config = LocalClusterConfig::new("/bin/martelo", "/tmp/cluster");
        config.node_args = BTreeMap::from([(NodeId(2), vec!["--test-clock-offset-ms".to_owned()])]);
        assert!(config.node_extra_args(NodeId(1)).is_empty());
        assert_eq!(
            config.node_extra_args(NodeId(2)),
            ["--test-clock-offset-ms"]
        );
    }
}
