//! Server side: the `RaftTransport` gRPC service, which hands each peer message to the Raft
//! instance of the group it names.
//!
//! ```text
//!   peer's Network (client.rs) ──gRPC──► RaftTransportService
//!                                           │ Envelope::check: to_node_id, codec_version
//!                                           │ GroupLookup::raft(group_id)  (else unknown_group)
//!                                           │ decode_append, decode_vote, … (each with its
//!                                           │   own limit: payload_too_large, invalid_argument)
//!                                           ▼
//!                                         group's Raft: append_entries, stream_append, vote,
//!                                           pre_vote, install_full_snapshot,
//!                                           handle_transfer_leader
//!                                           │
//!                                           ▼ reply_from: result or RaftError, encoded in
//!                                             the request's wire version
//!                                         response oneof { payload, raft_error, error }
//! ```
//!
//! This file holds the service, [`GroupLookup`] (what it needs of the node), the unary RPCs
//! and the reply helpers the other server files share. A `StreamAppend` stream is served by
//! `server_append.rs`, an `InstallSnapshot` stream by `snapshot_recv.rs`; the envelope check
//! is `wire.rs`. Every check is a plain function or a small state machine with unit tests;
//! the service methods only wire them to tonic and to the Raft. Malformed input never panics:
//! it gets an [`ApiError`] with a stable code. Adding the service to the node's server is
//! `node/mod.rs`.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use martelo_proto::raft_transport_server::RaftTransport;
use martelo_proto::{ApiError, ErrorCode, RAFT_CONTROL_PAYLOAD_BYTES_MAX, RAFT_MESSAGE_BYTES_MAX};
use martelo_raft_store::codec::{self, wire::WireVersion};
use martelo_raft_store::{GroupId, SnapshotReceiver, TypeConfig};
use openraft::errors::RaftError;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status, Streaming};

use super::metrics::RPC_RECEIVED_TOTAL;
use super::wire::{Envelope, Reply, UnaryMessage};
use super::{server_append, snapshot_recv};
use crate::node::Raft;

/// The node's Raft groups, as the transport needs them. The node's group registry implements
/// it.
pub trait GroupLookup: Send + Sync + 'static {
    /// This node's Raft node id: messages addressed to another id are refused (`wrong_node`).
    fn node_id(&self) -> u64;

    /// The Raft instance of `group`, if this node holds a replica of it.
    fn raft(&self, group: GroupId) -> Option<Raft>;

    /// Somewhere to write a snapshot of `group` arriving from its leader, if this node holds
    /// a replica of it.
    fn snapshot_receiver(&self, group: GroupId) -> Option<SnapshotReceiver>;
}

/// The `RaftTransport` gRPC service of one node, serving every group it holds. Serve it with
/// `martelo_proto::services::raft_transport_server`, which applies the message size limits.
pub struct RaftTransportService<G> {
    groups: Arc<G>,
}

impl<G> RaftTransportService<G> {
    pub fn new(groups: Arc<G>) -> Self {
        RaftTransportService { groups }
    }
}

impl<G> Clone for RaftTransportService<G> {
    fn clone(&self) -> Self {
        RaftTransportService {
            groups: Arc::clone(&self.groups),
        }
    }
}

impl<G: GroupLookup> fmt::Debug for RaftTransportService<G> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RaftTransportService")
            .field("node_id", &self.groups.node_id())
            .finish_non_exhaustive()
    }
}

/// Encodes what a Raft method returned, in `version` (the request's, see
/// `Envelope::version`): the value as the payload, or its error as `raft_error`. An encoding
/// failure is this node's bug, reported as `internal`.
pub(super) fn reply_from<T: Serialize>(
    what: &'static str,
    group: GroupId,
    version: WireVersion,
    result: Result<T, RaftError<TypeConfig>>,
) -> Reply {
    let encoded = match &result {
        Ok(value) => {
            codec::wire::encode_peer(what, value, version).map(|bytes| Reply::Payload(bytes.into()))
        }
        Err(error) => codec::wire::encode_peer("RaftError", error, version)
            .map(|bytes| Reply::RaftError(bytes.into())),
    };
    encoded.unwrap_or_else(|error| {
        tracing::warn!(group = group.0, %error, "cannot encode a Raft transport reply");
        Reply::Error(
            ApiError::new(
                ErrorCode::Internal,
                format!("cannot encode the reply: {error}"),
            )
            .with_group(group.0),
        )
    })
}

/// Decodes an openraft message from a peer, of at most `BYTES_MAX` bytes (the limit of that
/// input: see the `decode_*` functions): `payload_too_large` over it, `invalid_argument` if
/// it cannot be decoded.
pub(super) fn decode_payload<T: DeserializeOwned, const BYTES_MAX: usize>(
    what: &'static str,
    group: GroupId,
    bytes: &[u8],
) -> Result<T, ApiError> {
    codec::wire::decode_peer::<T, BYTES_MAX>(what, bytes).map_err(|error| {
        let code = if error.is_too_large() {
            ErrorCode::PayloadTooLarge
        } else {
            ErrorCode::InvalidArgument
        };
        ApiError::new(code, format!("cannot decode: {error}")).with_group(group.0)
    })
}

/// An append batch (`AppendEntries`, each request of a `StreamAppend`): up to a whole Raft
/// message.
pub(super) fn decode_append(
    group: GroupId,
    bytes: &[u8],
) -> Result<AppendEntriesRequest<TypeConfig>, ApiError> {
    decode_payload::<_, RAFT_MESSAGE_BYTES_MAX>("AppendEntriesRequest", group, bytes)
}

/// A vote or pre-vote request: a vote and a log id.
fn decode_vote(group: GroupId, bytes: &[u8]) -> Result<VoteRequest<TypeConfig>, ApiError> {
    decode_payload::<_, RAFT_CONTROL_PAYLOAD_BYTES_MAX>("VoteRequest", group, bytes)
}

/// A transfer-leader request: a vote, a node id and a log id.
fn decode_transfer_leader(
    group: GroupId,
    bytes: &[u8],
) -> Result<TransferLeaderRequest<TypeConfig>, ApiError> {
    decode_payload::<_, RAFT_CONTROL_PAYLOAD_BYTES_MAX>("TransferLeaderRequest", group, bytes)
}

pub(super) fn unknown_group(group: GroupId) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownGroup,
        format!("this node holds no replica of {group}"),
    )
    .with_group(group.0)
}

/// Asserts that `error` is `payload_too_large`, showing its message when it is not.
#[cfg(test)]
pub(super) fn assert_too_large(error: &ApiError) {
    assert_eq!(
        error.code(),
        ErrorCode::PayloadTooLarge,
        "{}",
        error.message
    );
}

/// Counts one answer in [`RPC_RECEIVED_TOTAL`].
pub(super) fn record_received(rpc: &'static str, reply: &Reply) {
    metrics::counter!(RPC_RECEIVED_TOTAL, "rpc" => rpc, "result" => reply.metric_result())
        .increment(1);
}

pub(super) fn log_rejection(rpc: &'static str, envelope: &Envelope, error: &ApiError) {
    let code = error.code();
    if code == ErrorCode::Internal {
        tracing::warn!(
            rpc,
            group = envelope.group_id,
            peer = envelope.from_node_id,
            code = code.as_code_str(),
            message = error.message,
            "Raft transport request failed"
        );
    } else {
        tracing::debug!(
            rpc,
            group = envelope.group_id,
            peer = envelope.from_node_id,
            code = code.as_code_str(),
            message = error.message,
            "Raft transport request refused"
        );
    }
}

impl<G: GroupLookup> RaftTransportService<G> {
    /// The group's Raft, once the envelope checks pass.
    fn open(&self, envelope: &Envelope) -> Result<(GroupId, Raft), ApiError> {
        let group = envelope.check(self.groups.node_id())?;
        let raft = self
            .groups
            .raft(group)
            .ok_or_else(|| unknown_group(group))?;
        Ok((group, raft))
    }

    /// The common path of the unary RPCs: check, decode (with the request's own limit),
    /// call the Raft, encode the answer in the request's wire version and wrap it in the
    /// RPC's response message.
    async fn serve_unary<M, Resp, Req, Out, Fut>(
        &self,
        rpc: &'static str,
        request: Request<M>,
        decode: fn(GroupId, &[u8]) -> Result<Req, ApiError>,
        response_name: &'static str,
        call: impl FnOnce(Raft, Req) -> Fut,
    ) -> Result<Response<Resp>, Status>
    where
        M: UnaryMessage,
        Resp: From<Reply>,
        Out: Serialize,
        Fut: Future<Output = Result<Out, RaftError<TypeConfig>>>,
    {
        let request = request.into_inner();
        let envelope = request.envelope();
        let opened = self.open(&envelope).and_then(|(group, raft)| {
            let request = decode(group, request.payload())?;
            Ok((group, raft, request))
        });
        let reply = match opened {
            Ok((group, raft, request)) => reply_from(
                response_name,
                group,
                envelope.version(),
                call(raft, request).await,
            ),
            Err(error) => {
                log_rejection(rpc, &envelope, &error);
                Reply::Error(error)
            }
        };
        record_received(rpc, &reply);
        Ok(Response::new(reply.into()))
    }
}

#[tonic::async_trait]
impl<G: GroupLookup> RaftTransport for RaftTransportService<G> {
    async fn append_entries(
        &self,
        request: Request<martelo_proto::AppendEntriesRequest>,
    ) -> Result<Response<martelo_proto::AppendEntriesResponse>, Status> {
        self.serve_unary(
            "append_entries",
            request,
            decode_append,
            "AppendEntriesResponse",
            |raft, rpc: AppendEntriesRequest<TypeConfig>| async move {
                raft.append_entries(rpc).await
            },
        )
        .await
    }

    type StreamAppendStream =
        Pin<Box<dyn Stream<Item = Result<martelo_proto::StreamAppendResponse, Status>> + Send>>;

    async fn stream_append(
        &self,
        request: Request<Streaming<martelo_proto::AppendEntriesRequest>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        let responses = server_append::serve(Arc::clone(&self.groups), request.into_inner());
        Ok(Response::new(Box::pin(responses)))
    }

    async fn vote(
        &self,
        request: Request<martelo_proto::VoteRequest>,
    ) -> Result<Response<martelo_proto::VoteResponse>, Status> {
        self.serve_unary(
            "vote",
            request,
            decode_vote,
            "VoteResponse",
            |raft, rpc: VoteRequest<TypeConfig>| async move { raft.vote(rpc).await },
        )
        .await
    }

    async fn pre_vote(
        &self,
        request: Request<martelo_proto::VoteRequest>,
    ) -> Result<Response<martelo_proto::VoteResponse>, Status> {
        self.serve_unary(
            "pre_vote",
            request,
            decode_vote,
            "VoteResponse",
            |raft, rpc: VoteRequest<TypeConfig>| async move { raft.pre_vote(rpc).await },
        )
        .await
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<martelo_proto::SnapshotChunk>>,
    ) -> Result<Response<martelo_proto::InstallSnapshotResponse>, Status> {
        let reply = snapshot_recv::receive_snapshot(&*self.groups, request.into_inner()).await;
        record_received("install_snapshot", &reply);
        Ok(Response::new(reply.into()))
    }

    async fn transfer_leader(
        &self,
        request: Request<martelo_proto::TransferLeaderRequest>,
    ) -> Result<Response<martelo_proto::TransferLeaderResponse>, Status> {
        self.serve_unary(
            "transfer_leader",
            request,
            decode_transfer_leader,
            "TransferLeaderResponse",
            |raft, rpc: TransferLeaderRequest<TypeConfig>| async move {
                raft.handle_transfer_leader(rpc)
                    .await
                    .map_err(RaftError::Fatal)
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_errors_are_encoded_into_raft_error_in_the_requests_version() {
        for version in [WireVersion::OLDEST, WireVersion::CURRENT] {
            let reply = reply_from::<()>(
                "()",
                GroupId(1),
                version,
                Err(RaftError::Fatal(openraft::errors::Fatal::Stopped)),
            );
            let Reply::RaftError(bytes) = reply else {
                panic!("expected raft_error, got {reply:?}");
            };
            assert_eq!(bytes[0], version.get());
            let decoded: RaftError<TypeConfig> =
                codec::wire::decode_peer::<_, RAFT_CONTROL_PAYLOAD_BYTES_MAX>("RaftError", &bytes)
                    .expect("decodes");
            assert_eq!(decoded, RaftError::Fatal(openraft::errors::Fatal::Stopped));
        }
    }

    #[test]
    fn undecodable_payload_is_invalid_argument_for_its_group() {
        let error = decode_append(GroupId(4), b"\x01garbage").expect_err("garbage");
        assert_eq!(error.code(), ErrorCode::InvalidArgument);
        assert_eq!(error.group_id, 4);
    }

    use martelo_raft_store::types::Vote;

    fn vote_request() -> VoteRequest<TypeConfig> {
        VoteRequest::new(Vote::new(3, 1), None)
    }

    #[test]
    fn vote_and_transfer_leader_payloads_over_their_limit_are_payload_too_large() {
        let vote = codec::wire::encode_peer("VoteRequest", &vote_request(), WireVersion::CURRENT)
            .expect("encodes");
        assert_eq!(decode_vote(GroupId(4), &vote), Ok(vote_request()));
        let oversized = vec![0u8; RAFT_CONTROL_PAYLOAD_BYTES_MAX + 1];
        for error in [
            decode_vote(GroupId(4), &oversized).expect_err("vote"),
            decode_transfer_leader(GroupId(4), &oversized).expect_err("transfer leader"),
        ] {
            assert_too_large(&error);
            assert!(error.message.contains("limit"), "{}", error.message);
            assert_eq!(error.group_id, 4);
        }
    }

    #[test]
    fn an_append_batch_over_the_raft_message_limit_is_payload_too_large() {
        let oversized = vec![0u8; RAFT_MESSAGE_BYTES_MAX + 1];
        let error = decode_append(GroupId(4), &oversized).expect_err("too large");
        assert_too_large(&error);
        // A vote-sized limit does not apply to appends: a batch far above it decodes.
        let batch = full_append_batch();
        let bytes = codec::wire::encode_peer("AppendEntriesRequest", &batch, WireVersion::CURRENT)
            .expect("encodes");
        assert!(
            bytes.len() > 16 * RAFT_CONTROL_PAYLOAD_BYTES_MAX,
            "{}",
            bytes.len()
        );
        let decoded = decode_append(GroupId(4), &bytes).expect("a full batch decodes");
        assert_eq!(decoded.entries, batch.entries);
    }

    /// The largest append the cluster sends: `RAFT_ENTRIES_PER_APPEND_MAX` entries, each
    /// creating an auction with the longest title and description and the most bands.
    fn full_append_batch() -> AppendEntriesRequest<TypeConfig> {
        use martelo_engine::limits::{self, DESCRIPTION_BYTES_MAX, INCREMENT_BANDS_MAX};
        use martelo_engine::{
            Action, Actor, Amount, AuctionId, AuctionSpec, Command, Currency, Description,
            IncrementBand, IncrementPolicy, Micros, Request, RequestId, Role, SoftClose,
            SoftCloseMode, Timestamp, Title, UserId,
        };
        use martelo_raft_store::types::Entry;
        use openraft::entry::RaftEntry;
        use openraft::type_config::alias::LeaderIdOf;
        use openraft::vote::RaftLeaderIdExt;
        let longest = |bytes: usize| "\u{1F528}".repeat(bytes / 4);
        let spec = AuctionSpec {
            title: Title::try_from(longest(limits::TITLE_BYTES_MAX)).expect("title"),
            description: Description::try_from(longest(DESCRIPTION_BYTES_MAX)).expect("text"),
            currency: Currency::try_from("EUR").expect("currency"),
            starting_price: Amount(limits::AMOUNT_MAX),
            reserve_price: Some(Amount(limits::AMOUNT_MAX)),
            buy_now_price: Some(Amount(limits::AMOUNT_MAX)),
            increment: IncrementPolicy::Bands(
                (0..INCREMENT_BANDS_MAX as u64)
                    .map(|band| IncrementBand {
                        from: Amount(band * 1_000_000_000),
                        increment: Amount(limits::AMOUNT_MAX),
                    })
                    .collect(),
            ),
            start: Timestamp(u64::MAX),
            end: Timestamp(u64::MAX),
            soft_close: Some(SoftClose {
                window: Micros(u64::MAX),
                mode: SoftCloseMode::ResetRemaining(Micros(u64::MAX)),
                total_extension_max: Some(Micros(u64::MAX)),
            }),
        };
        let vote = Vote::new_committed(u64::MAX, u64::MAX);
        let leader = LeaderIdOf::<TypeConfig>::new_committed(u64::MAX, u64::MAX);
        let entries = (0..martelo_proto::RAFT_ENTRIES_PER_APPEND_MAX as u64)
            .map(|index| {
                let command = Command::Request(Request {
                    actor: Actor {
                        user: UserId(u64::MAX),
                        role: Role::Admin,
                    },
                    request_id: RequestId::try_from("r".repeat(limits::REQUEST_ID_BYTES_MAX))
                        .expect("request id"),
                    action: Action::CreateAuction {
                        auction_id: AuctionId(u64::MAX - index),
                        spec: spec.clone(),
                    },
                });
                let stamped = martelo_raft_store::Stamped {
                    timestamp: Timestamp(u64::MAX),
                    command,
                    traceparent: Some("0".repeat(martelo_proto::TRACEPARENT_BYTES)),
                };
                Entry::new_normal(openraft::LogId::new(leader, u64::MAX - index), stamped)
            })
            .collect();
        AppendEntriesRequest {
            vote,
            prev_log_id: None,
            leader_commit: None,
            entries,
        }
    }
}
