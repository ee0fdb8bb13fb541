//! What decoding hostile bytes may allocate: short, correctly framed inputs whose length
//! prefixes lie (a string or a list claiming hundreds of megabytes) must be refused before
//! the allocation they ask for, by every decoder that reads bytes from outside the process:
//! the storage codec (log entries, stored values), the snapshot stream, and the wire decoder
//! of client payloads. Counted with an instrumented global allocator, so this file holds one
//! test (the count is process-wide).
//!
//! Before the claim limit scaled with the input (`codec::claim_limit`), a 15-byte command
//! made the storage decoder allocate 200 MB: this test then fails on its first case.

use std::alloc::System;

use martelo_engine::codec::{self, STORAGE_FORMAT_VERSION, wire};
use martelo_engine::{AuctionView, Command, Event, Request, State};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// What one decode of an input of at most `INPUT_BYTES_MAX` bytes may allocate: serde may
/// reserve up to 1 MiB for a list before reading its elements (its own cap), once per level
/// of nesting that the input's bytes reach.
const ALLOCATED_MAX: usize = 8 << 20;
const INPUT_BYTES_MAX: usize = 64;

/// A framed value (version byte, payload, 4-byte blake3 checksum) around `payload`.
fn framed(version: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(payload.len() + 5);
    bytes.push(version);
    bytes.extend_from_slice(payload);
    let digest = blake3::hash(&bytes);
    bytes.extend_from_slice(&digest.as_bytes()[..4]);
    bytes
}

/// Bytes allocated while `decode` runs.
fn allocated(decode: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    decode();
    region.change().bytes_allocated
}

/// Payloads that are mostly small varints, with lying lengths spliced in: bincode's varint
/// markers 251 (u16), 252 (u32) and 253 (u64) followed by large values.
fn hostile_payload() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => (0u8..251).prop_map(|byte| vec![byte]),
        1 => (1u32 << 20..u32::MAX).prop_map(|len| {
            let mut bytes = vec![252];
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes
        }),
        1 => (1u64 << 20..1u64 << 40).prop_map(|len| {
            let mut bytes = vec![253];
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes
        }),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|pieces| {
        let mut payload: Vec<u8> = pieces.concat();
        payload.truncate(INPUT_BYTES_MAX - 5);
        payload
    })
}

#[test]
fn hostile_inputs_allocate_at_most_a_few_mebibytes() {
    // The reported case first: 15 bytes whose string claims 200 MB.
    let reported = codec::encode("lying", &(7u64, 200_000_000u64)).expect("encodes");
    let bytes = allocated(|| assert!(codec::decode::<(u64, String)>("lying", &reported).is_err()));
    assert!(bytes < 64 << 10, "a 15-byte input allocated {bytes} bytes");

    let worst = std::cell::RefCell::new((0usize, Vec::new()));
    let mut runner = TestRunner::new(Config {
        cases: 3_000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&hostile_payload(), |payload| {
            let storage = framed(STORAGE_FORMAT_VERSION, &payload);
            let wire_bytes = framed(wire::WIRE_VERSION, &payload);
            let cases: [(&str, usize); 8] = [
                (
                    "command",
                    allocated(|| drop(codec::decode::<Command>("command", &storage))),
                ),
                (
                    "state",
                    allocated(|| drop(codec::decode::<State>("state", &storage))),
                ),
                (
                    "event (stored)",
                    allocated(|| drop(codec::decode::<Vec<Event>>("events", &storage))),
                ),
                (
                    "snapshot stream",
                    allocated(|| {
                        drop(codec::decode_from_reader::<State, _>(
                            "snapshot",
                            storage.as_slice(),
                            storage.len() as u64,
                        ));
                    }),
                ),
                (
                    "request (wire)",
                    allocated(|| {
                        drop(wire::decode::<Request, { 68 << 10 }>(
                            "request",
                            &wire_bytes,
                        ));
                    }),
                ),
                (
                    "event (wire)",
                    allocated(|| drop(wire::decode::<Event, { 64 << 10 }>("event", &wire_bytes))),
                ),
                (
                    "view (wire)",
                    allocated(|| {
                        drop(wire::decode::<AuctionView, { 4 << 20 }>(
                            "view",
                            &wire_bytes,
                        ));
                    }),
                ),
                (
                    "meta command (wire)",
                    allocated(|| {
                        drop(wire::decode::<martelo_engine::MetaCommand, { 8 << 10 }>(
                            "meta",
                            &wire_bytes,
                        ));
                    }),
                ),
            ];
            for (what, bytes) in cases {
                if bytes > worst.borrow().0 {
                    *worst.borrow_mut() = (bytes, payload.clone());
                }
                prop_assert!(
                    bytes <= ALLOCATED_MAX,
                    "{what}: a {}-byte input allocated {bytes} bytes: {payload:?}",
                    storage.len()
                );
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    let worst = worst.into_inner();
    println!(
        "largest allocation for a hostile input of at most {INPUT_BYTES_MAX} bytes: {} bytes \
         (payload {:?})",
        worst.0, worst.1
    );
}
