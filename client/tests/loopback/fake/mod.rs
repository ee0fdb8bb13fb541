//! The scripted fake node: what it answers (`FakeState`), how tests start a few of them on
//! 127.0.0.1 ([`must_spawn_fakes`]), and the canned values both services and tests share.

mod admin_api;
mod client_api;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use martelo_client::ClientOptions;
use martelo_engine::codec::wire::{self, WireVersion};
use martelo_engine::{
    Accepted, Action, Actor, Amount, AuctionId, BidId, Reply, Request, RequestId, Role, Timestamp,
    UserId,
};
use martelo_proto::services::{admin_api_server, client_api_server};
use martelo_proto::{
    ApiError, GroupStatus, MembershipChanged, MembershipResponse, Node, NotLeader, RaftRole,
    StatusResponse, membership_response,
};
use prost::bytes::Bytes;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// What a fake node does with a proposal.
#[derive(Clone, Debug)]
pub(crate) enum Propose {
    /// Applies it at log index 10 with an accepted bid reply.
    Apply,
    /// Answers `not_leader` naming `leader` at `address`.
    Redirect { leader: u64, address: String },
    /// Answers after `delay` (so the client's deadline passes first).
    Stall(Duration),
}

/// What a fake node answers, and what it was asked.
#[derive(Debug)]
pub(crate) struct FakeState {
    pub(crate) id: u64,
    pub(crate) status: StatusResponse,
    pub(crate) propose: Propose,
    /// Leads every group: admin changes succeed here, elsewhere they get `not_leader`.
    pub(crate) leads: bool,
    pub(crate) leader_address: String,
    /// Answer `remove_node` with `quorum_at_risk` unless forced.
    pub(crate) guard_quorum: bool,
    /// The auction ids of each group, for `list_auctions` (served where `leads`).
    pub(crate) auctions: BTreeMap<u64, Vec<u64>>,
    /// Every call, as "method group request-id".
    pub(crate) calls: Vec<String>,
}

/// A fake node; clones share one state, so a test can change the script of a running node.
#[derive(Clone, Debug)]
pub(crate) struct FakeNode(Arc<Mutex<FakeState>>);

impl FakeNode {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }

    fn record(&self, call: String) {
        self.state().calls.push(call);
    }

    pub(crate) fn calls(&self) -> Vec<String> {
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

/// The summary a fake node lists for auction `id`.
pub(crate) fn summary(id: u64) -> martelo_engine::AuctionSummary {
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

/// The encoded reply of an applied proposal: an accepted, leading bid on auction 5.
pub(crate) fn reply_bytes() -> Bytes {
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

/// The address-book entry of node `id`, serving Raft and the API at `address`.
pub(crate) fn node(id: u64, address: SocketAddr) -> Node {
    Node {
        node_id: id,
        raft_address: address.to_string(),
        api_address: address.to_string(),
    }
}

/// A status for node `id` of a one-shard cluster whose groups 0 and 1 have voters 1 and 2.
pub(crate) fn status(
    id: u64,
    book: &[Node],
    leader: Option<u64>,
    role: RaftRole,
) -> StatusResponse {
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
pub(crate) async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Serves both services of `node` on `listener` until the test ends.
fn spawn(listener: TcpListener, node: FakeNode) {
    tokio::spawn(
        Server::builder()
            .add_service(client_api_server(node.clone()))
            .add_service(admin_api_server(node))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
}

/// Running fake nodes: every node's address (down ones too) and the live nodes.
pub(crate) struct Fakes {
    pub(crate) addresses: BTreeMap<u64, SocketAddr>,
    pub(crate) nodes: BTreeMap<u64, FakeNode>,
}

impl Fakes {
    /// The seed list that names node `id` only.
    pub(crate) fn seed(&self, id: u64) -> Vec<String> {
        vec![self.addresses[&id].to_string()]
    }

    /// The address book of every node, up or down, in id order.
    pub(crate) fn book(&self) -> Vec<Node> {
        book(&self.addresses)
    }
}

fn book(addresses: &BTreeMap<u64, SocketAddr>) -> Vec<Node> {
    addresses
        .iter()
        .map(|(&id, &address)| node(id, address))
        .collect()
}

/// Starts fake nodes `ids`; `down` ids get closed ports (down nodes). Node 1 leads.
pub(crate) async fn must_spawn_fakes(
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
    let book = book(&addresses);
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

/// A bid by user 7 of 500 on auction 5 (group 1 of a one-shard cluster).
pub(crate) fn bid(request_id: &str) -> Request {
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

/// Client options with a short deadline and backoff, so failing tests fail fast.
pub(crate) fn quick() -> ClientOptions {
    ClientOptions {
        deadline: Duration::from_millis(800),
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        ..ClientOptions::default()
    }
}
