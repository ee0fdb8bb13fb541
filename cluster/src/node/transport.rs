//! The server half of the Raft transport: the `RaftTransport` gRPC service, which hands each
//! peer message to the Raft instance of the group it names.
//!
//! ```text
//!   peer's Network (network.rs) ──gRPC──► RaftTransportService
//!                                            │ Envelope::check: to_node_id, codec_version
//!                                            │ GroupLookup::raft(group_id)  (else unknown_group)
//!                                            │ codec::decode(payload)       (else invalid_argument)
//!                                            ▼
//!                                          group's Raft: append_entries, stream_append, vote,
//!                                            pre_vote, install_full_snapshot,
//!                                            handle_transfer_leader
//!                                            │
//!                                            ▼ codec::encode(result) or codec::encode(RaftError)
//!                                          response oneof { payload, raft_error, error }
//! ```
//!
//! Every check is a plain function or a small state machine ([`Envelope::check`],
//! [`StreamGroup`], [`SnapshotAssembly`], [`check_snapshot_leader`]) with unit tests; the
//! service methods only wire them to tonic and to the Raft. Malformed input never panics: it
//! gets an [`ApiError`] with a stable code.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use martelo_proto::raft_transport_server::RaftTransport;
use martelo_proto::{
    ApiError, ErrorCode, SNAPSHOT_CHUNK_BYTES_MAX, append_entries_response,
    install_snapshot_response, snapshot_chunk, stream_append_response, transfer_leader_response,
    vote_response,
};
use martelo_raft_store::types::{Snapshot, SnapshotMeta, Vote};
use martelo_raft_store::{GroupId, SnapshotReceiver, TypeConfig, codec};
use openraft::errors::RaftError;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::vote::RaftLeaderId;
use prost::bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Raft;

/// Counter `martelo_raft_rpc_received_total{rpc, result}`: Raft messages this node answered,
/// with `result` `ok`, `raft_error` (the Raft returned an error, sent back encoded) or the
/// [`ErrorCode`] string of a rejection (`wrong_node`, `unknown_group`, ...).
pub const RPC_RECEIVED_TOTAL: &str = "martelo_raft_rpc_received_total";
/// Counter `martelo_raft_snapshot_bytes_received_total`: snapshot data bytes stored by
/// `InstallSnapshot`, counted as they arrive (including transfers that fail later).
pub const SNAPSHOT_BYTES_RECEIVED_TOTAL: &str = "martelo_raft_snapshot_bytes_received_total";

/// Largest snapshot this node accepts, announced in the header before any byte is written.
/// The codec refuses to decode a bigger snapshot stream anyway, so accepting one would only
/// fill the disk.
pub const SNAPSHOT_TOTAL_BYTES_MAX: u64 = codec::SNAPSHOT_BYTES_MAX as u64;

/// How long an `InstallSnapshot` stream may stay silent between two messages before the
/// receiver gives up and deletes what it got. HTTP/2 keepalive catches a dead connection; this
/// catches a live sender that stopped sending.
const SNAPSHOT_MESSAGE_WAIT_MAX: Duration = Duration::from_secs(30);

/// Responses of one `StreamAppend` buffered towards the peer. openraft's
/// `Raft::stream_append` pipelines up to 64 requests, so this never throttles it.
const STREAM_APPEND_RESPONSES_BUFFERED: usize = 64;

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

/// The addressing fields every Raft transport request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) group_id: u64,
    pub(crate) from_node_id: u64,
    pub(crate) to_node_id: u64,
    pub(crate) codec_version: u32,
}

impl Envelope {
    /// The group a request is for, once it is known to be addressed to this node (`self_id`)
    /// in a codec version this build reads.
    pub(crate) fn check(&self, self_id: u64) -> Result<GroupId, ApiError> {
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
        if self.codec_version != u32::from(codec::FORMAT_VERSION) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedCodec,
                format!(
                    "payload is in codec version {}, this node reads version {}",
                    self.codec_version,
                    codec::FORMAT_VERSION
                ),
            )
            .with_group(self.group_id));
        }
        Ok(GroupId(self.group_id))
    }
}

/// Requests that carry an [`Envelope`].
pub(crate) trait Addressed {
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

/// The one shape of every Raft transport answer; each response message's `oneof result` is
/// this with its own type names.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reply {
    /// The Raft's answer, codec-encoded.
    Payload(Bytes),
    /// The `RaftError<TypeConfig>` the Raft returned, codec-encoded.
    RaftError(Bytes),
    /// The request never reached a Raft, or broke the protocol.
    Error(ApiError),
}

impl Reply {
    /// The `result` label of [`RPC_RECEIVED_TOTAL`].
    fn metric_result(&self) -> &'static str {
        match self {
            Reply::Payload(_) => "ok",
            Reply::RaftError(_) => "raft_error",
            Reply::Error(error) => error.code().as_code_str(),
        }
    }
}

/// The [`Reply`] inside a response message; `None` when it has no `result` (a newer peer
/// with a variant this build does not know).
pub(crate) trait IntoReply {
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

/// Encodes what a Raft method returned: the value as the payload, or its error as
/// `raft_error`. An encoding failure is this node's bug, reported as `internal`.
fn reply_from<T: Serialize>(
    what: &'static str,
    group: GroupId,
    result: Result<T, RaftError<TypeConfig>>,
) -> Reply {
    let encoded = match &result {
        Ok(value) => codec::encode(what, value).map(|bytes| Reply::Payload(bytes.into())),
        Err(error) => codec::encode("RaftError", error).map(|bytes| Reply::RaftError(bytes.into())),
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

/// Decodes a codec-encoded openraft message from a peer.
fn decode_payload<T: DeserializeOwned>(
    what: &'static str,
    group: GroupId,
    bytes: &[u8],
) -> Result<T, ApiError> {
    codec::decode(what, bytes).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidArgument,
            format!("cannot decode: {error}"),
        )
        .with_group(group.0)
    })
}

fn unknown_group(group: GroupId) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownGroup,
        format!("this node holds no replica of {group}"),
    )
    .with_group(group.0)
}

fn record_received(rpc: &'static str, reply: &Reply) {
    metrics::counter!(RPC_RECEIVED_TOTAL, "rpc" => rpc, "result" => reply.metric_result())
        .increment(1);
}

fn log_rejection(rpc: &'static str, envelope: &Envelope, error: &ApiError) {
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

    /// The common path of the unary RPCs: check, decode, call the Raft, encode.
    async fn serve_unary<Req, Out, Fut>(
        &self,
        rpc: &'static str,
        envelope: Envelope,
        payload: &[u8],
        names: (&'static str, &'static str),
        call: impl FnOnce(Raft, Req) -> Fut,
    ) -> Reply
    where
        Req: DeserializeOwned,
        Out: Serialize,
        Fut: Future<Output = Result<Out, RaftError<TypeConfig>>>,
    {
        let (request_name, response_name) = names;
        let opened = self.open(&envelope).and_then(|(group, raft)| {
            let request = decode_payload::<Req>(request_name, group, payload)?;
            Ok((group, raft, request))
        });
        let reply = match opened {
            Ok((group, raft, request)) => {
                reply_from(response_name, group, call(raft, request).await)
            }
            Err(error) => {
                log_rejection(rpc, &envelope, &error);
                Reply::Error(error)
            }
        };
        record_received(rpc, &reply);
        reply
    }
}

#[tonic::async_trait]
impl<G: GroupLookup> RaftTransport for RaftTransportService<G> {
    async fn append_entries(
        &self,
        request: Request<martelo_proto::AppendEntriesRequest>,
    ) -> Result<Response<martelo_proto::AppendEntriesResponse>, Status> {
        let request = request.into_inner();
        let reply = self
            .serve_unary(
                "append_entries",
                request.envelope(),
                &request.payload,
                ("AppendEntriesRequest", "AppendEntriesResponse"),
                |raft, rpc: AppendEntriesRequest<TypeConfig>| async move {
                    raft.append_entries(rpc).await
                },
            )
            .await;
        Ok(Response::new(reply.into()))
    }

    type StreamAppendStream =
        Pin<Box<dyn Stream<Item = Result<martelo_proto::StreamAppendResponse, Status>> + Send>>;

    async fn stream_append(
        &self,
        request: Request<Streaming<martelo_proto::AppendEntriesRequest>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        let inbound = request.into_inner();
        let (sender, receiver) = mpsc::channel(STREAM_APPEND_RESPONSES_BUFFERED);
        // The response headers go out at once; the first request, which names the group, is
        // read by the task. Waiting for it here would stall a client whose first request is
        // not ready yet behind its own stream setup.
        tokio::spawn(serve_stream_append(
            Arc::clone(&self.groups),
            inbound,
            sender,
        ));
        let responses = ReceiverStream::new(receiver);
        Ok(Response::new(Box::pin(responses)))
    }

    async fn vote(
        &self,
        request: Request<martelo_proto::VoteRequest>,
    ) -> Result<Response<martelo_proto::VoteResponse>, Status> {
        let request = request.into_inner();
        let reply = self
            .serve_unary(
                "vote",
                request.envelope(),
                &request.payload,
                ("VoteRequest", "VoteResponse"),
                |raft, rpc: VoteRequest<TypeConfig>| async move { raft.vote(rpc).await },
            )
            .await;
        Ok(Response::new(reply.into()))
    }

    async fn pre_vote(
        &self,
        request: Request<martelo_proto::VoteRequest>,
    ) -> Result<Response<martelo_proto::VoteResponse>, Status> {
        let request = request.into_inner();
        let reply = self
            .serve_unary(
                "pre_vote",
                request.envelope(),
                &request.payload,
                ("VoteRequest", "VoteResponse"),
                |raft, rpc: VoteRequest<TypeConfig>| async move { raft.pre_vote(rpc).await },
            )
            .await;
        Ok(Response::new(reply.into()))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<martelo_proto::SnapshotChunk>>,
    ) -> Result<Response<martelo_proto::InstallSnapshotResponse>, Status> {
        let reply = receive_snapshot(&*self.groups, request.into_inner()).await;
        record_received("install_snapshot", &reply);
        Ok(Response::new(reply.into()))
    }

    async fn transfer_leader(
        &self,
        request: Request<martelo_proto::TransferLeaderRequest>,
    ) -> Result<Response<martelo_proto::TransferLeaderResponse>, Status> {
        let request = request.into_inner();
        let reply = self
            .serve_unary(
                "transfer_leader",
                request.envelope(),
                &request.payload,
                ("TransferLeaderRequest", "TransferLeaderResponse"),
                |raft, rpc: TransferLeaderRequest<TypeConfig>| async move {
                    raft.handle_transfer_leader(rpc)
                        .await
                        .map_err(RaftError::Fatal)
                },
            )
            .await;
        Ok(Response::new(reply.into()))
    }
}

/// The group a `StreamAppend` stream is bound to: the one its first request names. Every
/// later request must name the same group and pass the same envelope checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamGroup {
    self_id: u64,
    group: GroupId,
}

impl StreamGroup {
    /// Binds a stream to the group of its first request.
    pub(crate) fn bind(
        self_id: u64,
        first: &martelo_proto::AppendEntriesRequest,
    ) -> Result<StreamGroup, ApiError> {
        let group = first.envelope().check(self_id)?;
        Ok(StreamGroup { self_id, group })
    }

    pub(crate) fn group(&self) -> GroupId {
        self.group
    }

    /// Checks a later request of the stream and decodes its payload.
    pub(crate) fn accept(
        &self,
        request: &martelo_proto::AppendEntriesRequest,
    ) -> Result<AppendEntriesRequest<TypeConfig>, ApiError> {
        let group = request.envelope().check(self.self_id)?;
        if group != self.group {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "a StreamAppend stream carries one group: it started with {}, then named {group}",
                    self.group
                ),
            )
            .with_group(self.group.0));
        }
        decode_payload("AppendEntriesRequest", group, &request.payload)
    }
}

/// Why a `StreamAppend` input ended early: read by the task once the Raft has answered every
/// request before it.
#[derive(Debug, Default)]
struct StreamFailure(Mutex<Option<ApiError>>);

impl StreamFailure {
    fn set(&self, error: ApiError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(error);
        }
    }

    fn take(&self) -> Option<ApiError> {
        self.0.lock().ok()?.take()
    }
}

type StreamAppendSender = mpsc::Sender<Result<martelo_proto::StreamAppendResponse, Status>>;

/// Serves one `StreamAppend` stream: binds it to the first request's group, feeds the decoded
/// requests to `Raft::stream_append`, and sends the results back in request order. A request
/// that fails its checks ends the input; the Raft still answers every request before it, and
/// then the stream ends with the error.
async fn serve_stream_append<G: GroupLookup>(
    groups: Arc<G>,
    mut inbound: Streaming<martelo_proto::AppendEntriesRequest>,
    outbound: StreamAppendSender,
) {
    const RPC: &str = "stream_append";
    let first = match inbound.message().await {
        Ok(Some(first)) => first,
        // The peer closed or reset the stream before sending anything: nothing to answer.
        Ok(None) => return,
        Err(status) => {
            tracing::debug!(%status, "StreamAppend ended before its first request");
            return;
        }
    };
    let envelope = first.envelope();
    let opened = StreamGroup::bind(groups.node_id(), &first).and_then(|stream_group| {
        let group = stream_group.group();
        let raft = groups.raft(group).ok_or_else(|| unknown_group(group))?;
        let request = decode_payload("AppendEntriesRequest", group, &first.payload)?;
        Ok((stream_group, raft, request))
    });
    let (stream_group, raft, first_request) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            log_rejection(RPC, &envelope, &error);
            let reply = Reply::Error(error);
            record_received(RPC, &reply);
            let _ = outbound.send(Ok(reply.into())).await;
            return;
        }
    };
    let group = stream_group.group();
    tracing::debug!(
        group = group.0,
        peer = envelope.from_node_id,
        "StreamAppend opened"
    );

    let failure = Arc::new(StreamFailure::default());
    let rest = {
        let failure = Arc::clone(&failure);
        futures::stream::unfold(inbound, move |mut inbound| {
            let failure = Arc::clone(&failure);
            async move {
                match inbound.message().await {
                    Ok(Some(message)) => match stream_group.accept(&message) {
                        Ok(request) => Some((request, inbound)),
                        Err(error) => {
                            failure.set(error);
                            None
                        }
                    },
                    Ok(None) => None,
                    Err(status) => {
                        tracing::debug!(group = group.0, %status, "StreamAppend input failed");
                        None
                    }
                }
            }
        })
    };
    let input = futures::stream::once(std::future::ready(first_request)).chain(rest);
    let output = raft.stream_append(input);
    let mut output = std::pin::pin!(output);
    while let Some(result) = output.next().await {
        // `Ok(Ok(_))` is the only result after which openraft's stream continues.
        let (reply, last) = match result {
            Ok(append_result) => {
                let last = append_result.is_err();
                (
                    reply_from("StreamAppendResult", group, Ok(append_result)),
                    last,
                )
            }
            Err(fatal) => (
                reply_from::<()>("()", group, Err(RaftError::Fatal(fatal))),
                true,
            ),
        };
        record_received(RPC, &reply);
        if outbound.send(Ok(reply.into())).await.is_err() {
            // The peer went away; dropping `output` stops the Raft's reader task.
            return;
        }
        if last {
            return;
        }
    }
    if let Some(error) = failure.take() {
        log_rejection(RPC, &envelope, &error);
        let reply = Reply::Error(error);
        record_received(RPC, &reply);
        let _ = outbound.send(Ok(reply.into())).await;
    }
}

/// The checks of one incoming snapshot's data: chunks with contiguous offsets from 0, within
/// the total the header announced, and a trailer that agrees with what arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotAssembly {
    total_bytes: u64,
    received_bytes: u64,
    chunk_count: u64,
}

impl SnapshotAssembly {
    /// Starts receiving a snapshot of `total_bytes`, refusing one larger than
    /// [`SNAPSHOT_TOTAL_BYTES_MAX`] before anything is written.
    pub(crate) fn new(total_bytes: u64) -> Result<SnapshotAssembly, ApiError> {
        if total_bytes > SNAPSHOT_TOTAL_BYTES_MAX {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "snapshot is {total_bytes} bytes, the limit is {SNAPSHOT_TOTAL_BYTES_MAX} bytes"
                ),
            ));
        }
        Ok(SnapshotAssembly {
            total_bytes,
            received_bytes: 0,
            chunk_count: 0,
        })
    }

    /// Accepts the next data chunk, of `length` bytes at `offset`.
    pub(crate) fn accept(&mut self, offset: u64, length: usize) -> Result<(), ApiError> {
        if length > SNAPSHOT_CHUNK_BYTES_MAX {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "snapshot chunk is {length} bytes, the limit is {SNAPSHOT_CHUNK_BYTES_MAX} bytes"
                ),
            ));
        }
        if offset != self.received_bytes {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "snapshot chunk {} starts at byte {offset}, expected byte {}: chunks must be \
                     contiguous",
                    self.chunk_count, self.received_bytes
                ),
            ));
        }
        let end = offset
            .checked_add(length as u64)
            .filter(|end| *end <= self.total_bytes)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "snapshot chunk at byte {offset} of {length} bytes goes past the announced \
                         total of {} bytes",
                        self.total_bytes
                    ),
                )
            })?;
        // The store numbers chunks with a u32.
        if self.chunk_count >= u64::from(u32::MAX) {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                "snapshot has more than u32::MAX chunks",
            ));
        }
        self.received_bytes = end;
        self.chunk_count += 1;
        Ok(())
    }

    /// Checks the trailer against the header and the chunks that arrived.
    pub(crate) fn finish(&self, trailer: &martelo_proto::SnapshotTrailer) -> Result<(), ApiError> {
        if trailer.total_bytes != self.total_bytes
            || self.received_bytes != self.total_bytes
            || trailer.chunk_count != self.chunk_count
        {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "snapshot trailer says {} bytes in {} chunks, the header announced {} bytes \
                     and {} bytes arrived in {} chunks",
                    trailer.total_bytes,
                    trailer.chunk_count,
                    self.total_bytes,
                    self.received_bytes,
                    self.chunk_count
                ),
            ));
        }
        Ok(())
    }
}

/// Refuses a snapshot whose last log id lies beyond the sending leader's vote.
///
/// openraft's `install_full_snapshot` asserts this (and panics, killing the group's Raft)
/// because no protocol-following leader can send such a pair; checking it first turns a
/// forged or corrupted transfer into an error. openraft's other assertion (a snapshot above
/// the local committed log id must be at a greater index) needs the follower's committed log
/// id, which only its Raft core knows.
pub(crate) fn check_snapshot_leader(vote: &Vote, meta: &SnapshotMeta) -> Result<(), ApiError> {
    let Some(last_log_id) = &meta.last_log_id else {
        return Ok(());
    };
    let leader = vote.leader_id().to_committed();
    if last_log_id.committed_leader_id() <= &leader {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!(
                "snapshot last log id {last_log_id} is beyond the leadership of the sender's vote \
                 {vote}"
            ),
        ))
    }
}

/// Waits for the next message of a snapshot stream, at most [`SNAPSHOT_MESSAGE_WAIT_MAX`].
async fn next_snapshot_message(
    inbound: &mut Streaming<martelo_proto::SnapshotChunk>,
) -> Result<Option<snapshot_chunk::Kind>, ApiError> {
    match tokio::time::timeout(SNAPSHOT_MESSAGE_WAIT_MAX, inbound.message()).await {
        Err(_) => Err(ApiError::new(
            ErrorCode::Timeout,
            format!(
                "no snapshot message for {} s",
                SNAPSHOT_MESSAGE_WAIT_MAX.as_secs()
            ),
        )),
        Ok(Err(status)) => Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("snapshot stream failed: {status}"),
        )),
        Ok(Ok(None)) => Ok(None),
        Ok(Ok(Some(chunk))) => match chunk.kind {
            Some(kind) => Ok(Some(kind)),
            None => Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "snapshot stream message has no kind: a peer newer than this node?",
            )),
        },
    }
}

fn out_of_order(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidArgument,
        format!("snapshot stream is header, data..., trailer; got {what}"),
    )
}

/// Stores one chunk without blocking the runtime: a chunk is a RocksDB write of up to 1 MiB.
/// Hands the receiver back, or drops it (deleting what it wrote) if the write task died.
async fn store_chunk(
    mut receiver: SnapshotReceiver,
    data: Bytes,
    group: GroupId,
) -> Result<SnapshotReceiver, ApiError> {
    let stored =
        tokio::task::spawn_blocking(move || receiver.push_chunk(&data).map(|()| receiver)).await;
    match stored {
        Ok(Ok(receiver)) => Ok(receiver),
        Ok(Err(error)) => Err(ApiError::new(
            ErrorCode::Internal,
            format!("cannot store a snapshot chunk: {error}"),
        )
        .with_group(group.0)),
        Err(error) => Err(ApiError::new(
            ErrorCode::Internal,
            format!("the snapshot chunk writer failed: {error}"),
        )
        .with_group(group.0)),
    }
}

/// Serves one `InstallSnapshot` stream: header, data chunks, trailer, then the install. Any
/// error before the install drops the receiver, which deletes the chunks it stored.
async fn receive_snapshot<G: GroupLookup>(
    groups: &G,
    mut inbound: Streaming<martelo_proto::SnapshotChunk>,
) -> Reply {
    const RPC: &str = "install_snapshot";
    let header = match next_snapshot_message(&mut inbound).await {
        Ok(Some(snapshot_chunk::Kind::Header(header))) => header,
        Ok(Some(_)) => return Reply::Error(out_of_order("data before the header")),
        Ok(None) => return Reply::Error(out_of_order("an empty stream")),
        Err(error) => return Reply::Error(error),
    };
    let envelope = header.envelope();
    match receive_snapshot_after_header(groups, &mut inbound, header).await {
        Ok(reply) => reply,
        Err(error) => {
            log_rejection(RPC, &envelope, &error);
            Reply::Error(error.with_group(envelope.group_id))
        }
    }
}

async fn receive_snapshot_after_header<G: GroupLookup>(
    groups: &G,
    inbound: &mut Streaming<martelo_proto::SnapshotChunk>,
    header: martelo_proto::SnapshotHeader,
) -> Result<Reply, ApiError> {
    let envelope = header.envelope();
    let group = envelope.check(groups.node_id())?;
    let vote: Vote = decode_payload("Vote", group, &header.vote)?;
    let meta: SnapshotMeta = decode_payload("SnapshotMeta", group, &header.meta)?;
    check_snapshot_leader(&vote, &meta)?;
    let mut assembly = SnapshotAssembly::new(header.total_bytes)?;
    let raft = groups.raft(group).ok_or_else(|| unknown_group(group))?;
    let mut receiver = groups
        .snapshot_receiver(group)
        .ok_or_else(|| unknown_group(group))?;
    tracing::debug!(
        group = group.0,
        peer = envelope.from_node_id,
        total_bytes = header.total_bytes,
        "receiving a snapshot"
    );
    let trailer = loop {
        match next_snapshot_message(inbound).await? {
            Some(snapshot_chunk::Kind::Data(chunk)) => {
                assembly.accept(chunk.offset, chunk.data.len())?;
                let length = chunk.data.len() as u64;
                receiver = store_chunk(receiver, chunk.data, group).await?;
                metrics::counter!(SNAPSHOT_BYTES_RECEIVED_TOTAL).increment(length);
            }
            Some(snapshot_chunk::Kind::Trailer(trailer)) => break trailer,
            Some(snapshot_chunk::Kind::Header(_)) => return Err(out_of_order("a second header")),
            None => return Err(out_of_order("the end of the stream before the trailer")),
        }
    };
    assembly.finish(&trailer)?;
    match next_snapshot_message(inbound).await? {
        None => {}
        Some(_) => return Err(out_of_order("a message after the trailer")),
    }
    let data = receiver.finish().map_err(|error| {
        ApiError::new(
            ErrorCode::Internal,
            format!("cannot finish the received snapshot: {error}"),
        )
    })?;
    tracing::debug!(
        group = group.0,
        peer = envelope.from_node_id,
        snapshot = %meta,
        "installing a received snapshot"
    );
    let installed = raft
        .install_full_snapshot(
            vote,
            Snapshot {
                meta,
                snapshot: data,
            },
        )
        .await
        .map_err(RaftError::Fatal);
    Ok(reply_from("SnapshotResponse", group, installed))
}

#[cfg(test)]
mod tests {
    use martelo_proto::{SnapshotTrailer, StreamAppendResponse};
    use openraft::LogId;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;

    const SELF_ID: u64 = 2;

    fn append_request(group_id: u64, payload: Bytes) -> martelo_proto::AppendEntriesRequest {
        martelo_proto::AppendEntriesRequest {
            group_id,
            from_node_id: 1,
            to_node_id: SELF_ID,
            codec_version: u32::from(codec::FORMAT_VERSION),
            payload,
        }
    }

    fn heartbeat_payload() -> Bytes {
        let request = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: None,
            leader_commit: None,
            entries: vec![],
        };
        codec::encode("AppendEntriesRequest", &request)
            .expect("encodes")
            .into()
    }

    #[test]
    fn envelope_for_another_node_is_wrong_node() {
        let envelope = append_request(5, Bytes::new()).envelope();
        assert_eq!(envelope.check(SELF_ID), Ok(GroupId(5)));
        let error = envelope.check(3).expect_err("addressed to node 2");
        assert_eq!(error.code(), ErrorCode::WrongNode);
        assert_eq!(error.group_id, 5);
    }

    #[test]
    fn envelope_in_another_codec_version_is_unsupported_codec() {
        let mut request = append_request(5, Bytes::new());
        request.codec_version = u32::from(codec::FORMAT_VERSION) + 1;
        let error = request.envelope().check(SELF_ID).expect_err("newer codec");
        assert_eq!(error.code(), ErrorCode::UnsupportedCodec);
        request.codec_version = 0;
        let error = request.envelope().check(SELF_ID).expect_err("unset codec");
        assert_eq!(error.code(), ErrorCode::UnsupportedCodec);
    }

    #[test]
    fn stream_bound_to_its_first_group_refuses_another_group() {
        let first = append_request(7, heartbeat_payload());
        let stream_group = StreamGroup::bind(SELF_ID, &first).expect("binds");
        assert_eq!(stream_group.group(), GroupId(7));
        assert!(stream_group.accept(&first).is_ok());
        let error = stream_group
            .accept(&append_request(8, heartbeat_payload()))
            .expect_err("group switch");
        assert_eq!(error.code(), ErrorCode::InvalidArgument);
        assert_eq!(error.group_id, 7);
        assert!(error.message.contains("group-8"), "{}", error.message);
    }

    #[test]
    fn stream_refuses_later_requests_for_another_node_or_undecodable() {
        let stream_group =
            StreamGroup::bind(SELF_ID, &append_request(7, heartbeat_payload())).expect("binds");
        let mut wrong_node = append_request(7, heartbeat_payload());
        wrong_node.to_node_id = 9;
        assert_eq!(
            stream_group
                .accept(&wrong_node)
                .expect_err("wrong node")
                .code(),
            ErrorCode::WrongNode
        );
        let garbage = append_request(7, Bytes::from_static(b"\x01garbage"));
        assert_eq!(
            stream_group.accept(&garbage).expect_err("garbage").code(),
            ErrorCode::InvalidArgument
        );
        // A flipped bit is caught by the codec's checksum, not decoded into something else.
        let mut flipped = heartbeat_payload().to_vec();
        flipped[2] ^= 0x40;
        let flipped = append_request(7, flipped.into());
        assert_eq!(
            stream_group.accept(&flipped).expect_err("corrupt").code(),
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn stream_binding_checks_the_first_request_too() {
        let mut first = append_request(7, heartbeat_payload());
        first.to_node_id = 9;
        let error = StreamGroup::bind(SELF_ID, &first).expect_err("wrong node");
        assert_eq!(error.code(), ErrorCode::WrongNode);
    }

    fn trailer(total_bytes: u64, chunk_count: u64) -> SnapshotTrailer {
        SnapshotTrailer {
            total_bytes,
            chunk_count,
        }
    }

    #[test]
    fn snapshot_with_contiguous_chunks_and_matching_trailer_is_accepted() {
        let mut assembly = SnapshotAssembly::new(25).expect("small");
        assembly.accept(0, 10).expect("first");
        assembly.accept(10, 10).expect("second");
        assembly.accept(20, 5).expect("last");
        assert_eq!(assembly.finish(&trailer(25, 3)), Ok(()));
    }

    #[test]
    fn empty_snapshot_needs_no_chunks() {
        let assembly = SnapshotAssembly::new(0).expect("empty");
        assert_eq!(assembly.finish(&trailer(0, 0)), Ok(()));
    }

    #[test]
    fn snapshot_chunk_with_a_gap_or_overlap_is_refused() {
        let mut assembly = SnapshotAssembly::new(30).expect("small");
        assembly.accept(0, 10).expect("first");
        let gap = assembly.accept(11, 5).expect_err("gap");
        assert_eq!(gap.code(), ErrorCode::InvalidArgument);
        let overlap = assembly.accept(9, 5).expect_err("overlap");
        assert_eq!(overlap.code(), ErrorCode::InvalidArgument);
        // Refused chunks change nothing: the right one is still accepted.
        assembly.accept(10, 5).expect("contiguous");
    }

    #[test]
    fn snapshot_chunk_past_the_announced_total_is_refused() {
        let mut assembly = SnapshotAssembly::new(10).expect("small");
        assembly.accept(0, 8).expect("first");
        let error = assembly.accept(8, 3).expect_err("past the end");
        assert_eq!(error.code(), ErrorCode::InvalidArgument);
        let mut near_overflow = SnapshotAssembly {
            total_bytes: SNAPSHOT_TOTAL_BYTES_MAX,
            received_bytes: u64::MAX - 1,
            chunk_count: 1,
        };
        assert!(near_overflow.accept(u64::MAX - 1, 10).is_err());
    }

    #[test]
    fn oversized_snapshot_or_chunk_is_payload_too_large() {
        let error = SnapshotAssembly::new(SNAPSHOT_TOTAL_BYTES_MAX + 1).expect_err("too big");
        assert_eq!(error.code(), ErrorCode::PayloadTooLarge);
        assert!(SnapshotAssembly::new(SNAPSHOT_TOTAL_BYTES_MAX).is_ok());
        let mut assembly = SnapshotAssembly::new(1 << 30).expect("1 GiB");
        let error = assembly
            .accept(0, SNAPSHOT_CHUNK_BYTES_MAX + 1)
            .expect_err("chunk too big");
        assert_eq!(error.code(), ErrorCode::PayloadTooLarge);
        assembly
            .accept(0, SNAPSHOT_CHUNK_BYTES_MAX)
            .expect("chunk at the limit");
    }

    #[test]
    fn snapshot_trailer_must_match_bytes_and_chunk_count() {
        let mut assembly = SnapshotAssembly::new(20).expect("small");
        assembly.accept(0, 10).expect("first");
        // Cut off: only half arrived, whatever the trailer claims.
        assert!(assembly.finish(&trailer(20, 1)).is_err());
        assembly.accept(10, 10).expect("second");
        assert!(assembly.finish(&trailer(20, 3)).is_err(), "repeated chunk");
        assert!(assembly.finish(&trailer(21, 2)).is_err(), "other total");
        assert!(assembly.finish(&trailer(20, 2)).is_ok());
    }

    fn snapshot_meta(term: u64, leader: u64, index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(
                openraft::type_config::alias::LeaderIdOf::<TypeConfig>::new_committed(term, leader),
                index,
            )),
            last_membership: Default::default(),
        }
    }

    #[test]
    fn snapshot_beyond_the_senders_leadership_is_refused() {
        let vote = Vote::new_committed(5, 1);
        assert!(check_snapshot_leader(&vote, &snapshot_meta(4, 3, 100)).is_ok());
        assert!(check_snapshot_leader(&vote, &snapshot_meta(5, 1, 100)).is_ok());
        let error = check_snapshot_leader(&vote, &snapshot_meta(6, 1, 100)).expect_err("later");
        assert_eq!(error.code(), ErrorCode::InvalidArgument);
        let empty = SnapshotMeta {
            last_log_id: None,
            ..snapshot_meta(1, 1, 0)
        };
        assert!(check_snapshot_leader(&vote, &empty).is_ok());
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

    #[test]
    fn raft_errors_are_encoded_into_raft_error() {
        let reply = reply_from::<()>(
            "()",
            GroupId(1),
            Err(RaftError::Fatal(openraft::errors::Fatal::Stopped)),
        );
        let Reply::RaftError(bytes) = reply else {
            panic!("expected raft_error, got {reply:?}");
        };
        let decoded: RaftError<TypeConfig> = codec::decode("RaftError", &bytes).expect("decodes");
        assert_eq!(decoded, RaftError::Fatal(openraft::errors::Fatal::Stopped));
    }
}
