//! Node processes: where a node lives ([`NodeInfo`]), its command line, spawning it with its
//! log attached, and controlling it with signals.
//!
//! `NodeSlot` owns one node's [`Child`] from spawn until it is reaped, so a pid is never
//! signalled after the kernel may have reused it. The [`LocalCluster`] methods here are the
//! process-level faults and controls: crash ([`LocalCluster::kill`]), clean stop
//! ([`LocalCluster::stop`]), freeze ([`LocalCluster::pause`]) and [`LocalCluster::restart`].
//!
//! Whether a node answers (ready, healthy) is decided in [`crate::health`], not here.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use martelo_types::{NodeAddress, NodeId};
use nix::sys::signal::{Signal, kill as send_signal};
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::error::LocalError;
use crate::{LocalCluster, POLL_INTERVAL_MAX, POLL_INTERVAL_MIN};

/// Where one node lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
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

    /// The node as `cluster init` and `node add` name it (one port for everything).
    pub fn node_address(&self) -> NodeAddress {
        NodeAddress {
            id: self.id,
            address: self.address.clone(),
        }
    }
}

/// One node's process and how to start it again.
#[derive(Debug)]
pub(crate) struct NodeSlot {
    pub(crate) info: NodeInfo,
    /// Everything after the binary, starting with `node`.
    pub(crate) args: Vec<String>,
    /// Present from spawn until the process is reaped, so a pid is never signalled after
    /// the kernel may have reused it.
    child: Option<Child>,
    pub(crate) paused: bool,
    pub(crate) last_exit: Option<ExitStatus>,
}

impl NodeSlot {
    pub(crate) fn running(info: NodeInfo, args: Vec<String>, child: Child) -> NodeSlot {
        NodeSlot {
            info,
            args,
            child: Some(child),
            paused: false,
            last_exit: None,
        }
    }

    /// Reaps the child if it has exited; true while it has not (paused counts as running).
    pub(crate) fn poll_running(&mut self) -> bool {
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

    /// Whether the node should answer: running and not paused.
    pub(crate) fn poll_answering(&mut self) -> bool {
        self.poll_running() && !self.paused
    }

    fn record_exit(&mut self, status: ExitStatus) {
        self.child = None;
        self.paused = false;
        self.last_exit = Some(status);
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap. SIGKILL also ends a stopped (paused) process.
    pub(crate) fn kill_and_reap(&mut self) -> Result<Option<ExitStatus>, LocalError> {
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

    /// Starts the node's process again from its recorded arguments.
    fn respawn(&mut self, config: &crate::LocalClusterConfig) -> Result<(), LocalError> {
        let child = spawn_node(config, &self.info, &self.args)?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }
}

fn signal_pid(pid: u32, signal: Signal) -> io::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| io::Error::other(format!("pid {pid} overflows")))?;
    send_signal(Pid::from_raw(raw), signal).map_err(io::Error::from)
}

/// Process control: crash, clean stop, freeze and restart.
impl LocalCluster {
    /// SIGKILL (a crash: no cleanup, no flush beyond what was fsynced) and reap. Returns the
    /// exit status, or `None` if the node had already exited.
    pub fn kill(&self, id: NodeId) -> Result<Option<ExitStatus>, LocalError> {
        let mut nodes = self.lock_nodes();
        let slot = nodes.get_mut(&id).ok_or(LocalError::UnknownNode(id))?;
        slot.kill_and_reap()
    }

    /// SIGTERM, then waits up to `stop_timeout` for the node to exit, then SIGKILL. Returns
    /// whether the node exited by itself with code 0. A paused node is resumed so that it
    /// can handle the SIGTERM.
    pub async fn stop(&self, id: NodeId) -> Result<bool, LocalError> {
        self.request_stop(id)?;
        let deadline = Instant::now() + self.config.stop_timeout;
        self.finish_stop(id, deadline).await
    }

    /// Stops every running node at once (SIGTERM to all, one shared deadline), so stopping
    /// a cluster takes one `stop_timeout` at most, not one per node. Returns each node's
    /// result by id; nodes that were not running are left out.
    pub async fn stop_all(&self) -> BTreeMap<NodeId, Result<bool, LocalError>> {
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
    pub fn pause(&self, id: NodeId) -> Result<(), LocalError> {
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
    pub fn resume(&self, id: NodeId) -> Result<(), LocalError> {
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
    pub async fn restart(&self, id: NodeId) -> Result<(), LocalError> {
        {
            let mut nodes = self.lock_nodes();
            let slot = nodes.get_mut(&id).ok_or(LocalError::UnknownNode(id))?;
            if slot.poll_running() {
                return Err(LocalError::AlreadyRunning(id));
            }
            slot.respawn(&self.config)?;
        }
        self.wait_ready(id, Instant::now() + self.config.ready_timeout)
            .await
    }

    /// Replaces the per-node arguments of `id` (those after `extra_args`); they take effect
    /// at its next [`LocalCluster::restart`]. For example a new `--clock-offset-ms`.
    pub fn set_node_args(&self, id: NodeId, args: Vec<String>) -> Result<(), LocalError> {
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

    /// Sends SIGTERM (and SIGCONT to a paused node, which would otherwise hold the SIGTERM
    /// pending forever).
    fn request_stop(&self, id: NodeId) -> Result<(), LocalError> {
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
    async fn finish_stop(&self, id: NodeId, deadline: Instant) -> Result<bool, LocalError> {
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

pub(crate) fn nodes_infos(nodes: &BTreeMap<NodeId, NodeSlot>) -> BTreeMap<NodeId, NodeInfo> {
    nodes
        .iter()
        .map(|(&id, slot)| (id, slot.info.clone()))
        .collect()
}

/// Node `id`'s address, metrics address, data dir and log under the cluster dir.
pub(crate) fn node_info(
    dir: &Path,
    host: &str,
    id: NodeId,
    port: u16,
    metrics_port: Option<u16>,
) -> NodeInfo {
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
pub(crate) struct NodeLaunch<'a> {
    pub(crate) info: &'a NodeInfo,
    /// `--peers`, for the initial members only.
    pub(crate) peers: Option<&'a str>,
    pub(crate) shard_count: u32,
    pub(crate) extra_args: &'a [String],
    pub(crate) node_args: &'a [String],
}

/// The command line after the binary: `node --id … --listen … --data-dir … [--metrics-listen
/// …] [--peers …] --shard-count … <extra args> <node args>`. The extra arguments come last so
/// a test can add any flag; `--advertise` is left to default to `--listen`.
pub(crate) fn node_args(launch: &NodeLaunch<'_>) -> Vec<String> {
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

pub(crate) fn dir_has_entries(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Spawns `config.binary args…` with stdout and stderr appended to the node's log, the
/// configured environment, and its own process group when the configuration asks for one.
pub(crate) fn spawn_node(
    config: &crate::LocalClusterConfig,
    info: &NodeInfo,
    args: &[String],
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
    let mut command = Command::new(&config.binary);
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
        .envs(config.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    if config.own_process_group {
        command.process_group(0);
    }
    command.spawn().map_err(|error| LocalError::Spawn {
        node_id: info.id,
        binary: config.binary.clone(),
        error,
    })
}

/// Whether an environment variable configures a node (`MARTELO_ID`, `MARTELO_ADVERTISE`, …).
fn is_node_setting(name: &std::ffi::OsStr) -> bool {
    // Nodes also read `DATABASE_URL` (the sink's Postgres): a developer's shell must not give
    // every local cluster a sink; `martelo dev` passes `--postgres` itself when it wants one.
    name.as_encoded_bytes().starts_with(b"MARTELO_") || name == "DATABASE_URL"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LOCAL_HOST, LocalClusterConfig};

    fn test_info(id: u64, metrics_port: Option<u16>) -> NodeInfo {
        node_info(
            Path::new("/tmp/cluster"),
            LOCAL_HOST,
            NodeId(id),
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
            info.node_address(),
            NodeAddress {
                id: NodeId(3),
                address: "127.0.0.1:7003".to_owned()
            }
        );
    }

    #[test]
    fn a_node_with_its_own_host_listens_and_serves_metrics_there() {
        let mut config = LocalClusterConfig::new("/bin/martelo", "/tmp/cluster");
        config.hosts = BTreeMap::from([(NodeId(2), "127.0.0.12".to_owned())]);
        let info = node_info(
            &config.dir,
            config.host_of(NodeId(2)),
            NodeId(2),
            7002,
            Some(9102),
        );
        assert_eq!(info.address, "127.0.0.12:7002");
        assert_eq!(info.metrics_address.as_deref(), Some("127.0.0.12:9102"));
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
}
