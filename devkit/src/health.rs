//! Readiness, cluster init and health, through the client library's
//! [`martelo_client::admin::Admin`]: the same `Status` and `InitCluster` operations that
//! `martelo status` and `martelo cluster init` run.
//!
//! - A node is *ready* when [`Admin::node_status`] answers.
//! - [`LocalCluster::init`] is [`Admin::init_cluster`] on the first node, retried while the
//!   node answers with a retryable error, then [`LocalCluster::wait_healthy`].
//! - *Healthy* is judged by [`check_health`] over a [`ClusterStatus`] built only from the
//!   nodes the kit runs and has not paused (the fault suite asks while others are killed or
//!   frozen). On top of the Admin verdict (every group has a leader acknowledged by a
//!   majority of its voters; `Degraded` is fine, since a stopped voter is expected to be
//!   missing), the kit asks for a settled cluster: every replica names the same leader, and
//!   that leader answers and leads.
//!
//! Spawning and signals are in [`crate::process`]; this module only asks nodes questions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use martelo_client::admin::status::{GroupReport, NodeStatus, Role};
use martelo_client::admin::{Admin, AdminOptions, ClusterStatus, ErrorReport, HealthState, Layout};
use martelo_client::{ClientError, ClientErrorCode};
use martelo_proto::{ErrorCode, StatusResponse};
use martelo_types::NodeId;
use tokio::time::Instant;

use crate::error::LocalError;
use crate::logs::{LOG_TAIL_LINES_MAX, read_log_tail};
use crate::process::NodeInfo;
use crate::{LocalCluster, POLL_INTERVAL_MAX, POLL_INTERVAL_MIN};

/// Deadline of one TCP connect to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of one `Status`; a paused node costs this much per probe.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// The Admin timeouts the kit uses: short probes, since nodes are local.
pub(crate) fn admin_options(init_timeout: Duration) -> AdminOptions {
    AdminOptions {
        status_timeout: STATUS_TIMEOUT,
        connect_timeout: CONNECT_TIMEOUT,
        init_timeout,
        ..AdminOptions::default()
    }
}

/// What [`LocalCluster::init`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitOutcome {
    /// A new cluster was formed with this placement.
    Initialized(Layout),
    /// Node 1 already held cluster state: the nodes were restarted from their data dirs.
    AlreadyInitialized,
}

/// A healthy cluster, as [`check_health`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterHealth {
    pub shard_count: u32,
    /// The leader of every group, by group id (0 is the meta group).
    pub leaders: BTreeMap<u64, NodeId>,
    /// The Admin verdict over the answering nodes: `Ok`, or `Degraded` while a voter is
    /// stopped or paused.
    pub state: HealthState,
}

/// Why the cluster is not healthy (see [`check_health`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HealthProblem {
    #[error("no node is running")]
    NoNodeRunning,
    /// A node the kit runs (and has not paused) did not answer `Status`.
    /// `error.message` names the address.
    #[error("{} did not answer: {}", node_label(*node_id, address), error.message)]
    NodeDidNotAnswer {
        node_id: Option<NodeId>,
        address: String,
        error: ErrorReport,
    },
    /// A member (an initially started node) is not in the report at all.
    #[error("node {node_id} did not answer")]
    MemberMissing { node_id: NodeId },
    #[error("node {node_id} is not initialized")]
    NotInitialized { node_id: NodeId },
    #[error("no node is initialized")]
    NoNodeInitialized,
    #[error("nodes disagree on the shard count: {shard_counts:?}")]
    ShardCountsDisagree { shard_counts: BTreeSet<u32> },
    #[error("an initialized node reports shard count 0")]
    ZeroShardCount,
    #[error("no answering node holds group {group_id}")]
    GroupNotHeld { group_id: u64 },
    #[error("node {node_id} knows no leader of group {group_id}")]
    NoLeaderKnown { node_id: NodeId, group_id: u64 },
    /// Replicas name different leaders: `(node, the leader it names)`, by node.
    #[error(
        "nodes disagree on the leader of group {group_id}: {}",
        LeaderViews(views)
    )]
    LeadersDisagree {
        group_id: u64,
        views: Vec<(NodeId, NodeId)>,
    },
    #[error(
        "node {leader_id} is named leader of group {group_id} but is {}",
        role.as_str()
    )]
    LeaderNotLeading {
        group_id: u64,
        leader_id: NodeId,
        role: Role,
    },
    /// Followers still name a leader that was killed or paused, until they elect another.
    #[error(
        "node {leader_id}, named leader of group {group_id}, did not answer as a replica of it"
    )]
    LeaderDidNotAnswer { group_id: u64, leader_id: NodeId },
    /// The Admin verdict on the group is `Unavailable`: no leader acknowledged by a
    /// majority of its voters among the answering nodes, so it takes no writes.
    #[error("group {group_id} is unavailable: {problem}")]
    GroupUnavailable { group_id: u64, problem: String },
}

fn node_label(node_id: Option<NodeId>, address: &str) -> String {
    match node_id {
        Some(id) => format!("node {id}"),
        None => format!("the node at {address}"),
    }
}

struct LeaderViews<'a>(&'a [(NodeId, NodeId)]);

impl fmt::Display for LeaderViews<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (node_id, leader_id)) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str(", ")?;
            }
            write!(formatter, "node {node_id} says {leader_id}")?;
        }
        Ok(())
    }
}

/// Readiness, init and health.
impl LocalCluster {
    /// Calls `InitCluster` on node 1 with every initially started node (through
    /// [`Admin::init_cluster`], which also waits until every group has a leader), then
    /// waits until the cluster is healthy. A node that already holds cluster state answers
    /// `cluster_already_initialized`, which is returned as [`InitOutcome::AlreadyInitialized`]:
    /// its cluster was restarted from the data dirs.
    pub async fn init(&self) -> Result<InitOutcome, LocalError> {
        let first = *self
            .initial_ids
            .first()
            .ok_or(LocalError::UnknownNode(NodeId(1)))?;
        let info = self.node(first).ok_or(LocalError::UnknownNode(first))?;
        let nodes: Vec<_> = self
            .initial_ids
            .iter()
            .filter_map(|&id| self.node(id))
            .map(|node| node.node_address())
            .collect();
        // Small test clusters (1 or 2 nodes) ask for their smaller groups explicitly.
        let replicas = u32::try_from(self.initial_ids.len().min(3)).unwrap_or(3);
        let deadline = Instant::now() + self.config.healthy_timeout;
        let mut interval = POLL_INTERVAL_MIN;
        let outcome = loop {
            // Each attempt may use what is left of the deadline, for the call and the wait.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let admin = Admin::new(admin_options(remaining));
            let answer = admin
                .init_cluster(&info.address, &nodes, self.config.shard_count, replicas)
                .await;
            // A timeout or a lost connection may hide an applied InitCluster; the retry
            // then answers `cluster_already_initialized`, which is fine here.
            let error = match answer {
                Ok(layout) => break InitOutcome::Initialized(layout),
                Err(error) => error,
            };
            let code = error.code();
            if code == ClientErrorCode::Server(ErrorCode::ClusterAlreadyInitialized) {
                break InitOutcome::AlreadyInitialized;
            }
            // A deadline is the whole budget spent (the call or the wait for leaders).
            let retry = error.is_retryable() && code != ClientErrorCode::DeadlineExceeded;
            if !retry || Instant::now() + interval > deadline {
                return Err(LocalError::Init {
                    node_id: first,
                    address: info.address.clone(),
                    error: Box::new(error),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(POLL_INTERVAL_MAX);
        };
        self.wait_healthy(deadline.saturating_duration_since(Instant::now()))
            .await?;
        Ok(outcome)
    }

    /// Waits until every running, unpaused node answers `Status` and [`check_health`]
    /// passes. Killed, stopped and paused nodes are left out, so this also says when the
    /// survivors of a fault have elected leaders.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<ClusterHealth, LocalError> {
        let deadline = Instant::now() + timeout;
        let mut interval = POLL_INTERVAL_MIN;
        loop {
            let (status, members) = self.answering_status().await;
            let problem = match check_health(&status, &members) {
                Ok(health) => return Ok(health),
                Err(problem) => problem,
            };
            if Instant::now() + interval > deadline {
                return Err(LocalError::Unhealthy { timeout, problem });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(POLL_INTERVAL_MAX);
        }
    }

    /// The admin `Status` of one node.
    pub async fn status(&self, id: NodeId) -> Result<StatusResponse, LocalError> {
        let info = self.node(id).ok_or(LocalError::UnknownNode(id))?;
        self.admin
            .node_status(&info.address)
            .await
            .map_err(|error| LocalError::Status {
                node_id: id,
                address: info.address.clone(),
                error: Box::new(error),
            })
    }

    /// Probes `Status` until it answers, failing early (with the log's tail) if the process
    /// exits.
    pub(crate) async fn wait_ready(&self, id: NodeId, deadline: Instant) -> Result<(), LocalError> {
        let info = self.node(id).ok_or(LocalError::UnknownNode(id))?;
        let started = Instant::now();
        let mut interval = POLL_INTERVAL_MIN;
        loop {
            if !self.is_running(id) {
                let status = self
                    .exit_status(id)
                    .map_or_else(|| "status unknown".to_owned(), |status| status.to_string());
                return Err(LocalError::ExitedBeforeReady {
                    node_id: id,
                    status,
                    log_path: info.log_path.clone(),
                    log_tail: read_log_tail(&info.log_path, LOG_TAIL_LINES_MAX),
                });
            }
            let last_error = match self.admin.node_status(&info.address).await {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            if Instant::now() + interval > deadline {
                return Err(LocalError::NotReady {
                    node_id: id,
                    address: info.address.clone(),
                    timeout: deadline.saturating_duration_since(started),
                    last_error: Box::new(last_error),
                    log_path: info.log_path.clone(),
                    log_tail: read_log_tail(&info.log_path, LOG_TAIL_LINES_MAX),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(POLL_INTERVAL_MAX);
        }
    }

    /// The Admin report over the running, unpaused nodes only (each asked directly, none
    /// discovered through address books), and the initial members among them.
    async fn answering_status(&self) -> (ClusterStatus, BTreeSet<NodeId>) {
        let probed: Vec<NodeInfo> = {
            let mut nodes = self.lock_nodes();
            nodes
                .values_mut()
                .filter_map(|slot| slot.poll_answering().then(|| slot.info.clone()))
                .collect()
        };
        let answers: Vec<(String, Result<StatusResponse, ClientError>)> =
            futures::future::join_all(probed.iter().map(|info| async move {
                (
                    info.address.clone(),
                    self.admin.node_status(&info.address).await,
                )
            }))
            .await;
        let known_ids: BTreeMap<String, NodeId> = probed
            .iter()
            .map(|info| (info.address.clone(), info.id))
            .collect();
        let members = probed
            .iter()
            .map(|info| info.id)
            .filter(|id| self.initial_ids.contains(id))
            .collect();
        (ClusterStatus::from_answers(answers, &known_ids), members)
    }
}

/// The health rule, over an Admin report of the nodes that should be up (running and not
/// paused); `members` are those among them that must hold cluster state.
///
/// Healthy means: every reported node answered; every member is initialized; the
/// initialized nodes agree on the shard count; every group `0..=shard_count` is held by at
/// least one answering node; every replica of a group names a leader, all the same one;
/// that leader answered and reports itself leader of the group; and the Admin verdict on
/// the group is not `Unavailable` (a majority of its voters acknowledge the leader). The
/// leader rules keep a crashed leader, which its followers still name until their election
/// timeout, from counting as healthy.
pub fn check_health(
    status: &ClusterStatus,
    members: &BTreeSet<NodeId>,
) -> Result<ClusterHealth, HealthProblem> {
    if status.nodes.is_empty() {
        return Err(HealthProblem::NoNodeRunning);
    }
    // `from_answers` gives an unreachable node its error, and an answering one its status.
    let mut answered: BTreeMap<NodeId, &NodeStatus> = BTreeMap::new();
    for node in &status.nodes {
        if let Some(error) = &node.error {
            return Err(HealthProblem::NodeDidNotAnswer {
                node_id: node.node_id,
                address: node.address.clone(),
                error: error.clone(),
            });
        }
        if let (Some(node_id), Some(node_status)) = (node.node_id, &node.status) {
            answered.insert(node_id, node_status);
        }
    }
    for &node_id in members {
        match answered.get(&node_id) {
            None => return Err(HealthProblem::MemberMissing { node_id }),
            Some(node_status) if !node_status.initialized => {
                return Err(HealthProblem::NotInitialized { node_id });
            }
            Some(_) => {}
        }
    }
    let shard_counts: BTreeSet<u32> = answered
        .values()
        .filter(|node_status| node_status.initialized)
        .map(|node_status| node_status.shard_count)
        .collect();
    let shard_count = match shard_counts.len() {
        0 => return Err(HealthProblem::NoNodeInitialized),
        1 => *shard_counts.first().unwrap_or(&0),
        _ => return Err(HealthProblem::ShardCountsDisagree { shard_counts }),
    };
    if shard_count == 0 {
        return Err(HealthProblem::ZeroShardCount);
    }
    let mut leaders = BTreeMap::new();
    let mut state = HealthState::Ok;
    for group_id in 0..=u64::from(shard_count) {
        let leader_id = settled_leader(status, &answered, group_id)?;
        let verdict = status
            .health
            .groups
            .iter()
            .find(|group| group.group_id == group_id);
        if let Some(verdict) = verdict {
            if !verdict.healthy {
                return Err(HealthProblem::GroupUnavailable {
                    group_id,
                    problem: verdict
                        .problem
                        .clone()
                        .unwrap_or_else(|| verdict.state.as_str().to_owned()),
                });
            }
            state = state.max(verdict.state);
        }
        leaders.insert(group_id, leader_id);
    }
    Ok(ClusterHealth {
        shard_count,
        leaders,
        state,
    })
}

/// The leader every replica of `group_id` names, if they all name the same one and it
/// answered as the group's leader.
fn settled_leader(
    status: &ClusterStatus,
    answered: &BTreeMap<NodeId, &NodeStatus>,
    group_id: u64,
) -> Result<NodeId, HealthProblem> {
    let all: Vec<(NodeId, &GroupReport)> = answered
        .iter()
        .flat_map(|(&node_id, node_status)| {
            node_status
                .groups
                .iter()
                .filter(move |group| group.group_id == group_id)
                .map(move |group| (node_id, group))
        })
        .collect();
    if all.is_empty() {
        return Err(HealthProblem::GroupNotHeld { group_id });
    }
    // A replica left behind on a node removed from the group (it is not told) knows no
    // leader forever; the members are those of the leader with the highest term.
    let group_members: Option<BTreeSet<NodeId>> = status
        .leader_report(group_id)
        .map(|(_, leader)| {
            leader
                .voters
                .iter()
                .chain(&leader.learners)
                .copied()
                .collect()
        })
        .filter(|group_members: &BTreeSet<NodeId>| !group_members.is_empty());
    let replicas: Vec<(NodeId, Option<NodeId>, Role)> = all
        .iter()
        .filter(|(node_id, _)| {
            group_members
                .as_ref()
                .is_none_or(|group_members| group_members.contains(node_id))
        })
        .map(|&(node_id, group)| (node_id, group.leader_id, group.role))
        .collect();
    let mut views = Vec::with_capacity(replicas.len());
    for &(node_id, leader_id, _) in &replicas {
        match leader_id {
            Some(leader_id) => views.push((node_id, leader_id)),
            None => return Err(HealthProblem::NoLeaderKnown { node_id, group_id }),
        }
    }
    let named: BTreeSet<NodeId> = views.iter().map(|&(_, leader_id)| leader_id).collect();
    let leader_id = match (named.first(), named.len()) {
        (Some(&leader_id), 1) => leader_id,
        _ => return Err(HealthProblem::LeadersDisagree { group_id, views }),
    };
    let leader_role = replicas
        .iter()
        .find(|(node_id, _, _)| *node_id == leader_id)
        .map(|&(_, _, role)| role);
    match leader_role {
        Some(Role::Leader) => Ok(leader_id),
        Some(role) => Err(HealthProblem::LeaderNotLeading {
            group_id,
            leader_id,
            role,
        }),
        None => Err(HealthProblem::LeaderDidNotAnswer {
            group_id,
            leader_id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use martelo_proto::{GroupStatus, Node, RaftRole};

    use super::*;

    fn address(node_id: u64) -> String {
        format!("127.0.0.1:{}", 7000 + node_id)
    }

    fn group(group_id: u64, leader_id: Option<u64>, role: RaftRole) -> GroupStatus {
        GroupStatus {
            group_id,
            role: role.into(),
            term: 1,
            leader_id,
            voters: vec![1, 2, 3],
            ..GroupStatus::default()
        }
    }

    fn uninitialized(node_id: u64) -> StatusResponse {
        StatusResponse {
            node: Some(Node {
                node_id,
                raft_address: address(node_id),
                api_address: address(node_id),
            }),
            ..StatusResponse::default()
        }
    }

    /// A node's status holding groups `0..=shard_count`, all led by `leader`, with voters
    /// 1, 2 and 3.
    fn node_status(node_id: u64, shard_count: u32, leader: u64) -> StatusResponse {
        let role = if node_id == leader {
            RaftRole::Leader
        } else {
            RaftRole::Follower
        };
        StatusResponse {
            initialized: true,
            shard_count,
            replication_factor: 3,
            groups: (0..=u64::from(shard_count))
                .map(|group_id| group(group_id, Some(leader), role))
                .collect(),
            ..uninitialized(node_id)
        }
    }

    fn three_nodes_led_by(leader: u64) -> BTreeMap<u64, StatusResponse> {
        (1..=3).map(|id| (id, node_status(id, 2, leader))).collect()
    }

    /// The Admin report of the nodes that answered with `statuses`.
    fn report(statuses: &BTreeMap<u64, StatusResponse>) -> ClusterStatus {
        let answers = statuses
            .iter()
            .map(|(&id, status)| (address(id), Ok(status.clone())))
            .collect();
        ClusterStatus::from_answers(answers, &BTreeMap::new())
    }

    fn members(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().copied().map(NodeId).collect()
    }

    fn problem(statuses: &BTreeMap<u64, StatusResponse>, ids: &[u64]) -> HealthProblem {
        check_health(&report(statuses), &members(ids)).expect_err("unhealthy")
    }

    #[test]
    fn healthy_when_every_replica_names_the_same_answering_leader() {
        let health =
            check_health(&report(&three_nodes_led_by(2)), &members(&[1, 2, 3])).expect("healthy");
        assert_eq!(health.shard_count, 2);
        assert_eq!(
            health.leaders,
            BTreeMap::from([(0, NodeId(2)), (1, NodeId(2)), (2, NodeId(2))])
        );
        assert_eq!(health.state, HealthState::Ok);
    }

    #[test]
    fn unhealthy_when_no_node_runs() {
        let problem = problem(&BTreeMap::new(), &[]);
        assert_eq!(problem, HealthProblem::NoNodeRunning);
    }

    #[test]
    fn unhealthy_when_a_member_is_not_initialized() {
        let mut statuses = three_nodes_led_by(1);
        statuses.insert(3, uninitialized(3));
        let problem = problem(&statuses, &[1, 2, 3]);
        assert_eq!(problem.to_string(), "node 3 is not initialized");
    }

    #[test]
    fn unhealthy_when_a_running_node_did_not_answer() {
        let mut answers: Vec<(String, Result<StatusResponse, ClientError>)> = Vec::new();
        for (id, status) in three_nodes_led_by(1) {
            answers.push((address(id), Ok(status)));
        }
        answers[2].1 = Err(ClientError::Unreachable {
            address: address(3),
            reason: "connection refused".to_owned(),
        });
        let known_ids = BTreeMap::from([(address(3), NodeId(3))]);
        let status = ClusterStatus::from_answers(answers, &known_ids);
        let problem = check_health(&status, &members(&[1, 2, 3])).expect_err("unhealthy");
        assert!(
            matches!(
                &problem,
                HealthProblem::NodeDidNotAnswer { node_id: Some(NodeId(3)), error, .. }
                    if error.code == "unreachable"
            ),
            "{problem:?}"
        );
        let message = problem.to_string();
        assert!(
            message.starts_with(
                "node 3 did not answer: cannot reach a martelo node at 127.0.0.1:7003"
            ),
            "{message}"
        );
    }

    #[test]
    fn unhealthy_when_a_member_is_missing_from_the_report() {
        let mut statuses = three_nodes_led_by(1);
        statuses.remove(&3);
        let problem = problem(&statuses, &[1, 2, 3]);
        assert_eq!(problem.to_string(), "node 3 did not answer");
    }

    #[test]
    fn unhealthy_when_no_node_is_initialized() {
        let statuses = BTreeMap::from([(4, uninitialized(4))]);
        assert_eq!(problem(&statuses, &[]), HealthProblem::NoNodeInitialized);
    }

    #[test]
    fn an_added_uninitialized_node_holding_no_group_does_not_spoil_health() {
        let mut statuses = three_nodes_led_by(1);
        statuses.insert(4, uninitialized(4));
        assert!(check_health(&report(&statuses), &members(&[1, 2, 3])).is_ok());
    }

    #[test]
    fn a_replica_left_on_a_removed_node_does_not_spoil_health() {
        let mut statuses = three_nodes_led_by(1);
        let mut removed = node_status(4, 2, 1);
        removed.groups[1].leader_id = None;
        removed.groups[1].role = RaftRole::Candidate.into();
        removed.groups[1].voters = vec![1, 2, 3, 4];
        statuses.insert(4, removed);
        assert!(check_health(&report(&statuses), &members(&[1, 2, 3, 4])).is_ok());
        // The same replica in the membership is a real problem.
        for group in &mut statuses.get_mut(&1).expect("leader").groups {
            group.voters = vec![1, 2, 3, 4];
        }
        let problem = problem(&statuses, &[1, 2, 3, 4]);
        assert_eq!(problem.to_string(), "node 4 knows no leader of group 1");
    }

    #[test]
    fn unhealthy_when_a_replica_knows_no_leader() {
        let mut statuses = three_nodes_led_by(1);
        statuses.get_mut(&3).expect("node 3").groups[1].leader_id = None;
        let problem = problem(&statuses, &[1, 2, 3]);
        assert_eq!(problem.to_string(), "node 3 knows no leader of group 1");
    }

    #[test]
    fn unhealthy_when_replicas_disagree_on_the_leader() {
        let mut statuses = three_nodes_led_by(1);
        statuses.get_mut(&3).expect("node 3").groups[2].leader_id = Some(3);
        let problem = problem(&statuses, &[1, 2, 3]);
        assert_eq!(
            problem.to_string(),
            "nodes disagree on the leader of group 2: node 1 says 1, node 2 says 1, \
             node 3 says 3"
        );
    }

    #[test]
    fn unhealthy_while_followers_still_name_a_crashed_leader() {
        // Node 1 was killed, so it is not probed; 2 and 3 still follow it.
        let mut statuses = three_nodes_led_by(1);
        statuses.remove(&1);
        let problem = problem(&statuses, &[2, 3]);
        assert_eq!(
            problem.to_string(),
            "node 1, named leader of group 0, did not answer as a replica of it"
        );
    }

    #[test]
    fn healthy_but_degraded_once_survivors_elect_a_new_leader() {
        // Node 1 is stopped: the Admin verdict is degraded (a voter is missing), which is
        // healthy for the kit.
        let mut statuses = three_nodes_led_by(2);
        statuses.remove(&1);
        let health = check_health(&report(&statuses), &members(&[2, 3])).expect("healthy");
        assert_eq!(health.state, HealthState::Degraded);
        assert_eq!(
            health.leaders,
            BTreeMap::from([(0, NodeId(2)), (1, NodeId(2)), (2, NodeId(2))])
        );
    }

    #[test]
    fn unhealthy_when_the_leader_has_no_majority_of_running_voters() {
        // Nodes 2 and 3 are paused: node 1 still leads and names itself, but no write of
        // its groups can commit.
        let mut statuses = three_nodes_led_by(1);
        statuses.retain(|&id, _| id == 1);
        let problem = problem(&statuses, &[1]);
        assert!(
            matches!(problem, HealthProblem::GroupUnavailable { group_id: 0, .. }),
            "{problem:?}"
        );
        assert!(
            problem
                .to_string()
                .starts_with("group 0 is unavailable: leader 1 (term 1) is acknowledged by only 1"),
            "{problem}"
        );
    }

    #[test]
    fn unhealthy_when_the_named_leader_does_not_lead() {
        let mut statuses = three_nodes_led_by(1);
        statuses.get_mut(&1).expect("node 1").groups[0].role = RaftRole::Candidate.into();
        let problem = problem(&statuses, &[1, 2, 3]);
        assert_eq!(
            problem.to_string(),
            "node 1 is named leader of group 0 but is candidate"
        );
    }

    #[test]
    fn unhealthy_when_a_group_is_held_by_no_answering_node() {
        let mut statuses = three_nodes_led_by(1);
        for status in statuses.values_mut() {
            status.groups.retain(|group| group.group_id != 1);
        }
        let problem = problem(&statuses, &[1, 2, 3]);
        assert_eq!(problem.to_string(), "no answering node holds group 1");
    }

    #[test]
    fn groups_spread_over_more_nodes_than_replicas_are_healthy() {
        // Five nodes: node 4 and 5 alone hold group 2, which nodes 1 to 3 do not.
        let mut statuses = three_nodes_led_by(1);
        for status in statuses.values_mut() {
            status.groups.retain(|group| group.group_id != 2);
        }
        for id in [4, 5] {
            let mut status = node_status(id, 2, 4);
            status.groups.retain(|group| group.group_id == 2);
            status.groups[0].voters = vec![4, 5];
            statuses.insert(id, status);
        }
        let health = check_health(&report(&statuses), &members(&[1, 2, 3, 4, 5])).expect("healthy");
        assert_eq!(
            health.leaders,
            BTreeMap::from([(0, NodeId(1)), (1, NodeId(1)), (2, NodeId(4))])
        );
    }

    #[test]
    fn unhealthy_when_nodes_disagree_on_the_shard_count() {
        let mut statuses = three_nodes_led_by(1);
        statuses.get_mut(&2).expect("node 2").shard_count = 4;
        let problem = problem(&statuses, &[1, 2, 3]);
        assert_eq!(
            problem.to_string(),
            "nodes disagree on the shard count: {2, 4}"
        );
    }
}
