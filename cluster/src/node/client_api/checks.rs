//! The checks of the client API's requests, pure: a proposal's envelope against its
//! payload (auction request or meta command), listing and user-read requests, trace
//! contexts and gRPC deadlines. Each bad input gets a stable code; nothing here does IO.

use std::time::Duration;

use martelo_engine::codec::wire::{self, WireVersion};
use martelo_engine::meta::{UserQuery, Username};
use martelo_engine::{AuctionId, Command, GroupId, MetaActor, MetaCommand, Request, UserId};
use martelo_proto::{
    ApiError, ErrorCode, ListAuctionsRequest, ListUsersRequest, ProposeRequest, ReadUserRequest,
    Traceparent, propose_request, read_user_request,
};
use martelo_types::{ShardCount, group_of};

use super::LIST_SCANNED_AUCTIONS_MAX;

/// Checks a proposal and decodes its payload into the command to propose: an auction
/// request (`Command::Request`) or a meta command (`Command::Meta`). Returns it with the wire
/// version it came in, which its reply is encoded in.
///
/// The payload's own checks (decoding within its limit; a meta command needs a version with
/// meta types and may not act as the operator) come first, then the envelope's, shared by
/// both kinds ([`check_envelope`]).
pub fn check_propose(
    request: &ProposeRequest,
    shards: Option<ShardCount>,
) -> Result<(WireVersion, Command), ApiError> {
    let Some(version) = WireVersion::from_codec_version(request.codec_version) else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedCodec,
            format!(
                "codec version {} is not one this node reads ({} to {})",
                request.codec_version,
                wire::WIRE_VERSION_OLDEST,
                wire::WIRE_VERSION
            ),
        ));
    };
    let command = match &request.command {
        Some(propose_request::Command::EncodedRequest(bytes)) => {
            Command::Request(decode::<
                Request,
                { martelo_proto::PROPOSAL_COMMAND_BYTES_MAX },
            >(request, "command", bytes)?)
        }
        Some(propose_request::Command::EncodedMetaCommand(bytes)) => {
            if version < WireVersion::META_OLDEST {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedCodec,
                    format!(
                        "codec version {} has no meta commands: encode them in version {} or \
                         later",
                        request.codec_version,
                        WireVersion::META_OLDEST.codec_version()
                    ),
                )
                .with_group(request.group_id));
            }
            let command = decode::<MetaCommand, { martelo_proto::META_COMMAND_BYTES_MAX }>(
                request,
                "meta command",
                bytes,
            )?;
            check_meta_actor(&command).map_err(|error| error.with_group(request.group_id))?;
            Command::Meta(command)
        }
        None => {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "the proposal carries no command",
            )
            .with_group(request.group_id));
        }
    };
    check_envelope(request, &command, shards)?;
    Ok((version, command))
}

/// The client API never proposes as the operator: the operator acts only through the admin
/// API (`ProposeMeta`), which sets that actor itself.
pub fn check_meta_actor(command: &MetaCommand) -> Result<(), ApiError> {
    if command.actor == MetaActor::Operator {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "a meta command acting as the operator is refused here: the operator acts only \
             through the admin API (`martelo user create`, `ProposeMeta`)",
        ));
    }
    Ok(())
}

/// Decodes a proposal's payload within its limit: `payload_too_large` when it is (or claims
/// to be) over it, else `invalid_argument`.
fn decode<T: wire::ClientPayload, const BYTES_MAX: usize>(
    request: &ProposeRequest,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, ApiError> {
    wire::decode::<T, BYTES_MAX>(what, bytes).map_err(|error| {
        let message = format!("the {what} cannot be decoded: {error}");
        let code = if error.is_too_large() {
            ErrorCode::PayloadTooLarge
        } else {
            ErrorCode::InvalidArgument
        };
        ApiError::new(code, message).with_group(request.group_id)
    })
}

/// The checks of a proposal's envelope against its decoded command, whatever its kind: the
/// request id and auction id must be the payload's, and the group must take the command
/// (meta commands in group 0 only, auction requests in the shard of their auction).
fn check_envelope(
    request: &ProposeRequest,
    command: &Command,
    shards: Option<ShardCount>,
) -> Result<(), ApiError> {
    let invalid = |message: String| {
        ApiError::new(ErrorCode::InvalidArgument, message).with_group(request.group_id)
    };
    let (request_id, auction) = match command {
        Command::Request(decoded) => (decoded.request_id.as_str(), decoded.action.auction_id()),
        Command::Meta(decoded) => (decoded.request_id.as_str(), None),
        Command::Close { .. } => return Err(invalid("clients never send `Close`".into())),
        Command::AdoptRules { .. } => {
            return Err(invalid("clients never send `AdoptRules`".into()));
        }
    };
    if request_id != request.request_id {
        return Err(invalid(
            "request_id differs from the request id inside the command".into(),
        ));
    }
    let auction_id = auction.map_or(0, |auction| auction.0);
    if auction_id != request.auction_id {
        return Err(invalid(format!(
            "auction_id {} differs from the auction inside the command ({auction_id})",
            request.auction_id
        )));
    }
    if !command.belongs_to(GroupId(request.group_id)) {
        return Err(invalid(if command.is_meta() {
            format!(
                "a meta command goes to group 0, the meta group, not group {}",
                request.group_id
            )
        } else {
            "group 0 is the meta group; it takes no auction commands".into()
        }));
    }
    if let (Some(shards), Some(auction)) = (shards, auction) {
        let owner = group_of(auction, shards);
        if owner.0 != request.group_id {
            return Err(ApiError::new(
                ErrorCode::WrongGroup,
                format!(
                    "auction {} belongs to group {}, not {}",
                    auction.0, owner.0, request.group_id
                ),
            )
            .with_group(request.group_id));
        }
    }
    Ok(())
}

/// Checks a `ReadUser` request: a key must be given, and a username must fit
/// `USER_KEY_BYTES_MAX` (`payload_too_large`). A username that folds to no valid name is
/// not an error: no account has it.
pub fn check_read_user(request: &ReadUserRequest) -> Result<UserLookup, ApiError> {
    match &request.key {
        Some(read_user_request::Key::UserId(user)) => Ok(UserLookup::Id(UserId(*user))),
        Some(read_user_request::Key::Username(name)) => {
            check_user_key("username", name)?;
            Ok(UserLookup::Username(name.clone()))
        }
        None => Err(ApiError::new(
            ErrorCode::InvalidArgument,
            "the request names no user: set user_id or username",
        )
        .with_group(GroupId::META.0)),
    }
}

/// Which account a `ReadUser` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserLookup {
    Id(UserId),
    /// As sent; folded when the state is read.
    Username(String),
}

/// Checks a `ListUsers` request and turns it into the engine's query: text fields within
/// `USER_KEY_BYTES_MAX`, a cursor that is a valid username, a limit within
/// `LIST_USERS_LIMIT_MAX` (0: the default).
pub fn check_list_users(request: &ListUsersRequest) -> Result<UserQuery, ApiError> {
    let invalid = |message: String| {
        ApiError::new(ErrorCode::InvalidArgument, message).with_group(GroupId::META.0)
    };
    check_user_key("prefix", &request.prefix)?;
    let after = match &request.after {
        Some(after) => {
            check_user_key("after", after)?;
            let cursor = Username::fold(after)
                .map_err(|error| invalid(format!("after is not a username: {error}")))?;
            Some(cursor)
        }
        None => None,
    };
    let limit = match usize::try_from(request.limit).unwrap_or(usize::MAX) {
        0 => martelo_proto::LIST_USERS_LIMIT_DEFAULT,
        limit if limit > martelo_proto::LIST_USERS_LIMIT_MAX => {
            return Err(invalid(format!(
                "limit {limit} is above the most users a page may hold ({})",
                martelo_proto::LIST_USERS_LIMIT_MAX
            )));
        }
        limit => limit,
    };
    Ok(UserQuery {
        prefix: request.prefix.clone(),
        after,
        limit,
    })
}

fn check_user_key(field: &str, text: &str) -> Result<(), ApiError> {
    if text.len() > martelo_proto::USER_KEY_BYTES_MAX {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "{field} is {} bytes; the limit is {}",
                text.len(),
                martelo_proto::USER_KEY_BYTES_MAX
            ),
        )
        .with_group(GroupId::META.0));
    }
    Ok(())
}

// The wire limits of the meta group's requests are the engine's.
const _: () =
    assert!(martelo_proto::USER_KEY_BYTES_MAX == martelo_engine::limits::USERNAME_INPUT_BYTES_MAX);
const _: () = assert!(martelo_proto::LIST_USERS_LIMIT_MAX == martelo_engine::limits::USER_PAGE_MAX);

pub(super) fn trace_id(traceparent: &str) -> Result<Option<String>, ApiError> {
    if traceparent.is_empty() {
        return Ok(None);
    }
    let parsed = Traceparent::try_from(traceparent).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidArgument,
            format!("traceparent is malformed: {error}"),
        )
    })?;
    Ok(Some(parsed.trace_id().to_string()))
}

/// Checks a `ListAuctions` request and turns it into the engine's query (its `now` is set
/// when the page is read).
pub fn check_list(request: &ListAuctionsRequest) -> Result<martelo_engine::AuctionQuery, ApiError> {
    use martelo_engine::AuctionFilter;
    use martelo_proto::AuctionFilter as WireFilter;
    let invalid = |message: String| {
        ApiError::new(ErrorCode::InvalidArgument, message).with_group(request.group_id)
    };
    if request.group_id == GroupId::META.0 {
        return Err(invalid(
            "group 0 is the meta group; it holds no auctions: list groups 1..=shard_count".into(),
        ));
    }
    let limit = match usize::try_from(request.limit).unwrap_or(usize::MAX) {
        0 => martelo_proto::LIST_AUCTIONS_LIMIT_DEFAULT,
        limit if limit > martelo_proto::LIST_AUCTIONS_LIMIT_MAX => {
            return Err(invalid(format!(
                "limit {limit} is above the most auctions a page may hold ({})",
                martelo_proto::LIST_AUCTIONS_LIMIT_MAX
            )));
        }
        limit => limit,
    };
    let filter = match request.filter() {
        WireFilter::Unspecified | WireFilter::All => AuctionFilter::All,
        WireFilter::Open => AuctionFilter::Open,
        WireFilter::Closed => AuctionFilter::Closed,
        WireFilter::ClosingSoon if request.closing_within_us == 0 => {
            return Err(invalid(
                "the closing-soon filter needs a positive closing_within_us".into(),
            ));
        }
        WireFilter::ClosingSoon => AuctionFilter::ClosingSoon {
            within: martelo_engine::Micros(request.closing_within_us),
        },
    };
    Ok(martelo_engine::AuctionQuery {
        filter,
        after: request.after_auction_id.map(AuctionId),
        limit,
        scan_max: LIST_SCANNED_AUCTIONS_MAX,
        now: martelo_engine::Timestamp(0),
    })
}

/// The caller's gRPC deadline (`grpc-timeout`), if it sent one.
pub fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok().filter(|_| digits.len() <= 8)?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}
