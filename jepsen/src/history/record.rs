//! The records of `history.jsonl` as they stand on a line: the event, the function, the
//! values each function carries, and the limits on the free-text fields.

use serde::{Deserialize, Serialize};

/// An auction id, as the cluster assigns it.
pub type AuctionId = u64;
/// A bidder's user id.
pub type BidderId = u64;
/// Money in minor units.
pub type Amount = u64;

/// The longest request id accepted; matches the engine's `RequestId` limit.
pub const REQUEST_ID_BYTES_MAX: usize = 64;
/// The longest `error` note kept on a `fail` or `info` record.
pub const ERROR_NOTE_BYTES_MAX: usize = 512;

/// Whether a record starts an operation or completes it, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// What the operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    CreateAuction,
    Bid,
    Read,
    Close,
}

/// The parameters of an auction, carried by `create_auction`; the model takes its rules from
/// here rather than from constants, so the workload can vary them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    pub starting_price: Amount,
    pub increment: Amount,
}

/// The bid a client sent. Amounts are unique within an auction, so a bid is identified by
/// its amount as well as by its request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidRequest {
    pub amount: Amount,
    pub bidder: BidderId,
}

/// The leading bid of an auction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopBid {
    pub amount: Amount,
    pub bidder: BidderId,
}

/// How a closed auction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseOutcome {
    Sold(TopBid),
    Unsold,
}

/// What a read returns: the price is the highest accepted amount (null before the first
/// accepted bid), `leader` its bidder, and `outcome` is set exactly when `closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuctionView {
    pub price: Option<Amount>,
    pub leader: Option<BidderId>,
    pub closed: bool,
    pub outcome: Option<CloseOutcome>,
}

/// The `value` field. Externally tagged so each shape is explicit in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Terms(Terms),
    Bid(BidRequest),
    BidReply { accepted: bool },
    State(AuctionView),
    Closed { outcome: CloseOutcome },
    NotFound,
    AlreadyExists,
}

/// One line of `history.jsonl`, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub index: u64,
    pub process: u64,
    #[serde(rename = "type")]
    pub event: EventType,
    pub f: Function,
    pub auction: AuctionId,
    pub request: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub time_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
