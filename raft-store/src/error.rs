//! Storage errors. openraft's traits speak `std::io::Error`; this type carries the context
//! and converts into one at the trait boundary.

use std::io;

use crate::GroupId;
use crate::codec::CodecError;

/// A storage failure. Every variant is fatal for the group that hit it (openraft stops the
/// group on a storage error) except where a method documents otherwise.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("column family {0} is missing: the database was not opened by RaftStore::open")]
    MissingColumnFamily(&'static str),
    #[error("{group}: log entry stored under index {key_index} says index {entry_index}")]
    MisplacedEntry {
        group: GroupId,
        key_index: u64,
        entry_index: u64,
    },
    #[error("{group}: entry {index} applied at or below the last applied index {last_applied}")]
    AppliedOutOfOrder {
        group: GroupId,
        index: u64,
        last_applied: u64,
    },
    #[error("{group}: snapshot is missing chunk {chunk} of {chunk_count} (snapshot {snapshot_id})")]
    MissingSnapshotChunk {
        group: GroupId,
        snapshot_id: u64,
        chunk: u32,
        chunk_count: u32,
    },
    #[error("{group}: snapshot content does not match its metadata: {reason}")]
    SnapshotMismatch { group: GroupId, reason: String },
    #[error("{group}: engine state failed validation: {reason}")]
    InvalidState { group: GroupId, reason: String },
    #[error("a previous WAL sync failed ({0}); the store refuses further writes")]
    SyncPoisoned(String),
    #[error("the WAL syncer has stopped")]
    SyncerStopped,
    #[error("invalid store configuration: {0}")]
    Config(String),
    #[error("a lock was poisoned by a panic in another thread")]
    Poisoned,
}

impl From<StoreError> for io::Error {
    fn from(error: StoreError) -> io::Error {
        let kind = match &error {
            StoreError::Codec(_)
            | StoreError::MisplacedEntry { .. }
            | StoreError::SnapshotMismatch { .. }
            | StoreError::InvalidState { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}
