//! The snapshot stream decoder (`codec::decode_from_reader`): what a follower reads from a
//! snapshot a leader sent it, chunk by chunk (raft-store's `AppliedState`, declared again in
//! martelo_fuzz::raft), and the engine `State` alone.
//!
//! Contract: the stream decoder and the buffer decoder (`codec::decode`) agree on every
//! input, value for value; a decoded value streams out and back to itself; the heap peak is
//! bounded by the stream's size; errors are typed (`Truncated` only for an empty stream,
//! `UnknownVersion` naming the first byte). The reader hands out the stream in pieces of a
//! fuzzed size, as chunks arrive.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use martelo_engine::State;
use martelo_engine::codec::{self, CodecError};
use martelo_fuzz::frame::{self, STORAGE, Verdict};
use martelo_fuzz::{alloc, raft};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A reader that returns at most `piece` bytes a call.
struct Pieces<'a> {
    bytes: &'a [u8],
    piece: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.piece).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

fn streamed<T>(what: &'static str, bytes: &[u8], piece: usize) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let reader = Pieces { bytes, piece };
    let result = alloc::bounded(what, bytes.len(), || {
        codec::decode_from_reader::<T, _>(what, reader, bytes.len() as u64)
    });
    if let Err(error) = &result {
        martelo_fuzz::assert_bounded_message(what, &error.to_string(), bytes.len());
        match error {
            CodecError::Truncated { len, .. } => {
                assert!(bytes.is_empty() && *len == 0, "{what}: {error:?}");
            }
            CodecError::UnknownVersion { found, .. } => {
                assert!(!bytes.is_empty() && *found == bytes[0], "{what}: {error:?}");
                assert!(!(STORAGE.oldest..=STORAGE.newest).contains(found));
            }
            CodecError::Corrupt { .. } | CodecError::TooLarge { .. } => {}
            CodecError::Encode { .. } => panic!("{what}: an encode error from a decode"),
        }
    }
    // The buffer decoder reads the same format from the same bytes: it must agree. (Both
    // bound claims by the input's size; below 256 MiB their limits are the same.)
    let buffered = codec::decode::<T>(what, bytes);
    match (&result, &buffered) {
        (Ok(streamed), Ok(buffered)) => assert_eq!(streamed, buffered, "{what}: the decoders differ"),
        (Err(_), Err(_)) => {}
        (streamed, buffered) => panic!(
            "{what}: the stream decoder says {:?}, the buffer decoder {:?}",
            streamed.as_ref().err(),
            buffered.as_ref().err()
        ),
    }
    if frame::verdict(bytes, usize::MAX, STORAGE) != Verdict::Payload {
        assert!(result.is_err(), "{what}: a bad frame decoded");
    }
    let value = result.ok()?;
    let mut again = Vec::new();
    let written = codec::encode_to_writer(what, &value, &mut again).expect("a decoded value encodes");
    assert_eq!(written, again.len() as u64, "{what}: encode_to_writer miscounted");
    let back = codec::decode_from_reader::<T, _>(what, again.as_slice(), written)
        .expect("a re-encoded value decodes");
    assert_eq!(back, value, "{what}: decode(encode(x)) != x");
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    // [piece size][selector][rest]: see martelo_fuzz::frame for the selector.
    let Some((&piece, data)) = data.split_first() else {
        return;
    };
    let Some(input) = frame::shape(data) else {
        return;
    };
    let piece = usize::from(piece) * 61 % 4096 + 1;
    if input.kind % 2 == 0 {
        if let Some(applied) = streamed::<raft::AppliedState>("snapshot", &input.bytes, piece) {
            let _ = applied.engine.validate();
        }
    } else if let Some(state) = streamed::<State>("state", &input.bytes, piece) {
        let _ = state.validate();
    }
});
