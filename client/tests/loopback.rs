//! The client and admin operations against scripted fake nodes on 127.0.0.1: real tonic
//! channels, real connection failures, canned answers. What a real node must answer is the
//! lead's end-to-end suite; this checks that the client does the right thing with answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use martelo_client::admin::{Admin, AdminOptions};
use martelo_client::{Client, ClientOptions, NodeId, ProposeError, ResyncReason, SubscribeItem};
use martelo_engine::codec::wire::{self, WireVersion};
use martelo_engine::{
    Accepted, Action, Actor, Amount, AuctionId, BidId, Event, GroupId, Reply, Request, RequestId,
    Role, Timestamp, UserId,
};
use martelo_proto::admin_api_server::AdminApi;
use martelo_proto::client_api_server::ClientApi;
use martelo_proto::services::{admin_api_server, client_api_server};
use martelo_proto::{
    AddLearnerRequest, AdminTransferLeaderRequest, AdminTransferLeaderResponse, ApiError, Applied,
    CommittedEntry, ErrorCode, EventEnvelope, GroupPlacement, GroupStatus, InitClusterRequest,
    InitClusterResponse, MembershipChanged, MembershipResponse, Node, NotLeader, OpenGroupRequest,
    OpenGroupResponse, PromoteVoterRequest, ProposeRequest, ProposeResponse, RaftRole,
    ReadAuctionRequest, ReadAuctionResponse, RemoveNodeRequest, Resync, ShowAuctionRequest,
    ShowAuctionResponse, StatusRequest, StatusResponse, SubscribeRequest, SubscribeResponse,
    TriggerSnapshotRequest, TriggerSnapshotResponse, membership_response, open_group_response,
    propose_request, propose_response, resync, subscribe_response,
};
use martelo_proto::{
    AuctionPage, ListAuctionsRequest, ListAuctionsResponse, list_auctions_response,
};
use martelo_types::NodeAddress;
use prost::bytes::Bytes;
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Response, Status};

/// What a fake node does with a proposal.
#[derive(Clone, Debug)]
enum Propose {
    /// Applies it at log index 10 with an accepted bid reply.
    Apply,
    /// Answers `not_leader` naming `leader` at `address`.
    Redirect { leader: u64, address: String },
    /// Answers after `delay` (so the client's deadline passes first).
    Stall(Duration),
}

#[derive(Debug)]
struct FakeState {
    id: u64,
    status: StatusResponse,
    propose: Propose,
    /// Leads every group: admin changes succeed here, elsewhere they get `not_leader`.
    leads: bool,
    leader_address: String,
    /// Answer `remove_node` with `quorum_at_risk` unless forced.
    guard_quorum: bool,
    /// The auction ids of each group, for `list_auctions` (served where `leads`).
    auctions: BTreeMap<u64, Vec<u64>>,
    /// Every call, as "method group request-id".
    calls: Vec<String>,
}

#[derive(Clone, Debug)]
struct FakeNode(Arc<Mutex<FakeState>>);

impl FakeNode {
    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }

    fn record(&self, call: String) {
        self.state().calls.push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    fn not_leader(&self, group: u64) -> ApiError {
        let state = self.state();
        ApiError::not_leader(NotLeader {
            group_id: group,
            leader_id: Some(1),
            leader_address: state.leader_address.clone(),
            term: 7,
        })
    }

    fn membership(&self, group: u64, voters: Vec<u64>) -> MembershipResponse {
        let result = if self.state().leads {
            membership_response::Result::Changed(MembershipChanged {
                group_id: group,
                log_index: 50,
                voters,
                learners: Vec::new(),
            })
        } else {
            membership_response::Result::Error(self.not_leader(group))
        };
        MembershipResponse {
            result: Some(result),
        }
    }
}

fn summary(id: u64) -> martelo_engine::AuctionSummary {
    martelo_engine::AuctionSummary {
        id: AuctionId(id),
        seller: UserId(1),
        title: martelo_engine::Title::try_from(format!("Lot {id}")).unwrap(),
        currency: martelo_engine::Currency::try_from("EUR").unwrap(),
        created_at: Timestamp(0),
        start: Timestamp(0),
        end: Timestamp(100),
        seq: 1,
        price: None,
        leading_bidder: None,
        minimum_bid: Amount(10),
        bid_count: 0,
        has_reserve: false,
        reserve_met: false,
        buy_now_price: None,
        closed: None,
    }
}

fn reply_bytes() -> Bytes {
    let reply = Reply::Accepted(Accepted::Bid {
        auction_id: AuctionId(5),
        bid_id: BidId(0),
        seq: 2,
        price: Amount(500),
        leading: true,
        reserve_met: true,
        end: Timestamp(1_000),
    });
    Bytes::from(wire::encode("reply", &reply, WireVersion::CURRENT).unwrap())
}

#[tonic::async_trait]
impl ClientApi for FakeNode {
    async fn propose(
        &self,
        request: tonic::Request<ProposeRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        let request = request.into_inner();
        self.record(format!(
            "propose {} {}",
            request.group_id, request.request_id
        ));
        let behaviour = self.state().propose.clone();
        let result = match behaviour {
            Propose::Apply => {
                let Some(propose_request::Command::EncodedRequest(bytes)) = request.command else {
                    return Err(Status::invalid_argument("no command"));
                };
                wire::decode::<Request, { martelo_proto::PROPOSAL_COMMAND_BYTES_MAX }>(
                    "request", &bytes,
                )
                .expect("the client encodes requests");
                propose_response::Result::Applied(Applied {
                    log_index: 10,
                    log_term: 7,
                    timestamp_us: 1_000,
                    reply: reply_bytes(),
                    replayed: false,
                    accepted: true,
                    reject_code: String::new(),
                    auction_seq: 2,
                    decided_without_log: false,
                })
            }
            Propose::Redirect { leader, address } => {
                propose_response::Result::Error(ApiError::not_leader(NotLeader {
                    group_id: request.group_id,
                    leader_id: Some(leader),
                    leader_address: address,
                    term: 7,
                }))
            }
            Propose::Stall(delay) => {
                tokio::time::sleep(delay).await;
                propose_response::Result::Error(ApiError::new(ErrorCode::UnknownOutcome, "late"))
            }
        };
        Ok(Response::new(ProposeResponse {
            result: Some(result),
        }))
    }

    async fn read_auction(
        &self,
        _request: tonic::Request<ReadAuctionRequest>,
    ) -> Result<Response<ReadAuctionResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    /// Serves `auctions` as a leader (ids in order, `limit` at a time); `not_leader` naming
    /// node 1 elsewhere.
    async fn list_auctions(
        &self,
        request: tonic::Request<ListAuctionsRequest>,
    ) -> Result<Response<ListAuctionsResponse>, Status> {
        let request = request.into_inner();
        self.record(format!(
            "list {} after={:?} limit={}",
            request.group_id, request.after_auction_id, request.limit
        ));
        if !self.state().leads {
            let error = self.not_leader(request.group_id);
            return Ok(Response::new(ListAuctionsResponse {
                result: Some(list_auctions_response::Result::Error(error)),
            }));
        }
        let ids = self
            .state()
            .auctions
            .get(&request.group_id)
            .cloned()
            .unwrap_or_default();
        let after = |id: &u64| request.after_auction_id.is_none_or(|after| *id > after);
        let remaining: Vec<u64> = ids.into_iter().filter(after).collect();
        let page: Vec<u64> = remaining
            .iter()
            .copied()
            .take(request.limit as usize)
            .collect();
        let next = (remaining.len() > page.len()).then(|| *page.last().unwrap());
        let auctions = page
            .iter()
            .map(|&id| martelo_proto::AuctionSummary {
                auction_id: id,
                seq: 1,
                summary: Bytes::from(
                    wire::encode("summary", &summary(id), WireVersion::CURRENT).unwrap(),
                ),
            })
            .collect();
        Ok(Response::new(ListAuctionsResponse {
            result: Some(list_auctions_response::Result::Page(AuctionPage {
                group_id: request.group_id,
                auctions,
                next_after_auction_id: next,
                applied_index: 10,
                now_us: 50,
                codec_version: WireVersion::CURRENT.codec_version(),
            })),
        }))
    }

    type SubscribeStream =
        Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send + 'static>>;

    async fn subscribe(
        &self,
        request: tonic::Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        // A stream must not carry a `grpc-timeout`: the server would end it when it passes.
        let timeout = request.metadata().contains_key("grpc-timeout");
        let from = request.into_inner().from_log_index;
        self.record(format!("subscribe {from} timeout={timeout}"));
        let event = Event::BidderReinstated {
            user: UserId(4),
            at: Timestamp(5),
        };
        let messages = vec![
            SubscribeResponse {
                kind: Some(subscribe_response::Kind::Entry(CommittedEntry {
                    log_index: from,
                    log_term: 7,
                    timestamp_us: 5,
                    codec_version: WireVersion::CURRENT.codec_version(),
                    events: vec![EventEnvelope {
                        auction_id: 0,
                        seq: 0,
                        event: Bytes::from(
                            wire::encode("event", &event, WireVersion::CURRENT).unwrap(),
                        ),
                    }],
                })),
            },
            SubscribeResponse {
                kind: Some(subscribe_response::Kind::Resync(Resync {
                    reason: resync::Reason::Trimmed.into(),
                    first_available: from + 100,
                })),
            },
        ];
        Ok(Response::new(Box::pin(tokio_stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }
}

#[tonic::async_trait]
impl AdminApi for FakeNode {
    async fn status(
        &self,
        _request: tonic::Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(self.state().status.clone()))
    }

    async fn init_cluster(
        &self,
        _request: tonic::Request<InitClusterRequest>,
    ) -> Result<Response<InitClusterResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn add_learner(
        &self,
        request: tonic::Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let request = request.into_inner();
        let id = self.state().id;
        self.record(format!("add_learner {} at {id}", request.group_id));
        Ok(Response::new(self.membership(request.group_id, vec![1, 2])))
    }

    async fn promote_voter(
        &self,
        request: tonic::Request<PromoteVoterRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let request = request.into_inner();
        let id = self.state().id;
        self.record(format!("promote_voter {} at {id}", request.group_id));
        Ok(Response::new(
            self.membership(request.group_id, vec![1, 2, request.node_id]),
        ))
    }

    async fn remove_node(
        &self,
        request: tonic::Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let request = request.into_inner();
        self.record(format!(
            "remove_node {} force={}",
            request.group_id, request.force
        ));
        let guard = self.state().guard_quorum;
        if guard && !request.force {
            let error = ApiError::new(
                ErrorCode::QuorumAtRisk,
                format!(
                    "removing node {} leaves 1 healthy voter of 2",
                    request.node_id
                ),
            );
            return Ok(Response::new(MembershipResponse {
                result: Some(membership_response::Result::Error(error)),
            }));
        }
        Ok(Response::new(self.membership(request.group_id, vec![1])))
    }

    async fn transfer_leader(
        &self,
        _request: tonic::Request<AdminTransferLeaderRequest>,
    ) -> Result<Response<AdminTransferLeaderResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn trigger_snapshot(
        &self,
        _request: tonic::Request<TriggerSnapshotRequest>,
    ) -> Result<Response<TriggerSnapshotResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn show_auction(
        &self,
        _request: tonic::Request<ShowAuctionRequest>,
    ) -> Result<Response<ShowAuctionResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn open_group(
        &self,
        request: tonic::Request<OpenGroupRequest>,
    ) -> Result<Response<OpenGroupResponse>, Status> {
        let request = request.into_inner();
        let id = self.state().id;
        self.record(format!(
            "open_group {} shards={} voters={} at {id}",
            request.group_id,
            request.shard_count,
            request.voters.len()
        ));
        Ok(Response::new(OpenGroupResponse {
            result: Some(open_group_response::Result::Opened(GroupPlacement {
                group_id: request.group_id,
                voters: Vec::new(),
            })),
        }))
    }
}

fn node(id: u64, address: SocketAddr) -> Node {
    Node {
        node_id: id,
        raft_address: address.to_string(),
        api_address: address.to_string(),
    }
}

/// A status for node `id` of a one-shard cluster whose groups 0 and 1 have voters 1 and 2.
fn status(id: u64, book: &[Node], leader: Option<u64>, role: RaftRole) -> StatusResponse {
    let group = |group_id| GroupStatus {
        group_id,
        role: role.into(),
        term: 7,
        leader_id: leader,
        last_log_index: Some(10),
        committed_index: Some(10),
        applied_index: Some(10),
        voters: vec![1, 2],
        clock_ok: true,
        ..GroupStatus::default()
    };
    StatusResponse {
        node: book.iter().find(|node| node.node_id == id).cloned(),
        version: "test".into(),
        initialized: true,
        groups: vec![group(0), group(1)],
        wall_clock_us: 1,
        shard_count: 1,
        nodes: book.to_vec(),
        replication_factor: 2,
    }
}

/// Binds a port and drops the listener, so nothing listens there.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn spawn(listener: TcpListener, node: FakeNode) {
    tokio::spawn(
        Server::builder()
            .add_service(client_api_server(node.clone()))
            .add_service(admin_api_server(node))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
}

struct Fakes {
    addresses: BTreeMap<u64, SocketAddr>,
    nodes: BTreeMap<u64, FakeNode>,
}

impl Fakes {
    fn seed(&self, id: u64) -> Vec<String> {
        vec![self.addresses[&id].to_string()]
    }
}

/// Starts fake nodes `ids`; `book` extra ids get closed ports (down nodes). Node 1 leads.
async fn must_spawn_fakes(
    ids: &[u64],
    down: &[u64],
    behaviour: impl Fn(u64, &BTreeMap<u64, SocketAddr>) -> Propose,
) -> Fakes {
    let mut listeners = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    for &id in ids {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.insert(id, listener.local_addr().unwrap());
        listeners.insert(id, listener);
    }
    for &id in down {
        addresses.insert(id, closed_port().await);
    }
    let book: Vec<Node> = addresses
        .iter()
        .map(|(&id, &address)| node(id, address))
        .collect();
    let mut nodes = BTreeMap::new();
    for (id, listener) in listeners {
        let role = if id == 1 {
            RaftRole::Leader
        } else {
            RaftRole::Follower
        };
        let fake = FakeNode(Arc::new(Mutex::new(FakeState {
            id,
            status: status(id, &book, Some(1), role),
            propose: behaviour(id, &addresses),
            leads: id == 1,
            leader_address: addresses[&1].to_string(),
            guard_quorum: false,
            auctions: BTreeMap::new(),
            calls: Vec::new(),
        })));
        spawn(listener, fake.clone());
        nodes.insert(id, fake);
    }
    Fakes { addresses, nodes }
}

fn bid(request_id: &str) -> Request {
    Request {
        actor: Actor {
            user: UserId(7),
            role: Role::Bidder,
        },
        request_id: RequestId::try_from(request_id).unwrap(),
        action: Action::PlaceBid {
            auction_id: AuctionId(5),
            amount: Amount(500),
            max: None,
        },
    }
}

fn quick() -> ClientOptions {
    ClientOptions {
        deadline: Duration::from_millis(800),
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn a_proposal_follows_the_hint_to_the_leader_with_the_same_request_id() {
    // Node 2 believes node 1 leads; the client, told by node 2's status, starts at node 2.
    let fakes = must_spawn_fakes(&[1, 2], &[], |id, addresses| {
        if id == 1 {
            Propose::Apply
        } else {
            Propose::Redirect {
                leader: 1,
                address: addresses[&1].to_string(),
            }
        }
    })
    .await;
    fakes.nodes[&2].state().status = {
        let book: Vec<Node> = fakes
            .addresses
            .iter()
            .map(|(&id, &address)| node(id, address))
            .collect();
        // Node 2 saw node 2 lead in an older term: the cache starts wrong.
        status(2, &book, Some(2), RaftRole::Follower)
    };
    let client = Client::connect(&fakes.seed(2), quick()).await.unwrap();
    assert_eq!(client.shard_count().get(), 1);
    assert_eq!(client.group_of(AuctionId(5)), GroupId(1));

    let proposed = client.propose(bid("req-1")).await.unwrap();
    assert!(proposed.reply.is_accepted());
    assert_eq!((proposed.node, proposed.attempts), (NodeId(1), 2));
    assert_eq!((proposed.log_index, proposed.log_term), (10, 7));
    assert_eq!(fakes.nodes[&2].calls(), vec!["propose 1 req-1"]);
    assert_eq!(fakes.nodes[&1].calls(), vec!["propose 1 req-1"]);

    // The cache learned: the next proposal goes straight to node 1.
    assert_eq!(
        client.leader_of(GroupId(1)).map(|t| t.node_id),
        Some(NodeId(1))
    );
    let proposed = client.propose(bid("req-2")).await.unwrap();
    assert_eq!(proposed.attempts, 1);
}

#[tokio::test]
async fn a_proposal_that_times_out_after_sending_is_unknown_never_failed() {
    let fakes = must_spawn_fakes(&[1], &[], |_, _| Propose::Stall(Duration::from_secs(5))).await;
    let client = Client::connect(&fakes.seed(1), quick()).await.unwrap();
    let error = client.propose(bid("req-1")).await.unwrap_err();
    assert!(
        matches!(error, ProposeError::Unknown { .. }),
        "a stalled proposal may still commit: {error}"
    );
    assert_eq!(error.code(), ErrorCode::UnknownOutcome);
}

#[tokio::test]
async fn a_proposal_whose_leader_cannot_be_reached_is_provably_not_applied() {
    // Node 1 is down; node 2's status names it leader of groups with voters 1 and 2, and
    // node 2 answers `not_leader` naming node 1. The `not_leader` answers make the outcome
    // open (I9), so the test points the voters at the down node only.
    let fakes = must_spawn_fakes(&[2], &[1], |_, _| Propose::Apply).await;
    {
        let mut state = fakes.nodes[&2].state();
        for group in &mut state.status.groups {
            group.voters = vec![1];
        }
    }
    let client = Client::connect(&fakes.seed(2), quick()).await.unwrap();
    let error = client.propose(bid("req-1")).await.unwrap_err();
    let ProposeError::NotApplied { code, message } = &error else {
        panic!("nothing reached a node: {error}");
    };
    assert_eq!(*code, ErrorCode::Unavailable);
    assert!(message.contains("safe to retry"), "{message}");
    assert!(
        message.contains(&fakes.addresses[&1].to_string()),
        "{message}"
    );
    assert!(fakes.nodes[&2].calls().is_empty());
}

#[tokio::test]
async fn connecting_to_nothing_names_every_address() {
    let first = closed_port().await.to_string();
    let second = closed_port().await.to_string();
    let error = Client::connect(&[first.clone(), second.clone()], quick())
        .await
        .unwrap_err();
    assert_eq!(error.code().as_str(), "unreachable");
    let text = error.to_string();
    assert!(text.contains(&first) && text.contains(&second), "{text}");
    assert!(text.contains("is the node running"), "{text}");
}

#[tokio::test]
async fn connecting_to_an_uninitialized_node_says_to_run_cluster_init() {
    let fakes = must_spawn_fakes(&[1], &[], |_, _| Propose::Apply).await;
    {
        let mut state = fakes.nodes[&1].state();
        state.status.initialized = false;
        state.status.shard_count = 0;
    }
    let error = Client::connect(&fakes.seed(1), quick()).await.unwrap_err();
    assert!(
        error.to_string().contains("martelo cluster init"),
        "{error}"
    );
}

#[tokio::test]
async fn a_subscription_decodes_entries_and_ends_with_the_resync() {
    let fakes = must_spawn_fakes(&[1], &[], |_, _| Propose::Apply).await;
    let client = Client::connect(&fakes.seed(1), quick()).await.unwrap();
    let items: Vec<_> = client.subscribe(GroupId(1), 40, Vec::new()).collect().await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(fakes.nodes[&1].calls(), vec!["subscribe 40 timeout=false"]);
    let SubscribeItem::Entry {
        log_index, events, ..
    } = items[0].as_ref().unwrap()
    else {
        panic!("an entry first: {items:?}");
    };
    assert_eq!((*log_index, events.len()), (40, 1));
    assert_eq!(
        items[1].as_ref().unwrap(),
        &SubscribeItem::Resync {
            reason: ResyncReason::Trimmed,
            first_available: 140
        }
    );
}

#[tokio::test]
async fn cluster_status_reports_a_down_node_without_failing() {
    let fakes = must_spawn_fakes(&[1, 2], &[3], |_, _| Propose::Apply).await;
    let admin = Admin::default();
    let status = admin.cluster_status(&fakes.seed(2)).await.unwrap();
    assert_eq!(status.nodes.len(), 3);
    assert!(status.nodes[0].reachable && status.nodes[1].reachable);
    assert_eq!(status.nodes[2].node_id, Some(NodeId(3)));
    assert!(!status.nodes[2].reachable);
    assert!(status.health.healthy, "{:?}", status.health);
    assert_eq!(status.health.unreachable, vec!["3"]);
}

#[tokio::test]
async fn node_add_opens_adds_and_promotes_each_group_at_the_leader() {
    let fakes = must_spawn_fakes(&[1, 2, 3], &[], |_, _| Propose::Apply).await;
    // Node 3 is the new, empty node: it is in no address book yet and holds no group.
    let book: Vec<Node> = [1, 2]
        .iter()
        .map(|id| node(*id, fakes.addresses[id]))
        .collect();
    for id in [1, 2] {
        let role = if id == 1 {
            RaftRole::Leader
        } else {
            RaftRole::Follower
        };
        // Node 2 thinks node 2 leads, so the admin's first try goes to the wrong node.
        let leader = if id == 1 { 1 } else { 2 };
        fakes.nodes[&id].state().status = status(id, &book, Some(leader), role);
    }
    fakes.nodes[&2].state().status.groups[0].term = 9;
    let admin = Admin::new(AdminOptions::default());
    let new = NodeAddress {
        id: NodeId(3),
        address: fakes.addresses[&3].to_string(),
    };
    let report = admin
        .add_node(&fakes.seed(2), new, None, true)
        .await
        .unwrap();
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(report.groups.len(), 2);
    assert_eq!(
        report.groups[1].voters,
        vec![NodeId(1), NodeId(2), NodeId(3)]
    );
    assert_eq!(
        fakes.nodes[&3].calls(),
        vec![
            "open_group 0 shards=1 voters=0 at 3",
            "open_group 1 shards=1 voters=0 at 3"
        ]
    );
    assert_eq!(
        fakes.nodes[&1].calls(),
        vec![
            "add_learner 0 at 1",
            "promote_voter 0 at 1",
            "add_learner 1 at 1",
            "promote_voter 1 at 1"
        ]
    );
    // Group 0's cached leader was node 2 (term 9): it was asked first and redirected.
    assert_eq!(fakes.nodes[&2].calls(), vec!["add_learner 0 at 2"]);
}

#[tokio::test]
async fn node_remove_reports_quorum_at_risk_with_the_force_hint() {
    let fakes = must_spawn_fakes(&[1, 2], &[], |_, _| Propose::Apply).await;
    fakes.nodes[&1].state().guard_quorum = true;
    let admin = Admin::default();
    let report = admin
        .remove_node(&fakes.seed(1), NodeId(2), None, false)
        .await
        .unwrap();
    assert!(!report.all_ok());
    let error = report.groups[0].error.as_ref().unwrap();
    assert_eq!(error.code, "quorum_at_risk");
    assert!(error.message.contains("--force"), "{}", error.message);

    let report = admin
        .remove_node(&fakes.seed(1), NodeId(2), Some(vec![GroupId(1)]), true)
        .await
        .unwrap();
    assert!(report.all_ok(), "{report:?}");
    assert_eq!(report.groups[0].voters, vec![NodeId(1)]);
}

/// A listing pages through every group once, in order, following the `not_leader` hint of
/// the node the client first asked.
#[tokio::test]
async fn a_listing_pages_through_every_group_once_following_leader_hints() {
    let fakes = must_spawn_fakes(&[1, 2], &[], |_, _| Propose::Apply).await;
    let book: Vec<Node> = fakes
        .addresses
        .iter()
        .map(|(&id, &address)| node(id, address))
        .collect();
    for (&id, fake) in &fakes.nodes {
        let mut state = fake.state();
        // Two auction groups. Node 2 believes it leads them: the client starts there.
        state.status = status(id, &book, Some(2), RaftRole::Follower);
        state.status.shard_count = 2;
        let mut group_two = state.status.groups[1].clone();
        group_two.group_id = 2;
        state.status.groups.push(group_two);
        state.auctions = BTreeMap::from([(1, vec![3, 5, 8, 13]), (2, vec![0, 2])]);
    }
    let client = Client::connect(&fakes.seed(2), quick()).await.unwrap();
    let consistency = martelo_client::ReadConsistency::Linearizable;
    let all = martelo_client::ListFilter::All;
    let mut seen = Vec::new();
    let mut cursor = Some(martelo_client::ListCursor::START);
    let mut cursors = Vec::new();
    while let Some(from) = cursor {
        let page = client
            .list_auctions(all, from, 3, consistency)
            .await
            .unwrap();
        assert!(page.auctions.len() <= 3);
        seen.extend(page.auctions.iter().map(|a| (a.group.0, a.summary.id.0)));
        cursor = page.next;
        cursors.extend(cursor.map(|cursor| cursor.to_string()));
    }
    assert_eq!(seen, vec![(1, 3), (1, 5), (1, 8), (1, 13), (2, 0), (2, 2)]);
    assert_eq!(cursors, vec!["1:8"]);
    // One redirect per group, then node 1 for everything: the leader cache learned.
    assert_eq!(
        fakes.nodes[&2].calls(),
        vec!["list 1 after=None limit=3", "list 2 after=None limit=2"]
    );
    assert_eq!(
        fakes.nodes[&1].calls(),
        vec![
            "list 1 after=None limit=3",
            "list 1 after=Some(8) limit=3",
            "list 2 after=None limit=2",
        ]
    );
    // A cursor outside the cluster and a page too large are refused before sending.
    let outside = "3:start".parse().unwrap();
    assert!(
        client
            .list_auctions(all, outside, 3, consistency)
            .await
            .is_err()
    );
    let start = martelo_client::ListCursor::START;
    assert!(
        client
            .list_auctions(all, start, 501, consistency)
            .await
            .is_err()
    );
    assert_eq!(fakes.nodes[&1].calls().len(), 3);
}
