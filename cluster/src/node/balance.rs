//! Leader balancing, and the choice of the voter that takes over a group a leader gives up.
//!
//! After a full restart the node that comes up first wins most elections (one node led 6 of 9
//! groups, another none), and nothing moved leadership back: the busy node then carried every
//! write of those groups. So every few seconds ([`tick_after`]: 2-3 s, jittered per node so
//! nodes seldom act in the same instant) each node looks at the groups it holds and, when it
//! leads more than its fair share, hands one group to the healthy voter that leads the fewest.
//!
//! ```text
//!   run (every 2-3 s) ──► views of this node's groups ──► plan (pure) ──► transfer_leadership
//!        skips a tick while the clock guard refuses to lead, or the node is stopping
//! ```
//!
//! [`plan`] decides; [`run`] only gathers the views and carries the decision out. The rules:
//!
//! - The fair share is `ceil(groups seen / voter nodes seen)`: a node sees only the groups it
//!   holds a replica of, and counts leaders as its replicas know them.
//! - A node above its fair share moves one group per tick, and only its own groups: no node
//!   ever moves another node's leadership.
//! - The target is a voter of that group that is healthy (it acknowledged this leader
//!   recently, holds the whole log, and its clock agrees with ours) and leads at least
//!   [`HYSTERESIS`] fewer groups than this node. After the move it leads at most as many as
//!   this node still does, so it never has a reason to move the group back; and every move
//!   lowers the sum of the squared leader counts, so moves come to an end: no flapping.
//! - A node seen giving up leadership within [`GAVE_UP_COOLDOWN`] is no target
//!   ([`Cooldown`]). A node that stops hands its groups off first, so it leads nothing and
//!   looks like the best target while it shuts down; and a transfer to a node that never
//!   takes over costs the group an election timeout. The cooldown outlasts a clean stop.
//!
//! [`handoff_target`] picks the voter that takes over when a leader steps away (a node
//! stopping, a leader being removed, a clock that refuses to lead).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Weak;
use std::time::{Duration, Instant};

use martelo_engine::GroupId;

use super::metric_names::LEADER_BALANCE_TRANSFERS_TOTAL;
use super::registry::Registry;

/// A node moves a group only to a voter that leads at least this many fewer groups. Two is the
/// least that cannot flap: after the move the target leads no more than the giver.
pub const HYSTERESIS: usize = 2;
/// Shortest pause between two balancing ticks of a node.
pub const TICK_MIN: Duration = Duration::from_secs(2);
/// Longest pause between two balancing ticks of a node.
pub const TICK_MAX: Duration = Duration::from_secs(3);
/// How long a balancing transfer may take before the tick gives up on it. An idle group moves
/// in milliseconds; a target that ignores the transfer costs an election timeout (~0.8 s).
pub const TRANSFER_WAIT: Duration = Duration::from_secs(2);
/// A voter that acknowledged the leader within this long is reachable (heartbeats go every
/// 100 ms, so this is five missed heartbeats).
pub const ACK_WITHIN: Duration = Duration::from_millis(500);
/// How long a node that gave up leadership of a group is left out as a target.
pub const GAVE_UP_COOLDOWN: Duration = Duration::from_secs(4);

const _: () = assert!(TICK_MIN.as_millis() < TICK_MAX.as_millis());
const _: () = assert!(TRANSFER_WAIT.as_millis() <= TICK_MIN.as_millis());

/// What one node knows of one group it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    pub group: u64,
    /// The leader this replica knows of.
    pub leader: Option<u64>,
    pub voters: BTreeSet<u64>,
    /// Voters that could take leadership now. Only a leader knows (from replication); a
    /// follower's view leaves it empty, which is fine: only leaders move groups.
    pub healthy: BTreeSet<u64>,
}

/// Hand `group` to node `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub group: u64,
    pub to: u64,
}

/// The most groups one node should lead: `ceil(groups / voter_nodes)`.
pub fn fair_share(groups: usize, voter_nodes: usize) -> usize {
    groups.div_ceil(voter_nodes.max(1))
}

/// The one transfer node `self_id` should make now, if any (see the module doc for the rules).
/// Ties go to the target that leads the fewest, then the lowest group id, then the lowest node
/// id, so the decision is deterministic.
pub fn plan(self_id: u64, groups: &[GroupView]) -> Option<Transfer> {
    let voter_nodes: BTreeSet<u64> = groups
        .iter()
        .flat_map(|view| view.voters.iter().copied())
        .collect();
    let mut led: BTreeMap<u64, usize> = voter_nodes.iter().map(|id| (*id, 0)).collect();
    for leader in groups.iter().filter_map(|view| view.leader) {
        *led.entry(leader).or_default() += 1;
    }
    let count = |id: &u64| led.get(id).copied().unwrap_or(0);
    let mine = count(&self_id);
    if mine <= fair_share(groups.len(), voter_nodes.len()) {
        return None;
    }
    groups
        .iter()
        .filter(|view| view.leader == Some(self_id))
        .flat_map(|view| {
            view.healthy
                .iter()
                .filter(|to| **to != self_id && view.voters.contains(to))
                .map(|to| (count(to), view.group, *to))
        })
        .filter(|(theirs, _, _)| theirs + HYSTERESIS <= mine)
        .min()
        .map(|(_, group, to)| Transfer { group, to })
}

/// Which nodes were seen giving up leadership lately, from one balancing tick to the next.
#[derive(Debug, Default)]
pub struct Cooldown {
    leaders: BTreeMap<u64, u64>,
    gave_up: BTreeMap<u64, Instant>,
}

impl Cooldown {
    /// Notes every group whose leader changed since the last call: its former leader gave it
    /// up at `now`.
    pub fn observe(&mut self, now: Instant, views: &[GroupView]) {
        for view in views {
            let Some(leader) = view.leader else { continue };
            if let Some(former) = self.leaders.insert(view.group, leader)
                && former != leader
            {
                self.gave_up.insert(former, now);
            }
        }
        self.gave_up
            .retain(|_, at| now.saturating_duration_since(*at) < GAVE_UP_COOLDOWN);
    }

    /// Nodes that gave up leadership within [`GAVE_UP_COOLDOWN`] before `now`.
    pub fn cooling(&self, now: Instant) -> BTreeSet<u64> {
        self.gave_up
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) < GAVE_UP_COOLDOWN)
            .map(|(node, _)| *node)
            .collect()
    }
}

/// How a leader sees another voter of its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Follower {
    pub node_id: u64,
    /// The last log index the leader knows this voter holds.
    pub matched_index: Option<u64>,
    /// Time since this voter last acknowledged the leader; `None` if it never did.
    pub ack_age: Option<Duration>,
}

impl Follower {
    /// Acknowledged within `ack_within`.
    pub fn reachable(&self, ack_within: Duration) -> bool {
        self.ack_age.is_some_and(|age| age <= ack_within)
    }

    /// Holds the leader's whole log: openraft's target ignores a transfer when its log is
    /// behind the leader's, and the group then waits an election timeout.
    pub fn caught_up(&self, last_log_index: Option<u64>) -> bool {
        self.matched_index >= last_log_index
    }
}

/// The voter that should take over a group whose leader steps away: among `candidates` (the
/// caller leaves out itself and any node that must not lead), one that acknowledged within
/// `ack_within`, preferring one that holds the whole log, then the longest log, then the
/// lowest id. `None` when no candidate is reachable: a transfer to it could not happen.
pub fn handoff_target(
    last_log_index: Option<u64>,
    candidates: &[Follower],
    ack_within: Duration,
) -> Option<u64> {
    candidates
        .iter()
        .filter(|follower| follower.reachable(ack_within))
        .max_by_key(|follower| {
            (
                follower.caught_up(last_log_index),
                follower.matched_index,
                std::cmp::Reverse(follower.node_id),
            )
        })
        .map(|follower| follower.node_id)
}

/// The pause before tick `tick` of node `node_id`: between [`TICK_MIN`] and [`TICK_MAX`],
/// different for each node and tick (a fixed hash, so tests can predict it), so that nodes
/// seldom decide in the same instant from the same, soon stale, views.
pub fn tick_after(node_id: u64, tick: u64) -> Duration {
    let spread = (TICK_MAX - TICK_MIN).as_millis() as u64;
    let offset = splitmix64(node_id.rotate_left(32) ^ tick) % (spread + 1);
    TICK_MIN + Duration::from_millis(offset)
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Balances leadership until the node stops. Started only when `leader_balance` is on.
pub async fn run(registry: Weak<Registry>) {
    let Some(node_id) = registry.upgrade().map(|registry| registry.node_id()) else {
        return;
    };
    let mut cooldown = Cooldown::default();
    for tick in 0.. {
        tokio::time::sleep(tick_after(node_id, tick)).await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        if registry.stopping() {
            return;
        }
        // A node that refuses to lead hands its groups off through the skew guard; it must
        // not also shuffle them here.
        if !registry.clock_ok() {
            continue;
        }
        let now = Instant::now();
        let mut views: Vec<GroupView> = registry
            .groups()
            .iter()
            .map(|group| group.balance_view(&registry.handoff_excluded()))
            .collect();
        cooldown.observe(now, &views);
        let cooling = cooldown.cooling(now);
        for view in &mut views {
            view.healthy.retain(|node| !cooling.contains(node));
        }
        let Some(transfer) = plan(node_id, &views) else {
            continue;
        };
        let Some(group) = registry.group(GroupId(transfer.group)) else {
            continue;
        };
        let led = views
            .iter()
            .filter(|view| view.leader == Some(node_id))
            .count();
        tracing::info!(
            group = transfer.group,
            to = transfer.to,
            led,
            groups = views.len(),
            "leader balance: handing a group to a voter that leads fewer"
        );
        let moved = group.transfer_leadership(transfer.to, TRANSFER_WAIT).await;
        let result = if moved.is_some() {
            "moved"
        } else {
            "not_moved"
        };
        metrics::counter!(LEADER_BALANCE_TRANSFERS_TOTAL, "result" => result).increment(1);
        if moved.is_none() {
            tracing::warn!(
                group = transfer.group,
                to = transfer.to,
                "leader balance: the transfer did not take effect in time; the group elects a leader as usual"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(group: u64, leader: u64, voters: &[u64]) -> GroupView {
        GroupView {
            group,
            leader: Some(leader),
            voters: voters.iter().copied().collect(),
            healthy: voters.iter().copied().collect(),
        }
    }

    /// Nine groups on three nodes, each led by the node named in `leaders`.
    fn nine_groups(leaders: [u64; 9]) -> Vec<GroupView> {
        leaders
            .iter()
            .enumerate()
            .map(|(group, leader)| view(group as u64, *leader, &[1, 2, 3]))
            .collect()
    }

    /// Applies `plan` for every node in turn until nobody moves; returns the moves made.
    fn settle(views: &mut [GroupView], nodes: &[u64]) -> usize {
        let mut moves = 0;
        loop {
            let mut moved = false;
            for node in nodes {
                if let Some(transfer) = plan(*node, views) {
                    let view = views
                        .iter_mut()
                        .find(|view| view.group == transfer.group)
                        .expect("planned group exists");
                    assert_eq!(view.leader, Some(*node), "a node moves only its own groups");
                    view.leader = Some(transfer.to);
                    moves += 1;
                    moved = true;
                }
            }
            if !moved {
                return moves;
            }
            assert!(moves < 100, "balancing does not end");
        }
    }

    fn leaders_per_node(views: &[GroupView]) -> BTreeMap<u64, usize> {
        let mut led = BTreeMap::new();
        for leader in views.iter().filter_map(|view| view.leader) {
            *led.entry(leader).or_insert(0) += 1;
        }
        led
    }

    #[test]
    fn fair_share_rounds_up() {
        assert_eq!(fair_share(9, 3), 3);
        assert_eq!(fair_share(10, 3), 4);
        assert_eq!(fair_share(3, 5), 1);
        assert_eq!(fair_share(0, 3), 0);
        assert_eq!(fair_share(4, 0), 4, "no voters seen: nothing divides");
    }

    #[test]
    fn a_node_leading_more_than_its_share_hands_a_group_to_the_node_leading_fewest() {
        // Node 1 leads 6, node 2 leads 3, node 3 none (the restart of issue #19).
        let views = nine_groups([1, 1, 1, 1, 1, 1, 2, 2, 2]);
        assert_eq!(plan(1, &views), Some(Transfer { group: 0, to: 3 }));
        assert_eq!(plan(2, &views), None, "node 2 leads its share");
        assert_eq!(plan(3, &views), None, "node 3 leads nothing");
    }

    #[test]
    fn at_most_the_fair_share_means_no_move() {
        let views = nine_groups([1, 1, 1, 2, 2, 2, 3, 3, 3]);
        for node in [1, 2, 3] {
            assert_eq!(plan(node, &views), None);
        }
        // 4-3-2 with a share of 3: node 1 is above it, node 3 leads two fewer: one move.
        let views = nine_groups([1, 1, 1, 1, 2, 2, 2, 3, 3]);
        assert_eq!(plan(1, &views), Some(Transfer { group: 0, to: 3 }));
    }

    #[test]
    fn balancing_ends_with_every_node_at_its_share_and_never_moves_a_group_back() {
        let mut views = nine_groups([1; 9]);
        let moves = settle(&mut views, &[1, 2, 3]);
        assert_eq!(moves, 6, "each move fixes one surplus group");
        assert!(
            leaders_per_node(&views).values().all(|led| *led == 3),
            "{:?}",
            leaders_per_node(&views)
        );
        // Settled: no node wants to move anything any more.
        for node in [1, 2, 3] {
            assert_eq!(plan(node, &views), None);
        }
    }

    #[test]
    fn a_one_group_difference_is_left_alone_so_leadership_cannot_flap() {
        // 10 groups on 3 nodes: 4-3-3 is as even as it gets; the share is 4.
        let mut views = nine_groups([1, 1, 1, 1, 2, 2, 2, 3, 3]);
        views.push(view(9, 3, &[1, 2, 3]));
        for node in [1, 2, 3] {
            assert_eq!(plan(node, &views), None);
        }
        // Two groups on two nodes, both led by node 1: share 1, node 2 leads 0: move.
        let two = vec![view(0, 1, &[1, 2]), view(1, 1, &[1, 2])];
        assert_eq!(plan(1, &two), Some(Transfer { group: 0, to: 2 }));
        // Three groups on two nodes, 2-1: share 2, nothing moves (a move would make it 1-2).
        let three = vec![
            view(0, 1, &[1, 2]),
            view(1, 1, &[1, 2]),
            view(2, 2, &[1, 2]),
        ];
        assert_eq!(plan(1, &three), None);
    }

    #[test]
    fn only_healthy_voters_of_the_group_are_targets() {
        let mut views = nine_groups([1; 9]);
        for view in &mut views {
            view.healthy = BTreeSet::from([1, 2]);
        }
        assert_eq!(plan(1, &views), Some(Transfer { group: 0, to: 2 }));
        for view in &mut views {
            view.healthy = BTreeSet::from([1]);
        }
        assert_eq!(plan(1, &views), None, "nobody can take over");
        // A healthy node that is not a voter of the group (a learner) is no target.
        for view in &mut views {
            view.healthy = BTreeSet::from([1, 4]);
        }
        assert_eq!(plan(1, &views), None);
    }

    #[test]
    fn a_group_without_a_known_leader_counts_for_no_one() {
        let mut views = nine_groups([1, 1, 1, 1, 1, 2, 2, 3, 3]);
        views[0].leader = None;
        // Node 1 leads 4 of 9, share 3; nodes 2 and 3 lead 2 each: 4 - 2 = 2, move.
        assert_eq!(plan(1, &views), Some(Transfer { group: 1, to: 2 }));
    }

    #[test]
    fn groups_spread_over_five_nodes_balance_over_the_nodes_each_node_sees() {
        // Node 1 holds groups 0, 3 and 4 of a 5-node cluster (3 voters per group) and leads
        // all three; it sees 5 voter nodes, so its share is 1.
        let views = vec![
            view(0, 1, &[1, 2, 3]),
            view(3, 1, &[4, 5, 1]),
            view(4, 1, &[5, 1, 2]),
        ];
        let transfer = plan(1, &views).expect("node 1 leads too many");
        assert_eq!(transfer, Transfer { group: 0, to: 2 });
    }

    #[test]
    fn a_node_that_gave_up_leadership_is_no_target_until_the_cooldown_passes() {
        let start = Instant::now();
        let mut cooldown = Cooldown::default();
        cooldown.observe(start, &nine_groups([1, 1, 1, 2, 2, 2, 3, 3, 3]));
        assert!(
            cooldown.cooling(start).is_empty(),
            "the first look sees no change"
        );
        // Node 3 stops: it hands groups 6-8 to node 1 and 2.
        let later = start + Duration::from_millis(2_500);
        cooldown.observe(later, &nine_groups([1, 1, 1, 2, 2, 2, 1, 2, 1]));
        assert_eq!(cooldown.cooling(later), BTreeSet::from([3]));
        // A group without a known leader says nothing about who gave it up.
        let mut views = nine_groups([1, 1, 1, 2, 2, 2, 1, 2, 1]);
        views[0].leader = None;
        cooldown.observe(later + Duration::from_secs(1), &views);
        assert_eq!(
            cooldown.cooling(later + Duration::from_secs(1)),
            BTreeSet::from([3])
        );
        let after = later + GAVE_UP_COOLDOWN;
        cooldown.observe(after, &nine_groups([1, 1, 1, 2, 2, 2, 1, 2, 1]));
        assert!(cooldown.cooling(after).is_empty());
    }

    #[test]
    fn the_handoff_target_is_reachable_and_preferably_caught_up() {
        let ms = Duration::from_millis;
        let follower = |node_id, matched: Option<u64>, ack_ms: Option<u64>| Follower {
            node_id,
            matched_index: matched,
            ack_age: ack_ms.map(ms),
        };
        let within = ms(500);
        // A caught-up voter beats one that lags, and among equals the lowest id wins.
        let candidates = [
            follower(3, Some(10), Some(50)),
            follower(2, Some(10), Some(50)),
            follower(4, Some(9), Some(50)),
        ];
        assert_eq!(handoff_target(Some(10), &candidates, within), Some(2));
        // A voter that has not acknowledged lately (stopped, partitioned) is skipped, even
        // when it holds the longest log.
        let candidates = [
            follower(2, Some(10), Some(2_000)),
            follower(3, Some(8), Some(20)),
        ];
        assert_eq!(handoff_target(Some(10), &candidates, within), Some(3));
        let candidates = [follower(2, Some(10), None), follower(3, None, Some(900))];
        assert_eq!(handoff_target(Some(10), &candidates, within), None);
        assert_eq!(handoff_target(Some(10), &[], within), None);
        // An empty log is held by everyone.
        assert!(follower(2, None, Some(1)).caught_up(None));
        assert!(!follower(2, None, Some(1)).caught_up(Some(1)));
    }

    #[test]
    fn ticks_fall_between_the_bounds_and_differ_between_nodes() {
        let mut distinct = BTreeSet::new();
        for node in 1..=5 {
            for tick in 0..20 {
                let pause = tick_after(node, tick);
                assert!((TICK_MIN..=TICK_MAX).contains(&pause), "{pause:?}");
                distinct.insert(pause);
            }
            assert_eq!(tick_after(node, 7), tick_after(node, 7), "deterministic");
        }
        assert!(
            distinct.len() > 20,
            "only {} distinct pauses",
            distinct.len()
        );
        assert_ne!(
            (0..5).map(|tick| tick_after(1, tick)).collect::<Vec<_>>(),
            (0..5).map(|tick| tick_after(2, tick)).collect::<Vec<_>>()
        );
    }
}
