//! # martelo-tests: tests of the whole product, across crates and processes
//!
//! This crate holds the tests that check martelo as its users meet it: several real
//! `martelo node` processes, with real `martelo gateway` processes in front of them (and the
//! Postgres sink behind them once it lands).
//!
//! What goes here:
//! - a request's whole path: a bid sent through one gateway is applied by its group and
//!   reaches the WebSocket watchers of every gateway (`tests/two_gateways.rs`);
//! - promises only the whole product can show: the sink converging to the Raft state with
//!   no missing or duplicate rows (I6), trace context flowing from the gateway through the
//!   node to the sink.
//!
//! What does not go here:
//! - tests of the node alone (one or more `martelo node` processes, the CLI): `cluster/tests/`,
//!   where cargo hands them the `martelo` binary;
//! - the gateway's own behaviour with an in-process gateway: `gateway/tests/`;
//! - fault injection and the history checkers: `jepsen/`;
//! - a crate's own rules: that crate's unit tests and `tests/` folder (engine, client, ...).
//!
//! The helpers below start clusters through `martelo-devkit`'s `LocalCluster` and gateways
//! as `martelo gateway` child processes (`martelo_devkit::GatewayProcess`). Cargo gives `CARGO_BIN_EXE_martelo` only to the
//! crate that builds the binary, so the binary comes from `MARTELO_BIN`, else
//! `$CARGO_TARGET_DIR/debug/martelo` (build it with `cargo build -p martelo-cluster --bin
//! martelo`), as the fault suite does.

pub use martelo_devkit::GatewayProcess;
use martelo_devkit::{LocalCluster, LocalClusterConfig, martelo_bin};
use std::path::{Path, PathBuf};

/// Starts and initializes a cluster of `nodes` nodes and `shards` auction shards in `dir`.
pub async fn spawn_cluster(dir: &Path, nodes: usize, shards: u32) -> LocalCluster {
    spawn_cluster_with(dir, nodes, shards, &[]).await
}

/// [`spawn_cluster`], with `node_args` given to every node (e.g. `--postgres URL`).
pub async fn spawn_cluster_with(
    dir: &Path,
    nodes: usize,
    shards: u32,
    node_args: &[String],
) -> LocalCluster {
    let mut config = LocalClusterConfig::new(martelo_bin(), dir);
    config.nodes = nodes;
    config.shard_count = shards;
    config.extra_args = node_args.to_vec();
    let cluster = LocalCluster::start(config)
        .await
        .unwrap_or_else(|error| panic!("the nodes did not start: {error}"));
    cluster
        .init()
        .await
        .unwrap_or_else(|error| panic!("the cluster did not initialize: {error}"));
    cluster
}

/// Writes a new token key file in `dir`, shared by every gateway of a test (tokens from one
/// are accepted by the others).
pub async fn must_write_key_file(dir: &Path) -> PathBuf {
    martelo_devkit::write_key_file(dir)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Starts a `martelo gateway` child against `seeds` and waits until it is ready.
pub async fn must_start_gateway(
    dir: &Path,
    name: &str,
    seeds: &[String],
    key_file: &Path,
) -> GatewayProcess {
    GatewayProcess::start(dir, name, seeds, key_file, &[])
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}
