//! One auction's arithmetic: its queries (price, leader, minimum bid, reserve, buy it now),
//! eBay proxy bidding (`fold_bid`), increments, soft close and the auction's invariants.
//! Which command may change an auction is decided in `rules`.

use super::*;

impl Auction {
    pub fn id(&self) -> AuctionId {
        self.id
    }

    pub fn seller(&self) -> UserId {
        self.seller
    }

    /// The full spec, including the secret reserve: for the seller and admins only.
    pub fn spec(&self) -> &AuctionSpec {
        &self.spec
    }

    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// The effective end, soft-close extensions included.
    pub fn end(&self) -> Timestamp {
        self.end
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn price(&self) -> Option<Amount> {
        self.price
    }

    /// The leader and their secret maximum: for admins and audit only.
    pub fn leader(&self) -> Option<Leader> {
        self.leader
    }

    pub fn bids(&self) -> &[Bid] {
        &self.bids
    }

    pub fn closed(&self) -> Option<&Closed> {
        self.closed.as_ref()
    }

    /// The smallest bid a non-leading bidder may place now.
    pub fn minimum_bid(&self) -> Amount {
        match self.price {
            None => self.spec.starting_price,
            Some(price) => plus_increment(&self.spec, price),
        }
    }

    /// Public: whether the current price meets the reserve (true when there is none but a
    /// leader exists).
    pub fn reserve_met(&self) -> bool {
        match self.price {
            None => false,
            Some(price) => self
                .spec
                .reserve_price
                .is_none_or(|reserve| price >= reserve),
        }
    }

    /// The buy-it-now price while it can still be used. Following eBay, it disappears with
    /// the first bid, unless the reserve is still unmet; it comes back if every bid is voided.
    pub fn buy_now_price(&self) -> Option<Amount> {
        let price = self.spec.buy_now_price?;
        let available = self.leader.is_none() || !self.reserve_met();
        (available && self.price.is_none_or(|current| current < price)).then_some(price)
    }

    /// Every check of a bid that reads the auction, in the engine's order: open, may bid,
    /// room for another bid, then the price rule. Returns the amount the bid history records
    /// (a leader raising their maximum is committed to the current price).
    pub(super) fn bid_amount(
        &self,
        now: Timestamp,
        user: UserId,
        suspended: bool,
        bids_max: usize,
        amount: Amount,
        max: Amount,
    ) -> Rule<Amount> {
        if crate::planted::active(crate::planted::Bug::BidAfterClose) {
            // Planted bug: closed and ended auctions take bids.
            if self.seller == user {
                return Err(RejectCode::OwnAuction);
            }
        } else {
            if self.closed.is_some() {
                return Err(RejectCode::AuctionClosed);
            }
            self.check_may_buy_or_bid(now, user, suspended)?;
        }
        if self.bids.len() >= bids_max {
            return Err(RejectCode::BidLimitReached);
        }
        match (self.leader, self.price) {
            (Some(leader), Some(price)) if leader.bidder == user => {
                if max <= leader.max {
                    return Err(RejectCode::MaxNotRaised);
                }
                // The leader only raises their maximum; what they are committed to is the
                // current price, and that is what the bid history records, so a later
                // recomputation (after a void) never sees an amount below a valid bid.
                Ok(price)
            }
            _ if amount < self.minimum_bid() => Err(RejectCode::BidTooLow),
            _ => Ok(amount),
        }
    }

    pub(super) fn check_may_buy_or_bid(
        &self,
        now: Timestamp,
        user: UserId,
        suspended: bool,
    ) -> Rule<()> {
        if self.seller == user {
            return Err(RejectCode::OwnAuction);
        }
        if suspended {
            return Err(RejectCode::BidderSuspended);
        }
        if now < self.spec.start || now >= self.end {
            return Err(RejectCode::AuctionNotOpen);
        }
        Ok(())
    }

    pub(super) fn emit(&mut self, at: Timestamp, kind: AuctionEventKind, events: &mut Vec<Event>) {
        self.seq += 1;
        let event = AuctionEvent {
            auction_id: self.id,
            seq: self.seq,
            at,
            kind,
        };
        events.push(Event::Auction(event));
    }

    pub(super) fn emit_price(&mut self, at: Timestamp, events: &mut Vec<Event>) {
        let kind = match (self.price, self.leader) {
            (Some(price), Some(leader)) => AuctionEventKind::PriceChanged {
                price,
                leader: leader.bidder,
                reserve_met: self.reserve_met(),
            },
            _ => AuctionEventKind::PriceCleared,
        };
        self.emit(at, kind, events);
    }

    /// Extends the end if a price-changing bid at `now` fell in the soft-close window.
    pub(super) fn soft_close(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        let Some(policy) = self.spec.soft_close else {
            return;
        };
        if self.end.since(now) > policy.window {
            return;
        }
        let proposed = match policy.mode {
            SoftCloseMode::AddToEnd(span) => self.end.plus(span),
            SoftCloseMode::ResetRemaining(span) => now.plus(span),
        };
        let capped = proposed.min(self.spec.end.plus(policy.total_cap()));
        if capped > self.end {
            self.end = capped;
            self.emit(now, AuctionEventKind::EndExtended { end: capped }, events);
        }
    }

    /// Leader and price from the non-voided bids, folded in log order.
    pub(super) fn recompute(&self) -> (Option<Leader>, Option<Amount>) {
        let (mut leader, mut price) = (None, None);
        for bid in self.bids.iter().filter(|bid| !bid.voided) {
            fold_bid(&self.spec, &mut leader, &mut price, bid);
        }
        (leader, price)
    }

    pub(super) fn validate(&self) -> Result<(), InvariantViolation> {
        let fail = |what: &str| Err(InvariantViolation(format!("auction {:?}: {what}", self.id)));
        if self.price.is_some() != self.leader.is_some() {
            return fail("price and leader disagree");
        }
        if let (Some(price), Some(leader)) = (self.price, self.leader)
            && (price > leader.max || price < self.spec.starting_price)
        {
            return fail("price outside [starting price, leader's maximum]");
        }
        if self.end < self.spec.end || self.end > self.spec.latest_end() {
            return fail("effective end outside the soft-close bounds");
        }
        if self.seq == 0 {
            return fail("no creation event");
        }
        if self.recompute() != (self.leader, self.price) {
            return fail("leader and price differ from the folded bid history");
        }
        if self
            .bids
            .windows(2)
            .any(|pair| pair[0].log_index >= pair[1].log_index)
        {
            return fail("bids out of log order");
        }
        let mut positions: Vec<u32> = self.requests.values().copied().collect();
        positions.sort_unstable();
        if !positions.iter().copied().eq(0..self.records.len() as u32) {
            return fail("request index does not cover the records exactly once");
        }
        Ok(())
    }
}

impl Auction {
    /// Voids every standing bid that `select` picks, in bid order (one `BidVoided` each, with
    /// `reason`), then recomputes leader and price without them, announcing a change: an
    /// admin's void of one bid, a bidder's removal, and (rules 2) the removal of suspended
    /// bidders' bids at close.
    pub(super) fn void_where(
        &mut self,
        now: Timestamp,
        select: impl Fn(BidId, &Bid) -> bool,
        reason: &Reason,
        events: &mut Vec<Event>,
    ) {
        let before = (self.price, self.leader);
        let mut voided = Vec::new();
        for (index, bid) in self.bids.iter_mut().enumerate() {
            let bid_id = BidId(u32::try_from(index).expect("bids are bounded"));
            if !bid.voided && select(bid_id, bid) {
                bid.voided = true;
                voided.push(bid_id);
            }
        }
        (self.leader, self.price) = self.recompute();
        for bid_id in voided {
            let kind = AuctionEventKind::BidVoided {
                bid_id,
                reason: reason.clone(),
            };
            self.emit(now, kind, events);
        }
        if before != (self.price, self.leader) {
            self.emit_price(now, events);
        }
    }

    /// Whether `user` holds at least `n` idempotency records in this auction. The index is
    /// ordered by user first, so this walks only that user's records, at most `n` of them.
    pub(super) fn user_records_at_least(&self, user: UserId, n: usize) -> bool {
        let first = RequestKey {
            user,
            request_hash: 0,
        };
        let last = RequestKey {
            user,
            request_hash: u128::MAX,
        };
        n == 0 || self.requests.range(first..=last).nth(n - 1).is_some()
    }
}

#[derive(Clone, Copy)]
pub(super) struct BidRequest {
    pub(super) amount: Amount,
    pub(super) max: Option<Amount>,
    pub(super) log_index: u64,
}

pub(super) struct FoldChange {
    /// `(bidder who lost the lead or was immediately outbid, bidder who leads)`.
    pub(super) outbid: Option<(UserId, UserId)>,
}

/// eBay proxy bidding, one accepted bid at a time.
///
/// Only the leader's maximum matters: every other bidder's maximum is at most the current
/// price (a losing bid sets the price to at least its own maximum). So a new bid competes with
/// the leader alone:
/// - no leader: the bidder leads at their amount;
/// - the leader again: their maximum rises, the price stays;
/// - a higher maximum: the newcomer leads at the old maximum plus one increment, capped at
///   their own maximum, and at least their amount;
/// - an equal or lower maximum: the leader stays (earlier in log order wins ties) at the
///   newcomer's maximum plus one increment, capped at the leader's maximum.
///
/// Then, if the leader's maximum meets the reserve, the price rises to at least the reserve.
pub(super) fn fold_bid(
    spec: &AuctionSpec,
    leader: &mut Option<Leader>,
    price: &mut Option<Amount>,
    bid: &Bid,
) -> FoldChange {
    let mut outbid = None;
    match leader {
        None => {
            *leader = Some(Leader {
                bidder: bid.bidder,
                max: bid.max,
            });
            *price = Some(bid.amount);
        }
        Some(current) if current.bidder == bid.bidder => {
            current.max = current.max.max(bid.max);
        }
        Some(current) if bid.max > current.max => {
            let challenge = plus_increment(spec, current.max).min(bid.max);
            *price = Some(challenge.max(bid.amount));
            outbid = Some((current.bidder, bid.bidder));
            *current = Leader {
                bidder: bid.bidder,
                max: bid.max,
            };
        }
        Some(current) => {
            let challenge = plus_increment(spec, bid.max).min(current.max);
            *price = Some(challenge.max(price.unwrap_or(challenge)));
            outbid = Some((bid.bidder, current.bidder));
        }
    }
    if let (Some(reserve), Some(current), Some(visible)) = (spec.reserve_price, *leader, *price)
        && current.max >= reserve
        && visible < reserve
    {
        *price = Some(reserve);
    }
    FoldChange { outbid }
}

pub(super) fn plus_increment(spec: &AuctionSpec, price: Amount) -> Amount {
    let increment = spec.increment.increment_at(price);
    // Both terms are at most AMOUNT_MAX, whose double fits in u64 (see limits.rs).
    price
        .checked_add(increment)
        .expect("bounded amounts cannot overflow")
}

pub(super) fn require_role(actor: Actor, role: Role) -> Rule<()> {
    if actor.role >= role {
        Ok(())
    } else {
        Err(RejectCode::PermissionDenied)
    }
}

/// The amount checks that need no state; returns the bid's maximum (`amount` without one).
pub(super) fn check_bid_amounts(amount: Amount, max: Option<Amount>) -> Rule<Amount> {
    let max = max.unwrap_or(amount);
    if !amount.in_range() || !max.in_range() {
        return Err(RejectCode::AmountOutOfRange);
    }
    if max < amount {
        return Err(RejectCode::MaxBelowAmount);
    }
    Ok(max)
}

pub(super) fn to_reply(rule: Rule<Accepted>) -> Reply {
    match rule {
        Ok(accepted) => Reply::Accepted(accepted),
        Err(code) => Reply::Rejected(code),
    }
}
