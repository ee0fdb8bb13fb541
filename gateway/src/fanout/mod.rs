//! Fan-out of committed auction events to WebSocket connections: [`Hub`].
//!
//! The hub keeps one committed-event subscription per auction group (any replica), opened
//! when a connection first watches an auction of that group and closed once nobody has
//! watched the group for [`GROUP_IDLE`]. Each entry's auction events are checked against
//! the auction's last seq ([`replay::ReplayStore`]: duplicates dropped), kept in a bounded
//! replay buffer, and pushed to every watching connection's [`outbox::Outbox`] (bounded,
//! conflating; pushing never waits). A subscription that breaks resumes from its last log
//! index + 1 ([`group`]); one that must start over (`Resync`: log trimmed) resets every
//! watcher of the group's auctions, who then read a fresh snapshot.
//!
//! The no-gap rule for a new watcher: [`Hub::watch`] registers it first, then
//! [`Hub::snapshot`] waits until the group's subscription has a start index and reads the
//! auction linearizably, so the snapshot's seq is at or past the subscription's start; the
//! connection skips queued events up to the snapshot's seq. Each connection checks that the
//! seqs it sends increase by exactly one per auction and reads a snapshot on any gap.

pub mod group;
pub mod outbox;
pub mod replay;
pub mod snapshots;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use martelo_client::{Client, ClientError};
use martelo_engine::{AuctionEvent, AuctionId, GroupId, Timestamp};
use tokio::sync::watch;

use crate::config::LimitConfig;
use crate::telemetry;
use outbox::{Outbox, ResetReason};
use replay::{Recorded, Replay, ReplayStore};
use snapshots::{SnapshotResult, Snapshots};

/// How long a group's subscription stays open with nobody watching its auctions.
pub const GROUP_IDLE: Duration = Duration::from_secs(30);

/// One committed event of one auction, with its JSON frame built once for every watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub auction: AuctionId,
    pub seq: u64,
    /// The log index of the entry that produced it.
    pub log_index: u64,
    /// The entry's commit timestamp (cluster time, µs since the Unix epoch).
    pub timestamp: Timestamp,
    pub event: AuctionEvent,
    /// The server's `event` message for it, serialized once.
    pub frame: Utf8Bytes,
    /// For price events, the same message with the next minimum bid, also serialized once:
    /// by the first watcher whose subscription knows the auction's listing (the minimum
    /// follows from the listing and the price, and the listing is the same for every
    /// watcher by then: an edit is an earlier event of the same auction).
    pub priced_frame: std::sync::OnceLock<Utf8Bytes>,
}

impl Delivered {
    /// Wraps an event of the entry at `log_index` committed at `timestamp`.
    pub fn new(event: AuctionEvent, log_index: u64, timestamp: Timestamp) -> Delivered {
        let frame = crate::ws::json::event_frame(&event, timestamp);
        Delivered {
            auction: event.auction_id,
            seq: event.seq,
            log_index,
            timestamp,
            event,
            frame: Utf8Bytes::from(frame),
            priced_frame: std::sync::OnceLock::new(),
        }
    }

    /// A test event: `PriceCleared` as event `seq` of `auction`, in entry `seq` at time `seq`.
    #[cfg(test)]
    pub(crate) fn for_test(auction: u64, seq: u64) -> Arc<Delivered> {
        use martelo_engine::AuctionEventKind;
        Arc::new(Delivered::new(
            AuctionEvent {
                auction_id: AuctionId(auction),
                seq,
                at: Timestamp(seq),
                kind: AuctionEventKind::PriceCleared,
            },
            seq,
            Timestamp(seq),
        ))
    }
}

/// One WebSocket connection as the hub knows it.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Unique within this gateway.
    pub id: u64,
    /// Where the hub pushes the connection's items.
    pub outbox: Arc<Outbox>,
}

/// A place in the connection limit ([`Hub::admit`]), given back on drop.
pub struct Admission {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admission")
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let open = self.inner.connections.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(telemetry::WS_CONNECTIONS).set(open.saturating_sub(1) as f64);
    }
}

/// What [`Hub::watch`] found for a new watcher.
#[derive(Debug)]
pub struct Watch {
    /// For a resume (`after_seq`): every event after it, when all of them are buffered.
    /// `None`: read a snapshot instead.
    pub replay: Option<Vec<Arc<Delivered>>>,
    /// Becomes true once the auction's group subscription knows where it starts.
    pub ready: watch::Receiver<bool>,
}

/// One committed-event subscription per group, fanned out by auction.
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    snapshots: Snapshots,
    send_queue: usize,
    /// Open WebSocket connections (for `limits.ws_connections_max`).
    connections: AtomicUsize,
    /// Group subscriptions opened or reopened since start.
    subscriptions_opened: AtomicU64,
    next_connection: AtomicU64,
    state: Mutex<State>,
}

struct State {
    /// Auction → its watchers (connection id, outbox). Copy-on-write: fan-out clones the
    /// `Arc` under the lock and pushes after releasing it; a change while a fan-out holds
    /// the list copies it (`Arc::make_mut`).
    watchers: HashMap<AuctionId, Arc<Watchers>>,
    groups: HashMap<GroupId, GroupEntry>,
    replay: ReplayStore,
}

type Watchers = Vec<(u64, Arc<Outbox>)>;

struct GroupEntry {
    /// (connection, auction) pairs watching the group's auctions.
    watchers: usize,
    /// Since when nobody watches (for closing the subscription).
    idle_since: Option<Instant>,
    ready: watch::Receiver<bool>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state();
        f.debug_struct("Hub")
            .field("groups", &state.groups.len())
            .field("watched_auctions", &state.watchers.len())
            .field("replay_auctions", &state.replay.auctions())
            .finish()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Hub {
    /// A hub that subscribes to groups as sessions ask for their auctions.
    pub fn new(client: Client, limits: &LimitConfig) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                snapshots: Snapshots::new(client.clone()),
                client,
                send_queue: limits.ws_send_queue,
                connections: AtomicUsize::new(0),
                subscriptions_opened: AtomicU64::new(0),
                next_connection: AtomicU64::new(1),
                state: Mutex::new(State {
                    watchers: HashMap::new(),
                    groups: HashMap::new(),
                    replay: ReplayStore::new(
                        limits.replay_events_per_auction,
                        limits.replay_auctions_max,
                    ),
                }),
            }),
        }
    }

    /// A place among at most `max` open connections, held until the [`Admission`] drops;
    /// `None` when all are taken.
    pub fn admit(&self, max: usize) -> Option<Admission> {
        let admitted =
            self.inner
                .connections
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                    (open < max).then_some(open + 1)
                });
        match admitted {
            Ok(open) => {
                metrics::gauge!(telemetry::WS_CONNECTIONS).set((open + 1) as f64);
                Some(Admission {
                    inner: self.inner.clone(),
                })
            }
            Err(_) => None,
        }
    }

    /// A new connection with an empty outbox of `ws_send_queue` items.
    pub fn connect(&self) -> Connection {
        Connection {
            id: self.inner.next_connection.fetch_add(1, Ordering::Relaxed),
            outbox: Arc::new(Outbox::new(self.inner.send_queue)),
        }
    }

    /// Registers `connection` as a watcher of `auction` (opening the group's subscription
    /// if needed) and, for a resume, takes the buffered events after `after_seq` in the
    /// same critical section, so the outbox gets exactly the events after them.
    pub fn watch(
        &self,
        connection: &Connection,
        auction: AuctionId,
        after_seq: Option<u64>,
    ) -> Watch {
        let group = self.inner.client.group_of(auction);
        let mut state = self.inner.state();
        let list = Arc::make_mut(state.watchers.entry(auction).or_default());
        let previous = list.iter().any(|(id, _)| *id == connection.id);
        if !previous {
            list.push((connection.id, connection.outbox.clone()));
        }
        let ready = match state.groups.get_mut(&group) {
            Some(entry) => {
                if !previous {
                    entry.watchers += 1;
                    entry.idle_since = None;
                }
                entry.ready.clone()
            }
            None => {
                let (ready_tx, ready) = watch::channel(false);
                state.groups.insert(
                    group,
                    GroupEntry {
                        watchers: 1,
                        idle_since: None,
                        ready: ready.clone(),
                    },
                );
                tokio::spawn(group::run(
                    Arc::downgrade(&self.inner),
                    self.inner.client.clone(),
                    group,
                    ready_tx,
                ));
                ready
            }
        };
        let replay = after_seq.and_then(|after| match state.replay.since(auction, after) {
            Replay::Events(events) => Some(events),
            Replay::Missing => None,
        });
        Watch { replay, ready }
    }

    /// Stops `connection` watching `auction` and drops its queued items.
    pub fn unwatch(&self, connection: &Connection, auction: AuctionId) {
        let group = self.inner.client.group_of(auction);
        let mut state = self.inner.state();
        let removed = match state.watchers.get_mut(&auction) {
            Some(watchers) => {
                let list = Arc::make_mut(watchers);
                let before = list.len();
                list.retain(|(id, _)| *id != connection.id);
                let removed = list.len() < before;
                if list.is_empty() {
                    state.watchers.remove(&auction);
                }
                removed
            }
            None => false,
        };
        if removed && let Some(entry) = state.groups.get_mut(&group) {
            entry.watchers = entry.watchers.saturating_sub(1);
            if entry.watchers == 0 {
                entry.idle_since = Some(Instant::now());
            }
        }
        drop(state);
        connection.outbox.forget(auction);
    }

    /// A fresh snapshot of `auction`: waits (within the client's deadline) until its
    /// group's subscription knows its start, then reads linearizably, so the snapshot
    /// reflects every event the hub has fanned out or will start from. Concurrent callers
    /// share reads ([`snapshots::Snapshots`]).
    pub async fn snapshot(
        &self,
        auction: AuctionId,
        mut ready: watch::Receiver<bool>,
    ) -> SnapshotResult {
        let deadline = self.inner.client.options().deadline;
        let waited = tokio::time::timeout(deadline, async {
            ready.wait_for(|ready| *ready).await.is_ok()
        })
        .await;
        if waited != Ok(true) {
            return Err(Arc::new(ClientError::InvalidInput(format!(
                "the committed-event subscription of auction {}'s group did not start within \
                 {deadline:?}",
                auction.0
            ))));
        }
        self.inner.snapshots.read(auction).await
    }

    /// Group subscriptions opened since start, reopenings after a break included (also the
    /// `FANOUT_RESUBSCRIBES_TOTAL` counter).
    pub fn subscriptions_opened(&self) -> u64 {
        self.inner.subscriptions_opened.load(Ordering::Relaxed)
    }

    /// The cluster client the hub reads with.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

impl Inner {
    /// Fans one committed entry's auction events out to their watchers: recorded (and
    /// deduplicated) under the lock, pushed after it. Only the group's task calls this, so
    /// an auction's events are pushed in order. A watcher that registers in between gets
    /// the event from the replay buffer (a resume) or a snapshot that includes it (the
    /// snapshot is read after its registration).
    fn deliver(&self, events: Vec<Arc<Delivered>>) {
        // The entry's events of one auction go to each watcher as one batch (one lock, one
        // wake-up), so a watcher writes them in one flush instead of one sweep of all the
        // watchers per event.
        let mut plan: Vec<(Arc<Watchers>, Vec<Arc<Delivered>>)> = Vec::new();
        {
            let mut state = self.state();
            let state = &mut *state;
            for delivered in events {
                match state.replay.record(delivered.clone()) {
                    Recorded::Duplicate => continue,
                    Recorded::Gap { expected } => tracing::warn!(
                        auction = delivered.auction.0,
                        expected,
                        got = delivered.seq,
                        "the hub missed events of an auction: its watchers will read a snapshot"
                    ),
                    Recorded::Appended | Recorded::Started => {}
                }
                let Some(watchers) = state.watchers.get(&delivered.auction) else {
                    continue;
                };
                match plan.last_mut() {
                    Some((_, batch)) if batch[0].auction == delivered.auction => {
                        batch.push(delivered);
                    }
                    _ => plan.push((Arc::clone(watchers), vec![delivered])),
                }
            }
        }
        for (watchers, batch) in plan {
            for (_, outbox) in watchers.iter() {
                let conflated = outbox.push_events(&batch);
                if conflated > 0 {
                    metrics::counter!(telemetry::FANOUT_CONFLATED_TOTAL, "reason" => "slow_client")
                        .increment(conflated);
                }
            }
        }
    }

    /// The group's subscription must start over: drop its auctions' buffers and tell their
    /// watchers to read snapshots.
    fn reset_group(&self, group: GroupId, reason: ResetReason) {
        let client = &self.client;
        let mut state = self.state();
        state
            .replay
            .drop_where(|auction| client.group_of(auction) == group);
        for (auction, watchers) in &state.watchers {
            if client.group_of(*auction) == group {
                for (_, outbox) in watchers.iter() {
                    outbox.push_reset(*auction, reason);
                }
            }
        }
    }

    /// Whether the group's subscription should close now (nobody watched it for
    /// [`GROUP_IDLE`]); if so, it is forgotten in the same critical section, so a new
    /// watcher opens a new subscription.
    fn close_if_idle(&self, group: GroupId) -> bool {
        let mut state = self.state();
        let idle = state.groups.get(&group).is_none_or(|entry| {
            entry.watchers == 0
                && entry
                    .idle_since
                    .is_some_and(|since| since.elapsed() >= GROUP_IDLE)
        });
        if idle {
            state.groups.remove(&group);
        }
        idle
    }
}
