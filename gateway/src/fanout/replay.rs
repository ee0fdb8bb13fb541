//! [`ReplayStore`]: the last events of each auction, for clients that resume with
//! `after_seq`, and the hub's per-auction `seq` check (duplicates and gaps).
//!
//! Each auction's buffer holds a *contiguous* run of seqs (at most `per_auction` events);
//! at most `auctions_max` auctions have one, and the least recently used is dropped first.
//! A replay answers only when every event after `after_seq` is in the buffer, so a resume
//! is exact or refused (the client then gets a snapshot), never a silent gap. Pure.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use martelo_engine::AuctionId;

use super::Delivered;

/// What [`ReplayStore::record`] made of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The next seq of a buffered auction.
    Appended,
    /// The first event seen of this auction (or since its buffer was dropped).
    Started,
    /// The seq was seen before: not recorded, and not to be fanned out again.
    Duplicate,
    /// Seqs were missed (`expected` was next): the buffer starts over from this event.
    Gap { expected: u64 },
}

/// What [`ReplayStore::since`] can replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Every event after `after_seq` that this gateway has seen, in seq order (maybe none).
    Events(Vec<Arc<Delivered>>),
    /// Some events after `after_seq` are not here (never seen, or dropped).
    Missing,
}

#[derive(Debug)]
struct Buffer {
    events: VecDeque<Arc<Delivered>>,
    used: u64,
}

/// The replay buffers, bounded in auctions and in events per auction.
#[derive(Debug)]
pub struct ReplayStore {
    buffers: HashMap<AuctionId, Buffer>,
    /// Use tick → auction, oldest first (the LRU order).
    by_use: BTreeMap<u64, AuctionId>,
    tick: u64,
    per_auction: usize,
    auctions_max: usize,
}

impl ReplayStore {
    /// A store of at most `auctions_max` auctions × `per_auction` events (each at least 1).
    pub fn new(per_auction: usize, auctions_max: usize) -> ReplayStore {
        ReplayStore {
            buffers: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
            per_auction: per_auction.max(1),
            auctions_max: auctions_max.max(1),
        }
    }

    fn touch(&mut self, auction: AuctionId) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(buffer) = self.buffers.get_mut(&auction) {
            self.by_use.remove(&buffer.used);
            buffer.used = tick;
            self.by_use.insert(tick, auction);
        }
    }

    /// Records a committed event; see [`Recorded`].
    pub fn record(&mut self, delivered: Arc<Delivered>) -> Recorded {
        let auction = delivered.auction;
        let seq = delivered.seq;
        let outcome = match self.buffers.get_mut(&auction) {
            Some(buffer) => {
                let last = buffer.events.back().map_or(0, |event| event.seq);
                if seq <= last {
                    return Recorded::Duplicate;
                }
                let outcome = if seq == last + 1 {
                    Recorded::Appended
                } else {
                    buffer.events.clear();
                    Recorded::Gap { expected: last + 1 }
                };
                buffer.events.push_back(delivered);
                while buffer.events.len() > self.per_auction {
                    buffer.events.pop_front();
                }
                outcome
            }
            None => {
                while self.buffers.len() >= self.auctions_max {
                    let Some((_, oldest)) = self.by_use.pop_first() else {
                        break;
                    };
                    self.buffers.remove(&oldest);
                }
                self.buffers.insert(
                    auction,
                    Buffer {
                        events: VecDeque::from([delivered]),
                        used: 0,
                    },
                );
                Recorded::Started
            }
        };
        self.touch(auction);
        outcome
    }

    /// The events of `auction` after `after_seq`, if all of them are here.
    pub fn since(&mut self, auction: AuctionId, after_seq: u64) -> Replay {
        self.touch(auction);
        let Some(buffer) = self.buffers.get(&auction) else {
            return Replay::Missing;
        };
        let Some(first) = buffer.events.front() else {
            return Replay::Missing;
        };
        if first.seq > after_seq.saturating_add(1) {
            return Replay::Missing;
        }
        Replay::Events(
            buffer
                .events
                .iter()
                .filter(|event| event.seq > after_seq)
                .cloned()
                .collect(),
        )
    }

    /// The last seq seen of `auction`, if it has a buffer.
    pub fn last_seq(&self, auction: AuctionId) -> Option<u64> {
        self.buffers
            .get(&auction)
            .and_then(|buffer| buffer.events.back())
            .map(|event| event.seq)
    }

    /// Drops the buffers of the auctions `drop` names (a group that must start over).
    pub fn drop_where(&mut self, drop: impl Fn(AuctionId) -> bool) {
        let gone: Vec<AuctionId> = self
            .buffers
            .keys()
            .copied()
            .filter(|auction| drop(*auction))
            .collect();
        for auction in gone {
            if let Some(buffer) = self.buffers.remove(&auction) {
                self.by_use.remove(&buffer.used);
            }
        }
    }

    /// Auctions with a buffer.
    pub fn auctions(&self) -> usize {
        self.buffers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(auction: u64, seq: u64) -> Arc<Delivered> {
        Delivered::for_test(auction, seq)
    }

    fn seqs(replay: Replay) -> Option<Vec<u64>> {
        match replay {
            Replay::Events(events) => Some(events.iter().map(|event| event.seq).collect()),
            Replay::Missing => None,
        }
    }

    #[test]
    fn contiguous_seqs_append_and_duplicates_are_refused() {
        let mut store = ReplayStore::new(10, 10);
        assert_eq!(store.record(event(1, 5)), Recorded::Started);
        assert_eq!(store.record(event(1, 6)), Recorded::Appended);
        assert_eq!(store.record(event(1, 6)), Recorded::Duplicate);
        assert_eq!(store.record(event(1, 3)), Recorded::Duplicate);
        assert_eq!(store.last_seq(AuctionId(1)), Some(6));
    }

    #[test]
    fn a_gap_restarts_the_buffer_so_replays_never_skip_a_seq() {
        let mut store = ReplayStore::new(10, 10);
        store.record(event(1, 1));
        store.record(event(1, 2));
        assert_eq!(store.record(event(1, 5)), Recorded::Gap { expected: 3 });
        assert_eq!(seqs(store.since(AuctionId(1), 1)), None);
        assert_eq!(seqs(store.since(AuctionId(1), 4)), Some(vec![5]));
    }

    #[test]
    fn a_replay_is_exact_when_every_missed_event_is_buffered_and_refused_otherwise() {
        let mut store = ReplayStore::new(3, 10);
        for seq in 1..=5 {
            store.record(event(1, seq));
        }
        // Holds 3, 4, 5.
        assert_eq!(seqs(store.since(AuctionId(1), 2)), Some(vec![3, 4, 5]));
        assert_eq!(seqs(store.since(AuctionId(1), 4)), Some(vec![5]));
        assert_eq!(seqs(store.since(AuctionId(1), 5)), Some(vec![]));
        // A client ahead of this gateway: nothing to replay, nothing missing here.
        assert_eq!(seqs(store.since(AuctionId(1), 9)), Some(vec![]));
        // 2 is gone.
        assert_eq!(seqs(store.since(AuctionId(1), 1)), None);
        assert_eq!(seqs(store.since(AuctionId(2), 0)), None);
    }

    #[test]
    fn the_least_recently_used_auction_is_dropped_first() {
        let mut store = ReplayStore::new(3, 2);
        store.record(event(1, 1));
        store.record(event(2, 1));
        // Using 1 makes 2 the oldest.
        assert_eq!(seqs(store.since(AuctionId(1), 0)), Some(vec![1]));
        store.record(event(3, 1));
        assert_eq!(store.auctions(), 2);
        assert_eq!(store.last_seq(AuctionId(2)), None);
        assert_eq!(store.last_seq(AuctionId(1)), Some(1));
        assert_eq!(store.last_seq(AuctionId(3)), Some(1));
        store.drop_where(|auction| auction.0 == 1);
        assert_eq!(store.auctions(), 1);
        store.record(event(4, 1));
        store.record(event(5, 1));
        assert_eq!(store.auctions(), 2);
    }
}
