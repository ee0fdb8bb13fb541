//! raft-store's openraft configuration and stored records, declared again so that the
//! decoders of Raft peer payloads and of stored values can be fuzzed without linking
//! RocksDB (martelo-raft-store links it).
//!
//! Every declaration here must stay the same, field for field and in the same order, as
//! its original (bincode is not self-describing: the layout is the declaration):
//!
//! | here             | original                                              |
//! |------------------|-------------------------------------------------------|
//! | [`Stamped`]      | `raft-store/src/lib.rs`, `Stamped`                    |
//! | [`Response`]     | `raft-store/src/lib.rs`, `Response`                   |
//! | [`TypeConfig`]   | `raft-store/src/lib.rs`, `declare_raft_types!`        |
//! | [`AppliedState`] | `raft-store/src/state_machine.rs`, `AppliedState`     |
//! | [`StoredRecord`] | `raft-store/src/event_log.rs`, `StoredRecord`         |
//! | [`SnapshotRecord`] | `raft-store/src/snapshot.rs`, `SnapshotRecord`      |
//!
//! The seeds (`examples/seeds.rs`) are encoded from these declarations too, so a drift
//! would not show as a crash here; it would make the targets fuzz a layout the node no
//! longer reads. Compare them when raft-store's change.

use std::fmt;

use martelo_engine::outcome::Rejection;
use martelo_engine::{Command, Event, Outcome, State, Timestamp};
use serde::{Deserialize, Serialize};

/// A group's log entry payload: an engine command stamped by the leader's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    pub timestamp: Timestamp,
    pub command: Command,
    pub traceparent: Option<String>,
}

impl fmt::Display for Stamped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command@{}", self.timestamp.0)
    }
}

/// What applying one entry returns to the proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub outcome: Option<Outcome>,
}

openraft::declare_raft_types!(
    /// raft-store's `TypeConfig`, declared again.
    pub TypeConfig:
        D = Stamped,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
);

pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;

/// A checkpoint and a snapshot stream: the engine state and where it stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub engine: State,
}

/// One entry's stored event record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub events: Vec<Event>,
    #[serde(
        default,
        deserialize_with = "martelo_engine::codec::compat::appended_in_format_3"
    )]
    pub rejections: Vec<Rejection>,
    #[serde(
        default,
        deserialize_with = "martelo_engine::codec::compat::appended_in_format_3"
    )]
    pub traceparent: Option<String>,
}

/// The durable description of a group's current snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub meta: SnapshotMeta,
    pub snapshot_id: u64,
    pub chunk_count: u32,
    pub total_bytes: u64,
}
