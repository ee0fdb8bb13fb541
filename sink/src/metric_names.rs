//! Every metric the sink records, in one place.

/// Gauge, per `group`: committed entries applied on this node that are not in Postgres yet.
pub const LAG_ENTRIES: &str = "martelo_sink_lag_entries";
/// Gauge, per `group`: age in seconds (wall clock minus cluster time) of the oldest event not
/// in Postgres yet; 0 when the sink has caught up.
pub const LAG_SECONDS: &str = "martelo_sink_lag_seconds";
/// Histogram: records (applied entries with events) per written batch.
pub const BATCH_RECORDS: &str = "martelo_sink_batch_records";
/// Histogram: events per written batch.
pub const BATCH_EVENTS: &str = "martelo_sink_batch_events";
/// Histogram: seconds to write one batch (plan, transaction, commit).
pub const BATCH_SECONDS: &str = "martelo_sink_batch_seconds";
/// Counter, per `kind` (see `SinkError::kind`): failed attempts.
pub const ERRORS: &str = "martelo_sink_errors_total";
/// Counter, per `group`: events written.
pub const EVENTS_WRITTEN: &str = "martelo_sink_events_written_total";

/// Registers descriptions with the installed recorder.
pub fn describe() {
    metrics::describe_gauge!(
        LAG_ENTRIES,
        "Applied entries not yet in Postgres, per group"
    );
    metrics::describe_gauge!(
        LAG_SECONDS,
        metrics::Unit::Seconds,
        "Age of the oldest event not yet in Postgres, per group"
    );
    metrics::describe_histogram!(BATCH_RECORDS, "Records per sink batch");
    metrics::describe_histogram!(BATCH_EVENTS, "Events per sink batch");
    metrics::describe_histogram!(
        BATCH_SECONDS,
        metrics::Unit::Seconds,
        "Time to write one sink batch"
    );
    metrics::describe_counter!(ERRORS, "Sink failures by kind");
    metrics::describe_counter!(EVENTS_WRITTEN, "Events written to Postgres, per group");
}
