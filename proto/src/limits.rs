//! Size limits of the wire protocol, in bytes unless the name says otherwise.
//!
//! Every gRPC server and client built through [`crate::services`] enforces the message limits,
//! so an oversized message is refused by tonic (status `OUT_OF_RANGE`) before a handler or a
//! decoder allocates for it. The relations between them are checked at compile time below.
//!
//! Messages carry opaque engine-codec payloads (a command, a reply, an event, a view, an
//! openraft message). Each payload that arrives from the network is decoded with its own limit
//! from here (`martelo_engine::codec::wire::decode::<T, LIMIT>`), never with the storage
//! codec's 256 MiB: the payload's length and what decoding it may claim are checked against
//! that limit before anything is allocated. bincode counts a claim at in-memory width (an
//! integer of one byte on the wire claims eight), so a decode limit sits well above the largest
//! valid payload's encoded size.

use crate::v1::{ApiError, ErrorCode};

/// Largest engine request (`ProposeRequest.encoded_request`), engine-codec-encoded. The
/// engine's own limits (description 8 KiB, 32 increment bands, ...) keep real commands far
/// below it; the gap leaves room for fields added later.
pub const PROPOSAL_COMMAND_BYTES_MAX: usize = 64 * 1024;

/// Room for everything around an opaque payload: ids, `traceparent`, codec version, protobuf
/// tags and lengths.
pub const ENVELOPE_BYTES_MAX: usize = 4 * 1024;

/// Largest message a client API server accepts: a proposal, a read or a subscription request.
pub const CLIENT_REQUEST_BYTES_MAX: usize = PROPOSAL_COMMAND_BYTES_MAX + ENVELOPE_BYTES_MAX;

/// Largest message a client API server sends and a client accepts: an `AuctionView` or one
/// `SubscribeResponse`. The server must bound the auction view it encodes to fit (the engine
/// keeps up to a million bids per auction, far more than this).
pub const CLIENT_RESPONSE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Largest admin message in either direction (status of every group on a node, an auction
/// view). Admin calls are rare, so one generous limit serves both directions.
pub const ADMIN_MESSAGE_BYTES_MAX: usize = CLIENT_RESPONSE_BYTES_MAX;

/// Most auction ids in one `SubscribeRequest.auction_ids` filter.
pub const SUBSCRIBE_AUCTIONS_MAX: usize = 4096;

/// Auctions in a `ListAuctions` page when the request's `limit` is 0.
pub const LIST_AUCTIONS_LIMIT_DEFAULT: usize = 50;

/// Most auctions in one `ListAuctions` page; a larger `limit` is `invalid_argument`.
pub const LIST_AUCTIONS_LIMIT_MAX: usize = 500;

/// Most bytes of a username in `ReadUserRequest.username`, `ListUsersRequest.prefix` and
/// `ListUsersRequest.after`: the engine's `USERNAME_INPUT_BYTES_MAX` (the node checks they
/// agree), what a username may be before it is folded. Longer is `payload_too_large`.
pub const USER_KEY_BYTES_MAX: usize = 128;

/// Accounts in a `ListUsers` page when the request's `limit` is 0.
pub const LIST_USERS_LIMIT_DEFAULT: usize = 50;

/// Most accounts in one `ListUsers` page: the engine's `USER_PAGE_MAX` (the node checks they
/// agree); a larger `limit` is `invalid_argument`.
pub const LIST_USERS_LIMIT_MAX: usize = 200;

/// Decode limit of a martelo-engine `MetaCommand` (`ProposeRequest.encoded_meta_command`)
/// and of a `MetaAction` (`AdminMetaRequest.encoded_action`). The largest, a registration,
/// holds a username, a display name and a password hash: under 1 KiB.
pub const META_COMMAND_BYTES_MAX: usize = 8 * 1024;

/// Decode limit of a martelo-engine `meta::Credentials` (`UserRecord.record`): an account
/// summary (username, display name, roles, a suspension reason of up to 500 bytes) and a
/// password hash of up to 256 bytes. Under 2 KiB encoded; decoding may claim more.
pub const USER_RECORD_BYTES_MAX: usize = 16 * 1024;

/// Decode limit of a martelo-engine `meta::UserPage` (`UserList.page`): up to
/// [`LIST_USERS_LIMIT_MAX`] summaries of under 1 KiB each, with room for claims at full width.
pub const USER_PAGE_BYTES_MAX: usize = 1024 * 1024;

/// Largest encoded `AuctionSummary` (envelope and engine summary). The summary's variable
/// parts are a title (200 bytes) and a cancellation reason (500 bytes); the node's tests
/// check a summary with both at their maximum against this.
pub const AUCTION_SUMMARY_BYTES_MAX: usize = 2 * 1024;

/// Most entries the cluster may put in one `AppendEntries`: the cluster's openraft
/// `Config::max_payload_entries` must not exceed it, or a full batch of maximal commands
/// would not fit in [`RAFT_MESSAGE_BYTES_MAX`].
pub const RAFT_ENTRIES_PER_APPEND_MAX: usize = 256;

/// What one log entry adds around its command in the raft-store codec: log id, cluster
/// timestamp, `traceparent`, request id and codec framing.
pub const RAFT_ENTRY_OVERHEAD_BYTES_MAX: usize = 1024;

/// Largest data chunk in one `SnapshotData` message. 1 MiB keeps per-message memory small
/// while amortizing the per-message cost of HTTP/2 and protobuf.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// Largest message on the Raft transport, in either direction. Also the decode limit of an
/// append batch (`AppendEntriesRequest.payload`), which may fill a message.
pub const RAFT_MESSAGE_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Decode limit of every other Raft transport payload: a vote or pre-vote request, a
/// transfer-leader request, a snapshot header's vote and metadata, and every answer (append
/// and stream-append results, votes, snapshot and transfer-leader responses, `RaftError`).
/// Each holds a few log ids and votes, or a membership of a few nodes: under 1 KiB.
pub const RAFT_CONTROL_PAYLOAD_BYTES_MAX: usize = 64 * 1024;

/// Decode limit of an engine `Reply` (`Applied.reply`), as a client reads it. Replies hold
/// ids, amounts and codes: a few dozen bytes.
pub const PROPOSAL_REPLY_BYTES_MAX: usize = 64 * 1024;

/// Decode limit of one engine `Event` (`EventEnvelope.event`), as a subscriber reads it. The
/// largest event, an auction's creation, carries its listing: what its command carried, at
/// most [`PROPOSAL_COMMAND_BYTES_MAX`].
pub const EVENT_BYTES_MAX: usize = PROPOSAL_COMMAND_BYTES_MAX;

/// Decode limit of an engine `AuctionView` (`AuctionView.state`), as a client reads it. The
/// message holding it is at most [`CLIENT_RESPONSE_BYTES_MAX`]; its bids claim about twice
/// their encoded size when decoded (integers at full width), so the limit is four times that.
pub const AUCTION_VIEW_BYTES_MAX: usize = 4 * CLIENT_RESPONSE_BYTES_MAX;

/// Length of a version-00 W3C `traceparent`: `00-` + 32 hex + `-` + 16 hex + `-` + 2 hex.
pub const TRACEPARENT_BYTES: usize = 55;

// A full AppendEntries of maximal commands fits in one Raft message.
const _: () = assert!(
    RAFT_ENTRIES_PER_APPEND_MAX * (PROPOSAL_COMMAND_BYTES_MAX + RAFT_ENTRY_OVERHEAD_BYTES_MAX)
        + ENVELOPE_BYTES_MAX
        <= RAFT_MESSAGE_BYTES_MAX
);
// A snapshot chunk with its envelope fits in one Raft message.
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX + ENVELOPE_BYTES_MAX <= RAFT_MESSAGE_BYTES_MAX);
// The largest subscription filter (10 bytes per varint id at worst) fits in a request.
const _: () = assert!(SUBSCRIBE_AUCTIONS_MAX * 10 + ENVELOPE_BYTES_MAX <= CLIENT_REQUEST_BYTES_MAX);
// A full page of maximal auction summaries fits in a response.
const _: () = assert!(
    LIST_AUCTIONS_LIMIT_MAX * AUCTION_SUMMARY_BYTES_MAX + ENVELOPE_BYTES_MAX
        <= CLIENT_RESPONSE_BYTES_MAX
);
const _: () = assert!(0 < LIST_AUCTIONS_LIMIT_DEFAULT);
const _: () = assert!(LIST_AUCTIONS_LIMIT_DEFAULT <= LIST_AUCTIONS_LIMIT_MAX);
// A reply to a maximal proposal can carry at least as much as the proposal did.
const _: () = assert!(CLIENT_REQUEST_BYTES_MAX <= CLIENT_RESPONSE_BYTES_MAX);
// Every decode limit of a payload that shares its message with others is below the message's.
const _: () =
    assert!(RAFT_CONTROL_PAYLOAD_BYTES_MAX + ENVELOPE_BYTES_MAX <= RAFT_MESSAGE_BYTES_MAX);
const _: () = assert!(PROPOSAL_REPLY_BYTES_MAX + ENVELOPE_BYTES_MAX <= CLIENT_RESPONSE_BYTES_MAX);
const _: () = assert!(EVENT_BYTES_MAX + ENVELOPE_BYTES_MAX <= CLIENT_RESPONSE_BYTES_MAX);
const _: () = assert!(META_COMMAND_BYTES_MAX <= PROPOSAL_COMMAND_BYTES_MAX);
const _: () = assert!(USER_RECORD_BYTES_MAX + ENVELOPE_BYTES_MAX <= CLIENT_RESPONSE_BYTES_MAX);
const _: () = assert!(USER_PAGE_BYTES_MAX + ENVELOPE_BYTES_MAX <= CLIENT_RESPONSE_BYTES_MAX);
const _: () = assert!(0 < LIST_USERS_LIMIT_DEFAULT);
const _: () = assert!(LIST_USERS_LIMIT_DEFAULT <= LIST_USERS_LIMIT_MAX);

/// Checks a message's encoded size against `limit` before it is sent.
///
/// tonic enforces its encoding limit too, but a client sees that as an opaque HTTP/2 reset
/// (`Internal`), which under I9 could not be told apart from a failure after the send. A
/// client that calls this first gets a typed `payload_too_large` that proves nothing was
/// sent.
pub fn check_encoded_len(message: &impl prost::Message, limit: usize) -> Result<(), ApiError> {
    let length = message.encoded_len();
    if length > limit {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("message is {length} bytes, the limit is {limit} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::ProposeRequest;

    #[test]
    fn message_at_the_limit_passes_and_one_byte_over_fails() {
        let request = ProposeRequest {
            request_id: "r".repeat(100),
            ..ProposeRequest::default()
        };
        let length = prost::Message::encoded_len(&request);
        assert!(check_encoded_len(&request, length).is_ok());
        let error = check_encoded_len(&request, length - 1).expect_err("over the limit");
        assert_eq!(error.code(), ErrorCode::PayloadTooLarge);
    }
}
