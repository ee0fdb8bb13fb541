//! What applying a command produces: a reply for the caller and events for everyone else.

use serde::{Deserialize, Serialize};

use crate::spec::{IncrementPolicy, SoftClose};
use crate::types::{
    Amount, AuctionId, BidId, Currency, Description, Reason, Timestamp, Title, UserId,
};

/// The result of applying one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub reply: Reply,
    /// Events in the order they happened. Empty for rejections and replays.
    pub events: Vec<Event>,
    /// True when the request had been applied before and `reply` is the stored first reply.
    pub replayed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reply {
    Accepted(Accepted),
    Rejected(RejectCode),
}

impl Reply {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Reply::Accepted(_))
    }

    pub fn rejection(&self) -> Option<RejectCode> {
        match self {
            Reply::Rejected(code) => Some(*code),
            Reply::Accepted(_) => None,
        }
    }
}

/// What an accepted command did. `seq` is the auction's sequence number after the command:
/// the `seq` of the last event it emitted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Accepted {
    AuctionCreated {
        auction_id: AuctionId,
        seq: u64,
    },
    AuctionEdited {
        auction_id: AuctionId,
        seq: u64,
    },
    AuctionCancelled {
        auction_id: AuctionId,
        seq: u64,
    },
    Bid {
        auction_id: AuctionId,
        bid_id: BidId,
        seq: u64,
        /// The visible price after the bid.
        price: Amount,
        /// Whether the bidder leads after the bid (a proxy may outbid them at once).
        leading: bool,
        reserve_met: bool,
        end: Timestamp,
    },
    BoughtNow {
        auction_id: AuctionId,
        seq: u64,
        price: Amount,
    },
    Closed {
        auction_id: AuctionId,
        seq: u64,
        result: AuctionResult,
    },
    BidVoided {
        auction_id: AuctionId,
        seq: u64,
    },
    BidderSuspended {
        user: UserId,
    },
    BidderReinstated {
        user: UserId,
    },
    /// A meta-group (group 0) command; see [`crate::meta`].
    Meta(crate::meta::MetaAccepted),
    /// `AdoptRules`: the group's rules version after the command (unchanged if it was
    /// already at or past the proposed one).
    RulesAdopted {
        version: crate::state::RulesVersion,
    },
}

/// Why a command was rejected. Stable, machine-readable: see [`RejectCode::as_str`]. When
/// several rules fail, the first in this declaration order names the rejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The same (user, request id) was used before with a different payload.
    RequestIdReused,
    PermissionDenied,
    AmountOutOfRange,
    MaxBelowAmount,
    InvalidPrices,
    InvalidIncrementPolicy,
    InvalidWindow,
    InvalidSoftClose,
    AuctionExists,
    AuctionNotFound,
    AuctionClosed,
    NotSeller,
    OwnAuction,
    BidderSuspended,
    AuctionNotOpen,
    AuctionNotEnded,
    HasBids,
    ReasonRequired,
    BidNotFound,
    BidAlreadyVoided,
    BuyNowUnavailable,
    MaxNotRaised,
    BidTooLow,
    BidderAlreadySuspended,
    BidderNotSuspended,
    AuctionLimitReached,
    BidLimitReached,
    RequestLimitReached,
    /// A meta-group (group 0) command's rejection, with its own codes and precedence
    /// ([`crate::meta::MetaRejectCode`]). Its `as_str` is the meta code's.
    Meta(crate::meta::MetaRejectCode),
}

impl RejectCode {
    /// Every auction code, in precedence order (the meta codes are
    /// [`crate::meta::MetaRejectCode::ALL`]).
    pub const ALL: [RejectCode; 28] = [
        RejectCode::RequestIdReused,
        RejectCode::PermissionDenied,
        RejectCode::AmountOutOfRange,
        RejectCode::MaxBelowAmount,
        RejectCode::InvalidPrices,
        RejectCode::InvalidIncrementPolicy,
        RejectCode::InvalidWindow,
        RejectCode::InvalidSoftClose,
        RejectCode::AuctionExists,
        RejectCode::AuctionNotFound,
        RejectCode::AuctionClosed,
        RejectCode::NotSeller,
        RejectCode::OwnAuction,
        RejectCode::BidderSuspended,
        RejectCode::AuctionNotOpen,
        RejectCode::AuctionNotEnded,
        RejectCode::HasBids,
        RejectCode::ReasonRequired,
        RejectCode::BidNotFound,
        RejectCode::BidAlreadyVoided,
        RejectCode::BuyNowUnavailable,
        RejectCode::MaxNotRaised,
        RejectCode::BidTooLow,
        RejectCode::BidderAlreadySuspended,
        RejectCode::BidderNotSuspended,
        RejectCode::AuctionLimitReached,
        RejectCode::BidLimitReached,
        RejectCode::RequestLimitReached,
    ];

    /// The stable wire code. Never change one: clients and dashboards match on them.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::RequestIdReused => "request_id_reused",
            RejectCode::PermissionDenied => "permission_denied",
            RejectCode::AmountOutOfRange => "amount_out_of_range",
            RejectCode::MaxBelowAmount => "max_below_amount",
            RejectCode::InvalidPrices => "invalid_prices",
            RejectCode::InvalidIncrementPolicy => "invalid_increment_policy",
            RejectCode::InvalidWindow => "invalid_window",
            RejectCode::InvalidSoftClose => "invalid_soft_close",
            RejectCode::AuctionExists => "auction_exists",
            RejectCode::AuctionNotFound => "auction_not_found",
            RejectCode::AuctionClosed => "auction_closed",
            RejectCode::NotSeller => "not_seller",
            RejectCode::OwnAuction => "own_auction",
            RejectCode::BidderSuspended => "bidder_suspended",
            RejectCode::AuctionNotOpen => "auction_not_open",
            RejectCode::AuctionNotEnded => "auction_not_ended",
            RejectCode::HasBids => "has_bids",
            RejectCode::ReasonRequired => "reason_required",
            RejectCode::BidNotFound => "bid_not_found",
            RejectCode::BidAlreadyVoided => "bid_already_voided",
            RejectCode::BuyNowUnavailable => "buy_now_unavailable",
            RejectCode::MaxNotRaised => "max_not_raised",
            RejectCode::BidTooLow => "bid_too_low",
            RejectCode::BidderAlreadySuspended => "bidder_already_suspended",
            RejectCode::BidderNotSuspended => "bidder_not_suspended",
            RejectCode::AuctionLimitReached => "auction_limit_reached",
            RejectCode::BidLimitReached => "bid_limit_reached",
            RejectCode::RequestLimitReached => "request_limit_reached",
            RejectCode::Meta(code) => code.as_str(),
        }
    }

    /// A sentence for people; the code is what programs match on.
    pub fn message(self) -> &'static str {
        match self {
            RejectCode::RequestIdReused => "this request id was already used for another request",
            RejectCode::PermissionDenied => "your role does not allow this action",
            RejectCode::AmountOutOfRange => "an amount is zero or above the maximum",
            RejectCode::MaxBelowAmount => "the proxy maximum is below the bid amount",
            RejectCode::InvalidPrices => {
                "reserve and buy-it-now prices must be at least the starting price, \
                 and buy-it-now at least the reserve"
            }
            RejectCode::InvalidIncrementPolicy => "the increment policy is malformed",
            RejectCode::InvalidWindow => {
                "start must precede end, end must be in the future, within the limits"
            }
            RejectCode::InvalidSoftClose => "the soft-close policy is outside its limits",
            RejectCode::AuctionExists => "an auction with this id already exists",
            RejectCode::AuctionNotFound => "no such auction",
            RejectCode::AuctionClosed => "the auction is closed",
            RejectCode::NotSeller => "only the auction's seller may do this",
            RejectCode::OwnAuction => "sellers cannot bid on their own auction",
            RejectCode::BidderSuspended => "the bidder is suspended",
            RejectCode::AuctionNotOpen => "the auction is not open for bids at this time",
            RejectCode::AuctionNotEnded => "the auction has not reached its end time",
            RejectCode::HasBids => "the auction already has bids",
            RejectCode::ReasonRequired => "an admin must give a reason",
            RejectCode::BidNotFound => "no such bid in this auction",
            RejectCode::BidAlreadyVoided => "the bid was already voided",
            RejectCode::BuyNowUnavailable => "buy-it-now is not available for this auction",
            RejectCode::MaxNotRaised => "you lead already; a new maximum must exceed your old one",
            RejectCode::BidTooLow => "the bid is below the minimum acceptable bid",
            RejectCode::BidderAlreadySuspended => "the bidder is already suspended",
            RejectCode::BidderNotSuspended => "the bidder is not suspended",
            RejectCode::AuctionLimitReached => "this shard holds the maximum number of auctions",
            RejectCode::BidLimitReached => "this auction holds the maximum number of bids",
            RejectCode::RequestLimitReached => "too many requests are retained for deduplication",
            RejectCode::Meta(code) => code.message(),
        }
    }
}

impl std::fmt::Display for RejectCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an auction ended. Every auction ends with exactly one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuctionResult {
    Sold {
        winner: UserId,
        price: Amount,
        via: SaleKind,
    },
    Unsold {
        reason: UnsoldReason,
    },
    Cancelled {
        by: UserId,
        reason: Option<Reason>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SaleKind {
    Bidding,
    BuyNow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnsoldReason {
    NoBids,
    ReserveNotMet,
}

/// Something that happened, for watchers, the event log and the Postgres sink. Events are
/// public: they never carry a reserve amount or a bidder's proxy maximum.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    Auction(AuctionEvent),
    BidderSuspended {
        user: UserId,
        reason: Reason,
        at: Timestamp,
    },
    BidderReinstated {
        user: UserId,
        at: Timestamp,
    },
    /// A change to the meta group's state (group 0 only), with its meta-level `seq`.
    Meta(crate::meta::MetaEvent),
}

/// An event of one auction. `seq` increases by one with each event of that auction, so a
/// watcher can resume after the last `seq` it saw.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuctionEvent {
    pub auction_id: AuctionId,
    pub seq: u64,
    pub at: Timestamp,
    pub kind: AuctionEventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuctionEventKind {
    // Listings are boxed: they are rare and large, and an unboxed one would make every event
    // (up to four per bid on the hot path) as big as a listing.
    Created {
        seller: UserId,
        listing: Box<Listing>,
    },
    Edited {
        listing: Box<Listing>,
    },
    BidAccepted {
        bid_id: BidId,
        bidder: UserId,
        amount: Amount,
        /// A proxy bid: the bidder set a maximum above `amount` (the maximum itself is never
        /// in an event). Appended in storage format 3 / wire version 3; `false` when read
        /// from an older one (`codec::compat`).
        #[serde(
            default,
            deserialize_with = "crate::codec::compat::deserialize_bid_flag",
            skip_serializing_if = "crate::codec::compat::omit_bid_flag"
        )]
        proxy: bool,
        /// The bidder already led and raised their own maximum (`amount` is then the price
        /// they were committed to). Appended like `proxy`.
        #[serde(
            default,
            deserialize_with = "crate::codec::compat::deserialize_bid_flag",
            skip_serializing_if = "crate::codec::compat::omit_bid_flag"
        )]
        raise: bool,
    },
    PriceChanged {
        price: Amount,
        leader: UserId,
        reserve_met: bool,
    },
    /// `bidder` no longer leads; `by` does.
    Outbid {
        bidder: UserId,
        by: UserId,
    },
    EndExtended {
        end: Timestamp,
    },
    BidVoided {
        bid_id: BidId,
        reason: Reason,
    },
    /// After a void, nobody leads any more.
    PriceCleared,
    Closed {
        result: AuctionResult,
    },
}

/// A command that went through the log and was rejected by the state machine, as the event
/// log records it beside the events (for the sink's `rejections` table). Built from what
/// apply already knows (the command, its entry's timestamp and its reply), so it is as
/// deterministic as the apply.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rejection {
    /// The auction the command named, if any.
    pub auction_id: Option<AuctionId>,
    /// The user who sent it: `None` for the leader's `Close`, and for anonymous or operator
    /// meta commands.
    pub actor: Option<UserId>,
    pub code: RejectCode,
    /// The entry's (cluster) timestamp.
    pub at: Timestamp,
}

impl Rejection {
    /// The rejection `outcome` is, for `command` applied at `at`: `None` when the command was
    /// accepted, or when the reply is a replay (the first attempt's rejection was recorded
    /// at that attempt's index).
    pub fn of(command: &crate::Command, at: Timestamp, outcome: &Outcome) -> Option<Rejection> {
        let code = outcome.reply.rejection()?;
        if outcome.replayed {
            return None;
        }
        let actor = match command {
            crate::Command::Request(request) => Some(request.actor.user),
            crate::Command::Close { .. } | crate::Command::AdoptRules { .. } => None,
            crate::Command::Meta(meta) => match meta.actor {
                crate::meta::MetaActor::User(user) => Some(user),
                crate::meta::MetaActor::Anonymous | crate::meta::MetaActor::Operator => None,
            },
        };
        Some(Rejection {
            auction_id: command.auction_id(),
            actor,
            code,
            at,
        })
    }
}

/// The public face of an [`crate::AuctionSpec`]: everything but the reserve amount.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Listing {
    pub title: Title,
    pub description: Description,
    pub currency: Currency,
    pub starting_price: Amount,
    pub has_reserve: bool,
    pub buy_now_price: Option<Amount>,
    pub increment: IncrementPolicy,
    pub start: Timestamp,
    pub end: Timestamp,
    pub soft_close: Option<SoftClose>,
}

impl From<&crate::AuctionSpec> for Listing {
    fn from(spec: &crate::AuctionSpec) -> Listing {
        Listing {
            title: spec.title.clone(),
            description: spec.description.clone(),
            currency: spec.currency,
            starting_price: spec.starting_price,
            has_reserve: spec.reserve_price.is_some(),
            buy_now_price: spec.buy_now_price,
            increment: spec.increment.clone(),
            start: spec.start,
            end: spec.end,
            soft_close: spec.soft_close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn reject_codes_are_unique_snake_case_and_listed_in_precedence_order() {
        let codes: BTreeSet<&str> = RejectCode::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(codes.len(), RejectCode::ALL.len());
        for code in codes {
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
        }
        assert!(RejectCode::ALL.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
