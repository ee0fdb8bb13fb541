//! The health verdict of `martelo status`: each group's state and the cluster's, judged from
//! the nodes' reports ([`super::status`]). Pure.
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
//!
//! What does not live here: the report the verdict is drawn from and its JSON shape
//! ([`super::status`]), the table printed from both (the CLI).

use std::fmt::Write as _;

use martelo_types::NodeId;
use serde::Serialize;

use super::status::{GroupReport, NodeReport, Role, group_ids, replicas};

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
    pub leader_id: Option<NodeId>,
    pub term: Option<u64>,
    /// The voters in the leader's membership (or in any replica's, without a leader).
    pub voters: Vec<NodeId>,
    /// The learners (non-voting replicas) in that membership.
    pub learners: Vec<NodeId>,
    /// The voters that name the leader as leader, the leader included.
    pub acknowledged_by: Vec<NodeId>,
    /// How many more voters the group can lose and still elect a leader (0 when it has
    /// none now).
    pub failures_tolerated: u64,
    /// Why it is unavailable, for people; `None` otherwise.
    pub problem: Option<String>,
    /// Why it is degraded, for people; empty otherwise.
    pub risks: Vec<String>,
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
pub(super) fn assess(shard_count: u32, nodes: &[NodeReport]) -> Health {
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
    let replicas: Vec<(NodeId, &GroupReport)> = replicas(nodes, group).collect();
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
    let follows = |voter: NodeId| {
        voter == leader_id
            || replicas
                .iter()
                .any(|(node, report)| *node == voter && report.leader_id == Some(leader_id))
    };
    let acknowledged_by: Vec<NodeId> = voters.iter().copied().filter(|&v| follows(v)).collect();
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
                .map(NodeId::to_string)
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
    let unreachable = |voter: NodeId| {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use martelo_proto::{RaftRole, StatusResponse};

    use super::super::fixtures::*;
    use super::super::status::ClusterStatus;
    use super::*;
    use crate::error::ClientError;

    /// The cluster status made of `answers` from the three known nodes.
    fn known_cluster(answers: Vec<(String, Result<StatusResponse, ClientError>)>) -> ClusterStatus {
        ClusterStatus::from_answers(answers, &known_ids())
    }

    #[test]
    fn a_cluster_with_every_voter_up_and_caught_up_is_ok() {
        let status = known_cluster(vec![
            answer(1, caught_up_leader(1)),
            answer(2, follower_of_both(1)),
            answer(3, follower_of_both(1)),
        ]);
        assert_eq!(status.health.state, HealthState::Ok, "{:?}", status.health);
        assert!(status.health.healthy);
        assert_eq!(status.health.groups[1].failures_tolerated, 1);
    }

    #[test]
    fn a_cluster_with_two_of_three_voters_up_is_degraded_and_names_the_missing_node() {
        let status = known_cluster(vec![
            answer(1, caught_up_leader(1)),
            answer(2, follower_of_both(1)),
            unreachable(3),
        ]);
        assert!(status.health.healthy, "{:?}", status.health);
        assert_eq!(status.health.state, HealthState::Degraded);
        assert_eq!(status.health.unreachable, vec!["3".to_owned()]);
        let group = &status.health.groups[1];
        assert_eq!(group.acknowledged_by, vec![NodeId(1), NodeId(2)]);
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
        let status = known_cluster(vec![answer(1, groups)]);
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
        let status = known_cluster(vec![
            answer(1, groups),
            answer(2, follower_of_both(1)),
            answer(3, third),
        ]);
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
        let status = known_cluster(vec![
            ("127.0.0.1:7001".into(), Ok(old)),
            unreachable(2),
            unreachable(3),
        ]);
        assert_eq!(status.health.replication_factor, 3);
    }

    #[test]
    fn a_leader_that_only_it_believes_in_is_unhealthy() {
        let mut partitioned = follower_of_both(1);
        partitioned[1] = group(1, RaftRole::Candidate, None, 4);
        let status = known_cluster(vec![
            answer(1, leader_of_both(1)),
            answer(2, partitioned),
            unreachable(3),
        ]);
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
        let status = known_cluster(vec![answer(1, vec![group(0, RaftRole::Follower, None, 2)])]);
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
        let status = uninitialized_cluster();
        assert_eq!(status.shard_count, 0);
        assert!(!status.health.healthy);
        assert_eq!(status.health.state, HealthState::NotInitialized);
        assert!(status.health.summary.contains("martelo cluster init"));
    }
}
