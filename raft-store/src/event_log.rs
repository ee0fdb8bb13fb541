//! A group's committed events, readable from any log index onward.
//!
//! The state machine writes the events of each applied entry under that entry's log index,
//! in the same WriteBatch as the apply. Live subscribers and the Postgres sink read them with
//! [`EventLog::read_from`] and wait for more with [`EventLog::subscribe`]. Events are removed
//! only by [`EventLog::trim_below`] with a watermark the node chooses, or when a snapshot is
//! installed (the replica then never saw the events it skipped). Either way a read below the
//! first available index fails with [`EventLogError::Trimmed`]: the reader must resync from
//! state; it never silently gets a gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use martelo_engine::Event;
use martelo_engine::outcome::Rejection;
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::keys::{self, CF_EVENTS, CF_STATE_MACHINE, StateKind};
use crate::store::Shared;
use crate::{GroupId, codec};

/// Most records one read returns; bounds the memory a reader can ask for.
pub const EVENT_READ_RECORDS_MAX: usize = 4096;

/// What one applied entry left for readers of the event log: its events, its rejection
/// (a command that went through the log and was rejected emits no event) and its stored
/// W3C `traceparent`. Only the state machine writes records, from the entry and the engine's
/// outcome, so they are as deterministic as the apply: every replica stores the same bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventRecord {
    pub log_index: u64,
    pub events: Vec<Event>,
    /// Empty for records written in storage format 1-2 (they had no rejections).
    pub rejections: Vec<Rejection>,
    /// `None` for untraced commands and records written in storage format 1-2.
    pub traceparent: Option<String>,
}

/// A record's stored value (its key holds the log index), as written since storage format
/// 3. Format 1-2 values were the bare list of events, which is this struct's first field in
/// bincode (a struct is its fields in order), so they decode with the appended fields empty
/// (`martelo_engine::codec::compat`).
#[derive(Debug, Deserialize)]
struct StoredRecord {
    events: Vec<Event>,
    #[serde(
        default,
        deserialize_with = "martelo_engine::codec::compat::appended_in_format_3"
    )]
    rejections: Vec<Rejection>,
    #[serde(
        default,
        deserialize_with = "martelo_engine::codec::compat::appended_in_format_3"
    )]
    traceparent: Option<String>,
}

/// [`StoredRecord`] for writing, borrowing the apply's outcome (same fields, same order).
#[derive(Debug, Serialize)]
pub(crate) struct StoredRecordRef<'a> {
    pub(crate) events: &'a [Event],
    pub(crate) rejections: &'a [Rejection],
    pub(crate) traceparent: Option<&'a str>,
}

impl StoredRecordRef<'_> {
    /// Whether the entry left anything to record (entries without events or a rejection
    /// have no record).
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.rejections.is_empty()
    }
}

/// Decodes a stored record value of any storage format this build reads.
pub(crate) fn decode_record(log_index: u64, value: &[u8]) -> Result<EventRecord, StoreError> {
    let stored: StoredRecord = codec::decode("event record", value)?;
    Ok(EventRecord {
        log_index,
        events: stored.events,
        rejections: stored.rejections,
        traceparent: stored.traceparent,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error(
        "{group}: events below index {first_available} are trimmed (asked from {requested}); \
         resync from state"
    )]
    Trimmed {
        group: GroupId,
        requested: u64,
        first_available: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the state machine and the event log handles of one group share.
#[derive(Debug)]
pub(crate) struct GroupShared {
    pub(crate) first_available: AtomicU64,
    /// The last applied log index, for subscribers to wait on.
    pub(crate) applied: tokio::sync::watch::Sender<u64>,
}

/// Read and trim handle on one group's event log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventLog {
    pub(crate) shared: Arc<Shared>,
    pub(crate) group: GroupId,
    pub(crate) group_shared: Arc<GroupShared>,
}

impl EventLog {
    /// The lowest log index whose events can still be read.
    pub fn first_available(&self) -> u64 {
        self.group_shared.first_available.load(Ordering::Acquire)
    }

    /// A receiver of the last applied log index; it changes after each apply batch is written.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.group_shared.applied.subscribe()
    }

    /// Records of entries with index `>= from`, in log order, at most `max_records`
    /// (capped at [`EVENT_READ_RECORDS_MAX`]). Entries that emitted no event and were not
    /// rejected have no record.
    pub fn read_from(
        &self,
        from: u64,
        max_records: usize,
    ) -> Result<Vec<EventRecord>, EventLogError> {
        self.check_available(from)?;
        let cf = self.shared.cf(CF_EVENTS)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(keys::indexed(self.group, from).to_vec());
        options.set_iterate_upper_bound(keys::indexed_end(self.group));
        let mut records = Vec::new();
        let iterator = self
            .shared
            .db
            .iterator_cf_opt(cf, options, IteratorMode::Start);
        for item in iterator.take(max_records.min(EVENT_READ_RECORDS_MAX)) {
            let (key, value) = item.map_err(StoreError::from)?;
            let log_index = keys::index_of(&key).unwrap_or(u64::MAX);
            records.push(decode_record(log_index, &value)?);
        }
        // A trim that ran during the scan may have removed records we would have returned;
        // it raises the marker before deleting, so checking again catches it.
        self.check_available(from)?;
        Ok(records)
    }

    fn check_available(&self, from: u64) -> Result<(), EventLogError> {
        let first_available = self.first_available();
        if from < first_available {
            return Err(EventLogError::Trimmed {
                group: self.group,
                requested: from,
                first_available,
            });
        }
        Ok(())
    }

    /// Deletes the events of entries below `watermark`, which the node picks (slowest
    /// consumer, snapshot). The watermark is capped at the last applied index + 1, so events
    /// not yet written can never be declared trimmed. Returns the new first available index.
    pub fn trim_below(&self, watermark: u64) -> Result<u64, StoreError> {
        let applied_next = self.group_shared.applied.borrow().saturating_add(1);
        let target = watermark.min(applied_next);
        let previous = self
            .group_shared
            .first_available
            .fetch_max(target, Ordering::AcqRel);
        if target <= previous {
            return Ok(previous);
        }
        let mut batch = WriteBatch::default();
        trim_into(&self.shared, self.group, target, &mut batch)?;
        self.shared.write(batch)?;
        Ok(target)
    }
}

/// Adds to `batch` the deletion of events below `first_available` and the new marker.
pub(crate) fn trim_into(
    shared: &Shared,
    group: GroupId,
    first_available: u64,
    batch: &mut WriteBatch,
) -> Result<(), StoreError> {
    let events = shared.cf(CF_EVENTS)?;
    batch.delete_range_cf(
        events,
        keys::indexed(group, 0).to_vec(),
        keys::indexed(group, first_available).to_vec(),
    );
    batch.put_cf(
        shared.cf(CF_STATE_MACHINE)?,
        keys::state(group, StateKind::EventsFirstAvailable),
        codec::encode("event trim marker", &first_available)?,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use martelo_engine::codec;
    use martelo_engine::outcome::Rejection;
    use martelo_engine::{
        Amount, AuctionEvent, AuctionEventKind, AuctionId, BidId, Event, RejectCode, Timestamp,
        UserId,
    };

    use super::{StoredRecordRef, decode_record};

    fn bid(proxy: bool, raise: bool) -> Event {
        Event::Auction(AuctionEvent {
            auction_id: AuctionId(3),
            seq: 2,
            at: Timestamp(1_800_000_000_000_000),
            kind: AuctionEventKind::BidAccepted {
                bid_id: BidId(0),
                bidder: UserId(7),
                amount: Amount(1_500),
                proxy,
                raise,
            },
        })
    }

    #[test]
    fn a_format_2_record_decodes_with_no_rejections_no_traceparent_and_no_flags() {
        // What a format-2 build stored: the bare list of events, without the bid flags.
        let stored = codec::encode_in_format(2, "event record", &vec![bid(true, true)]).unwrap();
        assert_eq!(stored[0], 2);
        let record = decode_record(12, &stored).unwrap();
        assert_eq!(record.log_index, 12);
        assert_eq!(record.events, vec![bid(false, false)]);
        assert!(record.rejections.is_empty());
        assert_eq!(record.traceparent, None);
    }

    #[test]
    fn a_format_3_record_round_trips_its_rejections_and_traceparent() {
        let rejection = Rejection {
            auction_id: Some(AuctionId(3)),
            actor: Some(UserId(8)),
            code: RejectCode::BidTooLow,
            at: Timestamp(1_800_000_000_000_001),
        };
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let events = [bid(true, false)];
        let stored = codec::encode(
            "event record",
            &StoredRecordRef {
                events: &events,
                rejections: std::slice::from_ref(&rejection),
                traceparent: Some(parent),
            },
        )
        .unwrap();
        assert_eq!(stored[0], codec::STORAGE_FORMAT_VERSION);
        let record = decode_record(13, &stored).unwrap();
        assert_eq!(record.events, events);
        assert_eq!(record.rejections, vec![rejection]);
        assert_eq!(record.traceparent.as_deref(), Some(parent));
    }
}
