//! The SRE path by the book: each test drives the `martelo` binary with the commands that
//! docs/OPERATIONS.md shows, against real `martelo node` processes started the documented
//! way (`--peers` listing every node, no `cluster init` yet), and checks the output and the
//! exit code that the document promises.

use std::path::Path;
use std::time::{Duration, Instant};

use martelo_devkit::{LocalCluster, LocalClusterConfig};
use martelo_types::NodeId;

mod support;

use support::{Run, martelo};

/// `nodes` nodes started by hand as OPERATIONS.md shows (every one with `--peers` naming
/// all of them), not initialized.
async fn must_start_nodes(dir: &Path, nodes: usize, metrics: bool) -> LocalCluster {
    let mut config = LocalClusterConfig::new(env!("CARGO_BIN_EXE_martelo"), dir);
    config.nodes = nodes;
    config.shard_count = 8;
    config.metrics = metrics;
    config.extra_args = vec!["--log-format".into(), "text".into()];
    LocalCluster::start(config).await.expect("nodes start")
}

fn temp_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("martelo-sre-path-")
        .tempdir()
        .expect("temp dir");
    println!("data and logs: {}", dir.path().display());
    dir
}

fn status_json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).expect("status --json prints JSON")
}

/// Runs `martelo status` until its exit code is `code`, within `timeout`.
async fn must_status_exit(addr: &str, code: i32, timeout: Duration) -> Run {
    let deadline = Instant::now() + timeout;
    loop {
        let run = martelo(&["status", "--addr", addr]).await;
        if run.code == code {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "status never exited {code} within {timeout:?}; last:\n{}",
            run.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_init_by_the_book_gives_every_group_three_voters_and_status_ok() {
    let dir = temp_dir();
    let cluster = must_start_nodes(dir.path(), 3, false).await;
    let first = cluster.api_addresses()[0].clone();

    // Before init: `status` says so with the documented code 4.
    let fresh = martelo(&["status", "--addr", &first]).await;
    assert_eq!(fresh.code, 4, "{}", fresh.output());
    assert!(fresh.output().contains("martelo cluster init"));

    // The documented bootstrap: one init against node 1, nothing else.
    let init = martelo(&["cluster", "init", "--addr", &first]).await;
    assert_eq!(init.code, 0, "{}", init.output());
    assert!(
        init.stdout.contains("a cluster of 3 node(s)") && init.stdout.contains("3 voter(s)"),
        "{}",
        init.stdout
    );
    assert!(!init.stdout.contains("WARNING"), "{}", init.stdout);

    let status = must_status_exit(&first, 0, Duration::from_secs(15)).await;
    assert!(status.stdout.contains("health: OK"), "{}", status.stdout);
    let json = status_json(&martelo(&["status", "--addr", &first, "--json"]).await);
    let groups = json["health"]["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 9, "the meta group and 8 shards");
    for group in groups {
        assert_eq!(group["voters"], serde_json::json!([1, 2, 3]), "{group}");
        assert_eq!(group["state"], "ok", "{group}");
    }
    assert_eq!(json["health"]["replication_factor"], 3);
    // Every node holds a replica of every group: none was left uninitialized.
    for node in json["nodes"].as_array().expect("nodes") {
        assert_eq!(node["status"]["initialized"], true, "{node}");
        assert_eq!(node["status"]["groups"].as_array().map(Vec::len), Some(9));
    }

    // Running it again changes nothing and says so.
    let again = martelo(&["cluster", "init", "--addr", &first]).await;
    assert_eq!(again.code, 1, "{}", again.output());
    assert!(again.output().contains("cluster_already_initialized"));

    // One node down: every group still takes writes, but can lose no more voters.
    cluster.kill(NodeId(3)).expect("kill node 3");
    let degraded = must_status_exit(&first, 7, Duration::from_secs(15)).await;
    assert!(
        degraded.stdout.contains("health: DEGRADED"),
        "{}",
        degraded.stdout
    );
    assert!(
        degraded.stdout.contains("voter 3 is unreachable"),
        "{}",
        degraded.stdout
    );
    assert!(
        degraded.stdout.contains("can lose no more voters"),
        "{}",
        degraded.stdout
    );
    // The per-group table names voters and learners.
    assert!(degraded.stdout.contains("VOTERS"), "{}", degraded.stdout);

    cluster.restart(NodeId(3)).await.expect("restart node 3");
    must_status_exit(&first, 0, Duration::from_secs(20)).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_init_refuses_too_few_nodes_unless_single_node_is_asked_for() {
    let dir = temp_dir();
    let cluster = must_start_nodes(dir.path(), 1, true).await;
    let first = cluster.api_addresses()[0].clone();

    let refused = martelo(&["cluster", "init", "--addr", &first]).await;
    assert_eq!(refused.code, 2, "{}", refused.output());
    assert!(
        refused.output().contains("--single-node"),
        "{}",
        refused.output()
    );
    let still_fresh = martelo(&["status", "--addr", &first]).await;
    assert_eq!(
        still_fresh.code,
        4,
        "nothing was created:\n{}",
        still_fresh.output()
    );

    let single = martelo(&["cluster", "init", "--addr", &first, "--single-node"]).await;
    assert_eq!(single.code, 0, "{}", single.output());
    assert!(single.stdout.contains("WARNING"), "{}", single.stdout);
    // A single-node cluster the operator asked for is as healthy as it can be.
    must_status_exit(&first, 0, Duration::from_secs(15)).await;

    // The last voter cannot be removed, not even with --force, and the refusal is final:
    // no retrying for seconds.
    let started = Instant::now();
    let last = martelo(&[
        "node", "remove", "--id", "1", "--group", "2", "--force", "--addr", &first,
    ])
    .await;
    assert_eq!(last.code, 1, "nothing was done:\n{}", last.output());
    assert!(last.output().contains("only voter"), "{}", last.output());
    assert!(
        !last.output().contains("run the same command again"),
        "{}",
        last.output()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a permanent refusal was retried for {:?}",
        started.elapsed()
    );

    // A metrics port is not a node: said plainly, with the unreachable code.
    let metrics = cluster
        .node(NodeId(1))
        .and_then(|node| node.metrics_address)
        .expect("metrics");
    let wrong = martelo(&["auction", "show", "7", "--addr", &metrics]).await;
    assert_eq!(wrong.code, 3, "{}", wrong.output());
    assert!(
        wrong.output().contains("--listen address"),
        "{}",
        wrong.output()
    );
    assert!(
        !wrong.output().contains("failed in transit"),
        "{}",
        wrong.output()
    );
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_commands_are_idempotent_and_usage_errors_exit_2() {
    let dir = temp_dir();
    let cluster = must_start_nodes(dir.path(), 3, false).await;
    let first = cluster.api_addresses()[0].clone();
    let init = martelo(&["cluster", "init", "--addr", &first]).await;
    assert_eq!(init.code, 0, "{}", init.output());
    let fourth = cluster.add_node(NodeId(4)).await.expect("node 4 starts");

    let add = [
        "node",
        "add",
        "--id",
        "4",
        "--address",
        &fourth,
        "--group",
        "3",
        "--addr",
        &first,
    ];
    let added = martelo(&add).await;
    assert_eq!(added.code, 0, "{}", added.output());
    assert!(
        added.stdout.contains("node 4 is a voter"),
        "{}",
        added.stdout
    );
    let repeated = martelo(&add).await;
    assert_eq!(repeated.code, 0, "{}", repeated.output());
    assert!(
        repeated.stdout.contains("already a voter"),
        "{}",
        repeated.stdout
    );

    let remove = [
        "node", "remove", "--id", "4", "--group", "3", "--addr", &first,
    ];
    let removed = martelo(&remove).await;
    assert_eq!(removed.code, 0, "{}", removed.output());
    let removed_again = martelo(&remove).await;
    assert_eq!(removed_again.code, 0, "{}", removed_again.output());
    assert!(
        removed_again.stdout.contains("is not a member"),
        "{}",
        removed_again.stdout
    );
    let everywhere = martelo(&["node", "remove", "--id", "4", "--addr", &first]).await;
    assert_eq!(everywhere.code, 0, "{}", everywhere.output());
    assert!(
        everywhere.stdout.contains("in no group: nothing to do"),
        "{}",
        everywhere.stdout
    );

    // Out of every group, the meta group included, the node is out of the cluster, and its
    // id is retired: it is refused even for a fresh node.
    let join = martelo(&[
        "node",
        "add",
        "--id",
        "4",
        "--address",
        &fourth,
        "--addr",
        &first,
    ])
    .await;
    assert_eq!(join.code, 0, "{}", join.output());
    let leave = martelo(&["node", "remove", "--id", "4", "--addr", &first]).await;
    assert_eq!(leave.code, 0, "{}", leave.output());
    let fifth = cluster.add_node(NodeId(5)).await.expect("node 5 starts");
    let reuse = martelo(&[
        "node",
        "add",
        "--id",
        "4",
        "--address",
        &fifth,
        "--group",
        "1",
        "--addr",
        &first,
    ])
    .await;
    assert_eq!(reuse.code, 1, "{}", reuse.output());
    assert!(
        reuse.output().contains("never reused"),
        "{}",
        reuse.output()
    );

    // Usage errors: clap's code 2, and nothing is sent.
    for args in [
        vec!["node", "remove", "--id", "0", "--addr", first.as_str()],
        vec!["node", "add", "--id", "0", "--address", fourth.as_str()],
        vec!["status", "--addr", ""],
        vec!["leader", "transfer", "--group", "1", "--to", "0"],
        vec!["node", "add", "--id", "5", "--address", "nowhere"],
    ] {
        let run = martelo(&args).await;
        assert_eq!(run.code, 2, "{args:?}:\n{}", run.output());
    }
    // A group that does not exist is an input error too.
    let no_group = martelo(&[
        "node", "remove", "--id", "2", "--group", "99", "--addr", &first,
    ])
    .await;
    assert_eq!(no_group.code, 2, "{}", no_group.output());
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_without_a_martelo_node_exits_3_and_says_why() {
    let port = martelo_devkit::pick_free_ports(1).expect("a port")[0];
    let address = format!("127.0.0.1:{port}");
    let run = martelo(&["status", "--addr", &address]).await;
    assert_eq!(run.code, 3, "{}", run.output());

    // A web server that answers in HTTP/1: depending on timing, the HTTP/2 layer either
    // rejects its answer ("does not speak martelo's gRPC API") or sees the connection close
    // first; both messages point at the address.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let web = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 64];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            // Like a real web server, leave closing to the client.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.read(&mut buffer);
        }
    });
    let run = martelo(&["auction", "show", "7", "--addr", &web]).await;
    assert_eq!(run.code, 3, "{}", run.output());
    assert!(
        run.output().contains("--listen address"),
        "{}",
        run.output()
    );
}
