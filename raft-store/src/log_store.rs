//! openraft's log store for one group: entries, vote, committed and purge point.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, entry::RaftEntry};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};

use crate::error::StoreError;
use crate::keys::{self, CF_LOG, CF_RAFT_META, MetaKind};
use crate::store::Shared;
use crate::syncer::SyncRequest;
use crate::types::{Entry, LogId, Vote};
use crate::{GroupId, TypeConfig, codec, metrics};

/// One group's Raft log and vote. Also its own log reader (clones share the database).
#[derive(Clone, Debug)]
pub struct LogStore {
    shared: Arc<Shared>,
    group: GroupId,
}

impl LogStore {
    pub(crate) fn new(shared: Arc<Shared>, group: GroupId) -> LogStore {
        LogStore { shared, group }
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Entries with index in `[start, end)`; `end = None` means to the end of the log.
    fn read_entries(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry>, StoreError> {
        let cf = self.shared.cf(CF_LOG)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(keys::indexed(self.group, start).to_vec());
        options.set_iterate_upper_bound(match end {
            Some(end) => keys::indexed(self.group, end).to_vec(),
            None => keys::indexed_end(self.group),
        });
        let mut entries = Vec::new();
        for item in self
            .shared
            .db
            .iterator_cf_opt(cf, options, IteratorMode::Start)
        {
            let (key, value) = item?;
            entries.push(self.decode_entry(&key, &value)?);
        }
        Ok(entries)
    }

    fn decode_entry(&self, key: &[u8], value: &[u8]) -> Result<Entry, StoreError> {
        let entry: Entry = codec::decode("log entry", value)?;
        let key_index = keys::index_of(key).unwrap_or(u64::MAX);
        if entry.index() != key_index {
            return Err(StoreError::MisplacedEntry {
                group: self.group,
                key_index,
                entry_index: entry.index(),
            });
        }
        Ok(entry)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StoreError> {
        let cf = self.shared.cf(CF_LOG)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(keys::indexed(self.group, 0).to_vec());
        options.set_iterate_upper_bound(keys::indexed_end(self.group));
        match self
            .shared
            .db
            .iterator_cf_opt(cf, options, IteratorMode::End)
            .next()
        {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item?;
                Ok(Some(self.decode_entry(&key, &value)?.log_id()))
            }
        }
    }

    fn meta<T: serde::de::DeserializeOwned>(
        &self,
        kind: MetaKind,
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        self.shared
            .get(CF_RAFT_META, what, &keys::meta(self.group, kind))
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        batch: &mut WriteBatch,
        kind: MetaKind,
        what: &'static str,
        value: &T,
    ) -> Result<(), StoreError> {
        let cf = self.shared.cf(CF_RAFT_META)?;
        batch.put_cf(
            cf,
            keys::meta(self.group, kind),
            codec::encode(what, value)?,
        );
        Ok(())
    }
}

/// Turns a range of indices into `[start, end)`, with `None` for "no upper end".
fn bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(start) => *start,
        Bound::Excluded(start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(end) => end.checked_add(1),
        Bound::Excluded(end) => Some(*end),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = bounds(&range);
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        Ok(self.read_entries(start, end)?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.meta(MetaKind::Vote, "vote")?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.meta(MetaKind::LastPurged, "last purged")?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        self.put_meta(&mut batch, MetaKind::Vote, "vote", vote)?;
        self.shared.write(batch)?;
        // The vote must be on disk before it is acted on; the barrier shares the fsync with
        // appends of every group instead of paying one of its own.
        self.shared.syncer.barrier().await?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Durable with the next sync. Losing it in a crash only means re-applying less at
        // start; openraft catches up once the leader's commit arrives.
        let mut batch = WriteBatch::default();
        self.put_meta(&mut batch, MetaKind::Committed, "committed", &committed)?;
        self.shared.write(batch)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let committed: Option<Option<LogId>> = self.meta(MetaKind::Committed, "committed")?;
        Ok(committed.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let started = Instant::now();
        let cf = self.shared.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        let mut count = 0u64;
        for entry in entries {
            let value = codec::encode("log entry", &entry)?;
            batch.put_cf(cf, keys::indexed(self.group, entry.index()), value);
            count += 1;
        }
        let bytes = batch.size_in_bytes() as u64;
        // Written now so the entries are readable when append returns (openraft's contract);
        // durable, and reported so, once the syncer's next fsync completes.
        self.shared.write(batch)?;
        ::metrics::counter!(metrics::LOG_BYTES_WRITTEN).increment(bytes);
        ::metrics::counter!(metrics::LOG_ENTRIES_WRITTEN).increment(count);
        self.shared
            .syncer
            .submit(SyncRequest::Append { callback, started });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index().saturating_add(1));
        let cf = self.shared.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        // One range delete in one batch: the tail goes at once, never leaving a hole.
        batch.delete_range_cf(
            cf,
            keys::indexed(self.group, first_removed).to_vec(),
            keys::indexed_end(self.group),
        );
        self.shared.write(batch)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let cf = self.shared.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        // The purge point and the deletion in one batch: a reader never sees entries missing
        // without the purge point that explains them.
        self.put_meta(&mut batch, MetaKind::LastPurged, "last purged", &log_id)?;
        let end = match log_id.index().checked_add(1) {
            Some(end) => keys::indexed(self.group, end).to_vec(),
            None => keys::indexed_end(self.group),
        };
        batch.delete_range_cf(cf, keys::indexed(self.group, 0).to_vec(), end);
        self.shared.write(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::bounds;

    #[test]
    fn bounds_cover_every_range_shape() {
        assert_eq!(bounds(&(3..7)), (3, Some(7)));
        assert_eq!(bounds(&(3..=7)), (3, Some(8)));
        assert_eq!(bounds(&(3..)), (3, None));
        assert_eq!(bounds(&(..=u64::MAX)), (0, None));
        assert_eq!(bounds(&(..)), (0, None));
    }
}
