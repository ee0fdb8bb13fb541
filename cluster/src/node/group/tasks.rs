//! The tasks of one group's replica: everything the replica does by itself, on timers, for
//! as long as it lives. Two tasks, so that a slow peer never delays a close:
//!
//! - every [`timers::TICK`]: on the leader, propose `Close` for auctions that are due
//!   ([`timers::CloseTimer`]);
//! - every [`telemetry::SAMPLE_EVERY`]: refresh the group's gauges ([`GroupSampler`]);
//! - as soon as the replica's own membership lists this node: Open becomes Serving; then
//!   every [`membership::CHECK_EVERY`], Serving becomes Removed once a removal is proven.
//!
//! Once removed, the watching task stops the replica (its Raft shuts down; the registry no longer
//! serves or lists it), records the removal in `node.json`, waits out the grace period and
//! asks the node to destroy the replica's data. The task ends when the node stops (a removal
//! still waiting is finished at the next start, from `node.json`) or the replica is gone.

use openraft::async_runtime::WatchReceiver as _;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::lifecycle::{Phase, Refused, grace_left};
use super::{Group, GroupContext, Host, membership};
use crate::node::telemetry::{self, GroupSampler};
use crate::node::timers;

/// Runs the replica's timers (closes, gauges) while it is live and the node runs.
pub async fn run_timers<H: Host>(group: Weak<Group>, host: Weak<H>, context: GroupContext) {
    let Some(id) = group.upgrade().map(|group| group.id) else {
        return;
    };
    let mut close_tick = ticker(timers::TICK);
    let mut sample_tick = ticker(telemetry::SAMPLE_EVERY);
    let mut closer = timers::CloseTimer::default();
    let mut sampler = GroupSampler::new(id);
    loop {
        tokio::select! {
            _ = close_tick.tick() => {
                let Some(group) = live(&group, &host) else { return };
                closer.tick(&group, context.clock.now());
            }
            _ = sample_tick.tick() => {
                let Some(group) = live(&group, &host) else { return };
                sampler.sample(&group);
            }
        }
    }
}

/// Watches the replica's membership until it is removed, then retires it. A task of its own,
/// so that asking a peer never delays a close.
pub async fn watch<H: Host>(group: Weak<Group>, host: Weak<H>, context: GroupContext) {
    if !serving(&group, context.node_id).await {
        return;
    }
    let mut membership_tick = ticker(membership::CHECK_EVERY);
    loop {
        membership_tick.tick().await;
        let Some(replica) = live(&group, &host) else {
            return;
        };
        if let Some(removed_at_ms) = watch_membership(&replica, &host, &context).await {
            retire(group, host, context, removed_at_ms).await;
            return;
        }
    }
}

/// Waits, while the replica is Open, until its own membership lists this node, and makes it
/// Serving then: at once, so that a removal soon after is not mistaken for "never a member".
/// False if the replica's Raft stopped first.
async fn serving(group: &Weak<Group>, node_id: u64) -> bool {
    let Some(mut metrics) = group.upgrade().map(|group| group.raft.metrics()) else {
        return false;
    };
    loop {
        let Some(replica) = group.upgrade() else {
            return false;
        };
        if replica.phase() != Phase::Open {
            return true;
        }
        if membership::own_view(&replica).lists(node_id) && replica.member_seen() {
            tracing::debug!(
                group = replica.id.0,
                "group serving: its membership lists this node"
            );
            return true;
        }
        drop(replica);
        if metrics.changed().await.is_err() {
            return false;
        }
    }
}

/// The replica, while it is live and the node runs.
fn live<H: Host>(group: &Weak<Group>, host: &Weak<H>) -> Option<Arc<Group>> {
    if host.upgrade()?.stopping() {
        return None;
    }
    group.upgrade().filter(|group| group.is_live())
}

/// Moves the lifecycle on from what the group's membership says; returns when the replica
/// became Removed, if it has just become so.
async fn watch_membership<H: Host>(
    group: &Group,
    host: &Weak<H>,
    context: &GroupContext,
) -> Option<u64> {
    if group.phase() != Phase::Serving {
        return None;
    }
    let generation = group.generation();
    if !membership::removal_proven(group, context).await {
        return None;
    }
    let removed_at_ms = unix_ms();
    match host.upgrade()?.removed(group, generation, removed_at_ms) {
        Ok(()) => Some(removed_at_ms),
        Err(Refused::Stale) => {
            tracing::info!(
                group = group.id.0,
                "the group was opened here again while its removal was being checked: it stays"
            );
            None
        }
        Err(Refused::Illegal(..)) => None,
    }
}

/// Stops a removed replica (its removal is recorded already) and destroys its data after the
/// grace period.
async fn retire<H: Host>(
    group: Weak<Group>,
    host: Weak<H>,
    context: GroupContext,
    removed_at_ms: u64,
) {
    let Some(replica) = group.upgrade() else {
        return;
    };
    let id = replica.id;
    tracing::warn!(
        group = id.0,
        grace_ms = context.removed_grace.as_millis() as u64,
        "group removed: this node is no longer a member; its replica stops, and its data is \
         deleted after the grace period"
    );
    if let Err(error) = replica.raft.shutdown().await {
        tracing::warn!(group = id.0, %error, "the removed group's Raft did not stop cleanly");
    }
    telemetry::forget_group(id);
    drop(replica);
    tokio::time::sleep(grace_left(removed_at_ms, context.removed_grace, unix_ms())).await;
    let (Some(host), Some(replica)) = (host.upgrade(), group.upgrade()) else {
        return;
    };
    // A node that stops now destroys the replica at its next start, from node.json.
    if host.stopping() {
        return;
    }
    if let Err(error) = host.destroy(replica).await {
        tracing::error!(
            group = id.0,
            error = %format!("{error:#}"),
            "cannot delete the removed group's data; the next start tries again"
        );
    }
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Now, in Unix milliseconds, by the system clock. The grace period is this node's own
/// business, not cluster time, so it does not follow the test-only clock offset.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
