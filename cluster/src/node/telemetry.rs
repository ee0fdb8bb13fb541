//! Logs and metrics of a node: structured logs through `tracing` (JSON by default), the
//! Prometheus `/metrics` endpoint, the node's own samples ([`sample_node`]), and the per-group
//! gauges sampled from openraft ([`GroupSampler`], which each group's task drives).
//!
//! Every series a node can export is registered when the node starts ([`register_node`]) or
//! when it opens a group ([`register_group`]), so a dashboard sees zeros on an idle node
//! rather than no series at all (a missing series reads as "no data", not "nothing
//! happened"). A new metric is named in `metric_names`, described in `describe` and
//! registered in one of those two.
//! Transport series labelled by rpc and result, and the store's (martelo-raft-store), appear
//! with the first Raft traffic, which starts within a heartbeat of the first election.

use openraft::async_runtime::WatchReceiver as _;
use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use openraft::ServerState;
use tracing_subscriber::EnvFilter;

use martelo_engine::GroupId;

use super::config::LogFormat;
use super::group::Group;
use super::metric_names::{
    ADMIN_API_REQUESTS_TOTAL, CLIENT_API_REQUESTS_TOTAL, CLOCK_OFFSET_SECONDS,
    CLOCK_REFUSING_TO_LEAD, CLOSE_PROPOSALS_TOTAL, GROUPS, LEADER_BALANCE_TRANSFERS_TOTAL,
    PROCESS_PREFIX, PROPOSE_BATCH_ENTRIES, PROPOSE_DECIDED_WITHOUT_LOG_TOTAL, PROPOSE_SECONDS,
    RAFT_APPLIED_ENTRIES_TOTAL, RAFT_APPLIED_INDEX, RAFT_COMMITTED_INDEX, RAFT_IS_LEADER,
    RAFT_LAST_LOG_INDEX, RAFT_LEADER_CHANGES_TOTAL, RAFT_SNAPSHOT_BYTES_RECEIVED_TOTAL,
    RAFT_SNAPSHOT_BYTES_SENT_TOTAL, RAFT_SNAPSHOT_INDEX, RAFT_SNAPSHOTS_TOTAL, RAFT_TERM,
    SUBSCRIPTIONS,
};
use super::registry::Registry;

/// How often group gauges and process metrics are refreshed.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Installs the global log subscriber: `RUST_LOG` filters (default `info`), output on stderr;
/// with `otlp`, spans are also exported over OTLP (`martelo_trace`). Call it inside the Tokio
/// runtime, and call [`martelo_trace::Exporter::shutdown`] on what it returns before exit.
pub fn init_logs(
    format: LogFormat,
    otlp: Option<&martelo_trace::OtlpConfig>,
) -> anyhow::Result<Option<martelo_trace::Exporter>> {
    match format {
        LogFormat::Json => install(json_logs(std::io::stderr), otlp),
        LogFormat::Text => install(
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr),
            otlp,
        ),
    }
}

/// [`init_logs`] with JSON lines written to `writer` (`martelo dev`'s gateway log file).
pub fn init_json_logs_to<W>(
    writer: W,
    otlp: Option<&martelo_trace::OtlpConfig>,
) -> anyhow::Result<Option<martelo_trace::Exporter>>
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    install(json_logs(writer), otlp)
}

type Filtered = tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>;

fn install<L>(
    logs: L,
    otlp: Option<&martelo_trace::OtlpConfig>,
) -> anyhow::Result<Option<martelo_trace::Exporter>>
where
    L: tracing_subscriber::Layer<Filtered> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let exporter = otlp
        .map(martelo_trace::Exporter::new)
        .transpose()
        .context("span export")?;
    let spans = exporter.as_ref().map(martelo_trace::Exporter::layer);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .try_init();
    if let Some(otlp) = otlp {
        tracing::info!(
            endpoint = %otlp.endpoint,
            service = %otlp.service_name,
            sample_ratio = otlp.sample_ratio,
            "exporting spans over OTLP"
        );
    }
    Ok(exporter)
}

/// JSON log lines, one per event, with the fields of the spans it happened in (so the
/// `trace_id` and `span_id` that `martelo_trace::adopt` records on a span reach every line
/// logged inside it).
fn json_logs<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(writer)
}

/// Serves Prometheus metrics over HTTP at `address` (any path, conventionally `/metrics`).
pub fn serve_metrics(address: &str) -> anyhow::Result<()> {
    let address: SocketAddr = address
        .parse()
        .with_context(|| format!("--metrics-listen {address:?} is not an ip:port"))?;
    let latency_buckets = [
        0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        2.5, 5.0, 10.0,
    ];
    let size_buckets = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ];
    PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency_buckets)
        .context("histogram buckets")?
        .set_buckets_for_metric(Matcher::Suffix("_entries".into()), &size_buckets)
        .context("histogram buckets")?
        .install()
        .with_context(|| format!("cannot serve metrics on {address}"))?;
    martelo_raft_store::describe_metrics();
    super::raft_transport::describe_metrics();
    describe();
    register_node();
    Ok(())
}

/// Registers the node's series that have no group label, at zero.
fn register_node() {
    metrics::gauge!(GROUPS).set(0.0);
    metrics::gauge!(SUBSCRIPTIONS).increment(0.0);
    metrics::gauge!(CLOCK_REFUSING_TO_LEAD).set(0.0);
    metrics::counter!(CLIENT_API_REQUESTS_TOTAL, "rpc" => "propose", "result" => "applied")
        .increment(0);
    for result in ["applied", "failed"] {
        metrics::counter!(CLOSE_PROPOSALS_TOTAL, "result" => result).increment(0);
    }
    for result in ["moved", "not_moved"] {
        metrics::counter!(LEADER_BALANCE_TRANSFERS_TOTAL, "result" => result).increment(0);
    }
    metrics::counter!(RAFT_SNAPSHOT_BYTES_SENT_TOTAL).increment(0);
    metrics::counter!(RAFT_SNAPSHOT_BYTES_RECEIVED_TOTAL).increment(0);
}

/// Registers every per-group series of `group`, at zero. Without a recorder (no
/// `--metrics-listen`) this does nothing.
pub fn register_group(group: GroupId) {
    let label = group.0.to_string();
    for gauge in [
        RAFT_TERM,
        RAFT_IS_LEADER,
        RAFT_LAST_LOG_INDEX,
        RAFT_COMMITTED_INDEX,
        RAFT_APPLIED_INDEX,
        RAFT_SNAPSHOT_INDEX,
    ] {
        metrics::gauge!(gauge, "group" => label.clone()).increment(0.0);
    }
    for counter in [
        RAFT_LEADER_CHANGES_TOTAL,
        RAFT_APPLIED_ENTRIES_TOTAL,
        RAFT_SNAPSHOTS_TOTAL,
        PROPOSE_DECIDED_WITHOUT_LOG_TOTAL,
    ] {
        metrics::counter!(counter, "group" => label.clone()).increment(0);
    }
    for histogram in [PROPOSE_SECONDS, PROPOSE_BATCH_ENTRIES] {
        // Registering the handle is enough: the exporter renders an empty histogram.
        let _ = metrics::histogram!(histogram, "group" => label.clone());
    }
}

/// Counts every leader this replica of `group` comes to know, until the group's Raft stops:
/// a new leader, or the same node elected again in a later term. The first leader after the
/// node starts counts too (the first election is an election). It watches openraft's server
/// metrics, which change only with the vote, role or membership (not with every entry), so
/// no change is missed between samples and a busy group costs nothing here.
pub async fn count_leader_changes(
    group: GroupId,
    mut metrics: openraft::type_config::alias::WatchReceiverOf<
        martelo_raft_store::TypeConfig,
        openraft::metrics::RaftServerMetrics<martelo_raft_store::TypeConfig>,
    >,
) {
    let changes = metrics::counter!(RAFT_LEADER_CHANGES_TOTAL, "group" => group.0.to_string());
    let mut counted = None;
    loop {
        // The leader with the vote that made it leader: the same node in a new term counts.
        let seen = {
            let seen = metrics.borrow_watched();
            seen.current_leader
                .map(|leader| (leader, *seen.vote.leader_id()))
        };
        if let Some(seen) = seen
            && counted.as_ref() != Some(&seen)
        {
            changes.increment(1);
            tracing::debug!(group = group.0, leader = seen.0, vote = %seen.1, "leader known");
            counted = Some(seen);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(RAFT_TERM, "Current Raft term, per group.");
    describe_gauge!(RAFT_IS_LEADER, "1 when this node leads the group.");
    describe_gauge!(RAFT_LAST_LOG_INDEX, "Last log index on this replica.");
    describe_gauge!(RAFT_COMMITTED_INDEX, "Committed log index known here.");
    describe_gauge!(RAFT_APPLIED_INDEX, "Last applied log index.");
    describe_gauge!(
        RAFT_SNAPSHOT_INDEX,
        "Last log index of the latest snapshot."
    );
    describe_counter!(
        RAFT_APPLIED_ENTRIES_TOTAL,
        "Entries applied, per group (rate = apply rate)."
    );
    describe_counter!(
        RAFT_SNAPSHOTS_TOTAL,
        "Snapshots built or installed, per group."
    );
    describe_counter!(
        PROPOSE_DECIDED_WITHOUT_LOG_TOTAL,
        "Bids rejected from a lease read without a log entry (too low to win), per group."
    );
    describe_counter!(
        RAFT_LEADER_CHANGES_TOTAL,
        "Leader changes seen, per group (the first leader after a start counts)."
    );
    describe_counter!(
        LEADER_BALANCE_TRANSFERS_TOTAL,
        "Leadership transfers made by the leader balancer, by result (moved, not_moved)."
    );
    describe_histogram!(
        PROPOSE_SECONDS,
        "Time from queueing a proposal to its apply, per group."
    );
    describe_histogram!(
        PROPOSE_BATCH_ENTRIES,
        "Commands per client_write_many batch, per group."
    );
    describe_counter!(
        CLIENT_API_REQUESTS_TOTAL,
        "Client API calls by rpc and result code."
    );
    describe_counter!(
        ADMIN_API_REQUESTS_TOTAL,
        "Admin API calls by rpc and result code."
    );
    describe_counter!(
        CLOSE_PROPOSALS_TOTAL,
        "Close commands proposed by leader timers."
    );
    describe_gauge!(
        CLOCK_OFFSET_SECONDS,
        "Measured clock offset of each peer relative to this node."
    );
    describe_gauge!(
        CLOCK_REFUSING_TO_LEAD,
        "1 while this node refuses to lead because of clock skew."
    );
    describe_gauge!(SUBSCRIPTIONS, "Open event subscriptions.");
    describe_gauge!(GROUPS, "Groups this node holds a replica of.");
}

/// Refreshes the process metrics and the count of groups until the node stops. Each group's
/// own gauges are its task's ([`GroupSampler`], in `group/tasks.rs`).
pub async fn sample_node(registry: Weak<Registry>) {
    let process = metrics_process::Collector::new(PROCESS_PREFIX);
    process.describe();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        process.collect();
        metrics::gauge!(GROUPS).set(registry.groups().len() as f64);
    }
}

/// Refreshes one group's gauges from openraft's metrics, and counts the entries it applied
/// and the snapshots it made since the last sample.
#[derive(Debug)]
pub struct GroupSampler {
    label: String,
    /// The applied index and snapshot index of the last sample.
    previous: Option<(u64, Option<u64>)>,
}

impl GroupSampler {
    pub fn new(group: GroupId) -> GroupSampler {
        GroupSampler {
            label: group.0.to_string(),
            previous: None,
        }
    }

    pub fn sample(&mut self, group: &Group) {
        let metrics = group.raft.metrics().borrow_watched().clone();
        let label = &self.label;
        let index = |id: Option<
            openraft::type_config::alias::LogIdOf<martelo_raft_store::TypeConfig>,
        >| { id.map_or(0.0, |id| id.index() as f64) };
        metrics::gauge!(RAFT_TERM, "group" => label.clone()).set(metrics.current_term as f64);
        metrics::gauge!(RAFT_IS_LEADER, "group" => label.clone()).set(
            if metrics.state == ServerState::Leader {
                1.0
            } else {
                0.0
            },
        );
        metrics::gauge!(RAFT_LAST_LOG_INDEX, "group" => label.clone())
            .set(metrics.last_log_index.unwrap_or(0) as f64);
        metrics::gauge!(RAFT_COMMITTED_INDEX, "group" => label.clone())
            .set(index(metrics.local_committed));
        metrics::gauge!(RAFT_APPLIED_INDEX, "group" => label.clone())
            .set(index(metrics.last_applied));
        metrics::gauge!(RAFT_SNAPSHOT_INDEX, "group" => label.clone()).set(index(metrics.snapshot));
        let applied = metrics.last_applied.map_or(0, |id| id.index());
        let snapshot = metrics.snapshot.map(|id| id.index());
        if let Some((applied_before, snapshot_before)) = self.previous {
            metrics::counter!(RAFT_APPLIED_ENTRIES_TOTAL, "group" => label.clone())
                .increment(applied.saturating_sub(applied_before));
            if snapshot != snapshot_before {
                metrics::counter!(RAFT_SNAPSHOTS_TOTAL, "group" => label.clone()).increment(1);
            }
        }
        self.previous = Some((applied, snapshot));
    }
}

/// A removed group no longer leads anything here: its leader gauge drops to zero (its other
/// series keep their last values, as a stopped group's would).
pub fn forget_group(group: GroupId) {
    metrics::gauge!(RAFT_IS_LEADER, "group" => group.0.to_string()).set(0.0);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_json_log_line_inside_a_traced_span_carries_its_trace_and_span_ids() {
        let exporter = martelo_trace::Exporter::new(&martelo_trace::OtlpConfig {
            // Nothing listens there: the spans are dropped, the ids are what matters.
            endpoint: "http://127.0.0.1:9".into(),
            service_name: "test".into(),
            sample_ratio: 1.0,
            attributes: Vec::new(),
        })
        .expect("exporter");
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry()
            .with(json_logs(move || writer.clone()))
            .with(exporter.layer());
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span_id = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "node.propose",
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
            );
            martelo_trace::adopt(&span, Some(parent));
            let _entered = span.enter();
            let inner = tracing::info_span!("inner");
            let _inner = inner.enter();
            tracing::info!("inside");
            martelo_trace::outgoing(&span, None).expect("exported")[36..52].to_owned()
        });
        let text =
            String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("UTF-8");
        let line = text
            .lines()
            .find(|line| line.contains("inside"))
            .expect("the line");
        assert!(
            line.contains("\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""),
            "{line}"
        );
        assert!(
            line.contains(&format!("\"span_id\":\"{span_id}\"")),
            "{line}"
        );
        assert!(
            !line.contains("00f067aa0ba902b7"),
            "the span's own id, not the parent's: {line}"
        );
    }
}
