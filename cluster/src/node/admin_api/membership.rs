//! Membership changes of the admin API: add a learner, promote it to voter, remove a node
//! (with the leader's hand-off first and the retired-id record after), and the quorum rules
//! that refuse a removal which would endanger a group. Status, bootstrap, leadership,
//! snapshots and the gRPC glue are in the parent module.

use super::*;

impl AdminApiService {
    pub(super) async fn add_learner(
        &self,
        request: AddLearnerRequest,
    ) -> Result<MembershipChanged, ApiError> {
        let group = self.leader_group(request.group_id)?;
        let new = request
            .node
            .ok_or_else(|| invalid("the node to add is missing"))?;
        if new.node_id == 0 {
            return Err(invalid("node id 0 is reserved"));
        }
        super::super::config::check_address("node address", &new.raft_address)
            .map_err(|error| invalid(&error.to_string()))?;
        if self.is_retired(new.node_id) {
            return Err(invalid(&format!(
                "node id {} was removed from the cluster (retired), and node ids are never \
                 reused: start the node with a new --id and a fresh --data-dir",
                new.node_id
            )));
        }
        let written = tokio::time::timeout(
            ADMIN_WAIT.saturating_mul(6),
            group.raft.add_learner(
                new.node_id,
                BasicNode::new(new.raft_address.clone()),
                request.wait_for_catch_up,
            ),
        )
        .await
        .map_err(|_| timeout("adding the learner"))?
        .map_err(|error| write_error(&group, &error))?;
        Ok(changed(&group, written.log_id.index()))
    }

    pub(super) async fn promote_voter(
        &self,
        request: PromoteVoterRequest,
    ) -> Result<MembershipChanged, ApiError> {
        let group = self.leader_group(request.group_id)?;
        let (voters, learners) = group.members();
        if voters.contains(&request.node_id) {
            // Already promoted (a retried `node add`): nothing to do.
            let log_index = group
                .raft
                .metrics()
                .borrow_watched()
                .last_log_index
                .unwrap_or(0);
            return Ok(changed(&group, log_index));
        }
        if !learners.contains(&request.node_id) {
            return Err(ApiError::new(
                ErrorCode::UnknownNode,
                format!(
                    "node {} is not a learner of group {}; add it first with `martelo node add`",
                    request.node_id, request.group_id
                ),
            ));
        }
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([request.node_id]));
        let written = tokio::time::timeout(ADMIN_WAIT, group.raft.change_membership(change, false))
            .await
            .map_err(|_| timeout("promoting the learner"))?
            .map_err(|error| write_error(&group, &error))?;
        Ok(changed(&group, written.log_id.index()))
    }

    pub(super) async fn remove_node(
        &self,
        request: RemoveNodeRequest,
    ) -> Result<MembershipChanged, ApiError> {
        let group = self.leader_group(request.group_id)?;
        let (voters, learners) = group.members();
        let change = if voters.contains(&request.node_id) {
            if voters.len() == 1 {
                // Not even --force: a group without voters can never commit again. This is
                // permanent (`invalid_argument`), so the CLI does not retry it.
                return Err(invalid(&format!(
                    "node {} is group {}'s only voter, and a group cannot lose its last voter: \
                     add another node to the group first (`martelo node add`)",
                    request.node_id, request.group_id
                )));
            }
            if !request.force
                && let Err(reason) = removal_verdict(&group, &voters, request.node_id).await
            {
                return Err(ApiError::new(
                    ErrorCode::QuorumAtRisk,
                    format!("{reason}; pass --force to remove it anyway"),
                )
                .with_group(request.group_id));
            }
            if request.node_id == self.registry.node_id()
                && let Some(answer) = self.hand_off_before_removal(&group, request.force).await
            {
                return Err(answer);
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([request.node_id]))
        } else if learners.contains(&request.node_id) {
            ChangeMembers::RemoveNodes(BTreeSet::from([request.node_id]))
        } else {
            return Err(ApiError::new(
                ErrorCode::UnknownNode,
                format!(
                    "node {} is not a member of group {}",
                    request.node_id, request.group_id
                ),
            ));
        };
        let written = tokio::time::timeout(ADMIN_WAIT, group.raft.change_membership(change, false))
            .await
            .map_err(|_| timeout("removing the node"))?
            .map_err(|error| write_error(&group, &error))?;
        if group.id == GroupId::META {
            // Out of the meta group means out of the cluster: its id is never used again.
            self.retire(&group, request.node_id).await?;
        }
        Ok(changed(&group, written.log_id.index()))
    }

    /// Records in the meta group (which `group` is, and which this node leads) that
    /// `node_id` left the cluster, so `node add` refuses the id from now on. Idempotent.
    pub(super) async fn retire(&self, group: &Group, node_id: u64) -> Result<(), ApiError> {
        let request_id = RequestId::try_from(format!("retire-node-{node_id}"))
            .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
        let command = Command::Meta(MetaCommand {
            actor: MetaActor::Operator,
            request_id,
            action: MetaAction::RetireNode {
                node_id: MetaNodeId(node_id),
            },
        });
        let proposed = tokio::time::timeout(ADMIN_WAIT, group.proposer.propose(command, None))
            .await
            .map_err(|_| timeout("recording the retired node id"))?
            .map_err(|error| {
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "node {node_id} was removed, but its id could not be recorded as \
                         retired ({error:?}); run the same removal again"
                    ),
                )
            })?;
        if let Reply::Rejected(code) = proposed.outcome.reply {
            return Err(ApiError::new(
                ErrorCode::Internal,
                format!("the meta group refused to retire node {node_id}: {code:?}"),
            ));
        }
        tracing::info!(node_id, "node id retired");
        Ok(())
    }

    /// Whether this node's replica of the meta group records `node_id` as retired. A local
    /// read: a retirement a moment old may not have reached this replica yet.
    pub(super) fn is_retired(&self, node_id: u64) -> bool {
        self.registry.group(GroupId::META).is_some_and(|meta| {
            meta.reader
                .read(|state, _| state.meta().is_retired(MetaNodeId(node_id)))
                .unwrap_or(false)
        })
    }

    /// This node leads `group` and is the voter to remove. A leader that removes itself
    /// leaves the group without a leader until the remaining voters' election timeout (about
    /// a second), so it hands leadership to a remaining voter first and answers `not_leader`
    /// naming it: the caller retries there at once (the CLI follows the hint within the same
    /// command), and the new leader removes this node as a plain follower. Returns the answer
    /// to give, or `None` to remove this node as it is (forced, and no voter can take over).
    pub(super) async fn hand_off_before_removal(
        &self,
        group: &Group,
        force: bool,
    ) -> Option<ApiError> {
        let me = self.registry.node_id();
        let Some(target) = group.handoff_target(&self.registry.handoff_excluded()) else {
            if force {
                return None;
            }
            return Some(
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "node {me} leads group {} and no other voter acknowledged it lately, so \
                         none can take over before the removal; retry once the group is \
                         healthy (`martelo status`), or pass --force",
                        group.id.0
                    ),
                )
                .with_group(group.id.0),
            );
        };
        let started = std::time::Instant::now();
        match group
            .transfer_leadership(target, REMOVAL_HANDOFF_WAIT)
            .await
        {
            Some(leader) => {
                tracing::info!(
                    group = group.id.0,
                    leader,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "handed leadership over before removing this node"
                );
                Some(ApiError::not_leader(group.leader_hint()))
            }
            None => Some(
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "node {target} did not take over group {} from node {me} within \
                         {REMOVAL_HANDOFF_WAIT:?}, so node {me} was not removed; retry",
                        group.id.0
                    ),
                )
                .with_group(group.id.0),
            ),
        }
    }
}

/// Why removing `node` from `voters` would endanger the group, if it would. `healthy` are the
/// voters that acknowledged the leader recently.
pub fn removal_keeps_quorum(
    voters: &BTreeSet<u64>,
    healthy: &BTreeSet<u64>,
    node: u64,
) -> Result<(), String> {
    let remaining: BTreeSet<u64> = voters.iter().copied().filter(|id| *id != node).collect();
    if remaining.is_empty() {
        return Err(format!("node {node} is the group's only voter"));
    }
    let healthy_remaining = remaining.iter().filter(|id| healthy.contains(id)).count();
    if healthy_remaining * 2 <= remaining.len() {
        return Err(format!(
            "only {healthy_remaining} of the {} remaining voters are healthy, not a majority",
            remaining.len()
        ));
    }
    if voters.len() >= 3 && remaining.len() < 3 {
        return Err(format!(
            "the group would keep {} voters and could not survive another failure; add a node \
             first (`martelo node add`)",
            remaining.len()
        ));
    }
    Ok(())
}

/// [`removal_keeps_quorum`] on the leader's view of its voters, judged again every
/// heartbeat for up to [`QUORUM_CHECK_GRACE`] while it fails: a new leader's followers have
/// not acknowledged it yet.
pub(super) async fn removal_verdict(
    group: &Group,
    voters: &BTreeSet<u64>,
    node: u64,
) -> Result<(), String> {
    // A refusal that holds with every voter healthy is not worth waiting for.
    removal_keeps_quorum(voters, voters, node)?;
    let deadline = tokio::time::Instant::now() + QUORUM_CHECK_GRACE;
    loop {
        let verdict = removal_keeps_quorum(voters, &healthy_voters(group), node);
        if verdict.is_ok() || tokio::time::Instant::now() >= deadline {
            return verdict;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Voters that acknowledged this leader within [`HEALTHY_ACK_WITHIN`], and the leader.
pub(super) fn healthy_voters(group: &Group) -> BTreeSet<u64> {
    use openraft::Instant as _;
    let metrics = group.raft.metrics().borrow_watched().clone();
    let mut healthy: BTreeSet<u64> = metrics
        .heartbeat
        .iter()
        .flatten()
        .filter(|(_, acked)| {
            acked
                .as_ref()
                .is_some_and(|acked| acked.elapsed() <= HEALTHY_ACK_WITHIN)
        })
        .map(|(id, _)| *id)
        .collect();
    healthy.insert(metrics.id);
    healthy
}

pub(super) fn changed(group: &Group, log_index: u64) -> MembershipChanged {
    let (voters, learners) = group.members();
    MembershipChanged {
        group_id: group.id.0,
        log_index,
        voters: voters.into_iter().collect(),
        learners: learners.into_iter().collect(),
    }
}
