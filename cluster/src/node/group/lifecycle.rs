//! The lifecycle of one replica of a group on this node, as pure rules with their tests.
//!
//! ```text
//!   Open ──(its own membership lists this node)──► Serving
//!     │                                               │ proof of removal (the leader's
//!     │ (never a member: not removable)               │ committed membership lacks it)
//!     ▼                                               ▼
//!   (stays Open)                                   Removed ──(grace period over, or the
//!                                                     │        group is opened again here)
//!                                                     ▼
//!                                                  Destroyed (terminal)
//! ```
//!
//! - **Open**: created, its Raft starting, and not yet a member by its own membership: a
//!   replica opened by `OpenGroup` before the leader added it, or one waiting for `cluster
//!   init`. Peers do not list it, which proves nothing, so it cannot be judged removed.
//! - **Serving**: its membership lists this node as voter or learner.
//! - **Removed**: the leader's committed membership leaves this node out. The replica stops (Raft shut
//!   down, no longer served or listed) and `node.json` stops reopening it; its data stays for
//!   the grace period, so an operator's mistake can still be undone by hand.
//! - **Destroyed**: its data is deleted and the node forgot it. Opening the group again
//!   creates a new, empty replica with a new lifecycle.
//!
//! A removal is judged from evidence gathered over a network round trip, while an
//! `OpenGroup` for the same group may arrive (the group is being added back). Each
//! `OpenGroup` of a live replica starts a new *generation*; evidence gathered in an earlier
//! generation is void ([`Lifecycle::removed`]).
//!
//! What is not here: acting on the states (the group's task in `tasks.rs`, the registry's
//! destroy) and gathering the evidence (`membership.rs`).

use std::collections::BTreeSet;
use std::time::Duration;

/// Where a replica is in its life (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Open,
    Serving,
    Removed,
    Destroyed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Open => "open",
            Phase::Serving => "serving",
            Phase::Removed => "removed",
            Phase::Destroyed => "destroyed",
        }
    }
}

/// Why a transition was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a replica that is {0:?} cannot become {1:?}")]
    Illegal(Phase, Phase),
    /// The group was opened again on this node after the evidence was gathered.
    #[error("the evidence of removal predates the group's latest opening")]
    Stale,
}

/// One replica's phase and generation.
#[derive(Debug)]
pub struct Lifecycle {
    phase: Phase,
    generation: u64,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A replica just created: Open, generation 0.
    pub fn new() -> Lifecycle {
        Lifecycle {
            phase: Phase::Open,
            generation: 0,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Open or Serving: the node serves the replica, lists it and reopens it at start.
    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Serving)
    }

    /// The replica's own membership lists this node: Open becomes Serving. Returns whether
    /// the phase changed; any other phase stays as it is.
    pub fn member_seen(&mut self) -> bool {
        if self.phase == Phase::Open {
            self.phase = Phase::Serving;
            return true;
        }
        false
    }

    /// `OpenGroup` asked for this replica again: if it is live, a new generation begins, and
    /// evidence of removal gathered before it no longer counts. Returns whether it is live
    /// (a removed replica is not reopened: it is destroyed and replaced).
    pub fn reopened(&mut self) -> bool {
        if !self.is_live() {
            return false;
        }
        self.generation += 1;
        true
    }

    /// Evidence gathered during `generation` proves this node was removed from the group:
    /// Serving becomes Removed. An Open replica was never a member, so it is refused, as is
    /// evidence from an earlier generation.
    pub fn removed(&mut self, generation: u64) -> Result<(), Refused> {
        if self.phase != Phase::Serving {
            return Err(Refused::Illegal(self.phase, Phase::Removed));
        }
        if generation != self.generation {
            return Err(Refused::Stale);
        }
        self.phase = Phase::Removed;
        Ok(())
    }

    /// The removed replica's data is deleted: Removed becomes Destroyed, for good.
    pub fn destroyed(&mut self) -> Result<(), Refused> {
        if self.phase != Phase::Removed {
            return Err(Refused::Illegal(self.phase, Phase::Destroyed));
        }
        self.phase = Phase::Destroyed;
        Ok(())
    }
}

/// A group's membership as one replica holds it, with its role and how far its log is
/// committed: this node's own replica, or a peer's status of the group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipView {
    pub voters: BTreeSet<u64>,
    pub learners: BTreeSet<u64>,
    /// Whether the replica holding this view says it leads the group.
    pub leader: bool,
    pub committed_index: Option<u64>,
    pub last_log_index: Option<u64>,
}

impl MembershipView {
    /// Whether this membership lists node `me` as voter or learner.
    pub fn lists(&self, me: u64) -> bool {
        self.voters.contains(&me) || self.learners.contains(&me)
    }
}

/// Whether `view` proves that node `me` is no longer a member of the group. It must be the
/// leader's view (its log holds every committed entry, so its membership is the newest), a
/// real membership (some voter), leave `me` out as both voter and learner, and be
/// committed: the leader has committed its whole log, which contains the entry (or
/// snapshot) the membership came from. An uncommitted membership could still be replaced by
/// one that keeps `me`, and a replica that deleted its data on the strength of it would have
/// forgotten its vote.
///
/// A follower's or this node's own view proves nothing: either may be a prefix of the
/// history (a replica catching up from scratch goes through every past membership, some
/// without it). And openraft stops replicating to a removed node as soon as the leader
/// appends the membership without it, so the removed replica itself seldom learns that the
/// change committed: the leader must be asked.
pub fn proves_removal(me: u64, view: &MembershipView) -> bool {
    let whole_log_committed = match (view.committed_index, view.last_log_index) {
        (Some(committed), Some(last)) => committed >= last,
        _ => false,
    };
    view.leader && !view.voters.is_empty() && !view.lists(me) && whole_log_committed
}

/// How long a replica removed at `removed_at_ms` (Unix milliseconds) keeps its data at
/// `now_ms`, with `grace` in all: zero once the grace period is over. A clock that went
/// back makes it no longer than `grace`.
pub fn grace_left(removed_at_ms: u64, grace: Duration, now_ms: u64) -> Duration {
    let elapsed = Duration::from_millis(now_ms.saturating_sub(removed_at_ms));
    grace.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(voters: &[u64], learners: &[u64], committed: u64, last: u64) -> MembershipView {
        MembershipView {
            voters: voters.iter().copied().collect(),
            learners: learners.iter().copied().collect(),
            leader: true,
            committed_index: Some(committed),
            last_log_index: Some(last),
        }
    }

    #[test]
    fn a_replica_goes_open_serving_removed_destroyed() {
        let mut lifecycle = Lifecycle::new();
        assert_eq!(lifecycle.phase(), Phase::Open);
        assert!(lifecycle.is_live());
        assert!(lifecycle.member_seen());
        assert_eq!(lifecycle.phase(), Phase::Serving);
        assert!(!lifecycle.member_seen(), "already serving");
        assert_eq!(lifecycle.removed(lifecycle.generation()), Ok(()));
        assert_eq!(lifecycle.phase(), Phase::Removed);
        assert!(!lifecycle.is_live());
        assert!(!lifecycle.member_seen(), "a removed replica stays removed");
        assert_eq!(lifecycle.destroyed(), Ok(()));
        assert_eq!(lifecycle.phase(), Phase::Destroyed);
    }

    #[test]
    fn a_replica_that_never_was_a_member_cannot_be_removed() {
        let mut lifecycle = Lifecycle::new();
        assert_eq!(
            lifecycle.removed(0),
            Err(Refused::Illegal(Phase::Open, Phase::Removed))
        );
        assert_eq!(lifecycle.phase(), Phase::Open);
        assert_eq!(
            lifecycle.destroyed(),
            Err(Refused::Illegal(Phase::Open, Phase::Destroyed))
        );
    }

    #[test]
    fn only_a_removed_replica_is_destroyed_and_destroyed_is_final() {
        let mut lifecycle = Lifecycle::new();
        lifecycle.member_seen();
        assert_eq!(
            lifecycle.destroyed(),
            Err(Refused::Illegal(Phase::Serving, Phase::Destroyed))
        );
        lifecycle.removed(0).expect("removed");
        lifecycle.destroyed().expect("destroyed");
        assert_eq!(
            lifecycle.destroyed(),
            Err(Refused::Illegal(Phase::Destroyed, Phase::Destroyed))
        );
        assert_eq!(
            lifecycle.removed(0),
            Err(Refused::Illegal(Phase::Destroyed, Phase::Removed))
        );
        assert!(!lifecycle.member_seen());
        assert_eq!(lifecycle.phase(), Phase::Destroyed);
    }

    #[test]
    fn evidence_gathered_before_the_group_was_opened_again_is_void() {
        let mut lifecycle = Lifecycle::new();
        lifecycle.member_seen();
        let seen_at = lifecycle.generation();
        // The group is added back to this node while the removal check is on the wire.
        assert!(lifecycle.reopened());
        assert_eq!(lifecycle.removed(seen_at), Err(Refused::Stale));
        assert_eq!(lifecycle.phase(), Phase::Serving);
        assert_eq!(lifecycle.removed(lifecycle.generation()), Ok(()));
        // A removed replica is not reopened: the caller replaces it.
        assert!(!lifecycle.reopened());
        assert_eq!(lifecycle.phase(), Phase::Removed);
    }

    #[test]
    fn only_a_committed_membership_without_this_node_proves_removal() {
        // The leader's whole log is committed and lists 1, 2 and 4: node 3 is out.
        assert!(proves_removal(3, &view(&[1, 2, 4], &[], 20, 20)));
        // Still a voter, or a learner: not removed.
        assert!(!proves_removal(3, &view(&[1, 2, 3], &[], 20, 20)));
        assert!(!proves_removal(3, &view(&[1, 2], &[3], 20, 20)));
        // Entries past the commit point may hold the membership: it may not be committed.
        assert!(!proves_removal(3, &view(&[1, 2], &[], 19, 20)));
        // A replica with no membership (not initialized) proves nothing.
        assert!(!proves_removal(3, &view(&[], &[], 0, 0)));
        let unknown = MembershipView {
            voters: [1, 2].into(),
            leader: true,
            ..MembershipView::default()
        };
        assert!(!proves_removal(3, &unknown), "no log positions");
        // A follower may be behind (catching up through past memberships): not proof.
        let follower = MembershipView {
            leader: false,
            ..view(&[1, 2, 4], &[], 20, 20)
        };
        assert!(!proves_removal(3, &follower));
    }

    #[test]
    fn the_grace_period_counts_from_the_removal() {
        let grace = Duration::from_secs(60);
        assert_eq!(grace_left(1_000, grace, 1_000), grace);
        assert_eq!(grace_left(1_000, grace, 31_000), Duration::from_secs(30));
        assert_eq!(grace_left(1_000, grace, 61_000), Duration::ZERO);
        assert_eq!(grace_left(1_000, grace, 999_000), Duration::ZERO);
        // A clock that went back does not stretch the grace period.
        assert_eq!(grace_left(5_000, grace, 1_000), grace);
        assert_eq!(grace_left(0, Duration::ZERO, 0), Duration::ZERO);
    }
}
