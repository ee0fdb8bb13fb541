//! The rules that change a group's state, one method per action: create, edit and cancel an
//! auction, bid, buy it now, void a bid, close. Dedupe, expiry and queries stay in the parent
//! module; per-auction arithmetic (the proxy fold, increments, soft close) is in `auction`.

use super::auction::*;
use super::*;

/// The reason on the `BidVoided` events of a suspended bidder's bids removed at close.
const SUSPENDED_AT_CLOSE: &str = "bidder suspended";

impl State {
    pub(super) fn execute(
        &mut self,
        now: Timestamp,
        log_index: u64,
        request: &Request,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let actor = request.actor;
        match &request.action {
            Action::CreateAuction { auction_id, spec } => {
                self.create_auction(now, actor, *auction_id, spec, events)
            }
            Action::EditAuction { auction_id, spec } => {
                self.edit_auction(now, actor, *auction_id, spec, events)
            }
            Action::CancelAuction { auction_id, reason } => {
                self.cancel_auction(now, actor, *auction_id, reason.as_ref(), events)
            }
            Action::PlaceBid {
                auction_id,
                amount,
                max,
            } => {
                let bid = BidRequest {
                    amount: *amount,
                    max: *max,
                    log_index,
                };
                self.place_bid(now, actor, *auction_id, bid, events)
            }
            Action::BuyNow { auction_id } => self.buy_now(now, actor, *auction_id, events),
            Action::VoidBid {
                auction_id,
                bid_id,
                reason,
            } => self.void_bid(now, actor, *auction_id, *bid_id, reason, events),
            Action::RemoveBidder {
                auction_id,
                user,
                reason,
            } => self.remove_bidder(now, actor, *auction_id, *user, reason, events),
            Action::SuspendBidder { user, reason } => {
                require_role(actor, Role::Admin)?;
                if !self.suspended.insert(*user) {
                    return Err(RejectCode::BidderAlreadySuspended);
                }
                events.push(Event::BidderSuspended {
                    user: *user,
                    reason: reason.clone(),
                    at: now,
                });
                Ok(Accepted::BidderSuspended { user: *user })
            }
            Action::ReinstateBidder { user } => {
                require_role(actor, Role::Admin)?;
                if !self.suspended.remove(user) {
                    return Err(RejectCode::BidderNotSuspended);
                }
                events.push(Event::BidderReinstated {
                    user: *user,
                    at: now,
                });
                Ok(Accepted::BidderReinstated { user: *user })
            }
        }
    }

    pub(super) fn create_auction(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        spec: &AuctionSpec,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        require_role(actor, Role::Seller)?;
        spec.check(now)?;
        if self.auctions.contains_key(&auction_id) || self.retired.contains_key(&auction_id) {
            return Err(RejectCode::AuctionExists);
        }
        // Retired ids (rules 2) hold a place too: they are what bounds them.
        if self.auctions.len() + self.retired.len() >= self.capacity.auctions_max {
            return Err(RejectCode::AuctionLimitReached);
        }
        let mut auction = Auction {
            id: auction_id,
            seller: actor.user,
            spec: spec.clone(),
            created_at: now,
            end: spec.end,
            seq: 0,
            price: None,
            leader: None,
            bids: Vec::new(),
            closed: None,
            requests: BTreeMap::new(),
            records: Vec::new(),
        };
        let listing = Box::new(Listing::from(spec));
        auction.emit(
            now,
            AuctionEventKind::Created {
                seller: actor.user,
                listing,
            },
            events,
        );
        let seq = auction.seq;
        self.open_by_end.insert((auction.end, auction_id));
        self.auctions.insert(auction_id, auction);
        Ok(Accepted::AuctionCreated { auction_id, seq })
    }

    pub(super) fn edit_auction(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        spec: &AuctionSpec,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let v2 = self.rules >= RulesVersion::V2;
        if v2 {
            // As strict as creating: a seller whose role was taken away edits nothing.
            require_role(actor, Role::Seller)?;
        }
        spec.check(now)?;
        let auction = self.open_auction_mut(auction_id)?;
        if auction.seller != actor.user {
            return Err(RejectCode::NotSeller);
        }
        if v2 && now >= auction.end {
            // Ended, and only waiting for its `Close`: an edit would bring it back to life.
            return Err(RejectCode::AuctionNotOpen);
        }
        if !auction.bids.is_empty() {
            return Err(RejectCode::HasBids);
        }
        let old_end = auction.end;
        auction.spec = spec.clone();
        auction.end = spec.end;
        auction.emit(
            now,
            AuctionEventKind::Edited {
                listing: Box::new(Listing::from(spec)),
            },
            events,
        );
        let seq = auction.seq;
        self.open_by_end.remove(&(old_end, auction_id));
        self.open_by_end.insert((spec.end, auction_id));
        Ok(Accepted::AuctionEdited { auction_id, seq })
    }

    pub(super) fn cancel_auction(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        reason: Option<&Reason>,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let v2 = self.rules >= RulesVersion::V2;
        let auction = self.open_auction_mut(auction_id)?;
        let is_seller = auction.seller == actor.user;
        let admin = actor.role == Role::Admin;
        if !is_seller && !admin {
            return Err(RejectCode::NotSeller);
        }
        if v2 && now >= auction.end {
            // Ended: its result is decided, and `Close` records it.
            return Err(RejectCode::AuctionNotOpen);
        }
        let seller_may = is_seller && auction.bids.is_empty();
        if !seller_may {
            if !admin {
                return Err(RejectCode::HasBids);
            }
            if reason.is_none() {
                return Err(RejectCode::ReasonRequired);
            }
        }
        let result = AuctionResult::Cancelled {
            by: actor.user,
            reason: reason.cloned(),
        };
        let seq = self.finish(now, auction_id, result, events);
        Ok(Accepted::AuctionCancelled { auction_id, seq })
    }

    pub(super) fn place_bid(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        bid: BidRequest,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let max = check_bid_amounts(bid.amount, bid.max)?;
        let suspended = self.suspended.contains(&actor.user);
        let bids_max = self.capacity.bids_per_auction_max;
        let auction = self
            .auctions
            .get_mut(&auction_id)
            .ok_or(RejectCode::AuctionNotFound)?;
        let amount = auction.bid_amount(now, actor.user, suspended, bids_max, bid.amount, max)?;
        // The flags the event carries (for the read model), from what was just decided:
        // `bid_amount` took the raise path exactly when the bidder leads at a price, and a
        // maximum above the recorded amount makes the bid a proxy (a raise always is one).
        let raise = auction.price.is_some()
            && auction
                .leader
                .is_some_and(|leader| leader.bidder == actor.user);
        let proxy = max > amount;
        let bid_id = BidId(u32::try_from(auction.bids.len()).expect("bids are bounded"));
        let placed = Bid {
            bidder: actor.user,
            amount,
            max,
            at: now,
            log_index: bid.log_index,
            voided: false,
        };
        auction.bids.push(placed);
        let before = (auction.price, auction.leader.map(|leader| leader.bidder));
        let kind = AuctionEventKind::BidAccepted {
            bid_id,
            bidder: actor.user,
            amount,
            proxy,
            raise,
        };
        auction.emit(now, kind, events);
        let change = fold_bid(
            &auction.spec,
            &mut auction.leader,
            &mut auction.price,
            &placed,
        );
        if let Some((bidder, by)) = change.outbid {
            auction.emit(now, AuctionEventKind::Outbid { bidder, by }, events);
        }
        let after = (auction.price, auction.leader.map(|leader| leader.bidder));
        let old_end = auction.end;
        if before != after {
            auction.emit_price(now, events);
            auction.soft_close(now, events);
        }
        let (new_end, price) = (auction.end, auction.price.expect("a bid was folded in"));
        let accepted = Accepted::Bid {
            auction_id,
            bid_id,
            seq: auction.seq,
            price,
            leading: auction
                .leader
                .is_some_and(|leader| leader.bidder == actor.user),
            reserve_met: auction.reserve_met(),
            end: new_end,
        };
        if new_end != old_end {
            self.open_by_end.remove(&(old_end, auction_id));
            self.open_by_end.insert((new_end, auction_id));
        }
        Ok(accepted)
    }

    pub(super) fn buy_now(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let suspended = self.suspended.contains(&actor.user);
        let auction = self.open_auction_mut(auction_id)?;
        auction.check_may_buy_or_bid(now, actor.user, suspended)?;
        let price = auction
            .buy_now_price()
            .ok_or(RejectCode::BuyNowUnavailable)?;
        let result = AuctionResult::Sold {
            winner: actor.user,
            price,
            via: SaleKind::BuyNow,
        };
        let seq = self.finish(now, auction_id, result, events);
        Ok(Accepted::BoughtNow {
            auction_id,
            seq,
            price,
        })
    }

    pub(super) fn void_bid(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        bid_id: BidId,
        reason: &Reason,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        require_role(actor, Role::Admin)?;
        let v2 = self.rules >= RulesVersion::V2;
        let auction = self.open_auction_mut(auction_id)?;
        if v2 && now >= auction.end {
            return Err(RejectCode::AuctionNotOpen);
        }
        let bid = auction
            .bids
            .get(bid_id.0 as usize)
            .ok_or(RejectCode::BidNotFound)?;
        if bid.voided {
            return Err(RejectCode::BidAlreadyVoided);
        }
        auction.void_where(now, |id, _| id == bid_id, reason, events);
        Ok(Accepted::BidVoided {
            auction_id,
            seq: auction.seq,
        })
    }

    pub(super) fn close_when_ended(
        &mut self,
        now: Timestamp,
        auction_id: AuctionId,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let v2 = self.rules >= RulesVersion::V2;
        let auction = self
            .auctions
            .get_mut(&auction_id)
            .ok_or(RejectCode::AuctionNotFound)?;
        if auction.closed.is_some() {
            return Err(RejectCode::AuctionClosed);
        }
        if now < auction.end {
            return Err(RejectCode::AuctionNotEnded);
        }
        if v2 && !self.suspended.is_empty() {
            // Rules 2: a suspended bidder neither wins nor sets the price. Their standing
            // bids are removed first, as `RemoveBidder` would, and the result is decided
            // without them.
            let suspended: BTreeSet<UserId> = auction
                .bids
                .iter()
                .filter(|bid| !bid.voided && self.suspended.contains(&bid.bidder))
                .map(|bid| bid.bidder)
                .collect();
            if !suspended.is_empty() {
                let reason = Reason::try_from(SUSPENDED_AT_CLOSE).expect("a valid reason");
                auction.void_where(
                    now,
                    |_, bid| suspended.contains(&bid.bidder),
                    &reason,
                    events,
                );
            }
        }
        let result = match auction.leader {
            None => AuctionResult::Unsold {
                reason: UnsoldReason::NoBids,
            },
            Some(_) if !auction.reserve_met() => AuctionResult::Unsold {
                reason: UnsoldReason::ReserveNotMet,
            },
            Some(leader) => AuctionResult::Sold {
                winner: leader.bidder,
                price: auction.price.expect("a leader implies a price"),
                via: SaleKind::Bidding,
            },
        };
        let seq = self.finish(now, auction_id, result.clone(), events);
        Ok(Accepted::Closed {
            auction_id,
            seq,
            result,
        })
    }

    pub(super) fn remove_bidder(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        user: UserId,
        reason: &Reason,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        require_role(actor, Role::Admin)?;
        let auction = self.open_auction_mut(auction_id)?;
        if now >= auction.end {
            return Err(RejectCode::AuctionNotOpen);
        }
        if !auction
            .bids
            .iter()
            .any(|bid| !bid.voided && bid.bidder == user)
        {
            return Err(RejectCode::BidNotFound);
        }
        auction.void_where(now, |_, bid| bid.bidder == user, reason, events);
        Ok(Accepted::BidVoided {
            auction_id,
            seq: auction.seq,
        })
    }

    /// Records the auction's one result and schedules its removal from the state.
    pub(super) fn finish(
        &mut self,
        now: Timestamp,
        auction_id: AuctionId,
        result: AuctionResult,
        events: &mut Vec<Event>,
    ) -> u64 {
        let auction = self
            .auctions
            .get_mut(&auction_id)
            .expect("caller found the auction");
        assert!(
            auction.closed.is_none(),
            "auction {auction_id:?} closed twice"
        );
        auction.closed = Some(Closed {
            result: result.clone(),
            at: now,
        });
        auction.emit(now, AuctionEventKind::Closed { result }, events);
        self.open_by_end.remove(&(auction.end, auction_id));
        self.closed_expiry
            .insert((now.plus(limits::CLOSED_RETENTION), auction_id));
        auction.seq
    }
}
