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

/// [`spawn_cluster_with`], with every node serving Prometheus metrics on a free loopback
/// port (`--metrics-listen`; `LocalCluster::nodes()` gives each node's `metrics_address`).
pub async fn spawn_cluster_with_metrics(
    dir: &Path,
    nodes: usize,
    shards: u32,
    node_args: &[String],
) -> LocalCluster {
    let mut config = LocalClusterConfig::new(martelo_bin(), dir);
    config.nodes = nodes;
    config.shard_count = shards;
    config.metrics = true;
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

/// Creates an admin account through the operator CLI (`martelo user create --admin`, the
/// password on stdin), as an operator creates the first admin.
pub async fn must_create_admin(seeds: &[String], username: &str, password: &str) {
    use tokio::io::AsyncWriteExt as _;

    let mut child = tokio::process::Command::new(martelo_bin())
        .args(["user", "create", "--addr", &seeds.join(",")])
        .args(["--username", username, "--display-name", "Admin", "--admin"])
        .arg("--password-stdin")
        .env_remove("MARTELO_ADDR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("martelo user create did not start: {error}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .unwrap_or_else(|error| panic!("writing the admin password: {error}"));
    drop(stdin);
    let output = child
        .wait_with_output()
        .await
        .unwrap_or_else(|error| panic!("martelo user create did not end: {error}"));
    assert!(
        output.status.success(),
        "martelo user create --admin failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
