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
        let streamed: Sample = decode_from_reader("sample", old.as_slice()).unwrap();
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
    let format: Format = decode_from_reader("format", old.as_slice()).unwrap();
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
fn stream_round_trips_and_detects_corruption() {
    let mut bytes = Vec::new();
    let written = encode_to_writer("sample", &sample(), &mut bytes).unwrap();
    assert_eq!(written as usize, bytes.len());
    let back: Sample = decode_from_reader("sample", bytes.as_slice()).unwrap();
    assert_eq!(back, sample());

    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 6;
    corrupt[last] ^= 0x10;
    assert!(decode_from_reader::<Sample, _>("sample", corrupt.as_slice()).is_err());

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(decode_from_reader::<Sample, _>("sample", trailing.as_slice()).is_err());

    let mut versioned = bytes;
    versioned[0] = STORAGE_FORMAT_VERSION + 1;
    assert!(matches!(
        decode_from_reader::<Sample, _>("sample", versioned.as_slice()),
        Err(CodecError::UnknownVersion { found, .. }) if found == STORAGE_FORMAT_VERSION + 1
    ));
}
