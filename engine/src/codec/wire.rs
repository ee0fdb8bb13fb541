//! The wire format: values that travel between processes, framed like stored values (see
//! [`crate::codec`]) and versioned by a message's `codec_version`.
//!
//! Two kinds of payload travel:
//!
//! - **client payloads** ([`ClientPayload`]): the engine's public types, `Request`,
//!   `MetaCommand` and `MetaAction` from a client, `Reply`, `Event`, `AuctionView`,
//!   `AuctionSummary`, `meta::Credentials` and `meta::UserPage` to it. [`encode`] and
//!   [`decode`] take nothing else, so `State`, `Auction`, `Command` (with its leader-only and
//!   meta variants) and storage records cannot reach a client by accident;
//! - **peer payloads**: openraft's messages between the nodes of one cluster (append batches,
//!   votes, snapshot metadata, their answers), whose types live in openraft and raft-store
//!   ([`encode_peer`], [`decode_peer`]). Snapshot data itself travels as storage-format bytes.
//!
//! Versions. This build reads `WIRE_VERSION_OLDEST..=WIRE_VERSION` ([`can_read`],
//! [`WireVersion::from_codec_version`]), sends [`WIRE_VERSION`] when nothing asks for another
//! one, and answers a request in the version the request came in ([`WireVersion`] is only
//! ever a version this build reads, and it can write every version it reads). The rule that
//! makes a rolling upgrade work is in `docs/ARCHITECTURE.md`, "Formats and compatibility".
//!
//! - 1: what builds of storage format 1 sent (then the one codec version).
//! - 2: version 1 with the variants of storage format 2 at the ends of their enums
//!   (`Command::Meta`, `Event::Meta`, `Accepted::Meta`, `RejectCode::Meta`). A version-1 value
//!   has the same bytes in version 2; a version-2 value is a valid version-1 value unless it
//!   uses one of those variants. Answering a version-1 request in version 1 is therefore sound:
//!   no version-1 request can lead to a meta answer (the client API takes auction requests
//!   in version 1, and meta commands, the meta types, only from version 2 on; Raft answers
//!   carry no commands). [`WireVersion::META_OLDEST`] is that first version.
//! - 3: `AuctionEventKind::BidAccepted` gained `proxy` and `raise` (as storage format 3).
//!   Every other value has the same bytes as in version 2. A version-1/2 payload decodes with
//!   both flags `false`, and an event written in version 1 or 2 (an answer to an older asker)
//!   leaves them out, so every version this build reads it can also write
//!   ([`super::compat`]). Events go out in [`WIRE_VERSION`] (their requests name no version),
//!   so a client that reads only up to version 2 cannot decode this build's events: clients
//!   (the gateway) upgrade with the nodes or before them.
//!
//! Limits. Every decode names the limit of its own input as `BYTES_MAX` (the constants are in
//! `martelo_proto::limits`): the input's length, and what decoding it may claim, are checked
//! against it before anything is allocated. The storage limits (256 MiB a value) never apply
//! to bytes from the network.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CodecError, Readable, decode_framed, encode_framed};

const _: () = assert!(super::compat::BID_FLAGS_SINCE_WIRE_VERSION <= WIRE_VERSION);

/// The wire version this build sends when no request names one (and the newest it reads).
/// Builds before the formats were split sent their storage format here, 2, and compared it
/// with equality; they do not talk to builds that send 3.
pub const WIRE_VERSION: u8 = 3;

/// The oldest wire version this build reads and answers in.
pub const WIRE_VERSION_OLDEST: u8 = 1;
const _: () = assert!(WIRE_VERSION_OLDEST <= WIRE_VERSION);
const _: () = assert!(
    WIRE_VERSION_OLDEST <= WireVersion::META_OLDEST.0 && WireVersion::META_OLDEST.0 <= WIRE_VERSION
);

const WIRE: Readable = Readable {
    format: "wire",
    oldest: WIRE_VERSION_OLDEST,
    newest: WIRE_VERSION,
    sets_decoding_format: false,
    appended_since: super::compat::BID_FLAGS_SINCE_WIRE_VERSION,
};

/// A wire version this build reads, and so can answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WireVersion(u8);

impl WireVersion {
    /// What this build sends when no request names a version.
    pub const CURRENT: WireVersion = WireVersion(WIRE_VERSION);
    /// The oldest version this build reads.
    pub const OLDEST: WireVersion = WireVersion(WIRE_VERSION_OLDEST);
    /// The first version with the meta group's types (`MetaCommand`, `Accepted::Meta`, ...):
    /// a meta payload in an older version is refused (`unsupported_codec`), since a reader
    /// of that version could not decode the answer.
    pub const META_OLDEST: WireVersion = WireVersion(2);

    /// The version a message's `codec_version` names, if this build reads it.
    pub fn from_codec_version(codec_version: u32) -> Option<WireVersion> {
        u8::try_from(codec_version)
            .ok()
            .filter(|version| (WIRE_VERSION_OLDEST..=WIRE_VERSION).contains(version))
            .map(WireVersion)
    }

    /// The version as a message's `codec_version` field carries it.
    pub fn codec_version(self) -> u32 {
        u32::from(self.0)
    }

    /// The version byte of the frames written in this version.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// Whether this build reads payloads in `codec_version` (a message's field, so a `u32`: 258
/// is not 2). A node refuses a message it cannot read with `unsupported_codec`.
pub fn can_read(codec_version: u32) -> bool {
    WireVersion::from_codec_version(codec_version).is_some()
}

mod sealed {
    pub trait Sealed {}
}

/// The engine types a client may see or send: its public commands, replies, events and views.
/// Never `State`, an `Auction` or a storage record. Sealed: adding a type is a decision about
/// the client boundary, made here.
pub trait ClientPayload: Serialize + DeserializeOwned + sealed::Sealed {}

macro_rules! client_payloads {
    ($($payload:ty),+ $(,)?) => {$(
        impl sealed::Sealed for $payload {}
        impl ClientPayload for $payload {}
    )+};
}

client_payloads!(
    crate::Request,
    crate::Reply,
    crate::Event,
    crate::AuctionView,
    crate::AuctionSummary,
    // The meta group's client boundary: commands from the gateway (and the operator's
    // actions, wrapped by the node), and the account reads. `Credentials` carries a password
    // hash for the gateway's verifier; token hashes have no client type.
    crate::MetaCommand,
    crate::MetaAction,
    crate::meta::Credentials,
    crate::meta::UserPage,
);

/// Encodes a client payload in `version`: [`WireVersion::CURRENT`], or the version of the
/// request being answered.
pub fn encode<T: ClientPayload>(
    what: &'static str,
    value: &T,
    version: WireVersion,
) -> Result<Vec<u8>, CodecError> {
    encode_framed(version.get(), WIRE, what, value)
}

/// Decodes a client payload in any wire version this build reads, refusing it
/// ([`CodecError::TooLarge`]) if it is longer than `BYTES_MAX` or would claim more.
///
/// Only client-visible types decode here:
///
/// ```compile_fail
/// use martelo_engine::{State, codec::wire};
/// let state = wire::decode::<State, 1024>("state", &[]);
/// ```
pub fn decode<T: ClientPayload, const BYTES_MAX: usize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, CodecError> {
    decode_framed::<T, BYTES_MAX>(what, bytes, WIRE)
}

/// Encodes a message for another node of the cluster (an openraft request or answer) in
/// `version`.
pub fn encode_peer<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
    version: WireVersion,
) -> Result<Vec<u8>, CodecError> {
    encode_framed(version.get(), WIRE, what, value)
}

/// Decodes a message from another node in any wire version this build reads, refusing it
/// ([`CodecError::TooLarge`]) if it is longer than `BYTES_MAX` or would claim more.
pub fn decode_peer<T: DeserializeOwned, const BYTES_MAX: usize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, CodecError> {
    decode_framed::<T, BYTES_MAX>(what, bytes, WIRE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::reframed;
    use crate::{Action, Actor, Amount, AuctionId, Request, RequestId, Role, UserId};

    const LIMIT: usize = 4096;

    fn bid(request_id: &str) -> Request {
        Request {
            actor: Actor {
                user: UserId(7),
                role: Role::Bidder,
            },
            request_id: RequestId::try_from(request_id).unwrap(),
            action: Action::PlaceBid {
                auction_id: AuctionId(3),
                amount: Amount(1_500),
                max: Some(Amount(2_000)),
            },
        }
    }

    #[test]
    fn wire_versions_from_the_oldest_to_the_current_are_read_and_no_other() {
        for version in WIRE_VERSION_OLDEST..=WIRE_VERSION {
            assert!(can_read(u32::from(version)), "{version}");
        }
        assert!(!can_read(u32::from(WIRE_VERSION_OLDEST) - 1));
        assert!(!can_read(u32::from(WIRE_VERSION) + 1));
        // A u32 that truncates to a readable byte is not readable.
        assert!(!can_read(256 + u32::from(WIRE_VERSION)));
        assert_eq!(
            WireVersion::from_codec_version(u32::from(WIRE_VERSION_OLDEST)),
            Some(WireVersion::OLDEST)
        );
    }

    #[test]
    fn this_build_sends_version_3_with_the_storage_bytes_and_answers_version_2_as_before() {
        assert_eq!(WireVersion::CURRENT.codec_version(), 3);
        let request = bid("r-1");
        let wire = encode("request", &request, WireVersion::CURRENT).unwrap();
        // The same payload as storage (format 4 changed only `State`), under its own version
        // byte and therefore its own checksum.
        let stored = crate::codec::encode("request", &request).unwrap();
        assert_eq!(wire[1..wire.len() - 4], stored[1..stored.len() - 4]);
        // A request has the same payload in versions 2 and 3: only `BidAccepted` changed.
        let v2 = WireVersion::from_codec_version(2).unwrap();
        let old = encode("request", &request, v2).unwrap();
        assert_eq!(old[1..old.len() - 4], wire[1..wire.len() - 4]);
    }

    #[test]
    fn bid_flags_travel_from_version_3_and_are_left_out_of_older_versions() {
        use crate::codec::tests::bid_event;
        let event = bid_event(true, true);
        let current = encode("event", &event, WireVersion::CURRENT).unwrap();
        assert_eq!(
            decode::<crate::Event, LIMIT>("event", &current).unwrap(),
            event
        );
        for version in [
            WireVersion::OLDEST,
            WireVersion::from_codec_version(2).unwrap(),
        ] {
            let old = encode("event", &event, version).unwrap();
            assert_eq!(old.len() + 2, current.len(), "no flag bytes in {version:?}");
            assert_eq!(
                decode::<crate::Event, LIMIT>("event", &old).unwrap(),
                bid_event(false, false),
                "{version:?}"
            );
        }
    }

    #[test]
    fn an_older_readable_version_is_decoded_and_answered_in_that_version() {
        let request = bid("r-1");
        let old = encode("request", &request, WireVersion::OLDEST).unwrap();
        assert_eq!(old[0], WIRE_VERSION_OLDEST);
        assert_eq!(decode::<Request, LIMIT>("request", &old).unwrap(), request);
        let current = encode("request", &request, WireVersion::CURRENT).unwrap();
        assert_eq!(old[1..old.len() - 4], current[1..current.len() - 4]);
    }

    #[test]
    fn an_unknown_wire_version_is_a_typed_error() {
        let current = encode("request", &bid("r-1"), WireVersion::CURRENT).unwrap();
        let newer = reframed(&current, WIRE_VERSION + 1);
        let error = decode::<Request, LIMIT>("request", &newer).unwrap_err();
        assert_eq!(
            error,
            CodecError::UnknownVersion {
                what: "request",
                format: "wire",
                found: WIRE_VERSION + 1,
                oldest: WIRE_VERSION_OLDEST,
                newest: WIRE_VERSION,
            }
        );
    }

    #[test]
    fn a_payload_over_its_limit_is_too_large() {
        let request = bid(&"r".repeat(60));
        let bytes = encode("request", &request, WireVersion::CURRENT).unwrap();
        assert!(decode::<Request, LIMIT>("request", &bytes).is_ok());
        let error = decode::<Request, 64>("request", &bytes).unwrap_err();
        assert!(error.is_too_large(), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("over its decode limit of 64 bytes")
        );
        let error = decode_peer::<Request, 64>("request", &bytes).unwrap_err();
        assert!(error.is_too_large(), "{error:?}");
    }

    #[test]
    fn a_small_payload_with_a_huge_length_inside_is_too_large_before_allocating() {
        // The bytes of an actor (user 7, role 0) followed by a request id whose length says
        // one terabyte: refused when the length is read, long before the storage limit.
        let lying = encode_peer("request", &(7u64, 0u32, 1u64 << 40), WireVersion::CURRENT);
        let error = decode::<Request, LIMIT>("request", &lying.unwrap()).unwrap_err();
        assert!(error.is_too_large(), "{error:?}");
    }

    #[test]
    fn meta_commands_and_account_reads_travel_as_client_payloads() {
        use crate::meta::{
            Credentials, DisplayName, PasswordHash, UserPage, UserSummary, Username,
        };
        use crate::{MetaAction, MetaActor, MetaCommand};
        let summary = UserSummary {
            id: UserId(4),
            username: Username::fold("Alice").unwrap(),
            display_name: DisplayName::try_from("Alice A.").unwrap(),
            roles: [Role::Bidder].into_iter().collect(),
            status: crate::meta::AccountStatus::Active,
            created_at: crate::Timestamp(17),
        };
        let credentials = Credentials {
            summary: summary.clone(),
            password_hash: PasswordHash::try_from("$argon2id$v=19$x").unwrap(),
        };
        let bytes = encode("credentials", &credentials, WireVersion::CURRENT).unwrap();
        assert_eq!(
            decode::<Credentials, LIMIT>("credentials", &bytes).unwrap(),
            credentials
        );
        let page = UserPage {
            users: vec![summary],
            next_after: Some(Username::fold("alice").unwrap()),
        };
        let bytes = encode("user page", &page, WireVersion::CURRENT).unwrap();
        assert_eq!(
            decode::<UserPage, LIMIT>("user page", &bytes).unwrap(),
            page
        );
        let command = MetaCommand {
            actor: MetaActor::Anonymous,
            request_id: RequestId::try_from("m-1").unwrap(),
            action: MetaAction::SetClusterFacts { shard_count: 8 },
        };
        let bytes = encode("meta command", &command, WireVersion::META_OLDEST).unwrap();
        assert_eq!(
            decode::<MetaCommand, LIMIT>("meta command", &bytes).unwrap(),
            command
        );
    }
}
