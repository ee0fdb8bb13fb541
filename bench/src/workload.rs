//! What the bidders send: the auctions of a scenario, and each bid's auction and amount.
//!
//! Bids must be valid for the engine, or the run measures nothing but rejections. Each
//! auction keeps the highest price seen in any reply, and a bid goes in at or just above the
//! minimum that price implies (price plus the increment at that price). Races between
//! bidders still make a share of bids too low, which is the realistic part. The `ladder`
//! scenario is the exception: its bids climb from the last one *sent* (see
//! [`BenchAuction::climb`]), so bids in flight rarely race and most are accepted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use martelo_engine::limits::AMOUNT_MAX;
use martelo_engine::{
    Accepted, Action, Actor, Amount, AuctionId, AuctionSpec, Currency, Description,
    IncrementPolicy, Micros, RejectCode, Reply, Request, RequestId, Role, SoftClose, SoftCloseMode,
    Timestamp, Title, UserId,
};

use crate::args::Scenario;
use crate::rng::Rng;

/// User ids of the load generator: the seller is the base, bidders follow it. High enough
/// not to meet the ids of people on a shared cluster.
pub const BENCH_USER_BASE: u64 = 900_000_000_000_000;
/// Every auction's first acceptable bid, in minor units.
pub const STARTING_PRICE: Amount = Amount(100);
/// The fixed increment of the `ladder` scenario: ten-cent steps keep the price of tens of
/// thousands of climbing bids readable (the eBay table would reach $100 steps within a few
/// hundred bids).
pub const LADDER_INCREMENT: Amount = Amount(10);
/// The `ladder` scenario's soft-close window: the engine's longest, so the whole run is in
/// it.
const LADDER_SOFT_CLOSE_WINDOW: Micros = martelo_engine::limits::SOFT_CLOSE_WINDOW_MAX;
/// The reserve of every other auction in the `proxy` scenario.
pub const PROXY_RESERVE: Amount = Amount(5_000);
/// Auctions start this long before the local clock says "now", so a cluster clock a little
/// behind ours still finds them open.
const START_MARGIN: Duration = Duration::from_secs(5);
/// Auctions of the long-running scenarios end this long after the run is planned to end,
/// so slow setup or draining never closes them during the run.
const END_MARGIN: Duration = Duration::from_secs(300);
/// `closing`: auctions end between these fractions of the measurement, in index order...
const CLOSING_FIRST_END: f64 = 0.1;
const CLOSING_LAST_END: f64 = 0.6;
/// ...and soft close may push each end out by at most this fraction of the measurement (and
/// at most [`CLOSING_EXTENSION_MAX`]), so every auction closes before the measurement ends.
const CLOSING_EXTENSION_FRACTION: f64 = 0.2;
const CLOSING_EXTENSION_MAX: Duration = Duration::from_secs(2);
/// `closing`: the soft-close window and extension of each bid.
const CLOSING_SOFT_WINDOW_MAX: Duration = Duration::from_millis(500);
/// Most auction ids one run can name: ids are the run's nonce above 20 bits of index.
const AUCTION_INDEX_BITS: u32 = 20;
/// Auction ids stay below 2^53, as the gateway's do: JSON clients read them exactly, and the
/// sink's `BIGINT` columns hold them (an id above `i64::MAX` stops a group's sink: a known
/// defect, docs/SINK.md).
const AUCTION_ID_BITS: u32 = 53;
const _: () = assert!(crate::args::AUCTIONS_MAX < (1 << AUCTION_INDEX_BITS));

/// One auction of the run and what the bidders know about it.
#[derive(Debug)]
pub struct BenchAuction {
    pub id: AuctionId,
    pub increment: IncrementPolicy,
    /// Highest price seen in any reply, or a lower bound learned from a `bid_too_low`
    /// rejection; 0 before the first.
    known_price: AtomicU64,
    /// Set once a bid came back `auction_closed` or `auction_not_open`.
    closed: AtomicBool,
    /// `ladder`: the highest amount planned so far (0 before the first).
    ladder: AtomicU64,
}

impl BenchAuction {
    pub fn known_price(&self) -> Option<Amount> {
        match self.known_price.load(Ordering::Relaxed) {
            0 => None,
            price => Some(Amount(price)),
        }
    }

    pub fn seen_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The `ladder` scenario's next amount: one increment above the higher of the last
    /// amount planned by any worker and the known price (the starting price first). The
    /// amounts of bids planned one after another strictly rise, so bids in flight arriving
    /// in about the order they were sent are each at or above the minimum the previous one
    /// left; one that arrives behind a later one is too low, and its rejection only raises
    /// the known price. Saturates at the engine's largest amount.
    pub fn climb(&self, starting_price: Amount) -> Amount {
        let known = self.known_price.load(Ordering::Relaxed);
        let mut planned = starting_price;
        // The closure always returns Some, so this never fails; `planned` is what it stored.
        let _ = self
            .ladder
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                planned = match last.max(known) {
                    0 => starting_price,
                    floor => step_up(&self.increment, Amount(floor), 1),
                };
                Some(planned.0)
            });
        planned
    }
}

/// A bid about to be sent.
#[derive(Clone, Debug)]
pub struct PlannedBid {
    /// Index into [`Workload::auctions`].
    pub auction: usize,
    pub amount: Amount,
    pub request: Request,
}

/// The auctions, bidders and id sequence of one run. Shared by every worker.
#[derive(Debug)]
pub struct Workload {
    scenario: Scenario,
    bidders: usize,
    auctions: Vec<BenchAuction>,
    nonce: u64,
    next_request: AtomicU64,
}

impl Workload {
    /// `nonce` makes auction and request ids unique to this run, so runs against the same
    /// cluster never collide (a reused request id would replay an old outcome).
    pub fn new(scenario: Scenario, auctions: usize, bidders: usize, nonce: u64) -> Workload {
        let nonce = nonce & ((1 << (AUCTION_ID_BITS - AUCTION_INDEX_BITS)) - 1);
        let auctions = (0..auctions)
            .map(|index| BenchAuction {
                id: AuctionId((nonce << AUCTION_INDEX_BITS) | (index as u64 + 1)),
                increment: increment_policy(scenario),
                known_price: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                ladder: AtomicU64::new(0),
            })
            .collect();
        Workload {
            scenario,
            bidders: bidders.max(1),
            auctions,
            nonce,
            next_request: AtomicU64::new(0),
        }
    }

    pub fn auctions(&self) -> &[BenchAuction] {
        &self.auctions
    }

    pub fn seller() -> UserId {
        UserId(BENCH_USER_BASE)
    }

    pub fn bidder(index: usize) -> UserId {
        UserId(BENCH_USER_BASE + 1 + index as u64)
    }

    /// A fresh request id: never used before in this run, nor (through the nonce) in another.
    pub fn request_id(&self) -> RequestId {
        let sequence = self.next_request.fetch_add(1, Ordering::Relaxed);
        let text = format!("bench-{:x}-{sequence:x}", self.nonce);
        RequestId::try_from(text).expect("at most 6 + 11 + 1 + 16 visible ASCII characters")
    }

    /// The seller's create request of every auction, with windows relative to `now` (the
    /// local wall clock) and the planned warm-up and measurement.
    pub fn create_requests(
        &self,
        now: Timestamp,
        warmup: Duration,
        measure: Duration,
    ) -> Vec<Request> {
        let count = self.auctions.len();
        self.auctions
            .iter()
            .enumerate()
            .map(|(index, auction)| Request {
                actor: Actor {
                    user: Workload::seller(),
                    role: Role::Seller,
                },
                request_id: self.request_id(),
                action: Action::CreateAuction {
                    auction_id: auction.id,
                    spec: auction_spec(self.scenario, index, count, now, warmup, measure),
                },
            })
            .collect()
    }

    /// The next bid of a worker: a bidder, an auction and an amount, drawn from `rng`.
    pub fn next_bid(&self, rng: &mut Rng) -> PlannedBid {
        let auction = self.pick_auction(rng);
        let bidder = rng.below(self.bidders as u64) as usize;
        let target = &self.auctions[auction];
        let (amount, max) = if self.scenario == Scenario::Ladder {
            (target.climb(STARTING_PRICE), None)
        } else {
            let proxy = self.scenario == Scenario::Proxy && rng.percent(40);
            choose_amount(
                &target.increment,
                STARTING_PRICE,
                target.known_price(),
                proxy,
                rng,
            )
        };
        PlannedBid {
            auction,
            amount,
            request: Request {
                actor: Actor {
                    user: Workload::bidder(bidder),
                    role: Role::Bidder,
                },
                request_id: self.request_id(),
                action: Action::PlaceBid {
                    auction_id: target.id,
                    amount,
                    max,
                },
            },
        }
    }

    fn pick_auction(&self, rng: &mut Rng) -> usize {
        let count = self.auctions.len() as u64;
        let mut pick = rng.below(count) as usize;
        // In the closing scenario most bidders move on from auctions they saw closed, but
        // some keep bidding on them: those rejections are part of the workload.
        if self.scenario == Scenario::Closing && rng.percent(80) {
            for _ in 0..3 {
                if !self.auctions[pick].seen_closed() {
                    break;
                }
                pick = rng.below(count) as usize;
            }
        }
        pick
    }

    /// Learns from the engine's reply to `bid`.
    pub fn observe(&self, bid: &PlannedBid, reply: &Reply) {
        let Some(auction) = self.auctions.get(bid.auction) else {
            return;
        };
        match reply {
            Reply::Accepted(Accepted::Bid { price, .. }) => {
                auction.known_price.fetch_max(price.0, Ordering::Relaxed);
            }
            // The price has moved past what this bidder knew. Its amount is within one
            // increment of the true price, a good enough floor for the next bid.
            Reply::Rejected(RejectCode::BidTooLow) => {
                auction
                    .known_price
                    .fetch_max(bid.amount.0, Ordering::Relaxed);
            }
            Reply::Rejected(RejectCode::AuctionClosed | RejectCode::AuctionNotOpen) => {
                auction.closed.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

fn increment_policy(scenario: Scenario) -> IncrementPolicy {
    match scenario {
        Scenario::Spread => IncrementPolicy::Fixed(Amount(25)),
        Scenario::Ladder => IncrementPolicy::Fixed(LADDER_INCREMENT),
        Scenario::Hot | Scenario::Proxy | Scenario::Closing => IncrementPolicy::Ebay,
    }
}

fn micros(duration: Duration) -> Micros {
    Micros(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}

/// The listing of auction `index` of `count`. Every auction is open from a little before
/// `now`. In `closing`, the auctions end in index order between 10% and 60% of the
/// measurement, and soft close extends each by at most 20% of it, so all of them close
/// during the run; in the other scenarios auctions end well after the run.
pub fn auction_spec(
    scenario: Scenario,
    index: usize,
    count: usize,
    now: Timestamp,
    warmup: Duration,
    measure: Duration,
) -> AuctionSpec {
    let start = Timestamp(now.0.saturating_sub(micros(START_MARGIN).0));
    let (end, soft_close) = match scenario {
        Scenario::Closing => {
            // Windows count from `now`, when the auctions are created, not from the start of
            // the measurement: setup only makes them end earlier, never after the run.
            let step = if count > 1 {
                (CLOSING_LAST_END - CLOSING_FIRST_END) * index as f64 / (count - 1) as f64
            } else {
                0.0
            };
            let end = now.plus(micros(warmup + measure.mul_f64(CLOSING_FIRST_END + step)));
            let cap = measure
                .mul_f64(CLOSING_EXTENSION_FRACTION)
                .min(CLOSING_EXTENSION_MAX)
                .max(Duration::from_millis(1));
            let window = micros(cap.min(CLOSING_SOFT_WINDOW_MAX));
            let soft_close = SoftClose {
                window,
                mode: SoftCloseMode::AddToEnd(window),
                total_extension_max: Some(micros(cap)),
            };
            (end, Some(soft_close))
        }
        Scenario::Ladder => {
            // The last hour of a hot auction under soft close: every price-changing bid of
            // a run shorter than ~55 minutes falls in the window and pushes the end out by
            // a second, one more event per bid (`auction_extended`).
            let soft_close = SoftClose {
                window: LADDER_SOFT_CLOSE_WINDOW,
                mode: SoftCloseMode::AddToEnd(Micros::SECOND),
                total_extension_max: None,
            };
            (
                now.plus(micros(warmup + measure + END_MARGIN)),
                Some(soft_close),
            )
        }
        Scenario::Hot | Scenario::Spread | Scenario::Proxy => {
            (now.plus(micros(warmup + measure + END_MARGIN)), None)
        }
    };
    let reserve_price = (scenario == Scenario::Proxy && index % 2 == 1).then_some(PROXY_RESERVE);
    AuctionSpec {
        title: Title::try_from(format!("bench {} auction {index}", scenario.as_str()))
            .expect("a short ASCII title"),
        description: Description::try_from("").expect("empty descriptions are allowed"),
        currency: Currency::try_from("USD").expect("a valid currency"),
        starting_price: STARTING_PRICE,
        reserve_price,
        buy_now_price: None,
        increment: increment_policy(scenario),
        start,
        end,
        soft_close,
    }
}

/// `amount` raised by `steps` increments, each at the price reached so far; saturates at the
/// engine's largest amount.
pub fn step_up(policy: &IncrementPolicy, amount: Amount, steps: u64) -> Amount {
    let mut amount = amount;
    for _ in 0..steps {
        let next = amount.0.saturating_add(policy.increment_at(amount).0);
        amount = Amount(next.min(AMOUNT_MAX));
    }
    amount
}

/// A bid's amount (and proxy maximum) given the highest price the bidder knows of.
///
/// Three bids in four go in at exactly the minimum (price plus one increment, or the
/// starting price before the first bid); the rest one to three increments above it, as
/// people jump the price. A proxy bid's maximum lies 1 to 20 increments above its amount.
pub fn choose_amount(
    policy: &IncrementPolicy,
    starting_price: Amount,
    known_price: Option<Amount>,
    proxy: bool,
    rng: &mut Rng,
) -> (Amount, Option<Amount>) {
    let minimum = match known_price {
        None => starting_price,
        Some(price) => step_up(policy, price, 1),
    };
    let amount = if rng.percent(75) {
        minimum
    } else {
        step_up(policy, minimum, rng.between(1, 3))
    };
    let max = proxy.then(|| step_up(policy, amount, rng.between(1, 20)));
    (amount, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use martelo_engine::{ApplyCtx, BidId, Command, State};

    const NOW: Timestamp = Timestamp(1_700_000_000_000_000);

    fn workload(scenario: Scenario, auctions: usize) -> Workload {
        Workload::new(scenario, auctions, 8, 0xABCD)
    }

    #[test]
    fn bids_go_in_at_or_just_above_the_minimum_the_known_price_implies() {
        let policy = IncrementPolicy::Ebay;
        let mut rng = Rng::new(3);
        let (mut at_minimum, mut above) = (0, 0);
        for _ in 0..1_000 {
            let (amount, max) = choose_amount(
                &policy,
                STARTING_PRICE,
                Some(Amount(1_000)),
                false,
                &mut rng,
            );
            assert_eq!(max, None);
            // The eBay increment at $10.00 is 50 cents.
            assert!(
                amount >= Amount(1_050) && amount <= Amount(1_200),
                "{amount:?}"
            );
            if amount == Amount(1_050) {
                at_minimum += 1;
            } else {
                above += 1;
            }
        }
        assert!(
            (650..850).contains(&at_minimum),
            "{at_minimum} at the minimum"
        );
        assert!(above > 150);
        let (first, _) = choose_amount(&policy, STARTING_PRICE, None, false, &mut Rng::new(1));
        assert!(first >= STARTING_PRICE);
    }

    #[test]
    fn proxy_maxima_lie_above_the_amount() {
        let mut rng = Rng::new(5);
        for _ in 0..200 {
            let (amount, max) = choose_amount(
                &IncrementPolicy::Ebay,
                STARTING_PRICE,
                Some(Amount(20_000)),
                true,
                &mut rng,
            );
            let max = max.expect("a proxy bid has a maximum");
            assert!(max > amount && max <= step_up(&IncrementPolicy::Ebay, amount, 20));
        }
    }

    #[test]
    fn stepping_up_uses_the_increment_of_each_band_and_saturates() {
        // 95 -> 100 (5 cents below $1), then 25-cent steps from $1.
        assert_eq!(step_up(&IncrementPolicy::Ebay, Amount(95), 3), Amount(150));
        assert_eq!(
            step_up(&IncrementPolicy::Ebay, Amount(AMOUNT_MAX - 1), 2),
            Amount(AMOUNT_MAX)
        );
    }

    #[test]
    fn every_scenario_creates_listings_the_engine_accepts() {
        for scenario in [
            Scenario::Hot,
            Scenario::Spread,
            Scenario::Proxy,
            Scenario::Closing,
            Scenario::Ladder,
        ] {
            let workload = workload(scenario, 5);
            let requests =
                workload.create_requests(NOW, Duration::from_secs(1), Duration::from_secs(5));
            let mut state = State::new();
            for (index, request) in requests.into_iter().enumerate() {
                let ctx = ApplyCtx {
                    log_index: index as u64 + 1,
                    timestamp: NOW.plus(Micros::SECOND),
                };
                let outcome = state.apply(ctx, &Command::Request(request));
                assert!(
                    outcome.reply.is_accepted(),
                    "{scenario:?}: {:?}",
                    outcome.reply
                );
            }
        }
    }

    #[test]
    fn closing_auctions_end_in_turn_inside_the_measurement() {
        let warmup = Duration::from_secs(1);
        let measure = Duration::from_secs(10);
        let specs: Vec<AuctionSpec> = (0..4)
            .map(|index| auction_spec(Scenario::Closing, index, 4, NOW, warmup, measure))
            .collect();
        // Setup takes time after `now`, so the measurement starts at `now + warmup` at the
        // earliest and ends at `now + warmup + measure` at the earliest.
        let measure_start = NOW.plus(micros(warmup));
        let measure_end = measure_start.plus(micros(measure));
        assert!(specs.windows(2).all(|pair| pair[0].end < pair[1].end));
        for spec in &specs {
            assert!(spec.end > measure_start, "{spec:?}");
            assert!(
                spec.latest_end() < measure_end,
                "soft close cannot outlast the run"
            );
            assert_eq!(spec.check(NOW), Ok(()));
        }
        assert_eq!(specs[0].end, measure_start.plus(Micros::SECOND));
        assert_eq!(specs[3].end, measure_start.plus(Micros::from_secs(6)));
        let one = auction_spec(
            Scenario::Closing,
            0,
            1,
            NOW,
            warmup,
            Duration::from_millis(1),
        );
        assert_eq!(
            one.check(NOW),
            Ok(()),
            "a tiny measurement still gives a valid listing"
        );
        let hot = auction_spec(Scenario::Hot, 0, 1, NOW, warmup, measure);
        assert!(hot.end > measure_end.plus(Micros::from_secs(60)));
    }

    #[test]
    fn ids_are_unique_and_valid_and_runs_differ_by_nonce() {
        let one = workload(Scenario::Spread, 3);
        let other = Workload::new(Scenario::Spread, 3, 8, 0xABCE);
        let ids: std::collections::BTreeSet<String> =
            (0..1_000).map(|_| one.request_id().to_string()).collect();
        assert_eq!(ids.len(), 1_000);
        assert_ne!(one.request_id(), other.request_id());
        assert_ne!(one.auctions()[0].id, other.auctions()[0].id);
        assert!(one.auctions().iter().all(|auction| auction.id.0 != 0));
        // Whatever the nonce, every id stays below 2^53.
        let widest = Workload::new(Scenario::Spread, 3, 8, u64::MAX);
        assert!(
            widest
                .auctions()
                .iter()
                .all(|auction| auction.id.0 < 1 << AUCTION_ID_BITS)
        );
    }

    #[test]
    fn replies_teach_the_bidders_the_price_and_which_auctions_closed() {
        let workload = workload(Scenario::Closing, 2);
        let mut rng = Rng::new(9);
        let bid = workload.next_bid(&mut rng);
        let auction = &workload.auctions()[bid.auction];
        let accepted = Reply::Accepted(Accepted::Bid {
            auction_id: auction.id,
            bid_id: BidId(0),
            seq: 2,
            price: Amount(700),
            leading: true,
            reserve_met: true,
            end: NOW,
        });
        workload.observe(&bid, &accepted);
        assert_eq!(auction.known_price(), Some(Amount(700)));
        let next = workload.next_bid(&mut Rng::new(1));
        if next.auction == bid.auction {
            assert!(next.amount >= Amount(750));
        }
        workload.observe(&bid, &Reply::Rejected(RejectCode::AuctionNotOpen));
        assert!(auction.seen_closed());
    }

    /// An engine that has created `workload`'s auctions; `apply` runs requests in log order,
    /// a microsecond apart.
    fn engine_with(workload: &Workload) -> impl FnMut(Request) -> martelo_engine::Outcome {
        let mut state = State::new();
        let mut log_index = 0;
        let mut apply = move |request: Request| {
            log_index += 1;
            let ctx = ApplyCtx {
                log_index,
                timestamp: NOW.plus(Micros(log_index)),
            };
            state.apply(ctx, &Command::Request(request))
        };
        for request in workload.create_requests(NOW, Duration::ZERO, Duration::from_secs(5)) {
            assert!(apply(request).reply.is_accepted());
        }
        apply
    }

    #[test]
    fn a_hot_auction_driven_through_the_engine_accepts_a_realistic_share() {
        // Sequentially every bid would be accepted; with replies arriving late (here: four
        // bids planned before any reply is seen) bidders race and some bids are too low.
        let workload = workload(Scenario::Hot, 1);
        let mut apply = engine_with(&workload);
        let mut rng = Rng::new(11);
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..250 {
            let wave: Vec<PlannedBid> = (0..4).map(|_| workload.next_bid(&mut rng)).collect();
            for bid in wave {
                let reply = apply(bid.request.clone()).reply;
                match &reply {
                    Reply::Accepted(_) => accepted += 1,
                    Reply::Rejected(code) => {
                        assert!(
                            matches!(code, RejectCode::BidTooLow | RejectCode::MaxNotRaised),
                            "{code}"
                        );
                        rejected += 1;
                    }
                }
                workload.observe(&bid, &reply);
            }
        }
        assert!(
            accepted >= 250,
            "at least one bid per wave wins: {accepted}"
        );
        assert!(rejected >= 100, "racing bidders lose some: {rejected}");
    }

    #[test]
    fn a_ladder_auction_accepts_almost_every_bid_with_several_events_each() {
        // The same late replies as above (four bids planned before any reply), but the
        // amounts climb from the last bid planned: in order, every bid is accepted, and
        // makes a `bid_placed`, a `price_changed`, an `auction_extended` (soft close) and,
        // when the lead changes hands, an `outbid`.
        let workload = workload(Scenario::Ladder, 1);
        let mut apply = engine_with(&workload);
        let mut rng = Rng::new(11);
        let (mut accepted, mut events) = (0, 0);
        let mut previous = Amount(0);
        for _ in 0..250 {
            let wave: Vec<PlannedBid> = (0..4).map(|_| workload.next_bid(&mut rng)).collect();
            for bid in wave {
                assert!(bid.amount > previous, "amounts climb");
                previous = bid.amount;
                let outcome = apply(bid.request.clone());
                if outcome.reply.is_accepted() {
                    accepted += 1;
                }
                events += outcome.events.len();
                workload.observe(&bid, &outcome.reply);
            }
        }
        assert_eq!(accepted, 1_000, "bids in send order are all accepted");
        assert!(events >= 3_000, "{events} events for 1,000 bids");
        // A bid overtaken by a later one is too low; what it teaches keeps the ladder above.
        let late = workload.next_bid(&mut rng);
        let early = workload.next_bid(&mut rng);
        assert!(apply(early.request.clone()).reply.is_accepted());
        let refused = apply(late.request.clone()).reply;
        // (`max_not_raised` when the overtaken bid is the new leader's own.)
        assert!(
            matches!(
                refused,
                Reply::Rejected(RejectCode::BidTooLow | RejectCode::MaxNotRaised)
            ),
            "{refused:?}"
        );
        workload.observe(&late, &refused);
        assert!(workload.next_bid(&mut rng).amount > early.amount);
    }
}
