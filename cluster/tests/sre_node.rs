//! What a node does for its operator (issue #19): removing a node that leads leaves no group
//! without a leader, leadership spreads by itself (and stays put when balancing is off),
//! metrics exist from the start, and a clean stop is quick, all against real `martelo node`
//! processes on loopback.
//!
//! The tests take a shared lock so they run one at a time: two of them measure durations
//! (a leaderless gap, the time to stop), which other clusters starting on the same cores
//! would stretch.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use martelo_devkit::LocalCluster;
use martelo_proto::channel::{ChannelSettings, endpoint};
use martelo_proto::{RaftRole, StatusResponse};
use martelo_types::NodeId;
use support::{TestCluster, martelo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serializes the tests of this file (see the module doc).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Groups of the test clusters: the meta group and two shards, each on all three nodes.
const SHARDS: u32 = 2;
const GROUPS: [u64; 3] = [0, 1, 2];

/// `martelo leader transfer` of every group to `to`; fails the test if a transfer fails.
async fn must_transfer_all_leaders(test: &TestCluster, to: u64) {
    let address = test.cluster.node(NodeId(to)).expect("node").address;
    for group in GROUPS {
        let run = martelo(&[
            "leader",
            "transfer",
            "--group",
            &group.to_string(),
            "--to",
            &to.to_string(),
            "--addr",
            &address,
        ])
        .await;
        assert_eq!(run.code, 0, "transfer of group {group}: {}", run.output());
    }
}

/// The node each group's leader is, as the node that leads it reports (a node that says it
/// leads a group and is a voter of it by its own membership). Groups with no such node are
/// absent.
fn leaders(statuses: &BTreeMap<u64, StatusResponse>) -> BTreeMap<u64, u64> {
    let mut leaders = BTreeMap::new();
    for (node, status) in statuses {
        for group in &status.groups {
            if group.role() == RaftRole::Leader && group.voters.contains(node) {
                leaders.insert(group.group_id, *node);
            }
        }
    }
    leaders
}

async fn statuses(cluster: &LocalCluster, nodes: &[u64]) -> BTreeMap<u64, StatusResponse> {
    let answers = futures::future::join_all(
        nodes
            .iter()
            .map(|id| async move { (*id, cluster.status(NodeId(*id)).await) }),
    )
    .await;
    answers
        .into_iter()
        .filter_map(|(id, answer)| answer.ok().map(|status| (id, status)))
        .collect()
}

fn leaders_per_node(leaders: &BTreeMap<u64, u64>) -> BTreeMap<u64, usize> {
    let mut count = BTreeMap::new();
    for node in leaders.values() {
        *count.entry(*node).or_insert(0) += 1;
    }
    count
}

type AdminClient = martelo_proto::admin_api_client::AdminApiClient<tonic::transport::Channel>;

/// An admin client with its own connection to `node`, for polling without reconnecting.
async fn must_connect_admin(cluster: &LocalCluster, node: u64) -> AdminClient {
    let url = cluster.node(NodeId(node)).expect("node").endpoint_url();
    let channel = endpoint(&url, &ChannelSettings::CLIENT)
        .expect("endpoint")
        .connect()
        .await
        .unwrap_or_else(|error| panic!("cannot connect to node {node}: {error}"));
    martelo_proto::services::admin_api_client(channel)
}

/// Every node's status through its open connection; nodes that do not answer are left out.
async fn poll_statuses(pollers: &mut [(u64, AdminClient)]) -> BTreeMap<u64, StatusResponse> {
    let answers = futures::future::join_all(pollers.iter_mut().map(|(node, client)| async {
        let mut request = tonic::Request::new(martelo_proto::StatusRequest::default());
        request.set_timeout(Duration::from_secs(1));
        (*node, client.status(request).await)
    }))
    .await;
    answers
        .into_iter()
        .filter_map(|(node, answer)| answer.ok().map(|status| (node, status.into_inner())))
        .collect()
}

/// `GET /metrics` of a node, as text.
async fn scrape(address: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|error| panic!("cannot reach the metrics endpoint {address}: {error}"));
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The value of the series `name{labels...}` in a Prometheus text page, if present.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|(_, value)| value.trim().parse().ok())
}

/// Issue #19 item 3: `martelo node remove` of the node that leads every group. The leader
/// hands each group to another voter before it is removed, so polling every node's status
/// every 50 ms never finds a group without a leader for longer than a hand-off takes; and
/// the command succeeds in one invocation (it follows the `not_leader` hint by itself).
#[tokio::test(flavor = "multi_thread")]
async fn removing_the_leader_of_every_group_leaves_no_group_leaderless() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Balancing off, so that node 1 leads every group when the removal starts.
    let test = TestCluster::start_with(3, SHARDS, |config| {
        config.extra_args.push("--leader-balance=false".into());
    })
    .await;
    must_transfer_all_leaders(&test, 1).await;
    let nodes = [1, 2, 3];
    let before = leaders(&statuses(&test.cluster, &nodes).await);
    assert_eq!(
        before,
        GROUPS.iter().map(|group| (*group, 1)).collect(),
        "node 1 leads every group"
    );

    let seed = test.cluster.node(NodeId(2)).expect("node 2").address;
    let mut remove = tokio::process::Command::new(env!("CARGO_BIN_EXE_martelo"))
        .args(["node", "remove", "--id", "1", "--force", "--addr", &seed])
        .env_remove("MARTELO_ADDR")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("martelo node remove starts");
    let started = Instant::now();
    let mut pollers = Vec::new();
    for node in nodes {
        pollers.push((node, must_connect_admin(&test.cluster, node).await));
    }
    // A group's leaderless window runs from the first poll that finds it without a leader
    // to the next poll that finds one, so it measures the gap itself, not how often we poll.
    let mut leaderless_since: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut worst: BTreeMap<u64, Duration> = BTreeMap::new();
    let mut leaderless_polls = 0;
    let mut finished: Option<(Instant, std::process::ExitStatus)> = None;
    let mut polls = 0;
    // Poll during the removal and for a second after it, when a removed leader would have
    // left its group to an election.
    while finished.is_none_or(|(at, _)| at.elapsed() < Duration::from_secs(1)) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the removal takes too long"
        );
        let now_led = leaders(&poll_statuses(&mut pollers).await);
        let now = Instant::now();
        polls += 1;
        for group in GROUPS {
            if now_led.contains_key(&group) {
                if let Some(since) = leaderless_since.remove(&group) {
                    let window = worst.entry(group).or_default();
                    *window = (*window).max(now.duration_since(since));
                }
            } else {
                leaderless_polls += 1;
                leaderless_since.entry(group).or_insert(now);
            }
        }
        if finished.is_none()
            && let Some(status) = remove.try_wait().expect("wait")
        {
            finished = Some((Instant::now(), status));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, exit) = finished.expect("finished");
    let output = remove.wait_with_output().await.expect("output");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let now = Instant::now();
    for (group, since) in leaderless_since {
        let window = worst.entry(group).or_default();
        *window = (*window).max(now.duration_since(since));
    }
    println!(
        "{polls} polls in {:?}, {leaderless_polls} found a group without a leader; longest \
         leaderless window by group: {worst:?}",
        started.elapsed()
    );
    assert!(exit.success(), "martelo node remove failed: {output}");
    let bound = Duration::from_millis(100);
    if worst.values().any(|window| *window > bound) {
        test.dump_logs();
    }
    for (group, window) in &worst {
        assert!(
            *window <= bound,
            "group {group} had no leader for {window:?} (bound {bound:?})"
        );
    }
    // Node 1 is gone from every group, and each group is led by one of the others.
    let after = statuses(&test.cluster, &[2, 3]).await;
    for status in after.values() {
        for group in &status.groups {
            assert!(
                !group.voters.contains(&1) && !group.learners.contains(&1),
                "node 1 is still a member of group {}: {group:?}",
                group.group_id
            );
        }
    }
    let led = leaders(&after);
    assert_eq!(led.keys().copied().collect::<Vec<_>>(), GROUPS.to_vec());
    assert!(led.values().all(|leader| *leader != 1), "{led:?}");
    let log = std::fs::read_to_string(test.cluster.node(NodeId(1)).expect("node 1").log_path)
        .expect("node 1's log");
    assert_eq!(
        log.matches("handed leadership over before removing this node")
            .count(),
        GROUPS.len(),
        "node 1 handed every group over before its removal"
    );
}

/// Issue #19 item 4: with every group's leadership forced onto node 1, the balancer spreads
/// it over the three nodes (one group each) within seconds; a cluster started with
/// `--leader-balance=false` keeps it all on node 1 meanwhile. Both clusters run side by side.
#[tokio::test(flavor = "multi_thread")]
async fn the_balancer_spreads_leadership_and_leaves_it_alone_when_off() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (balanced, unbalanced) = tokio::join!(
        TestCluster::start_with(3, SHARDS, |config| config.metrics = true),
        TestCluster::start_with(3, SHARDS, |config| {
            config
                .env
                .push(("MARTELO_LEADER_BALANCE".into(), "false".into()));
        }),
    );
    tokio::join!(
        must_transfer_all_leaders(&balanced, 1),
        must_transfer_all_leaders(&unbalanced, 1)
    );
    let forced = Instant::now();
    let nodes = [1, 2, 3];
    let spread = loop {
        let led = leaders(&statuses(&balanced.cluster, &nodes).await);
        let per_node = leaders_per_node(&led);
        if led.len() == GROUPS.len() && per_node.len() == 3 {
            break forced.elapsed();
        }
        if forced.elapsed() > Duration::from_secs(20) {
            balanced.dump_logs();
            panic!("leadership did not spread within 20 s: {per_node:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("leadership spread over the three nodes {spread:?} after it was forced onto one");
    let metrics_address = balanced
        .cluster
        .node(NodeId(1))
        .and_then(|node| node.metrics_address)
        .expect("metrics on");
    let page = scrape(&metrics_address).await;
    let moved = sample(
        &page,
        "martelo_leader_balance_transfers_total",
        &[("result", "moved")],
    )
    .expect("the transfer counter is exported");
    assert!(moved >= 2.0, "node 1 moved {moved} groups");
    // The same wait without a balancer, and at least two of its longest ticks (a balancer
    // ticks every 2-3 s): everything stays on node 1. Waiting is the only way to see that
    // nothing happens.
    let ticks = Duration::from_secs(6);
    tokio::time::sleep(ticks.saturating_sub(forced.elapsed())).await;
    let led = leaders(&statuses(&unbalanced.cluster, &nodes).await);
    assert_eq!(
        leaders_per_node(&led),
        BTreeMap::from([(1, GROUPS.len())]),
        "with --leader-balance=false leadership stays where it was put"
    );
}

/// Issue #19 item 7: a node's `/metrics` shows every per-group series (zeros included) as
/// soon as it answers, and counts the first election: on a new cluster, and on a node that
/// was just restarted and has served nothing since.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_exported_from_the_start_and_count_the_first_election() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = TestCluster::start_with(3, SHARDS, |config| config.metrics = true).await;
    let check = |page: &str, node: NodeId| {
        for group in GROUPS {
            let group = group.to_string();
            for name in [
                "martelo_propose_seconds_count",
                "martelo_propose_batch_entries_count",
                "martelo_propose_decided_without_log_total",
                "martelo_raft_applied_entries_total",
                "martelo_raft_snapshots_total",
                "martelo_raft_is_leader",
                "martelo_raft_term",
            ] {
                assert!(
                    sample(page, name, &[("group", &group)]).is_some(),
                    "node {node} does not export {name}{{group={group}}}"
                );
            }
        }
        for (name, labels) in [
            (
                "martelo_leader_balance_transfers_total",
                ("result", "moved"),
            ),
            ("martelo_close_proposals_total", ("result", "applied")),
            ("martelo_client_api_requests_total", ("result", "applied")),
        ] {
            assert!(
                sample(page, name, &[labels]).is_some(),
                "node {node} does not export {name}"
            );
        }
        for name in ["martelo_subscriptions", "martelo_clock_refusing_to_lead"] {
            assert!(
                sample(page, name, &[]).is_some(),
                "node {node} does not export {name}"
            );
        }
    };
    let first_elections_counted = |page: &str| {
        GROUPS.iter().all(|group| {
            sample(
                page,
                "martelo_raft_leader_changes_total",
                &[("group", &group.to_string())],
            )
            .is_some_and(|changes| changes >= 1.0)
        })
    };
    for node in test.cluster.nodes() {
        let address = node.metrics_address.expect("metrics on");
        let page = scrape(&address).await;
        check(&page, node.id);
        assert!(
            first_elections_counted(&page),
            "node {}: the first election of every group is counted:\n{}",
            node.id,
            page.lines()
                .filter(|line| line.contains("leader_changes"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // A restarted node: no request has reached it, and its groups' leaders are elsewhere.
    assert!(
        test.cluster.stop(NodeId(3)).await.expect("stop"),
        "clean stop"
    );
    test.cluster.restart(NodeId(3)).await.expect("restart");
    let address = test
        .cluster
        .node(NodeId(3))
        .and_then(|node| node.metrics_address)
        .expect("metrics on");
    let page = scrape(&address).await;
    check(&page, NodeId(3));
    assert_eq!(
        sample(&page, "martelo_propose_seconds_count", &[("group", "1")]),
        Some(0.0),
        "nothing was proposed through node 3 since it started"
    );
    let started = Instant::now();
    loop {
        let page = scrape(&address).await;
        if first_elections_counted(&page) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "node 3 did not count the first leader of every group after its restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue #19 item 8: SIGTERM stops a node cleanly (exit 0) and quickly: one node alone,
/// then all three at once, where each would otherwise wait for hand-offs to peers that are
/// stopping too. The bounds are generous (correctness, not a benchmark); the node's own
/// timing is in its last log line, printed here.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_one_node_and_three_at_once_quickly_and_cleanly() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = TestCluster::start(3, SHARDS).await;
    let bound = Duration::from_secs(3);

    let started = Instant::now();
    let clean = test.cluster.stop(NodeId(1)).await.expect("stop");
    let one = started.elapsed();
    println!("one node stopped in {one:?} (seen from outside, polled)");
    assert!(
        clean,
        "node 1 did not exit with 0 on SIGTERM; its log ends with:\n{}",
        test.cluster.log_tail(NodeId(1)).unwrap_or_default()
    );
    assert!(one < bound, "node 1 took {one:?} to stop");
    test.cluster.restart(NodeId(1)).await.expect("restart");
    test.cluster
        .wait_healthy(Duration::from_secs(20))
        .await
        .expect("healthy again");

    let started = Instant::now();
    let results = test.cluster.stop_all().await;
    let three = started.elapsed();
    println!("three nodes stopped together in {three:?} (seen from outside, polled)");
    let ids: BTreeSet<NodeId> = results.keys().copied().collect();
    assert_eq!(ids, BTreeSet::from([NodeId(1), NodeId(2), NodeId(3)]));
    for (node, clean) in results {
        assert!(
            clean.expect("stop"),
            "node {node} did not exit with 0 on SIGTERM; its log ends with:\n{}",
            test.cluster.log_tail(node).unwrap_or_default()
        );
    }
    assert!(three < bound, "three nodes took {three:?} to stop");
    for node in test.cluster.nodes() {
        let log = std::fs::read_to_string(&node.log_path).unwrap_or_default();
        for line in log
            .lines()
            .filter(|line| line.contains("node stopped cleanly"))
        {
            println!("node {}: {line}", node.id);
        }
    }
}
