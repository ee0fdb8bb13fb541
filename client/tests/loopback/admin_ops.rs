//! The admin library against fake nodes: a cluster status with a node down, adding a node
//! group by group at each leader, and removing one that would put a quorum at risk.

use martelo_client::NodeId;
use martelo_client::admin::{Admin, AdminOptions};
use martelo_engine::GroupId;
use martelo_proto::{Node, RaftRole};
use martelo_types::NodeAddress;

use crate::fake::{Propose, must_spawn_fakes, node, status};

#[tokio::test]
async fn cluster_status_reports_a_down_node_without_failing() {
    let fakes = must_spawn_fakes(&[1, 2], &[3], |_, _| Propose::Apply).await;
    let admin = Admin::default();
    let status = admin.cluster_status(&fakes.seed(2)).await.unwrap();
    assert_eq!(status.nodes.len(), 3);
    assert!(status.nodes[0].reachable && status.nodes[1].reachable);
    assert_eq!(status.nodes[2].node_id, Some(NodeId(3)));
    assert!(!status.nodes[2].reachable);
    assert!(status.health.healthy, "{:?}", status.health);
    assert_eq!(status.health.unreachable, vec!["3"]);
}

#[tokio::test]
async fn node_add_opens_adds_and_promotes_each_group_at_the_leader() {
    let fakes = must_spawn_fakes(&[1, 2, 3], &[], |_, _| Propose::Apply).await;
    // Node 3 is the new, empty node: it is in no address book yet and holds no group.
    let book: Vec<Node> = [1, 2]
        .iter()
        .map(|id| node(*id, fakes.addresses[id]))
        .collect();
    for id in [1, 2] {
        let role = if id == 1 {
            RaftRole::Leader
        } else {
            RaftRole::Follower
        };
        // Node 2 thinks node 2 leads, so the admin's first try goes to the wrong node.
        let leader = if id == 1 { 1 } else { 2 };
        fakes.nodes[&id].state().status = status(id, &book, Some(leader), role);
    }
    fakes.nodes[&2].state().status.groups[0].term = 9;
    let admin = Admin::new(AdminOptions::default());
    let new = NodeAddress {
        id: NodeId(3),
        address: fakes.addresses[&3].to_string(),
    };
    let report = admin
        .add_node(&fakes.seed(2), new, None, true)
        .await
        .unwrap();
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(report.groups.len(), 2);
    assert_eq!(
        report.groups[1].voters,
        vec![NodeId(1), NodeId(2), NodeId(3)]
    );
    assert_eq!(
        fakes.nodes[&3].calls(),
        vec![
            "open_group 0 shards=1 voters=0 at 3",
            "open_group 1 shards=1 voters=0 at 3"
        ]
    );
    assert_eq!(
        fakes.nodes[&1].calls(),
        vec![
            "add_learner 0 at 1",
            "promote_voter 0 at 1",
            "add_learner 1 at 1",
            "promote_voter 1 at 1"
        ]
    );
    // Group 0's cached leader was node 2 (term 9): it was asked first and redirected.
    assert_eq!(fakes.nodes[&2].calls(), vec!["add_learner 0 at 2"]);
}

#[tokio::test]
async fn node_remove_reports_quorum_at_risk_with_the_force_hint() {
    let fakes = must_spawn_fakes(&[1, 2], &[], |_, _| Propose::Apply).await;
    fakes.nodes[&1].state().guard_quorum = true;
    let admin = Admin::default();
    let report = admin
        .remove_node(&fakes.seed(1), NodeId(2), None, false)
        .await
        .unwrap();
    assert!(!report.all_ok());
    let error = report.groups[0].error.as_ref().unwrap();
    assert_eq!(error.code, "quorum_at_risk");
    assert!(error.message.contains("--force"), "{}", error.message);

    let report = admin
        .remove_node(&fakes.seed(1), NodeId(2), Some(vec![GroupId(1)]), true)
        .await
        .unwrap();
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(report.groups[0].voters, vec![NodeId(1)]);
}
