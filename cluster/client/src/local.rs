//! A supervisor for a cluster of `martelo node` processes on 127.0.0.1.
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
//!        └──Status until it answers (ready)──▶ each node
//!   LocalCluster::init ──InitCluster──▶ node 1, then Status on every node until healthy
//! ```
//!
//! A node is *ready* when its admin `Status` RPC answers. The cluster is *healthy* when every
//! running, unpaused node answers `Status`, every group `0..=shard_count` is held by at least
//! one of them, and every replica of a group names the same leader, which itself answers and
//! reports that it leads ([`check_health`]).
//!
//! Dropping a [`LocalCluster`] kills and reaps every child, so a test that panics leaves no
//! process behind. A process that is itself killed with SIGKILL cannot do that: its nodes
//! live on until killed by hand.
//!
//! The pure parts (ports, arguments, health rules, log tails) are plain functions with unit
//! tests, and so are the failure paths of `start` (with scripts that crash or hang, not fake
//! nodes). The life of real nodes is exercised with the `martelo` binary by `cluster/tests/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use martelo_proto::services::admin_api_client;
use martelo_proto::{
    ClusterLayout, ErrorCode, GroupStatus, InitClusterRequest, Node, RaftRole, StatusRequest,
    StatusResponse, init_cluster_response,
};
use nix::sys::signal::{Signal, kill as send_signal};
use nix::unistd::Pid;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

/// The host every node listens on.
pub const LOCAL_HOST: &str = "127.0.0.1";
/// Most nodes one local cluster may hold (initial and added); a limit, so a typo cannot
/// spawn thousands of processes.
pub const NODE_COUNT_MAX: usize = 64;
/// Most auction shards; the admin API accepts 1..=SHARD_COUNT_MAX.
pub use crate::routing::SHARD_COUNT_MAX;
/// How long [`LocalCluster::start`], `restart` and `add_node` wait for a node to be ready.
pub const READY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// How long [`LocalCluster::init`] waits for the cluster to become healthy.
pub const HEALTHY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// How long [`LocalCluster::stop`] waits after SIGTERM before it sends SIGKILL.
pub const STOP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// Deadline of one TCP connect to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of one RPC to a node; a paused node costs this much per probe.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// Probes start fast (a node is usually ready within tens of milliseconds) and back off.
const POLL_INTERVAL_MIN: Duration = Duration::from_millis(20);
const POLL_INTERVAL_MAX: Duration = Duration::from_millis(200);
/// How much of a node's log an error quotes.
const LOG_TAIL_LINES_MAX: usize = 40;
const LOG_TAIL_BYTES_MAX: u64 = 16 * 1024;
/// Attempts at a free port that no node of the cluster has used before.
const FREE_PORT_ATTEMPTS_MAX: usize = 16;

const _: () = assert!(POLL_INTERVAL_MIN.as_millis() <= POLL_INTERVAL_MAX.as_millis());

/// What went wrong while running a local cluster. Variants about one node name it, and those
/// about a node that did not come up quote the end of its log. Messages are self-contained
/// (they include the underlying error), so no `source` is chained.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("invalid local cluster configuration: {0}")]
    Config(String),
    #[error("{action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("could not pick a free port on {LOCAL_HOST}: {0}")]
    FreePort(io::Error),
    #[error("could not spawn node {node_id} from {}: {error}", binary.display())]
    Spawn {
        node_id: u64,
        binary: PathBuf,
        error: io::Error,
    },
    #[error(
        "node {node_id} exited before it was ready ({status}); last lines of {}:\n{log_tail}",
        log_path.display()
    )]
    ExitedBeforeReady {
        node_id: u64,
        status: String,
        log_path: PathBuf,
        log_tail: String,
    },
    #[error(
        "node {node_id} at {address} was not ready after {timeout:?} (last probe: {last_error}); \
         last lines of {}:\n{log_tail}",
        log_path.display()
    )]
    NotReady {
        node_id: u64,
        address: String,
        timeout: Duration,
        last_error: String,
        log_path: PathBuf,
        log_tail: String,
    },
    #[error("the cluster was not healthy after {timeout:?}: {reason}")]
    Unhealthy { timeout: Duration, reason: String },
    #[error("no node {0} in this local cluster")]
    UnknownNode(u64),
    #[error("node {0} already exists in this local cluster")]
    NodeExists(u64),
    #[error("node {0} is not running")]
    NotRunning(u64),
    #[error("node {0} is already running")]
    AlreadyRunning(u64),
    #[error("sending {signal} to node {node_id} (pid {pid}): {error}")]
    Signal {
        node_id: u64,
        pid: u32,
        signal: Signal,
        error: io::Error,
    },
    #[error("{rpc} on node {node_id} at {address}: {message}")]
    Rpc {
        node_id: u64,
        address: String,
        rpc: &'static str,
        message: String,
    },
    #[error("InitCluster on node {node_id} answered {code}: {message}")]
    Init {
        node_id: u64,
        code: ErrorCode,
        message: String,
    },
}

/// How to run a local cluster. [`LocalClusterConfig::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct LocalClusterConfig {
    /// The `martelo` binary; each node runs `binary node …`.
    pub binary: PathBuf,
    /// Nodes started by [`LocalCluster::start`], with ids `1..=nodes`.
    pub nodes: usize,
    /// `--shard-count`, used by `InitCluster`.
    pub shard_count: u32,
    /// Holds the data dir `node-<id>/` and the log `node-<id>.log` of each node.
    pub dir: PathBuf,
    /// Node `id` listens on `base_port + id - 1`. `None` picks free ports.
    pub base_port: Option<u16>,
    /// Explicit ports for nodes `1..=nodes`, in order; empty means `base_port` or free
    /// ports. For callers that must know every address before the nodes start (the fault
    /// suite points `--dial-override` at proxies in front of each node).
    pub ports: Vec<u16>,
    /// Whether nodes serve Prometheus metrics (`--metrics-listen`).
    pub metrics: bool,
    /// Node `id` serves metrics on `metrics_base_port + id - 1`. `None` picks free ports.
    pub metrics_base_port: Option<u16>,
    /// Appended to every node's command line, including nodes added later.
    pub extra_args: Vec<String>,
    /// Appended after `extra_args` for one node (for example `--dial-override …` or
    /// `--clock-offset-ms …`).
    pub node_args: BTreeMap<u64, Vec<String>>,
    /// The IPv4 address node `id` listens on (API and metrics), for nodes that must not share
    /// [`LOCAL_HOST`] (the fault suite's iptables mode gives each node its own loopback
    /// address). Nodes not listed, including nodes added later, use [`LOCAL_HOST`].
    pub hosts: BTreeMap<u64, String>,
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
        if let Some(&id) = self.node_args.keys().find(|&&id| id == 0) {
            return invalid(format!("node_args names node {id}; node ids start at 1"));
        }
        if let Some(&id) = self.hosts.keys().find(|&&id| id == 0) {
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
    pub fn host_of(&self, id: u64) -> &str {
        self.hosts.get(&id).map_or(LOCAL_HOST, String::as_str)
    }
}

/// Whether `count` consecutive ports from `base` are all valid, non-zero ports.
fn port_range_fits(base: u16, count: usize) -> bool {
    base != 0 && u64::from(base) + count as u64 <= u64::from(u16::MAX) + 1
}

/// Where one node lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: u64,
    /// `host:port` of the node's gRPC port (Raft transport, client API, admin API).
    pub address: String,
    /// `host:port` of the node's `/metrics` endpoint, when metrics are on.
    pub metrics_address: Option<String>,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
}

impl NodeInfo {
    /// The URL a gRPC client connects to.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The Prometheus scrape URL, when metrics are on.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics_address
            .as_ref()
            .map(|address| format!("http://{address}/metrics"))
    }

    /// The node as the cluster's address book knows it (one port for everything).
    pub fn proto_node(&self) -> Node {
        Node {
            node_id: self.id,
            raft_address: self.address.clone(),
            api_address: self.address.clone(),
        }
    }
}

/// What [`LocalCluster::init`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum InitOutcome {
    /// A new cluster was formed with this placement.
    Initialized(ClusterLayout),
    /// Node 1 already held cluster state: the nodes were restarted from their data dirs.
    AlreadyInitialized,
}

/// A healthy cluster, as [`check_health`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterHealth {
    pub shard_count: u32,
    /// The leader of every group, by group id (0 is the meta group).
    pub leaders: BTreeMap<u64, u64>,
}

/// One node's process and how to start it again.
#[derive(Debug)]
struct NodeSlot {
    info: NodeInfo,
    /// Everything after the binary, starting with `node`.
    args: Vec<String>,
    /// Present from spawn until the process is reaped, so a pid is never signalled after
    /// the kernel may have reused it.
    child: Option<Child>,
    paused: bool,
    last_exit: Option<ExitStatus>,
}

impl NodeSlot {
    fn running(info: NodeInfo, args: Vec<String>, child: Child) -> NodeSlot {
        NodeSlot {
            info,
            args,
            child: Some(child),
            paused: false,
            last_exit: None,
        }
    }

    /// Reaps the child if it has exited; true while it has not (paused counts as running).
    fn poll_running(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.record_exit(status);
                false
            }
            // `waitpid` failing on our own child means it is gone (ECHILD); nothing to
            // signal any more.
            Err(_) => {
                self.child = None;
                self.paused = false;
                false
            }
        }
    }

    fn record_exit(&mut self, status: ExitStatus) {
        self.child = None;
        self.paused = false;
        self.last_exit = Some(status);
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap. SIGKILL also ends a stopped (paused) process.
    fn kill_and_reap(&mut self) -> Result<Option<ExitStatus>, LocalError> {
        if !self.poll_running() {
            return Ok(None);
        }
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let pid = child.id();
        let node_id = self.info.id;
        let signal_error = |error| LocalError::Signal {
            node_id,
            pid,
            signal: Signal::SIGKILL,
            error,
        };
        child.kill().map_err(signal_error)?;
        let status = child.wait().map_err(signal_error)?;
        self.record_exit(status);
        Ok(Some(status))
    }

    fn signal(&self, signal: Signal) -> Result<(), LocalError> {
        let Some(pid) = self.pid() else {
            return Err(LocalError::NotRunning(self.info.id));
        };
        signal_pid(pid, signal).map_err(|error| LocalError::Signal {
            node_id: self.info.id,
            pid,
            signal,
            error,
        })
    }
}

fn signal_pid(pid: u32, signal: Signal) -> io::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| io::Error::other(format!("pid {pid} overflows")))?;
    send_signal(Pid::from_raw(raw), signal).map_err(io::Error::from)
}

/// A running local cluster. Every method takes `&self`, so one cluster can be shared (in an
/// `Arc`) between a nemesis and the client tasks of a test.
#[derive(Debug)]
pub struct LocalCluster {
    config: LocalClusterConfig,
    /// Ids started by [`LocalCluster::start`]: the members given to `InitCluster`.
    initial_ids: BTreeSet<u64>,
    /// Held only for short, non-blocking steps; never across an `.await`.
    nodes: Mutex<BTreeMap<u64, NodeSlot>>,
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
                let id = index as u64;
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
            config,
        };
        for info in infos {
            let args = node_args(&NodeLaunch {
                info: &info,
                peers: Some(&peers),
                shard_count: cluster.config.shard_count,
                extra_args: &cluster.config.extra_args,
                node_args: cluster.node_extra_args(info.id),
            });
            cluster.spawn_slot(info, args)?;
        }
        let deadline = Instant::now() + cluster.config.ready_timeout;
        for &id in &cluster.initial_ids {
            cluster.wait_ready(id, deadline).await?;
        }
        Ok(cluster)
    }

    /// Calls `InitCluster` on node 1 with every initially started node, then waits until
    /// the cluster is healthy. A node that already holds cluster state answers
    /// `cluster_already_initialized`, which is returned as [`InitOutcome::AlreadyInitialized`]:
    /// its cluster was restarted from the data dirs.
    pub async fn init(&self) -> Result<InitOutcome, LocalError> {
        let first = *self.initial_ids.first().ok_or(LocalError::UnknownNode(1))?;
        let info = self.node(first).ok_or(LocalError::UnknownNode(first))?;
        let request = InitClusterRequest {
            nodes: self
                .initial_ids
                .iter()
                .filter_map(|&id| self.node(id))
                .map(|node| node.proto_node())
                .collect(),
            shard_count: self.config.shard_count,
            // Small test clusters (1 or 2 nodes) ask for their smaller groups explicitly.
            replicas_per_group: u32::try_from(self.initial_ids.len().min(3)).unwrap_or(3),
        };
        let deadline = Instant::now() + self.config.healthy_timeout;
        let mut interval = POLL_INTERVAL_MIN;
        let outcome = loop {
            // A timeout or a lost connection may hide an applied InitCluster; the retry
            // then answers `cluster_already_initialized`, which is fine here.
            let last_error = match init_cluster(&info, request.clone()).await {
                Ok(init_cluster_response::Result::Layout(layout)) => {
                    break InitOutcome::Initialized(layout);
                }
                Ok(init_cluster_response::Result::Error(error)) => {
                    let code = error.code();
                    if code == ErrorCode::ClusterAlreadyInitialized {
                        break InitOutcome::AlreadyInitialized;
                    }
                    if !code.is_retryable() {
                        return Err(LocalError::Init {
                            node_id: first,
                            code,
                            message: error.message,
                        });
                    }
                    format!("{code}: {}", error.message)
                }
                Err(message) => message,
            };
            if Instant::now() + interval > deadline {
                return Err(LocalError::Rpc {
                    node_id: first,
                    address: info.address.clone(),
                    rpc: "InitCluster",
                    message: format!("still failing at the deadline; last: {last_error}"),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(POLL_INTERVAL_MAX);
        };
        self.wait_healthy(deadline.saturating_duration_since(Instant::now()))
            .await?;
        Ok(outcome)
    }

    /// Waits until every running, unpaused node answers `Status` and [`check_health`]
    /// passes. Killed, stopped and paused nodes are left out, so this also says when the
    /// survivors of a fault have elected leaders.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<ClusterHealth, LocalError> {
        let deadline = Instant::now() + timeout;
        let mut interval = POLL_INTERVAL_MIN;
        loop {
            let reason = match self.collect_statuses().await {
                Ok(statuses) => {
                    let members: BTreeSet<u64> = statuses
                        .keys()
                        .filter(|id| self.initial_ids.contains(id))
                        .copied()
                        .collect();
                    match check_health(&statuses, &members) {
                        Ok(health) => return Ok(health),
                        Err(reason) => reason,
                    }
                }
                Err(error) => error.to_string(),
            };
            if Instant::now() + interval > deadline {
                return Err(LocalError::Unhealthy { timeout, reason });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(POLL_INTERVAL_MAX);
        }
    }

    /// The admin `Status` of one node.
    pub async fn status(&self, id: u64) -> Result<StatusResponse, LocalError> {
        let info = self.node(id).ok_or(LocalError::UnknownNode(id))?;
        status_of(&info).await.map_err(|message| LocalError::Rpc {
            node_id: id,
            address: info.address.clone(),
            rpc: "Status",
            message,
        })
    }

    /// SIGKILL (a crash: no cleanup, no flush beyond what was fsynced) and reap. Returns the
    /// exit status, or `None` if the node had already exited.
    pub fn kill(&self, id: u64) -> Result<Option<ExitStatus>, LocalError> {
        let mut nodes = self.lock_nodes();
        let slot = nodes.get_mut(&id).ok_or(LocalError::UnknownNode(id))?;
        slot.kill_and_reap()
    }

    /// SIGTERM, then waits up to `stop_timeout` for the node to exit, then SIGKILL. Returns
    /// whether the node exited by itself with code 0. A paused node is resumed so that it
    /// can handle the SIGTERM.
    pub async fn stop(&self, id: u64) -> Result<bool, LocalError> {
        self.request_stop(id)?;
        let deadline = Instant::now() + self.config.stop_timeout;
        self.finish_stop(id, deadline).await
    }

    /// Stops every running node at once (SIGTERM to all, one shared deadline), so stopping
    /// a cluster takes one `stop_timeout` at most, not one per node. Returns each node's
    /// result by id; nodes that were not running are left out.
    pub async fn stop_all(&self) -> BTreeMap<u64, Result<bool, LocalError>> {
        let mut results = BTreeMap::new();
        let mut stopping = Vec::new();
        for id in self.node_ids() {
            match self.request_stop(id) {
                Ok(()) => stopping.push(id),
                Err(LocalError::NotRunning(_)) => {}
                Err(error) => {
                    results.insert(id, Err(error));
                }
            }
        }
        let deadline = Instant::now() + self.config.stop_timeout;
        for id in stopping {
            results.insert(id, self.finish_stop(id, deadline).await);
        }
        results
    }

    /// Freezes the node with SIGSTOP: it keeps its sockets but answers nothing, like a long
    /// GC pause or a VM stall.
    pub fn pause(&self, id: u64) -> Result<(), LocalError> {
        let mut nodes = self.lock_nodes();
        let slot = nodes.get_mut(&id).ok_or(LocalError::UnknownNode(id))?;
        if !slot.poll_running() {
            return Err(LocalError::NotRunning(id));
        }
        slot.signal(Signal::SIGSTOP)?;
        slot.paused = true;
        Ok(())
    }

    /// Lets a paused node run again (SIGCONT).
    pub fn resume(&self, id: u64) -> Result<(), LocalError> {
        let mut nodes = self.lock_nodes();
        let slot = nodes.get_mut(&id).ok_or(LocalError::UnknownNode(id))?;
        if !slot.poll_running() {
            return Err(LocalError::NotRunning(id));
        }
        slot.signal(Signal::SIGCONT)?;
        slot.paused = false;
        Ok(())
    }

    /// Starts a node that is not running again, with the same ports, data dir and
    /// arguments (including any set by [`LocalCluster::set_node_args`]), and waits until it
    /// is ready. If it is not ready in time, the process is left running for the caller to
    /// inspect or kill; the error quotes its log.
    pub async fn restart(&self, id: u64) -> Result<(), LocalError> {
        {
            let mut nodes = self.lock_nodes();
            let slot = nodes.get_mut(&id).ok_or(LocalError::UnknownNode(id))?;
            if slot.poll_running() {
                return Err(LocalError::AlreadyRunning(id));
            }
            let child = self.spawn_child(&slot.info, &slot.args)?;
            slot.child = Some(child);
            slot.paused = false;
        }
        self.wait_ready(id, Instant::now() + self.config.ready_timeout)
            .await
    }

    /// Replaces the per-node arguments of `id` (those after `extra_args`); they take effect
    /// at its next [`LocalCluster::restart`]. For example a new `--clock-offset-ms`.
    pub fn set_node_args(&self, id: u64, args: Vec<String>) -> Result<(), LocalError> {
        let mut nodes = self.lock_nodes();
        let peers = self
            .initial_ids
            .contains(&id)
            .then(|| self.peers_of_initial_nodes(&nodes_infos(&nodes)));
        let slot = nodes.get_mut(&id).ok_or(LocalError::UnknownNode(id))?;
        slot.args = node_args(&NodeLaunch {
            info: &slot.info,
            peers: peers.as_deref(),
            shard_count: self.config.shard_count,
            extra_args: &self.config.extra_args,
            node_args: &args,
        });
        Ok(())
    }

    /// Spawns a new node `id` with a fresh data dir and a free port, waits until it is
    /// ready and returns its address. It is in no group yet: the caller adds it with the
    /// admin API (`OpenGroup` on it, then `AddLearner` and `PromoteVoter` at the leader).
    pub async fn add_node(&self, id: u64) -> Result<String, LocalError> {
        if id == 0 {
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
                node_args: self.node_extra_args(id),
            });
            let child = self.spawn_child(&info, &args)?;
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
    pub fn is_running(&self, id: u64) -> bool {
        self.lock_nodes()
            .get_mut(&id)
            .is_some_and(NodeSlot::poll_running)
    }

    /// Whether the node is running and paused.
    pub fn is_paused(&self, id: u64) -> bool {
        self.lock_nodes()
            .get_mut(&id)
            .is_some_and(|slot| slot.poll_running() && slot.paused)
    }

    /// The pid of the node's process while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        let mut nodes = self.lock_nodes();
        let slot = nodes.get_mut(&id)?;
        if slot.poll_running() {
            slot.pid()
        } else {
            None
        }
    }

    /// How the node's last process ended, once it has (a crash shows here).
    pub fn exit_status(&self, id: u64) -> Option<ExitStatus> {
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
    pub fn node_ids(&self) -> Vec<u64> {
        self.lock_nodes().keys().copied().collect()
    }

    pub fn node(&self, id: u64) -> Option<NodeInfo> {
        self.lock_nodes().get(&id).map(|slot| slot.info.clone())
    }

    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.lock_nodes()
            .values()
            .map(|slot| slot.info.clone())
            .collect()
    }

    /// The last lines of the node's log, for a test's failure message.
    pub fn log_tail(&self, id: u64) -> Option<String> {
        self.node(id)
            .map(|info| read_log_tail(&info.log_path, LOG_TAIL_LINES_MAX))
    }

    pub fn config(&self) -> &LocalClusterConfig {
        &self.config
    }

    /// The guard survives a panic elsewhere: the map stays consistent because every
    /// critical section is a few non-panicking steps, and `Drop` must still reach it.
    fn lock_nodes(&self) -> MutexGuard<'_, BTreeMap<u64, NodeSlot>> {
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn node_extra_args(&self, id: u64) -> &[String] {
        self.config
            .node_args
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn peers_of_initial_nodes(&self, infos: &BTreeMap<u64, NodeInfo>) -> String {
        format_peers(
            self.initial_ids
                .iter()
                .filter_map(|id| infos.get(id))
                .map(|info| (info.id, info.address.as_str())),
        )
    }

    fn spawn_child(&self, info: &NodeInfo, args: &[String]) -> Result<Child, LocalError> {
        spawn_node(
            &self.config.binary,
            info,
            args,
            &self.config.env,
            self.config.own_process_group,
        )
    }

    fn spawn_slot(&self, info: NodeInfo, args: Vec<String>) -> Result<(), LocalError> {
        let child = self.spawn_child(&info, &args)?;
        let previous = self
            .lock_nodes()
            .insert(info.id, NodeSlot::running(info, args, child));
        debug_assert!(previous.is_none(), "start spawns each node id once");
        Ok(())
    }

    /// Probes `Status` until it answers, failing early (with the log's tail) if the process
    /// exits.
    async fn wait_ready(&self, id: u64, deadline: Instant) -> Result<(), LocalError> {
        let info = self.node(id).ok_or(LocalError::UnknownNode(id))?;
        let started = Instant::now();
        let mut interval = POLL_INTERVAL_MIN;
        loop {
            if !self.is_running(id) {
                let status = self
                    .exit_status(id)
                    .map_or_else(|| "status unknown".to_owned(), |status| status.to_string());
                return Err(LocalError::ExitedBeforeReady {
                    node_id: id,
                    status,
                    log_path: info.log_path.clone(),
                    log_tail: read_log_tail(&info.log_path, LOG_TAIL_LINES_MAX),
                });
            }
            let last_error = match status_of(&info).await {
                Ok(_) => return Ok(()),
                Err(message) => message,
            };
            if Instant::now() + interval > deadline {
                return Err(LocalError::NotReady {
                    node_id: id,
                    address: info.address.clone(),
                    timeout: deadline.saturating_duration_since(started),
                    last_error,
                    log_path: info.log_path.clone(),
                    log_tail: read_log_tail(&info.log_path, LOG_TAIL_LINES_MAX),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(POLL_INTERVAL_MAX);
        }
    }

    async fn collect_statuses(&self) -> Result<BTreeMap<u64, StatusResponse>, LocalError> {
        let probed: Vec<NodeInfo> = {
            let mut nodes = self.lock_nodes();
            nodes
                .values_mut()
                .filter_map(|slot| (slot.poll_running() && !slot.paused).then(|| slot.info.clone()))
                .collect()
        };
        let answers = futures::future::join_all(
            probed
                .iter()
                .map(|info| async move { (info, status_of(info).await) }),
        )
        .await;
        let mut statuses = BTreeMap::new();
        for (info, answer) in answers {
            let status = answer.map_err(|message| LocalError::Rpc {
                node_id: info.id,
                address: info.address.clone(),
                rpc: "Status",
                message,
            })?;
            statuses.insert(info.id, status);
        }
        Ok(statuses)
    }

    /// Sends SIGTERM (and SIGCONT to a paused node, which would otherwise hold the SIGTERM
    /// pending forever).
    fn request_stop(&self, id: u64) -> Result<(), LocalError> {
        let mut nodes = self.lock_nodes();
        let slot = nodes.get_mut(&id).ok_or(LocalError::UnknownNode(id))?;
        if !slot.poll_running() {
            return Err(LocalError::NotRunning(id));
        }
        slot.signal(Signal::SIGTERM)?;
        if slot.paused {
            slot.signal(Signal::SIGCONT)?;
            slot.paused = false;
        }
        Ok(())
    }

    /// Waits for a node sent SIGTERM to exit until `deadline`, then kills it.
    async fn finish_stop(&self, id: u64, deadline: Instant) -> Result<bool, LocalError> {
        let mut interval = POLL_INTERVAL_MIN;
        loop {
            {
                let mut nodes = self.lock_nodes();
                let slot = nodes.get_mut(&id).ok_or(LocalError::UnknownNode(id))?;
                if !slot.poll_running() {
                    return Ok(slot
                        .last_exit
                        .is_some_and(|status| status.code() == Some(0)));
                }
                if Instant::now() >= deadline {
                    slot.kill_and_reap()?;
                    return Ok(false);
                }
            }
            tokio::time::sleep(interval.min(deadline.saturating_duration_since(Instant::now())))
                .await;
            interval = (interval * 2).min(POLL_INTERVAL_MAX);
        }
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

fn nodes_infos(nodes: &BTreeMap<u64, NodeSlot>) -> BTreeMap<u64, NodeInfo> {
    nodes
        .iter()
        .map(|(&id, slot)| (id, slot.info.clone()))
        .collect()
}

fn node_info(dir: &Path, host: &str, id: u64, port: u16, metrics_port: Option<u16>) -> NodeInfo {
    NodeInfo {
        id,
        address: format!("{host}:{port}"),
        metrics_address: metrics_port.map(|port| format!("{host}:{port}")),
        data_dir: dir.join(format!("node-{id}")),
        log_path: dir.join(format!("node-{id}.log")),
    }
}

/// Everything [`node_args`] needs to build one node's command line.
#[derive(Debug)]
struct NodeLaunch<'a> {
    info: &'a NodeInfo,
    /// `--peers`, for the initial members only.
    peers: Option<&'a str>,
    shard_count: u32,
    extra_args: &'a [String],
    node_args: &'a [String],
}

/// The command line after the binary: `node --id … --listen … --data-dir … [--metrics-listen
/// …] [--peers …] --shard-count … <extra args> <node args>`. The extra arguments come last so
/// a test can add any flag; `--advertise` is left to default to `--listen`.
fn node_args(launch: &NodeLaunch<'_>) -> Vec<String> {
    let info = launch.info;
    let mut args = vec![
        "node".to_owned(),
        "--id".to_owned(),
        info.id.to_string(),
        "--listen".to_owned(),
        info.address.clone(),
        "--data-dir".to_owned(),
        info.data_dir.display().to_string(),
    ];
    if let Some(metrics_address) = &info.metrics_address {
        args.extend(["--metrics-listen".to_owned(), metrics_address.clone()]);
    }
    if let Some(peers) = launch.peers {
        args.extend(["--peers".to_owned(), peers.to_owned()]);
    }
    args.extend(["--shard-count".to_owned(), launch.shard_count.to_string()]);
    args.extend(launch.extra_args.iter().cloned());
    args.extend(launch.node_args.iter().cloned());
    args
}

/// `--peers` syntax: `id=host:port` joined by commas, in the given order.
pub fn format_peers<'a>(peers: impl IntoIterator<Item = (u64, &'a str)>) -> String {
    peers
        .into_iter()
        .map(|(id, address)| format!("{id}={address}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn consecutive_ports(base: u16, count: usize) -> Vec<u16> {
    // `validate` checked that the range fits below 65536.
    (0..count).map(|offset| base + offset as u16).collect()
}

/// Ports picked for nodes lie in `[PICKED_PORT_MIN, start of the kernel's ephemeral range)`.
const PICKED_PORT_MIN: u16 = 10_000;
/// The ephemeral range's start when `/proc` does not say (Linux's default).
const EPHEMERAL_PORT_LOW_DEFAULT: u16 = 32_768;

/// `count` distinct free ports on 127.0.0.1. Every listener is held until all are bound, so
/// the ports differ; they are released before returning.
///
/// They are picked below the kernel's ephemeral range (from a random starting point), not by
/// binding port 0: between this pick and a node's bind, the kernel hands ephemeral ports to
/// every `bind(0)` and outgoing connection on the machine (the fault suite's proxies, peers
/// dialling each other, parallel tests), and one of them could take a port picked that way.
/// Only when that range is too small does it fall back to port 0.
pub fn pick_free_ports(count: usize) -> io::Result<Vec<u16>> {
    let high = ephemeral_port_low().max(PICKED_PORT_MIN);
    let span = u32::from(high - PICKED_PORT_MIN);
    let mut listeners = Vec::with_capacity(count);
    if span > 0 {
        let start = random_seed() % span;
        for step in 0..span {
            if listeners.len() == count {
                break;
            }
            let port = PICKED_PORT_MIN + ((start + step) % span) as u16;
            if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                listeners.push(listener);
            }
        }
    }
    while listeners.len() < count {
        listeners.push(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?);
    }
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()))
        .collect()
}

/// The first port of the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`).
fn ephemeral_port_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(EPHEMERAL_PORT_LOW_DEFAULT)
}

/// Varies from process to process and call to call, so parallel pickers start apart.
fn random_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

/// A free port that is not in `used` (a stopped node's port stays reserved for its restart),
/// and records it there.
fn pick_unused_port(used: &mut BTreeSet<u16>) -> Result<u16, LocalError> {
    for _ in 0..FREE_PORT_ATTEMPTS_MAX {
        let port = pick_free_ports(1).map_err(LocalError::FreePort)?[0];
        if used.insert(port) {
            return Ok(port);
        }
    }
    Err(LocalError::FreePort(io::Error::other(format!(
        "every free port offered in {FREE_PORT_ATTEMPTS_MAX} attempts belongs to a node"
    ))))
}

fn ensure_distinct_ports(api_ports: &[u16], metrics_ports: &[u16]) -> Result<(), LocalError> {
    let mut seen = BTreeSet::new();
    for &port in api_ports.iter().chain(metrics_ports) {
        if !seen.insert(port) {
            return Err(LocalError::Config(format!(
                "port {port} is used twice (api ports {api_ports:?}, metrics ports \
                 {metrics_ports:?})"
            )));
        }
    }
    Ok(())
}

fn port_of(address: &str) -> Option<u16> {
    address.rsplit_once(':')?.1.parse().ok()
}

fn dir_has_entries(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Spawns `binary args…` with stdout and stderr appended to the node's log.
fn spawn_node(
    binary: &Path,
    info: &NodeInfo,
    args: &[String],
    env: &[(String, String)],
    own_process_group: bool,
) -> Result<Child, LocalError> {
    fs::create_dir_all(&info.data_dir).map_err(|error| LocalError::Io {
        action: "creating the data dir",
        path: info.data_dir.clone(),
        error,
    })?;
    let log_error = |error| LocalError::Io {
        action: "opening the node log",
        path: info.log_path.clone(),
        error,
    };
    let stdout = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&info.log_path)
        .map_err(log_error)?;
    let stderr = stdout.try_clone().map_err(log_error)?;
    let mut command = Command::new(binary);
    // The node reads every flag from a `MARTELO_*` variable too. One inherited from this
    // process (a developer's shell, a CI job) would reach every node, and a stray
    // `MARTELO_ADVERTISE` or `MARTELO_CONFIG` would make all of them claim one address.
    // Only `env` sets them.
    for (name, _) in std::env::vars_os() {
        if is_node_setting(&name) {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    if own_process_group {
        command.process_group(0);
    }
    command.spawn().map_err(|error| LocalError::Spawn {
        node_id: info.id,
        binary: binary.to_owned(),
        error,
    })
}

/// Whether an environment variable configures a node (`MARTELO_ID`, `MARTELO_ADVERTISE`, …).
fn is_node_setting(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b"MARTELO_")
}

/// The last `lines_max` lines of a log (at most its last 16 KiB), or a note saying why it
/// could not be read. Never fails: it only decorates another error.
pub fn read_log_tail(path: &Path, lines_max: usize) -> String {
    match read_end(path, LOG_TAIL_BYTES_MAX) {
        Ok((text, truncated)) => {
            let tail = tail_lines(&text, lines_max, truncated);
            if tail.is_empty() {
                "(the log is empty)".to_owned()
            } else {
                tail.to_owned()
            }
        }
        Err(error) => format!("(could not read {}: {error})", path.display()),
    }
}

/// The last `bytes_max` bytes of a file as text, and whether earlier bytes were skipped.
fn read_end(path: &Path, bytes_max: u64) -> io::Result<(String, bool)> {
    let mut file = File::open(path)?;
    let length = file.metadata()?.len();
    let start = length.saturating_sub(bytes_max);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(bytes_max).read_to_end(&mut bytes)?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), start > 0))
}

/// The last `lines_max` lines of `text`, without the trailing newline. When `starts_mid_line`
/// (the text was cut from a longer file), the first, partial line is dropped, unless it is
/// all there is (one line longer than the cut): a fragment says more than nothing.
fn tail_lines(text: &str, lines_max: usize, starts_mid_line: bool) -> &str {
    let text = text.trim_end_matches(['\n', '\r']);
    let text = if starts_mid_line {
        text.split_once('\n').map_or(text, |(_, rest)| rest)
    } else {
        text
    };
    if lines_max == 0 {
        return "";
    }
    match text.rmatch_indices('\n').nth(lines_max - 1) {
        Some((index, _)) => &text[index + 1..],
        None => text,
    }
}

/// The error and its sources on one line: tonic's transport errors say little at the top.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

async fn connect(info: &NodeInfo) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(info.endpoint_url())
        .map_err(|error| format!("bad address: {}", error_chain(&error)))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(RPC_TIMEOUT);
    endpoint
        .connect()
        .await
        .map_err(|error| format!("connect: {}", error_chain(&error)))
}

async fn status_of(info: &NodeInfo) -> Result<StatusResponse, String> {
    let channel = connect(info).await?;
    let mut client = admin_api_client(channel);
    let request = StatusRequest::default();
    match tokio::time::timeout(RPC_TIMEOUT, client.status(request)).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(format!("Status: {status}")),
        Err(_) => Err(format!("Status: no answer within {RPC_TIMEOUT:?}")),
    }
}

async fn init_cluster(
    info: &NodeInfo,
    request: InitClusterRequest,
) -> Result<init_cluster_response::Result, String> {
    let channel = connect(info).await?;
    let mut client = admin_api_client(channel);
    // Bootstrapping writes every group's first entries; give it more than a status probe.
    let response = tokio::time::timeout(RPC_TIMEOUT * 5, client.init_cluster(request))
        .await
        .map_err(|_| format!("InitCluster: no answer within {:?}", RPC_TIMEOUT * 5))?
        .map_err(|status| format!("InitCluster: {status}"))?;
    response
        .into_inner()
        .result
        .ok_or_else(|| "InitCluster: the answer holds neither a layout nor an error".to_owned())
}

/// The health rule. `statuses` are the answers of the nodes that should be up (running and
/// not paused); `members` are those among them that must hold cluster state.
///
/// Healthy means: every member is initialized; the initialized nodes agree on the shard
/// count; every group `0..=shard_count` is held by at least one answering node; every
/// replica of a group names a leader, all the same one; and that leader answered and
/// reports itself leader of the group. The last rule keeps a crashed leader, which its
/// followers still name until their election timeout, from counting as healthy.
///
/// Returns the reason it is not healthy, for the timeout error.
pub fn check_health(
    statuses: &BTreeMap<u64, StatusResponse>,
    members: &BTreeSet<u64>,
) -> Result<ClusterHealth, String> {
    if statuses.is_empty() {
        return Err("no node is running".to_owned());
    }
    for &id in members {
        match statuses.get(&id) {
            None => return Err(format!("node {id} did not answer")),
            Some(status) if !status.initialized => {
                return Err(format!("node {id} is not initialized"));
            }
            Some(_) => {}
        }
    }
    let shard_counts: BTreeSet<u32> = statuses
        .values()
        .filter(|status| status.initialized)
        .map(|status| status.shard_count)
        .collect();
    let shard_count = match shard_counts.len() {
        0 => return Err("no node is initialized".to_owned()),
        1 => *shard_counts.first().unwrap_or(&0),
        _ => {
            return Err(format!(
                "nodes disagree on the shard count: {shard_counts:?}"
            ));
        }
    };
    if shard_count == 0 {
        return Err("an initialized node reports shard count 0".to_owned());
    }
    let mut leaders = BTreeMap::new();
    for group_id in 0..=u64::from(shard_count) {
        let all: Vec<(u64, &GroupStatus)> = statuses
            .iter()
            .flat_map(|(&node_id, status)| {
                status
                    .groups
                    .iter()
                    .filter(move |group| group.group_id == group_id)
                    .map(move |group| (node_id, group))
            })
            .collect();
        if all.is_empty() {
            return Err(format!("no answering node holds group {group_id}"));
        }
        // A replica left behind on a node removed from the group (it is not told) knows no
        // leader forever; the members are those of the leader with the highest term.
        let members: Option<BTreeSet<u64>> = all
            .iter()
            .filter(|(_, group)| group.role() == RaftRole::Leader)
            .max_by_key(|(_, group)| group.term)
            .map(|(_, group)| {
                group
                    .voters
                    .iter()
                    .chain(&group.learners)
                    .copied()
                    .collect()
            })
            .filter(|members: &BTreeSet<u64>| !members.is_empty());
        let replicas: Vec<(u64, Option<u64>, RaftRole)> = all
            .iter()
            .filter(|(node_id, _)| {
                members
                    .as_ref()
                    .is_none_or(|members| members.contains(node_id))
            })
            .map(|&(node_id, group)| (node_id, group.leader_id, group.role()))
            .collect();
        let mut named = BTreeSet::new();
        for &(node_id, leader_id, _) in &replicas {
            match leader_id {
                Some(leader_id) => {
                    named.insert(leader_id);
                }
                None => {
                    return Err(format!(
                        "node {node_id} knows no leader of group {group_id}"
                    ));
                }
            }
        }
        let leader_id = match named.len() {
            1 => *named.first().unwrap_or(&0),
            _ => {
                let views: Vec<String> = replicas
                    .iter()
                    .map(|(node_id, leader_id, _)| {
                        format!("node {node_id} says {}", leader_id.unwrap_or(0))
                    })
                    .collect();
                return Err(format!(
                    "nodes disagree on the leader of group {group_id}: {}",
                    views.join(", ")
                ));
            }
        };
        let leader_role = replicas
            .iter()
            .find(|(node_id, _, _)| *node_id == leader_id)
            .map(|&(_, _, role)| role);
        match leader_role {
            Some(RaftRole::Leader) => {}
            Some(role) => {
                return Err(format!(
                    "node {leader_id} is named leader of group {group_id} but is {}",
                    role.as_str_name()
                ));
            }
            None => {
                return Err(format!(
                    "node {leader_id}, named leader of group {group_id}, did not answer as a \
                     replica of it"
                ));
            }
        }
        leaders.insert(group_id, leader_id);
    }
    Ok(ClusterHealth {
        shard_count,
        leaders,
    })
}

/// `martelo dev`: run a local cluster in the foreground until Ctrl-C.
#[derive(Clone, Debug, clap::Args)]
pub struct DevArgs {
    /// Where the data dirs and logs live. Default: a new temporary directory, kept after
    /// exit. Run again with the same dir to restart that cluster from its data.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Number of nodes.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub nodes: usize,
    /// Number of auction shards (Raft groups besides the meta group), fixed at init.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub shard_count: u32,
    /// Node N listens on this port + N - 1.
    #[arg(long, value_name = "PORT", default_value_t = 7001)]
    pub base_port: u16,
    /// Node N serves Prometheus metrics on this port + N - 1.
    #[arg(long, value_name = "PORT", default_value_t = 9101)]
    pub metrics_base_port: u16,
    /// The `martelo` binary to run the nodes with. Default: this executable.
    #[arg(long, value_name = "PATH", hide = true)]
    pub binary: Option<PathBuf>,
}

/// Runs `martelo dev`: starts (or restarts) the cluster, initializes it, prints where
/// everything is, then waits for Ctrl-C or SIGTERM and stops every node cleanly.
pub async fn run_dev(args: DevArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};

    // Installed first: a Ctrl-C during startup must reach us, not end the process before
    // `Drop` can kill the nodes (they run in their own process group).
    let mut interrupt = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;

    let binary = match args.binary {
        Some(binary) => binary,
        None => std::env::current_exe().context("finding the martelo executable")?,
    };
    let dir = match args.dir {
        Some(dir) => dir,
        None => tempfile::Builder::new()
            .prefix("martelo-dev-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep(),
    };
    let mut config = LocalClusterConfig::new(binary, &dir);
    config.nodes = args.nodes;
    config.shard_count = args.shard_count;
    config.base_port = Some(args.base_port);
    config.metrics = true;
    config.metrics_base_port = Some(args.metrics_base_port);
    config.own_process_group = true;
    // Children see no inherited `MARTELO_*` variable (see `spawn_node`); the log format is
    // the one a developer may well set in their shell, so it is passed on on purpose.
    if let Some(format) = std::env::var_os("MARTELO_LOG_FORMAT").and_then(|f| f.into_string().ok())
    {
        config.env.push(("MARTELO_LOG_FORMAT".to_owned(), format));
    }

    println!(
        "martelo dev: starting {} nodes in {}",
        config.nodes,
        dir.display()
    );
    let cluster = tokio::select! {
        started = LocalCluster::start(config) => started?,
        _ = interrupt.recv() => {
            println!("interrupted while starting; the nodes were killed");
            return Ok(());
        }
        _ = terminate.recv() => {
            println!("terminated while starting; the nodes were killed");
            return Ok(());
        }
    };
    let initialized = tokio::select! {
        outcome = cluster.init() => Some(outcome),
        _ = interrupt.recv() => None,
        _ = terminate.recv() => None,
    };
    match initialized {
        Some(Ok(InitOutcome::Initialized(layout))) => println!(
            "cluster initialized: {} groups (the meta group and {} auction shards)",
            layout.groups.len(),
            layout.groups.len().saturating_sub(1)
        ),
        Some(Ok(InitOutcome::AlreadyInitialized)) => println!(
            "cluster already initialized in {}: the nodes restarted from their data dirs",
            dir.display()
        ),
        Some(Err(error)) => {
            println!("the cluster did not become healthy: {error}");
            println!("node logs: {}", dir.join("node-*.log").display());
            report_stop(&cluster.stop_all().await);
            return Err(error.into());
        }
        None => {
            println!("interrupted while initializing; stopping the nodes");
            return stop_and_report(&cluster).await;
        }
    }

    print_dev_summary(&cluster, &dir);

    let mut reported_exits = BTreeSet::new();
    let mut watch = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = watch.tick() => {
                for id in cluster.node_ids() {
                    if !cluster.is_running(id) && reported_exits.insert(id) {
                        let status = cluster
                            .exit_status(id)
                            .map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                        let log = cluster.node(id).map(|info| info.log_path).unwrap_or_default();
                        println!("node {id} exited ({status}); see {}", log.display());
                    }
                }
            }
        }
    }
    println!("stopping the nodes");
    stop_and_report(&cluster).await?;
    println!(
        "data kept in {}; run `martelo dev --dir {}` to start this cluster again",
        dir.display(),
        dir.display()
    );
    Ok(())
}

fn print_dev_summary(cluster: &LocalCluster, dir: &Path) {
    println!();
    println!("martelo dev cluster is up (directory {})", dir.display());
    for info in cluster.nodes() {
        println!("  node {}", info.id);
        println!("    address   {}", info.address);
        if let Some(url) = info.metrics_url() {
            println!("    metrics   {url}");
        }
        println!("    data dir  {}", info.data_dir.display());
        println!("    log       {}", info.log_path.display());
    }
    let first = cluster
        .api_addresses()
        .into_iter()
        .next()
        .unwrap_or_default();
    println!();
    println!("try:");
    println!("  martelo status --addr {first}");
    // `--addr` defaults to 127.0.0.1:7001, the default base port.
    if first == "127.0.0.1:7001" {
        println!("  martelo auction show 1");
    } else {
        println!("  martelo auction show 1 --addr {first}");
    }
    println!();
    println!("press Ctrl-C to stop every node cleanly");
}

async fn stop_and_report(cluster: &LocalCluster) -> anyhow::Result<()> {
    let results = cluster.stop_all().await;
    if report_stop(&results) {
        Ok(())
    } else {
        anyhow::bail!("some nodes did not stop cleanly; their logs say why")
    }
}

/// Prints one line per node; true when every node stopped cleanly.
fn report_stop(results: &BTreeMap<u64, Result<bool, LocalError>>) -> bool {
    let mut all_clean = true;
    for (id, result) in results {
        match result {
            Ok(true) => println!("node {id} stopped cleanly"),
            Ok(false) => {
                all_clean = false;
                println!("node {id} did not exit cleanly (killed or non-zero exit)");
            }
            Err(error) => {
                all_clean = false;
                println!("node {id}: {error}");
            }
        }
    }
    all_clean
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn group(group_id: u64, leader_id: Option<u64>, role: RaftRole) -> GroupStatus {
        GroupStatus {
            group_id,
            role: role.into(),
            leader_id,
            ..GroupStatus::default()
        }
    }

    /// A node's status holding groups `0..=shard_count`, all led by `leader`.
    fn node_status(node_id: u64, shard_count: u32, leader: u64) -> StatusResponse {
        let role = if node_id == leader {
            RaftRole::Leader
        } else {
            RaftRole::Follower
        };
        StatusResponse {
            initialized: true,
            shard_count,
            groups: (0..=u64::from(shard_count))
                .map(|group_id| group(group_id, Some(leader), role))
                .collect(),
            ..StatusResponse::default()
        }
    }

    fn three_nodes_led_by(leader: u64) -> BTreeMap<u64, StatusResponse> {
        (1..=3).map(|id| (id, node_status(id, 2, leader))).collect()
    }

    fn members(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    fn test_info(id: u64, metrics_port: Option<u16>) -> NodeInfo {
        node_info(
            Path::new("/tmp/cluster"),
            LOCAL_HOST,
            id,
            7000 + id as u16,
            metrics_port,
        )
    }

    #[test]
    fn node_args_start_with_identity_and_end_with_extra_then_node_args() {
        let info = test_info(2, Some(9102));
        let extra = vec!["--log-format".to_owned(), "text".to_owned()];
        let per_node = vec!["--clock-offset-ms".to_owned(), "-250".to_owned()];
        let args = node_args(&NodeLaunch {
            info: &info,
            peers: Some("1=127.0.0.1:7001,2=127.0.0.1:7002"),
            shard_count: 4,
            extra_args: &extra,
            node_args: &per_node,
        });
        assert_eq!(
            args,
            [
                "node",
                "--id",
                "2",
                "--listen",
                "127.0.0.1:7002",
                "--data-dir",
                "/tmp/cluster/node-2",
                "--metrics-listen",
                "127.0.0.1:9102",
                "--peers",
                "1=127.0.0.1:7001,2=127.0.0.1:7002",
                "--shard-count",
                "4",
                "--log-format",
                "text",
                "--clock-offset-ms",
                "-250",
            ]
        );
    }

    #[test]
    fn node_args_of_an_added_node_have_no_peers_and_no_metrics_when_off() {
        let info = test_info(7, None);
        let args = node_args(&NodeLaunch {
            info: &info,
            peers: None,
            shard_count: 8,
            extra_args: &[],
            node_args: &[],
        });
        assert!(!args.iter().any(|arg| arg == "--peers"));
        assert!(!args.iter().any(|arg| arg == "--metrics-listen"));
        assert_eq!(&args[..3], ["node", "--id", "7"]);
    }

    #[test]
    fn node_info_places_data_dir_and_log_under_the_cluster_dir() {
        let info = test_info(3, Some(9103));
        assert_eq!(info.address, "127.0.0.1:7003");
        assert_eq!(info.data_dir, Path::new("/tmp/cluster/node-3"));
        assert_eq!(info.log_path, Path::new("/tmp/cluster/node-3.log"));
        assert_eq!(info.endpoint_url(), "http://127.0.0.1:7003");
        assert_eq!(
            info.metrics_url().as_deref(),
            Some("http://127.0.0.1:9103/metrics")
        );
        assert_eq!(
            info.proto_node().raft_address,
            info.proto_node().api_address
        );
    }

    #[test]
    fn a_node_listens_on_its_own_host_when_one_is_given() {
        let mut config = LocalClusterConfig::new("/bin/martelo", "/tmp/cluster");
        config.hosts = BTreeMap::from([(2, "127.0.0.12".to_owned())]);
        assert!(config.validate().is_ok());
        assert_eq!(config.host_of(1), LOCAL_HOST);
        assert_eq!(config.host_of(2), "127.0.0.12");
        let info = node_info(&config.dir, config.host_of(2), 2, 7002, Some(9102));
        assert_eq!(info.address, "127.0.0.12:7002");
        assert_eq!(info.metrics_address.as_deref(), Some("127.0.0.12:9102"));
    }

    #[test]
    fn peers_are_formatted_as_id_equals_address_joined_by_commas() {
        assert_eq!(
            format_peers([(1, "127.0.0.1:7001"), (2, "127.0.0.1:7002"), (3, "h:1")]),
            "1=127.0.0.1:7001,2=127.0.0.1:7002,3=h:1"
        );
        assert_eq!(format_peers([(1, "127.0.0.1:7001")]), "1=127.0.0.1:7001");
        assert_eq!(format_peers(std::iter::empty::<(u64, &str)>()), "");
    }

    #[test]
    fn free_ports_are_distinct_non_zero_and_bindable() {
        let ports = pick_free_ports(8).expect("free ports");
        assert_eq!(ports.len(), 8);
        assert!(ports.iter().all(|&port| port != 0));
        assert_eq!(ports.iter().collect::<BTreeSet<_>>().len(), 8);
        for port in ports {
            // Released before returning, so a node can bind them.
            drop(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port is free"));
        }
    }

    #[test]
    fn free_ports_come_from_below_the_ephemeral_range() {
        let low = ephemeral_port_low();
        for port in pick_free_ports(8).expect("free ports") {
            assert!((PICKED_PORT_MIN..low).contains(&port), "{port} vs {low}");
        }
    }

    #[test]
    fn an_unused_port_never_repeats_a_port_of_the_cluster() {
        let mut used: BTreeSet<u16> = pick_free_ports(4).expect("ports").into_iter().collect();
        let before = used.clone();
        let port = pick_unused_port(&mut used).expect("a port");
        assert!(!before.contains(&port));
        assert!(used.contains(&port));
    }

    #[test]
    fn consecutive_ports_start_at_the_base() {
        assert_eq!(consecutive_ports(7001, 3), [7001, 7002, 7003]);
        assert!(port_range_fits(65533, 3));
        assert!(!port_range_fits(65534, 3));
        assert!(!port_range_fits(0, 1));
        assert!(port_range_fits(1, 0));
    }

    #[test]
    fn a_port_used_twice_is_rejected() {
        assert!(ensure_distinct_ports(&[7001, 7002], &[9101, 9102]).is_ok());
        let error = ensure_distinct_ports(&[7001, 7002], &[7002]).expect_err("duplicate");
        assert!(error.to_string().contains("port 7002 is used twice"));
    }

    #[test]
    fn the_port_of_an_address_is_after_the_last_colon() {
        assert_eq!(port_of("127.0.0.1:7001"), Some(7001));
        assert_eq!(port_of("[::1]:80"), Some(80));
        assert_eq!(port_of("no-port"), None);
    }

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
                    node_args: BTreeMap::from([(0, vec![])]),
                    ..valid.clone()
                },
            ),
            (
                "hosts names node 0",
                LocalClusterConfig {
                    hosts: BTreeMap::from([(0, "127.0.0.11".to_owned())]),
                    ..valid.clone()
                },
            ),
            (
                "is not an IPv4 address",
                LocalClusterConfig {
                    hosts: BTreeMap::from([(2, "127.0.0.12:7002".to_owned())]),
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
    fn dev_args_default_to_three_nodes_eight_shards_port_7001_and_metrics_9101() {
        use clap::Parser;

        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            dev: DevArgs,
        }
        let defaults = Cli::parse_from(["martelo-dev"]).dev;
        assert_eq!(defaults.dir, None);
        assert_eq!(defaults.nodes, 3);
        assert_eq!(defaults.shard_count, 8);
        assert_eq!(defaults.base_port, 7001);
        assert_eq!(defaults.metrics_base_port, 9101);
        assert_eq!(defaults.binary, None);
        let given = Cli::parse_from(["martelo-dev", "--dir", "/tmp/d", "--nodes", "5"]).dev;
        assert_eq!(given.dir.as_deref(), Some(Path::new("/tmp/d")));
        assert_eq!(given.nodes, 5);
    }

    #[test]
    fn only_martelo_variables_are_node_settings() {
        use std::ffi::OsStr;

        assert!(is_node_setting(OsStr::new("MARTELO_ADVERTISE")));
        assert!(is_node_setting(OsStr::new("MARTELO_CONFIG")));
        assert!(!is_node_setting(OsStr::new("RUST_LOG")));
        assert!(!is_node_setting(OsStr::new("martelo_lowercase")));
        assert!(!is_node_setting(OsStr::new("MARTELO")));
    }

    #[test]
    fn tail_lines_keeps_the_last_lines_without_the_final_newline() {
        assert_eq!(tail_lines("a\nb\nc\n", 2, false), "b\nc");
        assert_eq!(tail_lines("a\nb\nc", 5, false), "a\nb\nc");
        assert_eq!(tail_lines("a\nb\nc\n", 1, false), "c");
        assert_eq!(tail_lines("a\nb\nc\n", 0, false), "");
        assert_eq!(tail_lines("", 3, false), "");
    }

    #[test]
    fn tail_lines_drops_the_partial_first_line_of_a_cut_log() {
        assert_eq!(tail_lines("rtial\nwhole\nlast\n", 10, true), "whole\nlast");
        assert_eq!(tail_lines("only-a-fragment", 10, true), "only-a-fragment");
    }

    #[test]
    fn read_log_tail_reads_only_the_end_of_a_long_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("node-1.log");
        let mut file = File::create(&path).expect("log");
        for line in 0..5000 {
            writeln!(file, "{{\"line\":{line},\"message\":\"some node output\"}}").expect("write");
        }
        writeln!(file, "error: address already in use").expect("write");
        drop(file);
        let tail = read_log_tail(&path, 3);
        assert_eq!(
            tail,
            "{\"line\":4998,\"message\":\"some node output\"}\n\
             {\"line\":4999,\"message\":\"some node output\"}\n\
             error: address already in use"
        );
        let (text, truncated) = read_end(&path, LOG_TAIL_BYTES_MAX).expect("read");
        assert!(truncated);
        assert_eq!(text.len() as u64, LOG_TAIL_BYTES_MAX);
    }

    #[test]
    fn read_log_tail_explains_a_missing_or_empty_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = read_log_tail(&dir.path().join("absent.log"), 5);
        assert!(missing.starts_with("(could not read"), "{missing}");
        let empty = dir.path().join("empty.log");
        File::create(&empty).expect("log");
        assert_eq!(read_log_tail(&empty, 5), "(the log is empty)");
    }

    #[test]
    fn healthy_when_every_replica_names_the_same_answering_leader() {
        let health = check_health(&three_nodes_led_by(2), &members(&[1, 2, 3])).expect("healthy");
        assert_eq!(health.shard_count, 2);
        assert_eq!(health.leaders, BTreeMap::from([(0, 2), (1, 2), (2, 2)]));
    }

    #[test]
    fn unhealthy_when_a_member_is_not_initialized() {
        let mut statuses = three_nodes_led_by(1);
        statuses.insert(3, StatusResponse::default());
        let reason = check_health(&statuses, &members(&[1, 2, 3])).expect_err("unhealthy");
        assert_eq!(reason, "node 3 is not initialized");
    }

    #[test]
    fn unhealthy_when_a_member_did_not_answer() {
        let mut statuses = three_nodes_led_by(1);
        statuses.remove(&3);
        let reason = check_health(&statuses, &members(&[1, 2, 3])).expect_err("unhealthy");
        assert_eq!(reason, "node 3 did not answer");
    }

    #[test]
    fn an_added_uninitialized_node_holding_no_group_does_not_spoil_health() {
        let mut statuses = three_nodes_led_by(1);
        statuses.insert(4, StatusResponse::default());
        assert!(check_health(&statuses, &members(&[1, 2, 3])).is_ok());
    }

    #[test]
    fn a_replica_left_on_a_removed_node_does_not_spoil_health() {
        let mut statuses = three_nodes_led_by(1);
        for status in statuses.values_mut() {
            for group in &mut status.groups {
                group.voters = vec![1, 2, 3];
            }
        }
        let mut removed = node_status(4, 2, 1);
        removed.groups[1].leader_id = None;
        removed.groups[1].role = RaftRole::Candidate.into();
        removed.groups[1].voters = vec![1, 2, 3, 4];
        statuses.insert(4, removed);
        assert!(check_health(&statuses, &members(&[1, 2, 3, 4])).is_ok());
        // The same replica in the membership is a real problem.
        for group in &mut statuses.get_mut(&1).expect("leader").groups {
            group.voters = vec![1, 2, 3, 4];
        }
        let reason = check_health(&statuses, &members(&[1, 2, 3, 4])).expect_err("unhealthy");
        assert_eq!(reason, "node 4 knows no leader of group 1");
    }

    #[test]
    fn unhealthy_when_a_replica_knows_no_leader() {
        let mut statuses = three_nodes_led_by(1);
        statuses.get_mut(&3).expect("node 3").groups[1].leader_id = None;
        let reason = check_health(&statuses, &members(&[1, 2, 3])).expect_err("unhealthy");
        assert_eq!(reason, "node 3 knows no leader of group 1");
    }

    #[test]
    fn unhealthy_when_replicas_disagree_on_the_leader() {
        let mut statuses = three_nodes_led_by(1);
        statuses.get_mut(&3).expect("node 3").groups[2].leader_id = Some(3);
        let reason = check_health(&statuses, &members(&[1, 2, 3])).expect_err("unhealthy");
        assert_eq!(
            reason,
            "nodes disagree on the leader of group 2: node 1 says 1, node 2 says 1, \
             node 3 says 3"
        );
    }

    #[test]
    fn unhealthy_while_followers_still_name_a_crashed_leader() {
        // Node 1 was killed, so it is not probed; 2 and 3 still follow it.
        let mut statuses = three_nodes_led_by(1);
        statuses.remove(&1);
        let reason = check_health(&statuses, &members(&[2, 3])).expect_err("unhealthy");
        assert_eq!(
            reason,
            "node 1, named leader of group 0, did not answer as a replica of it"
        );
    }

    #[test]
    fn healthy_again_once_survivors_elect_a_new_leader() {
        let mut statuses = three_nodes_led_by(2);
        statuses.remove(&1);
        assert!(check_health(&statuses, &members(&[2, 3])).is_ok());
    }

    #[test]
    fn unhealthy_when_the_named_leader_does_not_lead() {
        let mut statuses = three_nodes_led_by(1);
        statuses.get_mut(&1).expect("node 1").groups[0].role = RaftRole::Candidate.into();
        let reason = check_health(&statuses, &members(&[1, 2, 3])).expect_err("unhealthy");
        assert_eq!(
            reason,
            "node 1 is named leader of group 0 but is RAFT_ROLE_CANDIDATE"
        );
    }

    #[test]
    fn unhealthy_when_a_group_is_held_by_no_answering_node() {
        let mut statuses = three_nodes_led_by(1);
        for status in statuses.values_mut() {
            status.groups.retain(|group| group.group_id != 1);
        }
        let reason = check_health(&statuses, &members(&[1, 2, 3])).expect_err("unhealthy");
        assert_eq!(reason, "no answering node holds group 1");
    }

    #[test]
    fn groups_spread_over_more_nodes_than_replicas_are_healthy() {
        // Five nodes, three replicas per group: node 4 and 5 hold only some groups.
        let mut statuses = three_nodes_led_by(1);
        for status in statuses.values_mut() {
            status.groups.retain(|group| group.group_id != 2);
        }
        for id in [4, 5] {
            let mut status = node_status(id, 2, 4);
            status.groups.retain(|group| group.group_id == 2);
            statuses.insert(id, status);
        }
        let health = check_health(&statuses, &members(&[1, 2, 3, 4, 5])).expect("healthy");
        assert_eq!(health.leaders, BTreeMap::from([(0, 1), (1, 1), (2, 4)]));
    }

    #[test]
    fn unhealthy_when_nodes_disagree_on_the_shard_count() {
        let mut statuses = three_nodes_led_by(1);
        statuses.get_mut(&2).expect("node 2").shard_count = 4;
        let reason = check_health(&statuses, &members(&[1, 2, 3])).expect_err("unhealthy");
        assert_eq!(reason, "nodes disagree on the shard count: {2, 4}");
    }

    /// Not a node: a binary that fails at startup, to check that the error quotes the log
    /// and that the supervisor gives up at once rather than at the ready timeout.
    #[tokio::test]
    async fn a_node_that_exits_at_startup_fails_start_with_its_log_tail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let binary = write_script(
            dir.path(),
            "exits.sh",
            "echo \"starting $2 $3 logging $MARTELO_LOG_FORMAT\"; \
             echo 'error: address already in use' >&2; exit 3",
        );
        let mut config = LocalClusterConfig::new(binary, dir.path().join("cluster"));
        config.nodes = 1;
        config.env = vec![("MARTELO_LOG_FORMAT".to_owned(), "text".to_owned())];
        config.ready_timeout = Duration::from_secs(20);
        let started = std::time::Instant::now();
        let error = LocalCluster::start(config).await.expect_err("must fail");
        assert!(started.elapsed() < Duration::from_secs(10), "gave up late");
        let message = error.to_string();
        assert!(
            matches!(error, LocalError::ExitedBeforeReady { node_id: 1, .. }),
            "{message}"
        );
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(
            message.contains("starting --id 1 logging text"),
            "{message}"
        );
        assert!(
            message.contains("error: address already in use"),
            "{message}"
        );
    }

    /// Not a node: a binary that never answers, to check the ready timeout and that a
    /// failed start leaves no process behind.
    #[tokio::test]
    async fn a_failed_start_kills_every_node_it_spawned() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pid_dir = dir.path().join("pids");
        fs::create_dir(&pid_dir).expect("pid dir");
        let binary = write_script(
            dir.path(),
            "hangs.sh",
            &format!("echo $$ > {}/$3; exec sleep 60", pid_dir.display()),
        );
        let mut config = LocalClusterConfig::new(binary, dir.path().join("cluster"));
        config.nodes = 2;
        config.ready_timeout = Duration::from_millis(500);
        let error = LocalCluster::start(config)
            .await
            .expect_err("must time out");
        assert!(
            matches!(error, LocalError::NotReady { node_id: 1, .. }),
            "{error}"
        );
        for id in ["1", "2"] {
            let pid: i32 = fs::read_to_string(pid_dir.join(id))
                .expect("pid file")
                .trim()
                .parse()
                .expect("pid");
            // Reaped, so the pid no longer exists (ESRCH).
            assert_eq!(
                send_signal(Pid::from_raw(pid), None::<Signal>),
                Err(nix::errno::Errno::ESRCH),
                "node {id} (pid {pid}) survived"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_binary_fails_start_with_a_spawn_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = LocalClusterConfig::new(dir.path().join("no-such-binary"), dir.path());
        let error = LocalCluster::start(config).await.expect_err("must fail");
        assert!(
            matches!(error, LocalError::Spawn { node_id: 1, .. }),
            "{error}"
        );
    }

    fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;

        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }
}
