//! `--watchers N`: N anonymous WebSocket clients subscribed to one auction while the
//! bidders bid. Each one measures commit-to-receive latency (its wall clock when the event
//! arrives minus the event's commit `timestamp_us`; the gateway and the nodes run on this
//! machine, so the clocks are one) and checks the seq discipline of docs/WEBSOCKET.md:
//! after a snapshot at `S`, exactly `S+1, S+2, ...`. Gaps, duplicates and snapshots that
//! replace missed events (`conflated`, `resync`, `gap`) are counted and reported, never
//! hidden.
//!
//! Connections open at a bounded rate (the accept backlog is finite) before the load
//! starts; latency counts only events received inside the measurement window.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::Message;

/// Connection attempts in flight at once.
const CONNECT_IN_FLIGHT_MAX: usize = 256;
/// How long one watcher may take to connect and get its first snapshot.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Latency histograms, shared by watchers round-robin so 10,000 of them need not each own
/// one, and few contend for one lock.
const HISTOGRAM_SHARDS: usize = 64;
/// Highest latency recorded, µs (above it, the value is clamped and still counted).
const LATENCY_MAX_US: u64 = 600_000_000;
/// `measure_from_us` before the measurement starts: no event is counted.
const NOT_YET: u64 = u64::MAX;

/// What the watchers saw, summed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WatchersReport {
    pub requested: usize,
    /// Watchers that connected and got their first snapshot.
    pub connected: usize,
    /// Why the others did not, by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// Watchers whose socket closed before the end of the run.
    pub closed_early: usize,
    /// The auction's seq when the load stopped, and the watchers that had not reached it
    /// by the end of the drain.
    pub final_seq: u64,
    pub behind_at_end: usize,
    /// Events received by all watchers, over the whole run and inside the measurement.
    /// `events_expected` is what they should have got: for each, the final seq minus the
    /// seq of its first snapshot.
    pub events_expected: u64,
    pub events_received: u64,
    pub events_measured: u64,
    /// An event whose seq was above the next one expected, and the events so skipped.
    pub gaps: u64,
    pub missing_events: u64,
    /// An event whose seq was at or below the last one seen.
    pub duplicates: u64,
    /// Snapshots after the first, by reason (`conflated`, `resync`, `gap`): each stands for
    /// events the watcher did not receive one by one.
    pub resnapshots: BTreeMap<String, u64>,
    /// Events with a commit timestamp after the receive time (clock trouble), recorded as 0.
    pub negative_latencies: u64,
    /// Commit-to-receive latency of the events measured, µs.
    pub latency: Option<WatchLatency>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct WatchLatency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

/// One watcher's seq bookkeeping; pure, so the rules are tested without a socket.
#[derive(Clone, Debug, Default)]
pub struct SeqCheck {
    /// The seq of the first snapshot.
    pub first: Option<u64>,
    pub at: Option<u64>,
    pub events: u64,
    pub gaps: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub resnapshots: BTreeMap<String, u64>,
}

impl SeqCheck {
    pub fn snapshot(&mut self, seq: u64, reason: &str) {
        if self.at.is_some() {
            *self.resnapshots.entry(reason.to_owned()).or_default() += 1;
        }
        self.first.get_or_insert(seq);
        self.at = Some(seq);
    }

    /// Takes an event; false when it came before any snapshot (a protocol breach, counted
    /// as a gap).
    pub fn event(&mut self, seq: u64) -> bool {
        self.events += 1;
        let Some(at) = self.at else {
            self.gaps += 1;
            self.at = Some(seq);
            return false;
        };
        if seq <= at {
            self.duplicates += 1;
        } else {
            if seq > at + 1 {
                self.gaps += 1;
                self.missing += seq - at - 1;
            }
            self.at = Some(seq);
        }
        true
    }
}

/// Settings of a crowd of watchers.
#[derive(Clone, Debug)]
pub struct WatcherSettings {
    pub ws_url: String,
    /// The gateway's id of the watched auction.
    pub auction: u64,
    pub count: usize,
    pub connect_per_s: u32,
}

/// State shared by the watchers and the run.
#[derive(Debug)]
struct Shared {
    histograms: Vec<Mutex<Histogram<u64>>>,
    /// Wall-clock µs from which events count (receive time), and until which.
    measure_from_us: AtomicU64,
    measure_until_us: AtomicU64,
    /// The seq every watcher should reach, once known; and how many have.
    final_seq: AtomicU64,
    caught_up: AtomicUsize,
}

/// What one watcher task returns.
#[derive(Debug)]
enum Ended {
    NotConnected(String),
    Ran {
        check: SeqCheck,
        closed_early: bool,
        /// Events it measured, and of them those with a negative latency (counted per
        /// watcher and summed at the end: no atomic shared by 10,000 tasks per message).
        measured: u64,
        negative: u64,
    },
}

/// The running watchers.
#[derive(Debug)]
pub struct Watchers {
    shared: Arc<Shared>,
    tasks: JoinSet<Ended>,
    stop: watch::Sender<bool>,
    requested: usize,
    /// Watchers that got their first snapshot (the others never catch up).
    subscribed: Arc<AtomicUsize>,
}

/// Wall clock, µs since the epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

impl Watchers {
    /// Opens every watcher (at most `connect_per_s` a second) and returns once each has
    /// its first snapshot or failed.
    pub async fn open(settings: WatcherSettings) -> anyhow::Result<Watchers> {
        let histograms = (0..HISTOGRAM_SHARDS)
            .map(|_| Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let shared = Arc::new(Shared {
            histograms,
            measure_from_us: AtomicU64::new(NOT_YET),
            measure_until_us: AtomicU64::new(NOT_YET),
            final_seq: AtomicU64::new(NOT_YET),
            caught_up: AtomicUsize::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let connecting = Arc::new(Semaphore::new(CONNECT_IN_FLIGHT_MAX));
        let subscribed = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let mut pace = tokio::time::interval(Duration::from_secs_f64(
            1.0 / f64::from(settings.connect_per_s.max(1)),
        ));
        for index in 0..settings.count {
            pace.tick().await;
            let permit = Arc::clone(&connecting).acquire_owned().await?;
            tasks.spawn(watch_one(
                index,
                settings.clone(),
                Arc::clone(&shared),
                stopped.clone(),
                permit,
                Arc::clone(&subscribed),
            ));
        }
        // Every permit back means every watcher has subscribed or given up.
        let _all = connecting
            .acquire_many(CONNECT_IN_FLIGHT_MAX as u32)
            .await?;
        Ok(Watchers {
            shared,
            tasks,
            stop,
            requested: settings.count,
            subscribed,
        })
    }

    /// Events received from now on count in the latency figures.
    pub fn start_measuring(&self, from_us: u64) {
        self.shared
            .measure_from_us
            .store(from_us, Ordering::Relaxed);
    }

    /// Stops counting at `until_us`, waits up to `drain` for every watcher to reach
    /// `final_seq`, closes them and sums what they saw.
    pub async fn finish(
        mut self,
        until_us: u64,
        final_seq: u64,
        drain: Duration,
    ) -> WatchersReport {
        self.shared
            .measure_until_us
            .store(until_us, Ordering::Relaxed);
        self.shared.final_seq.store(final_seq, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + drain;
        let running = self.subscribed.load(Ordering::Relaxed);
        while self.shared.caught_up.load(Ordering::Relaxed) < running
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.stop.send(true);
        let mut report = WatchersReport {
            requested: self.requested,
            final_seq,
            ..WatchersReport::default()
        };
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ended::NotConnected(reason)) => {
                    *report.connect_failures.entry(reason).or_default() += 1;
                }
                Ok(Ended::Ran {
                    check,
                    closed_early,
                    measured,
                    negative,
                }) => {
                    report.connected += 1;
                    report.events_measured += measured;
                    report.negative_latencies += negative;
                    report.closed_early += usize::from(closed_early);
                    report.behind_at_end += usize::from(check.at.is_none_or(|at| at < final_seq));
                    report.events_received += check.events;
                    report.events_expected +=
                        final_seq.saturating_sub(check.first.unwrap_or(final_seq));
                    report.gaps += check.gaps;
                    report.missing_events += check.missing;
                    report.duplicates += check.duplicates;
                    for (reason, count) in check.resnapshots {
                        *report.resnapshots.entry(reason).or_default() += count;
                    }
                }
                Err(error) => {
                    *report
                        .connect_failures
                        .entry(format!("task failed: {error}"))
                        .or_default() += 1;
                }
            }
        }
        report.latency = merged_latency(&self.shared.histograms);
        report
    }
}

fn merged_latency(shards: &[Mutex<Histogram<u64>>]) -> Option<WatchLatency> {
    let mut all = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3).ok()?;
    for shard in shards {
        let shard = shard.lock().ok()?;
        all.add(&*shard).ok()?;
    }
    if all.is_empty() {
        return None;
    }
    Some(WatchLatency {
        p50_us: all.value_at_quantile(0.50),
        p90_us: all.value_at_quantile(0.90),
        p99_us: all.value_at_quantile(0.99),
        p999_us: all.value_at_quantile(0.999),
        max_us: all.max(),
        mean_us: all.mean(),
    })
}

/// What a watcher reads of a server message.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    seq: Option<u64>,
    timestamp_us: Option<u64>,
    #[serde(borrow)]
    reason: Option<&'a str>,
    after_seq: Option<u64>,
    #[serde(borrow)]
    code: Option<&'a str>,
}

async fn watch_one(
    index: usize,
    settings: WatcherSettings,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
    subscribed: Arc<AtomicUsize>,
) -> Ended {
    let mut check = SeqCheck::default();
    let connected = tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
        let (mut socket, _) = tokio_tungstenite::connect_async_with_config(
            settings.ws_url.as_str(),
            Some(client_config()),
            true,
        )
        .await
        .map_err(|error| format!("connect: {}", error_kind(&error)))?;
        let subscribe = format!(r#"{{"type":"subscribe","auction":{}}}"#, settings.auction);
        socket
            .send(Message::text(subscribe))
            .await
            .map_err(|error| format!("subscribe: {}", error_kind(&error)))?;
        // Wait for the first snapshot.
        while let Some(message) = socket.next().await {
            let Ok(Message::Text(text)) = message else {
                continue;
            };
            let Ok(incoming) = serde_json::from_str::<Incoming>(text.as_str()) else {
                continue;
            };
            match incoming.kind {
                "snapshot" => {
                    check.snapshot(incoming.seq.unwrap_or(0), "new");
                    return Ok(socket);
                }
                "error" => {
                    return Err(format!("error {}", incoming.code.unwrap_or("(no code)")));
                }
                _ => {}
            }
        }
        Err("closed before the snapshot".to_owned())
    })
    .await;
    drop(permit);
    let mut socket = match connected {
        Ok(Ok(socket)) => socket,
        Ok(Err(reason)) => return Ended::NotConnected(reason),
        Err(_) => return Ended::NotConnected("timeout".to_owned()),
    };
    subscribed.fetch_add(1, Ordering::Relaxed);
    let shard = &shared.histograms[index % HISTOGRAM_SHARDS];
    let mut caught_up = false;
    let mut closed_early = false;
    let (mut measured, mut negative) = (0, 0);
    // One stop future for the whole run: a fresh `changed()` per message would register
    // with (and unregister from) the channel's shared waiter list every time.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let message = tokio::select! {
            biased;
            message = socket.next() => message,
            _ = &mut stopped => break,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                closed_early = true;
                break;
            }
        };
        let received_us = now_us();
        let Ok(incoming) = serde_json::from_str::<Incoming>(text.as_str()) else {
            continue;
        };
        match incoming.kind {
            "event" => {
                let (Some(seq), Some(committed_us)) = (incoming.seq, incoming.timestamp_us) else {
                    continue;
                };
                check.event(seq);
                let from = shared.measure_from_us.load(Ordering::Relaxed);
                let until = shared.measure_until_us.load(Ordering::Relaxed);
                if received_us >= from && received_us <= until {
                    let latency = match received_us.checked_sub(committed_us) {
                        Some(latency) => latency,
                        None => {
                            negative += 1;
                            0
                        }
                    };
                    measured += 1;
                    if let Ok(mut histogram) = shard.lock() {
                        histogram.saturating_record(latency.clamp(1, LATENCY_MAX_US));
                    }
                }
            }
            "snapshot" => {
                check.snapshot(
                    incoming.seq.unwrap_or(0),
                    incoming.reason.unwrap_or("unknown"),
                );
            }
            "resumed" => {
                if let Some(after) = incoming.after_seq {
                    check.at = Some(after);
                }
            }
            _ => {}
        }
        let target = shared.final_seq.load(Ordering::Relaxed);
        if !caught_up && target != NOT_YET && check.at.is_some_and(|at| at >= target) {
            caught_up = true;
            shared.caught_up.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = socket.close(None).await;
    Ended::Ran {
        check,
        closed_early,
        measured,
        negative,
    }
}

/// Bytes a bench socket reads at once. tungstenite's default (128 KiB) is zero-filled on
/// every read attempt: with 10,000 watchers that memset was half of the bench's CPU, i.e.
/// the instrument slowed what it measures. A longer message is read in several reads.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// The WebSocket settings of the bench's clients (watchers and `--target ws` bidders).
pub fn client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
}

/// A short, stable reason for a connection error (the counts are keyed by it).
fn error_kind(error: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Io(io) => format!("io {:?}", io.kind()),
        Error::Http(response) => format!("http {}", response.status().as_u16()),
        Error::ConnectionClosed | Error::AlreadyClosed => "closed".to_owned(),
        other => other.to_string().chars().take(60).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_in_seq_order_after_a_snapshot_are_neither_gaps_nor_duplicates() {
        let mut check = SeqCheck::default();
        check.snapshot(7, "new");
        for seq in 8..=12 {
            assert!(check.event(seq));
        }
        assert_eq!((check.events, check.gaps, check.duplicates), (5, 0, 0));
        assert_eq!(check.at, Some(12));
        assert!(
            check.resnapshots.is_empty(),
            "the first snapshot is not a resync"
        );
        assert_eq!(check.first, Some(7));
    }

    #[test]
    fn gaps_duplicates_and_replacing_snapshots_are_counted() {
        let mut check = SeqCheck::default();
        check.snapshot(1, "new");
        check.event(2);
        check.event(5);
        assert_eq!((check.gaps, check.missing), (1, 2));
        check.event(5);
        check.event(3);
        assert_eq!(check.duplicates, 2);
        assert_eq!(
            check.at,
            Some(5),
            "a duplicate does not move the position back"
        );
        check.snapshot(40, "conflated");
        check.event(41);
        assert_eq!(check.gaps, 1, "events after a snapshot continue from it");
        assert_eq!(check.resnapshots.get("conflated"), Some(&1));
        let mut early = SeqCheck::default();
        assert!(!early.event(3), "an event before any snapshot is a breach");
        assert_eq!(early.gaps, 1);
    }

    #[test]
    fn latencies_from_every_shard_are_merged() {
        let shards: Vec<Mutex<Histogram<u64>>> = (0..3)
            .map(|_| Mutex::new(Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("h")))
            .collect();
        assert_eq!(merged_latency(&shards), None);
        for (index, shard) in shards.iter().enumerate() {
            shard
                .lock()
                .expect("lock")
                .record(1_000 * (index as u64 + 1))
                .expect("record");
        }
        let merged = merged_latency(&shards).expect("three values");
        assert_eq!(merged.p50_us / 10, 2_000 / 10);
        assert_eq!(merged.max_us / 10, 3_000 / 10);
    }

    #[test]
    fn server_messages_parse_without_their_payload() {
        let event = r#"{"type":"event","auction":42,"seq":8,"timestamp_us":1764393600101000,
            "event":{"kind":"bid_placed","bid_id":3,"bidder":12,"amount":1500}}"#;
        let incoming: Incoming = serde_json::from_str(event).expect("parses");
        assert_eq!(
            (incoming.kind, incoming.seq, incoming.timestamp_us),
            ("event", Some(8), Some(1_764_393_600_101_000))
        );
        let snapshot = r#"{"type":"snapshot","auction":42,"seq":7,"state":{"bids":[]},
            "server_time_us":1,"effective_end_us":2,"resumed":false,"reason":"conflated"}"#;
        let incoming: Incoming = serde_json::from_str(snapshot).expect("parses");
        assert_eq!(incoming.reason, Some("conflated"));
    }
}
