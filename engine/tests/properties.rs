//! Properties of the engine over random command sequences (seeded proptest, 1,000 cases each).
//!
//! The generator produces a small world: three auction ids, five bidders, a seller and an
//! admin, with plain and proxy bids, buy-it-now, closes (early and on time), cancellations,
//! voids, bidder removals, suspensions, retries of earlier requests and reuses of their request
//! ids. Time moves forward by random steps; a final phase closes every auction after its
//! latest possible end. Each property runs under both rules versions (`rules2`: the log
//! adopts version 2 first), except where it says otherwise.

#[path = "properties/generate.rs"]
mod generate;
#[path = "properties/model.rs"]
mod model;
mod support;

use std::collections::BTreeMap;

use generate::{commands, ops};
use martelo_engine::*;
use model::Model;
use proptest::prelude::*;
use support::config;

fn run(commands: &[(Timestamp, Command)]) -> (State, Vec<Outcome>) {
    let mut state = State::new();
    let outcomes = commands
        .iter()
        .enumerate()
        .map(|(index, (timestamp, command))| {
            let ctx = ApplyCtx {
                log_index: index as u64 + 1,
                timestamp: *timestamp,
            };
            state.apply(ctx, command)
        })
        .collect();
    (state, outcomes)
}

/// What the public can see of an auction, plus its bid list: everything a replay or a closed
/// auction must leave unchanged.
type Visible = (
    AuctionId,
    u64,
    Option<Amount>,
    Option<Leader>,
    Vec<Bid>,
    Option<Closed>,
    Timestamp,
);

fn visible(state: &State) -> Vec<Visible> {
    state
        .auctions()
        .map(|a| {
            (
                a.id(),
                a.seq(),
                a.price(),
                a.leader(),
                a.bids().to_vec(),
                a.closed().cloned(),
                a.end(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// I3: the price never falls except through an admin's void, every accepted bid by a
    /// bidder who did not lead met the minimum bid, and it raised the price.
    #[test]
    fn price_rises_and_every_accepted_bid_meets_the_increment_rule(ops in ops(true, true), rules2 in any::<bool>()) {
        let commands = commands(&ops, rules2);
        let mut state = State::new();
        for (index, (timestamp, command)) in commands.iter().enumerate() {
            let auction_id = command.auction_id();
            let before = auction_id.and_then(|id| state.auction(id)).cloned();
            let ctx = ApplyCtx { log_index: index as u64 + 1, timestamp: *timestamp };
            let outcome = state.apply(ctx, command);
            let (Some(before), Some(after)) = (before, auction_id.and_then(|id| state.auction(id)))
            else { continue };
            // A void, a bidder's removal, or (rules 2) a close that removes a suspended
            // bidder's bids may lower the price.
            let removed = outcome.events.iter().any(|event| matches!(
                event,
                Event::Auction(AuctionEvent { kind: AuctionEventKind::BidVoided { .. }, .. })
            ));
            let voided = removed || matches!(outcome.reply, Reply::Accepted(Accepted::BidVoided { .. }));
            if !voided {
                prop_assert!(after.price() >= before.price(), "price fell: {:?}", outcome);
            }
            if let (Reply::Accepted(Accepted::Bid { price, .. }), false) = (&outcome.reply, outcome.replayed) {
                let Command::Request(Request { actor, action: Action::PlaceBid { amount, .. }, .. }) = command
                else { unreachable!("only bids are answered with Accepted::Bid") };
                let was_leading = before.leader().is_some_and(|leader| leader.bidder == actor.user);
                if !was_leading {
                    prop_assert!(*amount >= before.minimum_bid());
                    prop_assert!(Some(*price) > before.price());
                }
            }
        }
        state.validate().map_err(|error| TestCaseError::fail(error.to_string()))?;
    }

    /// I4: a closed auction accepts nothing and never changes again; each auction closes at
    /// most once and, after the final phase, every auction has exactly one outcome. A sale by
    /// bidding goes to the highest non-voided maximum, the earliest on ties.
    #[test]
    fn closed_auctions_accept_nothing_and_each_has_exactly_one_outcome(ops in ops(true, true), rules2 in any::<bool>()) {
        let commands = commands(&ops, rules2);
        let mut state = State::new();
        let mut closes: BTreeMap<AuctionId, u32> = BTreeMap::new();
        let mut created = Vec::new();
        for (index, (timestamp, command)) in commands.iter().enumerate() {
            let auction_id = command.auction_id();
            let before = auction_id.and_then(|id| state.auction(id)).cloned();
            let ctx = ApplyCtx { log_index: index as u64 + 1, timestamp: *timestamp };
            let outcome = state.apply(ctx, command);
            for event in &outcome.events {
                if let Event::Auction(AuctionEvent { auction_id, kind, .. }) = event {
                    if matches!(kind, AuctionEventKind::Created { .. }) { created.push(*auction_id); }
                    if matches!(kind, AuctionEventKind::Closed { .. }) {
                        *closes.entry(*auction_id).or_default() += 1;
                    }
                }
            }
            // Nothing after the end changes a closed auction: the rules-2 removal of a
            // suspended bidder's bids happens in the `Close` itself.
            if let Some(before) = before.filter(|auction| auction.closed().is_some()) {
                prop_assert!(!outcome.reply.is_accepted() || outcome.replayed, "{:?}", outcome);
                prop_assert!(outcome.events.is_empty());
                let after = state.auction(before.id()).expect("closed auctions are retained");
                prop_assert_eq!(
                    (after.seq(), after.price(), after.leader(), after.closed(), after.bids()),
                    (before.seq(), before.price(), before.leader(), before.closed(), before.bids())
                );
            }
        }
        for id in created {
            prop_assert_eq!(closes.get(&id), Some(&1), "auction {:?}", id);
            let auction = state.auction(id).expect("retained");
            if let Some(Closed { result: AuctionResult::Sold { winner, price, via: SaleKind::Bidding }, .. }) =
                auction.closed()
            {
                let mut best: Option<&Bid> = None;
                for bid in auction.bids().iter().filter(|bid| !bid.voided) {
                    if best.is_none_or(|best| bid.max > best.max) { best = Some(bid); }
                }
                let best = best.expect("a sale by bidding has a bid");
                prop_assert_eq!(*winner, best.bidder);
                prop_assert!(*price <= best.max);
                if let Some(reserve) = auction.spec().reserve_price { prop_assert!(*price >= reserve); }
            }
        }
    }

    /// I2: applying every request again, with the same request ids, returns the first replies
    /// and changes nothing. Under rules 2 a rejection is not recorded, so its retry is judged
    /// again and may get another answer; no auction changes either way (they are all closed).
    #[test]
    fn replaying_requests_with_the_same_ids_changes_nothing(ops in ops(true, true), rules2 in any::<bool>()) {
        let commands = commands(&ops, rules2);
        let (mut state, outcomes) = run(&commands);
        let before = (visible(&state), state.digest());
        let last = state.last_applied();
        for (offset, ((_, command), first)) in commands.iter().zip(&outcomes).enumerate() {
            let Command::Request(_) = command else { continue };
            let ctx = ApplyCtx { log_index: last.0 + 1 + offset as u64, timestamp: last.1 };
            let again = state.apply(ctx, command);
            if rules2 && !first.reply.is_accepted() {
                // Judged again, or replayed from a later attempt with the same id that was
                // accepted: either way the visible state is checked below.
                continue;
            }
            prop_assert_eq!(&again.reply, &first.reply);
            prop_assert!(again.events.is_empty());
        }
        prop_assert_eq!(visible(&state), before.0);
    }

    /// A leader's early rejection (without the log) is exactly what applying the bid at that
    /// point would answer, and it is offered for nothing but too-low bids.
    #[test]
    fn early_rejections_match_what_applying_answers(ops in ops(true, true), rules2 in any::<bool>()) {
        let commands = commands(&ops, rules2);
        let mut state = State::new();
        for (index, (timestamp, command)) in commands.iter().enumerate() {
            let rejection = match command {
                Command::Request(request) => state.early_bid_rejection(*timestamp, request),
                Command::Close { .. } | Command::Meta(_) | Command::AdoptRules { .. } => None,
            };
            let ctx = ApplyCtx { log_index: index as u64 + 1, timestamp: *timestamp };
            let outcome = state.apply(ctx, command);
            if let Some(code) = rejection {
                prop_assert!(matches!(code, RejectCode::BidTooLow | RejectCode::MaxNotRaised));
                prop_assert_eq!(outcome.reply, Reply::Rejected(code));
                prop_assert!(!outcome.replayed);
            }
        }
    }

    /// Snapshot, restore and continue gives the same outcomes and the same state as just
    /// continuing.
    #[test]
    fn snapshot_restore_and_continue_equals_continuing(
        ops in ops(true, true), rules2 in any::<bool>(), split in any::<prop::sample::Index>()
    ) {
        let commands = commands(&ops, rules2);
        let split = split.index(commands.len());
        let (full, full_outcomes) = run(&commands);
        let (prefix, _) = run(&commands[..split]);
        let bytes = bincode::serde::encode_to_vec(&prefix, bincode::config::standard())
            .expect("state encodes");
        let (mut restored, _): (State, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("decodes");
        prop_assert_eq!(&restored, &prefix);
        for (index, (timestamp, command)) in commands.iter().enumerate().skip(split) {
            let ctx = ApplyCtx { log_index: index as u64 + 1, timestamp: *timestamp };
            prop_assert_eq!(&restored.apply(ctx, command), &full_outcomes[index]);
        }
        prop_assert_eq!(restored.digest(), full.digest());
        prop_assert_eq!(restored, full);
    }

    /// The engine agrees, reply for reply, with the deliberately simple model in
    /// `properties/model.rs`, under rules 1.
    #[test]
    fn engine_matches_the_reference_model(ops in ops(false, true)) {
        engine_matches_model(&ops, false)?;
    }

    /// The same under rules 2, without suspensions (whose removal of bids at close the model
    /// leaves out).
    #[test]
    fn engine_matches_the_reference_model_under_rules_2(ops in ops(false, false)) {
        engine_matches_model(&ops, true)?;
    }
}

fn engine_matches_model(ops: &[(u64, generate::Op)], rules2: bool) -> Result<(), TestCaseError> {
    let commands = commands(ops, rules2);
    let mut model = Model::new(rules2);
    let mut state = State::new();
    for (index, (timestamp, command)) in commands.iter().enumerate() {
        let ctx = ApplyCtx {
            log_index: index as u64 + 1,
            timestamp: *timestamp,
        };
        let expected = model.apply(*timestamp, command);
        let actual = state.apply(ctx, command);
        prop_assert_eq!(&actual.reply, &expected, "command {} {:?}", index, command);
    }
    for (id, auction) in &model.auctions {
        let real = state.auction(*id).expect("same auctions");
        prop_assert_eq!(real.price().map(|price| price.0), auction.price);
        prop_assert_eq!(
            real.closed().map(|closed| &closed.result),
            auction.result.as_ref()
        );
    }
    Ok(())
}
