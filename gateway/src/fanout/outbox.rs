//! [`Outbox`]: one WebSocket connection's bounded, conflating queue of fanned-out items.
//!
//! The hub pushes into it without ever waiting; the connection's task pops. When the queue
//! holds `capacity` items and another event comes, the backlog of that event's auction is
//! dropped and the auction is marked *conflated*: its later events are dropped too until the
//! connection pops the mark ([`OutItem::Conflated`]), reads a fresh snapshot and carries on
//! from its `seq`. So a slow client costs at most `capacity` items of memory, never slows
//! the hub or other clients, and never sees a silent gap.
//!
//! [`Queue`] is the pure part (tested below); [`Outbox`] wraps it in a mutex and a
//! [`Notify`].

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use martelo_engine::AuctionId;
use tokio::sync::Notify;

use super::Delivered;

/// Why a connection must read a fresh snapshot of an auction instead of its next event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// The group's event log was trimmed past the hub's position (`Resync`).
    Resync,
}

/// One item for a connection.
#[derive(Clone, Debug)]
pub enum OutItem {
    /// A committed event of an auction the connection watches.
    Event(Arc<Delivered>),
    /// The connection was too slow for this auction: its backlog was dropped; send a fresh
    /// snapshot marked `conflated`.
    Conflated(AuctionId),
    /// The hub lost its place in the auction's group: send a fresh snapshot.
    Reset(AuctionId, ResetReason),
}

impl OutItem {
    /// The auction the item is about.
    pub fn auction(&self) -> AuctionId {
        match self {
            OutItem::Event(delivered) => delivered.auction,
            OutItem::Conflated(auction) | OutItem::Reset(auction, _) => *auction,
        }
    }
}

/// What a push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// The queue was full: the auction's backlog was dropped and it is now conflated.
    Conflated,
    /// Dropped because the auction is already conflated (its snapshot will cover it).
    Dropped,
}

/// The pure queue: items in order, at most `capacity` of them, plus the set of conflated
/// auctions whose marks have not been popped yet.
#[derive(Debug)]
pub struct Queue {
    items: VecDeque<OutItem>,
    conflated: BTreeSet<AuctionId>,
    capacity: usize,
}

impl Queue {
    /// An empty queue that holds at most `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Queue {
        Queue {
            items: VecDeque::new(),
            conflated: BTreeSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues an event, or conflates its auction when the queue is full.
    pub fn push_event(&mut self, delivered: Arc<Delivered>) -> Pushed {
        let auction = delivered.auction;
        if self.conflated.contains(&auction) {
            return Pushed::Dropped;
        }
        if self.items.len() >= self.capacity {
            self.conflate(auction);
            return Pushed::Conflated;
        }
        self.items.push_back(OutItem::Event(delivered));
        Pushed::Queued
    }

    /// Queues a reset of `auction`: its queued items are dropped (the snapshot covers them).
    /// A conflated auction needs nothing more: its mark already asks for a snapshot.
    pub fn push_reset(&mut self, auction: AuctionId, reason: ResetReason) {
        if self.conflated.contains(&auction) {
            return;
        }
        self.items.retain(|item| item.auction() != auction);
        self.items.push_back(OutItem::Reset(auction, reason));
    }

    fn conflate(&mut self, auction: AuctionId) {
        self.items.retain(|item| item.auction() != auction);
        self.conflated.insert(auction);
    }

    /// The next item: conflation marks first (they free the most), then items in order.
    pub fn pop(&mut self) -> Option<OutItem> {
        if let Some(auction) = self.conflated.pop_first() {
            return Some(OutItem::Conflated(auction));
        }
        self.items.pop_front()
    }

    /// Drops everything about `auction` (the connection unsubscribed).
    pub fn forget(&mut self, auction: AuctionId) {
        self.items.retain(|item| item.auction() != auction);
        self.conflated.remove(&auction);
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.conflated.is_empty()
    }

    /// Items queued (marks not counted).
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// A connection's [`Queue`], shared with the hub, with a wake-up for the connection's task.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    notify: Notify,
}

impl Outbox {
    /// An empty outbox of `capacity` items.
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            queue: Mutex::new(Queue::new(capacity)),
            notify: Notify::new(),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A poisoned queue is still a valid queue: every method leaves it consistent.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pushes a batch of events in order under one lock (never waits) and wakes the
    /// connection once; returns how many of them conflated their auction.
    pub fn push_events(&self, batch: &[Arc<Delivered>]) -> u64 {
        let (mut conflated, mut woken) = (0, false);
        {
            let mut queue = self.queue();
            for delivered in batch {
                match queue.push_event(Arc::clone(delivered)) {
                    Pushed::Conflated => (conflated, woken) = (conflated + 1, true),
                    Pushed::Queued => woken = true,
                    Pushed::Dropped => {}
                }
            }
        }
        if woken {
            self.notify.notify_one();
        }
        conflated
    }

    /// Pushes a reset (never waits) and wakes the connection.
    pub fn push_reset(&self, auction: AuctionId, reason: ResetReason) {
        self.queue().push_reset(auction, reason);
        self.notify.notify_one();
    }

    /// The next item, if any.
    pub fn pop(&self) -> Option<OutItem> {
        self.queue().pop()
    }

    /// Whether something waits.
    pub fn has_items(&self) -> bool {
        !self.queue().is_empty()
    }

    /// Drops everything about `auction`.
    pub fn forget(&self, auction: AuctionId) {
        self.queue().forget(auction);
    }

    /// Resolves when something may have been pushed since the last wake-up. Check
    /// [`Outbox::has_items`] first: a push between the check and this wait is not lost (the
    /// wake-up is stored).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(auction: u64, seq: u64) -> Arc<Delivered> {
        Delivered::for_test(auction, seq)
    }

    fn seqs(queue: &mut Queue) -> Vec<(u64, Option<u64>)> {
        std::iter::from_fn(|| queue.pop())
            .map(|item| match item {
                OutItem::Event(delivered) => (delivered.auction.0, Some(delivered.seq)),
                other => (other.auction().0, None),
            })
            .collect()
    }

    #[test]
    fn a_queue_within_capacity_keeps_every_event_in_order() {
        let mut queue = Queue::new(3);
        assert_eq!(queue.push_event(event(1, 1)), Pushed::Queued);
        assert_eq!(queue.push_event(event(2, 7)), Pushed::Queued);
        assert_eq!(queue.push_event(event(1, 2)), Pushed::Queued);
        assert_eq!(seqs(&mut queue), [(1, Some(1)), (2, Some(7)), (1, Some(2))]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_full_queue_drops_the_auctions_backlog_and_marks_it_conflated_once() {
        let mut queue = Queue::new(3);
        queue.push_event(event(1, 1));
        queue.push_event(event(2, 7));
        queue.push_event(event(1, 2));
        // Full: auction 1's backlog goes, auction 2's event stays.
        assert_eq!(queue.push_event(event(1, 3)), Pushed::Conflated);
        assert_eq!(queue.len(), 1);
        // Later events of the conflated auction are dropped, others still queue.
        assert_eq!(queue.push_event(event(1, 4)), Pushed::Dropped);
        assert_eq!(queue.push_event(event(2, 8)), Pushed::Queued);
        // The mark comes first, once; then the other auction's events in order.
        assert_eq!(seqs(&mut queue), [(1, None), (2, Some(7)), (2, Some(8))]);
        // Once the mark is popped, the auction's events queue again.
        assert_eq!(queue.push_event(event(1, 5)), Pushed::Queued);
        assert_eq!(seqs(&mut queue), [(1, Some(5))]);
    }

    #[test]
    fn the_queue_never_holds_more_than_its_capacity() {
        let mut queue = Queue::new(4);
        for seq in 1..1000 {
            queue.push_event(event(seq % 7, seq));
            assert!(queue.len() <= 4);
        }
    }

    #[test]
    fn a_reset_replaces_the_auctions_queued_events_and_forget_drops_everything() {
        let mut queue = Queue::new(8);
        queue.push_event(event(1, 1));
        queue.push_event(event(2, 1));
        queue.push_reset(AuctionId(1), ResetReason::Resync);
        queue.push_event(event(1, 9));
        assert_eq!(seqs(&mut queue), [(2, Some(1)), (1, None), (1, Some(9))]);
        queue.push_event(event(3, 1));
        queue.forget(AuctionId(3));
        assert!(queue.is_empty());
    }
}
