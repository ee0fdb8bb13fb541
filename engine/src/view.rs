//! What anyone may see of an auction: the state without the reserve amount and the proxy
//! maxima, which only the engine may know. Reads (`ReadAuction`, `martelo auction show`,
//! the gateway) send this, never [`crate::Auction`].

use serde::{Deserialize, Serialize};

use crate::outcome::Listing;
use crate::state::{Auction, Closed};
use crate::types::{Amount, AuctionId, Timestamp, UserId};

/// The public view of one auction at one log position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionView {
    pub id: AuctionId,
    pub seller: UserId,
    pub listing: Listing,
    pub created_at: Timestamp,
    /// The effective end, soft-close extensions included.
    pub end: Timestamp,
    /// The sequence number of the auction's last event.
    pub seq: u64,
    pub price: Option<Amount>,
    pub leading_bidder: Option<UserId>,
    /// The smallest bid a non-leading bidder may place now.
    pub minimum_bid: Amount,
    pub reserve_met: bool,
    pub buy_now_price: Option<Amount>,
    /// Accepted bids in log order, without proxy maxima.
    pub bids: Vec<PublicBid>,
    pub closed: Option<Closed>,
}

/// An accepted bid as the public sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicBid {
    pub bidder: UserId,
    pub amount: Amount,
    pub at: Timestamp,
    pub log_index: u64,
    pub voided: bool,
}

impl Auction {
    /// The public view of this auction.
    pub fn view(&self) -> AuctionView {
        AuctionView {
            id: self.id(),
            seller: self.seller(),
            listing: Listing::from(self.spec()),
            created_at: self.created_at(),
            end: self.end(),
            seq: self.seq(),
            price: self.price(),
            leading_bidder: self.leader().map(|leader| leader.bidder),
            minimum_bid: self.minimum_bid(),
            reserve_met: self.reserve_met(),
            buy_now_price: self.buy_now_price(),
            bids: self
                .bids()
                .iter()
                .map(|bid| PublicBid {
                    bidder: bid.bidder,
                    amount: bid.amount,
                    at: bid.at,
                    log_index: bid.log_index,
                    voided: bid.voided,
                })
                .collect(),
            closed: self.closed().cloned(),
        }
    }
}
