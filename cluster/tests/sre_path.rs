//! The SRE path by the book: each test drives the `martelo` binary with the commands that
//! docs/OPERATIONS.md shows, against real `martelo node` processes started the documented
//! way (`--peers` listing every node, no `cluster init` yet), and checks the output and the
//! exit code that the document promises.

use std::time::{Duration, Instant};

use martelo_devkit::{LocalCluster, LocalClusterConfig};
use martelo_types::NodeId;

mod support;

use support::{Run, martelo};

/// `nodes` nodes started by hand as OPERATIONS.md shows (every one with `--peers` naming
/// all of them), not initialized; with their data and logs directory (printed; keep it
/// alive while the nodes run) and node 1's API address, the `--addr` of every command.
async fn must_start_nodes(
    nodes: usize,
    metrics: bool,
) -> (tempfile::TempDir, LocalCluster, String) {
    let dir = tempfile::Builder::new()
        .prefix("martelo-sre-path-")
        .tempdir()
        .expect("temp dir");
    println!("data and logs: {}", dir.path().display());
    let mut config = LocalClusterConfig::new(env!("CARGO_BIN_EXE_martelo"), dir.path());
    config.nodes = nodes;
    config.shard_count = 8;
    config.metrics = metrics;
    config.extra_args = vec!["--log-format".into(), "text".into()];
    let cluster = LocalCluster::start(config).await.expect("nodes start");
    let first = cluster.api_addresses()[0].clone();
    (dir, cluster, first)
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
    let (_dir, cluster, first) = must_start_nodes(3, false).await;

    // Before init: `status` says so with the documented code 4.
    let fresh = martelo(&["status", "--addr", &first]).await;
    fresh.must_exit(4).must_say(&["martelo cluster init"]);

    // The documented bootstrap: one init against node 1, nothing else.
    let init = martelo(&["cluster", "init", "--addr", &first]).await;
    init.must_exit(0)
        .must_print(&["a cluster of 3 node(s)", "3 voter(s)"])
        .must_not_print(&["WARNING"]);

    let status = must_status_exit(&first, 0, Duration::from_secs(15)).await;
    status.must_print(&["health: OK"]);
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
    again
        .must_exit(1)
        .must_say(&["cluster_already_initialized"]);

    // One node down: every group still takes writes, but can lose no more voters.
    cluster.kill(NodeId(3)).expect("kill node 3");
    let degraded = must_status_exit(&first, 7, Duration::from_secs(15)).await;
    degraded.must_print(&[
        "health: DEGRADED",
        "voter 3 is unreachable",
        "can lose no more voters",
    ]);
    // The per-group table names voters and learners.
    degraded.must_print(&["VOTERS"]);

    cluster.restart(NodeId(3)).await.expect("restart node 3");
    must_status_exit(&first, 0, Duration::from_secs(20)).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_init_refuses_too_few_nodes_unless_single_node_is_asked_for() {
    let (_dir, cluster, first) = must_start_nodes(1, true).await;

    let refused = martelo(&["cluster", "init", "--addr", &first]).await;
    refused.must_exit(2).must_say(&["--single-node"]);
    let still_fresh = martelo(&["status", "--addr", &first]).await;
    assert_eq!(
        still_fresh.code,
        4,
        "nothing was created:\n{}",
        still_fresh.output()
    );

    let single = martelo(&["cluster", "init", "--addr", &first, "--single-node"]).await;
    single.must_exit(0).must_print(&["WARNING"]);
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
    last.must_say(&["only voter"])
        .must_not_say(&["run the same command again"]);
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
    wrong
        .must_exit(3)
        .must_say(&["--listen address"])
        .must_not_say(&["failed in transit"]);
    cluster.stop_all().await;
}

/// The arguments of `martelo node add --id 4` for the node at `address`, to each of `groups`
/// (to every group when there is none), sent through `first`.
fn add_node_4<'a>(address: &'a str, groups: &[&'a str], first: &'a str) -> Vec<&'a str> {
    let mut args = vec!["node", "add", "--id", "4", "--address", address];
    for &group in groups {
        args.extend(["--group", group]);
    }
    args.extend(["--addr", first]);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_commands_are_idempotent_and_usage_errors_exit_2() {
    let (_dir, cluster, first) = must_start_nodes(3, false).await;
    let init = martelo(&["cluster", "init", "--addr", &first]).await;
    init.must_exit(0);
    let fourth = cluster.add_node(NodeId(4)).await.expect("node 4 starts");

    let add = add_node_4(&fourth, &["3"], &first);
    let added = martelo(&add).await;
    added.must_exit(0).must_print(&["node 4 is a voter"]);
    let repeated = martelo(&add).await;
    repeated.must_exit(0).must_print(&["already a voter"]);

    let remove = [
        "node", "remove", "--id", "4", "--group", "3", "--addr", &first,
    ];
    let removed = martelo(&remove).await;
    removed.must_exit(0);
    let removed_again = martelo(&remove).await;
    removed_again.must_exit(0).must_print(&["is not a member"]);
    let everywhere = martelo(&["node", "remove", "--id", "4", "--addr", &first]).await;
    everywhere
        .must_exit(0)
        .must_print(&["in no group: nothing to do"]);

    // Out of every group, the meta group included, the node is out of the cluster, and its
    // id is retired: it is refused even for a fresh node.
    let join = martelo(&add_node_4(&fourth, &[], &first)).await;
    join.must_exit(0);
    let leave = martelo(&["node", "remove", "--id", "4", "--addr", &first]).await;
    leave.must_exit(0);
    let fifth = cluster.add_node(NodeId(5)).await.expect("node 5 starts");
    let reuse = martelo(&add_node_4(&fifth, &["1"], &first)).await;
    reuse.must_exit(1).must_say(&["never reused"]);

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
    no_group.must_exit(2);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_without_a_martelo_node_exits_3_and_says_why() {
    let port = martelo_devkit::pick_free_ports(1).expect("a port")[0];
    let address = format!("127.0.0.1:{port}");
    let run = martelo(&["status", "--addr", &address]).await;
    run.must_exit(3);

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
    run.must_exit(3).must_say(&["--listen address"]);
}
