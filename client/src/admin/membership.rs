//! Membership changes: [`Admin::add_node`] (open a replica, add a learner, promote it),
//! [`Admin::remove_node`] and [`Admin::transfer_leader`], each at the group's leader,
//! following hints, with a per-group [`MembershipReport`]. A change that may have reached a
//! node is not retried (`change_verdict`): it may have happened.
//!
//! What does not live here: bootstrapping a cluster (`super::init`), the survey that finds
//! the leaders ([`Admin::cluster_status`]), the attempt loop (`crate::client::attempts`).

use std::sync::Mutex;
use std::time::Duration;

use martelo_engine::GroupId;
use martelo_proto::admin_api_client::AdminApiClient;
use martelo_proto::{
    AddLearnerRequest, AdminTransferLeaderRequest, ApiError, MembershipChanged, MembershipResponse,
    Node, OpenGroupRequest, PromoteVoterRequest, RemoveNodeRequest, admin_transfer_leader_response,
    membership_response, open_group_response,
};
use martelo_types::{NodeAddress, NodeId, ShardCount};
use serde::Serialize;
use tonic::transport::Channel;

use super::status::{ClusterStatus, ErrorReport, GroupReport, node_ids};
use super::{Admin, empty_api_error, wire_node};
use crate::client::attempts::{Exhausted, Served};
use crate::decide::{self, CallError, Failure, Verdict};
use crate::error::ClientError;
use crate::topology::Topology;

/// What a membership operation did, group by group. A failed group does not stop the
/// others; run the command again to finish (every step is idempotent on the node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MembershipReport {
    pub node_id: NodeId,
    pub groups: Vec<GroupChange>,
}

impl MembershipReport {
    /// True when every group's change succeeded.
    pub fn all_ok(&self) -> bool {
        self.groups.iter().all(|group| group.error.is_none())
    }
}

/// One group's part of a membership operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupChange {
    pub group_id: u64,
    /// The last step attempted: `open_group`, `add_learner`, `promote_voter` or
    /// `remove_node`.
    pub step: &'static str,
    /// The membership after the last successful step, from the leader.
    pub log_index: Option<u64>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// Why the step failed; `None` when the group is done.
    pub error: Option<ErrorReport>,
    /// The group was already as asked (a repeated command): nothing was changed.
    pub unchanged: bool,
}

impl GroupChange {
    fn new(group: GroupId, step: &'static str) -> GroupChange {
        GroupChange {
            group_id: group.0,
            step,
            log_index: None,
            voters: Vec::new(),
            learners: Vec::new(),
            error: None,
            unchanged: false,
        }
    }

    /// A group that was already as asked, with its membership from `status`.
    fn unchanged(group: GroupId, step: &'static str, membership: &GroupReport) -> GroupChange {
        GroupChange {
            voters: membership.voters.clone(),
            learners: membership.learners.clone(),
            unchanged: true,
            ..GroupChange::new(group, step)
        }
    }
}

impl Admin {
    /// Adds `node` to `groups` (default: every group, the meta group included): opens an
    /// empty replica on it, adds it as a learner at the leader (waiting until it caught up),
    /// then promotes it to voter unless `promote` is false. Reports each group. The node
    /// serves its client, admin and Raft APIs at its one address.
    pub async fn add_node(
        &self,
        seeds: &[String],
        node: NodeAddress,
        groups: Option<Vec<GroupId>>,
        promote: bool,
    ) -> Result<MembershipReport, ClientError> {
        let survey = self.survey(seeds).await?;
        let shards = survey.shard_count(seeds)?;
        check_new_node(&survey.topology, &node)?;
        let node_id = node.id;
        let node = wire_node(&node);
        let groups = match groups {
            Some(groups) => checked_groups(groups, shards)?,
            None => (0..=u64::from(shards.get())).map(GroupId).collect(),
        };
        let replication_factor = survey.status.health.replication_factor;
        let topology = Mutex::new(survey.topology);
        let mut report = MembershipReport {
            node_id,
            groups: Vec::new(),
        };
        for group in groups {
            let membership = survey.status.membership(group.0);
            let is_voter = membership.is_some_and(|m| m.voters.contains(&node_id));
            let is_learner = membership.is_some_and(|m| m.learners.contains(&node_id));
            // A learner left by an interrupted run is added again: the leader then waits
            // for it to catch up, which the promotion needs anyway.
            let change = match membership {
                // Already done: a repeated `node add` changes nothing and succeeds.
                Some(membership) if is_voter || (is_learner && !promote) => {
                    let step = if is_voter {
                        "promote_voter"
                    } else {
                        "add_learner"
                    };
                    GroupChange::unchanged(group, step, membership)
                }
                _ => {
                    let target = AddTarget {
                        node: &node,
                        group,
                        shards,
                        replication_factor,
                        promote,
                    };
                    self.add_to_group(&topology, target).await
                }
            };
            report.groups.push(change);
        }
        Ok(report)
    }

    async fn add_to_group(&self, topology: &Mutex<Topology>, target: AddTarget<'_>) -> GroupChange {
        let AddTarget {
            node,
            group,
            shards,
            replication_factor,
            promote,
        } = target;
        let mut change = GroupChange::new(group, "open_group");
        if let Err(error) = self
            .open_group(node, group, shards, replication_factor)
            .await
        {
            change.error = Some(ErrorReport::from(&error));
            return change;
        }
        change.step = "add_learner";
        let message = AddLearnerRequest {
            group_id: group.0,
            node: Some(node.clone()),
            wait_for_catch_up: true,
        };
        let added = self
            .change_at_leader(
                topology,
                group,
                self.options.catch_up_timeout,
                message,
                |mut admin, request| async move { admin.add_learner(request).await },
            )
            .await;
        if !record(&mut change, added) || !promote {
            return change;
        }
        change.step = "promote_voter";
        let message = PromoteVoterRequest {
            group_id: group.0,
            node_id: node.node_id,
        };
        let promoted = self
            .change_at_leader(
                topology,
                group,
                self.options.change_timeout,
                message,
                |mut admin, request| async move { admin.promote_voter(request).await },
            )
            .await;
        record(&mut change, promoted);
        change
    }

    async fn open_group(
        &self,
        node: &Node,
        group: GroupId,
        shards: ShardCount,
        replication_factor: u32,
    ) -> Result<(), ClientError> {
        let message = OpenGroupRequest {
            group_id: group.0,
            shard_count: shards.get(),
            voters: Vec::new(),
            replication_factor,
        };
        self.call_at(
            &node.api_address,
            self.options.change_timeout,
            "open group response",
            message,
            |mut admin, request| async move { admin.open_group(request).await },
            |response| {
                response.result.map(|result| match result {
                    open_group_response::Result::Opened(_) => Ok(()),
                    open_group_response::Result::Error(error) => Err(error),
                })
            },
        )
        .await
    }

    /// Removes node `node_id` from `groups` (default: every group it is a voter or learner
    /// of). The node refuses with `quorum_at_risk` when the remaining voters could not form
    /// a healthy majority, unless `force`.
    pub async fn remove_node(
        &self,
        seeds: &[String],
        node_id: NodeId,
        groups: Option<Vec<GroupId>>,
        force: bool,
    ) -> Result<MembershipReport, ClientError> {
        let survey = self.survey(seeds).await?;
        let shards = survey.shard_count(seeds)?;
        // With no --group, the groups it is in: none means it is removed already, and the
        // report is empty (done, nothing to do).
        let groups = match groups {
            Some(groups) => checked_groups(groups, shards)?,
            None => member_groups(&survey.status, node_id),
        };
        let topology = Mutex::new(survey.topology);
        let mut report = MembershipReport {
            node_id,
            groups: Vec::new(),
        };
        for group in groups {
            if let Some(membership) = survey.status.membership(group.0)
                && !membership.voters.contains(&node_id)
                && !membership.learners.contains(&node_id)
            {
                report
                    .groups
                    .push(GroupChange::unchanged(group, "remove_node", membership));
                continue;
            }
            let mut change = GroupChange::new(group, "remove_node");
            let message = RemoveNodeRequest {
                group_id: group.0,
                node_id: node_id.get(),
                force,
            };
            let removed = self
                .change_at_leader(
                    &topology,
                    group,
                    self.options.change_timeout,
                    message,
                    |mut admin, request| async move { admin.remove_node(request).await },
                )
                .await;
            record(&mut change, removed);
            report.groups.push(change);
        }
        Ok(report)
    }

    /// Asks `group`'s leader to hand leadership to `to_node_id`; returns the node that
    /// leads when the call returns (compare it with `to_node_id`: a transfer can fail).
    pub async fn transfer_leader(
        &self,
        seeds: &[String],
        group: GroupId,
        to_node_id: NodeId,
    ) -> Result<NodeId, ClientError> {
        let survey = self.survey(seeds).await?;
        let shards = survey.shard_count(seeds)?;
        checked_groups(vec![group], shards)?;
        let topology = Mutex::new(survey.topology);
        let message = AdminTransferLeaderRequest {
            group_id: group.0,
            to_node_id: to_node_id.get(),
        };
        let served = self
            .at_leader(
                &topology,
                group,
                self.options.change_timeout,
                message,
                |mut admin, request| async move { admin.transfer_leader(request).await },
                |address, answer| {
                    let answer = answer.map(|response| match response.result {
                        Some(admin_transfer_leader_response::Result::LeaderId(leader)) => {
                            Ok(leader)
                        }
                        Some(admin_transfer_leader_response::Result::Error(error)) => Err(error),
                        None => Err(empty_api_error()),
                    });
                    change_verdict(address, answer)
                },
            )
            .await;
        leader_answered(&topology, group, served).map(NodeId)
    }

    /// One membership change at `group`'s leader, following hints, within `timeout`:
    /// `call` sends (a copy of) `message` on each attempt.
    async fn change_at_leader<Req, F, Fut>(
        &self,
        topology: &Mutex<Topology>,
        group: GroupId,
        timeout: Duration,
        message: Req,
        call: F,
    ) -> Result<MembershipChanged, ClientError>
    where
        Req: Clone,
        F: Fn(AdminApiClient<Channel>, tonic::Request<Req>) -> Fut + Copy,
        Fut: Future<Output = Result<tonic::Response<MembershipResponse>, tonic::Status>>,
    {
        let served = self
            .at_leader(
                topology,
                group,
                timeout,
                message,
                call,
                |address, answer| {
                    let answer = answer.map(|response| match response.result {
                        Some(membership_response::Result::Changed(changed)) => Ok(changed),
                        Some(membership_response::Result::Error(error)) => Err(error),
                        None => Err(empty_api_error()),
                    });
                    change_verdict(address, answer)
                },
            )
            .await;
        leader_answered(topology, group, served)
    }
}

/// What [`Admin::add_to_group`] adds where.
struct AddTarget<'a> {
    node: &'a Node,
    group: GroupId,
    shards: ShardCount,
    replication_factor: u32,
    promote: bool,
}

/// The verdict on one attempt at an admin change. A call that may have reached the node
/// stops: the change may have happened, and retrying could report a misleading error.
fn change_verdict<T>(address: &str, answer: Result<Result<T, ApiError>, CallError>) -> Verdict<T> {
    match answer {
        Ok(Ok(value)) => Verdict::Done(value),
        Ok(Err(error)) => decide::classify_admin_error(address, error),
        Err(error) => match decide::classify_call_error(address, error) {
            (Failure::NotSent, error) => Verdict::Retry {
                retry: decide::Retry::NotSent,
                error,
            },
            (Failure::Indeterminate | Failure::WrongServer, error) => Verdict::Stop(error),
        },
    }
}

/// The value of a change that only a leader makes; the node that made it leads now, so
/// the group's next change goes straight to it.
fn leader_answered<T>(
    topology: &Mutex<Topology>,
    group: GroupId,
    served: Result<Served<T>, Exhausted>,
) -> Result<T, ClientError> {
    match served {
        Ok(served) => {
            topology
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe_success(group, served.target.node_id, 0);
            Ok(served.value)
        }
        Err(exhausted) => Err(exhausted.last_error),
    }
}

/// Records a step's result in `change`; true when it succeeded.
fn record(change: &mut GroupChange, result: Result<MembershipChanged, ClientError>) -> bool {
    match result {
        Ok(changed) => {
            change.log_index = Some(changed.log_index);
            change.voters = node_ids(&changed.voters);
            change.learners = node_ids(&changed.learners);
            change.error = None;
            true
        }
        Err(error) => {
            change.error = Some(ErrorReport::from(&error));
            false
        }
    }
}

/// The groups `node_id` is a voter or learner of, by the membership each leader reports.
pub fn member_groups(status: &ClusterStatus, node_id: NodeId) -> Vec<GroupId> {
    status
        .group_ids()
        .into_iter()
        .filter(|&group| {
            status.membership(group).is_some_and(|membership| {
                membership.voters.contains(&node_id) || membership.learners.contains(&node_id)
            })
        })
        .map(GroupId)
        .collect()
}

/// Group ids must exist in the cluster: 0 (meta) or `1..=shard_count`.
fn checked_groups(groups: Vec<GroupId>, shards: ShardCount) -> Result<Vec<GroupId>, ClientError> {
    if let Some(bad) = groups
        .iter()
        .find(|group| group.0 > u64::from(shards.get()))
    {
        return Err(ClientError::InvalidInput(format!(
            "there is no group {}: the cluster has the meta group 0 and auction groups 1..={}",
            bad.0,
            shards.get()
        )));
    }
    let mut groups = groups;
    groups.sort();
    groups.dedup();
    Ok(groups)
}

/// A node to add needs a fresh, non-zero id and an address no other node uses. Adding a
/// node that is already known with the same address is allowed: it resumes an add that
/// stopped half way.
pub fn check_new_node(topology: &Topology, node: &NodeAddress) -> Result<(), ClientError> {
    if !node.id.is_valid() {
        return Err(ClientError::InvalidInput(
            "node id 0 is reserved: pick a positive id never used in this cluster".to_owned(),
        ));
    }
    if node.address.is_empty() {
        return Err(ClientError::InvalidInput(
            "the new node's address is empty: pass --address HOST:PORT".to_owned(),
        ));
    }
    for known in topology.nodes() {
        if known.node_id == node.id && known.address != node.address {
            return Err(ClientError::InvalidInput(format!(
                "node id {} is already used by the node at {}; node ids are never reused, \
                 pick another",
                node.id, known.address
            )));
        }
        if known.node_id != node.id && known.address == node.address {
            return Err(ClientError::InvalidInput(format!(
                "address {} already belongs to node {}; is the new node's address right?",
                node.address, known.node_id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use martelo_proto::StatusResponse;

    use super::super::fixtures::node_address as new_node;
    use super::*;

    fn node(id: u64, port: u16) -> Node {
        let address = format!("127.0.0.1:{port}");
        Node {
            node_id: id,
            raft_address: address.clone(),
            api_address: address,
        }
    }

    fn topology() -> Topology {
        let mut topology = Topology::default();
        topology.observe_status(&StatusResponse {
            node: Some(node(1, 7001)),
            initialized: true,
            shard_count: 2,
            nodes: vec![node(1, 7001), node(2, 7002)],
            ..StatusResponse::default()
        });
        topology
    }

    #[test]
    fn a_new_node_needs_a_fresh_id_and_address() {
        assert!(check_new_node(&topology(), &new_node(3, 7003)).is_ok());
        // Re-running an add that stopped half way is fine.
        assert!(check_new_node(&topology(), &new_node(2, 7002)).is_ok());
        let error = check_new_node(&topology(), &new_node(2, 7009)).unwrap_err();
        assert!(error.to_string().contains("never reused"), "{error}");
        let error = check_new_node(&topology(), &new_node(5, 7002)).unwrap_err();
        assert!(
            error.to_string().contains("already belongs to node 2"),
            "{error}"
        );
        assert!(check_new_node(&topology(), &new_node(0, 7005)).is_err());
    }

    #[test]
    fn groups_outside_the_cluster_are_refused() {
        let shards = ShardCount::try_from(4).unwrap();
        assert_eq!(
            checked_groups(vec![GroupId(3), GroupId(0), GroupId(3)], shards).unwrap(),
            vec![GroupId(0), GroupId(3)]
        );
        let error = checked_groups(vec![GroupId(5)], shards).unwrap_err();
        assert!(error.to_string().contains("1..=4"), "{error}");
    }

    #[test]
    fn a_change_that_may_have_reached_the_node_is_not_retried() {
        let timed_out: Result<Result<(), ApiError>, CallError> =
            Err(CallError::TimedOut(Duration::from_secs(1)));
        assert!(matches!(
            change_verdict("127.0.0.1:7001", timed_out),
            Verdict::Stop(_)
        ));
        let unavailable: Result<Result<(), ApiError>, CallError> = Ok(Err(ApiError::new(
            martelo_proto::ErrorCode::Unavailable,
            "starting",
        )));
        assert!(matches!(
            change_verdict("127.0.0.1:7001", unavailable),
            Verdict::Retry { .. }
        ));
    }
}
