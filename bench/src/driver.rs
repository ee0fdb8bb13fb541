//! The load loops: closed (each worker sends its next bid when the last is answered) and
//! open (bids are due on a fixed schedule, whatever the answers do).
//!
//! ```text
//!   closed:  worker ─bid─▶ target ─decision─▶ record(due = sent) ─▶ next bid
//!   open:    schedule(k) ─wait until due─▶ slot (≤ in-flight max) ─▶ task: bid ─▶ record(due)
//! ```
//!
//! In the open loop a bid that waits for a free slot keeps its due time, so when the cluster
//! stalls, every bid scheduled behind the stall carries the delay in its latency. Bids still
//! unsent when the run ends are counted as `missed`, not silently dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::LoadMode;
use crate::record::Recorder;
use crate::rng::Rng;
use crate::target::{Decision, Tally, Target};
use crate::workload::{PlannedBid, Workload};

/// When the load starts, when measuring starts (after the warm-up) and when it ends.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start: Instant,
    pub measure_start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn starting_now(warmup: Duration, measure: Duration) -> Window {
        let start = Instant::now();
        Window {
            start,
            measure_start: start + warmup,
            end: start + warmup + measure,
        }
    }
}

/// Counters of everything sent so far, warm-up included, for the progress bar.
#[derive(Debug, Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub errors: AtomicU64,
    pub unknown: AtomicU64,
}

impl Live {
    fn count(&self, tally: &Tally) {
        let counter = match tally {
            Tally::Accepted => &self.accepted,
            Tally::Rejected(_) => &self.rejected,
            Tally::Error(_) => &self.errors,
            Tally::Unknown(_) => &self.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn decided(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed) + self.rejected.load(Ordering::Relaxed)
    }
}

/// When each bid of the open loop is due: `start + k / rate`.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    start: Instant,
    rate_per_s: f64,
}

impl Schedule {
    pub fn new(start: Instant, rate_per_s: f64) -> Schedule {
        assert!(rate_per_s > 0.0, "a schedule needs a positive rate");
        Schedule { start, rate_per_s }
    }

    /// Computed from `k` rather than by adding intervals, so rounding never accumulates.
    pub fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(k as f64 / self.rate_per_s)
    }
}

/// What the loops leave behind.
#[derive(Debug)]
pub struct Driven {
    pub recorder: Recorder,
    /// When Ctrl-C (or another stop) ended the load early, if it did.
    pub stopped_at: Option<Instant>,
    /// Open loop: bids due inside the measurement but never sent because the run ended
    /// while they waited for a slot.
    pub missed: u64,
    /// Bids still in flight when the drain deadline passed; not recorded.
    pub abandoned: u64,
}

/// Settings of [`drive`] beyond the target and the workload.
#[derive(Clone, Copy, Debug)]
pub struct DriveSettings {
    pub mode: LoadMode,
    pub window: Window,
    pub seed: u64,
    /// Longest wait for one decision; the client library's own deadline should end it first.
    pub request_timeout: Duration,
    /// Longest wait for bids in flight after the load ends.
    pub drain: Duration,
}

struct Shared<T> {
    target: Arc<T>,
    workload: Arc<Workload>,
    recorder: Mutex<Recorder>,
    live: Arc<Live>,
    request_timeout: Duration,
}

fn lock(recorder: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    // A worker that panicked mid-record leaves counts that are still counts.
    recorder
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<T: Target> Shared<T> {
    async fn send(&self, bid: &PlannedBid, due: Instant) {
        self.live.sent.fetch_add(1, Ordering::Relaxed);
        let proposal = self.target.propose(bid.request.clone());
        let decision = match tokio::time::timeout(self.request_timeout, proposal).await {
            Ok(decision) => decision,
            Err(_) => Decision::Unknown {
                code: "bench_timeout".to_owned(),
            },
        };
        let done = Instant::now();
        if let Some(reply) = decision.reply() {
            self.workload.observe(bid, reply);
        }
        let tally = decision.tally();
        self.live.count(&tally);
        lock(&self.recorder).record(due, done, &tally, decision.replayed());
    }
}

/// Resolves once `stop` turns true; never, if its sender is gone.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the load until the window ends or `stop` turns true, then drains.
pub async fn drive<T: Target>(
    target: Arc<T>,
    workload: Arc<Workload>,
    settings: DriveSettings,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> Driven {
    let window = settings.window;
    let shared = Arc::new(Shared {
        target,
        workload,
        recorder: Mutex::new(Recorder::new(window.measure_start, window.end)),
        live,
        // Slack over the client's deadline, so the client decides and this only catches
        // a hang.
        request_timeout: settings.request_timeout + Duration::from_secs(1),
    });
    let root = Rng::new(settings.seed);
    let mut tasks = JoinSet::new();
    let mut missed = 0;
    match settings.mode {
        LoadMode::Closed { concurrency } => {
            for worker in 0..concurrency {
                let shared = Arc::clone(&shared);
                let mut rng = root.fork(worker as u64);
                let stop = stop.clone();
                tasks.spawn(async move {
                    loop {
                        let sent = Instant::now();
                        if sent >= window.end || *stop.borrow() {
                            break;
                        }
                        let bid = shared.workload.next_bid(&mut rng);
                        shared.send(&bid, sent).await;
                    }
                });
            }
            tokio::select! {
                _ = stopped(&mut stop) => {}
                _ = tokio::time::sleep_until(window.end) => {}
            }
        }
        LoadMode::Open {
            rate_per_s,
            in_flight_max,
        } => {
            let schedule = Schedule::new(window.start, rate_per_s);
            let slots = Arc::new(Semaphore::new(in_flight_max));
            let mut rng = root.fork(0);
            let mut k = 0;
            loop {
                let due = schedule.due(k);
                if due >= window.end {
                    break;
                }
                let slot = tokio::select! {
                    biased;
                    _ = stopped(&mut stop) => break,
                    _ = tokio::time::sleep_until(window.end) => {
                        missed = count_due(&schedule, k, window);
                        break;
                    }
                    slot = async {
                        tokio::time::sleep_until(due).await;
                        Arc::clone(&slots).acquire_owned().await
                    } => slot,
                };
                let Ok(slot) = slot else { break };
                let bid = shared.workload.next_bid(&mut rng);
                let shared = Arc::clone(&shared);
                tasks.spawn(async move {
                    shared.send(&bid, due).await;
                    drop(slot);
                });
                // Reap finished tasks as we go, so the set holds only those in flight.
                while tasks.try_join_next().is_some() {}
                k += 1;
            }
        }
    }
    let stopped_at = (*stop.borrow()).then(Instant::now);
    let drained = tokio::time::timeout(settings.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let abandoned = if drained.is_err() {
        let left = tasks.len() as u64;
        tasks.shutdown().await;
        left
    } else {
        0
    };
    drop(tasks);
    let recorder = match Arc::try_unwrap(shared) {
        Ok(shared) => shared
            .recorder
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        // Every task has ended, so this is unreachable; take a copy of nothing rather than
        // panic in a report path.
        Err(shared) => std::mem::replace(
            &mut *lock(&shared.recorder),
            Recorder::new(window.measure_start, window.end),
        ),
    };
    Driven {
        recorder,
        stopped_at,
        missed,
        abandoned,
    }
}

/// Bids from the `k`-th on that are due inside the measurement window.
fn count_due(schedule: &Schedule, k: u64, window: Window) -> u64 {
    let mut count = 0;
    let mut k = k;
    loop {
        let due = schedule.due(k);
        if due >= window.end {
            return count;
        }
        if due >= window.measure_start {
            count += 1;
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Scenario;
    use crate::target::fake::EngineTarget;
    use martelo_engine::Timestamp;

    const NOW: Timestamp = Timestamp(1_700_000_000_000_000);

    async fn setup<F>(service: F) -> (Arc<EngineTarget<F>>, Arc<Workload>)
    where
        F: Fn(u64) -> Duration + Send + Sync + 'static,
    {
        let target = Arc::new(EngineTarget::new(NOW, service));
        let workload = Arc::new(Workload::new(Scenario::Hot, 1, 16, 42));
        for request in workload.create_requests(NOW, Duration::ZERO, Duration::from_secs(60)) {
            let decision = target.propose(request).await;
            assert!(matches!(decision.tally(), Tally::Accepted), "{decision:?}");
        }
        (target, workload)
    }

    async fn run<F>(target: Arc<EngineTarget<F>>, workload: Arc<Workload>, mode: LoadMode) -> Driven
    where
        F: Fn(u64) -> Duration + Send + Sync + 'static,
    {
        let (_stop_tx, stop) = watch::channel(false);
        let settings = DriveSettings {
            mode,
            window: Window::starting_now(Duration::ZERO, Duration::from_secs(2)),
            seed: 7,
            request_timeout: Duration::from_secs(5),
            drain: Duration::from_secs(10),
        };
        drive(target, workload, settings, Arc::new(Live::default()), stop).await
    }

    /// The create request took arrival 0, so bid `n` is arrival `n + 1`.
    fn stall_at_bid_20(arrival: u64) -> Duration {
        if arrival == 21 {
            Duration::from_millis(500)
        } else {
            Duration::from_millis(1)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_charges_a_stall_to_every_bid_scheduled_behind_it() {
        let (target, workload) = setup(stall_at_bid_20).await;
        let mode = LoadMode::Open {
            rate_per_s: 100.0,
            in_flight_max: 1,
        };
        let driven = run(target, workload, mode).await;
        let (totals, latency, _) = driven.recorder.finish(2);
        let latency = latency.expect("samples");
        assert_eq!(
            totals.decided, 200,
            "every scheduled bid is sent: {totals:?}"
        );
        assert_eq!(driven.missed, 0);
        // Bid 20 is due at 200 ms and answered at 701 ms; the ~49 bids due at 210..700 ms
        // wait for it, and each carries its wait: a quarter of the run is slow.
        assert!(latency.max_us >= 500_000, "{latency:?}");
        assert!(latency.p90_us >= 100_000, "{latency:?}");
        assert!(latency.p50_us < 10_000, "{latency:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_sees_the_same_stall_as_one_slow_bid() {
        // The contrast that motivates the open loop: measured from the send, the stall is
        // a single sample and the percentiles hide it.
        let (target, workload) = setup(stall_at_bid_20).await;
        let driven = run(target, workload, LoadMode::Closed { concurrency: 1 }).await;
        let (totals, latency, seconds) = driven.recorder.finish(2);
        let latency = latency.expect("samples");
        assert!(totals.decided > 1_000, "{totals:?}");
        assert!(latency.max_us >= 500_000, "{latency:?}");
        assert!(latency.p99_us < 10_000, "{latency:?}");
        assert_eq!(seconds.len(), 2);
        // The last bid, sent just before the end, is answered after it: outside the plot.
        let plotted: u64 = seconds.iter().map(|row| row.decided).sum();
        assert!(
            totals.decided - plotted <= 1,
            "{plotted} of {}",
            totals.decided
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_load_early_and_keeps_what_was_recorded() {
        let (target, workload) = setup(|_| Duration::from_millis(2)).await;
        let (stop_tx, stop) = watch::channel(false);
        let settings = DriveSettings {
            mode: LoadMode::Closed { concurrency: 4 },
            window: Window::starting_now(Duration::ZERO, Duration::from_secs(60)),
            seed: 1,
            request_timeout: Duration::from_secs(5),
            drain: Duration::from_secs(1),
        };
        let started = Instant::now();
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = stop_tx.send(true);
        });
        let driven = drive(target, workload, settings, Arc::new(Live::default()), stop).await;
        stopper.await.expect("stopper ran");
        let stopped_at = driven.stopped_at.expect("stopped early");
        assert!(stopped_at - started < Duration::from_secs(1));
        let (totals, _, _) = driven.recorder.finish(0);
        assert!(totals.decided > 100, "{totals:?}");
        assert!(totals.accepted > 0 && totals.rejected > 0, "{totals:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_loop_that_cannot_keep_up_counts_the_bids_it_never_sent() {
        // 1 slot, 100 ms per bid, 100 bids due per second: only ~20 of 200 can be sent.
        let (target, workload) = setup(|_| Duration::from_millis(100)).await;
        let mode = LoadMode::Open {
            rate_per_s: 100.0,
            in_flight_max: 1,
        };
        let driven = run(target, workload, mode).await;
        let (totals, latency, _) = driven.recorder.finish(2);
        let sent = totals.decided;
        assert!((15..=25).contains(&sent), "{totals:?}");
        assert_eq!(sent + driven.missed, 200);
        // The last bid sent was due long before it went out.
        assert!(latency.expect("samples").max_us > 1_500_000);
    }

    #[test]
    fn the_schedule_does_not_drift() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 3.0);
        assert_eq!(schedule.due(0), start);
        assert_eq!(
            schedule.due(3_000_000) - start,
            Duration::from_secs(1_000_000)
        );
    }
}
