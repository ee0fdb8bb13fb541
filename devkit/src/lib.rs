//! # martelo-devkit: a supervisor for a cluster of `martelo node` processes on 127.0.0.1
//!
//! Used by `martelo dev` (the README's run command), the multi-process tests, the fault suite
//! and the load generator. It spawns real node processes, one per id, and controls them with
//! signals: crash ([`LocalCluster::kill`]), clean stop ([`LocalCluster::stop`]), freeze
//! ([`LocalCluster::pause`]), restart with the same ports and data dir, and new nodes that
//! are not in any group yet ([`LocalCluster::add_node`]).
//!
//! ```text
//!   dir/
//!     node-1/        data dir of node 1 (RocksDB, cluster state)
//!     node-1.log     stdout + stderr of every run of node 1, appended
//!     node-2/ ...
//!
//!   LocalCluster::start ──spawn──▶ martelo node --id 1 --listen … --peers 1=…,2=…,3=…
//!        │                         martelo node --id 2 …
//!        └──Admin::node_status until it answers (ready)──▶ each node
//!   LocalCluster::init ──Admin::init_cluster──▶ node 1, then Status on every running node
//!                                               until check_health passes
//! ```
//!
//! A node is *ready* when its admin `Status` RPC answers. The cluster is *healthy* when every
//! running, unpaused node answers `Status`, every group `0..=shard_count` is held by at least
//! one of them, every replica of a group names the same leader, which itself answers and
//! reports that it leads, and the client's Admin verdict on every group is not `Unavailable`
//! ([`check_health`]). Every call to a node goes through `martelo_client::admin::Admin`, the
//! same operations as the `martelo` CLI, so there is one way to dial a node and one set of
//! errors.
//!
//! Dropping a [`LocalCluster`] kills and reaps every child, so a test that panics leaves no
//! process behind. A process that is itself killed with SIGKILL cannot do that: its nodes
//! live on until killed by hand.
//!
//! Where things are, and where new code goes:
//! - [`binary`]: [`martelo_bin`], where tests find the `martelo` binary;
//! - [`config`]: [`LocalClusterConfig`], its defaults, limits and `validate`;
//! - [`ports`]: picking free ports and checking that no two listeners share one;
//! - [`process`]: [`NodeInfo`], command lines, spawning, signals, and the process controls
//!   of [`LocalCluster`] (kill, stop, pause, resume, restart);
//! - [`health`]: readiness, [`LocalCluster::init`], [`LocalCluster::wait_healthy`] and the
//!   pure rule [`check_health`], all through the client's `Admin`;
//! - [`gateway`]: [`GatewayProcess`], `martelo gateway` children in front of a cluster;
//! - [`logs`]: the end of a node's log, quoted by errors;
//! - [`postgres`]: [`PrivatePostgres`], a Postgres server of our own on a free loopback port
//!   (the sink of `martelo dev`, and tests that stop, restart or crash Postgres);
//! - [`error`]: the one error type, [`LocalError`];
//! - this file: [`LocalCluster`] itself (start, add a node, look up nodes, drop).
//!
//! The pure parts (ports, arguments, health rules, log tails) are plain functions with unit
//! tests beside them, and the failure paths of `start` are tested in `tests/` with scripts
//! that crash or hang, not fake nodes. The life of real nodes is exercised with the
//! `martelo` binary by `cluster/tests/` and the fault suite.

pub mod binary;
pub mod config;
pub mod error;
pub mod gateway;
pub mod health;
pub mod logs;
pub mod ports;
pub mod postgres;
pub mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::ExitStatus;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use martelo_client::admin::Admin;
use martelo_types::NodeId;
use tokio::time::Instant;

pub use binary::martelo_bin;
pub use config::{
    HEALTHY_TIMEOUT_DEFAULT, LOCAL_HOST, LocalClusterConfig, NODE_COUNT_MAX, READY_TIMEOUT_DEFAULT,
    SHARD_COUNT_MAX, STOP_TIMEOUT_DEFAULT,
};
pub use error::LocalError;
pub use gateway::{GatewayProcess, write_key_file, write_key_file_with};
pub use health::{ClusterHealth, HealthProblem, InitOutcome, check_health};
pub use logs::read_log_tail;
/// `--peers` syntax: `id=host:port` joined by commas, in the given order.
pub use martelo_types::format_peers;
pub use ports::pick_free_ports;
pub use postgres::{PostgresError, PrivatePostgres, postgres_bin_dir};
pub use process::NodeInfo;

use crate::logs::LOG_TAIL_LINES_MAX;
use crate::ports::{consecutive_ports, ensure_distinct_ports, pick_unused_port, port_of};
use crate::process::{NodeLaunch, NodeSlot, dir_has_entries, node_args, node_info, spawn_node};

/// Probes start fast (a node is usually ready within tens of milliseconds) and back off.
pub(crate) const POLL_INTERVAL_MIN: Duration = Duration::from_millis(20);
pub(crate) const POLL_INTERVAL_MAX: Duration = Duration::from_millis(200);

const _: () = assert!(POLL_INTERVAL_MIN.as_millis() <= POLL_INTERVAL_MAX.as_millis());

/// A running local cluster. Every method takes `&self`, so one cluster can be shared (in an
/// `Arc`) between a nemesis and the client tasks of a test.
///
/// Its methods are spread by concern: process control in [`process`], readiness, init and
/// health in [`health`], the rest here.
///
/// Use one cluster from one tokio runtime: the channels of its `Admin` are created lazily
/// and run on the runtime that made their first call.
#[derive(Debug)]
pub struct LocalCluster {
    config: LocalClusterConfig,
    /// Ids started by [`LocalCluster::start`]: the members given to `InitCluster`.
    initial_ids: BTreeSet<NodeId>,
    /// Held only for short, non-blocking steps; never across an `.await`.
    nodes: Mutex<BTreeMap<NodeId, NodeSlot>>,
    /// Every question to a node (`Status`) goes through it; its channels are reused.
    admin: Admin,
}

impl LocalCluster {
    /// Spawns nodes `1..=config.nodes` with `--peers` listing all of them and waits until
    /// every one is ready. On error every node spawned so far is killed.
    pub async fn start(config: LocalClusterConfig) -> Result<LocalCluster, LocalError> {
        config.validate()?;
        fs::create_dir_all(&config.dir).map_err(|error| LocalError::Io {
            action: "creating the cluster dir",
            path: config.dir.clone(),
            error,
        })?;
        let api_ports = match (&config.base_port, config.ports.is_empty()) {
            (_, false) => config.ports.clone(),
            (Some(base), true) => consecutive_ports(*base, config.nodes),
            (None, true) => pick_free_ports(config.nodes).map_err(LocalError::FreePort)?,
        };
        let metrics_ports = match (config.metrics, config.metrics_base_port) {
            (false, _) => Vec::new(),
            (true, Some(base)) => consecutive_ports(base, config.nodes),
            (true, None) => pick_free_ports(config.nodes).map_err(LocalError::FreePort)?,
        };
        ensure_distinct_ports(&api_ports, &metrics_ports)?;

        let infos: Vec<NodeInfo> = (1..=config.nodes)
            .map(|index| {
                let id = NodeId(index as u64);
                node_info(
                    &config.dir,
                    config.host_of(id),
                    id,
                    api_ports[index - 1],
                    metrics_ports.get(index - 1).copied(),
                )
            })
            .collect();
        let peers = format_peers(infos.iter().map(|info| (info.id, info.address.as_str())));

        // The cluster exists before the first spawn, so an error or a cancelled future
        // drops it, and `Drop` kills whatever was spawned.
        let cluster = LocalCluster {
            initial_ids: infos.iter().map(|info| info.id).collect(),
            nodes: Mutex::new(BTreeMap::new()),
            admin: Admin::new(health::admin_options(config.healthy_timeout)),
            config,
        };
        for info in infos {
            let args = node_args(&NodeLaunch {
                info: &info,
                peers: Some(&peers),
                shard_count: cluster.config.shard_count,
                extra_args: &cluster.config.extra_args,
                node_args: cluster.config.node_extra_args(info.id),
            });
            let child = spawn_node(&cluster.config, &info, &args)?;
            let previous = cluster
                .lock_nodes()
                .insert(info.id, NodeSlot::running(info, args, child));
            debug_assert!(previous.is_none(), "start spawns each node id once");
        }
        let deadline = Instant::now() + cluster.config.ready_timeout;
        for &id in &cluster.initial_ids {
            cluster.wait_ready(id, deadline).await?;
        }
        Ok(cluster)
    }

    /// Spawns a new node `id` with a fresh data dir and a free port, waits until it is
    /// ready and returns its address. It is in no group yet: the caller adds it with the
    /// admin API (`OpenGroup` on it, then `AddLearner` and `PromoteVoter` at the leader).
    pub async fn add_node(&self, id: NodeId) -> Result<String, LocalError> {
        if !id.is_valid() {
            return Err(LocalError::Config("node ids start at 1".to_owned()));
        }
        // One critical section from the id check to the insert, so two concurrent calls
        // cannot both add `id` (the loser's child would be dropped unkilled).
        let address = {
            let mut nodes = self.lock_nodes();
            if nodes.contains_key(&id) {
                return Err(LocalError::NodeExists(id));
            }
            if nodes.len() >= NODE_COUNT_MAX {
                return Err(LocalError::Config(format!(
                    "a local cluster holds at most {NODE_COUNT_MAX} nodes"
                )));
            }
            let mut used: BTreeSet<u16> = BTreeSet::new();
            for slot in nodes.values() {
                used.extend(port_of(&slot.info.address));
                used.extend(slot.info.metrics_address.as_deref().and_then(port_of));
            }
            let port = pick_unused_port(&mut used)?;
            let metrics_port = if self.config.metrics {
                Some(pick_unused_port(&mut used)?)
            } else {
                None
            };
            let info = node_info(
                &self.config.dir,
                self.config.host_of(id),
                id,
                port,
                metrics_port,
            );
            if dir_has_entries(&info.data_dir) {
                return Err(LocalError::Config(format!(
                    "the data dir {} of new node {id} is not empty",
                    info.data_dir.display()
                )));
            }
            let args = node_args(&NodeLaunch {
                info: &info,
                peers: None,
                shard_count: self.config.shard_count,
                extra_args: &self.config.extra_args,
                node_args: self.config.node_extra_args(id),
            });
            let child = spawn_node(&self.config, &info, &args)?;
            let address = info.address.clone();
            nodes.insert(id, NodeSlot::running(info, args, child));
            address
        };
        if let Err(error) = self
            .wait_ready(id, Instant::now() + self.config.ready_timeout)
            .await
        {
            // Leave no half-added node behind; the error quotes its log.
            let slot = self.lock_nodes().remove(&id);
            if let Some(mut slot) = slot {
                let _ = slot.kill_and_reap();
            }
            return Err(error);
        }
        Ok(address)
    }

    /// Whether the node's process exists (a paused node is running).
    pub fn is_running(&self, id: NodeId) -> bool {
        self.lock_nodes()
            .get_mut(&id)
            .is_some_and(NodeSlot::poll_running)
    }

    /// Whether the node is running and paused.
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.lock_nodes()
            .get_mut(&id)
            .is_some_and(|slot| slot.poll_running() && slot.paused)
    }

    /// The pid of the node's process while it runs.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        let mut nodes = self.lock_nodes();
        let slot = nodes.get_mut(&id)?;
        if slot.poll_running() {
            slot.pid()
        } else {
            None
        }
    }

    /// How the node's last process ended, once it has (a crash shows here).
    pub fn exit_status(&self, id: NodeId) -> Option<ExitStatus> {
        let mut nodes = self.lock_nodes();
        let slot = nodes.get_mut(&id)?;
        if slot.poll_running() {
            None
        } else {
            slot.last_exit
        }
    }

    /// Every node's address, by ascending id, running or not.
    pub fn api_addresses(&self) -> Vec<String> {
        self.lock_nodes()
            .values()
            .map(|slot| slot.info.address.clone())
            .collect()
    }

    /// Every node id, ascending.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.lock_nodes().keys().copied().collect()
    }

    pub fn node(&self, id: NodeId) -> Option<NodeInfo> {
        self.lock_nodes().get(&id).map(|slot| slot.info.clone())
    }

    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.lock_nodes()
            .values()
            .map(|slot| slot.info.clone())
            .collect()
    }

    /// The last lines of the node's log, for a test's failure message.
    pub fn log_tail(&self, id: NodeId) -> Option<String> {
        self.node(id)
            .map(|info| read_log_tail(&info.log_path, LOG_TAIL_LINES_MAX))
    }

    pub fn config(&self) -> &LocalClusterConfig {
        &self.config
    }

    /// The guard survives a panic elsewhere: the map stays consistent because every
    /// critical section is a few non-panicking steps, and `Drop` must still reach it.
    pub(crate) fn lock_nodes(&self) -> MutexGuard<'_, BTreeMap<NodeId, NodeSlot>> {
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `--peers` of the initially started nodes, which a restarted initial node is given
    /// again.
    pub(crate) fn peers_of_initial_nodes(&self, infos: &BTreeMap<NodeId, NodeInfo>) -> String {
        format_peers(
            self.initial_ids
                .iter()
                .filter_map(|id| infos.get(id))
                .map(|info| (info.id, info.address.as_str())),
        )
    }
}

impl Drop for LocalCluster {
    /// Kills and reaps every child: no orphan after a panicking test.
    fn drop(&mut self) {
        for slot in self.lock_nodes().values_mut() {
            // Nothing useful can be done with an error while dropping.
            let _ = slot.kill_and_reap();
        }
    }
}
