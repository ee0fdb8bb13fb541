//! Cluster facts: the shard count and retired node ids.

use super::*;
use MetaRejectCode as Code;

fn facts(shard_count: u32) -> MetaAction {
    MetaAction::SetClusterFacts { shard_count }
}

fn retire(node: u64) -> MetaAction {
    MetaAction::RetireNode {
        node_id: NodeId(node),
    }
}

#[test]
fn the_shard_count_is_set_once_and_the_same_value_again_is_accepted_quietly() {
    let mut meta = Meta::new();
    assert_eq!(meta.state.shard_count(), None);
    let outcome = meta.act(MetaActor::Operator, facts(8));
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::ClusterFactsSet { shard_count: 8 }]
    );
    let again = meta.act(MetaActor::Operator, facts(8));
    assert_eq!(again.reply, outcome.reply);
    assert!(again.events.is_empty());
    assert_eq!(
        meta.reject(MetaActor::Operator, facts(16)),
        Code::ShardCountConflict
    );
    assert_eq!(meta.state.shard_count(), Some(8));
}

#[test]
fn a_shard_count_outside_1_to_1024_is_invalid() {
    let mut meta = Meta::new();
    assert_eq!(
        meta.reject(MetaActor::Operator, facts(0)),
        Code::InvalidShardCount
    );
    assert_eq!(
        meta.reject(MetaActor::Operator, facts(1025)),
        Code::InvalidShardCount
    );
    meta.accept(MetaActor::Operator, facts(1024));
}

#[test]
fn only_the_operator_sets_cluster_facts_and_retires_nodes() {
    let (mut meta, admin) = Meta::with_admin();
    for actor in [user(admin), MetaActor::Anonymous] {
        assert_eq!(meta.reject(actor, facts(4)), Code::PermissionDenied);
        assert_eq!(meta.reject(actor, retire(3)), Code::PermissionDenied);
    }
}

#[test]
fn retiring_a_node_is_idempotent_and_remembered() {
    let mut meta = Meta::new();
    assert!(!meta.state.is_retired(NodeId(3)));
    let outcome = meta.act(MetaActor::Operator, retire(3));
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::NodeRetired { node_id: NodeId(3) }]
    );
    let again = meta.act(MetaActor::Operator, retire(3));
    assert_eq!(again.reply, outcome.reply);
    assert!(again.events.is_empty());
    assert!(meta.state.is_retired(NodeId(3)));
    assert!(!meta.state.is_retired(NodeId(4)));
    assert_eq!(
        meta.state.retired_nodes().collect::<Vec<_>>(),
        vec![NodeId(3)]
    );
}

#[test]
fn retired_node_ids_are_bounded() {
    let mut meta = Meta::with_capacity(MetaCapacity {
        retired_nodes_max: 2,
        ..MetaCapacity::default()
    });
    meta.accept(MetaActor::Operator, retire(1));
    meta.accept(MetaActor::Operator, retire(2));
    assert_eq!(
        meta.reject(MetaActor::Operator, retire(3)),
        Code::RetiredNodeLimitReached
    );
    meta.accept(MetaActor::Operator, retire(2));
}
