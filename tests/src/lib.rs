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
//! as `martelo gateway` child processes. Cargo gives `CARGO_BIN_EXE_martelo` only to the
//! crate that builds the binary, so the binary comes from `MARTELO_BIN`, else
//! `$CARGO_TARGET_DIR/debug/martelo` (build it with `cargo build -p martelo-cluster --bin
//! martelo`), as the fault suite does.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use martelo_devkit::{LocalCluster, LocalClusterConfig, martelo_bin};

/// Starts and initializes a cluster of `nodes` nodes and `shards` auction shards in `dir`.
pub async fn spawn_cluster(dir: &Path, nodes: usize, shards: u32) -> LocalCluster {
    let mut config = LocalClusterConfig::new(martelo_bin(), dir);
    config.nodes = nodes;
    config.shard_count = shards;
    let cluster = LocalCluster::start(config)
        .await
        .unwrap_or_else(|error| panic!("the nodes did not start: {error}"));
    cluster
        .init()
        .await
        .unwrap_or_else(|error| panic!("the cluster did not initialize: {error}"));
    cluster
}

/// A `martelo gateway` child process; killed when dropped.
#[derive(Debug)]
pub struct GatewayProcess {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// Its log file (JSON lines on stderr).
    pub log: PathBuf,
    child: tokio::process::Child,
}

impl GatewayProcess {
    /// Starts `martelo gateway` against `seeds` with the token key file `key_file`, logging
    /// to `dir/gateway-NAME.log`, and waits until `/healthz` answers.
    pub async fn start(dir: &Path, name: &str, seeds: &[String], key_file: &Path) -> Self {
        let port = martelo_devkit::ports::pick_free_ports(1).expect("a free port")[0];
        let address = format!("127.0.0.1:{port}");
        let log = dir.join(format!("gateway-{name}.log"));
        let stderr = std::fs::File::create(&log).expect("gateway log");
        let child = tokio::process::Command::new(martelo_bin())
            .arg("gateway")
            .arg("--cluster")
            .arg(seeds.join(","))
            .arg("--listen")
            .arg(&address)
            .arg("--key-file")
            .arg(key_file)
            .env_remove("MARTELO_CLUSTER")
            .env_remove("MARTELO_GATEWAY_LISTEN")
            .env_remove("MARTELO_GATEWAY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("martelo gateway starts");
        let gateway = GatewayProcess {
            base: format!("http://{address}"),
            address,
            log,
            child,
        };
        gateway.must_become_healthy().await;
        gateway
    }

    async fn must_become_healthy(&self) {
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let answer = http.get(format!("{}/healthz", self.base)).send().await;
            if answer.is_ok_and(|answer| answer.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway {} did not answer /healthz within 30 s; log:\n{}",
                self.base,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Writes a new token key file in `dir` with `martelo gateway --new-key-file`, shared by
/// every gateway of a test (tokens from one are accepted by the others).
pub async fn must_write_key_file(dir: &Path) -> PathBuf {
    let path = dir.join("gateway-keys.toml");
    let status = tokio::process::Command::new(martelo_bin())
        .arg("gateway")
        .arg("--new-key-file")
        .arg(&path)
        .stdout(Stdio::null())
        .status()
        .await
        .expect("martelo gateway --new-key-file runs");
    assert!(status.success(), "--new-key-file failed: {status}");
    path
}
