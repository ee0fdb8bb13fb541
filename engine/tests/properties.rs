//! Properties of the engine over random command sequences (seeded proptest, 1,000 cases each).
//!
//! The generator produces a small world: three auction ids, five bidders, a seller and an
//! admin, with plain and proxy bids, buy-it-now, closes (early and on time), cancellations,
//! voids, suspensions, retries of earlier requests and reuses of their request ids. Time moves
//! forward by random steps; a final phase closes every auction after its latest possible end.

use std::collections::BTreeMap;

use martelo_engine::*;
use proptest::prelude::*;

const SELLER: Actor = Actor {
    user: UserId(1),
    role: Role::Seller,
};
const ADMIN: Actor = Actor {
    user: UserId(99),
    role: Role::Admin,
};
const AUCTIONS: u64 = 3;
const BIDDERS: u64 = 5;

fn bidder(index: u8) -> Actor {
    Actor {
        user: UserId(10 + u64::from(index) % BIDDERS),
        role: Role::Bidder,
    }
}

fn reason() -> Reason {
    Reason::try_from("property test").expect("valid reason")
}

#[derive(Clone, Debug)]
struct ListingParams {
    start_after_secs: u64,
    duration_secs: u64,
    ebay: bool,
    reserve: Option<u64>,
    buy_now_extra: Option<u64>,
    soft_close: Option<(bool, Option<u64>)>,
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        auction: u64,
        listing: ListingParams,
        by_bidder: bool,
    },
    Bid {
        auction: u64,
        bidder: u8,
        amount: u64,
        extra_max: Option<u64>,
    },
    BuyNow {
        auction: u64,
        bidder: u8,
    },
    Close {
        auction: u64,
    },
    Cancel {
        auction: u64,
        admin: bool,
    },
    Void {
        auction: u64,
        bid: u32,
    },
    Suspend {
        bidder: u8,
    },
    Reinstate {
        bidder: u8,
    },
    /// Repeat an earlier request (by position among requests issued so far).
    Retry {
        which: usize,
    },
    /// Reuse an earlier request's id with a different bid amount.
    Reuse {
        which: usize,
    },
}

fn listing() -> impl Strategy<Value = ListingParams> {
    (
        0..30u64,
        60..400u64,
        any::<bool>(),
        proptest::option::weighted(0.3, 1_500..5_000u64),
        proptest::option::weighted(0.3, 0..4_000u64),
        proptest::option::weighted(0.5, (any::<bool>(), proptest::option::of(10..90u64))),
    )
        .prop_map(
            |(start_after_secs, duration_secs, ebay, reserve, buy_now_extra, soft_close)| {
                ListingParams {
                    start_after_secs,
                    duration_secs,
                    ebay,
                    reserve,
                    buy_now_extra,
                    soft_close,
                }
            },
        )
}

/// Operations for the full generator. `with_admin_ops` adds voids, which the differential
/// model does not implement.
fn op(with_voids: bool) -> impl Strategy<Value = Op> {
    let auction = 0..AUCTIONS;
    let base = prop_oneof![
        3 => (auction.clone(), listing(), proptest::bool::weighted(0.05))
            .prop_map(|(auction, listing, by_bidder)| Op::Create { auction, listing, by_bidder }),
        20 => (auction.clone(), any::<u8>(), 10..120u64, proptest::option::weighted(0.4, 0..60u64))
            .prop_map(|(auction, bidder, amount, extra)| Op::Bid {
                auction,
                bidder,
                amount: amount * 50,
                extra_max: extra.map(|extra| extra * 50),
            }),
        1 => (auction.clone(), any::<u8>()).prop_map(|(auction, bidder)| Op::BuyNow { auction, bidder }),
        2 => auction.clone().prop_map(|auction| Op::Close { auction }),
        1 => (auction.clone(), any::<bool>()).prop_map(|(auction, admin)| Op::Cancel { auction, admin }),
        1 => any::<u8>().prop_map(|bidder| Op::Suspend { bidder }),
        1 => any::<u8>().prop_map(|bidder| Op::Reinstate { bidder }),
        3 => any::<usize>().prop_map(|which| Op::Retry { which }),
        1 => any::<usize>().prop_map(|which| Op::Reuse { which }),
    ];
    let voids = (auction, 0..6u32).prop_map(|(auction, bid)| Op::Void { auction, bid });
    if with_voids {
        prop_oneof![20 => base, 1 => voids].boxed()
    } else {
        base.boxed()
    }
}

/// `(seconds to advance, op)` sequences.
fn ops(with_voids: bool) -> impl Strategy<Value = Vec<(u64, Op)>> {
    proptest::collection::vec((0..20u64, op(with_voids)), 1..120)
}

const T0: u64 = 1_800_000_000_000_000;

fn at(seconds: u64) -> Timestamp {
    Timestamp(T0 + seconds * 1_000_000)
}

fn spec_for(params: &ListingParams, now_secs: u64) -> AuctionSpec {
    let start = now_secs + params.start_after_secs;
    let reserve = params.reserve.map(Amount);
    let floor = params.reserve.unwrap_or(1_000);
    AuctionSpec {
        title: Title::try_from("Lot").expect("valid title"),
        description: Description::try_from("").expect("valid description"),
        currency: Currency::try_from("USD").expect("valid currency"),
        starting_price: Amount(1_000),
        reserve_price: reserve,
        buy_now_price: params.buy_now_extra.map(|extra| Amount(floor + extra)),
        increment: if params.ebay {
            IncrementPolicy::Ebay
        } else {
            IncrementPolicy::Fixed(Amount(100))
        },
        start: at(start),
        end: at(start + params.duration_secs),
        soft_close: params.soft_close.map(|(reset, cap)| SoftClose {
            window: Micros::from_secs(30),
            mode: if reset {
                SoftCloseMode::ResetRemaining(Micros::from_secs(20))
            } else {
                SoftCloseMode::AddToEnd(Micros::from_secs(20))
            },
            total_extension_max: cap.map(Micros::from_secs),
        }),
    }
}

/// Turns generated ops into log entries: `(timestamp, command)`, then a final phase that
/// closes every auction after its latest possible end.
fn commands(ops: &[(u64, Op)]) -> Vec<(Timestamp, Command)> {
    let mut now = 0;
    let mut issued: Vec<Request> = Vec::new();
    let mut out = Vec::new();
    for (index, (advance, op)) in ops.iter().enumerate() {
        now += advance;
        let fresh = |actor: Actor, action: Action| Request {
            actor,
            request_id: RequestId::try_from(format!("req-{index}")).expect("valid id"),
            action,
        };
        let request = match op {
            Op::Create {
                auction,
                listing,
                by_bidder,
            } => {
                let actor = if *by_bidder { bidder(0) } else { SELLER };
                let spec = spec_for(listing, now);
                Some(fresh(
                    actor,
                    Action::CreateAuction {
                        auction_id: AuctionId(*auction),
                        spec,
                    },
                ))
            }
            Op::Bid {
                auction,
                bidder: who,
                amount,
                extra_max,
            } => {
                let action = Action::PlaceBid {
                    auction_id: AuctionId(*auction),
                    amount: Amount(*amount),
                    max: extra_max.map(|extra| Amount(amount + extra)),
                };
                Some(fresh(bidder(*who), action))
            }
            Op::BuyNow {
                auction,
                bidder: who,
            } => Some(fresh(
                bidder(*who),
                Action::BuyNow {
                    auction_id: AuctionId(*auction),
                },
            )),
            Op::Close { auction } => {
                out.push((
                    at(now),
                    Command::Close {
                        auction_id: AuctionId(*auction),
                    },
                ));
                None
            }
            Op::Cancel { auction, admin } => {
                let (actor, reason) = if *admin {
                    (ADMIN, Some(reason()))
                } else {
                    (SELLER, None)
                };
                let action = Action::CancelAuction {
                    auction_id: AuctionId(*auction),
                    reason,
                };
                Some(fresh(actor, action))
            }
            Op::Void { auction, bid } => {
                let action = Action::VoidBid {
                    auction_id: AuctionId(*auction),
                    bid_id: BidId(*bid),
                    reason: reason(),
                };
                Some(fresh(ADMIN, action))
            }
            Op::Suspend { bidder: who } => {
                let action = Action::SuspendBidder {
                    user: bidder(*who).user,
                    reason: reason(),
                };
                Some(fresh(ADMIN, action))
            }
            Op::Reinstate { bidder: who } => Some(fresh(
                ADMIN,
                Action::ReinstateBidder {
                    user: bidder(*who).user,
                },
            )),
            Op::Retry { which } if !issued.is_empty() => {
                out.push((
                    at(now),
                    Command::Request(issued[which % issued.len()].clone()),
                ));
                None
            }
            Op::Reuse { which } if !issued.is_empty() => {
                let mut reused = issued[which % issued.len()].clone();
                if let Action::PlaceBid { amount, .. } = &mut reused.action {
                    *amount = Amount(amount.0 + 50);
                }
                out.push((at(now), Command::Request(reused)));
                None
            }
            Op::Retry { .. } | Op::Reuse { .. } => None,
        };
        if let Some(request) = request {
            issued.push(request.clone());
            out.push((at(now), Command::Request(request)));
        }
    }
    // An auction starts at most 30 s after creation and lasts at most 400 s plus 20 s of
    // extension per bid; the final phase comes after that, well inside the retention period.
    let final_time = now + 30 + 400 + 20 * ops.len() as u64 + 1;
    for auction in 0..AUCTIONS {
        out.push((
            at(final_time),
            Command::Close {
                auction_id: AuctionId(auction),
            },
        ));
    }
    out
}

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

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1_000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// I3: the price never falls except through an admin's void, every accepted bid by a
    /// bidder who did not lead met the minimum bid, and it raised the price.
    #[test]
    fn price_rises_and_every_accepted_bid_meets_the_increment_rule(ops in ops(true)) {
        let commands = commands(&ops);
        let mut state = State::new();
        for (index, (timestamp, command)) in commands.iter().enumerate() {
            let auction_id = command.auction_id();
            let before = auction_id.and_then(|id| state.auction(id)).cloned();
            let ctx = ApplyCtx { log_index: index as u64 + 1, timestamp: *timestamp };
            let outcome = state.apply(ctx, command);
            let (Some(before), Some(after)) = (before, auction_id.and_then(|id| state.auction(id)))
            else { continue };
            let voided = matches!(outcome.reply, Reply::Accepted(Accepted::BidVoided { .. }));
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
    fn closed_auctions_accept_nothing_and_each_has_exactly_one_outcome(ops in ops(true)) {
        let commands = commands(&ops);
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
    /// and changes nothing.
    #[test]
    fn replaying_requests_with_the_same_ids_changes_nothing(ops in ops(true)) {
        let commands = commands(&ops);
        let (mut state, outcomes) = run(&commands);
        let before = (visible(&state), state.digest());
        let last = state.last_applied();
        for (offset, ((_, command), first)) in commands.iter().zip(&outcomes).enumerate() {
            let Command::Request(_) = command else { continue };
            let ctx = ApplyCtx { log_index: last.0 + 1 + offset as u64, timestamp: last.1 };
            let again = state.apply(ctx, command);
            prop_assert_eq!(&again.reply, &first.reply);
            prop_assert!(again.events.is_empty());
        }
        prop_assert_eq!(visible(&state), before.0);
    }

    /// A leader's early rejection (without the log) is exactly what applying the bid at that
    /// point would answer, and it is offered for nothing but too-low bids.
    #[test]
    fn early_rejections_match_what_applying_answers(ops in ops(true)) {
        let commands = commands(&ops);
        let mut state = State::new();
        for (index, (timestamp, command)) in commands.iter().enumerate() {
            let rejection = match command {
                Command::Request(request) => state.early_bid_rejection(*timestamp, request),
                Command::Close { .. } | Command::Meta(_) => None,
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
    fn snapshot_restore_and_continue_equals_continuing(ops in ops(true), split in any::<prop::sample::Index>()) {
        let commands = commands(&ops);
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

    /// The engine agrees, reply for reply, with the deliberately simple model below.
    #[test]
    fn engine_matches_the_reference_model(ops in ops(false)) {
        let commands = commands(&ops);
        let mut model = Model::default();
        let mut state = State::new();
        for (index, (timestamp, command)) in commands.iter().enumerate() {
            let ctx = ApplyCtx { log_index: index as u64 + 1, timestamp: *timestamp };
            let expected = model.apply(*timestamp, command);
            let actual = state.apply(ctx, command);
            prop_assert_eq!(&actual.reply, &expected, "command {} {:?}", index, command);
        }
        for (id, auction) in &model.auctions {
            let real = state.auction(*id).expect("same auctions");
            prop_assert_eq!(real.price().map(|price| price.0), auction.price);
            prop_assert_eq!(real.closed().map(|closed| &closed.result), auction.result.as_ref());
        }
    }
}

/// A reference model of the auction rules, written independently of the engine and as
/// plainly as possible: it keeps every bidder's maximum and derives the leader as the highest
/// maximum (earliest on ties) and the price from the closed form "second-highest maximum plus
/// one increment, capped at the leader's maximum, at least the amount the leader took the
/// lead with". It leaves out edits and voids.
#[derive(Default)]
struct Model {
    auctions: BTreeMap<AuctionId, ModelAuction>,
    suspended: Vec<UserId>,
    /// `(user, request id) -> (scope auction, action, reply)`.
    records: BTreeMap<(UserId, String), (Option<AuctionId>, Action, Reply)>,
}

struct ModelAuction {
    seller: UserId,
    spec: AuctionSpec,
    end: Timestamp,
    seq: u64,
    bids: u32,
    /// `bidder -> (max, order in which that max was set)`.
    maxima: BTreeMap<UserId, (u64, u64)>,
    lead_amount: u64,
    price: Option<u64>,
    result: Option<AuctionResult>,
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
    fn apply(&mut self, now: Timestamp, command: &Command) -> Reply {
        match command {
            Command::Close { auction_id } => self.close(now, *auction_id),
            Command::Meta(_) => unreachable!("the generator makes no meta commands"),
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
            Action::EditAuction { .. } | Action::VoidBid { .. } => unreachable!("not generated"),
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
