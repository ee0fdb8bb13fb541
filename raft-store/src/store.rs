//! The node's one RocksDB instance and what every group shares: the WAL syncer, the
//! configuration and the snapshot id counter; and the two operations on a whole group's
//! records, [`RaftStore::destroy_group`] (a replica removed from its group) and
//! [`RaftStore::holds_group`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch};
use serde::de::DeserializeOwned;

use crate::error::StoreError;
use crate::keys::{
    self, ALL_COLUMN_FAMILIES, CF_EVENTS, CF_LOG, CF_RAFT_META, CF_SNAPSHOT, CF_STATE_MACHINE,
    StateKind,
};
use crate::snapshot::SnapshotRecord;
use crate::syncer::WalSyncer;
use crate::{GroupId, LogStore, StateMachine, codec};

/// Tuning of a [`RaftStore`]. Defaults suit production; tests shrink them.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Entries applied between two durable checkpoints of a group's engine state. Writing the
    /// whole state costs time linear in its size, so doing it for every apply batch would make
    /// throughput fall as the state grows; between checkpoints the log (committed, synced)
    /// is the durable copy and is re-applied at start. 1 writes a checkpoint with every batch.
    /// The default, 16384, keeps the re-apply at start well under a second (the engine alone
    /// applies ~240k entries/s here) while cutting checkpoint cost 16x against 1024; see
    /// docs/PERFORMANCE.md.
    pub checkpoint_interval_entries: u64,
    /// Size of one snapshot chunk: the unit stored, sent over the network and installed.
    pub snapshot_chunk_bytes: usize,
    /// Most entries applied under one lock and written in one WriteBatch.
    pub apply_batch_entries_max: usize,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            checkpoint_interval_entries: 16 * 1024,
            snapshot_chunk_bytes: 1 << 20,
            apply_batch_entries_max: 1024,
        }
    }
}

impl StoreConfig {
    /// Rejects values that cannot work, naming them.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.checkpoint_interval_entries == 0 {
            return Err(StoreError::Config(
                "checkpoint_interval_entries must be >= 1".into(),
            ));
        }
        if !(4096..=(64 << 20)).contains(&self.snapshot_chunk_bytes) {
            return Err(StoreError::Config(format!(
                "snapshot_chunk_bytes {} is outside 4 KiB..=64 MiB",
                self.snapshot_chunk_bytes
            )));
        }
        if !(1..=65536).contains(&self.apply_batch_entries_max) {
            return Err(StoreError::Config(format!(
                "apply_batch_entries_max {} is outside 1..=65536",
                self.apply_batch_entries_max
            )));
        }
        Ok(())
    }
}

/// One node's storage: a RocksDB instance shared by all of its Raft groups.
///
/// Cheap to clone. The database closes when the last clone and the last [`LogStore`],
/// [`StateMachine`] and snapshot handle are dropped.
#[derive(Clone, Debug)]
pub struct RaftStore {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    // Field order matters: the syncer thread holds the database, so it stops first.
    pub(crate) syncer: WalSyncer,
    pub(crate) db: Arc<rocksdb::DB>,
    pub(crate) config: StoreConfig,
    next_snapshot_id: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("path", &self.db.path())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RaftStore {
    /// Opens (or creates) the node's database at `path`.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<RaftStore, StoreError> {
        config.validate()?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // The default WAL recovery mode (point in time) replays the WAL up to the first torn
        // record. Every store write goes through the one WAL in order, so after a crash the
        // database holds a prefix of the writes: an unsynced state-machine batch is never
        // visible without the writes before it.
        let descriptors = ALL_COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = Arc::new(rocksdb::DB::open_cf_descriptors(
            &options,
            path,
            descriptors,
        )?);
        let next_snapshot_id = remove_orphan_snapshots(&db)?;
        let syncer = WalSyncer::start(Arc::clone(&db)).map_err(|error| {
            StoreError::Config(format!("cannot start the WAL sync thread: {error}"))
        })?;
        Ok(RaftStore {
            shared: Arc::new(Shared {
                syncer,
                db,
                config,
                next_snapshot_id: AtomicU64::new(next_snapshot_id),
            }),
        })
    }

    /// The log store and state machine of `group`, loading the state machine's durable state.
    ///
    /// Open each group once per node: two handles on one group would interleave writes.
    pub async fn group(&self, group: GroupId) -> Result<(LogStore, StateMachine), StoreError> {
        let log = LogStore::new(Arc::clone(&self.shared), group);
        let state_machine = StateMachine::open(Arc::clone(&self.shared), group).await?;
        Ok((log, state_machine))
    }

    /// Somewhere to write a snapshot of `group` arriving from its leader, chunk by chunk (the
    /// network layer uses it once the group's [`StateMachine`] belongs to openraft).
    pub fn snapshot_receiver(&self, group: GroupId) -> crate::SnapshotReceiver {
        crate::SnapshotReceiver::new(Arc::clone(&self.shared), group)
    }

    /// Makes every write so far durable. Tests and benchmarks use it; openraft does not need it.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.shared.syncer.barrier().await
    }

    /// Deletes every record of `group` on this node: its log, vote and commit markers, its
    /// state machine checkpoint and event log (with the trim marker), and its snapshot
    /// (record and chunks), in one atomic, synced write; then compacts those key ranges so
    /// the space is given back. Opening the group afterwards starts it empty, as on a node
    /// that never held it.
    ///
    /// The group's Raft must have stopped: a [`LogStore`] or [`StateMachine`] of the group
    /// that still writes would bring records back. Chunks of a snapshot still being received
    /// belong to no record yet; [`RaftStore::open`] removes them as orphans. Blocking (a
    /// RocksDB write, an fsync and a compaction): call it off the async runtime.
    pub fn destroy_group(&self, group: GroupId) -> Result<(), StoreError> {
        let shared = &self.shared;
        let (start, end) = group_range(group);
        let mut batch = WriteBatch::default();
        let snapshot: Option<SnapshotRecord> = shared.get(
            CF_STATE_MACHINE,
            "snapshot record",
            &keys::state(group, StateKind::Snapshot),
        )?;
        if let Some(record) = snapshot {
            let (from, to) = keys::snapshot_range(record.snapshot_id);
            batch.delete_range_cf(shared.cf(CF_SNAPSHOT)?, from.as_slice(), to.as_slice());
        }
        for name in GROUP_COLUMN_FAMILIES {
            batch.delete_range_cf(shared.cf(name)?, start.as_slice(), end.as_slice());
        }
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        shared.db.write_opt(batch, &options)?;
        for name in GROUP_COLUMN_FAMILIES {
            shared.db.compact_range_cf(
                shared.cf(name)?,
                Some(start.as_slice()),
                Some(end.as_slice()),
            );
        }
        Ok(())
    }

    /// Whether this node's database holds any record of `group` (log, vote, state, events).
    pub fn holds_group(&self, group: GroupId) -> Result<bool, StoreError> {
        let (start, end) = group_range(group);
        for name in GROUP_COLUMN_FAMILIES {
            let mut options = rocksdb::ReadOptions::default();
            options.set_iterate_lower_bound(start.clone());
            options.set_iterate_upper_bound(end.clone());
            let mut records =
                self.shared
                    .db
                    .iterator_cf_opt(self.shared.cf(name)?, options, IteratorMode::Start);
            if records.next().transpose()?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The column families whose keys start with the group id (see [`keys`]).
const GROUP_COLUMN_FAMILIES: [&str; 4] = [CF_LOG, CF_RAFT_META, CF_STATE_MACHINE, CF_EVENTS];

/// `[start, end)` around every key of `group` in [`GROUP_COLUMN_FAMILIES`]: from the bare
/// 8-byte group id, which sorts before all of them, to [`keys::indexed_end`], which sorts
/// after the longest (16 bytes, index `u64::MAX`) and so after the 9-byte metadata keys too.
fn group_range(group: GroupId) -> (Vec<u8>, Vec<u8>) {
    (group.0.to_be_bytes().to_vec(), keys::indexed_end(group))
}

impl Shared {
    pub(crate) fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or(StoreError::MissingColumnFamily(name))
    }

    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        cf: &'static str,
        what: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.db.get_pinned_cf(self.cf(cf)?, key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode(what, &bytes)?)),
        }
    }

    /// Writes without waiting for the disk: the write is readable at once and becomes durable
    /// with the next WAL sync (which covers every earlier write).
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(false);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    pub(crate) fn allocate_snapshot_id(&self) -> u64 {
        self.next_snapshot_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Deletes chunks of snapshots that no group references (left by a crash during a build or a
/// transfer) and returns the next free snapshot id.
fn remove_orphan_snapshots(db: &rocksdb::DB) -> Result<u64, StoreError> {
    let state_cf = db
        .cf_handle(CF_STATE_MACHINE)
        .ok_or(StoreError::MissingColumnFamily(CF_STATE_MACHINE))?;
    let snapshot_cf = db
        .cf_handle(CF_SNAPSHOT)
        .ok_or(StoreError::MissingColumnFamily(CF_SNAPSHOT))?;
    let mut referenced = std::collections::BTreeSet::new();
    for item in db.iterator_cf(state_cf, IteratorMode::Start) {
        let (key, value) = item?;
        if key.len() == 9 && key[8] == keys::StateKind::Snapshot as u8 {
            let record: SnapshotRecord = codec::decode("snapshot record", &value)?;
            referenced.insert(record.snapshot_id);
        }
    }
    let mut next_id = referenced.last().map_or(1, |id| id + 1);
    let mut seek_from = 0u64;
    let mut orphans = WriteBatch::default();
    loop {
        let start = keys::snapshot_chunk(seek_from, 0);
        let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
        let Some(item) = db.iterator_cf(snapshot_cf, mode).next() else {
            break;
        };
        let (key, _) = item?;
        let Some(id) = keys::snapshot_id_of(&key) else {
            break;
        };
        if !referenced.contains(&id) {
            let (from, to) = keys::snapshot_range(id);
            orphans.delete_range_cf(snapshot_cf, from.as_slice(), to.as_slice());
        }
        next_id = next_id.max(id.saturating_add(1));
        match id.checked_add(1) {
            Some(next) => seek_from = next,
            None => break,
        }
    }
    if !orphans.is_empty() {
        db.write(orphans)?;
    }
    Ok(next_id)
}
