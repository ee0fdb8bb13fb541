//! What both sides of the Raft transport agree on about a message, beyond `raft.proto`: the
//! [`Envelope`] every request carries (and the check a receiver makes of it), and [`Reply`],
//! the one shape of every answer.
//!
//! The openraft payloads themselves are encoded in the wire format of
//! `martelo_raft_store::codec::wire` (peer payloads); building requests is the client side's
//! business (`client.rs`), answering them the server side's (`server.rs`). A request in any
//! wire version this node reads is served and answered in that version
//! ([`Envelope::version`]); this node sends [`WireVersion::CURRENT`]. Nothing here does IO.

use martelo_proto::{
    ApiError, ErrorCode, append_entries_response, install_snapshot_response,
    stream_append_response, transfer_leader_response, vote_response,
};
use martelo_raft_store::GroupId;
use martelo_raft_store::codec::{self, wire::WireVersion};
use prost::bytes::Bytes;

/// The addressing fields every Raft transport request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Envelope {
    pub(super) group_id: u64,
    pub(super) from_node_id: u64,
    pub(super) to_node_id: u64,
    pub(super) codec_version: u32,
}

impl Envelope {
    /// The group a request is for, once it is known to be addressed to this node (`self_id`)
    /// in a codec version this build reads.
    pub(super) fn check(&self, self_id: u64) -> Result<GroupId, ApiError> {
        if self.to_node_id != self_id {
            return Err(ApiError::new(
                ErrorCode::WrongNode,
                format!(
                    "this is node {self_id}, not node {}: node {} has a stale address for it",
                    self.to_node_id, self.from_node_id
                ),
            )
            .with_group(self.group_id));
        }
        if !codec::wire::can_read(self.codec_version) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedCodec,
                format!(
                    "payload is in codec version {}, this node reads versions {} to {}",
                    self.codec_version,
                    codec::wire::WIRE_VERSION_OLDEST,
                    codec::wire::WIRE_VERSION
                ),
            )
            .with_group(self.group_id));
        }
        Ok(GroupId(self.group_id))
    }

    /// The wire version to answer in: the request's, which this node reads once [`check`]
    /// passed (so the peer reads the answer, even if it is older than this node).
    ///
    /// [`check`]: Envelope::check
    pub(super) fn version(&self) -> WireVersion {
        WireVersion::from_codec_version(self.codec_version).unwrap_or(WireVersion::CURRENT)
    }
}

/// Requests that carry an [`Envelope`].
pub(super) trait Addressed {
    fn envelope(&self) -> Envelope;
}

macro_rules! impl_addressed {
    ($($message:ty),+) => {$(
        impl Addressed for $message {
            fn envelope(&self) -> Envelope {
                Envelope {
                    group_id: self.group_id,
                    from_node_id: self.from_node_id,
                    to_node_id: self.to_node_id,
                    codec_version: self.codec_version,
                }
            }
        }
    )+};
}

impl_addressed!(
    martelo_proto::AppendEntriesRequest,
    martelo_proto::VoteRequest,
    martelo_proto::TransferLeaderRequest,
    martelo_proto::SnapshotHeader
);

/// The unary requests: an [`Envelope`] and one codec-encoded openraft request.
pub(super) trait UnaryMessage: Addressed + Sized {
    /// The message from `envelope`'s sender to its target, carrying `payload`.
    fn addressed(envelope: Envelope, payload: Bytes) -> Self;

    /// The codec-encoded openraft request.
    fn payload(&self) -> &[u8];
}

macro_rules! impl_unary_message {
    ($($message:ident),+) => {$(
        impl UnaryMessage for martelo_proto::$message {
            fn addressed(envelope: Envelope, payload: Bytes) -> Self {
                martelo_proto::$message {
                    group_id: envelope.group_id,
                    from_node_id: envelope.from_node_id,
                    to_node_id: envelope.to_node_id,
                    codec_version: envelope.codec_version,
                    payload,
                }
            }

            fn payload(&self) -> &[u8] {
                &self.payload
            }
        }
    )+};
}

impl_unary_message!(AppendEntriesRequest, VoteRequest, TransferLeaderRequest);

/// The one shape of every Raft transport answer; each response message's `oneof result` is
/// this with its own type names.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Reply {
    /// The Raft's answer, codec-encoded.
    Payload(Bytes),
    /// The `RaftError<TypeConfig>` the Raft returned, codec-encoded.
    RaftError(Bytes),
    /// The request never reached a Raft, or broke the protocol.
    Error(ApiError),
}

impl Reply {
    /// The `result` label of `RPC_RECEIVED_TOTAL`.
    pub(super) fn metric_result(&self) -> &'static str {
        match self {
            Reply::Payload(_) => "ok",
            Reply::RaftError(_) => "raft_error",
            Reply::Error(error) => error.code().as_code_str(),
        }
    }
}

/// The [`Reply`] inside a response message; `None` when it has no `result` (a newer peer
/// with a variant this build does not know).
pub(super) trait IntoReply {
    fn into_reply(self) -> Option<Reply>;
}

macro_rules! impl_reply_conversions {
    ($($message:ident => $oneof:ident),+ $(,)?) => {$(
        impl From<Reply> for martelo_proto::$message {
            fn from(reply: Reply) -> Self {
                let result = match reply {
                    Reply::Payload(bytes) => $oneof::Result::Payload(bytes),
                    Reply::RaftError(bytes) => $oneof::Result::RaftError(bytes),
                    Reply::Error(error) => $oneof::Result::Error(error),
                };
                martelo_proto::$message {
                    result: Some(result),
                }
            }
        }

        impl IntoReply for martelo_proto::$message {
            fn into_reply(self) -> Option<Reply> {
                Some(match self.result? {
                    $oneof::Result::Payload(bytes) => Reply::Payload(bytes),
                    $oneof::Result::RaftError(bytes) => Reply::RaftError(bytes),
                    $oneof::Result::Error(error) => Reply::Error(error),
                })
            }
        }
    )+};
}

impl_reply_conversions!(
    AppendEntriesResponse => append_entries_response,
    StreamAppendResponse => stream_append_response,
    VoteResponse => vote_response,
    InstallSnapshotResponse => install_snapshot_response,
    TransferLeaderResponse => transfer_leader_response,
);

#[cfg(test)]
mod tests {
    use martelo_proto::StreamAppendResponse;

    use super::*;

    const SELF_ID: u64 = 2;

    fn envelope(group_id: u64) -> Envelope {
        Envelope {
            group_id,
            from_node_id: 1,
            to_node_id: SELF_ID,
            codec_version: WireVersion::CURRENT.codec_version(),
        }
    }

    #[test]
    fn envelope_for_another_node_is_wrong_node() {
        let envelope = envelope(5);
        assert_eq!(envelope.check(SELF_ID), Ok(GroupId(5)));
        let error = envelope.check(3).expect_err("addressed to node 2");
        assert_eq!(error.code(), ErrorCode::WrongNode);
        assert_eq!(error.group_id, 5);
    }

    #[test]
    fn envelope_in_an_unreadable_codec_version_is_unsupported_codec() {
        let mut envelope = envelope(5);
        for unreadable in [
            u32::from(codec::wire::WIRE_VERSION) + 1,
            0,
            256 + u32::from(codec::wire::WIRE_VERSION),
        ] {
            envelope.codec_version = unreadable;
            let error = envelope.check(SELF_ID).expect_err("unreadable codec");
            assert_eq!(error.code(), ErrorCode::UnsupportedCodec, "{unreadable}");
            assert_eq!(error.group_id, 5);
        }
    }

    #[test]
    fn envelope_in_an_older_readable_codec_version_is_served_and_answered_in_it() {
        let mut envelope = envelope(5);
        assert_eq!(envelope.version(), WireVersion::CURRENT);
        envelope.codec_version = WireVersion::OLDEST.codec_version();
        assert_eq!(envelope.check(SELF_ID), Ok(GroupId(5)));
        assert_eq!(envelope.version(), WireVersion::OLDEST);
    }

    #[test]
    fn requests_carry_their_addressing_fields() {
        let request = martelo_proto::AppendEntriesRequest {
            group_id: 5,
            from_node_id: 1,
            to_node_id: SELF_ID,
            codec_version: WireVersion::CURRENT.codec_version(),
            payload: Bytes::new(),
        };
        assert_eq!(request.envelope(), envelope(5));
    }

    #[test]
    fn replies_round_trip_through_every_response_message() {
        let replies = [
            Reply::Payload(Bytes::from_static(b"p")),
            Reply::RaftError(Bytes::from_static(b"e")),
            Reply::Error(ApiError::new(ErrorCode::UnknownGroup, "no")),
        ];
        for reply in replies {
            let message: StreamAppendResponse = reply.clone().into();
            assert_eq!(message.into_reply(), Some(reply.clone()));
            let message: martelo_proto::InstallSnapshotResponse = reply.clone().into();
            assert_eq!(message.into_reply(), Some(reply));
        }
        let empty = martelo_proto::VoteResponse { result: None };
        assert_eq!(empty.into_reply(), None);
    }
}
