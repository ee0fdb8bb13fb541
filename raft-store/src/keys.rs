//! Column families and key layout of the node's one RocksDB.
//!
//! ```text
//!   cf "log"            group(8) ++ index(8)            -> Entry
//!   cf "raft_meta"      group(8) ++ kind(1)             -> vote | committed | last purged
//!   cf "state_machine"  group(8) ++ kind(1)             -> checkpoint | snapshot | event trim
//!   cf "events"         group(8) ++ index(8)            -> Vec<Event> of that entry
//!   cf "snapshot"       snapshot id(8) ++ chunk no(4)   -> bytes of one snapshot chunk
//! ```
//!
//! All integers are big-endian, so RocksDB's bytewise order is (group, index) order and one
//! group's keys are one contiguous range. Snapshot ids are unique per node, not per group, so
//! chunks of a half-received snapshot can be found and removed at open without knowing the
//! group.

use crate::GroupId;

pub const CF_LOG: &str = "log";
pub const CF_RAFT_META: &str = "raft_meta";
pub const CF_STATE_MACHINE: &str = "state_machine";
pub const CF_EVENTS: &str = "events";
pub const CF_SNAPSHOT: &str = "snapshot";

pub const ALL_COLUMN_FAMILIES: [&str; 5] = [
    CF_LOG,
    CF_RAFT_META,
    CF_STATE_MACHINE,
    CF_EVENTS,
    CF_SNAPSHOT,
];

/// Kinds of per-group records in `raft_meta`.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub(crate) enum MetaKind {
    Vote = 1,
    Committed = 2,
    LastPurged = 3,
}

/// Kinds of per-group records in `state_machine`.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub(crate) enum StateKind {
    /// The engine state with its last applied log id and membership.
    Checkpoint = 1,
    /// The current snapshot's metadata and where its chunks are.
    Snapshot = 2,
    /// The first event index still readable.
    EventsFirstAvailable = 3,
}

/// Key of an entry (in `log`) or of an entry's events (in `events`).
pub(crate) fn indexed(group: GroupId, index: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&group.0.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

/// An exclusive upper bound above every `indexed(group, _)` key: 17 bytes sort after any
/// 16-byte key with the same first 16 bytes, even for `group = u64::MAX`.
pub(crate) fn indexed_end(group: GroupId) -> Vec<u8> {
    let mut key = indexed(group, u64::MAX).to_vec();
    key.push(0);
    key
}

/// The index stored in an `indexed` key.
pub(crate) fn index_of(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(8..16)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

pub(crate) fn meta(group: GroupId, kind: MetaKind) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&group.0.to_be_bytes());
    key[8] = kind as u8;
    key
}

pub(crate) fn state(group: GroupId, kind: StateKind) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&group.0.to_be_bytes());
    key[8] = kind as u8;
    key
}

pub(crate) fn snapshot_chunk(snapshot_id: u64, chunk: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&snapshot_id.to_be_bytes());
    key[8..].copy_from_slice(&chunk.to_be_bytes());
    key
}

/// The range of all chunk keys of one snapshot: `[start, end)`.
pub(crate) fn snapshot_range(snapshot_id: u64) -> ([u8; 12], Vec<u8>) {
    let mut end = snapshot_chunk(snapshot_id, u32::MAX).to_vec();
    end.push(0);
    (snapshot_chunk(snapshot_id, 0), end)
}

pub(crate) fn snapshot_id_of(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_group_then_index() {
        let mut keys = [
            indexed(GroupId(2), 1),
            indexed(GroupId(1), 300),
            indexed(GroupId(1), 2),
            indexed(GroupId(1), 256),
        ];
        keys.sort();
        let order: Vec<_> = keys
            .iter()
            .map(|k| {
                (
                    u64::from_be_bytes(k[..8].try_into().unwrap()),
                    index_of(k).unwrap(),
                )
            })
            .collect();
        assert_eq!(order, vec![(1, 2), (1, 256), (1, 300), (2, 1)]);
    }

    #[test]
    fn group_end_is_above_every_key_of_the_group_and_below_the_next() {
        for group in [0, 1, u64::MAX - 1, u64::MAX] {
            let end = indexed_end(GroupId(group));
            assert!(indexed(GroupId(group), u64::MAX).as_slice() < end.as_slice());
            if group < u64::MAX {
                assert!(end.as_slice() < indexed(GroupId(group + 1), 0).as_slice());
            }
        }
    }
}
