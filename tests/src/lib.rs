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
    start_cluster(dir, nodes, shards, node_args, false).await
}

/// [`spawn_cluster_with`], with every node serving Prometheus metrics on a free loopback
/// port (`--metrics-listen`; `LocalCluster::nodes()` gives each node's `metrics_address`).
pub async fn spawn_cluster_with_metrics(
    dir: &Path,
    nodes: usize,
    shards: u32,
    node_args: &[String],
) -> LocalCluster {
    start_cluster(dir, nodes, shards, node_args, true).await
}

async fn start_cluster(
    dir: &Path,
    nodes: usize,
    shards: u32,
    node_args: &[String],
    metrics: bool,
) -> LocalCluster {
    let mut config = LocalClusterConfig::new(martelo_bin(), dir);
    config.nodes = nodes;
    config.shard_count = shards;
    config.metrics = metrics;
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

/// The Python the Python-driven suites run with: `MARTELO_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("MARTELO_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fails with the install command when `python()` cannot `import` what a suite (`what`)
/// needs, pinned in `requirements`: never a silent skip.
pub async fn must_import(import: &str, what: &str, requirements: &Path) {
    let probe = tokio::process::Command::new(python())
        .args(["-c", &format!("import {import}")])
        .output()
        .await;
    let ok = probe.as_ref().is_ok_and(|output| output.status.success());
    assert!(
        ok,
        "{what} is missing. Install it with:\n  pip install -r {}\n{}",
        requirements.display(),
        probe.map_or_else(
            |error| error.to_string(),
            |output| String::from_utf8_lossy(&output.stderr).into_owned()
        )
    );
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

/// A password the traffic helpers give their accounts.
const TRAFFIC_PASSWORD: &str = "the whole-product tests' password";

/// Drives one bid through `gateway` as its users would: a seller and a bidder sign up and
/// sign in, the seller lists an auction, a WebSocket watcher subscribes to it (and reads its
/// snapshot), then the bidder bids over HTTP, with `traceparent` as the request's header when
/// given, and the watcher receives the `bid_placed` event. Returns the auction id. Panics on
/// anything unexpected, with what the gateway said.
pub async fn must_bid_while_watching(gateway: &GatewayProcess, traceparent: Option<&str>) -> u64 {
    use futures::StreamExt as _;
    use serde_json::{Value, json};
    use std::time::{Duration, Instant};
    use tokio_tungstenite::tungstenite::Message;

    let http = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, key: Option<&str>, body: Value| {
        let mut request = http.post(format!("{}{path}", gateway.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        async move {
            let answer = request.send().await.expect("the gateway answers");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mut tokens = Vec::new();
    for (username, role) in [("sam", "seller"), ("bea", "bidder")] {
        let body = json!({"username": username, "display_name": username,
                          "password": TRAFFIC_PASSWORD, "roles": [role]});
        let (status, answer) = post("/v1/accounts", None, None, body).await;
        assert_eq!(status, 201, "sign-up of {username}: {answer}");
        let body = json!({"username": username, "password": TRAFFIC_PASSWORD});
        let (status, answer) = post("/v1/sessions", None, None, body).await;
        assert!(status == 200 || status == 201, "sign-in: {status} {answer}");
        tokens.push(answer["access_token"].as_str().expect("a token").to_owned());
    }
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as u64;
    let listing = json!({"title": "Barometer", "description": "Brass.", "currency": "EUR",
        "starting_price": 100, "increment": {"fixed": 10},
        "start_us": now_us, "end_us": now_us + 3_600_000_000u64});
    let (status, created) = post("/v1/auctions", Some(&tokens[0]), Some("a1"), listing).await;
    assert_eq!(status, 201, "{created}");
    let auction = created["auction"].as_u64().expect("auction id");

    let (mut watcher, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/ws?subscribe={auction}",
        gateway.address
    ))
    .await
    .expect("the WebSocket opens");
    // The subscription's snapshot first, so that the bid after it arrives as an event
    // (through the fan-out) rather than inside the snapshot.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut must_receive = async |kind: &str| loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(remaining, watcher.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} on the WebSocket within 10 s"))
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("JSON");
            let seen = value["type"].as_str().unwrap_or_default();
            let event = value["event"]["kind"].as_str().unwrap_or_default();
            if seen == kind || (seen == "event" && event == kind) {
                return;
            }
        }
    };
    must_receive("snapshot").await;
    let mut bid = http
        .post(format!("{}/v1/auctions/{auction}/bids", gateway.base))
        .bearer_auth(&tokens[1])
        .header("idempotency-key", "b1")
        .json(&json!({"amount": 150}));
    if let Some(traceparent) = traceparent {
        bid = bid.header("traceparent", traceparent);
    }
    let answer = bid.send().await.expect("the gateway answers");
    let status = answer.status().as_u16();
    let placed = answer.json::<Value>().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "{placed}");
    must_receive("bid_placed").await;
    let _ = watcher.close(None).await;
    auction
}
