//! Growing and shrinking: a 4th node takes over a replica of a shard, a node leaves it, and
//! a removal that would endanger the quorum is refused.

mod support;

use std::time::Duration;

use martelo_client::admin::{Admin, AdminOptions};
use martelo_engine::AuctionId;
use martelo_types::{NodeAddress, NodeId};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_fourth_node_takes_over_a_replica_and_a_node_leaves() {
    let test = TestCluster::start(3, 2).await;
    let client = &test.client;
    create_auction(client, 1, Duration::from_secs(600)).await;
    bid(client, 1, 10, 100, "before").await.expect("decided");
    let group = client.group_of(AuctionId(1));
    let seeds = test.cluster.api_addresses();
    let admin = Admin::new(AdminOptions::default());

    let address = test
        .cluster
        .add_node(NodeId(4))
        .await
        .expect("start node 4");
    let node = NodeAddress {
        id: NodeId(4),
        address,
    };
    let added = admin
        .add_node(&seeds, node, Some(vec![group]), true)
        .await
        .expect("add node 4");
    assert!(added.all_ok(), "{added:?}");
    let change = &added.groups[0];
    assert_eq!(change.voters, [1, 2, 3, 4].map(NodeId), "{added:?}");

    // Node 1 leaves the group: 4 voters become 3, the quorum is safe.
    let removed = admin
        .remove_node(&seeds, NodeId(1), Some(vec![group]), false)
        .await
        .expect("remove node 1");
    assert!(removed.all_ok(), "{removed:?}");
    assert_eq!(removed.groups[0].voters, [2, 3, 4].map(NodeId));

    // Node 4 holds the group's data and the group keeps working without node 1's replica.
    bid(client, 1, 11, 200, "after").await.expect("decided");
    let status = eventually(Duration::from_secs(10), "node 4 to catch up", || async {
        let status = test.cluster.status(NodeId(4)).await.ok()?;
        let replica = status
            .groups
            .iter()
            .find(|g| g.group_id == group.0)?
            .clone();
        let leader = client.leader_of(group)?;
        let leader_status = test.cluster.status(leader.node_id).await.ok()?;
        let committed = leader_status
            .groups
            .iter()
            .find(|g| g.group_id == group.0)?
            .committed_index;
        (replica.applied_index >= committed).then_some(replica)
    })
    .await;
    assert_eq!(status.voters, vec![2, 3, 4]);

    // Removing another voter would leave 2: refused without --force.
    let refused = admin
        .remove_node(&seeds, NodeId(2), Some(vec![group]), false)
        .await;
    let refused_code = match refused {
        Ok(report) => report.groups[0]
            .error
            .as_ref()
            .map(|error| error.code.clone()),
        Err(error) => Some(error.code().as_str().to_owned()),
    };
    assert_eq!(refused_code.as_deref(), Some("quorum_at_risk"));
    assert_eq!(read(client, 1).await.bids.len(), 2);
}
