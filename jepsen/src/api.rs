//! The two ways a workload client reaches the cluster, behind one small interface: gRPC
//! through `martelo-client` straight to the nodes (`--via grpc`, the default), or HTTP through
//! `martelo gateway` processes (`--via gateway`, see [`crate::gateway`]).
//!
//! Both answer in the same words ([`CreateOutcome`], [`BidOutcome`], [`ReadOutcome`]), and
//! [`crate::workload`] turns those words into history records in one place, so the checkers
//! judge both paths by the same rules.

use std::sync::Arc;

use martelo_client::{Client, ClientErrorCode, ClientOptions, ProposeError, ReadConsistency};
use martelo_engine::{
    Accepted, Action, Actor, Amount, AuctionId, AuctionResult, AuctionSpec, Currency, Description,
    IncrementPolicy, Micros, RejectCode, Reply, Request, RequestId, Role, SoftClose, SoftCloseMode,
    Timestamp, Title, UserId,
};
use martelo_proto::ErrorCode;

use crate::gateway::GatewayApi;
use crate::history::{AuctionView, CloseOutcome, Terms, TopBid};

/// The seller of every auction on the gRPC path; bidders get fresh ids from the workload.
pub const GRPC_SELLER: u64 = 1;

/// What the workload asks for when it creates an auction.
#[derive(Clone, Copy, Debug)]
pub struct NewAuction {
    pub id: u64,
    pub terms: Terms,
    /// Cluster time (µs since the epoch) at which bidding opens and ends.
    pub start_us: u64,
    pub end_us: u64,
    /// Soft close: a bid this close to the end extends it by as much, in total at most
    /// `extension_total_max_us`.
    pub soft_window_us: u64,
    pub extension_total_max_us: u64,
}

/// How a create ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// The auction existed already (a retry whose first attempt applied).
    AlreadyExists,
    /// Definitely not created.
    Failed(String),
    /// Created or not: the client cannot tell.
    Unknown(String),
}

/// How a bid ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BidOutcome {
    Accepted,
    /// Applied and refused by rules the model explains (too low, auction closed).
    Refused,
    /// Refused with another engine or gateway code, which changes nothing.
    Rejected(String),
    /// Not applied (the node or gateway said so).
    NotApplied(String),
    /// Applied or not: the client cannot tell.
    Unknown(String),
}

/// How a linearizable read ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    View(AuctionView),
    NotFound,
    Failed(String),
}

/// Engine codes of bids that the engine applied and said no to, which the model explains:
/// `ok` with `accepted: false` in the history.
pub const REFUSED_BID_CODES: [&str; 3] = ["bid_too_low", "auction_closed", "max_not_raised"];

/// One workload client.
#[derive(Clone, Debug)]
pub enum Api {
    Grpc(Client),
    Gateway(GatewayApi),
}

impl Api {
    /// A gRPC client through `seeds` (in that order), retried for a few seconds.
    pub async fn connect_grpc(seeds: &[String], options: ClientOptions) -> anyhow::Result<Api> {
        let mut last = None;
        for _ in 0..20 {
            match Client::connect(seeds, options).await {
                Ok(client) => return Ok(Api::Grpc(client)),
                Err(error) => last = Some(error),
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        Err(anyhow::anyhow!(
            "cannot connect a client to {seeds:?}: {}",
            last.map(|error| error.to_string()).unwrap_or_default()
        ))
    }

    /// The auction id a create with idempotency key `request` names, or `None` when the
    /// workload picks ids itself (gRPC).
    pub fn auction_id_for(&self, request: &str) -> Option<u64> {
        match self {
            Api::Grpc(_) => None,
            Api::Gateway(gateway) => Some(gateway.auction_id_for(request)),
        }
    }

    pub async fn create_auction(&self, auction: &NewAuction, request: &str) -> CreateOutcome {
        match self {
            Api::Grpc(client) => grpc_create(client, auction, request).await,
            Api::Gateway(gateway) => gateway.create_auction(auction, request).await,
        }
    }

    pub async fn bid(&self, auction: u64, amount: u64, bidder: u64, request: &str) -> BidOutcome {
        match self {
            Api::Grpc(client) => grpc_bid(client, auction, amount, bidder, request).await,
            Api::Gateway(gateway) => gateway.bid(auction, amount, bidder, request).await,
        }
    }

    pub async fn read(&self, auction: u64) -> ReadOutcome {
        match self {
            Api::Grpc(client) => grpc_read(client, auction).await,
            Api::Gateway(gateway) => gateway.read(auction).await,
        }
    }
}

/// Where workload clients come from.
#[derive(Clone, Debug)]
pub enum Target {
    /// Node client addresses.
    Grpc(Vec<String>),
    /// Gateways with signed-in accounts.
    Gateway(Arc<crate::gateway::GatewayPool>),
}

impl Target {
    /// Client number `index`'s connection, through its home node or gateway (the list
    /// rotated by `index`), so that clients spread over the nodes or gateways.
    pub async fn connect(&self, index: usize, options: ClientOptions) -> anyhow::Result<Api> {
        match self {
            Target::Grpc(seeds) => Api::connect_grpc(&home_seeds(seeds, index), options).await,
            Target::Gateway(pool) => Ok(Api::Gateway(GatewayApi::new(
                Arc::clone(pool),
                index,
                options.deadline,
            ))),
        }
    }

    /// The bidder ids clients may use on one auction, when the target limits them (the
    /// gateway's signed-in accounts); `None` when any fresh id will do (gRPC).
    pub fn bidders(&self) -> Option<Vec<u64>> {
        match self {
            Target::Grpc(_) => None,
            Target::Gateway(pool) => Some(pool.bidders()),
        }
    }
}

/// `seeds` rotated left by `index`.
pub fn home_seeds(seeds: &[String], index: usize) -> Vec<String> {
    let mut home = seeds.to_vec();
    home.rotate_left(index % seeds.len().max(1));
    home
}

fn request_id(text: &str) -> RequestId {
    RequestId::try_from(text).expect("run tags and counters make short ASCII request ids")
}

async fn grpc_create(client: &Client, auction: &NewAuction, request: &str) -> CreateOutcome {
    let soft_window = Micros(auction.soft_window_us);
    let spec = AuctionSpec {
        title: Title::try_from(format!("jepsen auction {}", auction.id)).expect("a short title"),
        description: Description::try_from("").expect("an empty description is allowed"),
        currency: Currency::try_from("USD").expect("a valid currency"),
        starting_price: Amount(auction.terms.starting_price),
        reserve_price: None,
        buy_now_price: None,
        increment: IncrementPolicy::Fixed(Amount(auction.terms.increment)),
        start: Timestamp(auction.start_us),
        end: Timestamp(auction.end_us),
        soft_close: Some(SoftClose {
            window: soft_window,
            mode: SoftCloseMode::AddToEnd(soft_window),
            total_extension_max: Some(Micros(auction.extension_total_max_us)),
        }),
    };
    let engine_request = Request {
        actor: Actor {
            user: UserId(GRPC_SELLER),
            role: Role::Seller,
        },
        request_id: request_id(request),
        action: Action::CreateAuction {
            auction_id: AuctionId(auction.id),
            spec,
        },
    };
    match client.propose(engine_request).await {
        Ok(proposed) => match proposed.reply {
            Reply::Accepted(Accepted::AuctionCreated { .. }) => CreateOutcome::Created,
            Reply::Rejected(RejectCode::AuctionExists) => CreateOutcome::AlreadyExists,
            other => CreateOutcome::Failed(format!("create answered {other:?}")),
        },
        Err(ProposeError::NotApplied { code, message }) => {
            CreateOutcome::Failed(format!("{code}: {message}"))
        }
        Err(error @ ProposeError::Unknown { .. }) => CreateOutcome::Unknown(error.to_string()),
    }
}

async fn grpc_bid(
    client: &Client,
    auction: u64,
    amount: u64,
    bidder: u64,
    request: &str,
) -> BidOutcome {
    let engine_request = Request {
        actor: Actor {
            user: UserId(bidder),
            role: Role::Bidder,
        },
        request_id: request_id(request),
        action: Action::PlaceBid {
            auction_id: AuctionId(auction),
            amount: Amount(amount),
            max: None,
        },
    };
    match client.propose(engine_request).await {
        Ok(proposed) => match proposed.reply {
            Reply::Accepted(Accepted::Bid { .. }) => BidOutcome::Accepted,
            Reply::Rejected(code) if REFUSED_BID_CODES.contains(&code.as_str()) => {
                BidOutcome::Refused
            }
            Reply::Rejected(code) => BidOutcome::Rejected(code.as_str().to_owned()),
            Reply::Accepted(other) => BidOutcome::Unknown(format!("unexpected reply {other:?}")),
        },
        Err(ProposeError::NotApplied { code, message }) => {
            BidOutcome::NotApplied(format!("{code}: {message}"))
        }
        Err(error @ ProposeError::Unknown { .. }) => BidOutcome::Unknown(error.to_string()),
    }
}

async fn grpc_read(client: &Client, auction: u64) -> ReadOutcome {
    match client
        .read_auction(AuctionId(auction), ReadConsistency::Linearizable)
        .await
    {
        Ok(read) => ReadOutcome::View(view_of(&read.view)),
        Err(error) if error.code() == ClientErrorCode::Server(ErrorCode::AuctionNotFound) => {
            ReadOutcome::NotFound
        }
        Err(error) => ReadOutcome::Failed(error.to_string()),
    }
}

fn outcome_of(result: &AuctionResult) -> Option<CloseOutcome> {
    match result {
        AuctionResult::Sold { winner, price, .. } => Some(CloseOutcome::Sold(TopBid {
            amount: price.0,
            bidder: winner.0,
        })),
        AuctionResult::Unsold { .. } => Some(CloseOutcome::Unsold),
        AuctionResult::Cancelled { .. } => None,
    }
}

/// The history's view of an engine view. A cancelled auction is closed with no outcome.
fn view_of(view: &martelo_engine::AuctionView) -> AuctionView {
    let outcome = view
        .closed
        .as_ref()
        .and_then(|closed| outcome_of(&closed.result));
    AuctionView {
        price: view.price.map(|price| price.0),
        leader: view.leading_bidder.map(|bidder| bidder.0),
        closed: view.closed.is_some(),
        outcome,
    }
}
