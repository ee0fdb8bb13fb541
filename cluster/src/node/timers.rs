//! Leader timers: each group's leader proposes `Close` for its auctions at their effective end.
//!
//! Every [`TICK`] each group's task (`group/tasks.rs`) asks its [`CloseTimer`] to look, if
//! this node leads the group, for open auctions whose end has passed by its clock, and to
//! propose `Close` for each (one in flight per auction). The engine closes an auction only if
//! the command's timestamp has reached its end, and the leader's stamps are never before its
//! clock, so a close is never early. After a leader change the new leader finds the same
//! auctions on its next tick, so an auction stays open past its end by at most an election
//! timeout plus one tick.
//!
//! The same tick moves an auction group to the newest rules its leader's build knows: while
//! the group's state is at an older [`RulesVersion`], the leader proposes
//! `Command::AdoptRules` (one in flight at a time). Every replica then applies the rest of the
//! log under those rules, whatever build it runs, and a replica whose build does not know
//! them stops rather than fork (`State::apply`). So upgrade every node before any of them
//! leads on the new build: the storage format that came with rules 2 is not rolling anyway
//! (docs/OPERATIONS.md, "Upgrading").

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use martelo_engine::{AuctionId, Command, GroupId, RulesVersion, Timestamp};

use super::group::Group;
use super::metric_names::CLOSE_PROPOSALS_TOTAL;

/// How often leaders look for auctions to close.
pub const TICK: Duration = Duration::from_millis(100);
/// Most closes one group proposes per tick.
const CLOSES_PER_TICK_MAX: usize = 256;

/// One group's close timer: the auctions whose `Close` is in flight, and whether an
/// `AdoptRules` is.
#[derive(Debug, Default)]
pub struct CloseTimer {
    in_flight: Arc<Mutex<BTreeSet<AuctionId>>>,
    adopting: Arc<AtomicBool>,
}

impl CloseTimer {
    /// One tick at wall time `now`: on the leader, proposes `AdoptRules` if the group's rules
    /// are older than this build's, and `Close` for each due auction that has none in
    /// flight. Each proposal runs in a task of its own.
    pub fn tick(&mut self, group: &Arc<Group>, now: Timestamp) {
        if !group.raft.is_leader() {
            return;
        }
        self.adopt_rules(group);
        let due: Vec<AuctionId> = group
            .reader
            .read(|state, _| state.due_for_close(now).take(CLOSES_PER_TICK_MAX).collect())
            .unwrap_or_default();
        for auction in due {
            let fresh = self
                .in_flight
                .lock()
                .is_ok_and(|mut set| set.insert(auction));
            if !fresh {
                continue;
            }
            let group = Arc::clone(group);
            let in_flight = Arc::clone(&self.in_flight);
            tokio::spawn(async move {
                let outcome = group
                    .proposer
                    .propose(
                        Command::Close {
                            auction_id: auction,
                        },
                        None,
                    )
                    .await;
                match outcome {
                    Ok(proposed) => {
                        metrics::counter!(CLOSE_PROPOSALS_TOTAL, "result" => "applied")
                            .increment(1);
                        tracing::info!(
                            group = group.id.0,
                            auction = auction.0,
                            log_index = proposed.log_index,
                            accepted = proposed.outcome.reply.is_accepted(),
                            "close proposed"
                        );
                    }
                    Err(error) => {
                        metrics::counter!(CLOSE_PROPOSALS_TOTAL, "result" => "failed").increment(1);
                        tracing::debug!(
                            group = group.id.0,
                            auction = auction.0,
                            ?error,
                            "close not applied; retrying next tick"
                        );
                    }
                }
                if let Ok(mut set) = in_flight.lock() {
                    set.remove(&auction);
                }
            });
        }
    }

    /// On an auction group's leader whose state is at older rules than
    /// [`RulesVersion::CURRENT`], proposes adopting them, unless a proposal is in flight.
    fn adopt_rules(&self, group: &Arc<Group>) {
        if group.id == GroupId::META {
            return; // the meta group applies meta commands only
        }
        let behind = group
            .reader
            .read(|state, _| state.rules() < RulesVersion::CURRENT)
            .unwrap_or(false);
        if !behind || self.adopting.swap(true, Ordering::AcqRel) {
            return;
        }
        let group = Arc::clone(group);
        let adopting = Arc::clone(&self.adopting);
        tokio::spawn(async move {
            let version = RulesVersion::CURRENT;
            match group
                .proposer
                .propose(Command::AdoptRules { version }, None)
                .await
            {
                Ok(proposed) => tracing::info!(
                    group = group.id.0,
                    rules = version.0,
                    log_index = proposed.log_index,
                    "rules version adopted"
                ),
                Err(error) => tracing::debug!(
                    group = group.id.0,
                    ?error,
                    "rules version not adopted; retrying next tick"
                ),
            }
            adopting.store(false, Ordering::Release);
        });
    }
}
