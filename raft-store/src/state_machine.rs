//! openraft's state machine for one group: the engine state, hot in memory, with its
//! checkpoints, events and snapshots in RocksDB.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures::{Stream, StreamExt};
use martelo_engine::outcome::Rejection;
use martelo_engine::{ApplyCtx, State};
use openraft::entry::RaftEntry;
use openraft::storage::{ApplyResponder, EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StoredMembership};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::event_log::{self, EventLog, GroupShared, StoredRecordRef};
use crate::keys::{self, CF_EVENTS, CF_SNAPSHOT, CF_STATE_MACHINE, StateKind};
use crate::snapshot::{SnapshotData, SnapshotReceiver, SnapshotRecord};
use crate::store::Shared;
use crate::types::{Entry, LogId, Snapshot, SnapshotMeta};
use crate::{GroupId, Response, TypeConfig, codec, metrics};

/// Everything a checkpoint and a snapshot hold: the engine state and where it stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AppliedState {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: crate::types::StoredMembership,
    pub(crate) engine: State,
}

/// One group's state machine. Open it with [`crate::RaftStore::group`].
pub struct StateMachine {
    shared: Arc<Shared>,
    group: GroupId,
    applied: Arc<RwLock<AppliedState>>,
    group_shared: Arc<GroupShared>,
    /// Entries applied since the last checkpoint was written.
    since_checkpoint: u64,
    /// Serialises snapshot builds and installs of this group, which both replace the record.
    snapshot_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("group", &self.group)
            .field("since_checkpoint", &self.since_checkpoint)
            .finish_non_exhaustive()
    }
}

/// Shared read access to a group's applied engine state, for queries and the close timer.
#[derive(Clone, Debug)]
pub struct StateReader {
    applied: Arc<RwLock<AppliedState>>,
}

impl StateReader {
    /// Runs `read` on the state as of the last applied entry (and that entry's log id).
    /// Keep `read` short: apply waits for it.
    pub fn read<R>(&self, read: impl FnOnce(&State, Option<&LogId>) -> R) -> Result<R, StoreError> {
        let applied = self.applied.read().map_err(|_| StoreError::Poisoned)?;
        Ok(read(&applied.engine, applied.last_applied.as_ref()))
    }
}

impl StateMachine {
    pub(crate) async fn open(shared: Arc<Shared>, group: GroupId) -> Result<Self, StoreError> {
        let checkpoint: Option<AppliedState> = shared.get(
            CF_STATE_MACHINE,
            "checkpoint",
            &keys::state(group, StateKind::Checkpoint),
        )?;
        let snapshot: Option<SnapshotRecord> = shared.get(
            CF_STATE_MACHINE,
            "snapshot record",
            &keys::state(group, StateKind::Snapshot),
        )?;
        let mut applied = checkpoint.unwrap_or_default();
        // A snapshot newer than the checkpoint (built or installed after it) is the newer
        // durable state; the log below it may already be purged.
        if let Some(record) = snapshot
            && record.meta.last_log_id > applied.last_applied
        {
            let data = SnapshotData::from_record(Arc::clone(&shared), group, &record);
            applied = decode_snapshot(group, &record.meta, &data)?;
        }
        applied
            .engine
            .validate()
            .map_err(|violation| StoreError::InvalidState {
                group,
                reason: violation.0,
            })?;
        let first_available: u64 = shared
            .get(
                CF_STATE_MACHINE,
                "event trim marker",
                &keys::state(group, StateKind::EventsFirstAvailable),
            )?
            .unwrap_or(0);
        let applied_index = applied.last_applied.as_ref().map_or(0, |id| id.index());
        let (applied_sender, _) = tokio::sync::watch::channel(applied_index);
        Ok(StateMachine {
            shared,
            group,
            applied: Arc::new(RwLock::new(applied)),
            group_shared: Arc::new(GroupShared {
                first_available: first_available.into(),
                applied: applied_sender,
            }),
            since_checkpoint: 0,
            snapshot_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Read access to the applied state, for queries.
    pub fn reader(&self) -> StateReader {
        StateReader {
            applied: Arc::clone(&self.applied),
        }
    }

    /// This group's event log.
    pub fn event_log(&self) -> EventLog {
        EventLog {
            shared: Arc::clone(&self.shared),
            group: self.group,
            group_shared: Arc::clone(&self.group_shared),
        }
    }

    /// Somewhere to write a snapshot arriving from the leader, chunk by chunk; pass the
    /// finished [`SnapshotData`] to openraft's snapshot install.
    pub fn snapshot_receiver(&self) -> SnapshotReceiver {
        SnapshotReceiver::new(Arc::clone(&self.shared), self.group)
    }

    /// Applies up to `apply_batch_entries_max` entries and writes them in one WriteBatch.
    fn apply_batch(
        &mut self,
        items: Vec<(Entry, Option<ApplyResponder<TypeConfig>>)>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let count = items.len() as u64;
        let events_cf = self.shared.cf(CF_EVENTS)?;
        let first_available = self.group_shared.first_available.load(Ordering::Acquire);
        let mut batch = WriteBatch::default();
        let mut replies = Vec::with_capacity(items.len());
        let last_index;
        {
            let mut applied = self.applied.write().map_err(|_| StoreError::Poisoned)?;
            for (entry, responder) in items {
                let log_id = entry.log_id();
                let index = log_id.index();
                if let Some(last) = &applied.last_applied
                    && index <= last.index()
                {
                    return Err(StoreError::AppliedOutOfOrder {
                        group: self.group,
                        index,
                        last_applied: last.index(),
                    });
                }
                let outcome = match entry.payload {
                    EntryPayload::Blank => None,
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(log_id), membership);
                        None
                    }
                    EntryPayload::Normal(stamped) => {
                        // The engine panics on a non-increasing index; refuse instead.
                        let engine_last = applied.engine.last_applied().0;
                        if index <= engine_last {
                            return Err(StoreError::AppliedOutOfOrder {
                                group: self.group,
                                index,
                                last_applied: engine_last,
                            });
                        }
                        let context = ApplyCtx {
                            log_index: index,
                            timestamp: stamped.timestamp,
                        };
                        // The client's trace, on every replica: a span around the apply when
                        // spans are exported, else a debug line. Neither feeds the state.
                        let traced = stamped.traceparent.as_deref();
                        let span = match traced {
                            Some(traceparent) if martelo_trace::exporting() => {
                                let span = tracing::info_span!(
                                    "raft.apply",
                                    group = self.group.0,
                                    log_index = index,
                                    accepted = tracing::field::Empty,
                                    trace_id = tracing::field::Empty,
                                    span_id = tracing::field::Empty,
                                );
                                martelo_trace::adopt(&span, Some(traceparent));
                                Some(span)
                            }
                            _ => None,
                        };
                        let outcome = {
                            let _entered = span.as_ref().map(tracing::Span::enter);
                            applied.engine.apply(context, &stamped.command)
                        };
                        if let Some(span) = &span {
                            span.record("accepted", outcome.reply.is_accepted());
                        } else if let Some(traceparent) = traced {
                            tracing::debug!(
                                group = self.group.0,
                                log_index = index,
                                traceparent,
                                accepted = outcome.reply.is_accepted(),
                                "applied a traced command"
                            );
                        }
                        // What the apply already knows, from the entry and the outcome: no
                        // clock, no randomness, the same bytes on every replica.
                        // The engine's time of the apply (the entry's timestamp, never before
                        // the last one applied), as its events carry it.
                        let at = applied.engine.last_applied().1;
                        let rejections: Vec<Rejection> =
                            Rejection::of(&stamped.command, at, &outcome)
                                .into_iter()
                                .collect();
                        let record = StoredRecordRef {
                            events: &outcome.events,
                            rejections: &rejections,
                            traceparent: stamped.traceparent.as_deref(),
                        };
                        if !record.is_empty() && index >= first_available {
                            let key = keys::indexed(self.group, index);
                            batch.put_cf(events_cf, key, codec::encode("event record", &record)?);
                        }
                        Some(outcome)
                    }
                };
                applied.last_applied = Some(log_id);
                replies.push((responder, Response { outcome }));
            }
            self.since_checkpoint += count;
            if self.since_checkpoint >= self.shared.config.checkpoint_interval_entries {
                batch.put_cf(
                    self.shared.cf(CF_STATE_MACHINE)?,
                    keys::state(self.group, StateKind::Checkpoint),
                    codec::encode("checkpoint", &*applied)?,
                );
                self.since_checkpoint = 0;
            }
            last_index = applied.last_applied.as_ref().map_or(0, |id| id.index());
        }
        let bytes = batch.size_in_bytes() as u64;
        // Not synced: the log is the durable record of these entries (committed means synced
        // on a quorum). A crash loses at most the tail since the last durable checkpoint,
        // which openraft re-applies from the log; the batch keeps it all-or-nothing.
        self.shared.write(batch)?;
        self.group_shared.applied.send_replace(last_index);
        ::metrics::histogram!(metrics::APPLY_SECONDS).record(started.elapsed().as_secs_f64());
        ::metrics::counter!(metrics::APPLIED_ENTRIES).increment(count);
        ::metrics::counter!(metrics::STATE_BYTES_WRITTEN).increment(bytes);
        // Replies go out after the write, so a client that hears "accepted" and then reads
        // the event log finds the events there.
        for (responder, response) in replies {
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    /// Copies a snapshot stored in another database (tests, or an in-process transfer) into
    /// this one, chunk by chunk.
    fn localize(&self, data: SnapshotData) -> Result<SnapshotData, StoreError> {
        if Arc::ptr_eq(&data.shared, &self.shared) {
            return Ok(data);
        }
        let mut receiver = self.snapshot_receiver();
        for chunk in 0..data.chunk_count() {
            receiver.push_chunk(&data.read_chunk(chunk)?)?;
        }
        receiver.finish()
    }

    async fn install(&mut self, meta: &SnapshotMeta, data: SnapshotData) -> Result<(), StoreError> {
        let started = Instant::now();
        let _guard = self.snapshot_lock.lock().await;
        let data = self.localize(data)?;
        let installed = decode_snapshot(self.group, meta, &data)?;
        installed
            .engine
            .validate()
            .map_err(|violation| StoreError::InvalidState {
                group: self.group,
                reason: violation.0,
            })?;
        let record = SnapshotRecord {
            meta: meta.clone(),
            snapshot_id: data.snapshot_id,
            chunk_count: data.chunk_count,
            total_bytes: data.total_bytes,
        };
        let mut batch = WriteBatch::default();
        self.replace_record(&record, &mut batch)?;
        // This replica skips the events between its applied index and the snapshot: mark
        // them trimmed so readers resync from state instead of seeing a silent gap.
        let snapshot_next = meta.last_log_id.as_ref().map_or(0, |id| id.index() + 1);
        let first_available = self
            .group_shared
            .first_available
            .fetch_max(snapshot_next, Ordering::AcqRel)
            .max(snapshot_next);
        event_log::trim_into(&self.shared, self.group, first_available, &mut batch)?;
        self.shared.write(batch)?;
        // Installed means durable: openraft may purge the log below the snapshot next.
        self.shared.syncer.barrier().await?;
        let applied_index = installed.last_applied.as_ref().map_or(0, |id| id.index());
        *self.applied.write().map_err(|_| StoreError::Poisoned)? = installed;
        self.since_checkpoint = 0;
        self.group_shared.applied.send_replace(applied_index);
        ::metrics::histogram!(metrics::SNAPSHOT_INSTALL_SECONDS)
            .record(started.elapsed().as_secs_f64());
        ::metrics::histogram!(metrics::SNAPSHOT_BYTES).record(data.total_bytes as f64);
        Ok(())
    }

    fn replace_record(
        &self,
        record: &SnapshotRecord,
        batch: &mut WriteBatch,
    ) -> Result<(), StoreError> {
        replace_record(&self.shared, self.group, record, batch)
    }

    fn current_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        let record: Option<SnapshotRecord> = self.shared.get(
            CF_STATE_MACHINE,
            "snapshot record",
            &keys::state(self.group, StateKind::Snapshot),
        )?;
        Ok(record.map(|record| Snapshot {
            snapshot: SnapshotData::from_record(Arc::clone(&self.shared), self.group, &record),
            meta: record.meta,
        }))
    }
}

/// Adds to `batch`: `record` becomes the group's snapshot, the previous one's chunks go.
fn replace_record(
    shared: &Shared,
    group: GroupId,
    record: &SnapshotRecord,
    batch: &mut WriteBatch,
) -> Result<(), StoreError> {
    let key = keys::state(group, StateKind::Snapshot);
    let previous: Option<SnapshotRecord> = shared.get(CF_STATE_MACHINE, "snapshot record", &key)?;
    if let Some(previous) = previous
        && previous.snapshot_id != record.snapshot_id
    {
        let (from, to) = keys::snapshot_range(previous.snapshot_id);
        batch.delete_range_cf(shared.cf(CF_SNAPSHOT)?, from.as_slice(), to.as_slice());
    }
    batch.put_cf(
        shared.cf(CF_STATE_MACHINE)?,
        key,
        codec::encode("snapshot record", record)?,
    );
    Ok(())
}

fn decode_snapshot(
    group: GroupId,
    meta: &SnapshotMeta,
    data: &SnapshotData,
) -> Result<AppliedState, StoreError> {
    let state: AppliedState =
        codec::decode_from_reader("snapshot", data.reader(), data.total_bytes())?;
    if state.last_applied != meta.last_log_id || state.membership != meta.last_membership {
        return Err(StoreError::SnapshotMismatch {
            group,
            reason: format!(
                "metadata says {:?} / {:?}, content says {:?} / {:?}",
                meta.last_log_id, meta.last_membership, state.last_applied, state.membership
            ),
        });
    }
    Ok(state)
}

/// Builds a snapshot of the state as it was when the builder was made.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    group: GroupId,
    state: AppliedState,
    snapshot_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("group", &self.group)
            .field("last_applied", &self.state.last_applied)
            .finish_non_exhaustive()
    }
}

impl SnapshotBuilder {
    async fn build(&mut self) -> Result<Snapshot, StoreError> {
        let started = Instant::now();
        let _guard = self.snapshot_lock.lock().await;
        let key = keys::state(self.group, StateKind::Snapshot);
        let current: Option<SnapshotRecord> =
            self.shared.get(CF_STATE_MACHINE, "snapshot record", &key)?;
        // A snapshot installed since this builder was made is newer: keep it.
        if let Some(current) = current
            && current.meta.last_log_id > self.state.last_applied
        {
            return Ok(Snapshot {
                snapshot: SnapshotData::from_record(Arc::clone(&self.shared), self.group, &current),
                meta: current.meta,
            });
        }
        let mut receiver = SnapshotReceiver::new(Arc::clone(&self.shared), self.group);
        codec::encode_to_writer("snapshot", &self.state, &mut receiver)?;
        let data = receiver.finish()?;
        let meta = SnapshotMeta {
            last_log_id: self.state.last_applied,
            last_membership: self.state.membership.clone(),
        };
        let record = SnapshotRecord {
            meta: meta.clone(),
            snapshot_id: data.snapshot_id,
            chunk_count: data.chunk_count,
            total_bytes: data.total_bytes,
        };
        let mut batch = WriteBatch::default();
        replace_record(&self.shared, self.group, &record, &mut batch)?;
        self.shared.write(batch)?;
        // Durable before openraft purges the log it replaces.
        self.shared.syncer.barrier().await?;
        ::metrics::histogram!(metrics::SNAPSHOT_BUILD_SECONDS)
            .record(started.elapsed().as_secs_f64());
        ::metrics::histogram!(metrics::SNAPSHOT_BYTES).record(data.total_bytes as f64);
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        Ok(self.build().await?)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, crate::types::StoredMembership), io::Error> {
        let applied = self.applied.read().map_err(|_| StoreError::Poisoned)?;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let batch_max = self.shared.config.apply_batch_entries_max;
        let mut items = Vec::new();
        while let Some(item) = entries.next().await {
            items.push(item?);
            if items.len() == batch_max {
                self.apply_batch(std::mem::take(&mut items))?;
            }
        }
        if !items.is_empty() {
            self.apply_batch(items)?;
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // A copy of the state, taken under the read lock: apply waits only for the memory
        // copy, not for encoding or writing the snapshot.
        let state = match self.applied.read() {
            Ok(applied) => applied.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        SnapshotBuilder {
            shared: Arc::clone(&self.shared),
            group: self.group,
            state,
            snapshot_lock: Arc::clone(&self.snapshot_lock),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        Ok(self.install(meta, snapshot).await?)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.current_snapshot()?)
    }
}
