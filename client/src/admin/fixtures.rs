//! Hand-made `Status` answers for tests of the status verdict and of the tables printed from
//! it (in this crate and in the CLI's). Compiled for tests and with the `fixtures` feature.

use std::collections::BTreeMap;

use martelo_proto::{GroupStatus, Node, RaftRole, ReplicationStatus, StatusResponse};
use martelo_types::{NodeAddress, NodeId};

use super::status::ClusterStatus;
use crate::error::ClientError;

pub fn group(id: u64, role: RaftRole, leader: Option<u64>, term: u64) -> GroupStatus {
    GroupStatus {
        group_id: id,
        role: role.into(),
        term,
        leader_id: leader,
        last_log_index: Some(120),
        committed_index: Some(120),
        applied_index: Some(119),
        snapshot_index: None,
        voters: vec![1, 2, 3],
        clock_ok: true,
        ..GroupStatus::default()
    }
}

pub fn node(id: u64, groups: Vec<GroupStatus>) -> StatusResponse {
    let address = format!("127.0.0.1:{}", 7000 + id);
    StatusResponse {
        node: Some(Node {
            node_id: id,
            raft_address: address.clone(),
            api_address: address,
        }),
        version: "0.1.0".into(),
        initialized: true,
        groups,
        wall_clock_us: 1_000,
        shard_count: 1,
        nodes: Vec::new(),
        replication_factor: 3,
    }
}

pub fn leader_of_both(id: u64) -> Vec<GroupStatus> {
    let mut groups = vec![
        group(0, RaftRole::Leader, Some(id), 2),
        group(1, RaftRole::Leader, Some(id), 3),
    ];
    for group in &mut groups {
        group.replication = vec![
            ReplicationStatus {
                node_id: 2,
                matched_index: Some(118),
                lag_entries: 2,
            },
            ReplicationStatus {
                node_id: 3,
                matched_index: None,
                lag_entries: 120,
            },
        ];
    }
    groups
}

pub fn follower_of_both(leader: u64) -> Vec<GroupStatus> {
    vec![
        group(0, RaftRole::Follower, Some(leader), 2),
        group(1, RaftRole::Follower, Some(leader), 3),
    ]
}

pub fn unreachable(id: u64) -> (String, Result<StatusResponse, ClientError>) {
    let address = format!("127.0.0.1:{}", 7000 + id);
    let error = ClientError::Unreachable {
        address: address.clone(),
        reason: "connection refused".into(),
    };
    (address, Err(error))
}

pub fn known_ids() -> BTreeMap<String, NodeId> {
    (1..=3)
        .map(|id| (format!("127.0.0.1:{}", 7000 + id), NodeId(id)))
        .collect()
}

pub fn answer(id: u64, groups: Vec<GroupStatus>) -> (String, Result<StatusResponse, ClientError>) {
    (format!("127.0.0.1:{}", 7000 + id), Ok(node(id, groups)))
}

/// Leader 1 of both groups, with every voter caught up.
pub fn caught_up_leader(id: u64) -> Vec<GroupStatus> {
    let mut groups = leader_of_both(id);
    for group in &mut groups {
        for replication in &mut group.replication {
            replication.matched_index = Some(120);
            replication.lag_entries = 0;
        }
    }
    groups
}

/// Node `id` at `127.0.0.1:port`, as `cluster init` and `node add` take it.
pub fn node_address(id: u64, port: u16) -> NodeAddress {
    NodeAddress {
        id: NodeId(id),
        address: format!("127.0.0.1:{port}"),
    }
}

/// The verdict on one node that answers but was never initialized (no `cluster init` yet).
pub fn uninitialized_cluster() -> ClusterStatus {
    let mut fresh = node(1, Vec::new());
    fresh.initialized = false;
    fresh.shard_count = 0;
    ClusterStatus::from_answers(vec![("127.0.0.1:7001".into(), Ok(fresh))], &BTreeMap::new())
}
