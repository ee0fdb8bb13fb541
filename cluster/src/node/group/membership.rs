//! Is this node still a member of the group? The evidence for the lifecycle's decisions:
//! the replica's own membership (Open becomes Serving once it lists this node), and the
//! group's membership as its leader holds it (a committed one without this node proves a
//! removal; see [`proves_removal`] for why only the leader's counts).
//!
//! openraft stops replicating to a removed node as soon as the leader appends the membership
//! without it, so the removed replica usually never sees that membership commit: it hears
//! nothing more and campaigns in vain (openraft's docs ask the application to stop it). So
//! every [`CHECK_EVERY`] a Serving follower or learner asks the leader (the one it knows
//! first, else each member until the leader answers) for its view of the group (the admin `Status` call, for this group only),
//! and [`proves_removal`] judges the answer. The rules themselves are pure and live in
//! `lifecycle`.

use openraft::async_runtime::WatchReceiver as _;
use std::time::Duration;

use martelo_proto::StatusRequest;

use super::lifecycle::{MembershipView, proves_removal};
use super::{Group, GroupContext};

/// How often a replica checks whether it is still a member.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Longest wait for one peer's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// Most peers asked in one check: the leader, then others until one that leads answers.
const PEERS_ASKED_MAX: usize = 5;

/// The replica's own membership (it lists this node once the replica is a member).
pub fn own_view(group: &Group) -> MembershipView {
    let metrics = group.raft.metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership();
    MembershipView {
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
        leader: group.raft.is_leader(),
        committed_index: metrics.local_committed.map(|id| id.index()),
        last_log_index: metrics.last_log_index,
    }
}

/// Whether the group's leader proves that this node was removed from `group`. Not asked on
/// a leader (a leader that removed itself steps down, and then asks the new one). The
/// members are asked in turn, the leader this replica knows first, until one that leads
/// answers; any failure to ask proves nothing.
pub async fn removal_proven(group: &Group, context: &GroupContext) -> bool {
    let me = context.node_id;
    if group.raft.is_leader() {
        return false;
    }
    let metrics = group.raft.metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership();
    let mut peers: Vec<(u64, String)> = membership
        .nodes()
        .filter(|(id, _)| **id != me)
        .map(|(id, node)| (*id, node.addr.clone()))
        .collect();
    // The leader first: usually the only one asked.
    peers.sort_by_key(|(id, _)| Some(*id) != metrics.current_leader);
    for (peer, address) in peers.into_iter().take(PEERS_ASKED_MAX) {
        if let Some(view) = ask(group, context, peer, &address).await
            && view.leader
        {
            return proves_removal(me, &view);
        }
    }
    false
}

/// Peer `peer`'s view of `group`, or `None` if it does not answer or holds no replica.
async fn ask(
    group: &Group,
    context: &GroupContext,
    peer: u64,
    address: &str,
) -> Option<MembershipView> {
    let channel = context.peers.channel(peer, address).ok()?;
    let mut client = martelo_proto::services::admin_api_client(channel);
    let mut request = tonic::Request::new(StatusRequest {
        group_ids: vec![group.id.0],
        ..StatusRequest::default()
    });
    request.set_timeout(ASK_TIMEOUT);
    let answer = tokio::time::timeout(ASK_TIMEOUT, client.status(request))
        .await
        .ok()?
        .ok()?
        .into_inner();
    let status = answer
        .groups
        .into_iter()
        .find(|status| status.group_id == group.id.0)?;
    Some(MembershipView {
        leader: status.role() == martelo_proto::RaftRole::Leader,
        voters: status.voters.into_iter().collect(),
        learners: status.learners.into_iter().collect(),
        committed_index: status.committed_index,
        last_log_index: status.last_log_index,
    })
}
