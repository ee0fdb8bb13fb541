//! `martelo status`: every node's view of every group, a health verdict, and the table and
//! JSON an operator reads. Pure: built from the `Status` answers (or errors) of the nodes.
//!
//! The structs mirror `StatusResponse` field for field (prost types do not derive serde),
//! so `--json` output is stable where the proto is, and `null` means "none yet" where the
//! proto's field is `optional`.
//!
//! Each group is in one of three states:
//!
//! - **unavailable**: no replica leads with a majority of the voters in its membership (the
//!   leader included) naming it as leader. That is what a write needs to commit; such a
//!   group cannot accept bids.
//! - **degraded**: it has such a leader, but has lost redundancy: fewer voters than the
//!   cluster's replication factor, a voter that is unreachable, follows no one or lags by
//!   more than [`LAG_ENTRIES_DEGRADED`], or fewer spare voters than the replication factor
//!   gives (a group of 3 with one voter down can lose no more).
//! - **ok**: none of the above.
//!
//! The cluster is as bad as its worst group; `martelo status` exits with a code per state,
//! so scripts and readiness probes can use it.

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
    pub node_id: u64,
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

/// A voter this far behind its leader's log counts as lagging: it could not take over
/// without a long catch-up, so the group has one spare voter fewer than it seems.
pub const LAG_ENTRIES_DEGRADED: u64 = 1_000;

/// A group's or the cluster's state, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Ok,
    /// Writes commit, but redundancy is below what the replication factor promises.
    Degraded,
    /// Some group has no leader that a majority acknowledges: it takes no writes.
    Unavailable,
    /// No reachable node belongs to a cluster yet.
    NotInitialized,
    /// No node answered.
    Unreachable,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Ok => "OK",
            HealthState::Degraded => "DEGRADED",
            HealthState::Unavailable => "UNAVAILABLE",
            HealthState::NotInitialized => "NOT INITIALIZED",
            HealthState::Unreachable => "UNREACHABLE",
        }
    }
}

/// The verdict on the whole cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The worst group's state (see the module docs).
    pub state: HealthState,
    /// Every group has a leader acknowledged by a majority of its voters (`state` is `ok` or
    /// `degraded`): the cluster takes writes.
    pub healthy: bool,
    /// One line for people.
    pub summary: String,
    /// Voters per group the cluster was initialized with (see [`ClusterStatus`]).
    pub replication_factor: u32,
    pub groups: Vec<GroupHealth>,
    /// Node ids (or addresses, when the id is unknown) that did not answer.
    pub unreachable: Vec<String>,
}

/// The verdict on one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupHealth {
    pub group_id: u64,
    pub state: HealthState,
    /// It has a leader acknowledged by a majority of its voters (`ok` or `degraded`).
    pub healthy: bool,
    pub leader_id: Option<u64>,
    pub term: Option<u64>,
    /// The voters in the leader's membership (or in any replica's, without a leader).
    pub voters: Vec<u64>,
    /// The learners (non-voting replicas) in that membership.
    pub learners: Vec<u64>,
    /// The voters that name the leader as leader, the leader included.
    pub acknowledged_by: Vec<u64>,
    /// How many more voters the group can lose and still elect a leader (0 when it has
    /// none now).
    pub failures_tolerated: u64,
    /// Why it is unavailable, for people; `None` otherwise.
    pub problem: Option<String>,
    /// Why it is degraded, for people; empty otherwise.
    pub risks: Vec<String>,
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

/// The cluster's replication factor: what the nodes recorded at init, or (for nodes that
/// predate the record) the default placement's `min(3, nodes)`.
fn replication_factor(nodes: &[NodeReport]) -> u32 {
    let recorded = nodes
        .iter()
        .filter_map(|node| node.status.as_ref())
        .map(|status| status.replication_factor)
        .max()
        .unwrap_or(0);
    if recorded > 0 {
        return recorded;
    }
    let known = nodes.iter().filter(|node| node.node_id.is_some()).count();
    u32::try_from(known.min(3)).unwrap_or(3)
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
    let replication_factor = replication_factor(nodes);
    let initialized = nodes
        .iter()
        .filter_map(|node| node.status.as_ref())
        .any(|status| status.initialized);
    if !initialized {
        let (state, summary) = if nodes.iter().any(|node| node.reachable) {
            (
                HealthState::NotInitialized,
                "the cluster is not initialized: run `martelo cluster init`".to_owned(),
            )
        } else {
            (HealthState::Unreachable, "no node answered".to_owned())
        };
        return Health {
            state,
            healthy: false,
            summary,
            replication_factor,
            groups: Vec::new(),
            unreachable,
        };
    }
    let groups: Vec<GroupHealth> = group_ids(shard_count, nodes)
        .into_iter()
        .map(|group| assess_group(group, nodes, replication_factor))
        .collect();
    let state = groups
        .iter()
        .map(|group| group.state)
        .max()
        .unwrap_or(HealthState::Ok);
    let count = |wanted: HealthState| groups.iter().filter(|g| g.state == wanted).count();
    let mut summary = match state {
        HealthState::Ok => format!(
            "all {} groups have a leader acknowledged by every voter, {replication_factor} \
             voters each",
            groups.len()
        ),
        HealthState::Degraded => format!(
            "every group has a leader, but {} of {} groups have less redundancy than the \
             replication factor ({replication_factor}) gives",
            count(HealthState::Degraded),
            groups.len()
        ),
        _ => format!(
            "{} of {} groups have no healthy leader and take no writes",
            count(HealthState::Unavailable),
            groups.len()
        ),
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
        state,
        healthy: state <= HealthState::Degraded,
        summary,
        replication_factor,
        groups,
        unreachable,
    }
}

/// How many voters a group of `voters` can lose while `healthy` of them are up.
fn spare_voters(voters: usize, healthy: usize) -> u64 {
    let majority = voters / 2 + 1;
    healthy.saturating_sub(majority) as u64
}

fn assess_group(group: u64, nodes: &[NodeReport], replication_factor: u32) -> GroupHealth {
    let replicas: Vec<(u64, &GroupReport)> = replicas(nodes, group).collect();
    let leader = replicas
        .iter()
        .filter(|(_, report)| report.role == Role::Leader)
        .max_by_key(|(_, report)| report.term);
    let Some(&(leader_id, leader_report)) = leader else {
        let membership = replicas
            .iter()
            .max_by_key(|(_, report)| report.term)
            .map(|(_, report)| *report);
        let problem = if replicas.is_empty() {
            "no reachable node holds a replica".to_owned()
        } else {
            "no leader: an election is under way, or too few voters are up to elect one".to_owned()
        };
        return GroupHealth {
            group_id: group,
            state: HealthState::Unavailable,
            healthy: false,
            leader_id: None,
            term: None,
            voters: membership.map(|m| m.voters.clone()).unwrap_or_default(),
            learners: membership.map(|m| m.learners.clone()).unwrap_or_default(),
            acknowledged_by: Vec::new(),
            failures_tolerated: 0,
            problem: Some(problem),
            risks: Vec::new(),
        };
    };
    let voters = leader_report.voters.clone();
    let follows = |voter: u64| {
        voter == leader_id
            || replicas
                .iter()
                .any(|(node, report)| *node == voter && report.leader_id == Some(leader_id))
    };
    let acknowledged_by: Vec<u64> = voters.iter().copied().filter(|&v| follows(v)).collect();
    let majority = voters.len() / 2 + 1;
    let leads_its_voters = voters.contains(&leader_id);
    let available = leads_its_voters && acknowledged_by.len() >= majority;
    let mut health = GroupHealth {
        group_id: group,
        state: HealthState::Ok,
        healthy: available,
        leader_id: Some(leader_id),
        term: Some(leader_report.term),
        voters: voters.clone(),
        learners: leader_report.learners.clone(),
        acknowledged_by: acknowledged_by.clone(),
        failures_tolerated: 0,
        problem: None,
        risks: Vec::new(),
    };
    if !available {
        health.state = HealthState::Unavailable;
        health.problem = Some(if leads_its_voters {
            let silent: Vec<String> = voters
                .iter()
                .filter(|v| !acknowledged_by.contains(v))
                .map(u64::to_string)
                .collect();
            format!(
                "leader {leader_id} (term {}) is acknowledged by only {} of {} voters, {majority} \
                 needed: voter(s) {} do not follow it (down, partitioned, or in another term)",
                leader_report.term,
                acknowledged_by.len(),
                voters.len(),
                silent.join(", ")
            )
        } else {
            format!(
                "node {leader_id} reports leading in term {} but is not one of the group's \
                 voters {voters:?}: its view is stale",
                leader_report.term
            )
        });
        return health;
    }
    let unreachable = |voter: u64| {
        nodes
            .iter()
            .any(|node| node.node_id == Some(voter) && !node.reachable)
    };
    let mut up_to_date = 0;
    for &voter in &voters {
        let lag = leader_report
            .replication
            .iter()
            .find(|replication| replication.node_id == voter);
        let risk = if voter == leader_id {
            None
        } else if unreachable(voter) {
            Some(format!("voter {voter} is unreachable"))
        } else if !follows(voter) {
            Some(format!("voter {voter} does not follow leader {leader_id}"))
        } else {
            match lag {
                Some(lag) if lag.matched_index.is_none() => Some(format!(
                    "voter {voter} has confirmed no entry to the leader yet"
                )),
                Some(lag) if lag.lag_entries > LAG_ENTRIES_DEGRADED => Some(format!(
                    "voter {voter} lags {} entries behind the leader",
                    lag.lag_entries
                )),
                _ => None,
            }
        };
        match risk {
            Some(risk) => health.risks.push(risk),
            None => up_to_date += 1,
        }
    }
    let factor = replication_factor.max(1) as usize;
    if voters.len() < factor {
        health.risks.push(format!(
            "it has {} voter(s), fewer than the replication factor {factor}",
            voters.len()
        ));
    }
    health.failures_tolerated = spare_voters(voters.len(), up_to_date);
    let promised = spare_voters(factor, factor);
    if health.failures_tolerated < promised {
        health.risks.push(match health.failures_tolerated {
            0 => "it can lose no more voters: one more failure stops its writes".to_owned(),
            n => format!("it can lose only {n} more voter(s), not {promised}"),
        });
    }
    if !health.risks.is_empty() {
        health.state = HealthState::Degraded;
    }
    health
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
            // A replica its group's leader no longer lists was removed from the group: it
            // lingers until its node deletes it, and takes no part in the group.
            let removed = status
                .leader_report(group.group_id)
                .is_some_and(|(_, leader)| {
                    !leader.voters.contains(&node_status.node_id)
                        && !leader.learners.contains(&node_status.node_id)
                });
            let role = if removed {
                "removed"
            } else {
                group.role.as_str()
            };
            let lag = if group.role == Role::Leader || removed {
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
                role.to_owned(),
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
    if !status.health.groups.is_empty() {
        out.push('\n');
        out.push_str(&render_groups(&status.health));
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "health: {}: {}",
        status.health.state.as_str(),
        status.health.summary
    );
    for group in &status.health.groups {
        if let Some(problem) = &group.problem {
            let _ = writeln!(out, "  group {}: {problem}", group.group_id);
        }
        for risk in &group.risks {
            let _ = writeln!(out, "  group {}: {risk}", group.group_id);
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

/// One row per group: its leader, members and state.
fn render_groups(health: &Health) -> String {
    let ids = |ids: &[u64]| {
        if ids.is_empty() {
            "-".to_owned()
        } else {
            ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        }
    };
    let optional = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut rows: Vec<Vec<String>> = vec![
        [
            "GROUP", "LEADER", "TERM", "VOTERS", "LEARNERS", "SPARE", "STATE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for group in &health.groups {
        rows.push(vec![
            group.group_id.to_string(),
            optional(group.leader_id),
            optional(group.term),
            ids(&group.voters),
            ids(&group.learners),
            group.failures_tolerated.to_string(),
            group.state.as_str().to_lowercase(),
        ]);
    }
    format_rows(&rows)
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
            replication_factor: 3,
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

    /// Leader 1 of both groups, with every voter caught up.
    fn caught_up_leader(id: u64) -> Vec<GroupStatus> {
        let mut groups = leader_of_both(id);
        for group in &mut groups {
            for replication in &mut group.replication {
                replication.matched_index = Some(120);
                replication.lag_entries = 0;
            }
        }
        groups
    }

    #[test]
    fn a_cluster_with_every_voter_up_and_caught_up_is_ok() {
        let status = ClusterStatus::from_answers(
            vec![
                answer(1, caught_up_leader(1)),
                answer(2, follower_of_both(1)),
                answer(3, follower_of_both(1)),
            ],
            &known_ids(),
        );
        assert_eq!(status.health.state, HealthState::Ok, "{:?}", status.health);
        assert!(status.health.healthy);
        assert_eq!(status.health.groups[1].failures_tolerated, 1);
    }

    #[test]
    fn a_cluster_with_two_of_three_voters_up_is_degraded_and_names_the_missing_node() {
        let status = ClusterStatus::from_answers(
            vec![
                answer(1, caught_up_leader(1)),
                answer(2, follower_of_both(1)),
                unreachable(3),
            ],
            &known_ids(),
        );
        assert!(status.health.healthy, "{:?}", status.health);
        assert_eq!(status.health.state, HealthState::Degraded);
        assert_eq!(status.health.unreachable, vec!["3".to_owned()]);
        let group = &status.health.groups[1];
        assert_eq!(group.acknowledged_by, vec![1, 2]);
        assert_eq!(group.failures_tolerated, 0);
        assert_eq!(
            group.risks,
            vec![
                "voter 3 is unreachable".to_owned(),
                "it can lose no more voters: one more failure stops its writes".to_owned(),
            ]
        );
        assert_eq!(
            status.health.summary,
            "every group has a leader, but 2 of 2 groups have less redundancy than the \
             replication factor (3) gives; 1 node(s) unreachable: 3"
        );
    }

    #[test]
    fn a_group_down_to_one_voter_is_degraded_even_when_that_voter_leads() {
        let mut groups = caught_up_leader(1);
        for group in &mut groups {
            group.voters = vec![1];
            group.replication.clear();
        }
        let status = ClusterStatus::from_answers(vec![answer(1, groups)], &known_ids());
        assert_eq!(status.health.state, HealthState::Degraded);
        assert!(
            status.health.groups[0]
                .risks
                .contains(&"it has 1 voter(s), fewer than the replication factor 3".to_owned()),
            "{:?}",
            status.health.groups[0]
        );
    }

    #[test]
    fn a_lagging_or_silent_voter_degrades_its_group() {
        let mut groups = caught_up_leader(1);
        groups[1].replication[1].lag_entries = LAG_ENTRIES_DEGRADED + 1;
        let mut third = follower_of_both(1);
        third[0].leader_id = None;
        let status = ClusterStatus::from_answers(
            vec![
                answer(1, groups),
                answer(2, follower_of_both(1)),
                answer(3, third),
            ],
            &known_ids(),
        );
        assert_eq!(status.health.groups[0].state, HealthState::Degraded);
        assert_eq!(
            status.health.groups[0].risks[0],
            "voter 3 does not follow leader 1"
        );
        assert_eq!(
            status.health.groups[1].risks[0],
            "voter 3 lags 1001 entries behind the leader"
        );
    }

    #[test]
    fn a_single_node_cluster_asked_for_is_ok() {
        let mut groups = caught_up_leader(1);
        for group in &mut groups {
            group.voters = vec![1];
            group.replication.clear();
        }
        let mut only = node(1, groups);
        only.replication_factor = 1;
        let status = ClusterStatus::from_answers(
            vec![("127.0.0.1:7001".into(), Ok(only))],
            &BTreeMap::new(),
        );
        assert_eq!(status.health.state, HealthState::Ok, "{:?}", status.health);
    }

    #[test]
    fn nodes_that_predate_the_recorded_factor_expect_min_3_nodes() {
        let mut old = node(1, caught_up_leader(1));
        old.replication_factor = 0;
        let status = ClusterStatus::from_answers(
            vec![
                ("127.0.0.1:7001".into(), Ok(old)),
                unreachable(2),
                unreachable(3),
            ],
            &known_ids(),
        );
        assert_eq!(status.health.replication_factor, 3);
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
        assert_eq!(status.health.state, HealthState::Unavailable);
        let group = &status.health.groups[1];
        assert_eq!(
            group.problem.as_deref(),
            Some(
                "leader 1 (term 3) is acknowledged by only 1 of 3 voters, 2 needed: voter(s) 2, \
                 3 do not follow it (down, partitioned, or in another term)"
            )
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
        assert_eq!(status.health.state, HealthState::NotInitialized);
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

GROUP  LEADER  TERM  VOTERS  LEARNERS  SPARE  STATE
0      1       2     1,2,3   -         0      degraded
1      1       3     1,2,3   -         0      degraded

health: DEGRADED: every group has a leader, but 2 of 2 groups have less redundancy than the replication factor (3) gives; 1 node(s) unreachable: 3
  group 0: voter 3 is unreachable
  group 0: it can lose no more voters: one more failure stops its writes
  group 1: voter 3 is unreachable
  group 1: it can lose no more voters: one more failure stops its writes
  unreachable: cannot reach a martelo node at 127.0.0.1:7003 (connection refused); is the node running, and is the address right?
";
        assert_eq!(render_table(&status), expected);
    }

    #[test]
    fn a_replica_its_leader_no_longer_lists_shows_as_removed() {
        let mut groups = caught_up_leader(1);
        for group in &mut groups {
            group.voters = vec![1, 2, 4];
        }
        let status = ClusterStatus::from_answers(
            vec![
                answer(1, groups),
                answer(2, follower_of_both(1)),
                answer(3, follower_of_both(1)),
            ],
            &known_ids(),
        );
        let table = render_table(&status);
        let third: Vec<&str> = table
            .lines()
            .filter(|line| line.starts_with("3 "))
            .collect();
        assert_eq!(third.len(), 2, "{table}");
        assert!(third.iter().all(|line| line.contains("removed")), "{table}");
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
