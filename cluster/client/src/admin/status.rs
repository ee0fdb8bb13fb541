//! `martelo status`: every node's view of every group, a health verdict, and the table and
//! JSON an operator reads. Pure: built from the `Status` answers (or errors) of the nodes.
//!
//! The structs mirror `StatusResponse` field for field (prost types do not derive serde),
//! so `--json` output is stable where the proto is, and `null` means "none yet" where the
//! proto's field is `optional`.
//!
//! A group is healthy when some replica reports that it leads and a majority of the voters
//! in that leader's membership (the leader included) name it as leader. That is what a
//! write needs to commit; a group without it cannot accept bids.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use martelo_proto::{GroupStatus, RaftRole, StatusResponse};
use serde::Serialize;

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
    pub node_id: Option<u64>,
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
}

impl From<&ClientError> for ErrorReport {
    fn from(error: &ClientError) -> ErrorReport {
        ErrorReport {
            code: error.code().as_str().to_owned(),
            message: error.to_string(),
        }
    }
}

/// `StatusResponse`, for people and JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub node_id: u64,
    pub raft_address: String,
    pub api_address: String,
    pub version: String,
    pub initialized: bool,
    pub wall_clock_us: u64,
    pub shard_count: u32,
    pub groups: Vec<GroupReport>,
}

/// `GroupStatus`: one replica's view of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupReport {
    pub group_id: u64,
    pub role: Role,
    pub term: u64,
    pub leader_id: Option<u64>,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
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
    pub node_id: u64,
    pub matched_index: Option<u64>,
    pub lag_entries: u64,
}

/// The verdict on the whole cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Every group has a leader acknowledged by a majority of its voters.
    pub healthy: bool,
    /// One line for people.
    pub summary: String,
    pub groups: Vec<GroupHealth>,
    /// Node ids (or addresses, when the id is unknown) that did not answer.
    pub unreachable: Vec<String>,
}

/// The verdict on one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupHealth {
    pub group_id: u64,
    pub healthy: bool,
    pub leader_id: Option<u64>,
    pub term: Option<u64>,
    /// The voters in the leader's membership (or in any replica's, without a leader).
    pub voters: Vec<u64>,
    /// The voters that name the leader as leader, the leader included.
    pub acknowledged_by: Vec<u64>,
    /// What is wrong, for people; `None` when healthy.
    pub problem: Option<String>,
}

impl GroupReport {
    fn from_proto(group: &GroupStatus) -> GroupReport {
        GroupReport {
            group_id: group.group_id,
            role: Role::from(group.role()),
            term: group.term,
            leader_id: group.leader_id,
            last_log_index: group.last_log_index,
            committed_index: group.committed_index,
            applied_index: group.applied_index,
            snapshot_index: group.snapshot_index,
            purged_index: group.purged_index,
            voters: group.voters.clone(),
            learners: group.learners.clone(),
            replication: group
                .replication
                .iter()
                .map(|replication| ReplicationReport {
                    node_id: replication.node_id,
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
            node_id: node.node_id,
            raft_address: node.raft_address,
            api_address: node.api_address,
            version: status.version.clone(),
            initialized: status.initialized,
            wall_clock_us: status.wall_clock_us,
            shard_count: status.shard_count,
            groups: status.groups.iter().map(GroupReport::from_proto).collect(),
        }
    }
}

impl ClusterStatus {
    /// Builds the report from what each address answered. `known_ids` maps addresses to
    /// node ids from the nodes' address books, so an unreachable node is still named.
    pub fn from_answers(
        answers: Vec<(String, Result<StatusResponse, ClientError>)>,
        known_ids: &BTreeMap<String, u64>,
    ) -> ClusterStatus {
        let mut nodes: Vec<NodeReport> = Vec::new();
        let mut answered: BTreeSet<u64> = BTreeSet::new();
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
    pub fn leader_report(&self, group: u64) -> Option<(u64, &GroupReport)> {
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

fn replicas(nodes: &[NodeReport], group: u64) -> impl Iterator<Item = (u64, &GroupReport)> {
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

fn group_ids(shard_count: u32, nodes: &[NodeReport]) -> BTreeSet<u64> {
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

/// The health verdict (see the module docs).
fn assess(shard_count: u32, nodes: &[NodeReport]) -> Health {
    let unreachable: Vec<String> = nodes
        .iter()
        .filter(|node| !node.reachable)
        .map(|node| {
            node.node_id
                .map_or_else(|| node.address.clone(), |id| id.to_string())
        })
        .collect();
    let initialized = nodes
        .iter()
        .filter_map(|node| node.status.as_ref())
        .any(|status| status.initialized);
    if !initialized {
        let summary = if nodes.iter().any(|node| node.reachable) {
            "the cluster is not initialized: run `martelo cluster init`".to_owned()
        } else {
            "no node answered".to_owned()
        };
        return Health {
            healthy: false,
            summary,
            groups: Vec::new(),
            unreachable,
        };
    }
    let groups: Vec<GroupHealth> = group_ids(shard_count, nodes)
        .into_iter()
        .map(|group| assess_group(group, nodes))
        .collect();
    let unhealthy = groups.iter().filter(|group| !group.healthy).count();
    let mut summary = if unhealthy == 0 {
        format!(
            "all {} groups have a leader acknowledged by a majority of their voters",
            groups.len()
        )
    } else {
        format!(
            "{unhealthy} of {} groups have no healthy leader",
            groups.len()
        )
    };
    if !unreachable.is_empty() {
        let _ = write!(
            summary,
            "; {} node(s) unreachable: {}",
            unreachable.len(),
            unreachable.join(", ")
        );
    }
    Health {
        healthy: unhealthy == 0,
        summary,
        groups,
        unreachable,
    }
}

fn assess_group(group: u64, nodes: &[NodeReport]) -> GroupHealth {
    let replicas: Vec<(u64, &GroupReport)> = replicas(nodes, group).collect();
    let leader = replicas
        .iter()
        .filter(|(_, report)| report.role == Role::Leader)
        .max_by_key(|(_, report)| report.term);
    let Some(&(leader_id, leader_report)) = leader else {
        let voters = replicas
            .iter()
            .max_by_key(|(_, report)| report.term)
            .map(|(_, report)| report.voters.clone())
            .unwrap_or_default();
        let problem = if replicas.is_empty() {
            "no reachable node holds a replica".to_owned()
        } else {
            "no leader: an election is under way, or too few voters are up to elect one".to_owned()
        };
        return GroupHealth {
            group_id: group,
            healthy: false,
            leader_id: None,
            term: None,
            voters,
            acknowledged_by: Vec::new(),
            problem: Some(problem),
        };
    };
    let voters = leader_report.voters.clone();
    let acknowledged_by: Vec<u64> = voters
        .iter()
        .copied()
        .filter(|&voter| {
            voter == leader_id
                || replicas
                    .iter()
                    .any(|(node, report)| *node == voter && report.leader_id == Some(leader_id))
        })
        .collect();
    let majority = voters.len() / 2 + 1;
    let healthy = voters.contains(&leader_id) && acknowledged_by.len() >= majority;
    let problem = (!healthy).then(|| {
        format!(
            "leader {leader_id} (term {}) is acknowledged by {} of {} voters, {majority} needed",
            leader_report.term,
            acknowledged_by.len(),
            voters.len()
        )
    });
    GroupHealth {
        group_id: group,
        healthy,
        leader_id: Some(leader_id),
        term: Some(leader_report.term),
        voters,
        acknowledged_by,
        problem,
    }
}

/// The table `martelo status` prints: one row per node and group, then the health verdict.
pub fn render_table(status: &ClusterStatus) -> String {
    let mut rows: Vec<Vec<String>> = vec![
        [
            "NODE",
            "ADDRESS",
            "GROUP",
            "ROLE",
            "TERM",
            "LEADER",
            "LAST LOG",
            "COMMITTED",
            "APPLIED",
            "LAG",
            "SNAPSHOT",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let optional = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    for node in &status.nodes {
        let id = optional(node.node_id);
        let Some(node_status) = &node.status else {
            rows.push(vec![
                id,
                node.address.clone(),
                "-".into(),
                "UNREACHABLE".into(),
            ]);
            continue;
        };
        if !node_status.initialized {
            rows.push(vec![
                id,
                node.address.clone(),
                "-".into(),
                "not initialized".into(),
            ]);
            continue;
        }
        for group in &node_status.groups {
            let lag = if group.role == Role::Leader {
                "-".to_owned()
            } else {
                status
                    .leader_report(group.group_id)
                    .and_then(|(_, leader)| {
                        leader
                            .replication
                            .iter()
                            .find(|replication| replication.node_id == node_status.node_id)
                    })
                    .map_or_else(|| "?".to_owned(), |r| r.lag_entries.to_string())
            };
            rows.push(vec![
                id.clone(),
                node.address.clone(),
                group.group_id.to_string(),
                group.role.as_str().to_owned(),
                group.term.to_string(),
                optional(group.leader_id),
                optional(group.last_log_index),
                optional(group.committed_index),
                optional(group.applied_index),
                lag,
                optional(group.snapshot_index),
            ]);
        }
    }
    let mut out = format_rows(&rows);
    out.push('\n');
    let verdict = if status.health.healthy {
        "OK"
    } else {
        "UNHEALTHY"
    };
    let _ = writeln!(out, "health: {verdict}: {}", status.health.summary);
    for group in status.health.groups.iter().filter(|group| !group.healthy) {
        if let Some(problem) = &group.problem {
            let _ = writeln!(out, "  group {}: {problem}", group.group_id);
        }
    }
    for node in status.nodes.iter().filter(|node| !node.reachable) {
        if let Some(error) = &node.error {
            let _ = writeln!(out, "  unreachable: {}", error.message);
        }
    }
    let versions: BTreeSet<&str> = status
        .nodes
        .iter()
        .filter_map(|node| node.status.as_ref())
        .map(|status| status.version.as_str())
        .collect();
    if versions.len() > 1 {
        let list: Vec<&str> = versions.into_iter().collect();
        let _ = writeln!(
            out,
            "  warning: nodes run different versions: {}",
            list.join(", ")
        );
    }
    out
}

/// Left-aligned columns, two spaces apart, without trailing blanks.
fn format_rows(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter(|row| row.len() > column + 1)
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[column]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use martelo_proto::{Node, ReplicationStatus};

    use super::*;

    fn group(id: u64, role: RaftRole, leader: Option<u64>, term: u64) -> GroupStatus {
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

    fn node(id: u64, groups: Vec<GroupStatus>) -> StatusResponse {
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
        }
    }

    fn leader_of_both(id: u64) -> Vec<GroupStatus> {
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

    fn follower_of_both(leader: u64) -> Vec<GroupStatus> {
        vec![
            group(0, RaftRole::Follower, Some(leader), 2),
            group(1, RaftRole::Follower, Some(leader), 3),
        ]
    }

    fn unreachable(id: u64) -> (String, Result<StatusResponse, ClientError>) {
        let address = format!("127.0.0.1:{}", 7000 + id);
        let error = ClientError::Unreachable {
            address: address.clone(),
            reason: "connection refused".into(),
        };
        (address, Err(error))
    }

    fn known_ids() -> BTreeMap<String, u64> {
        (1..=3)
            .map(|id| (format!("127.0.0.1:{}", 7000 + id), id))
            .collect()
    }

    fn answer(id: u64, groups: Vec<GroupStatus>) -> (String, Result<StatusResponse, ClientError>) {
        (format!("127.0.0.1:{}", 7000 + id), Ok(node(id, groups)))
    }

    #[test]
    fn a_cluster_with_two_of_three_voters_up_is_healthy_and_names_the_missing_node() {
        let status = ClusterStatus::from_answers(
            vec![
                answer(1, leader_of_both(1)),
                answer(2, follower_of_both(1)),
                unreachable(3),
            ],
            &known_ids(),
        );
        assert!(status.health.healthy, "{:?}", status.health);
        assert_eq!(status.health.unreachable, vec!["3".to_owned()]);
        assert_eq!(status.health.groups[1].acknowledged_by, vec![1, 2]);
        assert_eq!(
            status.health.summary,
            "all 2 groups have a leader acknowledged by a majority of their voters; 1 node(s) \
             unreachable: 3"
        );
    }

    #[test]
    fn a_leader_that_only_it_believes_in_is_unhealthy() {
        let mut partitioned = follower_of_both(1);
        partitioned[1] = group(1, RaftRole::Candidate, None, 4);
        let status = ClusterStatus::from_answers(
            vec![
                answer(1, leader_of_both(1)),
                answer(2, partitioned),
                unreachable(3),
            ],
            &known_ids(),
        );
        assert!(!status.health.healthy);
        let group = &status.health.groups[1];
        assert_eq!(
            group.problem.as_deref(),
            Some("leader 1 (term 3) is acknowledged by 1 of 3 voters, 2 needed")
        );
    }

    #[test]
    fn a_group_without_leader_or_replica_is_unhealthy() {
        let status = ClusterStatus::from_answers(
            vec![answer(1, vec![group(0, RaftRole::Follower, None, 2)])],
            &known_ids(),
        );
        assert!(!status.health.healthy);
        let problems: Vec<_> = status
            .health
            .groups
            .iter()
            .map(|group| group.problem.clone().unwrap())
            .collect();
        assert!(problems[0].starts_with("no leader"), "{problems:?}");
        assert_eq!(problems[1], "no reachable node holds a replica");
    }

    #[test]
    fn an_uninitialized_cluster_says_to_run_cluster_init() {
        let mut fresh = node(1, Vec::new());
        fresh.initialized = false;
        fresh.shard_count = 0;
        let status = ClusterStatus::from_answers(
            vec![("127.0.0.1:7001".into(), Ok(fresh))],
            &BTreeMap::new(),
        );
        assert_eq!(status.shard_count, 0);
        assert!(!status.health.healthy);
        assert!(status.health.summary.contains("martelo cluster init"));
        assert!(render_table(&status).contains("not initialized"));
    }

    #[test]
    fn a_node_reached_at_two_addresses_is_reported_once() {
        let mut answers = vec![answer(1, leader_of_both(1))];
        answers.push(("localhost:7001".into(), Ok(node(1, leader_of_both(1)))));
        let status = ClusterStatus::from_answers(answers, &known_ids());
        assert_eq!(status.nodes.len(), 1);
    }

    #[test]
    fn the_table_shows_roles_indexes_lag_and_the_health_verdict() {
        let status = ClusterStatus::from_answers(
            vec![
                answer(1, leader_of_both(1)),
                answer(2, follower_of_both(1)),
                unreachable(3),
            ],
            &known_ids(),
        );
        let expected = "\
NODE  ADDRESS         GROUP  ROLE      TERM  LEADER  LAST LOG  COMMITTED  APPLIED  LAG  SNAPSHOT
1     127.0.0.1:7001  0      leader    2     1       120       120        119      -    -
1     127.0.0.1:7001  1      leader    3     1       120       120        119      -    -
2     127.0.0.1:7002  0      follower  2     1       120       120        119      2    -
2     127.0.0.1:7002  1      follower  3     1       120       120        119      2    -
3     127.0.0.1:7003  -      UNREACHABLE

health: OK: all 2 groups have a leader acknowledged by a majority of their voters; 1 node(s) unreachable: 3
  unreachable: cannot reach a martelo node at 127.0.0.1:7003 (connection refused); is the node running, and is the address right?
";
        assert_eq!(render_table(&status), expected);
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
        assert_eq!(
            json["health"]["groups"][0]["acknowledged_by"],
            serde_json::json!([1])
        );
    }
}
