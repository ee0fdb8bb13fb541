//! The run's report: one serialisable value, written as JSON, summarised for people and
//! plotted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::args::{LoadMode, Plan, TargetKind};
use crate::record::{LatencySummary, SecondRow, Totals};
use crate::watchers::WatchersReport;

/// Bumped when a field changes meaning or disappears; adding fields keeps it.
pub const REPORT_FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub format: u32,
    pub plan: Plan,
    pub target: TargetInfo,
    /// UTC, RFC 3339, when the load started.
    pub started_at: String,
    /// Seconds of measurement actually run (shorter than planned when interrupted).
    pub measured_s: f64,
    /// True when Ctrl-C ended the run early.
    pub interrupted: bool,
    pub setup: SetupInfo,
    /// Auctions a bid found closed (`auction_closed` or `auction_not_open`): in the
    /// `closing` scenario, the closes that happened during the run.
    pub auctions_seen_closed: usize,
    pub totals: Totals,
    pub throughput: Throughput,
    /// `due` in the open loop (corrected for coordinated omission), `sent` in the closed.
    pub latency_measured_from: &'static str,
    /// Percentiles of decided bids; absent when none was decided.
    pub latency: Option<LatencySummary>,
    /// Open loop: bids due during the measurement that were never sent (the run ended while
    /// they waited for a free slot).
    pub missed: u64,
    /// Bids still in flight at the drain deadline, not counted anywhere else.
    pub abandoned: u64,
    /// Raft proposal batching during the run, from the nodes' Prometheus endpoints.
    pub raft_batch: Option<BatchStats>,
    /// `--local-postgres`: what the nodes' Postgres sink wrote, and its lag at the end.
    pub sink: Option<SinkStats>,
    /// Why `raft_batch` is missing or partial.
    pub notes: Vec<String>,
    pub seconds: Vec<SecondRow>,
    /// `--watchers`: what the WebSocket watchers of the first auction saw.
    pub watchers: Option<WatchersReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetInfo {
    /// True when the bench started its own local cluster.
    pub local: bool,
    pub addresses: Vec<String>,
    pub metrics_addresses: Vec<String>,
    /// How the bids went: `grpc`, `http` or `ws`.
    pub kind: TargetKind,
    /// The gateway's base URL, when one was used (bids or watchers).
    pub gateway: Option<String>,
    /// True when the bench started that gateway itself, with its rate limits lifted.
    pub gateway_local: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SetupInfo {
    pub auctions_created: usize,
    pub setup_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Throughput {
    pub decided_per_s: f64,
    pub accepted_per_s: f64,
    pub rejected_per_s: f64,
}

impl Throughput {
    pub fn of(totals: &Totals, measured_s: f64) -> Throughput {
        let per_s = |count: u64| {
            if measured_s > 0.0 {
                count as f64 / measured_s
            } else {
                0.0
            }
        };
        Throughput {
            decided_per_s: per_s(totals.decided),
            accepted_per_s: per_s(totals.accepted),
            rejected_per_s: per_s(totals.rejected),
        }
    }
}

/// The nodes' Postgres sink during a run (`--local-postgres`), from their Prometheus
/// endpoints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SinkStats {
    /// Events the sink wrote to Postgres between the scrapes around the load (warm-up
    /// included), over every node.
    pub events_written: f64,
    pub events_per_s: f64,
    /// The sink's errors in the same span (`martelo_sink_errors_total`, every kind).
    pub errors: f64,
    /// The largest lag of any group when the load ended, in log entries and in seconds.
    pub lag_entries_at_end: f64,
    pub lag_seconds_at_end: f64,
}

/// Entries per Raft proposal batch
/// ([`martelo_types::metric_names::PROPOSE_BATCH_ENTRIES`]), summed over the nodes: the
/// difference between scrapes before and after the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchStats {
    pub batches: f64,
    pub entries: f64,
    pub mean_entries: Option<f64>,
    pub nodes_scraped: usize,
}

/// Formats microseconds for people: `840 µs`, `12.3 ms`, `1.20 s`.
pub fn format_micros(micros: u64) -> String {
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.1} ms", micros as f64 / 1_000.0)
    } else {
        format!("{:.2} s", micros as f64 / 1_000_000.0)
    }
}

fn by_count(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    let mut entries: Vec<(&String, &u64)> = map.iter().collect();
    entries.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    entries
        .iter()
        .map(|(code, count)| format!("{code} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report {
    /// The human summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mode = match self.plan.mode {
            LoadMode::Closed { concurrency } => format!("closed loop, {concurrency} in flight"),
            LoadMode::Open {
                rate_per_s,
                in_flight_max,
            } => format!("open loop, {rate_per_s} bids/s, at most {in_flight_max} in flight"),
        };
        let _ = writeln!(
            out,
            "martelo bench: scenario {}, {mode}, {} auctions, {} bidders, seed {}",
            self.plan.scenario.as_str(),
            self.setup.auctions_created,
            self.plan.bidders,
            self.plan.seed
        );
        let interrupted = if self.interrupted {
            " (interrupted)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  measured   {:.1} s after {:.1} s warm-up{interrupted}",
            self.measured_s,
            self.plan.warmup.as_secs_f64()
        );
        let where_ = if self.target.local {
            "local cluster "
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  target     {} to {where_}{}",
            self.target.kind.as_str(),
            self.target.addresses.join(",")
        );
        if let Some(gateway) = &self.target.gateway {
            let local = if self.target.gateway_local {
                " (started by the bench, rate limits lifted)"
            } else {
                ""
            };
            let _ = writeln!(out, "  gateway    {gateway}{local}");
        }
        let t = &self.totals;
        let _ = writeln!(
            out,
            "  decided    {} bids, {:.1}/s: accepted {} ({:.1}/s), rejected {} ({:.1}/s)",
            t.decided,
            self.throughput.decided_per_s,
            t.accepted,
            self.throughput.accepted_per_s,
            t.rejected,
            self.throughput.rejected_per_s
        );
        let _ = writeln!(out, "  rejected   {}", by_count(&t.rejected_by_reason));
        if self.auctions_seen_closed > 0 {
            let _ = writeln!(
                out,
                "  closed     {} of {} auctions were seen closed",
                self.auctions_seen_closed, self.setup.auctions_created
            );
        }
        let _ = writeln!(out, "  errors     {}", by_count(&t.errors_by_code));
        if t.unknown == 0 {
            let _ = writeln!(out, "  unknown    none");
        } else {
            let _ = writeln!(
                out,
                "  unknown    {} ({})",
                t.unknown,
                by_count(&t.unknown_by_code)
            );
        }
        if t.replayed > 0 {
            let _ = writeln!(
                out,
                "  replayed   {} decisions came from a retried request id",
                t.replayed
            );
        }
        if self.missed > 0 || self.abandoned > 0 {
            let _ = writeln!(
                out,
                "  unsent     {} due but never sent, {} abandoned in flight",
                self.missed, self.abandoned
            );
        }
        match &self.latency {
            Some(latency) => {
                let _ = writeln!(
                    out,
                    "  latency    p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (from {})",
                    format_micros(latency.p50_us),
                    format_micros(latency.p90_us),
                    format_micros(latency.p99_us),
                    format_micros(latency.p999_us),
                    format_micros(latency.max_us),
                    self.latency_measured_from
                );
            }
            None => {
                let _ = writeln!(out, "  latency    no bid was decided");
            }
        }
        match &self.raft_batch {
            Some(batch) => {
                let mean = batch.mean_entries.map_or_else(
                    || "no batch".to_owned(),
                    |mean| format!("{mean:.2} entries per batch"),
                );
                let _ = writeln!(
                    out,
                    "  raft batch {mean} ({} batches, {} entries, {} nodes scraped)",
                    batch.batches, batch.entries, batch.nodes_scraped
                );
            }
            None => {
                let _ = writeln!(out, "  raft batch not measured");
            }
        }
        if let Some(sink) = &self.sink {
            let _ = writeln!(
                out,
                "  sink       {:.0} events written to Postgres ({:.0}/s), {:.0} errors; lag at \
                 the end: {:.0} entries, {:.2} s (the largest of any group)",
                sink.events_written,
                sink.events_per_s,
                sink.errors,
                sink.lag_entries_at_end,
                sink.lag_seconds_at_end
            );
        }
        if let Some(watchers) = &self.watchers {
            watchers_summary(&mut out, watchers);
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note       {note}");
        }
        out
    }

    /// Writes `report.json`, `plot.svg` and `summary.txt` into `dir` (created if missing).
    /// Returns the paths written.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).context("cannot encode the report")?;
        let title = format!(
            "martelo bench: {} ({})",
            self.plan.scenario.as_str(),
            self.started_at
        );
        let files = [
            ("report.json", json),
            ("plot.svg", crate::svg::render(&title, &self.seconds)),
            ("summary.txt", self.summary()),
        ];
        let mut written = Vec::new();
        for (name, contents) in files {
            let path = dir.join(name);
            std::fs::write(&path, contents)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written.push(path);
        }
        Ok(written)
    }
}

fn watchers_summary(out: &mut String, w: &WatchersReport) {
    let _ = writeln!(
        out,
        "  watchers   {} of {} connected ({}), {} closed early, {} behind seq {} at the end",
        w.connected,
        w.requested,
        by_count(&w.connect_failures).replace("none", "no failures"),
        w.closed_early,
        w.behind_at_end,
        w.final_seq
    );
    let _ = writeln!(
        out,
        "  events     {} received ({} measured): {} gaps ({} events missing), {} duplicates, \
         re-snapshots {}",
        w.events_received,
        w.events_measured,
        w.gaps,
        w.missing_events,
        w.duplicates,
        by_count(&w.resnapshots)
    );
    match &w.latency {
        Some(latency) => {
            let _ = writeln!(
                out,
                "  commit→ws  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (commit to receive)",
                format_micros(latency.p50_us),
                format_micros(latency.p90_us),
                format_micros(latency.p99_us),
                format_micros(latency.p999_us),
                format_micros(latency.max_us),
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  commit→ws  no event was received during the measurement"
            );
        }
    }
}

/// UTC calendar time of `unix_seconds`, as `(year, month, day, hour, minute, second)`.
/// Howard Hinnant's `civil_from_days`, so no date crate is needed for a file name.
fn civil(unix_seconds: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = (unix_seconds / 86_400) as i64;
    let rest = unix_seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year.max(0) as u64,
        month as u64,
        day as u64,
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
    )
}

/// `2025-01-31T12:34:56Z`.
pub fn rfc3339(unix_seconds: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_seconds);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `20250131T123456Z`: sorts by time and is safe in a file name.
pub fn compact_timestamp(unix_seconds: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_seconds);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Scenario;
    use std::time::Duration;

    pub(crate) fn sample() -> Report {
        let mut totals = Totals {
            decided: 30,
            accepted: 10,
            rejected: 20,
            ..Totals::default()
        };
        totals.rejected_by_reason.insert("bid_too_low".into(), 18);
        totals.rejected_by_reason.insert("max_not_raised".into(), 2);
        totals.unknown = 1;
        totals.unknown_by_code.insert("unknown_outcome".into(), 1);
        Report {
            format: REPORT_FORMAT,
            plan: Plan {
                scenario: Scenario::Hot,
                mode: LoadMode::Closed { concurrency: 4 },
                duration: Duration::from_secs(2),
                warmup: Duration::from_secs(1),
                request_timeout: Duration::from_secs(5),
                bidders: 16,
                auctions: 1,
                seed: 1,
                target: TargetKind::Grpc,
                watchers: 0,
                watcher_connect_rate: 1_000,
            },
            target: TargetInfo {
                local: true,
                addresses: vec!["127.0.0.1:7001".into()],
                metrics_addresses: vec!["127.0.0.1:9001".into()],
                kind: TargetKind::Grpc,
                gateway: None,
                gateway_local: false,
            },
            started_at: rfc3339(1_700_000_000),
            measured_s: 2.0,
            interrupted: false,
            setup: SetupInfo {
                auctions_created: 1,
                setup_s: 0.1,
            },
            auctions_seen_closed: 0,
            throughput: Throughput::of(&totals, 2.0),
            totals,
            latency_measured_from: "sent",
            latency: Some(LatencySummary {
                count: 30,
                min_us: 100,
                mean_us: 900.0,
                p50_us: 800,
                p90_us: 1_500,
                p99_us: 2_500,
                p999_us: 2_900,
                max_us: 3_000,
            }),
            missed: 0,
            abandoned: 0,
            sink: None,
            raft_batch: Some(BatchStats {
                batches: 10.0,
                entries: 30.0,
                mean_entries: Some(3.0),
                nodes_scraped: 3,
            }),
            notes: vec![],
            seconds: vec![
                SecondRow {
                    second: 0,
                    decided: 14,
                    accepted: 5,
                    rejected: 9,
                    p50_us: Some(800),
                    p99_us: Some(2_000),
                    max_us: Some(2_100),
                    ..SecondRow::default()
                },
                SecondRow {
                    second: 1,
                    decided: 16,
                    accepted: 5,
                    rejected: 11,
                    unknown: 1,
                    p50_us: Some(850),
                    p99_us: Some(2_900),
                    max_us: Some(3_000),
                    ..SecondRow::default()
                },
            ],
            watchers: None,
        }
    }

    #[test]
    fn watchers_are_summarised_with_their_gaps_in_plain_sight() {
        let mut report = sample();
        let mut watchers = WatchersReport {
            requested: 10,
            connected: 9,
            final_seq: 40,
            events_received: 300,
            events_measured: 250,
            gaps: 2,
            missing_events: 5,
            ..WatchersReport::default()
        };
        watchers.connect_failures.insert("timeout".into(), 1);
        watchers.resnapshots.insert("conflated".into(), 1);
        report.watchers = Some(watchers);
        let summary = report.summary();
        assert!(
            summary.contains("9 of 10 connected (timeout 1)"),
            "{summary}"
        );
        assert!(summary.contains("2 gaps (5 events missing)"), "{summary}");
        assert!(summary.contains("conflated 1"), "{summary}");
        let value = serde_json::to_value(&report).expect("serialises");
        assert_eq!(value["watchers"]["gaps"], 2);
        assert_eq!(value["target"]["kind"], "grpc");
    }

    #[test]
    fn the_json_report_has_the_documented_shape() {
        let value = serde_json::to_value(sample()).expect("serialises");
        assert_eq!(value["format"], 1);
        assert_eq!(value["plan"]["scenario"], "hot");
        assert_eq!(value["plan"]["mode"]["kind"], "closed");
        assert_eq!(value["plan"]["mode"]["concurrency"], 4);
        assert_eq!(value["plan"]["duration"], 2.0);
        assert_eq!(value["totals"]["accepted"], 10);
        assert_eq!(value["totals"]["rejected_by_reason"]["bid_too_low"], 18);
        assert_eq!(value["totals"]["unknown"], 1);
        assert_eq!(value["throughput"]["decided_per_s"], 15.0);
        for key in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"] {
            assert!(value["latency"][key].is_u64(), "{key}");
        }
        assert_eq!(value["raft_batch"]["mean_entries"], 3.0);
        assert_eq!(value["seconds"][1]["second"], 1);
        assert_eq!(value["seconds"][1]["p99_us"], 2_900);
        assert_eq!(value["started_at"], "2023-11-14T22:13:20Z");
        let open = LoadMode::Open {
            rate_per_s: 100.0,
            in_flight_max: 8,
        };
        let open = serde_json::to_value(open).expect("serialises");
        assert_eq!(open["kind"], "open");
        assert_eq!(open["rate_per_s"], 100.0);
    }

    #[test]
    fn the_summary_names_every_reported_figure() {
        let summary = sample().summary();
        for needle in [
            "scenario hot",
            "15.0/s",
            "accepted 10",
            "bid_too_low 18, max_not_raised 2",
            "errors     none",
            "unknown    1 (unknown_outcome 1)",
            "p50 800 µs",
            "p99.9 2.9 ms",
            "max 3.0 ms",
            "3.00 entries per batch",
        ] {
            assert!(
                summary.contains(needle),
                "{needle:?} missing from:\n{summary}"
            );
        }
    }

    #[test]
    fn the_report_files_are_written_together() {
        let dir = std::env::temp_dir().join(format!("martelo-bench-test-{}", std::process::id()));
        let written = sample().write(&dir).expect("written");
        assert_eq!(written.len(), 3);
        let json = std::fs::read_to_string(dir.join("report.json")).expect("json exists");
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(parsed["totals"]["decided"], 30);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn timestamps_are_utc_calendar_time() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(compact_timestamp(1_735_689_599), "20241231T235959Z");
        assert_eq!(format_micros(999), "999 µs");
        assert_eq!(format_micros(12_345), "12.3 ms");
        assert_eq!(format_micros(1_200_000), "1.20 s");
    }
}
