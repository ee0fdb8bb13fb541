//! The one place that turns stored values into bytes and back.
//!
//! Every stored value is framed as
//!
//! ```text
//!   [format version: 1 byte][bincode 2 payload][checksum: 4 bytes]
//! ```
//!
//! where the checksum is the first four bytes of BLAKE3 over the version byte and the payload.
//! The version byte lets the encoding evolve (a new version is added next to the old one and
//! both are read); the checksum turns a flipped bit into a [`CodecError::Corrupt`] instead of
//! silently different data. bincode is marked unmaintained (RUSTSEC-2025-0141), so no other
//! module names it: swapping it means changing this file and adding a format version.
//!
//! Snapshots use the same framing as a stream ([`encode_to_writer`], [`decode_from_reader`]),
//! so they never have to sit in memory as one buffer.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format written by this build. Readers accept exactly the versions they know:
/// `FORMAT_VERSION_OLDEST..=FORMAT_VERSION`.
///
/// - 1: the first format.
/// - 2: `State` gained its last field, `meta` (the meta group's state). Every other value
///   has the same bytes in both formats; a format-1 `State` decodes with an empty meta state
///   (`meta::compat`). Enums gained variants at their ends (`Command::Meta`, `Event::Meta`,
///   `Accepted::Meta`, `RejectCode::Meta`), which leaves old values' bytes valid.
pub const FORMAT_VERSION: u8 = 2;

/// The oldest format this build still reads.
pub const FORMAT_VERSION_OLDEST: u8 = 1;
const _: () = assert!(FORMAT_VERSION_OLDEST <= FORMAT_VERSION);

/// Whether this build can decode values framed with `version`. A peer or client on another
/// version may still send a value this build reads.
pub fn can_read(version: u8) -> bool {
    (FORMAT_VERSION_OLDEST..=FORMAT_VERSION).contains(&version)
}

thread_local! {
    /// The format of the value this thread is decoding, for the few types whose layout
    /// differs between formats (see `meta::compat`). serde gives a `Deserialize` impl no
    /// context, so the codec leaves it here for the duration of one decode.
    static DECODING_FORMAT: std::cell::Cell<u8> = const { std::cell::Cell::new(FORMAT_VERSION) };
}

/// The format being decoded on this thread: the frame's version inside [`decode`] and
/// [`decode_from_reader`], the current format anywhere else (serde_json, tests).
pub(crate) fn decoding_format() -> u8 {
    DECODING_FORMAT.with(std::cell::Cell::get)
}

/// Sets [`decoding_format`] while it lives, and restores the previous value when dropped,
/// also when decoding panics.
struct DecodingFormat {
    previous: u8,
}

impl DecodingFormat {
    fn enter(version: u8) -> DecodingFormat {
        let previous = DECODING_FORMAT.with(|format| format.replace(version));
        DecodingFormat { previous }
    }
}

impl Drop for DecodingFormat {
    fn drop(&mut self) {
        DECODING_FORMAT.with(|format| format.set(self.previous));
    }
}

/// Largest single stored value (log entry, vote, checkpoint record) that decoding accepts. A
/// corrupt length prefix then fails with an error instead of asking for terabytes.
pub const VALUE_BYTES_MAX: usize = 256 << 20;

/// Largest snapshot stream that decoding accepts.
pub const SNAPSHOT_BYTES_MAX: usize = 16 << 30;

const CHECKSUM_BYTES: usize = 4;

/// Why bytes could not become a value (or a value could not become bytes).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("{what}: stored value is empty or shorter than its frame ({len} bytes)")]
    Truncated { what: &'static str, len: usize },
    #[error(
        "{what}: unknown format version {found} (this build reads versions \
         {FORMAT_VERSION_OLDEST} to {supported})"
    )]
    UnknownVersion {
        what: &'static str,
        found: u8,
        supported: u8,
    },
    #[error("{what}: corrupt value: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("{what}: could not encode: {reason}")]
    Encode { what: &'static str, reason: String },
}

impl From<CodecError> for io::Error {
    fn from(error: CodecError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<VALUE_BYTES_MAX>()
}

fn stream_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<SNAPSHOT_BYTES_MAX>()
}

fn checksum(hasher: &blake3::Hasher) -> [u8; CHECKSUM_BYTES] {
    let digest = hasher.finalize();
    let mut out = [0u8; CHECKSUM_BYTES];
    out.copy_from_slice(&digest.as_bytes()[..CHECKSUM_BYTES]);
    out
}

/// Encodes `value` into one framed buffer.
pub fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = Vec::with_capacity(64);
    bytes.push(FORMAT_VERSION);
    bincode::serde::encode_into_std_write(value, &mut bytes, config()).map_err(|error| {
        CodecError::Encode {
            what,
            reason: error.to_string(),
        }
    })?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes);
    bytes.extend_from_slice(&checksum(&hasher));
    Ok(bytes)
}

/// Decodes one framed buffer. Every byte must belong to the value.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() < 1 + CHECKSUM_BYTES {
        return Err(CodecError::Truncated {
            what,
            len: bytes.len(),
        });
    }
    let (framed, stored_checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    // The version is checked before the checksum: a value written by a newer build must say
    // "unknown version", not "corrupt", even if that build changed the checksum too.
    check_version(what, framed[0])?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(framed);
    if checksum(&hasher) != stored_checksum {
        return Err(CodecError::Corrupt {
            what,
            reason: "checksum mismatch".into(),
        });
    }
    let payload = &framed[1..];
    let _format = DecodingFormat::enter(framed[0]);
    let (value, read) = bincode::serde::decode_from_slice(payload, config()).map_err(|error| {
        CodecError::Corrupt {
            what,
            reason: error.to_string(),
        }
    })?;
    if read != payload.len() {
        return Err(CodecError::Corrupt {
            what,
            reason: format!("{} trailing bytes after the value", payload.len() - read),
        });
    }
    Ok(value)
}

fn check_version(what: &'static str, found: u8) -> Result<(), CodecError> {
    if can_read(found) {
        Ok(())
    } else {
        Err(CodecError::UnknownVersion {
            what,
            found,
            supported: FORMAT_VERSION,
        })
    }
}

/// Hashes everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

/// Streams `value`, framed, into `writer`; returns the bytes written. Used for snapshots.
pub fn encode_to_writer<T: Serialize + ?Sized, W: Write>(
    what: &'static str,
    value: &T,
    writer: W,
) -> Result<u64, CodecError> {
    let encode_error = |reason: String| CodecError::Encode { what, reason };
    let mut writer = HashingWriter {
        inner: writer,
        hasher: blake3::Hasher::new(),
    };
    writer
        .write_all(&[FORMAT_VERSION])
        .map_err(|e| encode_error(e.to_string()))?;
    let payload = bincode::serde::encode_into_std_write(value, &mut writer, stream_config())
        .map_err(|e| encode_error(e.to_string()))?;
    let sum = checksum(&writer.hasher);
    writer
        .inner
        .write_all(&sum)
        .and_then(|()| writer.inner.flush())
        .map_err(|e| encode_error(e.to_string()))?;
    Ok((1 + payload + CHECKSUM_BYTES) as u64)
}

/// Reads one framed value from `reader`, which must end right after it. Used for snapshots.
pub fn decode_from_reader<T: DeserializeOwned, R: Read>(
    what: &'static str,
    reader: R,
) -> Result<T, CodecError> {
    let corrupt = |reason: String| CodecError::Corrupt { what, reason };
    // Buffer below the hashing layer so bincode's many tiny reads stay cheap, and so the
    // hasher sees exactly the bytes bincode consumed (not the read-ahead).
    let mut reader = HashingReader {
        inner: io::BufReader::with_capacity(64 << 10, reader),
        hasher: blake3::Hasher::new(),
    };
    let mut version = [0u8; 1];
    match reader.read_exact(&mut version) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(CodecError::Truncated { what, len: 0 });
        }
        Err(error) => return Err(corrupt(error.to_string())),
    }
    check_version(what, version[0])?;
    let format = DecodingFormat::enter(version[0]);
    let value = bincode::serde::decode_from_std_read(&mut reader, stream_config())
        .map_err(|e| corrupt(e.to_string()))?;
    drop(format);
    let expected = checksum(&reader.hasher);
    let mut stored = [0u8; CHECKSUM_BYTES];
    reader
        .inner
        .read_exact(&mut stored)
        .map_err(|e| corrupt(format!("missing checksum: {e}")))?;
    if stored != expected {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut extra = [0u8; 1];
    match reader.inner.read(&mut extra) {
        Ok(0) => Ok(value),
        Ok(_) => Err(corrupt("trailing bytes after the value".into())),
        Err(error) => Err(corrupt(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn value_round_trips() {
        let bytes = encode("sample", &sample()).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
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
                found: 99,
                supported: FORMAT_VERSION
            }
        );
    }

    /// Reframes a current value as `version`, with a valid checksum.
    fn reframed(bytes: &[u8], version: u8) -> Vec<u8> {
        let mut framed = bytes[..bytes.len() - CHECKSUM_BYTES].to_vec();
        framed[0] = version;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&framed);
        framed.extend_from_slice(&checksum(&hasher));
        framed
    }

    #[test]
    fn every_format_from_the_oldest_to_the_current_is_read_and_no_other() {
        assert!(!can_read(FORMAT_VERSION_OLDEST - 1));
        assert!(!can_read(FORMAT_VERSION + 1));
        let bytes = encode("sample", &sample()).unwrap();
        for version in FORMAT_VERSION_OLDEST..=FORMAT_VERSION {
            assert!(can_read(version));
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
        let old = reframed(&bytes, FORMAT_VERSION_OLDEST);
        let format: Format = decode("format", &old).unwrap();
        assert_eq!(format, Format(FORMAT_VERSION_OLDEST));
        let format: Format = decode_from_reader("format", old.as_slice()).unwrap();
        assert_eq!(format, Format(FORMAT_VERSION_OLDEST));
        assert_eq!(decoding_format(), FORMAT_VERSION, "restored after decoding");
        assert_eq!(
            decode::<Format>("format", &bytes).unwrap(),
            Format(FORMAT_VERSION)
        );
        // Restored after a failed decode too.
        assert!(decode::<(Format, u64)>("format", &old).is_err());
        assert_eq!(decoding_format(), FORMAT_VERSION);
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
        let mut framed = vec![FORMAT_VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let mut hasher = blake3::Hasher::new();
        hasher.update(&framed);
        framed.extend_from_slice(&checksum(&hasher));
        assert!(matches!(
            decode::<Sample>("sample", &framed),
            Err(CodecError::Corrupt { .. })
        ));
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
        versioned[0] = FORMAT_VERSION + 1;
        assert!(matches!(
            decode_from_reader::<Sample, _>("sample", versioned.as_slice()),
            Err(CodecError::UnknownVersion { found, .. }) if found == FORMAT_VERSION + 1
        ));
    }
}
