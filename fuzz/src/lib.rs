//! # martelo-fuzz: the shared half of the fuzz targets
//!
//! Each target in `fuzz_targets/` feeds bytes from outside the process to one family of
//! decoders and asserts the decoder's contract, not only that it returns:
//!
//! ```text
//!   fuzz input ──► shape (selector byte, checksum fix-up) ──► decoder ──► contract
//!                                                                 │
//!        Ok(value): encode(value) decodes to the same value      │
//!        Err(error): the typed error the frame predicts ◄────────┘
//!        always: no panic, and what it allocated is bounded by the input's size
//! ```
//!
//! What is here:
//! - [`alloc`]: a counting global allocator and [`alloc::bounded`], the allocation bound;
//! - [`frame`]: input shaping (a selector byte; a correct checksum around the fuzzed payload
//!   so the payload decoder, not the checksum, is what gets explored) and the framing
//!   contract shared by the storage and wire codecs;
//! - [`raft`]: raft-store's openraft `TypeConfig` and stored records, declared again here so
//!   that their codecs are fuzzed without linking RocksDB;
//! - [`node_checks`]: the node's client-API request checks, compiled from the cluster's
//!   source file.
//!
//! The seed corpora come from `examples/seeds.rs` (kept out of this library so that the
//! targets' build does not depend on how seeds are made). A new decoder gets a target in
//! `fuzz_targets/`, a `[[bin]]` in Cargo.toml, seeds in `examples/seeds.rs`, and a line in
//! docs/TESTING.md ("Fuzzing").

pub mod alloc;
pub mod frame;
pub mod node_checks;
pub mod raft;

/// Asserts that an error message meant for a caller stays small: at most a few KiB more
/// than the input it describes (a serde message may quote a field of the input back).
pub fn assert_bounded_message(what: &str, message: &str, input_bytes: usize) {
    let bound = 4096 + 4 * input_bytes;
    assert!(
        message.len() <= bound,
        "{what}: a {}-byte error message for a {input_bytes}-byte input: {:?}",
        message.len(),
        prefix(message, 512)
    );
}

/// The first `bytes_max` bytes of `text` at most, cut at a character boundary.
pub fn prefix(text: &str, bytes_max: usize) -> &str {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
