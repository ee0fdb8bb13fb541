//! Recording outcomes and latencies: totals, an HdrHistogram of the whole measurement, and
//! per-second buckets for the plot.
//!
//! Latency is measured from the moment a request was *due*: in the open loop that is its
//! slot in the schedule, not the moment it was finally sent, so a stall delays and inflates
//! every request scheduled behind it (wrk2's correction for coordinated omission). In the
//! closed loop a request is due when it is sent.
//!
//! The totals and the run's histogram hold the requests due inside the measurement window;
//! the warm-up's do not count. The per-second buckets hold what completed in each second of
//! the window, whenever it was due, so every second is a full second of the cluster's answers.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use crate::target::Tally;

/// Highest latency the histograms resolve; longer ones are recorded as this.
pub const LATENCY_HIGHEST_US: u64 = 3_600_000_000;
/// Significant digits of the run's histogram (0.1% resolution).
const SIGNIFICANT_DIGITS: u8 = 3;
/// Significant digits of each second's histogram (1%): these exist only for the plot.
const SECOND_SIGNIFICANT_DIGITS: u8 = 2;
/// Seconds a bucket stays open for late completions before it is summarised and its
/// histogram dropped. Completions are recorded as they happen, so they arrive in time order
/// give or take the recorder's lock; this bounds memory for long runs.
const SECOND_OPEN_SPAN: u64 = 3;

/// Outcome counts of the measurement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Accepted plus rejected: the bids the cluster decided.
    pub decided: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Keyed by the engine's stable code (`RejectCode::as_str`).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Provably not applied (refused before proposing), by error code.
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Possibly applied: the outcome stayed unknown through every retry.
    pub unknown: u64,
    pub unknown_by_code: BTreeMap<String, u64>,
    /// Decisions that came back as the stored first outcome of a retried request id.
    pub replayed: u64,
}

impl Totals {
    fn add(&mut self, tally: &Tally, replayed: bool) {
        match tally {
            Tally::Accepted => {
                self.decided += 1;
                self.accepted += 1;
            }
            Tally::Rejected(code) => {
                self.decided += 1;
                self.rejected += 1;
                *self
                    .rejected_by_reason
                    .entry(code.as_str().to_owned())
                    .or_default() += 1;
            }
            Tally::Error(code) => {
                self.errors += 1;
                *self.errors_by_code.entry(code.clone()).or_default() += 1;
            }
            Tally::Unknown(code) => {
                self.unknown += 1;
                *self.unknown_by_code.entry(code.clone()).or_default() += 1;
            }
        }
        if replayed {
            self.replayed += 1;
        }
    }
}

/// Latency percentiles of decided requests, in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// `None` for an empty histogram: no percentile exists.
    pub fn of(histogram: &Histogram<u64>) -> Option<LatencySummary> {
        if histogram.is_empty() {
            return None;
        }
        Some(LatencySummary {
            count: histogram.len(),
            min_us: histogram.min(),
            mean_us: histogram.mean(),
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        })
    }
}

/// One second of the measurement, for the plot and the JSON report: the bids answered in
/// that second (including warm-up bids answered in the first), with their latencies. So the
/// rows add up to the totals only approximately.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SecondRow {
    /// Seconds since the measurement began.
    pub second: u64,
    pub decided: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub errors: u64,
    pub unknown: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
}

#[derive(Debug)]
struct OpenSecond {
    row: SecondRow,
    latency: Histogram<u64>,
}

/// Collects the measurement. One per run, behind a lock shared by the workers.
#[derive(Debug)]
pub struct Recorder {
    measure_start: Instant,
    measure_end: Instant,
    totals: Totals,
    latency: Histogram<u64>,
    /// Summarised seconds, in order.
    closed: Vec<SecondRow>,
    /// Seconds still taking completions.
    open: BTreeMap<u64, OpenSecond>,
}

fn histogram(digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_HIGHEST_US, digits).expect("constant bounds are valid")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Recorder {
    /// Requests due in `measure_start..measure_end` are recorded; others are warm-up.
    pub fn new(measure_start: Instant, measure_end: Instant) -> Recorder {
        Recorder {
            measure_start,
            measure_end,
            totals: Totals::default(),
            latency: histogram(SIGNIFICANT_DIGITS),
            closed: Vec::new(),
            open: BTreeMap::new(),
        }
    }

    /// Records a request that was due at `due` and completed at `done`. Returns whether it
    /// counted in the totals (it was due inside the measurement window); it goes into the
    /// bucket of its completion second if that lies inside the window.
    pub fn record(&mut self, due: Instant, done: Instant, tally: &Tally, replayed: bool) -> bool {
        let latency_us = micros(done.saturating_duration_since(due));
        let decided = matches!(tally, Tally::Accepted | Tally::Rejected(_));
        let counted = due >= self.measure_start && due < self.measure_end;
        if counted {
            self.totals.add(tally, replayed);
            if decided {
                self.latency.saturating_record(latency_us);
            }
        }
        // The plot shows what the cluster answered in each second of the window, so a
        // second is full from the start (warm-up bids answered in it count) and nothing
        // after the window is shown.
        if done < self.measure_start || done >= self.measure_end {
            return counted;
        }
        let second = done.saturating_duration_since(self.measure_start).as_secs();
        self.close_before(second.saturating_sub(SECOND_OPEN_SPAN));
        let Some(bucket) = self.bucket(second) else {
            return counted;
        };
        match tally {
            Tally::Accepted => bucket.row.accepted += 1,
            Tally::Rejected(_) => bucket.row.rejected += 1,
            Tally::Error(_) => bucket.row.errors += 1,
            Tally::Unknown(_) => bucket.row.unknown += 1,
        }
        if decided {
            bucket.row.decided += 1;
            bucket.latency.saturating_record(latency_us);
        }
        counted
    }

    /// The open bucket of `second`, or `None` when it was already summarised (a completion
    /// that lost the race for the lock by more than `SECOND_OPEN_SPAN`): it still counts in
    /// the totals and the run's histogram.
    fn bucket(&mut self, second: u64) -> Option<&mut OpenSecond> {
        let summarised = self.closed.last().is_some_and(|row| row.second >= second);
        if summarised {
            return None;
        }
        Some(self.open.entry(second).or_insert_with(|| OpenSecond {
            row: SecondRow {
                second,
                ..SecondRow::default()
            },
            latency: histogram(SECOND_SIGNIFICANT_DIGITS),
        }))
    }

    /// Summarises every open second before `second`, filling gaps with empty rows.
    fn close_before(&mut self, second: u64) {
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() >= second {
                break;
            }
            let OpenSecond { mut row, latency } = entry.remove();
            let next = self.closed.last().map_or(0, |last| last.second + 1);
            self.closed
                .extend((next..row.second).map(|second| SecondRow {
                    second,
                    ..SecondRow::default()
                }));
            if !latency.is_empty() {
                row.p50_us = Some(latency.value_at_quantile(0.50));
                row.p99_us = Some(latency.value_at_quantile(0.99));
                row.max_us = Some(latency.max());
            }
            self.closed.push(row);
        }
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    pub fn latency(&self) -> Option<LatencySummary> {
        LatencySummary::of(&self.latency)
    }

    /// Ends the recording: every second summarised, `seconds` long at least (seconds with
    /// no completion are empty rows), in order.
    pub fn finish(mut self, seconds: u64) -> (Totals, Option<LatencySummary>, Vec<SecondRow>) {
        self.close_before(u64::MAX);
        let next = self.closed.last().map_or(0, |last| last.second + 1);
        self.closed.extend((next..seconds).map(|second| SecondRow {
            second,
            ..SecondRow::default()
        }));
        let latency = LatencySummary::of(&self.latency);
        (self.totals, latency, self.closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use martelo_engine::RejectCode;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn only_requests_due_inside_the_window_count() {
        let start = Instant::now();
        let mut recorder = Recorder::new(at(start, 1_000), at(start, 3_000));
        assert!(!recorder.record(at(start, 999), at(start, 1_001), &Tally::Accepted, false));
        assert!(recorder.record(at(start, 1_000), at(start, 1_002), &Tally::Accepted, false));
        assert!(recorder.record(at(start, 2_999), at(start, 3_500), &Tally::Accepted, false));
        assert!(!recorder.record(at(start, 3_000), at(start, 3_001), &Tally::Accepted, false));
        assert_eq!(recorder.totals().accepted, 2);
        // The plot's seconds hold what was answered inside the window: the warm-up bid
        // answered at 1001 ms, not the bid answered after the end.
        let (_, latency, seconds) = recorder.finish(2);
        assert_eq!(latency.map(|latency| latency.count), Some(2));
        assert_eq!(seconds.len(), 2);
        assert_eq!((seconds[0].accepted, seconds[1].accepted), (2, 0));
    }

    #[test]
    fn latency_runs_from_the_due_time_not_the_send_time() {
        // An open-loop request due at 0 but sent only at 900 ms (the sender was stalled)
        // and answered 1 ms later waited 901 ms as far as its user is concerned.
        let start = Instant::now();
        let mut recorder = Recorder::new(start, at(start, 10_000));
        recorder.record(start, at(start, 901), &Tally::Accepted, false);
        let latency = recorder.latency().expect("one sample");
        assert!((900_000..=902_000).contains(&latency.max_us), "{latency:?}");
    }

    #[test]
    fn percentiles_come_from_the_decided_requests() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start, at(start, 60_000));
        // 1000 requests of 1..=1000 ms; errors and unknown outcomes have no latency.
        for millis in 1..=1_000u64 {
            let code = if millis % 2 == 0 {
                Tally::Accepted
            } else {
                Tally::Rejected(RejectCode::BidTooLow)
            };
            recorder.record(at(start, 0), at(start, millis), &code, false);
        }
        recorder.record(
            start,
            at(start, 50_000),
            &Tally::Unknown("unknown_outcome".into()),
            false,
        );
        recorder.record(
            start,
            at(start, 1),
            &Tally::Error("unavailable".into()),
            false,
        );
        let latency = recorder.latency().expect("samples");
        assert_eq!(latency.count, 1_000);
        let near = |value: u64, millis: u64| value.abs_diff(millis * 1_000) <= millis;
        assert!(near(latency.p50_us, 500), "{latency:?}");
        assert!(near(latency.p90_us, 900), "{latency:?}");
        assert!(near(latency.p99_us, 990), "{latency:?}");
        assert!(near(latency.p999_us, 999), "{latency:?}");
        assert!(near(latency.max_us, 1_000), "{latency:?}");
        let (totals, _, _) = recorder.finish(1);
        assert_eq!(
            (totals.decided, totals.accepted, totals.rejected),
            (1_000, 500, 500)
        );
        assert_eq!(totals.rejected_by_reason.get("bid_too_low"), Some(&500));
        assert_eq!((totals.errors, totals.unknown), (1, 1));
        assert_eq!(totals.unknown_by_code.get("unknown_outcome"), Some(&1));
    }

    #[test]
    fn seconds_bucket_completions_and_fill_gaps() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start, at(start, 10_000));
        for millis in [10, 20, 990] {
            recorder.record(
                at(start, millis - 5),
                at(start, millis),
                &Tally::Accepted,
                false,
            );
        }
        recorder.record(
            at(start, 1_500),
            at(start, 1_600),
            &Tally::Rejected(RejectCode::AuctionClosed),
            false,
        );
        // Nothing completes in seconds 2..=5; second 6 has one error.
        recorder.record(
            at(start, 6_100),
            at(start, 6_200),
            &Tally::Error("overloaded".into()),
            false,
        );
        let (_, _, seconds) = recorder.finish(8);
        assert_eq!(seconds.len(), 8);
        assert_eq!(
            seconds.iter().map(|row| row.second).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        assert_eq!((seconds[0].decided, seconds[0].accepted), (3, 3));
        assert_eq!(
            seconds[0].max_us.map(|max| max.abs_diff(5_000) < 100),
            Some(true)
        );
        assert_eq!((seconds[1].decided, seconds[1].rejected), (1, 1));
        assert_eq!(
            seconds[1].p50_us.map(|p50| p50.abs_diff(100_000) < 1_000),
            Some(true)
        );
        assert_eq!(
            seconds[3],
            SecondRow {
                second: 3,
                ..SecondRow::default()
            }
        );
        assert_eq!(
            (seconds[6].errors, seconds[6].decided, seconds[6].p99_us),
            (1, 0, None)
        );
    }

    #[test]
    fn old_seconds_are_summarised_and_late_completions_still_count() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start, at(start, 100_000));
        recorder.record(start, at(start, 100), &Tally::Accepted, false);
        recorder.record(start, at(start, 20_000), &Tally::Accepted, false);
        assert_eq!(recorder.open.len(), 1, "second 0 was summarised");
        // A completion for second 0 arriving now lands in the totals only.
        recorder.record(start, at(start, 200), &Tally::Accepted, false);
        let (totals, latency, seconds) = recorder.finish(0);
        assert_eq!(totals.accepted, 3);
        assert_eq!(latency.map(|latency| latency.count), Some(3));
        assert_eq!(seconds.len(), 21);
        assert_eq!(seconds[0].accepted, 1);
        assert_eq!(seconds[20].accepted, 1);
    }
}
