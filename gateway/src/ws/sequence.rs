//! [`Tracker`]: one connection's seq discipline for one auction. Pure.
//!
//! A connection sends an auction's events with seqs increasing by exactly one after the
//! snapshot (or resume point) it started from. The tracker skips duplicates, turns a gap
//! into a snapshot fetch, and while a snapshot is being read keeps the events that arrive
//! (bounded) so that those after the snapshot's seq follow it without a gap.

use std::sync::Arc;

use crate::fanout::Delivered;
use crate::ws::protocol::SnapshotReason;

/// What the connection does next for this auction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this event.
    Send(Arc<Delivered>),
    /// Start reading a snapshot; send it with this reason.
    Fetch(SnapshotReason),
}

#[derive(Debug)]
enum State {
    /// Sent everything up to `last`.
    Live { last: u64 },
    /// A snapshot is being read. `buffer` holds events that came meanwhile; `stale` says
    /// some were dropped (or a reset came), so the snapshot being read may be too old and
    /// another must be read.
    Fetching {
        reason: SnapshotReason,
        buffer: Vec<Arc<Delivered>>,
        stale: bool,
    },
}

/// One auction's seq state for one connection.
#[derive(Debug)]
pub struct Tracker {
    state: State,
    buffer_max: usize,
}

impl Tracker {
    /// A tracker waiting for a snapshot (`reason`); at most `buffer_max` events wait for it.
    pub fn fetching(reason: SnapshotReason, buffer_max: usize) -> Tracker {
        Tracker {
            state: State::Fetching {
                reason,
                buffer: Vec::new(),
                stale: false,
            },
            buffer_max: buffer_max.max(1),
        }
    }

    /// A tracker that has sent everything up to `last` (a resume).
    pub fn live(last: u64, buffer_max: usize) -> Tracker {
        Tracker {
            state: State::Live { last },
            buffer_max: buffer_max.max(1),
        }
    }

    /// The last seq sent, when live.
    pub fn last(&self) -> Option<u64> {
        match self.state {
            State::Live { last } => Some(last),
            State::Fetching { .. } => None,
        }
    }

    /// An event from the hub: what to do with it.
    pub fn on_event(&mut self, delivered: Arc<Delivered>) -> Option<Step> {
        match &mut self.state {
            State::Live { last } => {
                if delivered.seq <= *last {
                    None
                } else if delivered.seq == *last + 1 {
                    *last = delivered.seq;
                    Some(Step::Send(delivered))
                } else {
                    self.state = State::Fetching {
                        reason: SnapshotReason::Gap,
                        buffer: vec![delivered],
                        stale: false,
                    };
                    Some(Step::Fetch(SnapshotReason::Gap))
                }
            }
            State::Fetching { buffer, stale, .. } => {
                if buffer.len() < self.buffer_max {
                    buffer.push(delivered);
                } else {
                    buffer.clear();
                    *stale = true;
                }
                None
            }
        }
    }

    /// The hub asks for a snapshot (`reason`): start reading one unless one is being read
    /// (then that one is read again once it comes, as it may predate the reset).
    pub fn on_reset(&mut self, reason: SnapshotReason) -> Option<Step> {
        match &mut self.state {
            State::Live { .. } => {
                *self = Tracker::fetching(reason, self.buffer_max);
                Some(Step::Fetch(reason))
            }
            State::Fetching { stale, buffer, .. } => {
                buffer.clear();
                *stale = true;
                None
            }
        }
    }

    /// A snapshot at `seq` was read. `Ok(reason)`: send it with that reason, then the
    /// returned steps (events after it, maybe a new fetch on a gap). `Err(reason)`: it may
    /// be too old; read another.
    pub fn on_snapshot(&mut self, seq: u64) -> Result<(SnapshotReason, Vec<Step>), SnapshotReason> {
        let State::Fetching {
            reason,
            buffer,
            stale,
        } = &mut self.state
        else {
            // Not waiting for one (cannot happen: the caller fetches only when told).
            return Ok((SnapshotReason::Gap, Vec::new()));
        };
        let reason = *reason;
        if *stale {
            *stale = false;
            buffer.clear();
            return Err(reason);
        }
        let buffered = std::mem::take(buffer);
        self.state = State::Live { last: seq };
        let mut steps = Vec::new();
        for delivered in buffered {
            if let Some(step) = self.on_event(delivered) {
                steps.push(step);
            }
        }
        Ok((reason, steps))
    }
}

#[cfg(test)]
mod tests {
    use martelo_engine::{AuctionEvent, AuctionEventKind, AuctionId, Timestamp};

    use super::*;

    fn event(seq: u64) -> Arc<Delivered> {
        Arc::new(Delivered::new(
            AuctionEvent {
                auction_id: AuctionId(1),
                seq,
                at: Timestamp(seq),
                kind: AuctionEventKind::PriceCleared,
            },
            seq,
            Timestamp(seq),
        ))
    }

    fn sent(steps: &[Step]) -> Vec<u64> {
        steps
            .iter()
            .filter_map(|step| match step {
                Step::Send(delivered) => Some(delivered.seq),
                Step::Fetch(_) => None,
            })
            .collect()
    }

    #[test]
    fn live_events_pass_once_in_order_and_a_gap_asks_for_a_snapshot() {
        let mut tracker = Tracker::live(4, 8);
        assert_eq!(tracker.on_event(event(3)), None);
        assert_eq!(tracker.on_event(event(4)), None);
        assert!(matches!(tracker.on_event(event(5)), Some(Step::Send(_))));
        assert_eq!(tracker.on_event(event(5)), None);
        assert_eq!(
            tracker.on_event(event(7)),
            Some(Step::Fetch(SnapshotReason::Gap))
        );
        assert_eq!(tracker.last(), None);
    }

    #[test]
    fn events_that_come_during_a_fetch_follow_the_snapshot_without_gap_or_duplicate() {
        let mut tracker = Tracker::fetching(SnapshotReason::New, 8);
        for seq in 10..=14 {
            assert_eq!(tracker.on_event(event(seq)), None);
        }
        // The snapshot is at 12: 13 and 14 follow, 10 to 12 are in it.
        let (reason, steps) = tracker.on_snapshot(12).unwrap();
        assert_eq!(reason, SnapshotReason::New);
        assert_eq!(sent(&steps), [13, 14]);
        assert_eq!(tracker.last(), Some(14));
    }

    #[test]
    fn a_snapshot_older_than_the_buffered_events_asks_for_another() {
        let mut tracker = Tracker::fetching(SnapshotReason::Conflated, 8);
        tracker.on_event(event(20));
        let (_, steps) = tracker.on_snapshot(17).unwrap();
        assert_eq!(steps, [Step::Fetch(SnapshotReason::Gap)]);
    }

    #[test]
    fn an_overflowing_fetch_buffer_or_a_reset_makes_the_snapshot_stale() {
        let mut tracker = Tracker::fetching(SnapshotReason::Gap, 2);
        for seq in 1..=3 {
            tracker.on_event(event(seq));
        }
        assert_eq!(tracker.on_snapshot(0).unwrap_err(), SnapshotReason::Gap);
        // The second read is good.
        tracker.on_event(event(4));
        let (_, steps) = tracker.on_snapshot(3).unwrap();
        assert_eq!(sent(&steps), [4]);
        // A reset while live starts a fetch; a reset during a fetch makes it stale.
        assert_eq!(
            tracker.on_reset(SnapshotReason::Resync),
            Some(Step::Fetch(SnapshotReason::Resync))
        );
        assert_eq!(tracker.on_reset(SnapshotReason::Conflated), None);
        assert!(tracker.on_snapshot(9).is_err());
        assert!(tracker.on_snapshot(9).is_ok());
        assert_eq!(tracker.last(), Some(9));
    }
}
