//! A reference model of the auction rules, written independently of the engine, that the
//! differential property compares the engine's replies against.

use std::collections::BTreeMap;

use martelo_engine::*;

/// A reference model of the auction rules, written independently of the engine and as
/// plainly as possible: it keeps every bidder's maximum and derives the leader as the highest
/// maximum (earliest on ties) and the price from the closed form "second-highest maximum plus
/// one increment, capped at the leader's maximum, at least the amount the leader took the
/// lead with". It leaves out edits and voids, and, under rules 2, suspensions (which remove
/// bids at close).
///
/// It follows either rules version ([`Model::new`]): rules 1 records every reply, and finds a
/// record made outside any auction whatever auction a later request names; rules 2 records
/// only accepted replies, scopes request ids to the auction named (or to none), and accepts
/// no cancel after the effective end.
#[derive(Default)]
pub(crate) struct Model {
    pub(crate) auctions: BTreeMap<AuctionId, ModelAuction>,
    suspended: Vec<UserId>,
    /// Rules 1: `(user, request id) -> (scope auction, action, reply)`.
    records: BTreeMap<(UserId, String), (Option<AuctionId>, Action, Reply)>,
    /// Rules 2: `(user, request id, scope auction) -> (action, reply)`, accepted replies only.
    scoped: BTreeMap<(UserId, String, Option<AuctionId>), (Action, Reply)>,
    rules2: bool,
}

pub(crate) struct ModelAuction {
    seller: UserId,
    spec: AuctionSpec,
    end: Timestamp,
    seq: u64,
    bids: u32,
    /// `bidder -> (max, order in which that max was set)`.
    maxima: BTreeMap<UserId, (u64, u64)>,
    lead_amount: u64,
    pub(crate) price: Option<u64>,
    pub(crate) result: Option<AuctionResult>,
}

impl ModelAuction {
    fn increment(&self, price: u64) -> u64 {
        match &self.spec.increment {
            IncrementPolicy::Fixed(step) => step.0,
            IncrementPolicy::Ebay => {
                let bands = [
                    (0, 5),
                    (100, 25),
                    (500, 50),
                    (2_500, 100),
                    (10_000, 250),
                    (25_000, 500),
                ];
                bands
                    .iter()
                    .rev()
                    .find(|(from, _)| *from <= price)
                    .map_or(0, |band| band.1)
            }
            IncrementPolicy::Bands(_) => unreachable!("not generated"),
        }
    }

    fn leader(&self) -> Option<(UserId, u64)> {
        // Highest max; on equal maxima, the one set first.
        self.maxima
            .iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1)))
            .map(|(user, (max, _))| (*user, *max))
    }

    fn reserve_met(&self) -> bool {
        self.price.is_some_and(|price| {
            self.spec
                .reserve_price
                .is_none_or(|reserve| price >= reserve.0)
        })
    }
}

impl Model {
    /// A model of rules version 1, or of version 2 when `rules2`.
    pub(crate) fn new(rules2: bool) -> Model {
        Model {
            rules2,
            ..Model::default()
        }
    }

    /// The reply the rules give to `command` at `now`, updating the model like the engine.
    pub(crate) fn apply(&mut self, now: Timestamp, command: &Command) -> Reply {
        match command {
            Command::Close { auction_id } => self.close(now, *auction_id),
            Command::Meta(_) => unreachable!("the generator makes no meta commands"),
            Command::AdoptRules { version } => {
                assert_eq!(
                    *version,
                    RulesVersion::V2,
                    "the generator adopts rules 2 only"
                );
                assert!(self.rules2, "a rules-2 run has a rules-2 model");
                Reply::Accepted(Accepted::RulesAdopted { version: *version })
            }
            Command::Request(request) if self.rules2 => {
                let scope = request.action.auction_id();
                let key = (
                    request.actor.user,
                    request.request_id.as_str().to_owned(),
                    scope,
                );
                if let Some((action, reply)) = self.scoped.get(&key) {
                    if *action == request.action {
                        return reply.clone();
                    }
                    return Reply::Rejected(RejectCode::RequestIdReused);
                }
                let reply = self.execute(now, request);
                if reply.is_accepted() {
                    self.scoped
                        .insert(key, (request.action.clone(), reply.clone()));
                }
                reply
            }
            Command::Request(request) => {
                let key = (request.actor.user, request.request_id.as_str().to_owned());
                let scope = request.action.auction_id();
                if let Some((recorded_scope, action, reply)) = self.records.get(&key) {
                    let visible = recorded_scope.is_none()
                        || (*recorded_scope == scope
                            && scope.is_some_and(|id| self.auctions.contains_key(&id)));
                    if visible {
                        if *action == request.action {
                            return reply.clone();
                        }
                        return Reply::Rejected(RejectCode::RequestIdReused);
                    }
                }
                let reply = self.execute(now, request);
                let stored_scope = scope.filter(|id| self.auctions.contains_key(id));
                self.records
                    .insert(key, (stored_scope, request.action.clone(), reply.clone()));
                reply
            }
        }
    }

    fn execute(&mut self, now: Timestamp, request: &Request) -> Reply {
        let actor = request.actor;
        let rejected = Reply::Rejected;
        match &request.action {
            Action::CreateAuction { auction_id, spec } => {
                if actor.role < Role::Seller {
                    return rejected(RejectCode::PermissionDenied);
                }
                if spec.end <= now {
                    return rejected(RejectCode::InvalidWindow);
                }
                if self.auctions.contains_key(auction_id) {
                    return rejected(RejectCode::AuctionExists);
                }
                self.auctions.insert(
                    *auction_id,
                    ModelAuction {
                        seller: actor.user,
                        spec: spec.clone(),
                        end: spec.end,
                        seq: 1,
                        bids: 0,
                        maxima: BTreeMap::new(),
                        lead_amount: 0,
                        price: None,
                        result: None,
                    },
                );
                Reply::Accepted(Accepted::AuctionCreated {
                    auction_id: *auction_id,
                    seq: 1,
                })
            }
            Action::CancelAuction { auction_id, reason } => {
                let Some(auction) = self.auctions.get_mut(auction_id) else {
                    return rejected(RejectCode::AuctionNotFound);
                };
                if auction.result.is_some() {
                    return rejected(RejectCode::AuctionClosed);
                }
                let seller_may = auction.seller == actor.user && auction.bids == 0;
                let ended = now >= auction.end;
                if self.rules2
                    && ended
                    && (auction.seller == actor.user || actor.role == Role::Admin)
                {
                    return rejected(RejectCode::AuctionNotOpen);
                }
                if !seller_may {
                    if actor.role == Role::Admin {
                        if reason.is_none() {
                            return rejected(RejectCode::ReasonRequired);
                        }
                    } else if auction.seller != actor.user {
                        return rejected(RejectCode::NotSeller);
                    } else {
                        return rejected(RejectCode::HasBids);
                    }
                }
                auction.result = Some(AuctionResult::Cancelled {
                    by: actor.user,
                    reason: reason.clone(),
                });
                auction.seq += 1;
                Reply::Accepted(Accepted::AuctionCancelled {
                    auction_id: *auction_id,
                    seq: auction.seq,
                })
            }
            Action::PlaceBid {
                auction_id,
                amount,
                max,
            } => {
                let max = max.unwrap_or(*amount);
                if !(1..=limits::AMOUNT_MAX).contains(&amount.0)
                    || !(1..=limits::AMOUNT_MAX).contains(&max.0)
                {
                    return rejected(RejectCode::AmountOutOfRange);
                }
                if max < *amount {
                    return rejected(RejectCode::MaxBelowAmount);
                }
                let suspended = self.suspended.contains(&actor.user);
                let Some(auction) = self.auctions.get_mut(auction_id) else {
                    return rejected(RejectCode::AuctionNotFound);
                };
                if let Err(code) = may_buy_or_bid(auction, now, actor.user, suspended) {
                    return rejected(code);
                }
                let before = (auction.price, auction.leader().map(|leader| leader.0));
                let order = u64::from(auction.bids);
                match auction.leader() {
                    Some((leader, leader_max)) if leader == actor.user => {
                        if max.0 <= leader_max {
                            return rejected(RejectCode::MaxNotRaised);
                        }
                        auction.maxima.insert(actor.user, (max.0, order));
                    }
                    current => {
                        let minimum = auction
                            .price
                            .map_or(auction.spec.starting_price.0, |price| {
                                price + auction.increment(price)
                            });
                        if amount.0 < minimum {
                            return rejected(RejectCode::BidTooLow);
                        }
                        let previous = auction.maxima.get(&actor.user).map_or(0, |entry| entry.0);
                        if max.0 > previous {
                            auction.maxima.insert(actor.user, (max.0, order));
                        }
                        let (leader, leader_max) = auction.leader().expect("someone leads");
                        if current.map(|current| current.0) != Some(leader) {
                            auction.lead_amount = amount.0;
                        }
                        let second = auction
                            .maxima
                            .iter()
                            .filter(|(user, _)| **user != leader)
                            .map(|(_, entry)| entry.0)
                            .max();
                        let price = match second {
                            None => auction.lead_amount,
                            Some(second) => (second + auction.increment(second))
                                .min(leader_max)
                                .max(auction.lead_amount),
                        };
                        auction.price = Some(price);
                        if current.is_some() {
                            auction.seq += 1; // outbid: either the old leader or the newcomer
                        }
                    }
                }
                auction.bids += 1;
                auction.seq += 1; // bid accepted
                let (leader, leader_max) = auction.leader().expect("someone leads");
                if let Some(reserve) = auction.spec.reserve_price
                    && leader_max >= reserve.0
                    && auction.price < Some(reserve.0)
                {
                    auction.price = Some(reserve.0);
                }
                if before != (auction.price, Some(leader)) {
                    auction.seq += 1; // price changed
                    if let Some(policy) = auction.spec.soft_close
                        && auction.end.0 - now.0 <= policy.window.0
                    {
                        let proposed = match policy.mode {
                            SoftCloseMode::AddToEnd(span) => auction.end.0 + span.0,
                            SoftCloseMode::ResetRemaining(span) => now.0 + span.0,
                        };
                        let cap = auction.spec.end.0
                            + policy
                                .total_extension_max
                                .unwrap_or(limits::SOFT_CLOSE_TOTAL_MAX)
                                .0;
                        if proposed.min(cap) > auction.end.0 {
                            auction.end = Timestamp(proposed.min(cap));
                            auction.seq += 1;
                        }
                    }
                }
                Reply::Accepted(Accepted::Bid {
                    auction_id: *auction_id,
                    bid_id: BidId(auction.bids - 1),
                    seq: auction.seq,
                    price: Amount(auction.price.expect("priced")),
                    leading: leader == actor.user,
                    reserve_met: auction.reserve_met(),
                    end: auction.end,
                })
            }
            Action::BuyNow { auction_id } => {
                let suspended = self.suspended.contains(&actor.user);
                let Some(auction) = self.auctions.get_mut(auction_id) else {
                    return rejected(RejectCode::AuctionNotFound);
                };
                if let Err(code) = may_buy_or_bid(auction, now, actor.user, suspended) {
                    return rejected(code);
                }
                let Some(buy_now) = auction.spec.buy_now_price else {
                    return rejected(RejectCode::BuyNowUnavailable);
                };
                let open = auction.price.is_none() || !auction.reserve_met();
                if !open || auction.price.is_some_and(|price| price >= buy_now.0) {
                    return rejected(RejectCode::BuyNowUnavailable);
                }
                auction.result = Some(AuctionResult::Sold {
                    winner: actor.user,
                    price: buy_now,
                    via: SaleKind::BuyNow,
                });
                auction.seq += 1;
                Reply::Accepted(Accepted::BoughtNow {
                    auction_id: *auction_id,
                    seq: auction.seq,
                    price: buy_now,
                })
            }
            Action::SuspendBidder { user, .. } => {
                if self.suspended.contains(user) {
                    return rejected(RejectCode::BidderAlreadySuspended);
                }
                self.suspended.push(*user);
                Reply::Accepted(Accepted::BidderSuspended { user: *user })
            }
            Action::ReinstateBidder { user } => {
                let before = self.suspended.len();
                self.suspended.retain(|suspended| suspended != user);
                if self.suspended.len() == before {
                    return rejected(RejectCode::BidderNotSuspended);
                }
                Reply::Accepted(Accepted::BidderReinstated { user: *user })
            }
            Action::EditAuction { .. } | Action::VoidBid { .. } | Action::RemoveBidder { .. } => {
                unreachable!("not generated")
            }
        }
    }

    fn close(&mut self, now: Timestamp, auction_id: AuctionId) -> Reply {
        let Some(auction) = self.auctions.get_mut(&auction_id) else {
            return Reply::Rejected(RejectCode::AuctionNotFound);
        };
        if auction.result.is_some() {
            return Reply::Rejected(RejectCode::AuctionClosed);
        }
        if now < auction.end {
            return Reply::Rejected(RejectCode::AuctionNotEnded);
        }
        let result = match (auction.leader(), auction.reserve_met()) {
            (None, _) => AuctionResult::Unsold {
                reason: UnsoldReason::NoBids,
            },
            (Some(_), false) => AuctionResult::Unsold {
                reason: UnsoldReason::ReserveNotMet,
            },
            (Some((winner, _)), true) => AuctionResult::Sold {
                winner,
                price: Amount(auction.price.expect("priced")),
                via: SaleKind::Bidding,
            },
        };
        auction.result = Some(result.clone());
        auction.seq += 1;
        Reply::Accepted(Accepted::Closed {
            auction_id,
            seq: auction.seq,
            result,
        })
    }
}

fn may_buy_or_bid(
    auction: &ModelAuction,
    now: Timestamp,
    user: UserId,
    suspended: bool,
) -> Result<(), RejectCode> {
    if auction.result.is_some() {
        return Err(RejectCode::AuctionClosed);
    }
    if auction.seller == user {
        return Err(RejectCode::OwnAuction);
    }
    if suspended {
        return Err(RejectCode::BidderSuspended);
    }
    if now < auction.spec.start || now >= auction.end {
        return Err(RejectCode::AuctionNotOpen);
    }
    Ok(())
}
