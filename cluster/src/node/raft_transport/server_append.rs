//! Server side: serving one `StreamAppend` stream, a leader's replication pipeline into this
//! node.
//!
//! ```text
//!   peer's requests ──► first request: StreamGroup::bind (group, envelope)
//!                       later ones: StreamGroup::accept (same group, decode_append)
//!                          │
//!                          ▼ Raft::stream_append (openraft pipelines them)
//!   responses, in request order ◄── reply_from(StreamAppendResult) ◄──┘
//!                                   (in the first request's wire version)
//! ```
//!
//! The sending side of the stream is `client_append.rs`; the unary RPCs and the reply
//! helpers are `server.rs`.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use martelo_proto::{ApiError, ErrorCode};
use martelo_raft_store::{GroupId, TypeConfig};
use openraft::errors::RaftError;
use openraft::raft::AppendEntriesRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::server::{
    GroupLookup, decode_append, log_rejection, record_received, reply_from, unknown_group,
};
use super::wire::{Addressed, Reply};

/// Responses of one `StreamAppend` buffered towards the peer. openraft's
/// `Raft::stream_append` pipelines up to 64 requests, so this never throttles it.
const STREAM_APPEND_RESPONSES_BUFFERED: usize = 64;

type StreamAppendSender = mpsc::Sender<Result<martelo_proto::StreamAppendResponse, Status>>;

/// Serves `inbound` on a task of its own and returns the response stream.
pub(super) fn serve<G: GroupLookup>(
    groups: Arc<G>,
    inbound: Streaming<martelo_proto::AppendEntriesRequest>,
) -> ReceiverStream<Result<martelo_proto::StreamAppendResponse, Status>> {
    let (sender, receiver) = mpsc::channel(STREAM_APPEND_RESPONSES_BUFFERED);
    // The response headers go out at once; the first request, which names the group, is
    // read by the task. Waiting for it here would stall a client whose first request is
    // not ready yet behind its own stream setup.
    tokio::spawn(serve_stream_append(groups, inbound, sender));
    ReceiverStream::new(receiver)
}

/// The group a `StreamAppend` stream is bound to: the one its first request names. Every
/// later request must name the same group and pass the same envelope checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StreamGroup {
    self_id: u64,
    group: GroupId,
}

impl StreamGroup {
    /// Binds a stream to the group of its first request.
    fn bind(
        self_id: u64,
        first: &martelo_proto::AppendEntriesRequest,
    ) -> Result<StreamGroup, ApiError> {
        let group = first.envelope().check(self_id)?;
        Ok(StreamGroup { self_id, group })
    }

    fn group(&self) -> GroupId {
        self.group
    }

    /// Checks a later request of the stream and decodes its payload.
    fn accept(
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
        decode_append(group, &request.payload)
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
        let request = decode_append(group, &first.payload)?;
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
    let version = envelope.version();
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
                    reply_from("StreamAppendResult", group, version, Ok(append_result)),
                    last,
                )
            }
            Err(fatal) => (
                reply_from::<()>("()", group, version, Err(RaftError::Fatal(fatal))),
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

#[cfg(test)]
mod tests {
    use martelo_raft_store::codec::wire::WireVersion;
    use martelo_raft_store::types::Vote;
    use prost::bytes::Bytes;

    use super::*;
    use crate::node::raft_transport::server::assert_too_large;

    const SELF_ID: u64 = 2;

    fn append_request(group_id: u64, payload: Bytes) -> martelo_proto::AppendEntriesRequest {
        martelo_proto::AppendEntriesRequest {
            group_id,
            from_node_id: 1,
            to_node_id: SELF_ID,
            codec_version: WireVersion::CURRENT.codec_version(),
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
        martelo_raft_store::codec::wire::encode_peer(
            "AppendEntriesRequest",
            &request,
            WireVersion::CURRENT,
        )
        .expect("encodes")
        .into()
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
    fn stream_refuses_an_append_over_the_raft_message_limit() {
        let stream_group =
            StreamGroup::bind(SELF_ID, &append_request(7, heartbeat_payload())).expect("binds");
        let oversized = vec![0u8; martelo_proto::RAFT_MESSAGE_BYTES_MAX + 1];
        let error = stream_group
            .accept(&append_request(7, oversized.into()))
            .expect_err("too large");
        assert_too_large(&error);
    }

    #[test]
    fn stream_in_an_older_readable_wire_version_is_accepted() {
        let mut first = append_request(7, heartbeat_payload());
        first.codec_version = WireVersion::OLDEST.codec_version();
        let stream_group = StreamGroup::bind(SELF_ID, &first).expect("binds");
        assert!(stream_group.accept(&first).is_ok());
        first.codec_version = 99;
        let error = stream_group.accept(&first).expect_err("unknown version");
        assert_eq!(error.code(), ErrorCode::UnsupportedCodec);
    }

    #[test]
    fn stream_binding_checks_the_first_request_too() {
        let mut first = append_request(7, heartbeat_payload());
        first.to_node_id = 9;
        let error = StreamGroup::bind(SELF_ID, &first).expect_err("wrong node");
        assert_eq!(error.code(), ErrorCode::WrongNode);
    }
}
