//! `martelo status`: every node's view of every group, and the report and JSON an operator
//! reads. Pure: built from the `Status` answers (or errors) of the nodes.
//!
//! The structs mirror `StatusResponse` field for field (prost types do not derive serde),
//! so `--json` output is stable where the proto is, and `null` means "none yet" where the
//! proto's field is `optional`. Node ids are [`NodeId`]s, which serialize as bare numbers.
//!
//! What does not live here: the health verdict ([`super::health`], re-exported here as
//! part of [`ClusterStatus`]), the table the CLI prints.

use std::collections::{BTreeMap, BTreeSet};

use martelo_proto::{GroupStatus, RaftRole, StatusResponse};
use martelo_types::NodeId;
use serde::Serialize;

use super::health::assess;
pub use super::health::{GroupHealth, Health, HealthState, LAG_ENTRIES_DEGRADED};
use crate::error::ClientError;

/// The whole cluster as its nodes report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The cluster's number of auction shards (groups `1..=shard_count`; group 0 is the
    /// meta group); 0 when no reachable node is initialized.
    pub shard_count: u32,
    /// Every node found, by id; nodes whose id is unknown (unreachable seeds) last.
    pub nodes: Vec<NodeReport>,
    pub health: Health,
}

/// One node: its status, or why it could not be had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    /// `None` for a seed address that never answered and that no node knows.
    pub node_id: Option<NodeId>,
    /// The client API address the status was asked at.
    pub address: String,
    pub reachable: bool,
    pub status: Option<NodeStatus>,
    pub error: Option<ErrorReport>,
}

/// A failure, as stable code and message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    pub code: String,
    pub message: String,
    /// Whether the same request may succeed later without any change (a busy group, a
    /// node that is restarting); false when something must be fixed first.
    pub retryable: bool,
}

impl From<&ClientError> for ErrorReport {
    fn from(error: &ClientError) -> ErrorReport {
        ErrorReport {
            code: error.code().as_str().to_owned(),
            message: error.to_string(),
            retryable: error.is_retryable(),
        }
    }
}

/// `StatusResponse`, for people and JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub node_id: NodeId,
    pub raft_address: String,
    pub api_address: String,
    pub version: String,
    pub initialized: bool,
    pub wall_clock_us: u64,
    pub shard_count: u32,
    /// Voters per group as recorded at init; 0 when unknown.
    pub replication_factor: u32,
    pub groups: Vec<GroupReport>,
}

/// `GroupStatus`: one replica's view of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupReport {
    pub group_id: u64,
    pub role: Role,
    pub term: u64,
    pub leader_id: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// Leader only: one per other member.
    pub replication: Vec<ReplicationReport>,
    pub quorum_ack_age_ms: Option<u64>,
    pub clock_ok: bool,
}

/// A replica's Raft role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
    /// A role this client does not know (a newer node), or none reported.
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
            Role::Shutdown => "shutdown",
            Role::Unknown => "unknown",
        }
    }
}

impl From<RaftRole> for Role {
    fn from(role: RaftRole) -> Role {
        match role {
            RaftRole::Leader => Role::Leader,
            RaftRole::Follower => Role::Follower,
            RaftRole::Candidate => Role::Candidate,
            RaftRole::Learner => Role::Learner,
            RaftRole::Shutdown => Role::Shutdown,
            RaftRole::Unspecified => Role::Unknown,
        }
    }
}

/// `ReplicationStatus`: how far the leader knows a member to be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicationReport {
    pub node_id: NodeId,
    pub matched_index: Option<u64>,
    pub lag_entries: u64,
}

/// Node ids as the wire carries them, typed.
pub(crate) fn node_ids(ids: &[u64]) -> Vec<NodeId> {
    ids.iter().copied().map(NodeId).collect()
}

impl GroupReport {
    fn from_proto(group: &GroupStatus) -> GroupReport {
        GroupReport {
            group_id: group.group_id,
            role: Role::from(group.role()),
            term: group.term,
            leader_id: group.leader_id.map(NodeId),
            last_log_index: group.last_log_index,
            committed_index: group.committed_index,
            applied_index: group.applied_index,
            snapshot_index: group.snapshot_index,
            purged_index: group.purged_index,
            voters: node_ids(&group.voters),
            learners: node_ids(&group.learners),
            replication: group
                .replication
                .iter()
                .map(|replication| ReplicationReport {
                    node_id: NodeId(replication.node_id),
                    matched_index: replication.matched_index,
                    lag_entries: replication.lag_entries,
                })
                .collect(),
            quorum_ack_age_ms: group.quorum_ack_age_ms,
            clock_ok: group.clock_ok,
        }
    }
}

impl NodeStatus {
    /// The mirror of one node's `Status` answer.
    pub fn from_proto(status: &StatusResponse) -> NodeStatus {
        let node = status.node.clone().unwrap_or_default();
        NodeStatus {
            node_id: NodeId(node.node_id),
            raft_address: node.raft_address,
            api_address: node.api_address,
            version: status.version.clone(),
            initialized: status.initialized,
            wall_clock_us: status.wall_clock_us,
            shard_count: status.shard_count,
            replication_factor: status.replication_factor,
            groups: status.groups.iter().map(GroupReport::from_proto).collect(),
        }
    }
}

impl ClusterStatus {
    /// Builds the report from what each address answered. `known_ids` maps addresses to
    /// node ids from the nodes' address books, so an unreachable node is still named.
    pub fn from_answers(
        answers: Vec<(String, Result<StatusResponse, ClientError>)>,
        known_ids: &BTreeMap<String, NodeId>,
    ) -> ClusterStatus {
        let mut nodes: Vec<NodeReport> = Vec::new();
        let mut answered: BTreeSet<NodeId> = BTreeSet::new();
        for (address, answer) in answers {
            match answer {
                Ok(status) => {
                    let status = NodeStatus::from_proto(&status);
                    if !answered.insert(status.node_id) {
                        continue;
                    }
                    nodes.push(NodeReport {
                        node_id: Some(status.node_id),
                        address,
                        reachable: true,
                        status: Some(status),
                        error: None,
                    });
                }
                Err(error) => {
                    let node_id = known_ids.get(&address).copied();
                    nodes.push(NodeReport {
                        node_id,
                        address,
                        reachable: false,
                        status: None,
                        error: Some(ErrorReport::from(&error)),
                    });
                }
            }
        }
        // A node that answered at one address and failed at another is reported once.
        nodes
            .retain(|node| node.reachable || node.node_id.is_none_or(|id| !answered.contains(&id)));
        nodes.sort_by_key(|node| (node.node_id.is_none(), node.node_id, node.address.clone()));
        nodes
            .dedup_by(|later, earlier| later.node_id.is_some() && later.node_id == earlier.node_id);
        let shard_count = nodes
            .iter()
            .filter_map(|node| node.status.as_ref())
            .filter(|status| status.initialized)
            .map(|status| status.shard_count)
            .max()
            .unwrap_or(0);
        let health = assess(shard_count, &nodes);
        ClusterStatus {
            shard_count,
            nodes,
            health,
        }
    }

    /// The replica of `group` that leads in the newest term, with its node id.
    pub fn leader_report(&self, group: u64) -> Option<(NodeId, &GroupReport)> {
        replicas(&self.nodes, group)
            .filter(|(_, report)| report.role == Role::Leader)
            .max_by_key(|(_, report)| report.term)
    }

    /// The membership of `group`: the leader's view, else the view of the replica with the
    /// newest term.
    pub fn membership(&self, group: u64) -> Option<&GroupReport> {
        self.leader_report(group)
            .map(|(_, report)| report)
            .or_else(|| {
                replicas(&self.nodes, group)
                    .map(|(_, report)| report)
                    .max_by_key(|report| report.term)
            })
    }

    /// The group ids the cluster should have (`0..=shard_count`) and any other reported.
    pub fn group_ids(&self) -> BTreeSet<u64> {
        group_ids(self.shard_count, &self.nodes)
    }
}

pub(super) fn replicas(
    nodes: &[NodeReport],
    group: u64,
) -> impl Iterator<Item = (NodeId, &GroupReport)> {
    nodes
        .iter()
        .filter_map(|node| node.status.as_ref())
        .flat_map(move |status| {
            status
                .groups
                .iter()
                .filter(move |report| report.group_id == group)
                .map(move |report| (status.node_id, report))
        })
}

pub(super) fn group_ids(shard_count: u32, nodes: &[NodeReport]) -> BTreeSet<u64> {
    let mut ids: BTreeSet<u64> = if shard_count > 0 {
        (0..=u64::from(shard_count)).collect()
    } else {
        BTreeSet::new()
    };
    for status in nodes.iter().filter_map(|node| node.status.as_ref()) {
        ids.extend(status.groups.iter().map(|report| report.group_id));
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn a_node_reached_at_two_addresses_is_reported_once() {
        let mut answers = vec![answer(1, leader_of_both(1))];
        answers.push(("localhost:7001".into(), Ok(node(1, leader_of_both(1)))));
        let status = ClusterStatus::from_answers(answers, &known_ids());
        assert_eq!(status.nodes.len(), 1);
    }

    #[test]
    fn the_json_shape_is_stable() {
        let status = ClusterStatus::from_answers(
            vec![answer(1, leader_of_both(1)), unreachable(3)],
            &known_ids(),
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["shard_count"], 1);
        let first = &json["nodes"][0];
        assert_eq!(first["node_id"], 1);
        assert_eq!(first["reachable"], true);
        assert_eq!(first["error"], serde_json::Value::Null);
        let group = &first["status"]["groups"][1];
        assert_eq!(group["role"], "leader");
        assert_eq!(group["leader_id"], 1);
        assert_eq!(group["snapshot_index"], serde_json::Value::Null);
        assert_eq!(group["replication"][0]["lag_entries"], 2);
        let second = &json["nodes"][1];
        assert_eq!(second["node_id"], 3);
        assert_eq!(second["status"], serde_json::Value::Null);
        assert_eq!(second["error"]["code"], "unreachable");
        assert_eq!(json["health"]["healthy"], false);
        assert_eq!(json["health"]["state"], "unavailable");
        assert_eq!(
            json["health"]["groups"][0]["acknowledged_by"],
            serde_json::json!([1])
        );
    }
}
