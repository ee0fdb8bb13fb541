//! What both gateway test harnesses share (`http_harness.rs` and `ws_harness.rs` include this
//! file): starting an initialized cluster of real `martelo node` processes in a fresh
//! temporary directory.

use martelo_devkit::{LocalCluster, LocalClusterConfig, martelo_bin};

/// Starts `nodes` nodes with `shards` auction shards (and `extra_args` on every node's
/// command line) in a new temporary directory named `prefix…`, initializes the cluster, and
/// prints where its data and logs are.
pub async fn start_cluster(
    prefix: &str,
    nodes: usize,
    shards: u32,
    extra_args: Vec<String>,
) -> (LocalCluster, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir");
    println!("cluster data and logs: {}", dir.path().display());
    let mut config = LocalClusterConfig::new(martelo_bin(), dir.path());
    config.nodes = nodes;
    config.shard_count = shards;
    config.extra_args = extra_args;
    let cluster = LocalCluster::start(config).await.expect("nodes start");
    cluster.init().await.expect("cluster init");
    (cluster, dir)
}
