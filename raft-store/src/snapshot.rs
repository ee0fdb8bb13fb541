//! Snapshot storage: a snapshot is a codec stream cut into chunks in the `snapshot` column
//! family, plus a [`SnapshotRecord`] naming them.
//!
//! Chunks are written one at a time and read one at a time, so neither building, sending nor
//! installing holds more than one chunk of encoded bytes. A snapshot becomes a group's current
//! snapshot only when its record is written (one batch that also deletes the previous
//! snapshot's chunks), so a crash mid-build or mid-transfer leaves orphan chunks, which
//! [`crate::RaftStore::open`] removes, and never a half snapshot.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::GroupId;
use crate::error::StoreError;
use crate::keys::{self, CF_SNAPSHOT};
use crate::store::Shared;
use crate::types::SnapshotMeta;

/// The durable description of a group's current snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotRecord {
    pub(crate) meta: SnapshotMeta,
    pub(crate) snapshot_id: u64,
    pub(crate) chunk_count: u32,
    pub(crate) total_bytes: u64,
}

/// A handle to a stored snapshot's bytes: openraft's `SnapshotData` for martelo groups.
///
/// The cluster layer sends a snapshot by reading chunks `0..chunk_count()` with
/// [`SnapshotData::read_chunk`] and rebuilds it on the receiver with a [`SnapshotReceiver`].
/// If a newer snapshot replaces this one while it is being read, reads fail with
/// [`StoreError::MissingSnapshotChunk`]; the sender should restart with the current snapshot.
#[derive(Clone)]
pub struct SnapshotData {
    pub(crate) shared: Arc<Shared>,
    pub(crate) group: GroupId,
    pub(crate) snapshot_id: u64,
    pub(crate) chunk_count: u32,
    pub(crate) total_bytes: u64,
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotData")
            .field("group", &self.group)
            .field("snapshot_id", &self.snapshot_id)
            .field("chunk_count", &self.chunk_count)
            .field("total_bytes", &self.total_bytes)
            .finish()
    }
}

impl SnapshotData {
    pub(crate) fn from_record(shared: Arc<Shared>, group: GroupId, r: &SnapshotRecord) -> Self {
        SnapshotData {
            shared,
            group,
            snapshot_id: r.snapshot_id,
            chunk_count: r.chunk_count,
            total_bytes: r.total_bytes,
        }
    }

    pub fn chunk_count(&self) -> u32 {
        self.chunk_count
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The bytes of chunk `chunk` (`0..chunk_count()`).
    pub fn read_chunk(&self, chunk: u32) -> Result<Vec<u8>, StoreError> {
        let missing = || StoreError::MissingSnapshotChunk {
            group: self.group,
            snapshot_id: self.snapshot_id,
            chunk,
            chunk_count: self.chunk_count,
        };
        if chunk >= self.chunk_count {
            return Err(missing());
        }
        let cf = self.shared.cf(CF_SNAPSHOT)?;
        let key = keys::snapshot_chunk(self.snapshot_id, chunk);
        self.shared.db.get_cf(cf, key)?.ok_or_else(missing)
    }

    /// The whole stream, read chunk by chunk.
    pub(crate) fn reader(&self) -> ChunkReader<'_> {
        ChunkReader {
            data: self,
            next_chunk: 0,
            current: Vec::new(),
            position: 0,
        }
    }
}

pub(crate) struct ChunkReader<'a> {
    data: &'a SnapshotData,
    next_chunk: u32,
    current: Vec<u8>,
    position: usize,
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            if self.next_chunk == self.data.chunk_count {
                return Ok(0);
            }
            self.current = self.data.read_chunk(self.next_chunk)?;
            self.position = 0;
            self.next_chunk += 1;
        }
        let available = &self.current[self.position..];
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        self.position += count;
        Ok(count)
    }
}

/// Writes a snapshot stream into chunks under a fresh snapshot id.
///
/// Used both to build a snapshot locally and to receive one from the leader. Chunks are
/// written unsynced; whoever commits the record syncs them with it. Dropped before
/// [`SnapshotReceiver::finish`], it deletes what it wrote.
pub struct SnapshotReceiver {
    shared: Arc<Shared>,
    group: GroupId,
    snapshot_id: u64,
    chunk_count: u32,
    total_bytes: u64,
    buffer: Vec<u8>,
    chunk_bytes: usize,
    finished: bool,
}

impl std::fmt::Debug for SnapshotReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReceiver")
            .field("group", &self.group)
            .field("snapshot_id", &self.snapshot_id)
            .field("chunk_count", &self.chunk_count)
            .field("total_bytes", &self.total_bytes)
            .finish_non_exhaustive()
    }
}

impl SnapshotReceiver {
    pub(crate) fn new(shared: Arc<Shared>, group: GroupId) -> SnapshotReceiver {
        let snapshot_id = shared.allocate_snapshot_id();
        let chunk_bytes = shared.config.snapshot_chunk_bytes;
        SnapshotReceiver {
            shared,
            group,
            snapshot_id,
            chunk_count: 0,
            total_bytes: 0,
            buffer: Vec::new(),
            chunk_bytes,
            finished: false,
        }
    }

    /// Stores the next chunk as received (the sender decides the chunk size).
    pub fn push_chunk(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let cf = self.shared.cf(CF_SNAPSHOT)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf,
            keys::snapshot_chunk(self.snapshot_id, self.chunk_count),
            bytes,
        );
        self.shared.write(batch)?;
        self.chunk_count = self
            .chunk_count
            .checked_add(1)
            .ok_or_else(|| StoreError::Config("snapshot has more than u32::MAX chunks".into()))?;
        self.total_bytes += bytes.len() as u64;
        Ok(())
    }

    /// The stored snapshot. It is not any group's current snapshot until installed.
    pub fn finish(mut self) -> Result<SnapshotData, StoreError> {
        if !self.buffer.is_empty() {
            let buffer = std::mem::take(&mut self.buffer);
            self.push_chunk(&buffer)?;
        }
        self.finished = true;
        Ok(SnapshotData {
            shared: Arc::clone(&self.shared),
            group: self.group,
            snapshot_id: self.snapshot_id,
            chunk_count: self.chunk_count,
            total_bytes: self.total_bytes,
        })
    }
}

impl Write for SnapshotReceiver {
    /// Buffers up to one configured chunk, then stores it.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.chunk_bytes - self.buffer.len();
        let count = room.min(buf.len());
        self.buffer.extend_from_slice(&buf[..count]);
        if self.buffer.len() == self.chunk_bytes {
            let buffer = std::mem::take(&mut self.buffer);
            self.push_chunk(&buffer)?;
            self.buffer = buffer;
            self.buffer.clear();
        }
        Ok(count)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SnapshotReceiver {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Best effort: whatever is left is removed at the next open.
        if let Ok(cf) = self.shared.cf(CF_SNAPSHOT) {
            let (from, to) = keys::snapshot_range(self.snapshot_id);
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf, from.as_slice(), to.as_slice());
            let _ = self.shared.write(batch);
        }
    }
}
