//! Leader timers: each group's leader proposes `Close` for its auctions at their effective end.
//!
//! Every [`TICK`] the node looks, in each group it leads, for open auctions whose end has
//! passed by its clock, and proposes `Close` for each (one in flight per auction). The engine
//! closes an auction only if the command's timestamp has reached its end, and the leader's
//! stamps are never before its clock, so a close is never early. After a leader change the
//! new leader finds the same auctions on its next tick, so an auction stays open past its end
//! by at most an election timeout plus one tick.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use martelo_engine::{AuctionId, Command, GroupId};

use super::registry::{Registry, Ticker};

/// How often leaders look for auctions to close.
pub const TICK: Duration = Duration::from_millis(100);
/// Most closes one group proposes per tick.
const CLOSES_PER_TICK_MAX: usize = 256;

pub async fn run(registry: Weak<Registry>) {
    let in_flight: Arc<Mutex<BTreeSet<(GroupId, AuctionId)>>> = Arc::default();
    let mut ticker = Ticker::new(registry, TICK);
    while let Some(registry) = ticker.next().await {
        let now = registry.wall_now();
        for group in registry.groups() {
            if !group.raft.is_leader() {
                continue;
            }
            let due: Vec<AuctionId> = group
                .reader
                .read(|state, _| state.due_for_close(now).take(CLOSES_PER_TICK_MAX).collect())
                .unwrap_or_default();
            for auction in due {
                let key = (group.id, auction);
                let fresh = in_flight.lock().is_ok_and(|mut set| set.insert(key));
                if !fresh {
                    continue;
                }
                let group = Arc::clone(&group);
                let in_flight = Arc::clone(&in_flight);
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
                            metrics::counter!("martelo_close_proposals_total", "result" => "applied").increment(1);
                            tracing::info!(
                                group = group.id.0,
                                auction = auction.0,
                                log_index = proposed.log_index,
                                accepted = proposed.outcome.reply.is_accepted(),
                                "close proposed"
                            );
                        }
                        Err(error) => {
                            metrics::counter!("martelo_close_proposals_total", "result" => "failed").increment(1);
                            tracing::debug!(
                                group = group.id.0,
                                auction = auction.0,
                                ?error,
                                "close not applied; retrying next tick"
                            );
                        }
                    }
                    if let Ok(mut set) = in_flight.lock() {
                        set.remove(&key);
                    }
                });
            }
        }
    }
}
