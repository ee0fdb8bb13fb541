//! The storage decoder (`codec::decode`) on every value raft-store reads back: log entries
//! (whose commands came from clients and peers), votes, log ids, checkpoints, event records,
//! snapshot records, and the engine's `Command`, `State` and events on their own.
//!
//! Contract: the framing verdict's typed error (martelo_fuzz::frame), a heap peak bounded by
//! the input's size, and for a decoded value: it encodes, and decodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use martelo_engine::codec::{self, VALUE_BYTES_MAX};
use martelo_engine::{Command, Event, State};
use martelo_fuzz::frame::{self, STORAGE};
use martelo_fuzz::{alloc, raft};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes `bytes` as a stored `T` and checks the contract.
fn stored<T>(what: &'static str, bytes: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let result = alloc::bounded(what, bytes.len(), || codec::decode::<T>(what, bytes));
    frame::assert_framing(what, bytes, VALUE_BYTES_MAX, STORAGE, &result);
    let value = result.ok()?;
    let again = codec::encode(what, &value).expect("a decoded value encodes");
    let back = codec::decode::<T>(what, &again).expect("a re-encoded value decodes");
    assert_eq!(back, value, "{what}: decode(encode(x)) != x");
    Some(value)
}

/// The selectors, in the order of `kind % KINDS` (the seeds use the same numbers).
const KINDS: u8 = 10;

fuzz_target!(|data: &[u8]| {
    let Some(input) = frame::shape(data) else {
        return;
    };
    let bytes = &input.bytes;
    match input.kind % KINDS {
        0 => drop(stored::<raft::Entry>("log entry", bytes)),
        1 => drop(stored::<raft::Vote>("vote", bytes)),
        2 => drop(stored::<Option<raft::LogId>>("committed", bytes)),
        3 => drop(stored::<raft::LogId>("last purged", bytes)),
        4 => {
            if let Some(applied) = stored::<raft::AppliedState>("checkpoint", bytes) {
                // A decoded state is judged by its own invariants: that may fail, never panic.
                let _ = applied.engine.validate();
            }
        }
        5 => drop(stored::<raft::StoredRecord>("event record", bytes)),
        6 => drop(stored::<raft::SnapshotRecord>("snapshot record", bytes)),
        7 => drop(stored::<Command>("command", bytes)),
        8 => {
            if let Some(state) = stored::<State>("state", bytes) {
                let _ = state.validate();
            }
        }
        _ => drop(stored::<Vec<Event>>("events", bytes)),
    }
});
