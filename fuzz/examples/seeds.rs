//! Writes the seed corpora of every fuzz target into `corpus/<target>/` (run from `fuzz/`:
//! `cargo run --example seeds`), each seed a valid input in the shape its target reads
//! (martelo_fuzz::frame for the codec targets: a selector byte, then the frame without its
//! checksum). The values come from a short scenario applied to the real engine (accounts,
//! sessions, auctions, bids, voids, a close), so they hold the shapes the node really sends.
//!
//! After a change here, regenerate and minimize (docs/TESTING.md, "Fuzzing").

// Linked for its coverage callbacks only: this runs with the targets' instrumented build
// (see docs/TESTING.md), which calls them.
use libfuzzer_sys as _;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use martelo_engine::codec::{self, wire::{self, WireVersion}};
use martelo_engine::meta::{DisplayName, FamilyId, PasswordHash, TokenHash, UserQuery, Username};
use martelo_engine::{
    Action, Actor, Amount, ApplyCtx, AuctionId, AuctionSpec, BidId, Command, Currency,
    Description, IncrementBand, IncrementPolicy, MetaAction, MetaActor,
    MetaCommand, Micros, Outcome, Reason, Request, RequestId, Role, SoftClose, SoftCloseMode,
    State, Timestamp, Title, UserId,
};
use martelo_fuzz::frame;
use martelo_fuzz::raft::{
    AppliedState, Entry, LogId, SnapshotMeta, SnapshotRecord, Stamped, StoredMembership,
    StoredRecord, TypeConfig, Vote,
};
use martelo_gateway::auth::keys::KeyRing;
use martelo_gateway::auth::refresh::RefreshToken;
use martelo_gateway::auth::tokens;
use martelo_gateway::config::TokenConfig;
use martelo_proto as proto;
use openraft::entry::RaftEntry;
use openraft::type_config::alias::LeaderIdOf;
use openraft::vote::RaftLeaderIdExt;
use prost::Message;
use serde::Serialize;

const T0: u64 = 1_790_000_000_000_000;
const HOUR: u64 = 3_600_000_000;
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn put(&mut self, target: &str, input: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        let name = blake3::hash(input).to_hex()[..16].to_owned();
        std::fs::write(dir.join(name), input).expect("seed written");
        self.written += 1;
    }

    /// A codec seed: `kind` and `frame` with its checksum left for the target to fix up;
    /// every few seeds also the whole frame as sent (the raw shape).
    fn frame(&mut self, target: &str, kind: u8, frame_bytes: &[u8]) {
        self.put(target, &frame::unshaped(kind, frame_bytes));
        if frame_bytes.len() < 64 {
            let mut raw = vec![kind | 0x80];
            raw.extend_from_slice(frame_bytes);
            self.put(target, &raw);
        }
    }

    fn stored<T: Serialize>(&mut self, kind: u8, value: &T) {
        let bytes = codec::encode("seed", value).expect("encodes");
        self.frame("codec_storage", kind, &bytes);
    }

    /// A stored value in an older storage format too (what a build of that format wrote).
    fn stored_old<T: Serialize>(&mut self, kind: u8, value: &T, version: u8) {
        let bytes = codec::encode_in_format(version, "seed", value).expect("encodes");
        self.frame("codec_storage", kind, &bytes);
    }

    fn client<T: wire::ClientPayload>(&mut self, kind: u8, value: &T, version: WireVersion) {
        let bytes = wire::encode("seed", value, version).expect("encodes");
        self.frame("codec_wire_client", kind, &bytes);
    }

    fn peer<T: Serialize>(&mut self, kind: u8, value: &T) {
        let bytes = wire::encode_peer("seed", value, WireVersion::CURRENT).expect("encodes");
        self.frame("codec_wire_peer", kind, &bytes);
    }

    fn proto<M: Message>(&mut self, kind: u8, message: &M) {
        let mut input = vec![kind];
        input.extend_from_slice(&message.encode_to_vec());
        self.put("proto_messages", &input);
    }

    fn text(&mut self, target: &str, kind: Option<u8>, text: &str) {
        let mut input: Vec<u8> = kind.into_iter().collect();
        input.extend_from_slice(text.as_bytes());
        self.put(target, &input);
    }
}

fn request_id(text: &str) -> RequestId {
    RequestId::try_from(text).expect("request id")
}

fn reason(text: &str) -> Reason {
    Reason::try_from(text).expect("reason")
}

fn spec(title: &str, start: u64, end: u64, increment: IncrementPolicy) -> AuctionSpec {
    AuctionSpec {
        title: Title::try_from(title).expect("title"),
        description: Description::try_from("A fine thing, barely used.").expect("description"),
        currency: Currency::try_from("EUR").expect("currency"),
        starting_price: Amount(1_000),
        reserve_price: Some(Amount(5_000)),
        buy_now_price: Some(Amount(90_000)),
        increment,
        start: Timestamp(start),
        end: Timestamp(end),
        soft_close: Some(SoftClose {
            window: Micros(120_000_000),
            mode: SoftCloseMode::AddToEnd(Micros(120_000_000)),
            total_extension_max: Some(Micros(HOUR)),
        }),
    }
}

fn as_user(user: u64, role: Role, id: &str, action: Action) -> Command {
    Command::Request(Request {
        actor: Actor {
            user: UserId(user),
            role,
        },
        request_id: request_id(id),
        action,
    })
}

fn meta(actor: MetaActor, id: &str, action: MetaAction) -> Command {
    Command::Meta(MetaCommand {
        actor,
        request_id: request_id(id),
        action,
    })
}

fn phc() -> PasswordHash {
    let text = format!("$argon2id$v=19$m=19456,t=2,p=1${}${}", "c2FsdA".repeat(3) + "xxxx", "h".repeat(43));
    PasswordHash::try_from(text).expect("phc")
}

fn register(actor: MetaActor, id: &str, name: &str, roles: &[Role]) -> Command {
    meta(
        actor,
        id,
        MetaAction::RegisterUser {
            username: Username::fold(name).expect("username"),
            display_name: DisplayName::try_from(name).expect("display name"),
            password_hash: phc(),
            roles: roles.iter().copied().collect(),
        },
    )
}

/// The scenario's commands, in log order.
fn commands() -> Vec<Command> {
    let a1 = AuctionId(101);
    let a2 = AuctionId(102);
    let a3 = AuctionId(103);
    let bands = IncrementPolicy::Bands(vec![
        IncrementBand {
            from: Amount(0),
            increment: Amount(100),
        },
        IncrementBand {
            from: Amount(10_000),
            increment: Amount(500),
        },
    ]);
    vec![
        meta(MetaActor::Operator, "m-facts", MetaAction::SetClusterFacts { shard_count: 8 }),
        register(MetaActor::Operator, "m-admin", "root", &[Role::Admin]),
        register(MetaActor::Anonymous, "m-ana", "ana", &[Role::Seller, Role::Bidder]),
        register(MetaActor::Anonymous, "m-bo", "bob", &[Role::Bidder]),
        register(MetaActor::Anonymous, "m-cy", "cyd", &[Role::Bidder]),
        meta(
            MetaActor::User(UserId(2)),
            "m-session",
            MetaAction::CreateSession {
                user: UserId(2),
                family: FamilyId(0xfeed),
                token_hash: TokenHash([7; 32]),
                expires_at: Timestamp(T0 + 24 * HOUR),
            },
        ),
        meta(
            MetaActor::Anonymous,
            "m-rotate",
            MetaAction::RotateRefresh {
                family: FamilyId(0xfeed),
                presented_token_hash: TokenHash([7; 32]),
                new_token_hash: TokenHash([8; 32]),
                new_expires_at: Timestamp(T0 + 48 * HOUR),
            },
        ),
        meta(
            MetaActor::User(UserId(1)),
            "m-grant",
            MetaAction::GrantRole {
                user: UserId(3),
                role: Role::Seller,
            },
        ),
        as_user(2, Role::Seller, "c-1", Action::CreateAuction {
            auction_id: a1,
            spec: spec("Brass compass", T0, T0 + HOUR, IncrementPolicy::Ebay),
        }),
        as_user(2, Role::Seller, "c-2", Action::CreateAuction {
            auction_id: a2,
            spec: spec("Oak chair", T0, T0 + 2 * HOUR, bands),
        }),
        as_user(2, Role::Seller, "c-3", Action::CreateAuction {
            auction_id: a3,
            spec: spec("Tin toy", T0 + HOUR, T0 + 3 * HOUR, IncrementPolicy::Fixed(Amount(250))),
        }),
        as_user(2, Role::Seller, "e-3", Action::EditAuction {
            auction_id: a3,
            spec: spec("Tin toy, boxed", T0 + HOUR, T0 + 3 * HOUR, IncrementPolicy::Ebay),
        }),
        as_user(3, Role::Bidder, "b-1", Action::PlaceBid {
            auction_id: a1,
            amount: Amount(1_000),
            max: Some(Amount(8_000)),
        }),
        as_user(4, Role::Bidder, "b-2", Action::PlaceBid {
            auction_id: a1,
            amount: Amount(1_100),
            max: None,
        }),
        as_user(4, Role::Bidder, "b-3", Action::PlaceBid {
            auction_id: a1,
            amount: Amount(9_000),
            max: Some(Amount(12_000)),
        }),
        as_user(3, Role::Bidder, "b-low", Action::PlaceBid {
            auction_id: a1,
            amount: Amount(1_001),
            max: None,
        }),
        as_user(2, Role::Bidder, "b-own", Action::PlaceBid {
            auction_id: a1,
            amount: Amount(20_000),
            max: None,
        }),
        as_user(1, Role::Admin, "v-1", Action::VoidBid {
            auction_id: a1,
            bid_id: BidId(1),
            reason: reason("shill bidding"),
        }),
        as_user(3, Role::Bidder, "buy-2", Action::BuyNow { auction_id: a2 }),
        as_user(1, Role::Admin, "s-4", Action::SuspendBidder {
            user: UserId(4),
            reason: reason("unpaid items"),
        }),
        as_user(1, Role::Admin, "r-4", Action::ReinstateBidder { user: UserId(4) }),
        as_user(1, Role::Admin, "rm-4", Action::RemoveBidder {
            auction_id: a1,
            user: UserId(4),
            reason: reason("removed"),
        }),
        as_user(2, Role::Seller, "x-3", Action::CancelAuction {
            auction_id: a3,
            reason: Some(reason("withdrawn")),
        }),
        as_user(3, Role::Bidder, "b-gone", Action::PlaceBid {
            auction_id: AuctionId(999),
            amount: Amount(1_000),
            max: None,
        }),
        Command::Close { auction_id: a1 },
        meta(
            MetaActor::User(UserId(1)),
            "m-suspend",
            MetaAction::SuspendUser {
                user: UserId(4),
                reason: reason("abuse"),
            },
        ),
        meta(
            MetaActor::User(UserId(2)),
            "m-revoke",
            MetaAction::RevokeFamily { family: FamilyId(0xfeed) },
        ),
    ]
}

/// Applies the scenario: the final state and each command with its outcome and timestamp.
fn scenario() -> (State, Vec<(u64, Timestamp, Command, Outcome)>) {
    let mut state = State::new();
    let mut applied = Vec::new();
    for (index, command) in commands().into_iter().enumerate() {
        let log_index = index as u64 + 1;
        // Close comes after the first auction's end; everything else during bidding.
        let timestamp = Timestamp(match command {
            Command::Close { .. } => T0 + HOUR + 600_000_000,
            _ => T0 + 1_000 * log_index,
        });
        let outcome = state.apply(ApplyCtx { log_index, timestamp }, &command);
        applied.push((log_index, timestamp, command, outcome));
    }
    (state, applied)
}

fn leader(term: u64, node: u64) -> LeaderIdOf<TypeConfig> {
    LeaderIdOf::<TypeConfig>::new_committed(term, node)
}

fn log_id(term: u64, index: u64) -> LogId {
    openraft::LogId::new(leader(term, 1), index)
}

fn membership() -> StoredMembership {
    let voters: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
    let membership = openraft::Membership::new_with_defaults(vec![voters], [4]);
    StoredMembership::new(Some(log_id(1, 1)), membership)
}

fn entries(applied: &[(u64, Timestamp, Command, Outcome)]) -> Vec<Entry> {
    let mut entries = vec![Entry::new_blank(log_id(1, 0))];
    let membership = membership();
    entries.push(Entry::new_membership(log_id(1, 1), membership.membership().clone()));
    for (index, timestamp, command, _) in applied {
        let stamped = Stamped {
            timestamp: *timestamp,
            command: command.clone(),
            traceparent: (index % 2 == 0).then(|| TRACEPARENT.to_owned()),
        };
        entries.push(Entry::new_normal(log_id(2, index + 1), stamped));
    }
    entries
}

fn codec_seeds(corpus: &mut Corpus, state: &State, applied: &[(u64, Timestamp, Command, Outcome)]) {
    let entries = entries(applied);
    let vote = Vote::new_committed(2, 1);
    let last = log_id(2, applied.len() as u64 + 1);
    let applied_state = AppliedState {
        last_applied: Some(last),
        membership: membership(),
        engine: state.clone(),
    };
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: membership(),
    };
    // codec_storage: the kinds of fuzz_targets/codec_storage.rs.
    for entry in &entries {
        corpus.stored(0, entry);
    }
    corpus.stored(1, &vote);
    corpus.stored(1, &Vote::new(3, 2));
    corpus.stored(2, &Some(last));
    corpus.stored(2, &None::<LogId>);
    corpus.stored(3, &log_id(1, 7));
    corpus.stored(4, &applied_state);
    corpus.stored(4, &AppliedState::default());
    for (_, timestamp, command, outcome) in applied {
        let rejections = match &outcome.reply {
            martelo_engine::Reply::Rejected(code) => vec![martelo_engine::outcome::Rejection {
                auction_id: command.auction_id(),
                actor: None,
                code: *code,
                at: *timestamp,
            }],
            martelo_engine::Reply::Accepted(_) => Vec::new(),
        };
        let record = StoredRecord {
            events: outcome.events.clone(),
            rejections,
            traceparent: Some(TRACEPARENT.to_owned()),
        };
        if !record.events.is_empty() || !record.rejections.is_empty() {
            corpus.stored(5, &record);
        }
        corpus.stored(7, command);
        if !outcome.events.is_empty() {
            corpus.stored(9, &outcome.events);
            corpus.stored_old(9, &outcome.events, 2);
        }
    }
    corpus.stored(6, &SnapshotRecord {
        meta: meta.clone(),
        snapshot_id: 4,
        chunk_count: 2,
        total_bytes: 70_000,
    });
    corpus.stored(8, state);
    corpus.stored(8, &State::new());
    corpus.stored_old(7, &applied[0].2, 1);

    // codec_snapshot: [piece][kind][version + payload].
    for (piece, kind, bytes) in [
        (0u8, 0u8, codec::encode("snapshot", &applied_state).expect("encodes")),
        (7, 0, codec::encode("snapshot", &AppliedState::default()).expect("encodes")),
        (3, 1, codec::encode("state", state).expect("encodes")),
    ] {
        let mut input = vec![piece];
        input.extend_from_slice(&frame::unshaped(kind, &bytes));
        corpus.put("codec_snapshot", &input);
    }

    // codec_wire_client: the kinds of fuzz_targets/codec_wire_client.rs.
    let v1 = WireVersion::OLDEST;
    let current = WireVersion::CURRENT;
    for (_, _, command, outcome) in applied {
        match command {
            Command::Request(request) => {
                corpus.client(0, request, current);
                corpus.client(0, request, v1);
            }
            Command::Meta(meta) => {
                corpus.client(1, meta, current);
                corpus.client(2, &meta.action, current);
            }
            _ => {}
        }
        corpus.client(3, &outcome.reply, current);
        for event in &outcome.events {
            corpus.client(4, event, current);
        }
    }
    for auction in state.auctions() {
        corpus.client(5, &auction.view(), current);
        corpus.client(6, &auction.summary(), current);
    }
    let accounts = state.meta().list_users(&UserQuery {
        prefix: String::new(),
        after: None,
        limit: 50,
    });
    for user in &accounts.users {
        if let Some(credentials) = state.meta().credentials_by_id(user.id) {
            corpus.client(7, &credentials, current);
        }
    }
    corpus.client(8, &accounts, current);

    // codec_wire_peer: the kinds of fuzz_targets/codec_wire_peer.rs.
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendError,
        StreamAppendResult, TransferLeaderRequest, TransferLeaderResponse, VoteRequest,
        VoteResponse,
    };
    type C = TypeConfig;
    corpus.peer(0, &AppendEntriesRequest::<C> {
        vote,
        prev_log_id: Some(log_id(1, 1)),
        leader_commit: Some(log_id(1, 1)),
        entries: entries[2..8].to_vec(),
    });
    corpus.peer(0, &AppendEntriesRequest::<C> {
        vote,
        prev_log_id: None,
        leader_commit: None,
        entries: Vec::new(),
    });
    corpus.peer(1, &VoteRequest::<C>::new(Vote::new(3, 2), Some(last)));
    corpus.peer(2, &TransferLeaderRequest::<C>::new(vote, 2, Some(last)));
    corpus.peer(3, &vote);
    corpus.peer(4, &meta);
    corpus.peer(5, &AppendEntriesResponse::<C>::Success);
    corpus.peer(5, &AppendEntriesResponse::<C>::PartialSuccess(Some(last)));
    corpus.peer(5, &AppendEntriesResponse::<C>::HigherVote(Vote::new(4, 3)));
    corpus.peer(6, &(Ok(Some(last)) as StreamAppendResult<C>));
    corpus.peer(6, &(Err(StreamAppendError::Conflict(last)) as StreamAppendResult<C>));
    corpus.peer(7, &VoteResponse::<C> {
        vote: Vote::new(3, 2),
        vote_granted: true,
        last_log_id: Some(last),
    });
    corpus.peer(8, &SnapshotResponse::<C>::new(vote));
    corpus.peer(9, &(Ok(()) as TransferLeaderResponse<C>));
    corpus.peer(
        10,
        &openraft::errors::RaftError::<C>::Fatal(openraft::errors::Fatal::Stopped),
    );
}

fn proto_seeds(corpus: &mut Corpus, state: &State, applied: &[(u64, Timestamp, Command, Outcome)]) {
    let current = WireVersion::CURRENT;
    for (_, _, command, outcome) in applied {
        let (payload, id, auction, group) = match command {
            Command::Request(request) => (
                proto::propose_request::Command::EncodedRequest(
                    wire::encode("seed", request, current).expect("encodes").into(),
                ),
                request.request_id.as_str().to_owned(),
                request.action.auction_id().map_or(0, |auction| auction.0),
                request.action.auction_id().map_or(1, |auction| {
                    martelo_types::group_of(auction, martelo_types::ShardCount::try_from(8).expect("8")).0
                }),
            ),
            Command::Meta(meta) => (
                proto::propose_request::Command::EncodedMetaCommand(
                    wire::encode("seed", meta, current).expect("encodes").into(),
                ),
                meta.request_id.as_str().to_owned(),
                0,
                0,
            ),
            _ => continue,
        };
        corpus.proto(0, &proto::ProposeRequest {
            group_id: group,
            request_id: id,
            auction_id: auction,
            traceparent: TRACEPARENT.to_owned(),
            codec_version: current.codec_version(),
            attempt: 1,
            command: Some(payload),
        });
        corpus.proto(25, &proto::ProposeResponse {
            result: Some(proto::propose_response::Result::Applied(proto::Applied {
                log_index: 9,
                log_term: 2,
                timestamp_us: T0,
                reply: wire::encode("seed", &outcome.reply, current).expect("encodes").into(),
                replayed: false,
                accepted: true,
                reject_code: String::new(),
                auction_seq: 3,
                decided_without_log: false,
            })),
        });
    }
    corpus.proto(1, &proto::ReadAuctionRequest {
        group_id: 3,
        auction_id: 101,
        consistency: proto::ReadConsistency::Lease as i32,
        traceparent: TRACEPARENT.to_owned(),
    });
    corpus.proto(2, &proto::ListAuctionsRequest {
        group_id: 3,
        filter: proto::AuctionFilter::ClosingSoon as i32,
        closing_within_us: HOUR,
        after_auction_id: Some(100),
        limit: 20,
        consistency: 0,
        traceparent: String::new(),
    });
    corpus.proto(3, &proto::SubscribeRequest {
        group_id: 3,
        from_log_index: 4,
        auction_ids: vec![101, 102],
    });
    corpus.proto(4, &proto::ReadUserRequest {
        key: Some(proto::read_user_request::Key::Username("Ana".into())),
        consistency: 1,
        traceparent: String::new(),
    });
    corpus.proto(4, &proto::ReadUserRequest {
        key: Some(proto::read_user_request::Key::UserId(2)),
        consistency: 0,
        traceparent: String::new(),
    });
    corpus.proto(5, &proto::ListUsersRequest {
        prefix: "a".into(),
        after: Some("ana".into()),
        limit: 10,
        consistency: 0,
        traceparent: String::new(),
    });
    corpus.proto(6, &proto::StatusRequest {
        group_ids: vec![0, 1, 2],
        include_digest: true,
    });
    let node = |id: u64| proto::Node {
        node_id: id,
        raft_address: format!("127.0.0.1:700{id}"),
        api_address: format!("127.0.0.1:710{id}"),
        ..proto::Node::default()
    };
    corpus.proto(7, &proto::InitClusterRequest {
        nodes: vec![node(1), node(2), node(3)],
        shard_count: 8,
        replicas_per_group: 3,
    });
    corpus.proto(8, &proto::AddLearnerRequest {
        group_id: 2,
        node: Some(node(4)),
        wait_for_catch_up: true,
    });
    corpus.proto(9, &proto::PromoteVoterRequest { group_id: 2, node_id: 4 });
    corpus.proto(10, &proto::RemoveNodeRequest { group_id: 2, node_id: 3, force: false });
    corpus.proto(11, &proto::AdminTransferLeaderRequest { group_id: 2, to_node_id: 2 });
    corpus.proto(12, &proto::TriggerSnapshotRequest { group_id: 2 });
    corpus.proto(13, &proto::ShowAuctionRequest { group_id: 3, auction_id: 101, consistency: 1 });
    corpus.proto(14, &proto::OpenGroupRequest {
        group_id: 9,
        shard_count: 9,
        voters: vec![node(1), node(2)],
        replication_factor: 3,
    });
    corpus.proto(15, &proto::AdminMetaRequest {
        request_id: "op-1".into(),
        encoded_action: wire::encode(
            "seed",
            &MetaAction::SetClusterFacts { shard_count: 8 },
            current,
        )
        .expect("encodes")
        .into(),
        ..proto::AdminMetaRequest::default()
    });
    // The Raft transport.
    type C = TypeConfig;
    let encode_peer = |value: &dyn ErasedSerialize| -> prost::bytes::Bytes {
        let mut out = Vec::new();
        value.write_peer(&mut out);
        out.into()
    };
    let entries = entries(applied);
    let vote = Vote::new_committed(2, 1);
    let last = log_id(2, 5);
    let envelope = (2u64, 1u64, 2u64, current.codec_version());
    corpus.proto(16, &proto::AppendEntriesRequest {
        group_id: envelope.0,
        from_node_id: envelope.1,
        to_node_id: envelope.2,
        codec_version: envelope.3,
        payload: encode_peer(&openraft::raft::AppendEntriesRequest::<C> {
            vote,
            prev_log_id: Some(log_id(1, 1)),
            leader_commit: Some(log_id(1, 1)),
            entries: entries[2..6].to_vec(),
        }),
    });
    corpus.proto(17, &proto::VoteRequest {
        group_id: envelope.0,
        from_node_id: envelope.1,
        to_node_id: envelope.2,
        codec_version: envelope.3,
        payload: encode_peer(&openraft::raft::VoteRequest::<C>::new(vote, Some(last))),
    });
    corpus.proto(18, &proto::SnapshotChunk {
        kind: Some(proto::snapshot_chunk::Kind::Header(proto::SnapshotHeader {
            group_id: envelope.0,
            from_node_id: envelope.1,
            to_node_id: envelope.2,
            codec_version: envelope.3,
            vote: encode_peer(&vote),
            meta: encode_peer(&SnapshotMeta {
                last_log_id: Some(last),
                last_membership: membership(),
            }),
            total_bytes: 4_000,
        })),
    });
    corpus.proto(18, &proto::SnapshotChunk {
        kind: Some(proto::snapshot_chunk::Kind::Data(proto::SnapshotData {
            offset: 0,
            data: codec::encode("snapshot", state).expect("encodes").into(),
        })),
    });
    corpus.proto(18, &proto::SnapshotChunk {
        kind: Some(proto::snapshot_chunk::Kind::Trailer(proto::SnapshotTrailer {
            total_bytes: 4_000,
            chunk_count: 1,
        })),
    });
    corpus.proto(19, &proto::TransferLeaderRequest {
        group_id: envelope.0,
        from_node_id: envelope.1,
        to_node_id: envelope.2,
        codec_version: envelope.3,
        payload: encode_peer(&openraft::raft::TransferLeaderRequest::<C>::new(vote, 2, Some(last))),
    });
    corpus.proto(20, &proto::AppendEntriesResponse {
        result: Some(proto::append_entries_response::Result::Payload(encode_peer(
            &openraft::raft::AppendEntriesResponse::<C>::Success,
        ))),
    });
    corpus.proto(20, &proto::AppendEntriesResponse {
        result: Some(proto::append_entries_response::Result::RaftError(encode_peer(
            &openraft::errors::RaftError::<C>::Fatal(openraft::errors::Fatal::Stopped),
        ))),
    });
    corpus.proto(20, &proto::AppendEntriesResponse {
        result: Some(proto::append_entries_response::Result::Error(proto::ApiError::new(
            proto::ErrorCode::UnknownGroup,
            "this node holds no replica of group 9",
        ))),
    });
    corpus.proto(21, &proto::StreamAppendResponse {
        result: Some(proto::stream_append_response::Result::Payload(encode_peer(
            &(Ok(Some(last)) as openraft::raft::StreamAppendResult<C>),
        ))),
    });
    corpus.proto(22, &proto::VoteResponse {
        result: Some(proto::vote_response::Result::Payload(encode_peer(
            &openraft::raft::VoteResponse::<C> {
                vote,
                vote_granted: false,
                last_log_id: Some(last),
            },
        ))),
    });
    corpus.proto(23, &proto::InstallSnapshotResponse {
        result: Some(proto::install_snapshot_response::Result::Payload(encode_peer(
            &openraft::raft::SnapshotResponse::<C>::new(vote),
        ))),
    });
    corpus.proto(24, &proto::TransferLeaderResponse {
        result: Some(proto::transfer_leader_response::Result::Payload(encode_peer(
            &(Ok(()) as openraft::raft::TransferLeaderResponse<C>),
        ))),
    });
    // The client API's answers.
    if let Some(auction) = state.auctions().next() {
        corpus.proto(26, &proto::ReadAuctionResponse {
            result: Some(proto::read_auction_response::Result::Auction(proto::AuctionView {
                group_id: 3,
                auction_id: auction.view().id.0,
                seq: 4,
                applied_index: 20,
                codec_version: current.codec_version(),
                state: wire::encode("seed", &auction.view(), current).expect("encodes").into(),
            })),
        });
    }
    corpus.proto(27, &proto::ListAuctionsResponse {
        result: Some(proto::list_auctions_response::Result::Page(proto::AuctionPage {
            group_id: 3,
            auctions: state
                .auctions()
                .map(|auction| proto::AuctionSummary {
                    auction_id: auction.summary().id.0,
                    seq: auction.summary().seq,
                    summary: wire::encode("seed", &auction.summary(), current)
                        .expect("encodes")
                        .into(),
                })
                .collect(),
            next_after_auction_id: None,
            applied_index: 20,
            now_us: T0,
            codec_version: current.codec_version(),
        })),
    });
    for (index, _, _, outcome) in applied {
        if outcome.events.is_empty() {
            continue;
        }
        corpus.proto(28, &proto::SubscribeResponse {
            kind: Some(proto::subscribe_response::Kind::Entry(proto::CommittedEntry {
                log_index: *index,
                log_term: 2,
                timestamp_us: T0,
                events: outcome
                    .events
                    .iter()
                    .map(|event| proto::EventEnvelope {
                        auction_id: 101,
                        seq: 1,
                        event: wire::encode("seed", event, current).expect("encodes").into(),
                    })
                    .collect(),
                codec_version: current.codec_version(),
            })),
        });
    }
    let accounts = state.meta().list_users(&UserQuery {
        prefix: String::new(),
        after: None,
        limit: 50,
    });
    if let Some(credentials) = state.meta().credentials_by_id(UserId(2)) {
        corpus.proto(29, &proto::ReadUserResponse {
            result: Some(proto::read_user_response::Result::User(proto::UserRecord {
                applied_index: 5,
                codec_version: current.codec_version(),
                found: true,
                record: wire::encode("seed", &credentials, current).expect("encodes").into(),
            })),
        });
    }
    corpus.proto(30, &proto::ListUsersResponse {
        result: Some(proto::list_users_response::Result::Page(proto::UserList {
            applied_index: 5,
            codec_version: current.codec_version(),
            page: wire::encode("seed", &accounts, current).expect("encodes").into(),
            ..proto::UserList::default()
        })),
    });
    corpus.proto(31, &proto::StatusResponse {
        node: Some(node(1)),
        version: "0.1.0".into(),
        initialized: true,
        groups: vec![proto::GroupStatus {
            group_id: 1,
            role: proto::RaftRole::Leader as i32,
            term: 2,
            leader_id: Some(1),
            last_log_index: Some(30),
            voters: vec![1, 2, 3],
            state_digest: Some("ab".repeat(16)),
            ..proto::GroupStatus::default()
        }],
        wall_clock_us: T0,
        shard_count: 8,
        nodes: vec![node(1), node(2), node(3)],
        replication_factor: 3,
    });
    corpus.proto(32, &proto::InitClusterResponse {
        result: Some(proto::init_cluster_response::Result::Layout(proto::ClusterLayout {
            groups: vec![proto::GroupPlacement { group_id: 0, voters: vec![1, 2, 3] }],
        })),
    });
    corpus.proto(33, &proto::MembershipResponse {
        result: Some(proto::membership_response::Result::Changed(proto::MembershipChanged {
            group_id: 2,
            log_index: 40,
            voters: vec![1, 2, 3],
            learners: vec![4],
        })),
    });
    corpus.proto(35, &proto::OpenGroupResponse {
        result: Some(proto::open_group_response::Result::Opened(proto::GroupPlacement {
            group_id: 9,
            voters: vec![1, 2],
        })),
    });
}

/// A value encoded as a Raft peer payload, behind `dyn` (the seeds mix many types).
trait ErasedSerialize {
    fn write_peer(&self, out: &mut Vec<u8>);
}

impl<T: Serialize> ErasedSerialize for T {
    fn write_peer(&self, out: &mut Vec<u8>) {
        *out = wire::encode_peer("seed", self, WireVersion::CURRENT).expect("encodes");
    }
}

fn gateway_seeds(corpus: &mut Corpus) {
    // gateway_json: the kinds of fuzz_targets/gateway_json.rs.
    let bodies: &[(u8, &str)] = &[
        (0, r#"{"username":"ana","display_name":"Ana","password":"a long passphrase","roles":["seller"]}"#),
        (0, r#"{"username":"Bo.B","display_name":"Bo","password":"hunter2hunter2"}"#),
        (0, r#"{"username":"x","display_name":"","password":"short","roles":["admin"]}"#),
        (1, r#"{"username":"ana","password":"a long passphrase"}"#),
        (2, r#"{"refresh_token":"mr1.000000000000000000000000000feed0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#),
        (2, "{}"),
        (3, r#"{"title":"Brass compass","description":"Old.","currency":"EUR","starting_price":1000,"reserve_price":5000,"buy_now_price":90000,"increment":"ebay","start_us":1790000000000000,"end_us":1790003600000000,"soft_close":{"window_secs":120,"mode":"add_to_end","extension_secs":120,"total_extension_max_secs":3600}}"#),
        (3, r#"{"title":"Oak chair","currency":"USD","starting_price":1,"reserve_price":null,"buy_now_price":null,"increment":{"bands":[{"from":0,"increment":10},{"from":1000,"increment":50}]},"start_us":0,"end_us":1,"soft_close":null}"#),
        (3, r#"{"title":"Tin toy","currency":"GBP","starting_price":250,"reserve_price":null,"buy_now_price":null,"increment":{"fixed":25},"start_us":5,"end_us":9,"soft_close":{"window_secs":60,"mode":"reset_remaining","extension_secs":30,"total_extension_max_secs":null}}"#),
        (4, r#"{"amount":1500,"max":2000}"#),
        (4, r#"{"amount":1e30}"#),
        (4, r#"{"amount":-5,"max":1.5}"#),
        (5, r#"{"reason":"withdrawn"}"#),
        (5, "{}"),
        (6, r#"{"reason":"shill bidding"}"#),
        (7, r#"{"reason":"unpaid items"}"#),
        (8, "filter=closing_soon&within_secs=600&after=p123&limit=20&q=compass&sort=ending_soon"),
        (8, "filter=open"),
        (9, "consistency=lease"),
        (10, "after_seq=3&limit=50"),
        (11, "result=sold&seller=2&winner=3&cursor=abc&limit=10"),
        (12, "cursor=xyz&limit=5"),
        (13, "user=2&actor=1&auction=101&kind=bid_accepted&from=2026-11-29T12:00:00Z&to=1790000000000000&cursor=c&limit=200&format=csv"),
        (14, "prefix=an&after=ana&limit=20"),
        (15, "ids=1,2,%203,4"),
    ];
    for (kind, body) in bodies {
        corpus.text("gateway_json", Some(*kind), body);
    }
    // gateway_ws: one text frame each.
    for message in [
        r#"{"type":"subscribe","auction":101,"after_seq":3}"#,
        r#"{"type":"subscribe","auction":101}"#,
        r#"{"type":"unsubscribe","auction":101}"#,
        r#"{"type":"bid","auction":101,"request_id":"r-1","amount":1500,"max":2000,"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
        r#"{"type":"bid","auction":101,"request_id":"r-2","amount":1500}"#,
        r#"{"type":"buy","auction":102,"request_id":"r-3"}"#,
        r#"{"type":"ping","nonce":"n-1"}"#,
        r#"{"type":"ping"}"#,
    ] {
        corpus.text("gateway_ws", None, message);
    }
    // gateway_tokens: a valid token (expiring in 2096), the signed-claims shape, refresh
    // tokens, and headers.
    let ring = KeyRing::from_secrets(
        "k1",
        [("k1".to_owned(), vec![1; 32]), ("k0".to_owned(), vec![2; 32])],
    )
    .expect("ring");
    let config = TokenConfig::default();
    let roles: BTreeSet<Role> = [Role::Bidder, Role::Seller].into_iter().collect();
    let token = tokens::issue(&ring, &config, UserId(42), &roles, Some(FamilyId(0xabc)), 4_000_000_000)
        .expect("issued")
        .token;
    corpus.text("gateway_tokens", Some(0), &token);
    corpus.text("gateway_tokens", Some(0), "not.a.jwt");
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#;
    for claims in [
        r#"{"iss":"martelo","aud":"martelo-api","sub":"42","exp":4000000900,"iat":4000000000,"roles":["bidder","seller"],"sid":"00000000000000000000000000000abc"}"#,
        r#"{"iss":"martelo","aud":"martelo-api","sub":"1","exp":4000000900,"iat":0,"roles":["admin"]}"#,
        r#"{"iss":"martelo","aud":"martelo-api","sub":"1","exp":1,"iat":0,"roles":[]}"#,
    ] {
        let mut input = vec![1u8];
        input.extend_from_slice(header.as_bytes());
        input.push(0xff);
        input.extend_from_slice(claims.as_bytes());
        corpus.put("gateway_tokens", &input);
    }
    let refresh = RefreshToken::generate(FamilyId(0xfeed));
    corpus.text("gateway_tokens", Some(2), refresh.expose());
    let mut headers = vec![3u8];
    headers.extend_from_slice(format!("Bearer {token}").as_bytes());
    headers.push(0xff);
    headers.push(0xff);
    corpus.put("gateway_tokens", &headers);
    let mut cookie = vec![3u8, 0xff];
    cookie.extend_from_slice(format!("martelo_access={token}; martelo_csrf=abc").as_bytes());
    cookie.push(0xff);
    cookie.extend_from_slice(b"abc");
    corpus.put("gateway_tokens", &cookie);
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"), PathBuf::from);
    let mut corpus = Corpus { root, written: 0 };
    let (state, applied) = scenario();
    assert!(state.validate().is_ok(), "the scenario leaves a valid state");
    let accepted = applied
        .iter()
        .filter(|(_, _, _, outcome)| matches!(outcome.reply, martelo_engine::Reply::Accepted(_)))
        .count();
    for (index, _, command, outcome) in &applied {
        if let martelo_engine::Reply::Rejected(code) = &outcome.reply {
            println!("scenario entry {index} rejected ({code:?}): {command:?}");
        }
    }
    codec_seeds(&mut corpus, &state, &applied);
    proto_seeds(&mut corpus, &state, &applied);
    gateway_seeds(&mut corpus);
    println!(
        "{} seeds written to {} ({accepted} of {} scenario commands accepted)",
        corpus.written,
        corpus.root.display(),
        applied.len()
    );
}
