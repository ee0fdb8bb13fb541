//! Client side: the append pipeline, a leader's replication to one follower over the
//! bidirectional `StreamAppend` RPC.
//!
//! ```text
//!   openraft's requests ──unfold──► gRPC request stream ──► peer (server_append.rs)
//!        │ Pipeline::record_sent                                   │
//!        ▼                                                         ▼
//!   Pipeline: send times of unanswered requests ◄── AppendStreamReader: responses, in order
//! ```
//!
//! Several batches are in flight at once; responses come back in request order, each timed
//! against its own request. Heartbeats do not come here: `client.rs` sends openraft's
//! one-request heartbeat streams as unary `AppendEntries`. The serving side of the stream is
//! `server_append.rs`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use martelo_proto::raft_transport_client::RaftTransportClient;
use martelo_raft_store::{GroupId, TypeConfig};
use openraft::errors::RPCError;
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use tokio::sync::Notify;
use tokio::time::Instant;
use tonic::Streaming;
use tonic::transport::Channel;

use super::client::append_message;
use super::client_failure::{Failure, Rpc, check_size, decode_reply, failure_from_status};
use super::metrics::{RPC_SECONDS, RPC_TOTAL};
use super::wire::{Envelope, IntoReply};

/// Least time a `StreamAppend` waits for the next response while requests are unanswered.
/// openraft hands replication a `soft_ttl` of 3/4 of the heartbeat interval, which is right for
/// one heartbeat but not for the next answer behind a pipeline of full batches, or on a link
/// the fault suite slows down: timing out there would resend the same batches forever. A dead
/// peer is still caught by HTTP/2 keepalive.
const STREAM_RESPONSE_WAIT_MIN: Duration = Duration::from_secs(1);

/// Opens a `StreamAppend` stream carrying `input` and returns its responses, in request
/// order.
pub(super) async fn open<S>(
    mut client: RaftTransportClient<Channel>,
    envelope: Envelope,
    input: S,
    option: &RPCOption,
) -> Result<AppendStreamReader, Failure>
where
    S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    let wait = option.soft_ttl().max(STREAM_RESPONSE_WAIT_MIN);
    let pipeline = Arc::new(Pipeline::default());
    let requests = {
        let pipeline = Arc::clone(&pipeline);
        futures::stream::unfold(input, move |mut input| {
            let pipeline = Arc::clone(&pipeline);
            async move {
                let request = input.next().await?;
                let message = append_message(envelope, &request)
                    .and_then(|message| check_size(&message).map(|()| message));
                match message {
                    Ok(message) => {
                        pipeline.record_sent(Instant::now());
                        Some((message, input))
                    }
                    // Ends the request stream; the reader reports the failure once the
                    // peer has answered the requests before it.
                    Err(failure) => {
                        pipeline.fail(failure);
                        None
                    }
                }
            }
        })
    };
    let responses = tokio::time::timeout(wait, client.stream_append(requests))
        .await
        .map_err(|_| Failure::Timeout(wait))?
        .map_err(|status| failure_from_status(&status, wait))?
        .into_inner();
    tracing::debug!(
        group = envelope.group_id,
        peer = envelope.to_node_id,
        "StreamAppend opened"
    );
    Ok(AppendStreamReader {
        responses,
        pipeline,
        wait,
        last_progress: Instant::now(),
        finished: false,
    })
}

/// The results of an opened stream as openraft takes them: each counted in `RPC_TOTAL` and
/// logged if it is a failure (at warn for a protocol failure).
pub(super) fn results(
    reader: AppendStreamReader,
    group: GroupId,
    self_id: u64,
    target: u64,
) -> impl futures::Stream<Item = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>
+ Send
+ 'static {
    futures::stream::unfold(reader, move |mut reader| async move {
        let item = reader.next().await?;
        let label = match &item {
            Ok(_) => "ok",
            Err(failure) => {
                let level_warn = matches!(failure, Failure::Protocol(_));
                if level_warn {
                    tracing::warn!(group = group.0, peer = target, %failure, "StreamAppend failed");
                } else {
                    tracing::debug!(group = group.0, peer = target, %failure, "StreamAppend failed");
                }
                failure.label()
            }
        };
        metrics::counter!(RPC_TOTAL, "rpc" => Rpc::StreamAppend.label(), "result" => label)
            .increment(1);
        let item =
            item.map_err(|failure| failure.into_rpc_error(Rpc::StreamAppend, self_id, target));
        Some((item, reader))
    })
}

/// The requests of one `StreamAppend` stream that have been sent and not answered yet, in
/// order, and why the request stream ended early, if it did.
#[derive(Debug, Default)]
struct Pipeline {
    state: Mutex<PipelineState>,
    /// Woken when a request is sent, so a reader waiting without a deadline (nothing
    /// unanswered) starts the clock.
    sent: Notify,
}

#[derive(Debug, Default)]
struct PipelineState {
    unanswered: VecDeque<Instant>,
    failure: Option<Failure>,
}

impl Pipeline {
    fn state(&self) -> std::sync::MutexGuard<'_, PipelineState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record_sent(&self, at: Instant) {
        self.state().unanswered.push_back(at);
        self.sent.notify_one();
    }

    /// Pops the oldest unanswered request's send time.
    fn record_answered(&self) -> Option<Instant> {
        self.state().unanswered.pop_front()
    }

    fn oldest_unanswered(&self) -> Option<Instant> {
        self.state().unanswered.front().copied()
    }

    fn unanswered(&self) -> usize {
        self.state().unanswered.len()
    }

    fn fail(&self, failure: Failure) {
        self.state().failure.get_or_insert(failure);
    }

    fn take_failure(&self) -> Option<Failure> {
        self.state().failure.take()
    }
}

/// The response half of one `StreamAppend` stream.
pub(super) struct AppendStreamReader {
    responses: Streaming<martelo_proto::StreamAppendResponse>,
    pipeline: Arc<Pipeline>,
    /// Longest wait for the next response while a request is unanswered.
    wait: Duration,
    /// When the last response arrived (or the stream opened).
    last_progress: Instant,
    finished: bool,
}

impl AppendStreamReader {
    /// The next result, in request order; `None` once the stream has ended. An error or a
    /// rejection (conflict, higher vote) is the last item.
    async fn next(&mut self) -> Option<Result<StreamAppendResult<TypeConfig>, Failure>> {
        if self.finished {
            return None;
        }
        let item = self.next_item().await;
        if !matches!(item, Some(Ok(Ok(_)))) {
            self.finished = true;
        }
        item
    }

    async fn next_item(&mut self) -> Option<Result<StreamAppendResult<TypeConfig>, Failure>> {
        let message = loop {
            match self.pipeline.oldest_unanswered() {
                // Nothing is owed: an idle stream may stay open for as long as openraft keeps
                // it, so wait without a deadline until a response or a new request.
                None => {
                    let sent = self.pipeline.sent.notified();
                    tokio::select! {
                        message = self.responses.next() => break message,
                        () = sent => continue,
                    }
                }
                Some(sent_at) => {
                    let deadline = sent_at.max(self.last_progress) + self.wait;
                    match tokio::time::timeout_at(deadline, self.responses.next()).await {
                        Ok(message) => break message,
                        Err(_) => return Some(Err(Failure::Timeout(self.wait))),
                    }
                }
            }
        };
        match message {
            Some(Ok(response)) => {
                let Some(sent_at) = self.pipeline.record_answered() else {
                    return Some(Err(Failure::Protocol(
                        "the peer sent more StreamAppend responses than requests".into(),
                    )));
                };
                self.last_progress = Instant::now();
                metrics::histogram!(RPC_SECONDS, "rpc" => Rpc::StreamAppend.label())
                    .record((self.last_progress - sent_at).as_secs_f64());
                Some(decode_reply(
                    Rpc::StreamAppend.response_name(),
                    response.into_reply(),
                ))
            }
            Some(Err(status)) => Some(Err(failure_from_status(&status, self.wait))),
            None => {
                if let Some(failure) = self.pipeline.take_failure() {
                    return Some(Err(failure));
                }
                match self.pipeline.unanswered() {
                    0 => None,
                    unanswered => Some(Err(Failure::Protocol(format!(
                        "the peer ended StreamAppend with {unanswered} requests unanswered"
                    )))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pipeline_tracks_unanswered_requests_in_order() {
        let pipeline = Pipeline::default();
        let first = Instant::now();
        pipeline.record_sent(first);
        tokio::time::advance(Duration::from_millis(5)).await;
        pipeline.record_sent(Instant::now());
        assert_eq!(pipeline.unanswered(), 2);
        assert_eq!(pipeline.oldest_unanswered(), Some(first));
        assert_eq!(pipeline.record_answered(), Some(first));
        assert_eq!(pipeline.unanswered(), 1);
        pipeline.fail(Failure::Network("first".into()));
        pipeline.fail(Failure::Network("second".into()));
        assert_eq!(
            pipeline.take_failure(),
            Some(Failure::Network("first".into()))
        );
        assert_eq!(pipeline.take_failure(), None);
    }
}
