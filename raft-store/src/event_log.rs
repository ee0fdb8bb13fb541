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
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};

use crate::error::StoreError;
use crate::keys::{self, CF_EVENTS, CF_STATE_MACHINE, StateKind};
use crate::store::Shared;
use crate::{GroupId, codec};

/// Most records one read returns; bounds the memory a reader can ask for.
pub const EVENT_READ_RECORDS_MAX: usize = 4096;

/// The events of one applied entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub log_index: u64,
    pub events: Vec<Event>,
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
    /// (capped at [`EVENT_READ_RECORDS_MAX`]). Entries that emitted no event have no record.
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
            let events = codec::decode("event record", &value).map_err(StoreError::from)?;
            let log_index = keys::index_of(&key).unwrap_or(u64::MAX);
            records.push(EventRecord { log_index, events });
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
