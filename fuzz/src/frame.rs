//! Input shaping and the framing contract shared by the storage and wire codecs.
//!
//! A framed value is `[version: 1][bincode payload][checksum: 4]`, the checksum being the
//! first 4 bytes of BLAKE3 over the version and the payload. Random bytes almost never carry
//! a right checksum, so a fuzzer fed raw frames would only ever explore the checksum test.
//! The targets therefore read their input as
//!
//! ```text
//!   [selector][rest]
//!     selector & 0x80 == 0:  rest = [version][payload]      → framed with a right checksum
//!     selector & 0x80 != 0:  rest = the frame as received   → checksum and all, as sent
//! ```
//!
//! and `selector & 0x7f` picks the type to decode. The checksum is no secret (issue 15), so
//! a hostile peer can frame anything correctly: the fixed-up inputs are what it can send.

use martelo_engine::codec::{self, CodecError, wire};

/// Length of the frame's checksum.
pub const CHECKSUM_BYTES: usize = 4;

/// A fuzz input split into its selector and the bytes to decode.
#[derive(Debug)]
pub struct Shaped {
    /// Which type to decode (the selector without its framing bit).
    pub kind: u8,
    /// Whether the bytes are the input as received (the framing bit was set).
    pub raw: bool,
    pub bytes: Vec<u8>,
}

/// Splits `data` as the module doc says; `None` for an empty input.
pub fn shape(data: &[u8]) -> Option<Shaped> {
    let (&selector, rest) = data.split_first()?;
    let raw = selector & 0x80 != 0;
    let bytes = if raw || rest.is_empty() {
        rest.to_vec()
    } else {
        framed(rest)
    };
    Some(Shaped {
        kind: selector & 0x7f,
        raw,
        bytes,
    })
}

/// `version_and_payload` followed by its right checksum.
pub fn framed(version_and_payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(version_and_payload.len() + CHECKSUM_BYTES);
    bytes.extend_from_slice(version_and_payload);
    bytes.extend_from_slice(&blake3::hash(version_and_payload).as_bytes()[..CHECKSUM_BYTES]);
    bytes
}

/// The fuzz input that [`shape`] turns into `frame` (a frame with a right checksum), with
/// `kind` as its selector: what the seed generator writes.
pub fn unshaped(kind: u8, frame: &[u8]) -> Vec<u8> {
    assert!(kind < 0x80, "the selector's top bit is the framing bit");
    let mut input = vec![kind];
    input.extend_from_slice(&frame[..frame.len() - CHECKSUM_BYTES]);
    input
}

/// The versions one format reads.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    pub name: &'static str,
    pub oldest: u8,
    pub newest: u8,
}

/// What `codec::decode` and `codec::decode_from_reader` read.
pub const STORAGE: Format = Format {
    name: "storage",
    oldest: codec::STORAGE_FORMAT_VERSION_OLDEST,
    newest: codec::STORAGE_FORMAT_VERSION,
};

/// What `wire::decode` and `wire::decode_peer` read.
pub const WIRE: Format = Format {
    name: "wire",
    oldest: wire::WIRE_VERSION_OLDEST,
    newest: wire::WIRE_VERSION,
};

/// What the frame alone decides about an input, before any payload is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Longer than the decoder's limit: `TooLarge`.
    TooLarge,
    /// Shorter than a version byte and a checksum: `Truncated`.
    Truncated,
    /// A version the format does not read: `UnknownVersion` naming it.
    UnknownVersion(u8),
    /// A wrong checksum: `Corrupt`, "checksum mismatch".
    ChecksumMismatch,
    /// The payload decoder decides.
    Payload,
}

/// The verdict of the framing rules for `bytes` decoded with `limit` in `format`, checked in
/// the codec's order: size, length, version (before the checksum, so a newer build's value
/// says "unknown version"), checksum.
pub fn verdict(bytes: &[u8], limit: usize, format: Format) -> Verdict {
    if bytes.len() > limit {
        return Verdict::TooLarge;
    }
    if bytes.len() < 1 + CHECKSUM_BYTES {
        return Verdict::Truncated;
    }
    if !(format.oldest..=format.newest).contains(&bytes[0]) {
        return Verdict::UnknownVersion(bytes[0]);
    }
    let (framed, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    if blake3::hash(framed).as_bytes()[..CHECKSUM_BYTES] != *checksum {
        return Verdict::ChecksumMismatch;
    }
    Verdict::Payload
}

/// Asserts that a decode's result of `bytes` (named `what`, limit `limit`, in `format`) is
/// the one its frame calls for: the typed error of a bad frame, and for a good frame a
/// value or an error about the payload (`Corrupt`, or `TooLarge` for a claim over the
/// limit), never a framing error. Every error's text stays small.
pub fn assert_framing<T>(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
    format: Format,
    result: &Result<T, CodecError>,
) {
    let verdict = verdict(bytes, limit, format);
    if let Err(error) = result {
        crate::assert_bounded_message(what, &error.to_string(), bytes.len());
    }
    match (verdict, result) {
        (Verdict::TooLarge, Err(CodecError::TooLarge { what: w, limit: l, .. })) => {
            assert_eq!((*w, *l), (what, limit));
        }
        (Verdict::Truncated, Err(CodecError::Truncated { what: w, len })) => {
            assert_eq!((*w, *len), (what, bytes.len()));
        }
        (
            Verdict::UnknownVersion(version),
            Err(CodecError::UnknownVersion {
                what: w,
                format: f,
                found,
                oldest,
                newest,
            }),
        ) => {
            assert_eq!(
                (*w, *f, *found, *oldest, *newest),
                (what, format.name, version, format.oldest, format.newest)
            );
        }
        (Verdict::ChecksumMismatch, Err(CodecError::Corrupt { what: w, reason })) => {
            assert_eq!((*w, reason.as_str()), (what, "checksum mismatch"));
        }
        (Verdict::Payload, Ok(_)) => {}
        (Verdict::Payload, Err(CodecError::Corrupt { what: w, reason })) => {
            assert_eq!(*w, what);
            assert_ne!(reason, "checksum mismatch", "a right checksum was refused");
        }
        (Verdict::Payload, Err(CodecError::TooLarge { what: w, limit: l, .. })) => {
            assert_eq!((*w, *l), (what, limit));
        }
        (verdict, Err(error)) => {
            panic!("{what}: the frame calls for {verdict:?}, the decoder said {error:?}")
        }
        (verdict, Ok(_)) => panic!("{what}: the frame calls for {verdict:?}, yet it decoded"),
    }
}
