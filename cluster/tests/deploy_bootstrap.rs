//! What the deployments in `cluster/deploy/` (systemd units, Kubernetes manifests) rely on,
//! checked against real `martelo node` processes started as those deployments start them
//! (every node with `--peers` naming all of them, nothing initialized):
//!
//! - the gRPC health service that Kubernetes' `grpc:` probes ask: liveness (`""`) serves
//!   from the start, readiness (`ready`) only once the cluster is initialized and every
//!   group the node holds knows a leader;
//! - `cluster init --if-not-initialized`, which an init Job may run any number of times;
//! - init creating nothing while a listed node does not answer (a pod not started yet).

use std::time::Duration;

use martelo_devkit::{LocalCluster, LocalClusterConfig};
use martelo_types::NodeId;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

mod support;

use support::{eventually, martelo};

/// The readiness service name the manifests probe (`cluster/src/node/health.rs`).
const READY: &str = "ready";

/// `nodes` nodes started as the deployments start them, not initialized; with their data
/// and logs directory (printed; keep it alive while the nodes run).
async fn must_start_nodes(nodes: usize) -> (tempfile::TempDir, LocalCluster) {
    let dir = tempfile::Builder::new()
        .prefix("martelo-deploy-")
        .tempdir()
        .expect("temp dir");
    println!("data and logs: {}", dir.path().display());
    let mut config = LocalClusterConfig::new(env!("CARGO_BIN_EXE_martelo"), dir.path());
    config.nodes = nodes;
    config.shard_count = 4;
    config.extra_args = vec!["--log-format".into(), "text".into()];
    let cluster = LocalCluster::start(config).await.expect("nodes start");
    (dir, cluster)
}

/// What the node at `address` answers to a health check of `service`, as a probe sees it:
/// `None` when the call itself fails (no answer, or an unknown service).
async fn health(address: &str, service: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .ok()?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(answer.into_inner().status).ok()
}

/// Waits until every node in `addresses` answers `wanted` for `service`.
async fn must_all_report(addresses: &[String], service: &str, wanted: ServingStatus) {
    eventually(
        Duration::from_secs(20),
        &format!("every node to report {service:?} as {wanted:?}"),
        || async {
            for address in addresses {
                if health(address, service).await != Some(wanted) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_flips_once_the_cluster_is_initialized_and_init_job_reruns_succeed() {
    let (_dir, cluster) = must_start_nodes(3).await;
    let addresses = cluster.api_addresses();
    let first = addresses[0].clone();

    // Before init: alive (a liveness probe must not restart a node waiting for init), not
    // ready (no load balancer should send it clients).
    for address in &addresses {
        assert_eq!(
            health(address, "").await,
            Some(ServingStatus::Serving),
            "liveness of {address} before init"
        );
        assert_eq!(
            health(address, READY).await,
            Some(ServingStatus::NotServing),
            "readiness of {address} before init"
        );
    }
    // A service name the node does not know is an error, never a false "serving".
    assert_eq!(health(&first, "no-such-service").await, None);

    // The init Job's command, on a fresh cluster: it forms the cluster.
    let init = martelo(&["cluster", "init", "--if-not-initialized", "--addr", &first]).await;
    init.must_exit(0)
        .must_print(&["a cluster of 3 node(s)"])
        .must_not_print(&["already belongs"]);
    must_all_report(&addresses, READY, ServingStatus::Serving).await;
    must_all_report(&addresses, "", ServingStatus::Serving).await;

    // The same Job run again (a retry, or the Job applied a second time), through any node:
    // nothing changes, and it succeeds.
    for address in &addresses {
        let again = martelo(&["cluster", "init", "--if-not-initialized", "--addr", address]).await;
        again
            .must_exit(0)
            .must_print(&[
                "already belongs to a cluster of 4 shard(s)",
                "every group has a leader",
            ])
            .must_not_print(&["initializing"]);
    }
    // Asking for another shard count than the cluster's is a mistake worth failing on.
    let other = martelo(&[
        "cluster",
        "init",
        "--if-not-initialized",
        "--shard-count",
        "8",
        "--addr",
        &first,
    ])
    .await;
    other
        .must_exit(1)
        .must_say(&["initialized with 4 shard(s), not the 8"]);
    // Without the flag, a second init still refuses, as before.
    let plain = martelo(&["cluster", "init", "--addr", &first]).await;
    plain
        .must_exit(1)
        .must_say(&["cluster_already_initialized"]);

    // A node stopped and started again (its pod rescheduled) is ready again once it knows
    // the leaders of the groups it reopened.
    cluster.stop(NodeId(2)).await.expect("stop node 2");
    cluster.restart(NodeId(2)).await.expect("restart node 2");
    must_all_report(&addresses, READY, ServingStatus::Serving).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_nothing_while_a_listed_node_does_not_answer() {
    let (_dir, cluster) = must_start_nodes(3).await;
    let first = cluster.api_addresses()[0].clone();

    // Node 3 is not up yet, as a pod that is still being scheduled.
    cluster.kill(NodeId(3)).expect("kill node 3");
    let refused = martelo(&["cluster", "init", "--if-not-initialized", "--addr", &first]).await;
    assert_ne!(refused.code, 0, "{}", refused.output());
    refused.must_say(&["node 3", "does not answer", "nothing was created"]);
    for node in [NodeId(1), NodeId(2)] {
        let address = cluster.node(node).expect("node").address;
        let status = martelo(&["status", "--addr", &address]).await;
        assert_eq!(
            status.code,
            4,
            "node {node} must still be uninitialized:\n{}",
            status.output()
        );
    }

    // Once it is up, the same command (the Job's retry) forms the cluster.
    cluster.restart(NodeId(3)).await.expect("restart node 3");
    let init = martelo(&["cluster", "init", "--if-not-initialized", "--addr", &first]).await;
    init.must_exit(0).must_print(&["a cluster of 3 node(s)"]);
    must_all_report(&cluster.api_addresses(), READY, ServingStatus::Serving).await;
    cluster.stop_all().await;
}

/// The repository's `cluster/deploy/` directory.
fn deploy_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The block literal under `key: |` in a YAML file: the ConfigMaps' embedded TOML files.
fn yaml_block(yaml: &str, key: &str) -> String {
    let mut lines = yaml
        .lines()
        .skip_while(|line| line.trim() != format!("{key}: |"));
    lines.next().unwrap_or_else(|| panic!("no {key} block"));
    let block: Vec<&str> = lines
        .take_while(|line| line.is_empty() || line.starts_with("    "))
        .collect();
    let indent = block
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .expect("a non-empty block");
    block
        .iter()
        .map(|line| line.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `martelo node --print-config` with `file` as MARTELO_CONFIG and `env` on top, as a
/// deployment would start the node; the printed settings.
async fn must_accept_node_settings(file: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_martelo"));
    command
        .args(["node", "--print-config"])
        .env("MARTELO_CONFIG", file);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("martelo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} is refused:\n{stdout}{}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn the_shipped_node_and_gateway_settings_are_accepted() {
    let deploy = deploy_dir();
    let dir = tempfile::tempdir().expect("temp dir");

    // systemd: the example file alone.
    let printed = must_accept_node_settings(&deploy.join("systemd/node.toml.example"), &[]).await;
    assert!(printed.contains("id = 1"), "{printed}");

    // Kubernetes: the ConfigMap's node.toml with the StatefulSet's variables, for pod 2.
    let manifest = std::fs::read_to_string(deploy.join("k8s/node-config.yaml")).expect("read");
    let node_toml = dir.path().join("node.toml");
    std::fs::write(&node_toml, yaml_block(&manifest, "node.toml")).expect("write");
    let peers = "1=martelo-node-0.martelo-node-peers.prod.svc:7001,\
                 2=martelo-node-1.martelo-node-peers.prod.svc:7001,\
                 3=martelo-node-2.martelo-node-peers.prod.svc:7001";
    let printed = must_accept_node_settings(
        &node_toml,
        &[
            ("MARTELO_NODE_ID", "3"),
            (
                "MARTELO_ADVERTISE",
                "martelo-node-2.martelo-node-peers.prod.svc:7001",
            ),
            ("MARTELO_PEERS", peers),
        ],
    )
    .await;
    for wanted in ["id = 3", "listen = \"0.0.0.0:7001\"", "shard_count = 8"] {
        assert!(printed.contains(wanted), "{wanted} in:\n{printed}");
    }

    // The gateways' files, with the seeds the deployments pass outside the file.
    let manifest = std::fs::read_to_string(deploy.join("k8s/gateway.yaml")).expect("read");
    let gateway_toml = dir.path().join("gateway.toml");
    std::fs::write(&gateway_toml, yaml_block(&manifest, "gateway.toml")).expect("write");
    for file in [gateway_toml, deploy.join("systemd/gateway.toml.example")] {
        let mut config = martelo_gateway::GatewayConfig::load(Some(&file))
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        if config.cluster.is_empty() {
            config.cluster = vec!["martelo-node-0.martelo-node-peers.prod.svc:7001".into()];
        }
        config
            .validate()
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        assert!(config.tokens.secure_cookies, "{}", file.display());
    }
}
