//! Unit tests of the client API's request handling: decoding proposals (wire versions, limits,
//! stable codes), list requests, the summary's wire limit, gRPC timeouts.

use super::checks::{UserLookup, check_list_users, check_read_user};
use super::*;
use martelo_engine::meta::{DisplayName, PasswordHash, Username};
use martelo_engine::{
    Action, Actor, Amount, MetaAction, MetaActor, MetaCommand, RequestId, Role, UserId,
};
use martelo_proto::propose_request::Command as WireCommand;
use martelo_proto::{ListUsersRequest, ReadUserRequest, read_user_request};
use martelo_types::group_of;

fn bid(auction: u64, request_id: &str) -> Request {
    Request {
        actor: Actor {
            user: UserId(7),
            role: Role::Bidder,
        },
        request_id: RequestId::try_from(request_id).expect("valid id"),
        action: Action::PlaceBid {
            auction_id: AuctionId(auction),
            amount: Amount(100),
            max: None,
        },
    }
}

fn proposal(group: u64, auction: u64, request_id: &str, request: &Request) -> ProposeRequest {
    ProposeRequest {
        group_id: group,
        request_id: request_id.into(),
        auction_id: auction,
        traceparent: String::new(),
        codec_version: codec_version(),
        attempt: 1,
        command: Some(martelo_proto::propose_request::Command::EncodedRequest(
            wire::encode("request", request, WireVersion::CURRENT)
                .expect("encode")
                .into(),
        )),
    }
}

#[test]
fn a_consistent_proposal_is_decoded() {
    let shards = ShardCount::try_from(8).ok();
    let request = bid(1, "r-1");
    let group = group_of(AuctionId(1), ShardCount::try_from(8).expect("8")).0;
    let decoded = check_propose(&proposal(group, 1, "r-1", &request), shards).expect("valid");
    assert_eq!(decoded, (WireVersion::CURRENT, Command::Request(request)));
}

#[test]
fn a_proposal_in_an_older_readable_wire_version_is_decoded_and_answered_in_it() {
    let shards = ShardCount::try_from(8).ok();
    let request = bid(1, "r-1");
    let group = group_of(AuctionId(1), ShardCount::try_from(8).expect("8")).0;
    let mut old = proposal(group, 1, "r-1", &request);
    old.codec_version = WireVersion::OLDEST.codec_version();
    old.command = Some(martelo_proto::propose_request::Command::EncodedRequest(
        wire::encode("request", &request, WireVersion::OLDEST)
            .expect("encode")
            .into(),
    ));
    let (version, decoded) = check_propose(&old, shards).expect("readable");
    assert_eq!(
        (version, decoded),
        (WireVersion::OLDEST, Command::Request(request))
    );
    let reply = Reply::Rejected(martelo_engine::RejectCode::BidTooLow);
    let answer = wire::encode("reply", &reply, version).expect("encode");
    assert_eq!(answer[0], wire::WIRE_VERSION_OLDEST);
}

#[test]
fn a_command_claiming_more_than_its_limit_is_payload_too_large() {
    let shards = ShardCount::try_from(8).ok();
    let request = bid(1, "r-1");
    let group = group_of(AuctionId(1), ShardCount::try_from(8).expect("8")).0;
    let mut lying = proposal(group, 1, "r-1", &request);
    // A few bytes: an actor (user 7, bidder), then a request id one terabyte long.
    let bytes = wire::encode_peer("request", &(7u64, 0u32, 1u64 << 40), WireVersion::CURRENT);
    lying.command = Some(martelo_proto::propose_request::Command::EncodedRequest(
        bytes.expect("encode").into(),
    ));
    let error = check_propose(&lying, shards).expect_err("too large");
    assert_eq!(
        error.code(),
        ErrorCode::PayloadTooLarge,
        "{}",
        error.message
    );
}

#[test]
fn inconsistent_or_malformed_proposals_get_stable_codes() {
    let shards = ShardCount::try_from(8).ok();
    let request = bid(1, "r-1");
    let owner = group_of(AuctionId(1), ShardCount::try_from(8).expect("8")).0;
    let code = |proposal: ProposeRequest| check_propose(&proposal, shards).unwrap_err().code();
    let wrong = if owner == 1 { 2 } else { 1 };
    assert_eq!(
        code(proposal(wrong, 1, "r-1", &request)),
        ErrorCode::WrongGroup
    );
    assert_eq!(
        code(proposal(owner, 1, "r-2", &request)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(proposal(owner, 2, "r-1", &request)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(proposal(0, 1, "r-1", &request)),
        ErrorCode::InvalidArgument
    );
    let mut garbage = proposal(owner, 1, "r-1", &request);
    garbage.command = Some(martelo_proto::propose_request::Command::EncodedRequest(
        vec![1, 2, 3].into(),
    ));
    assert_eq!(code(garbage), ErrorCode::InvalidArgument);
    let mut empty = proposal(owner, 1, "r-1", &request);
    empty.command = None;
    assert_eq!(code(empty), ErrorCode::InvalidArgument);
    let mut big = proposal(owner, 1, "r-1", &request);
    big.command = Some(martelo_proto::propose_request::Command::EncodedRequest(
        vec![0; martelo_proto::PROPOSAL_COMMAND_BYTES_MAX + 1].into(),
    ));
    assert_eq!(code(big), ErrorCode::PayloadTooLarge);
    let mut version = proposal(owner, 1, "r-1", &request);
    version.codec_version = 99;
    assert_eq!(code(version), ErrorCode::UnsupportedCodec);
}

fn list_request(filter: martelo_proto::AuctionFilter, limit: u32) -> ListAuctionsRequest {
    ListAuctionsRequest {
        group_id: 1,
        filter: filter.into(),
        closing_within_us: 0,
        after_auction_id: None,
        limit,
        consistency: ReadConsistency::Linearizable.into(),
        traceparent: String::new(),
    }
}

#[test]
fn a_list_request_becomes_an_engine_query_with_the_default_and_maximum_limits() {
    use martelo_engine::AuctionFilter;
    use martelo_proto::AuctionFilter as WireFilter;
    let query = check_list(&list_request(WireFilter::Unspecified, 0)).expect("valid");
    assert_eq!(query.filter, AuctionFilter::All);
    assert_eq!(query.limit, martelo_proto::LIST_AUCTIONS_LIMIT_DEFAULT);
    assert_eq!(query.after, None);
    assert_eq!(query.scan_max, LIST_SCANNED_AUCTIONS_MAX);
    let max = martelo_proto::LIST_AUCTIONS_LIMIT_MAX as u32;
    let mut request = list_request(WireFilter::ClosingSoon, max);
    request.closing_within_us = 600_000_000;
    request.after_auction_id = Some(0);
    let query = check_list(&request).expect("valid");
    assert_eq!(
        (query.filter, query.limit, query.after),
        (
            AuctionFilter::ClosingSoon {
                within: martelo_engine::Micros(600_000_000)
            },
            martelo_proto::LIST_AUCTIONS_LIMIT_MAX,
            Some(AuctionId(0))
        )
    );
}

#[test]
fn a_list_request_over_the_limit_for_the_meta_group_or_closing_within_nothing_is_invalid() {
    use martelo_proto::AuctionFilter as WireFilter;
    let code = |request: ListAuctionsRequest| check_list(&request).unwrap_err().code();
    let max = martelo_proto::LIST_AUCTIONS_LIMIT_MAX as u32;
    assert_eq!(
        code(list_request(WireFilter::All, max + 1)),
        ErrorCode::InvalidArgument
    );
    let mut meta = list_request(WireFilter::All, 10);
    meta.group_id = 0;
    assert_eq!(code(meta), ErrorCode::InvalidArgument);
    assert_eq!(
        code(list_request(WireFilter::ClosingSoon, 10)),
        ErrorCode::InvalidArgument
    );
}

/// The page-size relation in `martelo_proto::limits` holds for the largest summary the
/// engine can produce: the longest title and cancellation reason, the largest numbers.
#[test]
fn the_largest_auction_summary_fits_its_wire_limit() {
    use martelo_engine::{
        Amount, AuctionResult, AuctionSummary, Closed, Currency, Reason, Timestamp, Title, UserId,
        limits,
    };
    // Four-byte characters, as many as fit: the limits count bytes.
    let longest = |bytes: usize| "\u{1F528}".repeat(bytes / 4);
    let big = Amount(limits::AMOUNT_MAX);
    let summary = AuctionSummary {
        id: AuctionId(u64::MAX),
        seller: UserId(u64::MAX),
        title: Title::try_from(longest(limits::TITLE_BYTES_MAX)).expect("title"),
        currency: Currency::try_from("EUR").expect("currency"),
        created_at: Timestamp(u64::MAX),
        start: Timestamp(u64::MAX),
        end: Timestamp(u64::MAX),
        seq: u64::MAX,
        price: Some(big),
        leading_bidder: Some(UserId(u64::MAX)),
        minimum_bid: big,
        bid_count: u32::MAX,
        has_reserve: true,
        reserve_met: true,
        buy_now_price: Some(big),
        closed: Some(Closed {
            result: AuctionResult::Cancelled {
                by: UserId(u64::MAX),
                reason: Some(Reason::try_from(longest(limits::REASON_BYTES_MAX)).expect("reason")),
            },
            at: Timestamp(u64::MAX),
        }),
    };
    let wire = martelo_proto::AuctionSummary {
        auction_id: u64::MAX,
        seq: u64::MAX,
        summary: wire::encode("summary", &summary, WireVersion::CURRENT)
            .expect("encode")
            .into(),
    };
    // Each message in a repeated field adds its tag and length prefix.
    let length = prost::Message::encoded_len(&wire) + 1 + 3;
    assert!(
        length <= martelo_proto::AUCTION_SUMMARY_BYTES_MAX,
        "{length} bytes"
    );
    // A client decodes it within the same limit, counting integers at full width.
    let decoded = wire::decode::<AuctionSummary, { martelo_proto::AUCTION_SUMMARY_BYTES_MAX }>(
        "summary",
        &wire.summary,
    );
    assert_eq!(decoded.expect("within the limit"), summary);
}

#[test]
fn grpc_timeouts_are_parsed_in_every_unit() {
    let mut metadata = tonic::metadata::MetadataMap::new();
    assert_eq!(grpc_timeout(&metadata), None);
    for (value, expected) in [
        ("2S", Duration::from_secs(2)),
        ("150m", Duration::from_millis(150)),
        ("1M", Duration::from_secs(60)),
        ("7u", Duration::from_micros(7)),
    ] {
        metadata.insert("grpc-timeout", value.parse().expect("ascii"));
        assert_eq!(grpc_timeout(&metadata), Some(expected), "{value}");
    }
    metadata.insert("grpc-timeout", "12x".parse().expect("ascii"));
    assert_eq!(grpc_timeout(&metadata), None);
    metadata.insert("grpc-timeout", "100m".parse().expect("ascii"));
    assert_eq!(propose_wait(&metadata), Duration::from_millis(90));
}

fn register(actor: MetaActor, request_id: &str) -> MetaCommand {
    MetaCommand {
        actor,
        request_id: RequestId::try_from(request_id).expect("valid id"),
        action: MetaAction::RegisterUser {
            username: Username::fold("ana").expect("username"),
            display_name: DisplayName::try_from("Ana").expect("display name"),
            password_hash: PasswordHash::try_from("$argon2id$v=19$x").expect("hash"),
            roles: [Role::Bidder].into_iter().collect(),
        },
    }
}

fn meta_proposal(group: u64, request_id: &str, command: &MetaCommand) -> ProposeRequest {
    ProposeRequest {
        group_id: group,
        request_id: request_id.into(),
        auction_id: 0,
        traceparent: String::new(),
        codec_version: codec_version(),
        attempt: 1,
        command: Some(WireCommand::EncodedMetaCommand(
            wire::encode("meta command", command, WireVersion::CURRENT)
                .expect("encode")
                .into(),
        )),
    }
}

#[test]
fn a_meta_command_to_group_0_is_decoded_into_a_meta_command() {
    let shards = ShardCount::try_from(8).ok();
    let command = register(MetaActor::Anonymous, "m-1");
    let (version, decoded) =
        check_propose(&meta_proposal(0, "m-1", &command), shards).expect("valid");
    assert_eq!(version, WireVersion::CURRENT);
    assert_eq!(decoded, Command::Meta(command));
    let user = register(MetaActor::User(UserId(4)), "m-2");
    assert!(check_propose(&meta_proposal(0, "m-2", &user), shards).is_ok());
}

#[test]
fn a_meta_command_elsewhere_an_auction_request_to_group_0_and_the_operator_are_refused() {
    let shards = ShardCount::try_from(8).ok();
    let code = |proposal: ProposeRequest| check_propose(&proposal, shards).unwrap_err();
    let command = register(MetaActor::Anonymous, "m-1");
    let elsewhere = code(meta_proposal(1, "m-1", &command));
    assert_eq!(elsewhere.code(), ErrorCode::InvalidArgument);
    assert!(
        elsewhere.message.contains("group 0"),
        "{}",
        elsewhere.message
    );
    let auction = code(proposal(0, 1, "r-1", &bid(1, "r-1")));
    assert_eq!(auction.code(), ErrorCode::InvalidArgument);
    assert!(
        auction.message.contains("meta group"),
        "{}",
        auction.message
    );
    let operator = register(MetaActor::Operator, "m-3");
    let refused = code(meta_proposal(0, "m-3", &operator));
    assert_eq!(refused.code(), ErrorCode::PermissionDenied);
    assert_eq!(
        code(meta_proposal(0, "other", &command)).code(),
        ErrorCode::InvalidArgument
    );
    let mut with_auction = meta_proposal(0, "m-1", &command);
    with_auction.auction_id = 3;
    assert_eq!(code(with_auction).code(), ErrorCode::InvalidArgument);
    // Version 1 has no meta types: a reader of it could not decode the reply.
    let mut old = meta_proposal(0, "m-1", &command);
    old.codec_version = WireVersion::OLDEST.codec_version();
    assert_eq!(code(old).code(), ErrorCode::UnsupportedCodec);
    let mut big = meta_proposal(0, "m-1", &command);
    big.command = Some(WireCommand::EncodedMetaCommand(
        vec![0; martelo_proto::META_COMMAND_BYTES_MAX + 1].into(),
    ));
    assert_eq!(code(big).code(), ErrorCode::PayloadTooLarge);
}

fn read_user(key: Option<read_user_request::Key>) -> ReadUserRequest {
    ReadUserRequest {
        key,
        consistency: ReadConsistency::Linearizable.into(),
        traceparent: String::new(),
    }
}

#[test]
fn a_user_read_needs_a_key_within_its_limit() {
    assert_eq!(
        check_read_user(&read_user(Some(read_user_request::Key::UserId(4)))),
        Ok(UserLookup::Id(UserId(4)))
    );
    assert_eq!(
        check_read_user(&read_user(Some(read_user_request::Key::Username(
            "Ana".into()
        )))),
        Ok(UserLookup::Username("Ana".into()))
    );
    assert_eq!(
        check_read_user(&read_user(None)).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    let long = "a".repeat(martelo_proto::USER_KEY_BYTES_MAX + 1);
    let error = check_read_user(&read_user(Some(read_user_request::Key::Username(long))));
    assert_eq!(error.unwrap_err().code(), ErrorCode::PayloadTooLarge);
}

fn list_users(prefix: &str, after: Option<&str>, limit: u32) -> ListUsersRequest {
    ListUsersRequest {
        prefix: prefix.into(),
        after: after.map(Into::into),
        limit,
        consistency: ReadConsistency::Linearizable.into(),
        traceparent: String::new(),
    }
}

#[test]
fn a_user_listing_becomes_an_engine_query_within_its_limits() {
    let query = check_list_users(&list_users("an", None, 0)).expect("valid");
    assert_eq!(query.prefix, "an");
    assert_eq!(query.after, None);
    assert_eq!(query.limit, martelo_proto::LIST_USERS_LIMIT_DEFAULT);
    let max = martelo_proto::LIST_USERS_LIMIT_MAX as u32;
    let query = check_list_users(&list_users("", Some("Ana"), max)).expect("valid");
    assert_eq!(query.after, Some(Username::fold("ana").expect("username")));
    assert_eq!(query.limit, martelo_engine::limits::USER_PAGE_MAX);
    let code = |request: ListUsersRequest| check_list_users(&request).unwrap_err().code();
    assert_eq!(
        code(list_users("", None, max + 1)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(list_users("", Some("a b"), 10)),
        ErrorCode::InvalidArgument
    );
    let long = "a".repeat(martelo_proto::USER_KEY_BYTES_MAX + 1);
    assert_eq!(
        code(list_users(&long, None, 10)),
        ErrorCode::PayloadTooLarge
    );
    assert_eq!(
        code(list_users("", Some(&long), 10)),
        ErrorCode::PayloadTooLarge
    );
}

#[test]
fn a_meta_event_goes_out_with_auction_0_and_its_meta_seq() {
    let event = Event::Meta(martelo_engine::MetaEvent {
        seq: 7,
        at: martelo_engine::Timestamp(5),
        kind: martelo_engine::MetaEventKind::ClusterFactsSet { shard_count: 8 },
    });
    let envelope = subscribe::envelope(&event).expect("encodes");
    assert_eq!((envelope.auction_id, envelope.seq), (0, 7));
    let decoded =
        wire::decode::<Event, { martelo_proto::EVENT_BYTES_MAX }>("event", &envelope.event);
    assert_eq!(decoded.expect("decodes"), event);
}
