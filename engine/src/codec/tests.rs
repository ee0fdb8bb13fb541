//! Tests of the frame and the storage format. The wire format's are in `wire.rs`; decoding
//! the golden format-1 fixtures is `engine/tests/codec_compat.rs`.

use super::*;

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sample {
    id: u64,
    name: String,
    items: Vec<u32>,
}

fn sample() -> Sample {
    Sample {
        id: 7,
        name: "lot".into(),
        items: vec![1, 2, 3],
    }
}

/// Reframes a current value as `version`, with a valid checksum.
pub(super) fn reframed(bytes: &[u8], version: u8) -> Vec<u8> {
    let mut framed = bytes[..bytes.len() - CHECKSUM_BYTES].to_vec();
    framed[0] = version;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&framed);
    framed.extend_from_slice(&checksum(&hasher));
    framed
}

#[test]
fn value_round_trips() {
    let bytes = encode("sample", &sample()).unwrap();
    assert_eq!(bytes[0], STORAGE_FORMAT_VERSION);
    assert_eq!(decode::<Sample>("sample", &bytes).unwrap(), sample());
}

#[test]
fn unknown_version_is_a_typed_error() {
    let mut bytes = encode("sample", &sample()).unwrap();
    bytes[0] = 99;
    let error = decode::<Sample>("sample", &bytes).unwrap_err();
    assert_eq!(
        error,
        CodecError::UnknownVersion {
            what: "sample",
            format: "storage",
            found: 99,
            oldest: STORAGE_FORMAT_VERSION_OLDEST,
            newest: STORAGE_FORMAT_VERSION,
        }
    );
    assert!(
        error
            .to_string()
            .contains("unknown format version 99 (storage"),
        "{error}"
    );
}

#[test]
fn every_storage_format_from_the_oldest_to_the_current_is_read_and_no_other() {
    assert!(!can_read_storage_format(STORAGE_FORMAT_VERSION_OLDEST - 1));
    assert!(!can_read_storage_format(STORAGE_FORMAT_VERSION + 1));
    let bytes = encode("sample", &sample()).unwrap();
    for version in STORAGE_FORMAT_VERSION_OLDEST..=STORAGE_FORMAT_VERSION {
        assert!(can_read_storage_format(version));
        // `Sample` has the same layout in every format.
        let old = reframed(&bytes, version);
        assert_eq!(decode::<Sample>("sample", &old).unwrap(), sample());
        let streamed: Sample =
            decode_from_reader("sample", old.as_slice(), old.len() as u64).unwrap();
        assert_eq!(streamed, sample());
    }
}

#[derive(Debug, PartialEq)]
struct Format(u8);

impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Format, D::Error> {
        u8::deserialize(deserializer)?;
        Ok(Format(decoding_format()))
    }
}

#[test]
fn the_format_being_decoded_is_visible_during_a_decode_and_restored_after_it() {
    let bytes = encode("format", &0u8).unwrap();
    let old = reframed(&bytes, STORAGE_FORMAT_VERSION_OLDEST);
    let format: Format = decode("format", &old).unwrap();
    assert_eq!(format, Format(STORAGE_FORMAT_VERSION_OLDEST));
    let format: Format = decode_from_reader("format", old.as_slice(), old.len() as u64).unwrap();
    assert_eq!(format, Format(STORAGE_FORMAT_VERSION_OLDEST));
    assert_eq!(
        decoding_format(),
        STORAGE_FORMAT_VERSION,
        "restored after decoding"
    );
    assert_eq!(
        decode::<Format>("format", &bytes).unwrap(),
        Format(STORAGE_FORMAT_VERSION)
    );
    // Restored after a failed decode too.
    assert!(decode::<(Format, u64)>("format", &old).is_err());
    assert_eq!(decoding_format(), STORAGE_FORMAT_VERSION);
}

#[test]
fn every_single_bit_flip_is_detected() {
    let bytes = encode("sample", &sample()).unwrap();
    for position in 1..bytes.len() {
        for bit in 0..8 {
            let mut corrupt = bytes.clone();
            corrupt[position] ^= 1 << bit;
            let result = decode::<Sample>("sample", &corrupt);
            assert!(
                matches!(result, Err(CodecError::Corrupt { .. })),
                "flip at byte {position} bit {bit} gave {result:?}"
            );
        }
    }
}

#[test]
fn truncated_and_empty_values_are_errors_not_panics() {
    let bytes = encode("sample", &sample()).unwrap();
    for len in 0..bytes.len() {
        assert!(
            decode::<Sample>("sample", &bytes[..len]).is_err(),
            "len {len}"
        );
    }
}

#[test]
fn garbage_with_a_valid_frame_is_corrupt_not_a_panic() {
    // A correct version and checksum around a payload that is not a `Sample`.
    let mut framed = vec![STORAGE_FORMAT_VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let mut hasher = blake3::Hasher::new();
    hasher.update(&framed);
    framed.extend_from_slice(&checksum(&hasher));
    assert!(matches!(
        decode::<Sample>("sample", &framed),
        Err(CodecError::Corrupt { .. })
    ));
}

#[test]
fn input_longer_than_its_limit_is_too_large_before_anything_else() {
    let bytes = encode("sample", &sample()).unwrap();
    assert_eq!(bytes.len(), 14);
    let decoded: Sample = decode_framed::<Sample, 64>("sample", &bytes, STORAGE).unwrap();
    assert_eq!(decoded, sample());
    let error = decode_framed::<Sample, 13>("sample", &bytes, STORAGE).unwrap_err();
    assert!(error.is_too_large(), "{error:?}");
    assert!(
        error.to_string().contains("the input is 14 bytes"),
        "{error}"
    );
    // The length is checked first: an unreadable version over the limit is too large too.
    let newer = reframed(&bytes, 99);
    let error = decode_framed::<Sample, 13>("sample", &newer, STORAGE).unwrap_err();
    assert!(error.is_too_large(), "{error:?}");
}

#[test]
fn a_limit_counts_what_decoding_claims_not_only_the_input_length() {
    // 14 bytes on the wire, but bincode claims each integer at its in-memory width (the id
    // and two lengths 8 bytes each, three u32s 4 each) plus the string's 3 bytes: 39.
    let bytes = encode("sample", &sample()).unwrap();
    assert!(decode_framed::<Sample, 39>("sample", &bytes, STORAGE).is_ok());
    let error = decode_framed::<Sample, 38>("sample", &bytes, STORAGE).unwrap_err();
    assert!(error.is_too_large(), "{error:?}");
}

#[test]
fn a_length_prefix_larger_than_the_limit_is_too_large_without_allocating_it() {
    // A valid frame whose string claims a terabyte: decoding must refuse it when it reads
    // the length, before allocating (this test would abort otherwise).
    let lying = encode("sample", &(7u64, 1u64 << 40)).unwrap();
    let error = decode_framed::<Sample, 4096>("sample", &lying, STORAGE).unwrap_err();
    assert!(error.is_too_large(), "{error:?}");
    assert!(error.to_string().contains("would claim more"), "{error}");
    // The storage limit refuses it too.
    assert!(
        decode::<Sample>("sample", &lying)
            .unwrap_err()
            .is_too_large()
    );
}

#[test]
fn a_short_input_cannot_claim_more_than_its_own_size_allows() {
    // 15 bytes whose string claims 200 MB, under the storage limit (256 MiB): before the
    // claim limit scaled with the input, bincode allocated the 200 MB and only then found
    // the bytes missing (a `Corrupt` "unexpected end"). Now the claim itself is refused
    // (`TooLarge`), at 16 bytes claimed per input byte, rounded up to 1 KiB.
    let lying = encode("sample", &(7u64, 200_000_000u64)).unwrap();
    assert!(lying.len() < 16, "{} bytes", lying.len());
    let error = decode::<Sample>("sample", &lying).unwrap_err();
    assert!(error.is_too_large(), "{error:?}");
    assert!(
        error.to_string().contains("claim more than 1024 bytes"),
        "{error}"
    );
    assert_eq!(
        claim_limit(lying.len() as u64, VALUE_BYTES_MAX as u64),
        1024
    );

    // A snapshot stream of 23 bytes that claims 4 GiB (the stream limit is 16 GiB).
    let mut stream = Vec::new();
    encode_to_writer("sample", &(7u64, 4u64 << 30), &mut stream).unwrap();
    let error = decode_from_reader::<Sample, _>("sample", stream.as_slice(), stream.len() as u64)
        .unwrap_err();
    assert!(error.is_too_large(), "{error:?}");
    // A stream longer than it was said to be is refused too, not decoded further.
    let error = decode_from_reader::<Sample, _>("sample", stream.as_slice(), 3).unwrap_err();
    assert!(error.is_too_large(), "{error:?}");
}

#[test]
fn the_claim_limit_admits_the_densest_valid_values() {
    // A zero `u128` is one byte on the wire and claims 16: the densest claim there is.
    let dense = vec![0u128; 100_000];
    let bytes = encode("dense", &dense).unwrap();
    assert_eq!(decode::<Vec<u128>>("dense", &bytes).unwrap(), dense);
    let mut stream = Vec::new();
    encode_to_writer("dense", &dense, &mut stream).unwrap();
    let streamed: Vec<u128> =
        decode_from_reader("dense", stream.as_slice(), stream.len() as u64).unwrap();
    assert_eq!(streamed, dense);
    assert_eq!(
        decode::<u128>("one", &encode("one", &0u128).unwrap()).unwrap(),
        0
    );
    // And a large ordinary value (a 3 MB string, 300,000 small integers).
    let big = Sample {
        id: u64::MAX,
        name: "x".repeat(3 << 20),
        items: (0..300_000).collect(),
    };
    assert_eq!(
        decode::<Sample>("big", &encode("big", &big).unwrap()).unwrap(),
        big
    );
}

#[test]
fn claim_limits_are_ladder_rungs_or_the_inputs_own_limit() {
    assert_eq!(claim_limit(0, 1 << 30), 1 << 10);
    assert_eq!(claim_limit(64, 1 << 30), 1 << 10);
    assert_eq!(claim_limit(65, 1 << 30), 1 << 12);
    assert_eq!(claim_limit(1 << 20, 1 << 30), 1 << 24);
    assert_eq!(claim_limit(1 << 20, 5 << 20), 5 << 20);
    assert_eq!(claim_limit(u64::MAX, 7), 7);
    for input in [0u64, 1, 100, 4096, 1 << 30] {
        let claim = claim_limit(input, u64::MAX);
        assert!(claim >= input * CLAIM_PER_INPUT_BYTE as u64);
        assert!(claim <= (input * CLAIM_PER_INPUT_BYTE as u64 * 4).max(1 << 10));
        assert!(CLAIM_LADDER.contains(&claim));
    }
}

#[test]
fn stream_round_trips_and_detects_corruption() {
    let mut bytes = Vec::new();
    let written = encode_to_writer("sample", &sample(), &mut bytes).unwrap();
    assert_eq!(written as usize, bytes.len());
    let back: Sample = decode_from_reader("sample", bytes.as_slice(), bytes.len() as u64).unwrap();
    assert_eq!(back, sample());

    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 6;
    corrupt[last] ^= 0x10;
    assert!(
        decode_from_reader::<Sample, _>("sample", corrupt.as_slice(), corrupt.len() as u64)
            .is_err()
    );

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(
        decode_from_reader::<Sample, _>("sample", trailing.as_slice(), trailing.len() as u64)
            .is_err()
    );

    let mut versioned = bytes;
    versioned[0] = STORAGE_FORMAT_VERSION + 1;
    assert!(matches!(
        decode_from_reader::<Sample, _>("sample", versioned.as_slice(), versioned.len() as u64),
        Err(CodecError::UnknownVersion { found, .. }) if found == STORAGE_FORMAT_VERSION + 1
    ));
}

/// A `BidAccepted` event as storage format 2 (and wire version 2) wrote it, before `proxy`
/// and `raise` were appended: the same struct-variant fields without the two flags.
#[derive(serde::Serialize)]
enum KindV2 {
    _Created,
    _Edited,
    BidAccepted {
        bid_id: crate::BidId,
        bidder: crate::UserId,
        amount: crate::Amount,
    },
}

#[derive(serde::Serialize)]
struct AuctionEventV2 {
    auction_id: crate::AuctionId,
    seq: u64,
    at: crate::Timestamp,
    kind: KindV2,
}

#[derive(serde::Serialize)]
enum EventV2 {
    Auction(AuctionEventV2),
}

pub(super) fn bid_event(proxy: bool, raise: bool) -> crate::Event {
    crate::Event::Auction(crate::AuctionEvent {
        auction_id: crate::AuctionId(3),
        seq: 9,
        at: crate::Timestamp(1_800_000_000_000_000),
        kind: crate::AuctionEventKind::BidAccepted {
            bid_id: crate::BidId(4),
            bidder: crate::UserId(7),
            amount: crate::Amount(1_500),
            proxy,
            raise,
        },
    })
}

/// Format-2 bytes of a list of events (what an event record held then): a bid, then a
/// second event after it, so a decoder that read flags would misread the rest.
fn format_2_events() -> Vec<u8> {
    format_2_events_with_seqs(9, 10)
}

/// Format-2 bytes of two bid events with these seqs, built by hand from the old layout.
fn format_2_events_with_seqs(first: u64, second: u64) -> Vec<u8> {
    let v2 = |seq| {
        EventV2::Auction(AuctionEventV2 {
            auction_id: crate::AuctionId(3),
            seq,
            at: crate::Timestamp(1_800_000_000_000_000),
            kind: KindV2::BidAccepted {
                bid_id: crate::BidId(4),
                bidder: crate::UserId(7),
                amount: crate::Amount(1_500),
            },
        })
    };
    let payload =
        bincode::serde::encode_to_vec(vec![v2(first), v2(second)], bincode::config::standard())
            .unwrap();
    // A frame with a placeholder checksum, then framed as format 2 with a valid one.
    let mut bytes = vec![0u8];
    bytes.extend(payload);
    bytes.extend_from_slice(&[0; CHECKSUM_BYTES]);
    reframed(&bytes, 2)
}

#[test]
fn format_2_bid_events_decode_with_both_flags_false() {
    assert_eq!(STORAGE_FORMAT_VERSION, 4);
    let decoded: Vec<crate::Event> = decode("events", &format_2_events()).unwrap();
    let mut second = bid_event(false, false);
    if let crate::Event::Auction(event) = &mut second {
        event.seq = 10;
    }
    assert_eq!(decoded, vec![bid_event(false, false), second]);
    let streamed: Vec<crate::Event> = decode_from_reader(
        "events",
        format_2_events().as_slice(),
        format_2_events().len() as u64,
    )
    .unwrap();
    assert_eq!(streamed, decoded);
}

#[test]
fn format_3_bid_events_carry_the_flags_and_round_trip() {
    for (proxy, raise) in [(false, false), (true, false), (true, true)] {
        let event = bid_event(proxy, raise);
        let bytes = encode("event", &event).unwrap();
        // Written as format 4, whose events have format 3's layout.
        assert_eq!(bytes[0], 4);
        assert_eq!(decode::<crate::Event>("event", &bytes).unwrap(), event);
    }
    // The two flags are the only new bytes: format 3 is format 2 plus two bools.
    let v3 = encode("event", &bid_event(true, true)).unwrap();
    let v2 = format_2_events();
    let one_v2_event_len = {
        let list = &v2[1..v2.len() - CHECKSUM_BYTES];
        // The list is a length (1 byte) and two events of equal length.
        (list.len() - 1) / 2
    };
    assert_eq!(v3.len() - 1 - CHECKSUM_BYTES, one_v2_event_len + 2);
}

#[test]
fn json_carries_the_flags_and_reads_events_without_them() {
    let json = serde_json::to_value(bid_event(true, false)).unwrap();
    assert_eq!(json["Auction"]["kind"]["BidAccepted"]["proxy"], true);
    assert_eq!(json["Auction"]["kind"]["BidAccepted"]["raise"], false);
    let mut old = json.clone();
    let kind = old["Auction"]["kind"]["BidAccepted"]
        .as_object_mut()
        .unwrap();
    kind.remove("proxy");
    kind.remove("raise");
    let read: crate::Event = serde_json::from_value(old).unwrap();
    assert_eq!(read, bid_event(false, false));
}

#[test]
fn an_older_format_written_by_this_build_is_the_older_layout() {
    let event = bid_event(true, true);
    let v2 = encode_in_format(2, "event", &vec![event.clone(), event.clone()]).unwrap();
    assert_eq!(v2[0], 2);
    assert_eq!(v2, format_2_events_with_seqs(9, 9));
    assert_eq!(
        decode::<Vec<crate::Event>>("event", &v2).unwrap(),
        vec![bid_event(false, false), bid_event(false, false)]
    );
    assert!(matches!(
        encode_in_format(STORAGE_FORMAT_VERSION + 1, "event", &event),
        Err(CodecError::UnknownVersion { .. })
    ));
}

#[test]
fn a_format_3_state_decodes_at_rules_1_with_nothing_retired() {
    let mut state = crate::State::new();
    let ctx = crate::ApplyCtx {
        log_index: 1,
        timestamp: crate::Timestamp(1),
    };
    let adopt = crate::Command::AdoptRules {
        version: crate::RulesVersion::V2,
    };
    assert!(state.apply(ctx, &adopt).reply.is_accepted());
    let v4 = encode("state", &state).unwrap();
    // Format 4 appended three fields to `State`, one byte each here: the rules version (2)
    // and two empty collections. Without them, the bytes are the same state in format 3.
    assert_eq!(
        v4[v4.len() - CHECKSUM_BYTES - 3..v4.len() - CHECKSUM_BYTES],
        [2, 0, 0]
    );
    let mut v3 = v4[..v4.len() - CHECKSUM_BYTES - 3].to_vec();
    v3.extend_from_slice(&[0; CHECKSUM_BYTES]);
    let v3 = reframed(&v3, 3);
    let decoded: crate::State = decode("state", &v3).unwrap();
    assert_eq!(decoded.rules(), crate::RulesVersion::FIRST);
    assert_eq!(decoded.last_applied(), state.last_applied());
    decoded.validate().unwrap();
    // Read as format 4, the same bytes lack fields: corrupt, not silently different.
    assert!(decode::<crate::State>("state", &reframed(&v3, 4)).is_err());
}
