//! Commands: what a replicated log entry asks the engine to do.
//!
//! Clients never supply time, prices they did not bid, winners or identities. The actor's
//! identity and role come from the gateway's authenticated token, the timestamp from the group
//! leader ([`ApplyCtx`]), and `Close` only from the leader's timer.
//!
//! Auction groups apply `Request` and `Close`; the meta group (group 0) applies only `Meta`.
//! The engine does not know its group, so the node checks [`Command::belongs_to`] before it
//! proposes (see the decisions in [`crate::meta`]).

use serde::{Deserialize, Serialize};

use crate::meta::MetaCommand;
use crate::spec::AuctionSpec;
use crate::types::{Amount, AuctionId, BidId, GroupId, Reason, RequestId, Timestamp, UserId};

/// What the cluster tells the engine about the entry being applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyCtx {
    /// The entry's Raft log index. Strictly increases from one applied command to the next.
    pub log_index: u64,
    /// The leader's hybrid-clock timestamp for the entry. The engine never lets time run
    /// backwards: it uses `max(timestamp, last applied timestamp)`.
    pub timestamp: Timestamp,
}

// A create carries the whole listing inline. Commands are decoded and applied one at a time,
// so their size does not matter, and boxing would cost an allocation per create.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A user's request, deduplicated by `(actor.user, request_id)`.
    Request(Request),
    /// Proposed by the group leader once `auction_id`'s effective end has passed. Closes the
    /// auction only if the entry's timestamp has reached that end.
    Close { auction_id: AuctionId },
    /// A meta-group (group 0) command: accounts, sessions, cluster facts. Deduplicated by
    /// `(actor, request_id)`. Last, so the variant indexes of stored logs stay valid.
    Meta(MetaCommand),
    /// Proposed by an auction group's leader when its build knows rules newer than the
    /// group's ([`crate::state::RulesVersion`]): from this entry on, every replica applies
    /// `version`. Never lowers the version. Clients never send it.
    AdoptRules { version: crate::state::RulesVersion },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub actor: Actor,
    pub request_id: RequestId,
    pub action: Action,
}

/// The authenticated caller, as the gateway established it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub user: UserId,
    pub role: Role,
}

/// Roles are ordered: each includes the rights of the ones before it. Every role may bid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Bidder,
    Seller,
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Bidder, Role::Seller, Role::Admin];

    /// The role's name in tokens, JSON and the CLI: `bidder`, `seller`, `admin`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Bidder => "bidder",
            Role::Seller => "seller",
            Role::Admin => "admin",
        }
    }
}

/// A name that is not one of [`Role::as_str`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownRole;

impl std::fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unknown role")
    }
}

impl std::error::Error for UnknownRole {}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    /// The role named `name` (exactly, as [`Role::as_str`] spells it).
    fn from_str(name: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or(UnknownRole)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Seller or admin. The actor becomes the auction's seller.
    CreateAuction {
        auction_id: AuctionId,
        spec: AuctionSpec,
    },
    /// The auction's seller, before the first bid, while it is not closed. Replaces the spec.
    EditAuction {
        auction_id: AuctionId,
        spec: AuctionSpec,
    },
    /// The seller before the first bid, or an admin at any time before close (with a reason).
    CancelAuction {
        auction_id: AuctionId,
        reason: Option<Reason>,
    },
    /// `amount` is the bid placed now; `max`, if given, is the most the bidder lets the engine
    /// bid on their behalf (proxy bidding). Without `max`, the maximum is `amount`.
    PlaceBid {
        auction_id: AuctionId,
        amount: Amount,
        max: Option<Amount>,
    },
    /// Buy at the listing's buy-it-now price, ending the auction.
    BuyNow { auction_id: AuctionId },
    /// Admin: strike a bid from an open auction; leader and price are recomputed without it.
    VoidBid {
        auction_id: AuctionId,
        bid_id: BidId,
        reason: Reason,
    },
    /// Admin: the user may place no bid and buy nothing until reinstated. Suspension is
    /// per group; the cluster applies it to every group.
    SuspendBidder { user: UserId, reason: Reason },
    /// Admin: lift a suspension.
    ReinstateBidder { user: UserId },
    /// Admin: void every standing bid of `user` in an open auction (eBay removes a suspended
    /// user's bids); leader and price are recomputed without them.
    RemoveBidder {
        auction_id: AuctionId,
        user: UserId,
        reason: Reason,
    },
}

impl Action {
    /// The auction the action names, if any. Idempotency records of such requests live with
    /// that auction.
    pub fn auction_id(&self) -> Option<AuctionId> {
        match self {
            Action::CreateAuction { auction_id, .. }
            | Action::EditAuction { auction_id, .. }
            | Action::CancelAuction { auction_id, .. }
            | Action::PlaceBid { auction_id, .. }
            | Action::BuyNow { auction_id }
            | Action::VoidBid { auction_id, .. }
            | Action::RemoveBidder { auction_id, .. } => Some(*auction_id),
            Action::SuspendBidder { .. } | Action::ReinstateBidder { .. } => None,
        }
    }
}

impl Command {
    /// The auction the command is about, if any; the cluster routes on it.
    pub fn auction_id(&self) -> Option<AuctionId> {
        match self {
            Command::Request(request) => request.action.auction_id(),
            Command::Close { auction_id } => Some(*auction_id),
            Command::Meta(_) | Command::AdoptRules { .. } => None,
        }
    }

    /// Whether the command is for the meta group (group 0) rather than an auction shard.
    pub fn is_meta(&self) -> bool {
        matches!(self, Command::Meta(_))
    }

    /// Whether `group` may apply this command: meta commands in group 0 only, auction
    /// commands in shards only. The node checks it before proposing; the engine cannot,
    /// because it never knows its group.
    pub fn belongs_to(&self, group: GroupId) -> bool {
        self.is_meta() == (group == GroupId::META)
    }
}

#[cfg(test)]
mod role_name_tests {
    use super::{Role, UnknownRole};

    #[test]
    fn role_names_round_trip_and_unknown_names_fail() {
        for (role, name) in [
            (Role::Bidder, "bidder"),
            (Role::Seller, "seller"),
            (Role::Admin, "admin"),
        ] {
            assert_eq!(role.as_str(), name);
            assert_eq!(name.parse::<Role>(), Ok(role));
        }
        for name in ["", "Admin", "root", "bidder "] {
            assert_eq!(name.parse::<Role>(), Err(UnknownRole));
        }
    }
}
