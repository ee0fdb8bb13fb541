//! What the sink consumes: the events of one applied Raft entry.

use martelo_engine::Event;

/// The events of the entry at `log_index` of one group, in the order the engine emitted them.
/// Mirrors the event log's record without depending on the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkRecord {
    pub log_index: u64,
    pub events: Vec<Event>,
}
