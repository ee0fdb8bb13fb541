//! The generator of the property tests: a small world of three auctions, five bidders, a
//! seller and an admin; random operations on it ([`ops`]) and their translation into the log
//! entries the engine applies ([`commands`]), ending with a phase that closes every auction.

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
pub(crate) struct ListingParams {
    start_after_secs: u64,
    duration_secs: u64,
    ebay: bool,
    reserve: Option<u64>,
    buy_now_extra: Option<u64>,
    soft_close: Option<(bool, Option<u64>)>,
}

#[derive(Clone, Debug)]
pub(crate) enum Op {
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
    RemoveBidder {
        auction: u64,
        bidder: u8,
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

/// Operations for the full generator. `with_voids` adds voids and bidder removals, which the
/// differential model does not implement; `with_suspensions` adds suspensions and
/// reinstatements (under rules 2 a suspension removes bids at close, which the model leaves
/// out too).
fn op(with_voids: bool, with_suspensions: bool) -> impl Strategy<Value = Op> {
    let auction = 0..AUCTIONS;
    let suspensions = if with_suspensions { 1 } else { 0 };
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
        suspensions => any::<u8>().prop_map(|bidder| Op::Suspend { bidder }),
        suspensions => any::<u8>().prop_map(|bidder| Op::Reinstate { bidder }),
        3 => any::<usize>().prop_map(|which| Op::Retry { which }),
        1 => any::<usize>().prop_map(|which| Op::Reuse { which }),
    ];
    let voids = (auction.clone(), 0..6u32).prop_map(|(auction, bid)| Op::Void { auction, bid });
    let removals =
        (auction, any::<u8>()).prop_map(|(auction, bidder)| Op::RemoveBidder { auction, bidder });
    if with_voids {
        prop_oneof![40 => base, 2 => voids, 1 => removals].boxed()
    } else {
        base.boxed()
    }
}

/// `(seconds to advance, op)` sequences.
pub(crate) fn ops(
    with_voids: bool,
    with_suspensions: bool,
) -> impl Strategy<Value = Vec<(u64, Op)>> {
    proptest::collection::vec((0..20u64, op(with_voids, with_suspensions)), 1..120)
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
/// closes every auction after its latest possible end. With `rules2`, the first entry adopts
/// rules version 2 (as a group's leader does); otherwise the group stays at version 1.
pub(crate) fn commands(ops: &[(u64, Op)], rules2: bool) -> Vec<(Timestamp, Command)> {
    let mut now = 0;
    let mut issued: Vec<Request> = Vec::new();
    let mut out = Vec::new();
    if rules2 {
        let version = RulesVersion::V2;
        out.push((at(0), Command::AdoptRules { version }));
    }
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
            Op::RemoveBidder {
                auction,
                bidder: who,
            } => {
                let action = Action::RemoveBidder {
                    auction_id: AuctionId(*auction),
                    user: bidder(*who).user,
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
