//! One replica of one Raft group on this node, and everything that is the group's own: its
//! Raft handle, its proposer, its lifecycle, and its tasks (close timer, metrics sampling,
//! removal watch). TiKV's peer FSM is the model: one owner per group, instead of node-wide
//! loops that each scan every group.
//!
//! ```text
//!   Registry ──open_group──► Group::start ──► Group { raft, reader, events, proposer,
//!      ▲                           │                  lifecycle: Open → Serving → Removed
//!      │ Host: removed,            │                             → Destroyed }
//!      │       destroy             ▼
//!      └──────────────────── tasks (two per group)
//!                              run_timers, every 100 ms: close due auctions (leader only,
//!                                          timers.rs); every 1 s: sample its gauges
//!                              watch, every 2 s: removed? (membership.rs) ──► stop, wait
//!                                          the grace period, ask the host to destroy
//! ```
//!
//! - `lifecycle`: the states and transitions, pure, with their tests.
//! - `membership`: gathering the evidence: its own membership (Open → Serving), the
//!   leader's status of the group (removed?).
//! - `tasks`: the group's tasks: its timers, and the watch that drives the lifecycle.
//!
//! What is not here: the map of groups and `node.json` (`registry`), the deletion of the
//! data (`RaftStore::destroy_group`, which the registry calls under its open lock so that a
//! group opened again at the same time is never touched), the close rules (`timers`), the
//! gauges (`telemetry`), the batching write path (`propose`).

pub mod lifecycle;
mod membership;
mod tasks;

pub use tasks::unix_ms;

use openraft::async_runtime::WatchReceiver as _;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use martelo_engine::GroupId;
use martelo_raft_store::{EventLog, StateReader};
use tracing::Instrument as _;

use super::Raft;
use super::balance::{self, Follower, GroupView};
use super::propose::Proposer;
use super::raft_transport::PeerChannels;
use crate::clock::{ClockGuard, WallClock};
use lifecycle::{Lifecycle, Phase, Refused};

/// What the node gives each of its groups: shared handles, no back pointer to the node.
#[derive(Clone, Debug)]
pub struct GroupContext {
    pub node_id: u64,
    pub peers: PeerChannels,
    pub clock: WallClock,
    pub clock_guard: ClockGuard,
    /// How long a removed replica keeps its data before it is deleted.
    pub removed_grace: Duration,
}

/// What a group needs of the node that holds it, for the steps of its lifecycle that touch
/// the node: `node.json` and the data. The registry implements it; the group holds it weakly.
pub trait Host: Send + Sync + 'static {
    /// Whether the node is stopping: the group's task ends.
    fn stopping(&self) -> bool;

    /// Moves `group` from Serving to Removed on evidence gathered during `generation` (see
    /// [`Lifecycle::removed`]) and, if it moved, records in `node.json` that it was removed
    /// at `removed_at_ms` (Unix milliseconds): it is not reopened at start, and its data is
    /// deleted once the grace period has passed, even across a restart. Both happen under
    /// the lock of `node.json`, so whoever sees the replica Removed also finds it recorded.
    fn removed(&self, group: &Group, generation: u64, removed_at_ms: u64) -> Result<(), Refused>;

    /// Deletes the data of `group`, a removed replica, and forgets it. Does nothing if the
    /// node no longer holds that replica (the group was opened again meanwhile).
    fn destroy(
        &self,
        group: Arc<Group>,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

/// One group's replica on this node. The handles are public: the services use them as they
/// are. The lifecycle is reached through methods.
#[derive(Debug)]
pub struct Group {
    pub id: GroupId,
    pub raft: Raft,
    pub reader: StateReader,
    pub events: EventLog,
    pub proposer: Proposer,
    lifecycle: Mutex<Lifecycle>,
}

impl Group {
    /// Makes the owner of a freshly started replica (Open), with its proposer, and starts
    /// its tasks, which end when the node stops or the replica is removed (the watch, once
    /// it has retired the replica).
    pub fn start<H: Host>(
        id: GroupId,
        raft: Raft,
        reader: StateReader,
        events: EventLog,
        context: &GroupContext,
        host: Weak<H>,
    ) -> Arc<Group> {
        let proposer = Proposer::start(
            id,
            raft.clone(),
            reader.clone(),
            context.clock.clone(),
            context.clock_guard.clone(),
        );
        let group = Arc::new(Group {
            id,
            raft,
            reader,
            events,
            proposer,
            lifecycle: Mutex::new(Lifecycle::new()),
        });
        // Every log line of the node carries its id, as the node's own tasks' do.
        let span = tracing::info_span!(parent: None, "node", node_id = context.node_id);
        tokio::spawn(
            tasks::run_timers(Arc::downgrade(&group), host.clone(), context.clone())
                .instrument(span.clone()),
        );
        tokio::spawn(tasks::watch(Arc::downgrade(&group), host, context.clone()).instrument(span));
        group
    }

    /// Where the replica is in its life.
    pub fn phase(&self) -> Phase {
        self.with_lifecycle(|lifecycle| lifecycle.phase())
    }

    /// Open or Serving: served, listed, reopened at start.
    pub fn is_live(&self) -> bool {
        self.with_lifecycle(|lifecycle| lifecycle.is_live())
    }

    /// `OpenGroup` asked for this replica again; false if it is not live (see
    /// [`Lifecycle::reopened`]).
    pub fn reopened(&self) -> bool {
        self.with_lifecycle(Lifecycle::reopened)
    }

    /// The replica's own membership lists this node (see [`Lifecycle::member_seen`]).
    fn member_seen(&self) -> bool {
        self.with_lifecycle(Lifecycle::member_seen)
    }

    fn generation(&self) -> u64 {
        self.with_lifecycle(|lifecycle| lifecycle.generation())
    }

    /// Serving becomes Removed, on evidence gathered during `generation` (for [`Host::removed`]).
    pub fn removed(&self, generation: u64) -> Result<(), Refused> {
        self.with_lifecycle(|lifecycle| lifecycle.removed(generation))
    }

    /// Removed becomes Destroyed (the registry calls it once the data is gone).
    pub fn destroyed(&self) -> Result<(), Refused> {
        self.with_lifecycle(Lifecycle::destroyed)
    }

    fn with_lifecycle<R>(&self, change: impl FnOnce(&mut Lifecycle) -> R) -> R {
        // A panic while holding this lock left a lifecycle that is still one of the four
        // states: go on with it.
        let mut lifecycle = self
            .lifecycle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut lifecycle)
    }

    /// The leader this replica knows of, with its address, and the current term.
    pub fn leader_hint(&self) -> martelo_proto::NotLeader {
        super::propose::leader_hint(self.id, &self.raft)
    }

    /// The voters and learners of the membership this replica holds.
    pub fn members(&self) -> (BTreeSet<u64>, BTreeSet<u64>) {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        (
            membership.voter_ids().collect(),
            membership.learner_ids().collect(),
        )
    }

    /// On a leader: its last log index, and how it sees every other voter except those in
    /// `excluded` (how much of the log each holds, when each last acknowledged). A follower
    /// knows no replication progress, so its list is empty.
    fn followers(&self, excluded: &BTreeSet<u64>) -> (Option<u64>, Vec<Follower>) {
        use openraft::Instant as _;
        let metrics = self.raft.metrics().borrow_watched().clone();
        let matched = metrics.replication.clone().unwrap_or_default();
        let acked = metrics.heartbeat.clone().unwrap_or_default();
        let followers = metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| *id != metrics.id && !excluded.contains(id))
            .map(|node_id| Follower {
                node_id,
                matched_index: matched
                    .get(&node_id)
                    .and_then(|log_id| log_id.as_ref().map(|log_id| log_id.index())),
                ack_age: acked
                    .get(&node_id)
                    .and_then(|at| at.as_ref().map(|at| at.elapsed())),
            })
            .collect();
        (metrics.last_log_index, followers)
    }

    /// The voter that should take over if this leader steps away (see
    /// [`balance::handoff_target`]); `None` on a follower or when no other voter is reachable.
    pub fn handoff_target(&self, excluded: &BTreeSet<u64>) -> Option<u64> {
        let (last_log_index, followers) = self.followers(excluded);
        balance::handoff_target(last_log_index, &followers, balance::ACK_WITHIN)
    }

    /// What the leader balancer needs to know of this group. Healthy voters are those that
    /// acknowledged lately and hold the whole log, less `excluded`.
    pub fn balance_view(&self, excluded: &BTreeSet<u64>) -> GroupView {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let (last_log_index, followers) = self.followers(excluded);
        GroupView {
            group: self.id.0,
            leader: metrics.current_leader,
            voters: metrics.membership_config.membership().voter_ids().collect(),
            healthy: followers
                .iter()
                .filter(|follower| {
                    follower.reachable(balance::ACK_WITHIN) && follower.caught_up(last_log_index)
                })
                .map(|follower| follower.node_id)
                .collect(),
        }
    }

    /// Asks voter `to` to take over leadership of this group, and waits up to `wait` until
    /// this replica knows another node leads. Returns that leader, or `None` if this node is
    /// not the leader, the group's Raft has stopped, or nobody took over in time (then the
    /// group elects a leader as after any leader loss).
    pub async fn transfer_leadership(&self, to: u64, wait: Duration) -> Option<u64> {
        let me = self.raft.metrics().borrow_watched().id;
        if to == me || !self.raft.is_leader() {
            return None;
        }
        let mut metrics = self.raft.metrics();
        self.raft.trigger().transfer_leader(to).await.ok()?;
        tokio::time::timeout(wait, async {
            loop {
                let leader = metrics.borrow_watched().current_leader;
                if let Some(leader) = leader.filter(|leader| *leader != me) {
                    return Some(leader);
                }
                if metrics.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}
