//! Metric names. Every process serves them at `/metrics` through the cluster's exporter; this
//! crate only records them through the `metrics` facade (a no-op until a recorder is set).

/// Seconds one WAL sync (`FlushWAL(sync = true)`, an fdatasync) took.
pub(crate) const WAL_SYNC_SECONDS: &str = "martelo_raft_store_wal_sync_seconds";
/// Sync requests (appends and vote saves, any group) covered by one WAL sync.
pub(crate) const WAL_SYNC_BATCH_REQUESTS: &str = "martelo_raft_store_wal_sync_batch_requests";
/// Seconds from `append` being called to openraft being told the entries are durable.
pub(crate) const APPEND_SECONDS: &str = "martelo_raft_store_append_seconds";
/// Encoded bytes of log entries written.
pub(crate) const LOG_BYTES_WRITTEN: &str = "martelo_raft_store_log_bytes_written_total";
/// Log entries written.
pub(crate) const LOG_ENTRIES_WRITTEN: &str = "martelo_raft_store_log_entries_written_total";
/// Seconds to apply one batch of entries and write its WriteBatch.
pub(crate) const APPLY_SECONDS: &str = "martelo_raft_store_apply_seconds";
/// Entries applied.
pub(crate) const APPLIED_ENTRIES: &str = "martelo_raft_store_applied_entries_total";
/// Bytes of state-machine WriteBatches (events and checkpoints).
pub(crate) const STATE_BYTES_WRITTEN: &str = "martelo_raft_store_state_bytes_written_total";
pub(crate) const SNAPSHOT_BUILD_SECONDS: &str = "martelo_raft_store_snapshot_build_seconds";
pub(crate) const SNAPSHOT_INSTALL_SECONDS: &str = "martelo_raft_store_snapshot_install_seconds";
pub(crate) const SNAPSHOT_BYTES: &str = "martelo_raft_store_snapshot_bytes";

/// Registers descriptions with the installed recorder; call once after installing it.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_histogram!(
        WAL_SYNC_SECONDS,
        Unit::Seconds,
        "Duration of one WAL fdatasync."
    );
    describe_histogram!(
        WAL_SYNC_BATCH_REQUESTS,
        Unit::Count,
        "Append and vote requests, across groups, made durable by one WAL sync."
    );
    describe_histogram!(
        APPEND_SECONDS,
        Unit::Seconds,
        "From append to durable: write, queueing and WAL sync."
    );
    describe_counter!(
        LOG_BYTES_WRITTEN,
        Unit::Bytes,
        "Encoded log entry bytes written."
    );
    describe_counter!(LOG_ENTRIES_WRITTEN, Unit::Count, "Log entries written.");
    describe_histogram!(
        APPLY_SECONDS,
        Unit::Seconds,
        "Apply of one batch of entries."
    );
    describe_counter!(APPLIED_ENTRIES, Unit::Count, "Entries applied.");
    describe_counter!(
        STATE_BYTES_WRITTEN,
        Unit::Bytes,
        "State machine bytes written."
    );
    describe_histogram!(
        SNAPSHOT_BUILD_SECONDS,
        Unit::Seconds,
        "Snapshot build duration."
    );
    describe_histogram!(
        SNAPSHOT_INSTALL_SECONDS,
        Unit::Seconds,
        "Snapshot install duration."
    );
    describe_histogram!(
        SNAPSHOT_BYTES,
        Unit::Bytes,
        "Size of built or installed snapshots."
    );
}
