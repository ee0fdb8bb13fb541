//! Server side: receiving a snapshot from a group's leader over `InstallSnapshot`, checking
//! it, storing its chunks and installing it.
//!
//! ```text
//!   header ──► Envelope::check, decode_header (vote and meta, each within
//!              RAFT_CONTROL_PAYLOAD_BYTES_MAX), check_snapshot_leader,
//!              SnapshotAssembly::new (size limit), GroupLookup::snapshot_receiver
//!   data...──► SnapshotAssembly::accept (contiguous, within the total) ──► store_chunk
//!   trailer ─► SnapshotAssembly::finish ──► receiver.finish ──► Raft::install_full_snapshot
//! ```
//!
//! The data chunks are storage-format bytes of the sender's snapshot stream: they are stored
//! as they come (each within `SNAPSHOT_CHUNK_BYTES_MAX`, all within the announced total) and
//! decoded only when the state machine installs the snapshot, as storage.
//!
//! Any error before the install drops the receiver, which deletes the chunks it stored.
//! The checks ([`SnapshotAssembly`], [`check_snapshot_leader`]) are plain code with unit
//! tests. Sending a snapshot is `snapshot_send.rs`; storing one is `martelo_raft_store`'s
//! `SnapshotReceiver`.

use std::time::Duration;

use martelo_proto::{
    ApiError, ErrorCode, RAFT_CONTROL_PAYLOAD_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX, snapshot_chunk,
};
use martelo_raft_store::types::{Snapshot, SnapshotMeta, Vote};
use martelo_raft_store::{GroupId, SnapshotReceiver, codec};
use openraft::errors::RaftError;
use openraft::vote::RaftLeaderId;
use prost::bytes::Bytes;
use tonic::Streaming;

use super::metrics::SNAPSHOT_BYTES_RECEIVED_TOTAL;
use super::server::{GroupLookup, decode_payload, log_rejection, reply_from, unknown_group};
use super::wire::{Addressed, Reply};

/// Largest snapshot this node accepts, announced in the header before any byte is written.
/// The codec refuses to decode a bigger snapshot stream anyway, so accepting one would only
/// fill the disk.
const SNAPSHOT_TOTAL_BYTES_MAX: u64 = codec::SNAPSHOT_BYTES_MAX as u64;

/// How long an `InstallSnapshot` stream may stay silent between two messages before the
/// receiver gives up and deletes what it got. HTTP/2 keepalive catches a dead connection; this
/// catches a live sender that stopped sending.
const SNAPSHOT_MESSAGE_WAIT_MAX: Duration = Duration::from_secs(30);

/// The checks of one incoming snapshot's data: chunks with contiguous offsets from 0, within
/// the total the header announced, and a trailer that agrees with what arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SnapshotAssembly {
    total_bytes: u64,
    received_bytes: u64,
    chunk_count: u64,
}

impl SnapshotAssembly {
    /// Starts receiving a snapshot of `total_bytes`, refusing one larger than
    /// [`SNAPSHOT_TOTAL_BYTES_MAX`] before anything is written.
    fn new(total_bytes: u64) -> Result<SnapshotAssembly, ApiError> {
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
    fn accept(&mut self, offset: u64, length: usize) -> Result<(), ApiError> {
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
    fn finish(&self, trailer: &martelo_proto::SnapshotTrailer) -> Result<(), ApiError> {
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

/// The sending leader's vote and the snapshot's metadata, from the header.
fn decode_header(
    group: GroupId,
    header: &martelo_proto::SnapshotHeader,
) -> Result<(Vote, SnapshotMeta), ApiError> {
    let vote = decode_payload::<_, RAFT_CONTROL_PAYLOAD_BYTES_MAX>("Vote", group, &header.vote)?;
    let meta =
        decode_payload::<_, RAFT_CONTROL_PAYLOAD_BYTES_MAX>("SnapshotMeta", group, &header.meta)?;
    Ok((vote, meta))
}

/// Refuses a snapshot whose last log id lies beyond the sending leader's vote.
///
/// openraft's `install_full_snapshot` asserts this (and panics, killing the group's Raft)
/// because no protocol-following leader can send such a pair; checking it first turns a
/// forged or corrupted transfer into an error. openraft's other assertion (a snapshot above
/// the local committed log id must be at a greater index) needs the follower's committed log
/// id, which only its Raft core knows.
fn check_snapshot_leader(vote: &Vote, meta: &SnapshotMeta) -> Result<(), ApiError> {
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
pub(super) async fn receive_snapshot<G: GroupLookup>(
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
    let (vote, meta) = decode_header(group, &header)?;
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
    Ok(reply_from(
        "SnapshotResponse",
        group,
        envelope.version(),
        installed,
    ))
}

#[cfg(test)]
mod tests {
    use martelo_proto::SnapshotTrailer;
    use martelo_raft_store::TypeConfig;
    use martelo_raft_store::codec::wire::WireVersion;
    use openraft::LogId;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::node::raft_transport::server::assert_too_large;

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

    fn header(vote: Bytes, meta: Bytes) -> martelo_proto::SnapshotHeader {
        martelo_proto::SnapshotHeader {
            group_id: 3,
            from_node_id: 1,
            to_node_id: 2,
            codec_version: WireVersion::CURRENT.codec_version(),
            vote,
            meta,
            total_bytes: 0,
        }
    }

    fn encoded<T: serde::Serialize>(what: &'static str, value: &T) -> Bytes {
        martelo_raft_store::codec::wire::encode_peer(what, value, WireVersion::CURRENT)
            .expect("encodes")
            .into()
    }

    #[test]
    fn snapshot_header_over_its_limit_is_payload_too_large() {
        let vote = Vote::new_committed(5, 1);
        let meta = snapshot_meta(5, 1, 100);
        let good = header(encoded("Vote", &vote), encoded("SnapshotMeta", &meta));
        assert_eq!(decode_header(GroupId(3), &good), Ok((vote, meta)));
        let oversized = Bytes::from(vec![0u8; RAFT_CONTROL_PAYLOAD_BYTES_MAX + 1]);
        for bad in [
            header(oversized.clone(), good.meta.clone()),
            header(good.vote.clone(), oversized),
        ] {
            let error = decode_header(GroupId(3), &bad).expect_err("too large");
            assert_too_large(&error);
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
}
