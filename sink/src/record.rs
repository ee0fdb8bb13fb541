//! What the sink consumes: the events of one applied Raft entry.

use martelo_engine::Event;
use martelo_engine::outcome::Rejection;

/// The events of the entry at `log_index` of one group, in the order the engine emitted them,
/// with the entry's rejection (a command that went through the log and was rejected: no
/// events then) and its stored W3C `traceparent`. Mirrors the event log's record without
/// depending on the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkRecord {
    pub log_index: u64,
    pub events: Vec<Event>,
    /// At most one today (a command has one outcome); empty for records stored before the
    /// event log recorded rejections (storage format 2).
    pub rejections: Vec<Rejection>,
    /// The proposer's `traceparent` as the entry stored it; `None` for untraced commands and
    /// records stored before storage format 3.
    pub traceparent: Option<String>,
}

impl SinkRecord {
    /// Whether the record has anything to write.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.rejections.is_empty()
    }
}

/// The trace id (32 lower-case hex digits) of a W3C `traceparent`
/// (`00-<trace id>-<parent id>-<flags>`), or `None` when there is none or it is malformed
/// or all zeros (invalid by the W3C rule). The node checks a traceparent before it stores
/// it; this check keeps a bad one out of the `trace_id` columns anyway.
pub fn trace_id(traceparent: Option<&str>) -> Option<String> {
    let mut parts = traceparent?.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    let valid = trace.len() == 32
        && trace
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && trace.bytes().any(|b| b != b'0');
    valid.then(|| trace.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_the_second_field_of_a_valid_traceparent() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id(Some(parent)).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "00",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736x-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(trace_id(None), None);
    }
}
