//! I7: a node whose clock is off from its peers by more than the bound refuses to lead, and
//! the cluster keeps serving without it as a leader.

mod support;

use std::time::Duration;

use martelo_proto::RaftRole;
use martelo_types::NodeId;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_a_skewed_clock_refuses_to_lead() {
    let test = TestCluster::start_with(3, 2, |config| {
        config.node_args.insert(
            NodeId(3),
            vec!["--test-clock-offset-ms".into(), "3000".into()],
        );
    })
    .await;
    let status = eventually(
        Duration::from_secs(20),
        "node 3 to give up leadership",
        || async {
            let status = test.cluster.status(NodeId(3)).await.ok()?;
            let refusing = !status.groups.is_empty()
                && status
                    .groups
                    .iter()
                    .all(|group| !group.clock_ok && group.role() != RaftRole::Leader);
            refusing.then_some(status)
        },
    )
    .await;
    assert_eq!(
        status.groups.len(),
        3,
        "node 3 holds the meta group and 2 shards"
    );
    // The others still agree with each other, so they lead and the cluster serves.
    let healthy = test.cluster.status(NodeId(1)).await.expect("status");
    assert!(healthy.groups.iter().all(|group| group.clock_ok));
    create_auction(&test.client, 1, Duration::from_secs(600)).await;
    let proposed = bid(&test.client, 1, 10, 100, "b").await.expect("decided");
    assert_ne!(proposed.node, NodeId(3), "a skewed node stamped a command");
    // Its stamp follows the healthy leader's clock, not node 3's (3 s ahead).
    let skew = proposed.timestamp.0.saturating_sub(now().0);
    assert!(skew < 1_000_000, "timestamp {skew} µs ahead of this clock");
}
