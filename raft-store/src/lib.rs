//! # martelo-raft-store: durable openraft storage for many Raft groups on one RocksDB
//!
//! A node opens one [`RaftStore`] (one RocksDB instance) and asks it for a [`LogStore`] and a
//! [`StateMachine`] per Raft group. All groups share the database, and so share WAL fsyncs.
//!
//! ```text
//!   openraft (one Raft per group)
//!      │ append / save_vote / truncate / purge          │ apply / snapshot
//!      ▼                                                ▼
//!   LogStore ──write (unsynced)──┐                 StateMachine ── martelo_engine::State
//!      │                         ▼                      │ (hot, in memory)
//!      │                   RocksDB (one per node) ◄─────┘ checkpoint + events, one batch
//!      │                         ▲
//!      └─ callback ──► WalSyncer thread: drain all pending requests, one fsync, complete all
//! ```
//!
//! - Log writes go to RocksDB immediately (so they are readable when `append` returns) and
//!   are reported flushed only after the syncer thread has synced the WAL. One fsync covers
//!   every request queued while the previous fsync ran, whichever group sent it: that is the
//!   group commit. See `docs/PERFORMANCE.md` for the figures.
//! - The state machine applies [`Stamped`] commands with the engine and writes each apply
//!   batch (events, and every `checkpoint_interval_entries` the engine state with its applied
//!   log id and membership) in one atomic WriteBatch. Between checkpoints the durable state is
//!   the checkpoint plus the log, which openraft re-applies at start (committed is saved).
//! - Snapshots are streamed through the codec into chunks in the `snapshot` column family;
//!   [`SnapshotData`] is a handle to those chunks, so a snapshot is never one buffer.
//! - Each group's [`EventLog`] serves committed events from any index onward.
//!
//! Where new code goes:
//! - a new stored value or a format change: [`codec`] (bump the storage format version; the
//!   rule is in `docs/ARCHITECTURE.md`, "Formats and compatibility") and [`keys`];
//! - Raft log or vote IO: `log_store.rs`; the WAL group commit: `syncer.rs`;
//! - applying, checkpoints, snapshots: `state_machine.rs`, `snapshot.rs`;
//! - event log reads and trimming: `event_log.rs`;
//! - a new metric: `metrics.rs` (names start with `martelo_raft_store_`).

mod error;
mod event_log;
pub mod keys;
mod log_store;
mod metrics;
mod snapshot;
mod state_machine;
mod store;
mod syncer;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use martelo_engine::GroupId;
/// The codec lives in the engine crate, so that light clients (gateway, fault suite) decode
/// wire payloads ([`codec::wire`]) without linking RocksDB. This crate uses its storage
/// format only ([`codec::encode`], [`codec::decode`] and the snapshot streams).
pub use martelo_engine::codec;

pub use error::StoreError;
pub use event_log::{EventLog, EventLogError, EventRecord};
pub use log_store::LogStore;
pub use metrics::describe_metrics;
pub use snapshot::{SnapshotData, SnapshotReceiver};
pub use state_machine::{SnapshotBuilder, StateMachine, StateReader};
pub use store::{RaftStore, StoreConfig};

/// A group's log entry payload: an engine command stamped by the leader's hybrid clock.
///
/// The cluster layer stamps it before proposing; clients never supply the timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    pub timestamp: martelo_engine::Timestamp,
    pub command: martelo_engine::Command,
    /// The proposer's W3C `traceparent` (checked by the node that took the proposal), so
    /// every replica's apply can log under the client's trace; `None` for untraced commands
    /// and the leader's own (`Close`).
    pub traceparent: Option<String>,
}

impl fmt::Display for Stamped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.command.auction_id() {
            Some(auction) => write!(f, "command@{} for auction {}", self.timestamp.0, auction.0),
            None => write!(f, "command@{}", self.timestamp.0),
        }
    }
}

/// What applying one entry returns to the proposer. `outcome` is `None` for blank and
/// membership entries, which carry no engine command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub outcome: Option<martelo_engine::Outcome>,
}

openraft::declare_raft_types!(
    /// openraft's type configuration for every martelo group.
    pub TypeConfig:
        D = Stamped,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// openraft types instantiated for [`TypeConfig`].
pub mod types {
    use super::TypeConfig;

    pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
    pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
    pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
    pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
    pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
    pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, crate::SnapshotData>;
}
