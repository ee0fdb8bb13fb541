//! The protobuf messages a node (and a client of it) decodes, with prost: every request of
//! the client API, the admin API and the Raft transport, and every response, followed where
//! the node has them by its checks of the decoded request (the real ones, compiled from the
//! cluster's source: martelo_fuzz::node_checks) and the decode of the engine payloads inside.
//!
//! Contract: prost's decode returns a typed `DecodeError` or a message that encodes to
//! `encoded_len()` bytes and decodes back to itself; the heap peak is bounded by the input's
//! size; the node's checks answer a typed `ApiError` with one of the codes that check may
//! give, or a command that agrees with its envelope; every payload decode keeps the framing
//! contract (martelo_fuzz::frame).
#![no_main]

use libfuzzer_sys::fuzz_target;
use martelo_engine::codec::wire::{self, ClientPayload};
use martelo_engine::meta::{Credentials, UserPage};
use martelo_engine::{AuctionSummary, AuctionView, Command, Event, GroupId, MetaAction, Reply};
use martelo_fuzz::frame::{self, WIRE};
use martelo_fuzz::node_checks;
use martelo_fuzz::raft::{SnapshotMeta, TypeConfig, Vote};
use martelo_fuzz::{alloc, assert_bounded_message};
use martelo_proto::{self as proto, ApiError, ErrorCode};
use martelo_types::{ShardCount, group_of};
use prost::Message;
use serde::de::DeserializeOwned;

/// Decodes `bytes` as `M` and checks prost's contract.
fn message<M: Message + Default + PartialEq>(what: &str, bytes: &[u8]) -> Option<M> {
    let result = alloc::bounded(what, bytes.len(), || M::decode(bytes));
    let decoded = match result {
        Ok(decoded) => decoded,
        Err(error) => {
            assert_bounded_message(what, &error.to_string(), bytes.len());
            return None;
        }
    };
    let again = decoded.encode_to_vec();
    assert_eq!(again.len(), decoded.encoded_len(), "{what}: encoded_len lies");
    let back = M::decode(again.as_slice()).expect("a re-encoded message decodes");
    assert!(back == decoded, "{what}: decode(encode(m)) != m");
    Some(decoded)
}

/// A client payload inside a message, decoded with its reader's limit.
fn client_payload<T: ClientPayload, const BYTES_MAX: usize>(what: &'static str, bytes: &[u8]) {
    let result = alloc::bounded(what, bytes.len(), || wire::decode::<T, BYTES_MAX>(what, bytes));
    frame::assert_framing(what, bytes, BYTES_MAX, WIRE, &result);
}

/// A Raft payload inside a message, decoded with its reader's limit.
fn peer_payload<T: DeserializeOwned, const BYTES_MAX: usize>(what: &'static str, bytes: &[u8]) {
    let result = alloc::bounded(what, bytes.len(), || {
        wire::decode_peer::<T, BYTES_MAX>(what, bytes)
    });
    frame::assert_framing(what, bytes, BYTES_MAX, WIRE, &result);
}

/// Asserts that a node's check refused with one of `codes`, in a message of bounded size.
fn assert_refusal(what: &str, error: &ApiError, codes: &[ErrorCode], input_bytes: usize) {
    let code = error.code();
    assert!(codes.contains(&code), "{what}: code {code:?} ({})", error.message);
    assert_bounded_message(what, &error.message, input_bytes);
}

fn traceparent(field: &str, input_bytes: usize) {
    match node_checks::trace_id(field) {
        Ok(None) => assert!(field.is_empty()),
        Ok(Some(trace_id)) => {
            assert_eq!(trace_id.len(), 32);
            assert!(trace_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            assert_ne!(trace_id, "0".repeat(32));
        }
        Err(error) => {
            assert_refusal("traceparent", &error, &[ErrorCode::InvalidArgument], input_bytes);
        }
    }
}

fn propose(request: &proto::ProposeRequest, input_bytes: usize) {
    traceparent(&request.traceparent, input_bytes);
    for shards in [None, ShardCount::try_from(8).ok()] {
        match node_checks::check_propose(request, shards) {
            Ok((version, command)) => {
                assert_eq!(version.codec_version(), request.codec_version);
                assert!(command.belongs_to(GroupId(request.group_id)), "{command:?}");
                let (request_id, auction) = match &command {
                    Command::Request(decoded) => {
                        (decoded.request_id.as_str(), decoded.action.auction_id())
                    }
                    Command::Meta(decoded) => {
                        node_checks::check_meta_actor(decoded).expect("an operator got through");
                        (decoded.request_id.as_str(), None)
                    }
                    other => panic!("a client proposed {other:?}"),
                };
                assert_eq!(request_id, request.request_id);
                assert_eq!(auction.map_or(0, |auction| auction.0), request.auction_id);
                if let (Some(shards), Some(auction)) = (shards, auction) {
                    assert_eq!(group_of(auction, shards).0, request.group_id);
                }
            }
            Err(error) => assert_refusal(
                "propose",
                &error,
                &[
                    ErrorCode::UnsupportedCodec,
                    ErrorCode::InvalidArgument,
                    ErrorCode::PayloadTooLarge,
                    ErrorCode::PermissionDenied,
                    ErrorCode::WrongGroup,
                ],
                input_bytes,
            ),
        }
    }
}

fn read_user(request: &proto::ReadUserRequest, input_bytes: usize) {
    traceparent(&request.traceparent, input_bytes);
    match node_checks::check_read_user(request) {
        Ok(node_checks::UserLookup::Username(name)) => {
            assert!(name.len() <= proto::USER_KEY_BYTES_MAX);
        }
        Ok(node_checks::UserLookup::Id(_)) => {}
        Err(error) => assert_refusal(
            "read user",
            &error,
            &[ErrorCode::InvalidArgument, ErrorCode::PayloadTooLarge],
            input_bytes,
        ),
    }
}

fn list_users(request: &proto::ListUsersRequest, input_bytes: usize) {
    traceparent(&request.traceparent, input_bytes);
    match node_checks::check_list_users(request) {
        Ok(query) => {
            assert!((1..=proto::LIST_USERS_LIMIT_MAX).contains(&query.limit));
            assert!(query.prefix.len() <= proto::USER_KEY_BYTES_MAX);
        }
        Err(error) => assert_refusal(
            "list users",
            &error,
            &[ErrorCode::InvalidArgument, ErrorCode::PayloadTooLarge],
            input_bytes,
        ),
    }
}

fn list_auctions(request: &proto::ListAuctionsRequest, input_bytes: usize) {
    traceparent(&request.traceparent, input_bytes);
    match node_checks::check_list(request) {
        Ok(query) => {
            assert!((1..=proto::LIST_AUCTIONS_LIMIT_MAX).contains(&query.limit));
            assert_ne!(request.group_id, GroupId::META.0);
        }
        Err(error) => {
            assert_refusal("list auctions", &error, &[ErrorCode::InvalidArgument], input_bytes);
        }
    }
}

type C = TypeConfig;
use proto::RAFT_CONTROL_PAYLOAD_BYTES_MAX as CONTROL;

/// The answers of the Raft transport share one shape: a payload, a `RaftError` or an error.
macro_rules! raft_answer {
    ($what:literal, $message:ty, $module:ident, $answer:ty, $bytes:expr) => {{
        use proto::$module::Result as Answer;
        if let Some(message) = message::<$message>($what, $bytes) {
            match &message.result {
                Some(Answer::Payload(payload)) => peer_payload::<$answer, CONTROL>($what, payload),
                Some(Answer::RaftError(payload)) => {
                    peer_payload::<openraft::errors::RaftError<C>, CONTROL>("RaftError", payload)
                }
                Some(Answer::Error(_)) | None => {}
            }
        }
    }};
}

const KINDS: u8 = 36;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let n = bytes.len();
    match selector % KINDS {
        // The client API, as a node serves it.
        0 => {
            if let Some(request) = message::<proto::ProposeRequest>("ProposeRequest", bytes) {
                propose(&request, n);
            }
        }
        1 => {
            if let Some(request) = message::<proto::ReadAuctionRequest>("ReadAuction", bytes) {
                traceparent(&request.traceparent, n);
            }
        }
        2 => {
            if let Some(request) = message::<proto::ListAuctionsRequest>("ListAuctions", bytes) {
                list_auctions(&request, n);
            }
        }
        3 => drop(message::<proto::SubscribeRequest>("SubscribeRequest", bytes)),
        4 => {
            if let Some(request) = message::<proto::ReadUserRequest>("ReadUserRequest", bytes) {
                read_user(&request, n);
            }
        }
        5 => {
            if let Some(request) = message::<proto::ListUsersRequest>("ListUsersRequest", bytes) {
                list_users(&request, n);
            }
        }
        // The admin API.
        6 => drop(message::<proto::StatusRequest>("StatusRequest", bytes)),
        7 => drop(message::<proto::InitClusterRequest>("InitClusterRequest", bytes)),
        8 => drop(message::<proto::AddLearnerRequest>("AddLearnerRequest", bytes)),
        9 => drop(message::<proto::PromoteVoterRequest>("PromoteVoterRequest", bytes)),
        10 => drop(message::<proto::RemoveNodeRequest>("RemoveNodeRequest", bytes)),
        11 => drop(message::<proto::AdminTransferLeaderRequest>("AdminTransferLeader", bytes)),
        12 => drop(message::<proto::TriggerSnapshotRequest>("TriggerSnapshotRequest", bytes)),
        13 => drop(message::<proto::ShowAuctionRequest>("ShowAuctionRequest", bytes)),
        14 => drop(message::<proto::OpenGroupRequest>("OpenGroupRequest", bytes)),
        15 => {
            if let Some(request) = message::<proto::AdminMetaRequest>("AdminMetaRequest", bytes) {
                let _ = martelo_engine::RequestId::try_from(request.request_id.as_str());
                client_payload::<MetaAction, { proto::META_COMMAND_BYTES_MAX }>(
                    "meta action",
                    &request.encoded_action,
                );
            }
        }
        // The Raft transport, as a node serves it.
        16 => {
            if let Some(request) = message::<proto::AppendEntriesRequest>("AppendEntries", bytes) {
                peer_payload::<openraft::raft::AppendEntriesRequest<C>, { proto::RAFT_MESSAGE_BYTES_MAX }>(
                    "AppendEntriesRequest",
                    &request.payload,
                );
            }
        }
        17 => {
            if let Some(request) = message::<proto::VoteRequest>("VoteRequest", bytes) {
                peer_payload::<openraft::raft::VoteRequest<C>, CONTROL>("VoteRequest", &request.payload);
            }
        }
        18 => {
            if let Some(chunk) = message::<proto::SnapshotChunk>("SnapshotChunk", bytes) {
                if let Some(proto::snapshot_chunk::Kind::Header(header)) = &chunk.kind {
                    peer_payload::<Vote, CONTROL>("Vote", &header.vote);
                    peer_payload::<SnapshotMeta, CONTROL>("SnapshotMeta", &header.meta);
                }
            }
        }
        19 => {
            if let Some(request) = message::<proto::TransferLeaderRequest>("TransferLeader", bytes) {
                peer_payload::<openraft::raft::TransferLeaderRequest<C>, CONTROL>(
                    "TransferLeaderRequest",
                    &request.payload,
                );
            }
        }
        // The Raft transport's answers, as the calling node reads them.
        20 => raft_answer!(
            "AppendEntriesResponse",
            proto::AppendEntriesResponse,
            append_entries_response,
            openraft::raft::AppendEntriesResponse<C>,
            bytes
        ),
        21 => raft_answer!(
            "StreamAppendResponse",
            proto::StreamAppendResponse,
            stream_append_response,
            openraft::raft::StreamAppendResult<C>,
            bytes
        ),
        22 => raft_answer!(
            "VoteResponse",
            proto::VoteResponse,
            vote_response,
            openraft::raft::VoteResponse<C>,
            bytes
        ),
        23 => raft_answer!(
            "InstallSnapshotResponse",
            proto::InstallSnapshotResponse,
            install_snapshot_response,
            openraft::raft::SnapshotResponse<C>,
            bytes
        ),
        24 => raft_answer!(
            "TransferLeaderResponse",
            proto::TransferLeaderResponse,
            transfer_leader_response,
            openraft::raft::TransferLeaderResponse<C>,
            bytes
        ),
        // The client API's answers, as a client (the gateway) reads them.
        25 => {
            if let Some(response) = message::<proto::ProposeResponse>("ProposeResponse", bytes) {
                if let Some(proto::propose_response::Result::Applied(applied)) = &response.result {
                    client_payload::<Reply, { proto::PROPOSAL_REPLY_BYTES_MAX }>("reply", &applied.reply);
                }
            }
        }
        26 => {
            if let Some(response) = message::<proto::ReadAuctionResponse>("ReadAuction", bytes) {
                if let Some(proto::read_auction_response::Result::Auction(view)) = &response.result {
                    client_payload::<AuctionView, { proto::AUCTION_VIEW_BYTES_MAX }>(
                        "auction view",
                        &view.state,
                    );
                }
            }
        }
        27 => {
            if let Some(response) = message::<proto::ListAuctionsResponse>("ListAuctions", bytes) {
                if let Some(proto::list_auctions_response::Result::Page(page)) = &response.result {
                    for listed in &page.auctions {
                        client_payload::<AuctionSummary, { proto::AUCTION_SUMMARY_BYTES_MAX }>(
                            "auction summary",
                            &listed.summary,
                        );
                    }
                }
            }
        }
        28 => {
            if let Some(response) = message::<proto::SubscribeResponse>("SubscribeResponse", bytes) {
                if let Some(proto::subscribe_response::Kind::Entry(entry)) = &response.kind {
                    for envelope in &entry.events {
                        client_payload::<Event, { proto::EVENT_BYTES_MAX }>("event", &envelope.event);
                    }
                }
            }
        }
        29 => {
            if let Some(response) = message::<proto::ReadUserResponse>("ReadUserResponse", bytes) {
                if let Some(proto::read_user_response::Result::User(record)) = &response.result {
                    client_payload::<Credentials, { proto::USER_RECORD_BYTES_MAX }>(
                        "user record",
                        &record.record,
                    );
                }
            }
        }
        30 => {
            if let Some(response) = message::<proto::ListUsersResponse>("ListUsersResponse", bytes) {
                if let Some(proto::list_users_response::Result::Page(list)) = &response.result {
                    client_payload::<UserPage, { proto::USER_PAGE_BYTES_MAX }>("user page", &list.page);
                }
            }
        }
        // The admin API's answers, as the CLI reads them.
        31 => drop(message::<proto::StatusResponse>("StatusResponse", bytes)),
        32 => drop(message::<proto::InitClusterResponse>("InitClusterResponse", bytes)),
        33 => drop(message::<proto::MembershipResponse>("MembershipResponse", bytes)),
        34 => drop(message::<proto::ShowAuctionResponse>("ShowAuctionResponse", bytes)),
        _ => drop(message::<proto::OpenGroupResponse>("OpenGroupResponse", bytes)),
    }
});
