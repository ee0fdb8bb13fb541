//! The sequential model of one auction that the linearizability checker replays histories
//! against.
//!
//! It is deliberately much simpler than the engine, and shares no code with it, so that a bug
//! in the engine's rules cannot hide itself by also being in the model:
//!
//! - an auction exists once `create_auction` takes effect, with the starting price and fixed
//!   increment that operation carried ([`Terms`]);
//! - a bid is accepted iff the auction exists, is open, and its amount is at least the
//!   starting price (first bid) or the current price plus the increment (later bids);
//! - the price is the highest accepted amount and the leader is its bidder: no proxy bidding,
//!   no reserve, no self-bid or suspension rules, no soft close (time is not modelled at all:
//!   the history's intervals stand in for it);
//! - `close` closes an open auction with outcome "sold to the leader at the price" or
//!   "unsold"; a close of an already closed auction observes the same outcome again;
//! - a read returns `(price, leader, closed, outcome)`.
//!
//! The workload must therefore stay inside these rules (plain bids only, a fixed increment)
//! or the checker will report a correct system as broken.
//!
//! The state only moves one way: once the auction exists, its price never falls and a closed
//! auction stays closed. The checker relies on this (see [`AuctionState::never_changes`]).

use serde::Serialize;

use crate::history::{AuctionView, Call, CloseOutcome, Output, Terms, TopBid};

/// Everything the model knows about one auction. Small and `Copy`, because the checker
/// memoizes (linearized set, state) pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct AuctionState {
    /// `None` until `create_auction` takes effect.
    pub terms: Option<Terms>,
    pub top: Option<TopBid>,
    pub closed: bool,
}

impl AuctionState {
    /// The lowest amount the next bid may have, or `None` when no bid can be accepted.
    pub fn minimum_bid(&self) -> Option<u64> {
        let terms = self.terms?;
        if self.closed {
            return None;
        }
        Some(match self.top {
            // Saturating: amounts come from the history, and a bogus huge one must not panic.
            Some(top) => top.amount.saturating_add(terms.increment),
            None => terms.starting_price,
        })
    }

    pub fn outcome(&self) -> CloseOutcome {
        match self.top {
            Some(top) => CloseOutcome::Sold(top),
            None => CloseOutcome::Unsold,
        }
    }

    pub fn view(&self) -> AuctionView {
        AuctionView {
            price: self.top.map(|top| top.amount),
            leader: self.top.map(|top| top.bidder),
            closed: self.closed,
            outcome: self.closed.then(|| self.outcome()),
        }
    }

    /// Applies `call` and returns the next state and what the operation returns.
    pub fn step(&self, call: &Call) -> (AuctionState, Output) {
        let mut next = *self;
        let output = match *call {
            Call::CreateAuction(terms) => {
                if self.terms.is_some() {
                    Output::AlreadyExists
                } else {
                    next.terms = Some(terms);
                    Output::Created
                }
            }
            Call::Bid(bid) => {
                let accepted = self
                    .minimum_bid()
                    .is_some_and(|minimum| bid.amount >= minimum);
                if accepted {
                    next.top = Some(TopBid {
                        amount: bid.amount,
                        bidder: bid.bidder,
                    });
                }
                Output::Bid { accepted }
            }
            Call::Read if self.terms.is_none() => Output::NotFound,
            Call::Read => Output::State(self.view()),
            Call::Close if self.terms.is_none() => Output::NotFound,
            Call::Close => {
                next.closed = true;
                Output::Closed {
                    outcome: self.outcome(),
                }
            }
        };
        (next, output)
    }

    /// True when `call` leaves this state unchanged now and in every state reachable from it.
    ///
    /// Once the auction exists this follows from monotonicity: an operation that has no
    /// effect now (a bid that is too low or arrives after the close, a second create, a
    /// repeated close, any read) has none later either, since the price only rises and
    /// `closed` is never unset. Before creation nothing is final: creation may come next.
    pub fn never_changes(&self, call: &Call) -> bool {
        self.terms.is_some() && self.step(call).0 == *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::BidRequest;

    const TERMS: Terms = Terms {
        starting_price: 100,
        increment: 10,
    };

    fn created() -> AuctionState {
        AuctionState::default().step(&Call::CreateAuction(TERMS)).0
    }

    fn bid(amount: u64, bidder: u64) -> Call {
        Call::Bid(BidRequest { amount, bidder })
    }

    #[test]
    fn first_bid_must_reach_the_starting_price() {
        let state = created();
        assert_eq!(state.step(&bid(99, 1)).1, Output::Bid { accepted: false });
        assert_eq!(state.step(&bid(100, 1)).1, Output::Bid { accepted: true });
    }

    #[test]
    fn later_bids_must_beat_the_price_by_the_increment() {
        let (state, _) = created().step(&bid(100, 1));
        assert_eq!(state.step(&bid(109, 2)).1, Output::Bid { accepted: false });
        let (state, output) = state.step(&bid(110, 2));
        assert_eq!(output, Output::Bid { accepted: true });
        assert_eq!(state.view().price, Some(110));
        assert_eq!(state.view().leader, Some(2));
    }

    #[test]
    fn nothing_is_accepted_before_creation_or_after_close() {
        let missing = AuctionState::default();
        assert_eq!(
            missing.step(&bid(1000, 1)).1,
            Output::Bid { accepted: false }
        );
        assert_eq!(missing.step(&Call::Read).1, Output::NotFound);
        let (closed, output) = created().step(&Call::Close);
        assert_eq!(
            output,
            Output::Closed {
                outcome: CloseOutcome::Unsold
            }
        );
        assert_eq!(
            closed.step(&bid(1000, 1)).1,
            Output::Bid { accepted: false }
        );
        assert!(closed.never_changes(&bid(1000, 1)));
        assert!(!missing.never_changes(&bid(1000, 1)));
    }

    #[test]
    fn close_sells_to_the_leader_and_repeats_the_same_outcome() {
        let (state, _) = created().step(&bid(150, 4));
        let (state, output) = state.step(&Call::Close);
        let sold = CloseOutcome::Sold(TopBid {
            amount: 150,
            bidder: 4,
        });
        assert_eq!(output, Output::Closed { outcome: sold });
        assert_eq!(
            state.step(&Call::Close),
            (state, Output::Closed { outcome: sold })
        );
        assert_eq!(state.view().outcome, Some(sold));
    }

    #[test]
    fn huge_amounts_saturate_instead_of_overflowing() {
        let (state, _) = created().step(&bid(u64::MAX, 1));
        assert_eq!(state.minimum_bid(), Some(u64::MAX));
    }
}
