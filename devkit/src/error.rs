//! [`LocalError`]: everything that can go wrong while running a local cluster.
//!
//! Failures of a call to a node carry the client library's [`ClientError`], and an unhealthy
//! cluster carries the typed [`HealthProblem`] that [`crate::health::check_health`] found,
//! so callers can match on what happened instead of parsing text. The rules themselves live
//! in the modules that raise these errors, not here.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use martelo_client::ClientError;
use martelo_types::NodeId;
use nix::sys::signal::Signal;

use crate::config::LOCAL_HOST;
use crate::health::HealthProblem;

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
        node_id: NodeId,
        binary: PathBuf,
        error: io::Error,
    },
    #[error(
        "node {node_id} exited before it was ready ({status}); last lines of {}:\n{log_tail}",
        log_path.display()
    )]
    ExitedBeforeReady {
        node_id: NodeId,
        status: String,
        log_path: PathBuf,
        log_tail: String,
    },
    /// The node's process runs, but its `Status` did not answer in time.
    #[error(
        "node {node_id} at {address} was not ready after {timeout:?} (last probe: {last_error}); \
         last lines of {}:\n{log_tail}",
        log_path.display()
    )]
    NotReady {
        node_id: NodeId,
        address: String,
        timeout: Duration,
        /// Boxed: a `Result<_, LocalError>` stays small on the happy path.
        last_error: Box<ClientError>,
        log_path: PathBuf,
        log_tail: String,
    },
    /// The last verdict of [`crate::LocalCluster::wait_healthy`] before its timeout.
    #[error("the cluster was not healthy after {timeout:?}: {problem}")]
    Unhealthy {
        timeout: Duration,
        problem: HealthProblem,
    },
    #[error("no node {0} in this local cluster")]
    UnknownNode(NodeId),
    #[error("node {0} already exists in this local cluster")]
    NodeExists(NodeId),
    #[error("node {0} is not running")]
    NotRunning(NodeId),
    #[error("node {0} is already running")]
    AlreadyRunning(NodeId),
    #[error("sending {signal} to node {node_id} (pid {pid}): {error}")]
    Signal {
        node_id: NodeId,
        pid: u32,
        signal: Signal,
        error: io::Error,
    },
    /// A node's `Status` failed ([`crate::LocalCluster::status`]).
    #[error("Status on node {node_id} at {address}: {error}")]
    Status {
        node_id: NodeId,
        address: String,
        error: Box<ClientError>,
    },
    /// A `martelo gateway` child did not become ready ([`crate::gateway::GatewayProcess`]).
    #[error(
        "gateway at {address} was not ready: {why}; last lines of {}:\n{log_tail}",
        log_path.display()
    )]
    GatewayNotReady {
        address: String,
        why: String,
        log_path: PathBuf,
        log_tail: String,
    },
    /// `InitCluster` (through the client's `Admin::init_cluster`) failed with an error that
    /// a retry cannot mend, or was still failing at the deadline.
    #[error("InitCluster on node {node_id} at {address}: {error}")]
    Init {
        node_id: NodeId,
        address: String,
        error: Box<ClientError>,
    },
}
