//! The node's Postgres sink: for each group this node LEADS, one task copies the group's
//! committed events into Postgres through [`martelo_sink::write_batch`].
//!
//! ```text
//!   run (one per node): migrate (retrying) ──► every SCAN_EVERY: a task per live group
//!   group task: wait until this replica leads ──► lead:
//!       cursor = read_cursor(group)
//!       loop: applied = event log's watch; read_from(cursor + 1) ──► write_batch(cursor → covered)
//!             wait for more (applied watch) or for a leadership change
//!       ends: leadership lost (back to waiting), group gone or node stopping (task ends),
//!             events trimmed below the cursor or a fatal error (task ends, loudly)
//! ```
//!
//! Bidding never waits on Postgres: the sink only reads the event log (off the async
//! threads) and talks to Postgres from its own tasks. Postgres down or slow: the task backs
//! off ([`Backoff`], 100 ms doubling to 10 s) and retries, logging once per change of state.
//! Two sinks on one group (a deposed leader that does not know it yet, and the new one) are
//! kept apart by the cursor's compare-and-set; the loser's batch rolls back, and it stops if
//! it no longer leads (or resumes from the winner's cursor if it does).
//!
//! Test knob: with `--test-sink-every-replica` (`[test] sink_every_replica`, hidden, for the
//! sink tests only) every replica runs the sink of every group it holds, as if it led it.
//! Three writers then race on each group's cursor all the time, and the compare-and-set is
//! all that keeps them apart: the strongest form of "two sinks on one group at once".
//!
//! The event log's trim never passes the cursor, because nothing trims a live replica's
//! events: `EventLog::trim_below` has no caller, and the only other trim is a snapshot
//! install on a replica that lagged, which never had those events. If such a replica becomes
//! leader with the cursor below its first available event, the group's sink stops with
//! `martelo_sink_errors_total{kind="events_trimmed"}` and an error log: it never skips.

use openraft::async_runtime::WatchReceiver as _;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument as _;

use martelo_engine::{Event, GroupId};
use martelo_raft_store::{EventLogError, EventRecord};
use martelo_sink::metric_names as names;
use martelo_sink::policy::{BATCH_RECORDS_MAX, Backoff, covered_index};
use martelo_sink::{SinkError, SinkRecord};
use sqlx::PgPool;

use super::group::Group;
use super::registry::Registry;

/// How often the node looks for groups it holds without a sink task.
pub const SCAN_EVERY: Duration = Duration::from_secs(1);

/// Runs the sink of this node until it stops: migrations first (retrying while Postgres is
/// unreachable), then a task per live group.
pub async fn run(registry: Weak<Registry>, pool: PgPool) {
    names::describe();
    let mut backoff = Backoff::new();
    let mut failing = Failing::default();
    loop {
        if stopping(&registry) {
            return;
        }
        match martelo_sink::migrate(&pool).await {
            Ok(()) => break,
            Err(error) => {
                failing.failed(None, &error);
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
    failing.recovered(None);
    let every_replica = registry
        .upgrade()
        .is_some_and(|node| node.config().test.sink_every_replica);
    if every_replica {
        tracing::warn!(
            "sink: TEST KNOB sink_every_replica is on: every replica writes every group it \
             holds, not only the leader"
        );
    }
    tracing::info!("sink: schema up to date; copying committed events to Postgres");
    let mut tasks: BTreeMap<u64, (Weak<Group>, tokio::task::JoinHandle<()>)> = BTreeMap::new();
    let mut scan = tokio::time::interval(SCAN_EVERY);
    loop {
        scan.tick().await;
        let Some(node) = registry.upgrade() else {
            return;
        };
        if node.stopping() {
            return;
        }
        // A finished task stays listed while its replica lives: a group's sink that stopped
        // (events trimmed, a fatal error) stays stopped until the node restarts.
        tasks.retain(|_, (group, _)| group.strong_count() > 0);
        for group in node.groups() {
            if !group.is_live() {
                continue;
            }
            let known = tasks
                .get(&group.id.0)
                .is_some_and(|(held, _)| held.as_ptr() == Arc::as_ptr(&group));
            if known {
                continue;
            }
            let task = tokio::spawn(run_group(
                Arc::downgrade(&group),
                registry.clone(),
                pool.clone(),
                Writer {
                    node_id: node.node_id(),
                    every_replica,
                },
            ));
            tasks.insert(group.id.0, (Arc::downgrade(&group), task));
        }
    }
}

fn stopping(registry: &Weak<Registry>) -> bool {
    registry.upgrade().is_none_or(|node| node.stopping())
}

/// The replica, while it is live and the node runs.
fn live(group: &Weak<Group>, registry: &Weak<Registry>) -> Option<Arc<Group>> {
    if stopping(registry) {
        return None;
    }
    group.upgrade().filter(|group| group.is_live())
}

/// Who this node's sink is, and when it writes a group.
#[derive(Clone, Copy, Debug)]
struct Writer {
    node_id: u64,
    /// The test knob: write every group held, led or not.
    every_replica: bool,
}

impl Writer {
    /// Whether this node writes `group` now: when it leads it (or always, with the knob).
    fn writes(self, group: &Group) -> bool {
        self.every_replica
            || group.raft.metrics().borrow_watched().current_leader == Some(self.node_id)
    }
}

/// Why a leadership's sink loop ended.
enum Ended {
    /// Another node leads now (or leadership is unknown): wait to lead again.
    LostLeadership,
    /// The group is gone, the node stops, or the sink cannot go on for this group.
    Stop,
}

/// One group's sink on this node: waits to lead, copies while it leads, again.
async fn run_group(group: Weak<Group>, registry: Weak<Registry>, pool: PgPool, writer: Writer) {
    let Some(mut metrics) = group.upgrade().map(|group| group.raft.metrics()) else {
        return;
    };
    loop {
        let Some(replica) = live(&group, &registry) else {
            return;
        };
        if writer.writes(&replica) {
            let id = replica.id;
            drop(replica);
            tracing::info!(
                group = id.0,
                "sink: this node leads the group; copying its events"
            );
            match lead(&group, &registry, &pool, writer, id).await {
                Ended::LostLeadership => {
                    ::metrics::gauge!(names::LAG_ENTRIES, "group" => id.0.to_string()).set(0.0);
                    ::metrics::gauge!(names::LAG_SECONDS, "group" => id.0.to_string()).set(0.0);
                    tracing::info!(group = id.0, "sink: no longer the group's leader; paused");
                    continue;
                }
                Ended::Stop => return,
            }
        }
        drop(replica);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Logs a failing state once when it starts or changes kind, and once when it ends.
#[derive(Default)]
struct Failing {
    kind: Option<&'static str>,
}

impl Failing {
    fn failed(&mut self, group: Option<GroupId>, error: &SinkError) {
        let kind = error.kind();
        ::metrics::counter!(names::ERRORS, "kind" => kind).increment(1);
        if self.kind != Some(kind) {
            let group = group.map(|group| group.0);
            tracing::warn!(?group, kind, %error, "sink: Postgres unavailable; retrying with back-off");
            self.kind = Some(kind);
        }
    }

    fn recovered(&mut self, group: Option<GroupId>) {
        if self.kind.take().is_some() {
            tracing::info!(group = ?group.map(|group| group.0), "sink: Postgres reachable again");
        }
    }
}

/// Copies while this node leads `id`.
async fn lead(
    group: &Weak<Group>,
    registry: &Weak<Registry>,
    pool: &PgPool,
    writer: Writer,
    id: GroupId,
) -> Ended {
    let Some((events, mut metrics)) =
        live(group, registry).map(|replica| (replica.events.clone(), replica.raft.metrics()))
    else {
        return Ended::Stop;
    };
    let label = id.0.to_string();
    let mut backoff = Backoff::new();
    let mut failing = Failing::default();
    let mut applied_watch = events.subscribe();
    let mut cursor: Option<u64> = None;
    loop {
        let Some(replica) = live(group, registry) else {
            return Ended::Stop;
        };
        if !writer.writes(&replica) {
            return Ended::LostLeadership;
        }
        drop(replica);
        let position = match cursor {
            Some(position) => position,
            None => match martelo_sink::read_cursor(pool, id.0).await {
                Ok(position) => {
                    failing.recovered(Some(id));
                    backoff.reset();
                    cursor = Some(position);
                    position
                }
                Err(error) => {
                    failing.failed(Some(id), &error);
                    if !error.is_transient() {
                        return fatal(id, &error);
                    }
                    wait_or_leadership(&mut metrics, backoff.next_delay()).await;
                    continue;
                }
            },
        };
        let applied = *applied_watch.borrow_and_update();
        ::metrics::gauge!(names::LAG_ENTRIES, "group" => label.clone())
            .set(applied.saturating_sub(position) as f64);
        if applied <= position {
            ::metrics::gauge!(names::LAG_SECONDS, "group" => label.clone()).set(0.0);
            // Caught up (or this replica has not applied what an earlier leader wrote yet).
            tokio::select! {
                changed = applied_watch.changed() => if changed.is_err() { return Ended::Stop },
                changed = metrics.changed() => if changed.is_err() { return Ended::Stop },
            }
            continue;
        }
        let from = position + 1;
        let reader = events.clone();
        let read =
            tokio::task::spawn_blocking(move || reader.read_from(from, BATCH_RECORDS_MAX)).await;
        let records = match read {
            Ok(Ok(records)) => records,
            Ok(Err(EventLogError::Trimmed {
                first_available, ..
            })) => {
                ::metrics::counter!(names::ERRORS, "kind" => "events_trimmed").increment(1);
                tracing::error!(
                    group = id.0,
                    cursor = position,
                    first_available,
                    "sink: this replica no longer holds the events after the Postgres cursor \
                     (it installed a snapshot); the group's sink STOPS here rather than skip \
                     them. Move leadership to a replica that holds them, or rebuild the read \
                     model (docs/SINK.md)"
                );
                return Ended::Stop;
            }
            Ok(Err(error)) => {
                ::metrics::counter!(names::ERRORS, "kind" => "event_log").increment(1);
                tracing::error!(group = id.0, %error, "sink: cannot read the event log");
                wait_or_leadership(&mut metrics, backoff.next_delay()).await;
                continue;
            }
            Err(error) => {
                tracing::error!(group = id.0, %error, "sink: the event log read task failed");
                return Ended::Stop;
            }
        };
        let covered = covered_index(
            from,
            applied,
            records.len(),
            records.last().map(|record| record.log_index),
            BATCH_RECORDS_MAX,
        );
        if let Some(oldest) = records.first().and_then(|record| record.events.first()) {
            let age = unix_micros().saturating_sub(event_at(oldest)) as f64 / 1e6;
            ::metrics::gauge!(names::LAG_SECONDS, "group" => label.clone()).set(age);
        }
        let batch: Vec<SinkRecord> = records.into_iter().map(sink_record).collect();
        let started = Instant::now();
        // The write joins the trace of each traced entry in the batch (up to LINKS_MAX): one
        // span per entry, all open for the whole transaction; the first one is entered.
        let spans = if martelo_trace::exporting() {
            traced_write_spans(id, &batch, covered)
        } else {
            Vec::new()
        };
        let entered = spans.first().cloned().unwrap_or_else(tracing::Span::none);
        let written = martelo_sink::write_batch(pool, id.0, position, covered, &batch)
            .instrument(entered)
            .await;
        drop(spans);
        match written {
            Ok(written) => {
                failing.recovered(Some(id));
                backoff.reset();
                cursor = Some(written.cursor);
                ::metrics::histogram!(names::BATCH_SECONDS).record(started.elapsed().as_secs_f64());
                ::metrics::histogram!(names::BATCH_RECORDS).record(batch.len() as f64);
                ::metrics::histogram!(names::BATCH_EVENTS).record(written.events as f64);
                ::metrics::counter!(names::EVENTS_WRITTEN, "group" => label.clone())
                    .increment(written.events as u64);
                ::metrics::gauge!(names::LAG_ENTRIES, "group" => label.clone())
                    .set(applied.saturating_sub(written.cursor) as f64);
            }
            Err(SinkError::CursorMoved(moved)) => {
                ::metrics::counter!(names::ERRORS, "kind" => "cursor_moved").increment(1);
                tracing::warn!(
                    group = id.0,
                    expected = moved.expected,
                    found = ?moved.found,
                    "sink: another sink moved this group's cursor; this batch rolled back"
                );
                // Still the leader: the other writer was a deposed one; resume from its cursor.
                cursor = None;
            }
            Err(error) if error.is_transient() => {
                failing.failed(Some(id), &error);
                wait_or_leadership(&mut metrics, backoff.next_delay()).await;
            }
            Err(error) => return fatal(id, &error),
        }
    }
}

fn fatal(id: GroupId, error: &SinkError) -> Ended {
    ::metrics::counter!(names::ERRORS, "kind" => error.kind()).increment(1);
    tracing::error!(group = id.0, kind = error.kind(), %error, "sink: the group's sink stops");
    Ended::Stop
}

type MetricsWatch = openraft::type_config::alias::WatchReceiverOf<
    martelo_raft_store::TypeConfig,
    openraft::RaftMetrics<martelo_raft_store::TypeConfig>,
>;

/// Sleeps `delay`, or less if leadership changes meanwhile.
async fn wait_or_leadership(metrics: &mut MetricsWatch, delay: Duration) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        _ = metrics.changed() => {}
    }
}

/// One `sink.write` span per traced record of `batch` (at most `martelo_trace::LINKS_MAX`),
/// each the child of its record's `traceparent`: one bid is one trace, down to its row.
fn traced_write_spans(id: GroupId, batch: &[SinkRecord], covered: u64) -> Vec<tracing::Span> {
    batch
        .iter()
        .filter_map(|record| Some((record.log_index, record.traceparent.as_deref()?)))
        .take(martelo_trace::LINKS_MAX)
        .map(|(log_index, traceparent)| {
            let span = tracing::info_span!(
                "sink.write",
                group = id.0,
                log_index,
                records = batch.len(),
                covered,
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
            );
            martelo_trace::adopt(&span, Some(traceparent));
            span
        })
        .collect()
}

fn sink_record(record: EventRecord) -> SinkRecord {
    SinkRecord {
        log_index: record.log_index,
        events: record.events,
        rejections: record.rejections,
        traceparent: record.traceparent,
    }
}

fn event_at(event: &Event) -> u64 {
    match event {
        Event::Auction(event) => event.at.0,
        Event::BidderSuspended { at, .. } | Event::BidderReinstated { at, .. } => at.0,
        Event::Meta(event) => event.at.0,
    }
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}
