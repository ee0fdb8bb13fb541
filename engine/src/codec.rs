//! The one place that turns values into bytes and back: on disk (the storage format) and
//! between processes (the wire format, [`wire`]).
//!
//! Every value is framed as
//!
//! ```text
//!   [version: 1 byte][bincode 2 payload][checksum: 4 bytes]
//! ```
//!
//! where the checksum is the first four bytes of BLAKE3 over the version byte and the payload.
//! The checksum turns a flipped bit into a [`CodecError::Corrupt`] instead of silently
//! different data. bincode is marked unmaintained (RUSTSEC-2025-0141), so no other module names
//! it: swapping it means changing this module and adding a version of both formats.
//!
//! Two version numbers, with separate meanings:
//!
//! - the **storage format** ([`STORAGE_FORMAT_VERSION`]): what raft-store keeps on disk (log
//!   entries, votes, checkpoints, event records, snapshots). Read through [`decode`] and
//!   [`decode_from_reader`], written by [`encode`] and [`encode_to_writer`], in the range
//!   [`STORAGE_FORMAT_VERSION_OLDEST`]`..=`[`STORAGE_FORMAT_VERSION`]. Only these decoders see
//!   `State` and storage records, and only they use the large limits [`VALUE_BYTES_MAX`] and
//!   [`SNAPSHOT_BYTES_MAX`];
//! - the **wire format** ([`wire::WIRE_VERSION`]): what a message's `codec_version` names.
//!   Raft messages between peers, and the engine's client-visible types ([`wire::ClientPayload`]:
//!   `Request`, `Reply`, `Event`, the views) between clients and nodes. Every wire decode takes
//!   the limit of its own input ([`wire::decode`], [`wire::decode_peer`]).
//!
//! A version changes when a layout does; the compatibility rule for both (read a version one
//! release before writing it, enums grow only at their end, fields only appended) is written
//! up in `docs/ARCHITECTURE.md`, "Formats and compatibility". Snapshots travel between peers
//! as storage-format bytes (chunks of the stream, never decoded on the way), so a new storage
//! format follows the same two-release rule.
//!
//! Snapshots are framed as a stream ([`encode_to_writer`], [`decode_from_reader`]), so they
//! never have to sit in memory as one buffer. What does not live here: which limit each
//! network input has (`martelo_proto::limits`), and the keys values are stored under
//! (`martelo_raft_store::keys`).

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod compat;
pub mod wire;

/// The storage format written by this build. Readers accept exactly the formats they know:
/// `STORAGE_FORMAT_VERSION_OLDEST..=STORAGE_FORMAT_VERSION`.
///
/// - 1: the first format.
/// - 2: `State` gained its last field, `meta` (the meta group's state). Every other value
///   has the same bytes in both formats; a format-1 `State` decodes with an empty meta state
///   (`meta::compat`). Enums gained variants at their ends (`Command::Meta`, `Event::Meta`,
///   `Accepted::Meta`, `RejectCode::Meta`), which leaves old values' bytes valid.
/// - 3: fields appended for the Postgres sink: `AuctionEventKind::BidAccepted` gained `proxy`
///   and `raise`, and raft-store's stored event record gained `rejections` and
///   `traceparent` (it was the bare list of events before). Format-1/2 values decode with
///   those fields `false` / empty ([`compat`]); every other value has the same bytes.
///   Unlike format 2, this build writes the format it introduces (the sink needs the fields
///   now): a format-2 build cannot read a format-3 event record or snapshot, so an upgrade
///   from it is not rolling, and no rollback after format-3 values are written.
/// - 4: `State` gained its last fields, the rules version and the retired auction ids
///   (`codec::compat::appended_in_format_4`); `Command` gained `AdoptRules`, `Action` gained
///   `RemoveBidder` and `Accepted` gained `RulesAdopted`, at their ends. A format-1-3 state
///   decodes at rules version 1 with nothing retired; every other value has the same bytes.
///   This build writes format 4 (a snapshot carries the rules version), so, as with format 3,
///   the upgrade from a format-3 build is not rolling.
pub const STORAGE_FORMAT_VERSION: u8 = 4;

/// The oldest storage format this build still reads.
pub const STORAGE_FORMAT_VERSION_OLDEST: u8 = 1;
const _: () = assert!(STORAGE_FORMAT_VERSION_OLDEST <= STORAGE_FORMAT_VERSION);

/// Whether this build can decode stored values framed with `version`.
pub fn can_read_storage_format(version: u8) -> bool {
    (STORAGE_FORMAT_VERSION_OLDEST..=STORAGE_FORMAT_VERSION).contains(&version)
}

thread_local! {
    /// The storage format of the value this thread is decoding, for the few types whose
    /// layout differs between formats (see `meta::compat`). serde gives a `Deserialize` impl
    /// no context, so the codec leaves it here for the duration of one decode.
    static DECODING_FORMAT: std::cell::Cell<u8> =
        const { std::cell::Cell::new(STORAGE_FORMAT_VERSION) };
}

/// The storage format being decoded on this thread: the frame's version inside [`decode`]
/// and [`decode_from_reader`], the current format anywhere else (serde_json, tests, wire
/// decoding: no wire type holds a `State`).
pub(crate) fn decoding_format() -> u8 {
    DECODING_FORMAT.with(std::cell::Cell::get)
}

thread_local! {
    /// Whether the value this thread is encoding or decoding has the fields appended in
    /// storage format 3 and wire version 3 ([`compat`]). True outside the codec.
    static LAYOUT_APPENDED: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// [`LAYOUT_APPENDED`] now.
fn layout_has_appended_fields() -> bool {
    LAYOUT_APPENDED.with(std::cell::Cell::get)
}

/// Sets [`LAYOUT_APPENDED`] for one framed encode or decode, and restores the previous
/// value when dropped, also when serde panics.
struct LayoutGuard {
    previous: bool,
}

impl LayoutGuard {
    fn enter(appended: bool) -> LayoutGuard {
        let previous = LAYOUT_APPENDED.with(|layout| layout.replace(appended));
        LayoutGuard { previous }
    }
}

impl Drop for LayoutGuard {
    fn drop(&mut self) {
        LAYOUT_APPENDED.with(|layout| layout.set(self.previous));
    }
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
/// corrupt length prefix then fails with an error instead of asking for terabytes. Storage
/// only: input from the network is decoded with its own, much smaller limit ([`wire`]).
pub const VALUE_BYTES_MAX: usize = 256 << 20;

/// Largest snapshot stream that decoding accepts.
pub const SNAPSHOT_BYTES_MAX: usize = 16 << 30;

const CHECKSUM_BYTES: usize = 4;

/// Why bytes could not become a value (or a value could not become bytes).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("{what}: value is empty or shorter than its frame ({len} bytes)")]
    Truncated { what: &'static str, len: usize },
    #[error(
        "{what}: unknown format version {found} ({format}: this build reads versions {oldest} \
         to {newest})"
    )]
    UnknownVersion {
        what: &'static str,
        /// `"storage"` or `"wire"`.
        format: &'static str,
        found: u8,
        oldest: u8,
        newest: u8,
    },
    /// The input is longer than its decode limit, or decoding it would claim more than the
    /// limit (a length prefix larger than the input, or a value too big for this input).
    #[error("{what}: over its decode limit of {limit} bytes: {reason}")]
    TooLarge {
        what: &'static str,
        limit: usize,
        reason: String,
    },
    #[error("{what}: corrupt value: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("{what}: could not encode: {reason}")]
    Encode { what: &'static str, reason: String },
}

impl CodecError {
    /// Whether the input was refused for its size, not its content: the caller answers
    /// `payload_too_large` rather than `invalid_argument`.
    pub fn is_too_large(&self) -> bool {
        matches!(self, CodecError::TooLarge { .. })
    }
}

impl From<CodecError> for io::Error {
    fn from(error: CodecError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

fn stream_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<SNAPSHOT_BYTES_MAX>()
}

/// What decoding one byte of input may claim, at most, in a valid value: bincode counts
/// every primitive at its in-memory width, and the widest (a `u128`, the request-id hashes)
/// takes one byte on the wire when small. So a valid `n`-byte input claims at most
/// `CLAIM_PER_INPUT_BYTE * n` bytes, and anything claiming more is a lie (a length prefix
/// larger than what follows it), refused before the allocation it asks for.
pub const CLAIM_PER_INPUT_BYTE: usize = 16;

/// The claim limit for an input of `input_bytes` bytes whose own limit is `limit`: the
/// smallest of [`CLAIM_LADDER`]'s rungs at or above `CLAIM_PER_INPUT_BYTE * input_bytes`,
/// or `limit` when that is smaller. What a decode allocates is bounded by this, so a 16-byte
/// input can no longer ask for 200 MB: at most a few KiB.
pub fn claim_limit(input_bytes: u64, limit: u64) -> u64 {
    let wanted = input_bytes.saturating_mul(CLAIM_PER_INPUT_BYTE as u64);
    CLAIM_LADDER
        .iter()
        .copied()
        .find(|rung| *rung >= wanted)
        .unwrap_or(u64::MAX)
        .min(limit)
}

/// The claim limits decoding can use (bincode takes its limit as a constant): powers of 4
/// from 1 KiB to 64 GiB, so the chosen one is at most 4 times what the input needs.
const CLAIM_LADDER: [u64; 14] = [
    1 << 10,
    1 << 12,
    1 << 14,
    1 << 16,
    1 << 18,
    1 << 20,
    1 << 22,
    1 << 24,
    1 << 26,
    1 << 28,
    1 << 30,
    1 << 32,
    1 << 34,
    1 << 36,
];

/// Runs `$decode` with `$config` bound to bincode's standard configuration limited to
/// `$claim` bytes claimed: one of [`CLAIM_LADDER`]'s rungs (bincode takes its limit as a
/// constant, hence one branch per rung), else `$fallback` (the input's own limit, which
/// [`claim_limit`] returns when no smaller rung fits).
macro_rules! with_claim_limit {
    ($claim:expr, $fallback:expr, |$config:ident| $decode:expr) => {{
        let claim: u64 = $claim;
        with_claim_limit!(@rungs claim, $fallback, $config, $decode;
            10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36)
    }};
    (@rungs $claim:ident, $fallback:expr, $config:ident, $decode:expr; $($shift:literal),+) => {{
        $(
            if $claim == 1u64 << $shift {
                let $config = bincode::config::standard().with_limit::<{ 1usize << $shift }>();
                $decode
            } else
        )+
        {
            let $config = $fallback;
            $decode
        }
    }};
}

fn checksum(hasher: &blake3::Hasher) -> [u8; CHECKSUM_BYTES] {
    let digest = hasher.finalize();
    let mut out = [0u8; CHECKSUM_BYTES];
    out.copy_from_slice(&digest.as_bytes()[..CHECKSUM_BYTES]);
    out
}

/// The versions one format reads, for [`decode_framed`] and its errors.
#[derive(Clone, Copy, Debug)]
struct Readable {
    format: &'static str,
    oldest: u8,
    newest: u8,
    /// Whether the payload may hold a `State`, whose layout depends on the version
    /// ([`decoding_format`]).
    sets_decoding_format: bool,
    /// The first version of this format with the fields [`compat`] appends.
    appended_since: u8,
}

const STORAGE: Readable = Readable {
    format: "storage",
    oldest: STORAGE_FORMAT_VERSION_OLDEST,
    newest: STORAGE_FORMAT_VERSION,
    sets_decoding_format: true,
    appended_since: compat::APPENDED_SINCE_STORAGE_FORMAT,
};

impl Readable {
    /// Whether values of `version` of this format have the appended fields.
    fn has_appended_fields(self, version: u8) -> bool {
        version >= self.appended_since
    }

    fn check(self, what: &'static str, found: u8) -> Result<(), CodecError> {
        if (self.oldest..=self.newest).contains(&found) {
            Ok(())
        } else {
            Err(CodecError::UnknownVersion {
                what,
                format: self.format,
                found,
                oldest: self.oldest,
                newest: self.newest,
            })
        }
    }
}

/// Frames `value` with `version` of `format`. The layout is bincode's standard configuration
/// in every version so far; the fields appended in a version are left out of older ones
/// ([`compat`]).
fn encode_framed<T: Serialize + ?Sized>(
    version: u8,
    format: Readable,
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, CodecError> {
    let _layout = LayoutGuard::enter(format.has_appended_fields(version));
    let mut bytes = Vec::with_capacity(64);
    bytes.push(version);
    bincode::serde::encode_into_std_write(value, &mut bytes, bincode::config::standard()).map_err(
        |error| CodecError::Encode {
            what,
            reason: error.to_string(),
        },
    )?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes);
    bytes.extend_from_slice(&checksum(&hasher));
    Ok(bytes)
}

/// Decodes one framed buffer of at most `BYTES_MAX` bytes in a version `readable` accepts.
/// Every byte must belong to the value.
///
/// `BYTES_MAX` bounds the input twice: its length is checked before anything else, and
/// bincode's limit counts what decoding claims against it (every primitive at its in-memory
/// width, and every string's or buffer's length *before* allocating it), so a lying length
/// prefix fails with [`CodecError::TooLarge`] instead of allocating. Because a one-byte
/// integer on the wire claims its full width, a limit must leave room above the largest
/// valid input's encoded size.
fn decode_framed<T: DeserializeOwned, const BYTES_MAX: usize>(
    what: &'static str,
    bytes: &[u8],
    readable: Readable,
) -> Result<T, CodecError> {
    if bytes.len() > BYTES_MAX {
        return Err(CodecError::TooLarge {
            what,
            limit: BYTES_MAX,
            reason: format!("the input is {} bytes", bytes.len()),
        });
    }
    if bytes.len() < 1 + CHECKSUM_BYTES {
        return Err(CodecError::Truncated {
            what,
            len: bytes.len(),
        });
    }
    let (framed, stored_checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    // The version is checked before the checksum: a value written by a newer build must say
    // "unknown version", not "corrupt", even if that build changed the checksum too.
    let version = framed[0];
    readable.check(what, version)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(framed);
    if checksum(&hasher) != stored_checksum {
        return Err(CodecError::Corrupt {
            what,
            reason: "checksum mismatch".into(),
        });
    }
    let payload = &framed[1..];
    let _format = readable
        .sets_decoding_format
        .then(|| DecodingFormat::enter(version));
    let _layout = LayoutGuard::enter(readable.has_appended_fields(version));
    let claim = claim_limit(bytes.len() as u64, BYTES_MAX as u64);
    let decoded = with_claim_limit!(
        claim,
        bincode::config::standard().with_limit::<BYTES_MAX>(),
        |config| bincode::serde::decode_from_slice(payload, config)
    );
    let (value, read) = decoded.map_err(|error| match error {
        bincode::error::DecodeError::LimitExceeded => CodecError::TooLarge {
            what,
            limit: BYTES_MAX,
            reason: format!(
                "decoding the {}-byte input would claim more than {claim} bytes (a \
                     length inside it is larger than the input, or the value is too big \
                     for this input)",
                bytes.len()
            ),
        },
        error => CodecError::Corrupt {
            what,
            reason: error.to_string(),
        },
    })?;
    if read != payload.len() {
        return Err(CodecError::Corrupt {
            what,
            reason: format!("{} trailing bytes after the value", payload.len() - read),
        });
    }
    Ok(value)
}

/// Encodes a stored value into one framed buffer, in [`STORAGE_FORMAT_VERSION`].
pub fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    encode_framed(STORAGE_FORMAT_VERSION, STORAGE, what, value)
}

/// Encodes a stored value in an older storage format this build reads (the fields appended
/// since are left out, [`compat`]): what a build of that format wrote. For compatibility
/// tests, and for a release that must keep writing the older format while its peers learn
/// the newer one (docs/ARCHITECTURE.md, "Formats and compatibility"). Not for `State` of
/// format 1, whose `meta` field has no such switch.
pub fn encode_in_format<T: Serialize + ?Sized>(
    version: u8,
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, CodecError> {
    STORAGE.check(what, version)?;
    encode_framed(version, STORAGE, what, value)
}

/// Decodes one stored value, in any storage format this build reads, of at most
/// [`VALUE_BYTES_MAX`]. Not for bytes from the network: those go through [`wire`].
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    decode_framed::<T, VALUE_BYTES_MAX>(what, bytes, STORAGE)
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

/// Streams `value`, framed in [`STORAGE_FORMAT_VERSION`], into `writer`; returns the bytes
/// written. Used for snapshots.
pub fn encode_to_writer<T: Serialize + ?Sized, W: Write>(
    what: &'static str,
    value: &T,
    writer: W,
) -> Result<u64, CodecError> {
    let encode_error = |reason: String| CodecError::Encode { what, reason };
    let _layout = LayoutGuard::enter(STORAGE.has_appended_fields(STORAGE_FORMAT_VERSION));
    let mut writer = HashingWriter {
        inner: writer,
        hasher: blake3::Hasher::new(),
    };
    writer
        .write_all(&[STORAGE_FORMAT_VERSION])
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

/// Reads one framed stored value from `reader`, which holds `total_bytes` bytes (at most
/// [`SNAPSHOT_BYTES_MAX`]) and must end right after it. Used for snapshots (including ones
/// received from a peer: their chunks are stored first, each within
/// `martelo_proto::SNAPSHOT_CHUNK_BYTES_MAX`). What decoding may claim is bounded by
/// `total_bytes` ([`claim_limit`]), so a short stream that claims a huge length is refused
/// before that allocation.
pub fn decode_from_reader<T: DeserializeOwned, R: Read>(
    what: &'static str,
    reader: R,
    total_bytes: u64,
) -> Result<T, CodecError> {
    let corrupt = |reason: String| CodecError::Corrupt { what, reason };
    if total_bytes > SNAPSHOT_BYTES_MAX as u64 {
        return Err(CodecError::TooLarge {
            what,
            limit: SNAPSHOT_BYTES_MAX,
            reason: format!("the stream is {total_bytes} bytes"),
        });
    }
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
    STORAGE.check(what, version[0])?;
    let format = DecodingFormat::enter(version[0]);
    let layout = LayoutGuard::enter(STORAGE.has_appended_fields(version[0]));
    let claim = claim_limit(total_bytes, SNAPSHOT_BYTES_MAX as u64);
    let decoded = with_claim_limit!(
        claim,
        bincode::config::standard().with_limit::<SNAPSHOT_BYTES_MAX>(),
        |config| bincode::serde::decode_from_std_read(&mut reader, config)
    );
    let value = decoded.map_err(|error| match error {
        bincode::error::DecodeError::LimitExceeded => CodecError::TooLarge {
            what,
            limit: SNAPSHOT_BYTES_MAX,
            reason: format!(
                "decoding the {total_bytes}-byte stream would claim more than {claim} bytes \
                 (a length inside it is larger than the stream)"
            ),
        },
        error => corrupt(error.to_string()),
    })?;
    drop(layout);
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
mod tests;
