//! Client side: sending a snapshot to a follower over `InstallSnapshot`, as header, data
//! chunks with offsets, trailer (see `raft.proto`), then waiting for the follower to install
//! it.
//!
//! ```text
//!   header ───────────────────────────────────────────────────┐
//!   each stored chunk ──read_chunk──► split_chunk (wire limit) ┼──► mpsc ──► InstallSnapshot
//!   trailer (bytes and pieces sent) ──────────────────────────┘               │
//!   SnapshotResponse ◄── decode_reply ◄── the peer's answer, after its install ┘
//! ```
//!
//! openraft calls this through `Network::full_snapshot` (`client.rs`). Receiving and checking
//! a snapshot is `snapshot_recv.rs`; building and storing one is `martelo_raft_store`.

use std::time::Duration;

use martelo_proto::raft_transport_client::RaftTransportClient;
use martelo_proto::{
    SNAPSHOT_CHUNK_BYTES_MAX, SnapshotChunk, SnapshotHeader, SnapshotTrailer, snapshot_chunk,
};
use martelo_raft_store::types::{Snapshot, Vote};
use martelo_raft_store::{SnapshotData, StoreError, TypeConfig};
use openraft::StorageError;
use openraft::errors::ReplicationClosed;
use openraft::raft::SnapshotResponse;
use openraft::type_config::TypeConfigExt;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::client_failure::{Failure, Rpc, decode_reply, encode_payload, failure_from_status};
use super::metrics::SNAPSHOT_BYTES_SENT_TOTAL;
use super::wire::{Envelope, IntoReply};

/// Snapshot messages queued ahead of the HTTP/2 stream: one chunk read from disk while the
/// previous one is on the wire.
const SNAPSHOT_MESSAGES_BUFFERED: usize = 2;

/// Why a snapshot was not installed: openraft's `StreamingError` kinds.
#[derive(Debug)]
pub(super) enum SnapshotFailure {
    Transport(Failure),
    /// openraft cancelled the transfer.
    Closed(ReplicationClosed),
    /// This node's snapshot could not be read.
    Storage(StorageError<TypeConfig>),
}

impl From<Failure> for SnapshotFailure {
    fn from(failure: Failure) -> Self {
        SnapshotFailure::Transport(failure)
    }
}

impl SnapshotFailure {
    pub(super) fn label(&self) -> &'static str {
        match self {
            SnapshotFailure::Transport(failure) => failure.label(),
            SnapshotFailure::Closed(_) => "closed",
            SnapshotFailure::Storage(_) => "storage",
        }
    }
}

/// Sends a snapshot: header, every stored chunk (split to the wire's chunk limit), trailer;
/// then waits for the peer to install it. Every step must make progress within `wait`
/// (openraft's `soft_ttl`, from `install_snapshot_timeout`).
pub(super) async fn send_snapshot(
    mut client: RaftTransportClient<Channel>,
    envelope: Envelope,
    vote: Vote,
    snapshot: Snapshot,
    cancel: impl Future<Output = ReplicationClosed>,
    wait: Duration,
) -> Result<SnapshotResponse<TypeConfig>, SnapshotFailure> {
    let header = SnapshotHeader {
        group_id: envelope.group_id,
        from_node_id: envelope.from_node_id,
        to_node_id: envelope.to_node_id,
        codec_version: envelope.codec_version,
        vote: encode_payload("Vote", &vote)?,
        meta: encode_payload("SnapshotMeta", &snapshot.meta)?,
        total_bytes: snapshot.snapshot.total_bytes(),
    };
    tracing::debug!(
        group = envelope.group_id,
        peer = envelope.to_node_id,
        snapshot = %snapshot.meta,
        total_bytes = header.total_bytes,
        "sending a snapshot"
    );
    let (sender, receiver) = mpsc::channel(SNAPSHOT_MESSAGES_BUFFERED);
    let mut call = std::pin::pin!(client.install_snapshot(ReceiverStream::new(receiver)));
    let feed = feed_snapshot(sender, header, snapshot, wait);
    let mut feed = std::pin::pin!(feed);
    let mut cancel = std::pin::pin!(cancel);
    // The peer may answer before the trailer (a refusal); otherwise it answers after
    // installing, which `install_snapshot_timeout` (soft_ttl) must cover.
    let early = tokio::select! {
        biased;
        closed = &mut cancel => return Err(SnapshotFailure::Closed(closed)),
        answer = &mut call => Some(answer),
        fed = &mut feed => {
            fed?;
            None
        }
    };
    let answer = match early {
        Some(answer) => answer,
        None => tokio::select! {
            biased;
            closed = &mut cancel => return Err(SnapshotFailure::Closed(closed)),
            answer = tokio::time::timeout(wait, &mut call) => {
                answer.map_err(|_| Failure::Timeout(wait))?
            }
        },
    };
    let answer = answer.map_err(|status| failure_from_status(&status, wait))?;
    Ok(decode_reply(
        Rpc::InstallSnapshot.response_name(),
        answer.into_inner().into_reply(),
    )?)
}

/// Splits a stored snapshot chunk that starts at byte `offset` into wire chunks of at most
/// `piece_bytes_max` bytes, each with its offset. An empty chunk yields nothing.
fn split_chunk(offset: u64, chunk: Bytes, piece_bytes_max: usize) -> Vec<(u64, Bytes)> {
    assert!(piece_bytes_max > 0, "a piece holds at least one byte");
    let mut pieces = Vec::with_capacity(chunk.len().div_ceil(piece_bytes_max));
    let mut start = 0;
    while start < chunk.len() {
        let end = (start + piece_bytes_max).min(chunk.len());
        pieces.push((offset + start as u64, chunk.slice(start..end)));
        start = end;
    }
    pieces
}

/// Reads one stored chunk off the async runtime (a RocksDB read of up to a chunk).
async fn read_chunk(
    data: &SnapshotData,
    chunk: u32,
    snapshot: &Snapshot,
) -> Result<Bytes, SnapshotFailure> {
    let data = data.clone();
    let read = tokio::task::spawn_blocking(move || data.read_chunk(chunk)).await;
    match read {
        Ok(Ok(bytes)) => Ok(Bytes::from(bytes)),
        // A newer snapshot replaced this one while it was being sent: openraft retries with
        // the current one.
        Ok(Err(error @ StoreError::MissingSnapshotChunk { .. })) => {
            Err(Failure::Network(format!("the snapshot changed while being sent: {error}")).into())
        }
        Ok(Err(error)) => Err(SnapshotFailure::Storage(StorageError::read_snapshot(
            Some(snapshot.meta.signature()),
            TypeConfig::err_from_error(&error),
        ))),
        Err(error) => Err(Failure::Network(format!("the snapshot reader failed: {error}")).into()),
    }
}

/// Feeds the `InstallSnapshot` request stream. Every message must be taken by the transport
/// within `wait`, so a stalled connection fails the transfer instead of hanging it. Dropping
/// the sender at the end closes the request stream.
///
/// Returns early, without an error, when the call stops taking messages: it has ended (the
/// peer refused the snapshot, or the connection failed), and its answer says why.
async fn feed_snapshot(
    sender: mpsc::Sender<SnapshotChunk>,
    header: SnapshotHeader,
    snapshot: Snapshot,
    wait: Duration,
) -> Result<(), SnapshotFailure> {
    let send = |kind: snapshot_chunk::Kind| {
        let sender = &sender;
        async move {
            let message = SnapshotChunk { kind: Some(kind) };
            match tokio::time::timeout(wait, sender.send(message)).await {
                Ok(Ok(())) => Ok(Sent::Taken),
                Ok(Err(_)) => Ok(Sent::CallEnded),
                Err(_) => Err(Failure::Timeout(wait)),
            }
        }
    };
    let total_bytes = header.total_bytes;
    if send(snapshot_chunk::Kind::Header(header)).await? == Sent::CallEnded {
        return Ok(());
    }
    let data = &snapshot.snapshot;
    let mut offset = 0u64;
    let mut chunk_count = 0u64;
    for chunk in 0..data.chunk_count() {
        let bytes = read_chunk(data, chunk, &snapshot).await?;
        let length = bytes.len() as u64;
        for (piece_offset, piece) in split_chunk(offset, bytes, SNAPSHOT_CHUNK_BYTES_MAX) {
            let piece_length = piece.len() as u64;
            let message = martelo_proto::SnapshotData {
                offset: piece_offset,
                data: piece,
            };
            if send(snapshot_chunk::Kind::Data(message)).await? == Sent::CallEnded {
                return Ok(());
            }
            chunk_count += 1;
            metrics::counter!(SNAPSHOT_BYTES_SENT_TOTAL).increment(piece_length);
        }
        offset += length;
    }
    if offset != total_bytes {
        let reason =
            format!("snapshot record says {total_bytes} bytes, its chunks hold {offset} bytes");
        return Err(SnapshotFailure::Storage(StorageError::read_snapshot(
            Some(snapshot.meta.signature()),
            TypeConfig::err_from_string(reason),
        )));
    }
    send(snapshot_chunk::Kind::Trailer(SnapshotTrailer {
        total_bytes: offset,
        chunk_count,
    }))
    .await?;
    Ok(())
}

/// Whether the transport took a snapshot message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Taken,
    /// The call no longer reads its request stream.
    CallEnded,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_chunks_split_into_wire_chunks_with_contiguous_offsets() {
        let chunk = Bytes::from(vec![7u8; 10]);
        let pieces = split_chunk(100, chunk, 4);
        let shape: Vec<(u64, usize)> = pieces.iter().map(|(o, b)| (*o, b.len())).collect();
        assert_eq!(shape, vec![(100, 4), (104, 4), (108, 2)]);
        assert!(split_chunk(5, Bytes::new(), 4).is_empty());
        assert_eq!(split_chunk(0, Bytes::from_static(b"abcd"), 4).len(), 1);
    }
}
