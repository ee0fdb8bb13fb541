//! Client side: what an outgoing Raft RPC is ([`Rpc`]: metric label, codec name, openraft's
//! `RPCTypes`) and how its outcome is classified ([`Failure`]) and counted.
//!
//! Failures map to what openraft expects: a peer that cannot be reached, or that cannot serve
//! the group (wrong node, unknown group, codec, stopped Raft), is `Unreachable`, which makes
//! openraft back off; running out of time is `Timeout`; anything else is `Network`. The
//! mapping is in plain functions ([`failure_from_status`], [`failure_from_api_error`],
//! [`decode_reply`]) with unit tests. Making the calls is `client.rs`; the server's side of
//! a refusal is `server.rs`.

use std::fmt;
use std::time::Duration;

use martelo_proto::{
    ApiError, ErrorCode, RAFT_CONTROL_PAYLOAD_BYTES_MAX, RAFT_MESSAGE_BYTES_MAX, check_encoded_len,
};
use martelo_raft_store::TypeConfig;
use martelo_raft_store::codec::{self, wire::WireVersion};
use openraft::RPCTypes;
use openraft::errors::{NetworkError, RPCError, RaftError, Timeout, Unreachable};
use prost::bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Code, Status};

use super::metrics::{RPC_SECONDS, RPC_TOTAL};
use super::wire::Reply;

/// The RPCs of the transport, for metric labels, codec names and openraft's `Timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rpc {
    AppendEntries,
    StreamAppend,
    Vote,
    PreVote,
    InstallSnapshot,
    TransferLeader,
}

impl Rpc {
    pub(super) fn label(self) -> &'static str {
        match self {
            Rpc::AppendEntries => "append_entries",
            Rpc::StreamAppend => "stream_append",
            Rpc::Vote => "vote",
            Rpc::PreVote => "pre_vote",
            Rpc::InstallSnapshot => "install_snapshot",
            Rpc::TransferLeader => "transfer_leader",
        }
    }

    fn rpc_type(self) -> RPCTypes {
        match self {
            Rpc::AppendEntries | Rpc::StreamAppend => RPCTypes::AppendEntries,
            Rpc::Vote | Rpc::PreVote => RPCTypes::Vote,
            Rpc::InstallSnapshot => RPCTypes::InstallSnapshot,
            Rpc::TransferLeader => RPCTypes::TransferLeader,
        }
    }

    /// The codec name of the payload this RPC answers with.
    pub(super) fn response_name(self) -> &'static str {
        match self {
            Rpc::AppendEntries => "AppendEntriesResponse",
            Rpc::StreamAppend => "StreamAppendResult",
            Rpc::Vote | Rpc::PreVote => "VoteResponse",
            Rpc::InstallSnapshot => "SnapshotResponse",
            Rpc::TransferLeader => "TransferLeaderResponse",
        }
    }
}

/// Why an RPC got no answer from the peer's Raft, in the three kinds openraft tells apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The peer cannot be reached or cannot serve this group: openraft backs off.
    Unreachable(String),
    /// No answer in time.
    Timeout(Duration),
    /// The connection broke or the call failed in transit.
    Network(String),
    /// The peer answered something this node cannot use (undecodable, out of protocol, a
    /// refusal of a malformed request), or this node could not encode its request. A bug on
    /// one side or a version mismatch: logged at warn. openraft sees it as `Network`.
    Protocol(String),
}

impl Failure {
    pub(super) fn label(&self) -> &'static str {
        match self {
            Failure::Unreachable(_) => "unreachable",
            Failure::Timeout(_) => "timeout",
            Failure::Network(_) => "network",
            Failure::Protocol(_) => "protocol",
        }
    }

    pub(super) fn into_rpc_error(
        self,
        rpc: Rpc,
        self_id: u64,
        target: u64,
    ) -> RPCError<TypeConfig> {
        match self {
            Failure::Unreachable(message) => {
                RPCError::Unreachable(Unreachable::from_string(message))
            }
            Failure::Timeout(timeout) => RPCError::Timeout(Timeout {
                action: rpc.rpc_type(),
                id: self_id,
                target,
                timeout,
            }),
            Failure::Network(message) | Failure::Protocol(message) => {
                RPCError::Network(NetworkError::from_string(message))
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(message) => write!(formatter, "unreachable: {message}"),
            Failure::Timeout(timeout) => write!(formatter, "no answer within {timeout:?}"),
            Failure::Network(message) => write!(formatter, "network: {message}"),
            Failure::Protocol(message) => write!(formatter, "protocol: {message}"),
        }
    }
}

/// Classifies a gRPC status. `waited` is the timeout the call ran under.
pub(super) fn failure_from_status(status: &Status, waited: Duration) -> Failure {
    match status.code() {
        // Connection refused or reset, keepalive expired, connect timeout: tonic reports all of
        // them as `Unavailable`. `Unimplemented`: whatever listens there is not a martelo node.
        Code::Unavailable | Code::Unimplemented => Failure::Unreachable(status.to_string()),
        Code::DeadlineExceeded => Failure::Timeout(waited),
        // A message over a size limit (tonic's own check): resending it cannot help.
        Code::OutOfRange => Failure::Protocol(status.to_string()),
        _ => Failure::Network(status.to_string()),
    }
}

/// Classifies the peer's refusal of a request.
fn failure_from_api_error(error: &ApiError) -> Failure {
    let code = error.code();
    let message = format!("peer refused: {code}: {}", error.message);
    match code {
        // The peer cannot serve this group now: a stale address, a group it has not opened
        // yet, a node of another version, a node shutting down. Retrying at once cannot help.
        ErrorCode::WrongNode
        | ErrorCode::UnknownGroup
        | ErrorCode::UnsupportedCodec
        | ErrorCode::Unavailable => Failure::Unreachable(message),
        _ => Failure::Protocol(message),
    }
}

/// Decodes a peer's answer into the Raft's response, or classifies why there is none. Every
/// answer (append results, votes, snapshot and transfer-leader responses, `RaftError`) is
/// small: one over [`RAFT_CONTROL_PAYLOAD_BYTES_MAX`] is a protocol failure.
pub(super) fn decode_reply<T: DeserializeOwned>(
    what: &'static str,
    reply: Option<Reply>,
) -> Result<T, Failure> {
    match reply {
        Some(Reply::Payload(bytes)) => {
            codec::wire::decode_peer::<T, RAFT_CONTROL_PAYLOAD_BYTES_MAX>(what, &bytes).map_err(
                |error| Failure::Protocol(format!("cannot decode the peer's answer: {error}")),
            )
        }
        Some(Reply::RaftError(bytes)) => {
            match codec::wire::decode_peer::<RaftError<TypeConfig>, RAFT_CONTROL_PAYLOAD_BYTES_MAX>(
                "RaftError",
                &bytes,
            ) {
                // The group's Raft on the peer has stopped (shutdown, storage failure): to
                // this group the peer is as good as down.
                Ok(RaftError::Fatal(fatal)) => Err(Failure::Unreachable(format!(
                    "the peer's Raft for this group stopped: {fatal}"
                ))),
                Ok(RaftError::APIError(never)) => match never {},
                Err(error) => Err(Failure::Protocol(format!(
                    "cannot decode the peer's Raft error: {error}"
                ))),
            }
        }
        Some(Reply::Error(error)) => Err(failure_from_api_error(&error)),
        None => Err(Failure::Protocol(
            "the peer's answer has no result: is the peer newer than this node?".into(),
        )),
    }
}

/// Encodes an openraft message for the wire, in the version this node sends
/// ([`WireVersion::CURRENT`], which the envelope names). A failure is a bug on this node;
/// openraft retries it like a network error.
pub(super) fn encode_payload<T: Serialize>(
    what: &'static str,
    value: &T,
) -> Result<Bytes, Failure> {
    codec::wire::encode_peer(what, value, WireVersion::CURRENT)
        .map(Bytes::from)
        .map_err(|error| Failure::Protocol(format!("cannot encode: {error}")))
}

/// Refuses to send a message over [`RAFT_MESSAGE_BYTES_MAX`]: tonic would refuse it with an
/// opaque status instead.
pub(super) fn check_size(message: &impl prost::Message) -> Result<(), Failure> {
    check_encoded_len(message, RAFT_MESSAGE_BYTES_MAX)
        .map_err(|error| Failure::Protocol(error.message))
}

/// Counts one finished RPC in [`RPC_TOTAL`] and records its duration in [`RPC_SECONDS`].
pub(super) fn record_rpc(rpc: Rpc, result: &'static str, elapsed: Duration) {
    metrics::counter!(RPC_TOTAL, "rpc" => rpc.label(), "result" => result).increment(1);
    metrics::histogram!(RPC_SECONDS, "rpc" => rpc.label()).record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use martelo_raft_store::types::Vote;
    use openraft::errors::StreamingError;
    use openraft::raft::{StreamAppendError, StreamAppendResult, VoteResponse};

    use super::*;

    #[test]
    fn unavailable_is_unreachable_and_deadline_is_timeout() {
        let waited = Duration::from_millis(75);
        assert!(matches!(
            failure_from_status(&Status::unavailable("tcp connect error"), waited),
            Failure::Unreachable(_)
        ));
        assert!(matches!(
            failure_from_status(&Status::unimplemented("no such service"), waited),
            Failure::Unreachable(_)
        ));
        assert_eq!(
            failure_from_status(&Status::deadline_exceeded("late"), waited),
            Failure::Timeout(waited)
        );
        assert!(matches!(
            failure_from_status(&Status::internal("h2 protocol error"), waited),
            Failure::Network(_)
        ));
        assert!(matches!(
            failure_from_status(&Status::out_of_range("too large"), waited),
            Failure::Protocol(_)
        ));
    }

    #[test]
    fn refusals_that_retrying_cannot_fix_are_unreachable() {
        for code in [
            ErrorCode::WrongNode,
            ErrorCode::UnknownGroup,
            ErrorCode::UnsupportedCodec,
            ErrorCode::Unavailable,
        ] {
            let failure = failure_from_api_error(&ApiError::new(code, "no"));
            assert!(
                matches!(failure, Failure::Unreachable(_)),
                "{code}: {failure:?}"
            );
        }
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::Internal,
            ErrorCode::PayloadTooLarge,
        ] {
            let failure = failure_from_api_error(&ApiError::new(code, "no"));
            assert!(
                matches!(failure, Failure::Protocol(_)),
                "{code}: {failure:?}"
            );
        }
    }

    #[test]
    fn failures_become_the_matching_openraft_errors() {
        let timeout = Failure::Timeout(Duration::from_millis(10)).into_rpc_error(Rpc::Vote, 1, 2);
        let RPCError::Timeout(timeout) = timeout else {
            panic!("expected a timeout, got {timeout:?}");
        };
        assert_eq!(
            (timeout.action, timeout.id, timeout.target),
            (RPCTypes::Vote, 1, 2)
        );
        assert!(matches!(
            Failure::Unreachable("x".into()).into_rpc_error(Rpc::AppendEntries, 1, 2),
            RPCError::Unreachable(_)
        ));
        assert!(matches!(
            Failure::Network("x".into()).into_rpc_error(Rpc::StreamAppend, 1, 2),
            RPCError::Network(_)
        ));
        let streaming = StreamingError::from(Failure::Unreachable("x".into()).into_rpc_error(
            Rpc::InstallSnapshot,
            1,
            2,
        ));
        assert!(matches!(streaming, StreamingError::Unreachable(_)));
    }

    #[test]
    fn payload_replies_decode_into_the_raft_answer() {
        let vote = Vote::new_committed(4, 2);
        let result: StreamAppendResult<TypeConfig> = Err(StreamAppendError::HigherVote(vote));
        let bytes = encode_payload("StreamAppendResult", &result).expect("encodes");
        let decoded: StreamAppendResult<TypeConfig> =
            decode_reply("StreamAppendResult", Some(Reply::Payload(bytes))).expect("decodes");
        assert_eq!(decoded, result);
    }

    #[test]
    fn remote_fatal_error_is_unreachable() {
        let error: RaftError<TypeConfig> = RaftError::Fatal(openraft::errors::Fatal::Stopped);
        let bytes = encode_payload("RaftError", &error).expect("encodes");
        let failure =
            decode_reply::<VoteResponse<TypeConfig>>("VoteResponse", Some(Reply::RaftError(bytes)))
                .expect_err("fatal");
        assert!(matches!(failure, Failure::Unreachable(_)), "{failure:?}");
    }

    #[test]
    fn undecodable_or_empty_replies_are_network_errors() {
        let garbage = decode_reply::<VoteResponse<TypeConfig>>(
            "VoteResponse",
            Some(Reply::Payload(Bytes::from_static(b"\x01nonsense"))),
        );
        assert!(matches!(garbage, Err(Failure::Protocol(_))));
        let garbage_error = decode_reply::<VoteResponse<TypeConfig>>(
            "VoteResponse",
            Some(Reply::RaftError(Bytes::from_static(b""))),
        );
        assert!(matches!(garbage_error, Err(Failure::Protocol(_))));
        let empty = decode_reply::<VoteResponse<TypeConfig>>("VoteResponse", None);
        assert!(matches!(empty, Err(Failure::Protocol(_))));
        let refused = decode_reply::<VoteResponse<TypeConfig>>(
            "VoteResponse",
            Some(Reply::Error(ApiError::new(
                ErrorCode::WrongNode,
                "other node",
            ))),
        );
        assert!(matches!(refused, Err(Failure::Unreachable(_))));
    }

    #[test]
    fn answers_over_their_limit_are_protocol_failures() {
        let oversized = Bytes::from(vec![0u8; RAFT_CONTROL_PAYLOAD_BYTES_MAX + 1]);
        for reply in [
            Reply::Payload(oversized.clone()),
            Reply::RaftError(oversized),
        ] {
            let failure = decode_reply::<VoteResponse<TypeConfig>>("VoteResponse", Some(reply))
                .expect_err("too large");
            let Failure::Protocol(message) = failure else {
                panic!("expected a protocol failure, got {failure:?}");
            };
            assert!(message.contains("decode limit"), "{message}");
        }
    }

    #[test]
    fn answers_in_an_older_readable_wire_version_decode() {
        let vote = Vote::new_committed(4, 2);
        let answer = VoteResponse::<TypeConfig>::new(vote, None, true);
        let old = codec::wire::encode_peer("VoteResponse", &answer, WireVersion::OLDEST)
            .expect("encodes");
        let decoded: VoteResponse<TypeConfig> =
            decode_reply("VoteResponse", Some(Reply::Payload(old.into()))).expect("decodes");
        assert_eq!(decoded, answer);
    }
}
