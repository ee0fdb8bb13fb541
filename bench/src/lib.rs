//! # martelo-bench: the load generator behind `martelo bench`
//!
//! Creates a scenario's auctions on a cluster, drives bids at it in a closed or open loop,
//! and reports bids decided per second (accepted, and rejected by reason), latency
//! percentiles, Raft batch sizes, errors and unknown outcomes: on stdout, as JSON and as an
//! SVG plot.
//!
//! ```text
//!   BenchArgs ─plan()─▶ Plan
//!       │
//!   run: cluster (--addr, or LocalRun for --local) ─▶ ClusterTarget (martelo-client)
//!       │   or, --target http|ws: a gateway (--gateway, or LocalGateway with --local)
//!       │       ─▶ GatewaySession (accounts signed in) ─▶ HttpTarget / WsTarget
//!       │   Workload: create auctions, then next_bid() / observe(reply)
//!       │   --watchers N: Watchers subscribed to the first auction (own sockets)
//!       │   scrape /metrics (before)
//!       ├─▶ driver::drive: closed or open loop ─▶ Recorder (HdrHistogram, per second)
//!       │   scrape /metrics (after)
//!       └─▶ Report ─▶ stdout summary, report.json, plot.svg, summary.txt
//! ```
//!
//! Where things are, and where new code goes:
//! - [`args`]: flags and their checks; a new option goes here and into [`args::Plan`];
//! - [`workload`]: scenarios, auction listings and the bid-amount strategy; a new scenario
//!   is a [`args::Scenario`] variant plus its rules here;
//! - [`driver`]: the closed and open loops; [`record`]: what is measured and how;
//! - [`target`]: the seam between the loops and the cluster, with an in-process engine for
//!   tests; [`cluster`]: the real one through `martelo-client`;
//! - [`gateway`]: the local gateway process and the accounts; [`gateway_target`]: bids over
//!   HTTP and WebSocket; [`wire`]: the gateway's JSON to and from decisions;
//! - [`watchers`]: the WebSocket watchers, their seq checks and commit-to-receive latency;
//! - [`report`], [`svg`]: the outputs; [`prometheus`]: scraping the nodes' metrics.
//!
//! Everything but `run` and `cluster` is pure or runs against the in-process engine, and is
//! unit-tested beside its code. An end-to-end run needs the `martelo` binary: the ignored
//! tests in `tests/local_cluster.rs` and `tests/through_gateway.rs` take it from
//! `MARTELO_BIN`. The quick path (CI's smoke
//! test) is `martelo bench --local --duration 5s --warmup 1s`; it exits non-zero when no bid
//! was decided.

pub mod args;
pub mod cluster;
pub mod driver;
pub mod gateway;
pub mod gateway_target;
pub mod prometheus;
pub mod record;
pub mod report;
pub mod rng;
pub mod svg;
pub mod target;
pub mod watchers;
pub mod wire;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use martelo_engine::{Reply, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use args::{BenchArgs, LoadMode, Plan, Scenario, TargetKind};
pub use report::Report;

use cluster::LocalRun;
use driver::{DriveSettings, Live, Window};
use gateway::{LocalGateway, raise_open_files_limit, read_auction_seq};
use gateway_target::connect_target;
use martelo_sink::metric_names as sink_metrics;
use martelo_types::metric_names::PROPOSE_BATCH_ENTRIES;
use prometheus::HistogramTotals;
use report::{BatchStats, SetupInfo, SinkStats, TargetInfo, Throughput};
use target::{Decision, Target};
use watchers::{WatcherSettings, Watchers, WatchersReport};
use workload::Workload;

/// Auction creations in flight at once during setup.
const CREATE_CONCURRENCY: usize = 32;
/// Deadline of one metrics scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long watchers may take after the load to receive the last events.
const WATCHERS_DRAIN: Duration = Duration::from_secs(10);
/// How often the progress bar refreshes.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs one benchmark as `args` say. `binary` is the `martelo` executable, used to start
/// nodes with `--local`. Ctrl-C stops the load early; the report is still written.
pub async fn run(args: BenchArgs, binary: PathBuf) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let started_unix = unix_seconds(SystemTime::now());
    let out_dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("bench-results").join(report::compact_timestamp(started_unix))
    });
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create the output directory {}", out_dir.display()))?;

    let (stop_sender, mut stop) = watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_sender.send(true);
        }
    });
    let result = run_with(
        &args,
        &plan,
        binary,
        out_dir.clone(),
        started_unix,
        &mut stop,
    )
    .await;
    ctrl_c.abort();
    if result.is_err() {
        // Created up front so an unwritable path fails before a long run; a run that
        // failed before writing anything leaves no empty directory behind.
        let _ = std::fs::remove_dir(&out_dir);
    }
    result
}

async fn run_with(
    args: &BenchArgs,
    plan: &Plan,
    binary: PathBuf,
    out_dir: PathBuf,
    started_unix: u64,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let setup_started = Instant::now();
    let local = if args.local {
        println!(
            "starting a local {}-node cluster ({})",
            cluster::LOCAL_NODES,
            binary.display()
        );
        let started = until_stopped(
            stop,
            LocalRun::start(&binary, args.local_postgres.as_deref()),
        )
        .await?;
        Some(started?)
    } else {
        None
    };
    let (addresses, metrics_addresses) = match &local {
        Some(local) => (local.api_addresses(), local.metrics_addresses()),
        None => (
            args.addr
                .iter()
                .map(|addr| addr.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect(),
            args.metrics_addr
                .iter()
                .map(|addr| addr.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>(),
        ),
    };
    let remote_gateway = args
        .gateway
        .as_deref()
        .map(|base| base.trim().trim_end_matches('/').to_owned())
        .filter(|base| !base.is_empty());
    let outcome = with_gateway(
        plan,
        &binary,
        local.as_ref(),
        remote_gateway,
        &addresses,
        &metrics_addresses,
        stop,
        setup_started,
    )
    .await;
    if let Some(local) = local {
        local.stop().await;
    }
    let (measured, gateway) = outcome?;

    let report = Report {
        format: report::REPORT_FORMAT,
        plan: plan.clone(),
        target: TargetInfo {
            local: args.local,
            addresses,
            metrics_addresses,
            kind: plan.target,
            gateway_local: args.local && gateway.is_some(),
            gateway,
        },
        started_at: report::rfc3339(started_unix),
        measured_s: measured.measured_s,
        interrupted: measured.interrupted,
        setup: measured.setup,
        auctions_seen_closed: measured.auctions_seen_closed,
        throughput: Throughput::of(&measured.totals, measured.measured_s),
        totals: measured.totals,
        latency_measured_from: match plan.mode {
            LoadMode::Closed { .. } => "sent",
            LoadMode::Open { .. } => "due",
        },
        latency: measured.latency,
        missed: measured.missed,
        abandoned: measured.abandoned,
        raft_batch: measured.raft_batch,
        sink: measured.sink,
        notes: measured.notes,
        seconds: measured.seconds,
        watchers: measured.watchers,
    };
    let written = report.write(&out_dir)?;
    print!("{}", report.summary());
    let names: Vec<String> = written
        .iter()
        .filter_map(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .collect();
    println!("  report     {} ({})", out_dir.display(), names.join(", "));
    // A run in which nothing was decided measured nothing: say so with the exit status, so
    // a smoke test in CI fails instead of passing on an empty report.
    if report.totals.decided == 0 && !report.interrupted {
        bail!(
            "no bid was decided during the measurement (errors: {}, unknown: {}); see {}",
            report.totals.errors,
            report.totals.unknown,
            out_dir.display()
        );
    }
    Ok(())
}

/// What one measurement produced, before it becomes a [`Report`].
struct Measured {
    setup: SetupInfo,
    auctions_seen_closed: usize,
    measured_s: f64,
    interrupted: bool,
    totals: record::Totals,
    latency: Option<record::LatencySummary>,
    seconds: Vec<record::SecondRow>,
    missed: u64,
    abandoned: u64,
    raft_batch: Option<BatchStats>,
    sink: Option<SinkStats>,
    notes: Vec<String>,
    watchers: Option<WatchersReport>,
}

/// Starts the local gateway when the run needs one (`--local` with a gateway target or
/// watchers), measures, and stops it. Returns the gateway used, if any.
#[allow(clippy::too_many_arguments)]
async fn with_gateway(
    plan: &Plan,
    binary: &std::path::Path,
    local: Option<&LocalRun>,
    remote_gateway: Option<String>,
    addresses: &[String],
    metrics_addresses: &[String],
    stop: &mut watch::Receiver<bool>,
    setup_started: Instant,
) -> anyhow::Result<(Measured, Option<String>)> {
    let wanted = plan.target.through_gateway() || plan.watchers > 0;
    let local_gateway = match local {
        Some(local) if wanted => {
            println!("starting a local gateway in front of it");
            let started = until_stopped(
                stop,
                LocalGateway::start(binary, local.dir.path(), &local.api_addresses()),
            )
            .await?;
            Some(started?)
        }
        _ => None,
    };
    let base = match &local_gateway {
        Some(gateway) => Some(gateway.base().to_owned()),
        None if wanted => remote_gateway,
        None => None,
    };
    let measured = measure(
        plan,
        addresses,
        metrics_addresses,
        base.as_deref(),
        stop,
        setup_started,
    )
    .await;
    if let Some(mut gateway) = local_gateway {
        let running = gateway.is_running();
        let log = gateway.log().to_owned();
        gateway.stop().await;
        if !running {
            let tail = martelo_devkit::read_log_tail(&log, 20);
            return Err(anyhow!(
                "the local gateway exited during the run; log {}:\n{tail}",
                log.display()
            ));
        }
    }
    Ok((measured?, base))
}

async fn measure(
    plan: &Plan,
    addresses: &[String],
    metrics_addresses: &[String],
    gateway: Option<&str>,
    stop: &mut watch::Receiver<bool>,
    setup_started: Instant,
) -> anyhow::Result<Measured> {
    let nonce = run_nonce();
    let (target, session) =
        until_stopped(stop, connect_target(plan, addresses, gateway, nonce)).await??;
    let target = Arc::new(target);
    let workload = Arc::new(Workload::new(
        plan.scenario,
        plan.auctions,
        plan.bidders,
        nonce,
    ));
    println!(
        "creating {} auction(s) for scenario {}",
        plan.auctions,
        plan.scenario.as_str()
    );
    until_stopped(stop, create_auctions(&target, &workload, plan)).await??;
    let ids: Vec<u64> = workload
        .auctions()
        .iter()
        .map(|auction| auction.id.0)
        .collect();
    // The ids are the run's nonce plus an index: print them so the auctions can be found
    // afterwards (`martelo auction show ID`, `martelo auction list`).
    println!("{}", created_auctions_line(&ids));
    let setup = SetupInfo {
        auctions_created: workload.auctions().len(),
        setup_s: setup_started.elapsed().as_secs_f64(),
    };

    let mut notes = Vec::new();
    // The watched auction, under the id the gateway knows it by.
    let watched = match &session {
        Some(session) => session.gateway_id(workload.auctions()[0].id),
        None => Some(workload.auctions()[0].id.0),
    };
    let watchers = match (plan.watchers, gateway, watched) {
        (0, ..) => None,
        (count, Some(base), Some(auction)) => {
            let limit = raise_open_files_limit()?;
            if limit < count as u64 + 256 {
                notes.push(format!(
                    "watchers: the open-files limit is {limit}, below {count} watchers plus \
                     room; expect connect failures"
                ));
            }
            println!(
                "opening {count} watchers of auction {auction} (at most {}/s)",
                plan.watcher_connect_rate
            );
            let settings = WatcherSettings {
                ws_url: gateway::ws_url(base),
                auction,
                count,
                connect_per_s: plan.watcher_connect_rate,
            };
            Some((
                until_stopped(stop, Watchers::open(settings)).await??,
                base,
                auction,
            ))
        }
        _ => bail!("--watchers needs a gateway and a created auction"),
    };
    let before = scrape_all(metrics_addresses, &mut notes).await;
    let sink_before = scrape_sink(metrics_addresses).await;
    let window = Window::starting_now(plan.warmup, plan.duration);
    if let Some((watchers, ..)) = &watchers {
        watchers.start_measuring(wall_us_at(window.measure_start));
    }
    let live = Arc::new(Live::default());
    println!(
        "running {} for {:.1} s after {:.1} s of warm-up (Ctrl-C stops early and keeps the report)",
        plan.scenario.as_str(),
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64()
    );
    let progress = tokio::spawn(show_progress(Arc::clone(&live), window));
    let settings = DriveSettings {
        mode: plan.mode,
        window,
        seed: plan.seed,
        request_timeout: plan.request_timeout,
        drain: plan.request_timeout + Duration::from_secs(2),
    };
    let driven = driver::drive(
        target,
        Arc::clone(&workload),
        settings,
        Arc::clone(&live),
        stop.clone(),
    )
    .await;
    progress.abort();
    let _ = progress.await;
    let after = scrape_all(metrics_addresses, &mut notes).await;
    let raft_batch = batch_stats(&before, &after, metrics_addresses.is_empty(), &mut notes);
    let sink_after = scrape_sink(metrics_addresses).await;
    let sink_window = window.end.saturating_duration_since(window.start);

    let ended = driven.stopped_at.unwrap_or(window.end).min(window.end);
    let watchers = match watchers {
        Some((watchers, base, auction)) => {
            let final_seq = read_auction_seq(base, auction).await?;
            Some(
                watchers
                    .finish(wall_us_at(ended), final_seq, WATCHERS_DRAIN)
                    .await,
            )
        }
        None => None,
    };
    let measured = ended.saturating_duration_since(window.measure_start);
    let seconds = measured.as_secs() + u64::from(measured.subsec_nanos() > 0);
    let (totals, latency, rows) = driven.recorder.finish(seconds);
    if driven.stopped_at.is_some() {
        notes.push("interrupted: the load stopped before the planned end".to_owned());
    }
    let auctions_seen_closed = workload
        .auctions()
        .iter()
        .filter(|auction| auction.seen_closed())
        .count();
    Ok(Measured {
        setup,
        auctions_seen_closed,
        measured_s: measured.as_secs_f64(),
        interrupted: driven.stopped_at.is_some(),
        totals,
        latency,
        seconds: rows,
        missed: driven.missed,
        abandoned: driven.abandoned,
        raft_batch,
        sink: sink_stats(sink_before, sink_after, sink_window),
        notes,
        watchers,
    })
}

/// The wall clock (µs since the epoch) at `instant`, for comparing with commit times.
fn wall_us_at(instant: Instant) -> u64 {
    let now = Instant::now();
    let wall = watchers::now_us();
    if instant >= now {
        wall.saturating_add(instant.duration_since(now).as_micros() as u64)
    } else {
        wall.saturating_sub(now.duration_since(instant).as_micros() as u64)
    }
}

/// Runs `work` unless Ctrl-C comes first, which is an error before the load starts.
async fn until_stopped<F: std::future::Future>(
    stop: &mut watch::Receiver<bool>,
    work: F,
) -> anyhow::Result<F::Output> {
    tokio::select! {
        output = work => Ok(output),
        () = driver::stopped(stop) => {
            Err(anyhow!("interrupted before the load started; no report was written"))
        }
    }
}

/// Creates every auction of the workload as its seller, a few at a time. Any rejection
/// stops the run: bids on a missing auction would measure nothing.
async fn create_auctions<T: Target>(
    target: &Arc<T>,
    workload: &Workload,
    plan: &Plan,
) -> anyhow::Result<()> {
    let now = Timestamp(u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros(),
    )?);
    let requests = workload.create_requests(now, plan.warmup, plan.duration);
    let mut pending = requests.into_iter();
    let mut tasks = JoinSet::new();
    loop {
        while tasks.len() < CREATE_CONCURRENCY {
            let Some(request) = pending.next() else {
                break;
            };
            let target = Arc::clone(target);
            tasks.spawn(async move {
                let auction = request.action.auction_id();
                (auction, target.propose(request).await)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            return Ok(());
        };
        let (auction, decision) = joined.context("an auction creation task failed")?;
        let auction = auction.map_or(0, |id| id.0);
        match decision {
            Decision::Decided {
                reply: Reply::Accepted(_),
                ..
            } => {}
            Decision::Decided {
                reply: Reply::Rejected(code),
                ..
            } => {
                let hint = if code == martelo_engine::RejectCode::InvalidWindow {
                    " (is this machine's clock far from the cluster's?)"
                } else {
                    ""
                };
                bail!(
                    "creating auction {auction} was rejected: {code}: {}{hint}",
                    code.message()
                );
            }
            Decision::Failed { code } | Decision::Unknown { code } => {
                bail!(
                    "creating auction {auction} got no answer from the cluster ({code}); is \
                     every group led? `martelo status` shows the cluster's health"
                );
            }
        }
    }
}

/// Most auction ids `created_auctions_line` lists one by one when they are not contiguous.
const CREATED_IDS_LISTED_MAX: usize = 10;

/// `created N auction(s): ids A..=B` for a contiguous run of ids (the bench's own), else the
/// ids themselves when they are few, else the lowest and highest.
fn created_auctions_line(ids: &[u64]) -> String {
    let count = ids.len();
    let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
        return "created no auctions".to_owned();
    };
    let contiguous = ids
        .windows(2)
        .all(|pair| pair[0].checked_add(1) == Some(pair[1]));
    if count == 1 {
        format!("created 1 auction: id {first}")
    } else if contiguous {
        format!("created {count} auctions: ids {first}..={last}")
    } else if count <= CREATED_IDS_LISTED_MAX {
        let listed: Vec<String> = ids.iter().map(u64::to_string).collect();
        format!("created {count} auctions: ids {}", listed.join(", "))
    } else {
        let low = ids.iter().min().copied().unwrap_or(first);
        let high = ids.iter().max().copied().unwrap_or(last);
        format!("created {count} auctions: ids from {low} to {high}, not contiguous")
    }
}

/// Scrapes every metrics endpoint; failures become notes, so a missing endpoint never
/// fails a run.
async fn scrape_all(addresses: &[String], notes: &mut Vec<String>) -> Vec<Option<HistogramTotals>> {
    let mut totals = Vec::with_capacity(addresses.len());
    for address in addresses {
        match prometheus::scrape(address, SCRAPE_TIMEOUT).await {
            Ok(page) => {
                let found = prometheus::parse_histogram_totals(&page, PROPOSE_BATCH_ENTRIES);
                // A node that never led proposes nothing and exports no batches: zero.
                totals.push(Some(found.unwrap_or_default()));
            }
            Err(error) => {
                notes.push(format!("metrics: {error:#}"));
                totals.push(None);
            }
        }
    }
    totals
}

/// The Postgres sink's counters on every node: events written (summed), and the largest
/// lag in entries and in seconds of any group. `None` when a node did not answer or no
/// node runs a sink (the counter is absent everywhere).
async fn scrape_sink(addresses: &[String]) -> Option<SinkScrape> {
    let mut scrape = SinkScrape::default();
    let mut seen = false;
    for address in addresses {
        let page = prometheus::scrape(address, SCRAPE_TIMEOUT).await.ok()?;
        let written: Vec<f64> = prometheus::samples(&page, sink_metrics::EVENTS_WRITTEN).collect();
        seen |= !written.is_empty();
        scrape.written += written.iter().sum::<f64>();
        scrape.errors += prometheus::samples(&page, sink_metrics::ERRORS).sum::<f64>();
        for value in prometheus::samples(&page, sink_metrics::LAG_ENTRIES) {
            scrape.lag_entries = scrape.lag_entries.max(value);
        }
        for value in prometheus::samples(&page, sink_metrics::LAG_SECONDS) {
            scrape.lag_seconds = scrape.lag_seconds.max(value);
        }
    }
    seen.then_some(scrape)
}

/// One [`scrape_sink`] of every node.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct SinkScrape {
    written: f64,
    errors: f64,
    lag_entries: f64,
    lag_seconds: f64,
}

/// What the sink did between the scrapes around the load (warm-up included: `window`),
/// and its lag at the end.
fn sink_stats(
    before: Option<SinkScrape>,
    after: Option<SinkScrape>,
    window: Duration,
) -> Option<SinkStats> {
    let after = after?;
    let written = after.written - before.map_or(0.0, |before| before.written);
    let errors = after.errors - before.map_or(0.0, |before| before.errors);
    Some(SinkStats {
        events_written: written,
        errors,
        events_per_s: written / window.as_secs_f64().max(1e-9),
        lag_entries_at_end: after.lag_entries,
        lag_seconds_at_end: after.lag_seconds,
    })
}

/// The batching between the two scrapes, over the nodes scraped both times.
fn batch_stats(
    before: &[Option<HistogramTotals>],
    after: &[Option<HistogramTotals>],
    no_endpoints: bool,
    notes: &mut Vec<String>,
) -> Option<BatchStats> {
    if no_endpoints {
        notes
            .push("raft batch sizes: pass --metrics-addr HOST:PORT,... to measure them".to_owned());
        return None;
    }
    let mut delta = HistogramTotals::default();
    let mut nodes = 0;
    for (before, after) in before.iter().zip(after) {
        if let (Some(before), Some(after)) = (before, after) {
            let since = after.since(*before);
            delta.sum += since.sum;
            delta.count += since.count;
            nodes += 1;
        }
    }
    if nodes == 0 {
        return None;
    }
    if delta.count == 0.0 {
        notes.push(format!(
            "raft batch sizes: no {PROPOSE_BATCH_ENTRIES} batch was recorded during the run"
        ));
    }
    Some(BatchStats {
        batches: delta.count,
        entries: delta.sum,
        mean_entries: (delta.count > 0.0).then(|| delta.sum / delta.count),
        nodes_scraped: nodes,
    })
}

async fn show_progress(live: Arc<Live>, window: Window) {
    let total_ms = window
        .end
        .saturating_duration_since(window.start)
        .as_millis() as u64;
    let bar = ProgressBar::new(total_ms.max(1));
    let style = ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let mut last = (Instant::now(), 0u64);
    // Finishes when the driver aborts this task; `bar` is cleared when dropped.
    let _clear = ClearOnDrop(bar.clone());
    loop {
        tick.tick().await;
        let now = Instant::now();
        let decided = live.decided();
        let interval = now.saturating_duration_since(last.0).as_secs_f64();
        let rate = if interval > 0.0 {
            (decided - last.1) as f64 / interval
        } else {
            0.0
        };
        last = (now, decided);
        let phase = if now < window.measure_start {
            "warm-up"
        } else {
            "measuring"
        };
        bar.set_position(now.saturating_duration_since(window.start).as_millis() as u64);
        bar.set_message(format!(
            "{phase}: {decided} decided ({rate:.0}/s), {} accepted, {} errors, {} unknown",
            live.accepted.load(Ordering::Relaxed),
            live.errors.load(Ordering::Relaxed),
            live.unknown.load(Ordering::Relaxed),
        ));
    }
}

/// Clears the progress bar when the progress task ends, however it ends.
struct ClearOnDrop(ProgressBar);

impl std::fmt::Debug for ClearOnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClearOnDrop")
    }
}

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A number unique to this run (time and process id, mixed), so its auction and request
/// ids differ from every other run's. Not seeded: two runs with the same `--seed` against
/// one cluster must still not collide.
fn run_nonce() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let mut rng = rng::Rng::new(nanos ^ (u64::from(std::process::id()) << 32));
    rng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_stats_count_what_was_written_around_the_load_and_the_lag_at_its_end() {
        let before = SinkScrape {
            written: 100.0,
            errors: 1.0,
            lag_entries: 7.0,
            lag_seconds: 0.5,
        };
        let after = SinkScrape {
            written: 2_100.0,
            errors: 3.0,
            lag_entries: 3.0,
            lag_seconds: 0.25,
        };
        let stats = sink_stats(Some(before), Some(after), Duration::from_secs(4)).expect("sink");
        assert_eq!(stats.events_written, 2_000.0);
        assert_eq!(stats.events_per_s, 500.0);
        assert_eq!(stats.errors, 2.0);
        assert_eq!(
            (stats.lag_entries_at_end, stats.lag_seconds_at_end),
            (3.0, 0.25)
        );
        assert_eq!(sink_stats(Some(before), None, Duration::from_secs(4)), None);
    }

    #[test]
    fn batch_sizes_come_from_nodes_scraped_before_and_after() {
        let mut notes = Vec::new();
        let before = [
            Some(HistogramTotals {
                sum: 10.0,
                count: 5.0,
            }),
            None,
            Some(HistogramTotals::default()),
        ];
        let after = [
            Some(HistogramTotals {
                sum: 70.0,
                count: 25.0,
            }),
            Some(HistogramTotals {
                sum: 99.0,
                count: 9.0,
            }),
            Some(HistogramTotals {
                sum: 20.0,
                count: 5.0,
            }),
        ];
        let stats = batch_stats(&before, &after, false, &mut notes).expect("measured");
        assert_eq!(stats.nodes_scraped, 2);
        assert_eq!((stats.batches, stats.entries), (25.0, 80.0));
        assert_eq!(stats.mean_entries, Some(3.2));
        assert!(notes.is_empty());
        assert_eq!(batch_stats(&[], &[], true, &mut notes), None);
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn the_created_auction_ids_are_printed_as_a_range_or_a_list() {
        assert_eq!(created_auctions_line(&[]), "created no auctions");
        assert_eq!(created_auctions_line(&[7]), "created 1 auction: id 7");
        let workload = Workload::new(Scenario::Spread, 70, 10, 5);
        let ids: Vec<u64> = workload.auctions().iter().map(|a| a.id.0).collect();
        assert_eq!(
            created_auctions_line(&ids),
            format!("created 70 auctions: ids {}..={}", ids[0], ids[69])
        );
        assert_eq!(
            created_auctions_line(&[4, 9, 2]),
            "created 3 auctions: ids 4, 9, 2"
        );
        let scattered: Vec<u64> = (0..20).map(|index| index * 3).collect();
        assert_eq!(
            created_auctions_line(&scattered),
            "created 20 auctions: ids from 0 to 57, not contiguous"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn auctions_are_created_before_bidding_and_a_rejection_stops_the_run() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970");
        let engine_now = Timestamp(now.as_micros() as u64);
        let target = Arc::new(target::fake::EngineTarget::new(engine_now, |_| {
            Duration::from_millis(1)
        }));
        let plan = BenchArgs {
            addr: vec![],
            local: true,
            local_postgres: None,
            metrics_addr: vec![],
            scenario: Scenario::Spread,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            concurrency: None,
            rate: None,
            bidders: Some(10),
            auctions: Some(70),
            seed: 1,
            out: None,
            request_timeout: Duration::from_secs(5),
            target: TargetKind::Grpc,
            gateway: None,
            watchers: 0,
            watcher_connect_rate: 1_000,
        }
        .plan()
        .expect("valid");
        let workload = Workload::new(plan.scenario, plan.auctions, plan.bidders, 5);
        create_auctions(&target, &workload, &plan)
            .await
            .expect("all created");
        // The same auctions again: the engine says they exist, and the run must stop.
        // (Fresh request ids, or the engine would replay the first outcomes.)
        let again = Workload::new(plan.scenario, plan.auctions, plan.bidders, 5);
        for _ in 0..plan.auctions {
            again.request_id();
        }
        let error = create_auctions(&target, &again, &plan)
            .await
            .expect_err("duplicates are rejected");
        assert!(error.to_string().contains("auction_exists"), "{error}");
    }
}
