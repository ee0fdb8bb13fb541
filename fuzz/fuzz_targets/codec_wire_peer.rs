//! The wire decoder of Raft peer payloads (`codec::wire::decode_peer`), each openraft
//! message with the limit the node reads it with: what a node reads from a peer that calls
//! it (append batches, votes and pre-votes, transfer-leader requests, a snapshot header's
//! vote and metadata) and what it reads from the peer it called (every answer and
//! `RaftError`). The types are over raft-store's `TypeConfig`, declared again in
//! martelo_fuzz::raft.
//!
//! Contract: the framing verdict's typed error (martelo_fuzz::frame); a heap peak bounded by
//! the input's size; a decoded value encodes in the version it came in and decodes back to
//! itself (compared by their encodings: not every openraft message has `PartialEq`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use martelo_engine::codec::wire::{self, WireVersion};
use martelo_fuzz::alloc;
use martelo_fuzz::frame::{self, WIRE};
use martelo_fuzz::raft::{SnapshotMeta, TypeConfig, Vote};
use martelo_proto::{RAFT_CONTROL_PAYLOAD_BYTES_MAX as CONTROL, RAFT_MESSAGE_BYTES_MAX};
use openraft::errors::RaftError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn peer<T, const BYTES_MAX: usize>(what: &'static str, bytes: &[u8])
where
    T: Serialize + DeserializeOwned,
{
    let result = alloc::bounded(what, bytes.len(), || {
        wire::decode_peer::<T, BYTES_MAX>(what, bytes)
    });
    frame::assert_framing(what, bytes, BYTES_MAX, WIRE, &result);
    let Ok(value) = result else {
        return;
    };
    let version = WireVersion::from_codec_version(u32::from(bytes[0]))
        .expect("a decoded frame names a version this build reads");
    let again = wire::encode_peer(what, &value, version).expect("a decoded value encodes");
    let back = wire::decode_peer::<T, BYTES_MAX>(what, &again).expect("a re-encoded value decodes");
    // Not every openraft message has `PartialEq`: compare their encodings instead (the
    // encoding of a value is a function of it, so equal values give equal bytes).
    let back_again = wire::encode_peer(what, &back, version).expect("a decoded value encodes");
    assert_eq!(back_again, again, "{what}: decode(encode(x)) != x");
}

type C = TypeConfig;

const KINDS: u8 = 11;

fuzz_target!(|data: &[u8]| {
    let Some(input) = frame::shape(data) else {
        return;
    };
    let bytes = &input.bytes;
    match input.kind % KINDS {
        // Requests a node serves.
        0 => peer::<AppendEntriesRequest<C>, RAFT_MESSAGE_BYTES_MAX>("AppendEntriesRequest", bytes),
        1 => peer::<VoteRequest<C>, CONTROL>("VoteRequest", bytes),
        2 => peer::<TransferLeaderRequest<C>, CONTROL>("TransferLeaderRequest", bytes),
        3 => peer::<Vote, CONTROL>("Vote", bytes),
        4 => peer::<SnapshotMeta, CONTROL>("SnapshotMeta", bytes),
        // Answers a node reads from the peer it called.
        5 => peer::<AppendEntriesResponse<C>, CONTROL>("AppendEntriesResponse", bytes),
        6 => peer::<StreamAppendResult<C>, CONTROL>("StreamAppendResult", bytes),
        7 => peer::<VoteResponse<C>, CONTROL>("VoteResponse", bytes),
        8 => peer::<SnapshotResponse<C>, CONTROL>("SnapshotResponse", bytes),
        9 => peer::<TransferLeaderResponse<C>, CONTROL>("TransferLeaderResponse", bytes),
        _ => peer::<RaftError<C>, CONTROL>("RaftError", bytes),
    }
});
