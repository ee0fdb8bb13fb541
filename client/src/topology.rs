//! The client's picture of the cluster: the address book, each group's voters and the
//! leader cache. Pure: the runtime feeds it what nodes said (`Status`, `NotLeader` hints,
//! successful answers) and asks it where to send a request next.
//!
//! The leader cache keeps, per group, the node believed to lead and the term it was learned
//! in. A newer term always wins, so a stale hint from a partitioned replica cannot overwrite
//! what a newer one said. A node that answered a leader-only request successfully leads now,
//! whatever its term. A node that failed, or said it does not lead without naming anyone, is
//! forgotten as leader.

use std::collections::{BTreeMap, HashMap};

use martelo_engine::GroupId;
use martelo_proto::{NotLeader, StatusResponse};

use martelo_types::{NodeId, ShardCount};

/// A node to send a request to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub node_id: NodeId,
    /// The node's client and admin API address, `host:port`.
    pub address: String,
}

/// Who leads a group, as far as the client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderEntry {
    pub node_id: NodeId,
    /// The term the client learned it in (0 when it was never told a term).
    pub term: u64,
}

/// Where to send a request for a group: `first`, then (when the retry rule asks for
/// another member) `rotation` in turn. `first` is last in `rotation`, so a full turn tries
/// every other member before coming back to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub first: Target,
    pub rotation: Vec<Target>,
}

/// The address book, group voters and leader cache.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    shard_count: Option<ShardCount>,
    addresses: BTreeMap<NodeId, String>,
    voters: HashMap<GroupId, Vec<NodeId>>,
    leaders: HashMap<GroupId, LeaderEntry>,
}

impl Topology {
    /// The shard count, once a node that is part of an initialized cluster reported it.
    pub fn shard_count(&self) -> Option<ShardCount> {
        self.shard_count
    }

    /// Every node known, by id, with its API address.
    pub fn nodes(&self) -> impl Iterator<Item = Target> + '_ {
        self.addresses.iter().map(|(&node_id, address)| Target {
            node_id,
            address: address.clone(),
        })
    }

    /// The node with this id, if its address is known.
    pub fn target(&self, node_id: NodeId) -> Option<Target> {
        self.addresses.get(&node_id).map(|address| Target {
            node_id,
            address: address.clone(),
        })
    }

    /// The cached leader of `group`.
    pub fn leader(&self, group: GroupId) -> Option<LeaderEntry> {
        self.leaders.get(&group).copied()
    }

    /// The group's voters as last reported, by id.
    pub fn voters(&self, group: GroupId) -> &[NodeId] {
        self.voters.get(&group).map_or(&[], Vec::as_slice)
    }

    /// Learns from one node's `Status`: the shard count, the address book (the answering
    /// node included), each group's voters and leader.
    pub fn observe_status(&mut self, status: &StatusResponse) {
        if status.initialized
            && let Ok(shards) = ShardCount::try_from(status.shard_count)
        {
            self.shard_count = Some(shards);
        }
        for node in status.nodes.iter().chain(status.node.as_ref()) {
            if node.node_id != 0 && !node.api_address.is_empty() {
                self.addresses
                    .insert(NodeId(node.node_id), node.api_address.clone());
            }
        }
        for group in &status.groups {
            let id = GroupId(group.group_id);
            if !group.voters.is_empty() {
                self.voters
                    .insert(id, group.voters.iter().copied().map(NodeId).collect());
            }
            if let Some(leader) = group.leader_id {
                self.observe_leader_in_term(id, NodeId(leader), group.term);
            }
        }
    }

    /// Learns from a `NotLeader` answer: the hinted leader's address and, when its term is
    /// not older than the cached one, the leader itself.
    pub fn observe_hint(&mut self, group: GroupId, hint: &NotLeader) {
        let Some(leader) = hint.leader_id.map(NodeId) else {
            return;
        };
        if leader.is_valid() && !hint.leader_address.is_empty() {
            self.addresses.insert(leader, hint.leader_address.clone());
        }
        self.observe_leader_in_term(group, leader, hint.term);
    }

    /// `node_id` just served a leader-only request of `group`: it leads now.
    pub fn observe_success(&mut self, group: GroupId, node_id: NodeId, term: u64) {
        let cached_term = self.leaders.get(&group).map_or(0, |entry| entry.term);
        self.leaders.insert(
            group,
            LeaderEntry {
                node_id,
                term: term.max(cached_term),
            },
        );
    }

    /// `node_id` failed, or said it does not lead without naming anyone: stop sending the
    /// group's requests to it first.
    pub fn forget_leader(&mut self, group: GroupId, node_id: NodeId) {
        if self.leaders.get(&group).map(|entry| entry.node_id) == Some(node_id) {
            self.leaders.remove(&group);
        }
    }

    /// Where a request for `group` goes: the cached leader first (when its address is
    /// known), else the first voter; the other voters (or, when the voters are unknown,
    /// every known node) in turn after it. `None` when no node is known at all.
    pub fn route(&self, group: GroupId) -> Option<Route> {
        let mut members: Vec<Target> = match self.voters.get(&group) {
            Some(voters) => voters.iter().filter_map(|&id| self.target(id)).collect(),
            None => Vec::new(),
        };
        if members.is_empty() {
            members = self.nodes().collect();
        }
        let leader = self
            .leader(group)
            .and_then(|entry| self.target(entry.node_id));
        let first = match leader {
            Some(leader) => leader,
            None => members.first()?.clone(),
        };
        members.retain(|member| member != &first);
        members.push(first.clone());
        Some(Route {
            first,
            rotation: members,
        })
    }

    /// After `from` answered `not_leader` (already passed to [`Topology::observe_hint`]):
    /// the node to try next without a back-off, or `None` to fall back to the rotation.
    /// That is the cached leader (the newest the client knows), unless it is `from` itself.
    pub fn redirect(&self, group: GroupId, from: &Target) -> Option<Target> {
        let leader = self.leader(group)?;
        if leader.node_id == from.node_id {
            return None;
        }
        self.target(leader.node_id)
    }

    fn observe_leader_in_term(&mut self, group: GroupId, node_id: NodeId, term: u64) {
        if !node_id.is_valid() {
            return;
        }
        let newer = self
            .leaders
            .get(&group)
            .is_none_or(|entry| term >= entry.term);
        if newer {
            self.leaders.insert(group, LeaderEntry { node_id, term });
        }
    }
}

#[cfg(test)]
mod tests {
    use martelo_proto::{GroupStatus, Node};

    use super::*;

    fn node(id: u64) -> Node {
        Node {
            node_id: id,
            raft_address: format!("127.0.0.1:{}", 7000 + id),
            api_address: format!("127.0.0.1:{}", 7000 + id),
        }
    }

    fn target(id: u64) -> Target {
        Target {
            node_id: NodeId(id),
            address: format!("127.0.0.1:{}", 7000 + id),
        }
    }

    /// Node 1's status: three nodes, group 1 led by `leader` in term 5.
    fn status(leader: Option<u64>) -> StatusResponse {
        StatusResponse {
            node: Some(node(1)),
            initialized: true,
            shard_count: 2,
            nodes: vec![node(1), node(2), node(3)],
            groups: vec![GroupStatus {
                group_id: 1,
                term: 5,
                leader_id: leader,
                voters: vec![1, 2, 3],
                ..GroupStatus::default()
            }],
            ..StatusResponse::default()
        }
    }

    fn hint(leader: Option<u64>, term: u64) -> NotLeader {
        NotLeader {
            group_id: 1,
            leader_id: leader,
            leader_address: leader.map_or(String::new(), |id| target(id).address),
            term,
        }
    }

    #[test]
    fn status_fills_the_address_book_voters_shard_count_and_leader() {
        let mut topology = Topology::default();
        topology.observe_status(&status(Some(2)));
        assert_eq!(topology.shard_count().map(ShardCount::get), Some(2));
        assert_eq!(topology.nodes().count(), 3);
        assert_eq!(
            topology.voters(GroupId(1)),
            &[NodeId(1), NodeId(2), NodeId(3)]
        );
        assert_eq!(
            topology.leader(GroupId(1)),
            Some(LeaderEntry {
                node_id: NodeId(2),
                term: 5
            })
        );
    }

    #[test]
    fn an_uninitialized_node_reports_no_shard_count() {
        let mut topology = Topology::default();
        let mut fresh = status(None);
        fresh.initialized = false;
        fresh.shard_count = 0;
        topology.observe_status(&fresh);
        assert_eq!(topology.shard_count(), None);
    }

    #[test]
    fn the_route_starts_at_the_cached_leader_and_ends_each_turn_with_it() {
        let mut topology = Topology::default();
        topology.observe_status(&status(Some(2)));
        let route = topology.route(GroupId(1)).unwrap();
        assert_eq!(route.first, target(2));
        assert_eq!(route.rotation, vec![target(1), target(3), target(2)]);
    }

    #[test]
    fn without_a_leader_or_voters_the_route_covers_every_known_node() {
        let mut topology = Topology::default();
        topology.observe_status(&status(None));
        // Group 2 is not on node 1: its voters are unknown.
        let route = topology.route(GroupId(2)).unwrap();
        assert_eq!(route.first, target(1));
        assert_eq!(route.rotation, vec![target(2), target(3), target(1)]);
        assert_eq!(Topology::default().route(GroupId(1)), None);
    }

    #[test]
    fn a_hint_from_a_newer_term_replaces_the_cached_leader_and_an_older_one_does_not() {
        let mut topology = Topology::default();
        topology.observe_status(&status(Some(2)));
        topology.observe_hint(GroupId(1), &hint(Some(3), 6));
        assert_eq!(topology.leader(GroupId(1)).unwrap().node_id, NodeId(3));
        topology.observe_hint(GroupId(1), &hint(Some(1), 4));
        assert_eq!(
            topology.leader(GroupId(1)),
            Some(LeaderEntry {
                node_id: NodeId(3),
                term: 6
            })
        );
    }

    #[test]
    fn a_hint_teaches_the_address_of_a_node_the_client_did_not_know() {
        let mut topology = Topology::default();
        topology.observe_status(&status(Some(2)));
        topology.observe_hint(GroupId(1), &hint(Some(4), 7));
        assert_eq!(topology.redirect(GroupId(1), &target(2)), Some(target(4)));
    }

    #[test]
    fn a_stale_hint_redirects_to_the_newer_cached_leader_instead() {
        let mut topology = Topology::default();
        topology.observe_status(&status(Some(2)));
        topology.observe_hint(GroupId(1), &hint(Some(3), 9));
        // Node 1 is behind: it names node 2 from term 5. The client goes to node 3.
        topology.observe_hint(GroupId(1), &hint(Some(2), 5));
        assert_eq!(topology.redirect(GroupId(1), &target(1)), Some(target(3)));
    }

    #[test]
    fn a_redirect_never_points_back_at_the_node_that_refused() {
        let mut topology = Topology::default();
        topology.observe_status(&status(Some(2)));
        topology.observe_hint(GroupId(1), &hint(Some(2), 5));
        assert_eq!(topology.redirect(GroupId(1), &target(2)), None);
    }

    #[test]
    fn a_failed_leader_is_forgotten_but_another_nodes_failure_changes_nothing() {
        let mut topology = Topology::default();
        topology.observe_status(&status(Some(2)));
        topology.forget_leader(GroupId(1), NodeId(3));
        assert_eq!(topology.leader(GroupId(1)).unwrap().node_id, NodeId(2));
        topology.forget_leader(GroupId(1), NodeId(2));
        assert_eq!(topology.leader(GroupId(1)), None);
        assert_eq!(topology.route(GroupId(1)).unwrap().first, target(1));
    }

    #[test]
    fn a_success_makes_the_node_leader_even_with_an_older_entry_term() {
        let mut topology = Topology::default();
        topology.observe_status(&status(Some(2)));
        // A replayed reply carries the term of the original entry, older than the cache.
        topology.observe_success(GroupId(1), NodeId(3), 2);
        assert_eq!(
            topology.leader(GroupId(1)),
            Some(LeaderEntry {
                node_id: NodeId(3),
                term: 5
            })
        );
    }
}
