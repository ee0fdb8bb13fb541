//! One test per rule and per rejection code. Names state the rule.

use crate::*;

const SELLER: Actor = Actor {
    user: UserId(1),
    role: Role::Seller,
};
const ALICE: Actor = Actor {
    user: UserId(10),
    role: Role::Bidder,
};
const BOB: Actor = Actor {
    user: UserId(11),
    role: Role::Bidder,
};
const CAROL: Actor = Actor {
    user: UserId(12),
    role: Role::Bidder,
};
const ADMIN: Actor = Actor {
    user: UserId(99),
    role: Role::Admin,
};
const A1: AuctionId = AuctionId(1);

/// Seconds after the harness's epoch.
fn at(seconds: u64) -> Timestamp {
    Timestamp(1_000_000_000_000 + seconds * 1_000_000)
}

fn spec() -> AuctionSpec {
    AuctionSpec {
        title: Title::try_from("Lot").unwrap(),
        description: Description::try_from("").unwrap(),
        currency: Currency::try_from("USD").unwrap(),
        starting_price: Amount(1_000),
        reserve_price: None,
        buy_now_price: None,
        increment: IncrementPolicy::Fixed(Amount(100)),
        start: at(0),
        end: at(1_000),
        soft_close: None,
    }
}

fn reason(text: &str) -> Reason {
    Reason::try_from(text).unwrap()
}

/// Applies commands with increasing log indices at times the test chooses.
struct Harness {
    state: State,
    log_index: u64,
    next_request: u64,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            state: State::new(),
            log_index: 0,
            next_request: 0,
        }
    }

    /// A harness holding auction `A1` created from `spec` at time 0.
    fn with(spec: AuctionSpec) -> Harness {
        let mut harness = Harness::new();
        let reply = harness.act(
            0,
            SELLER,
            Action::CreateAuction {
                auction_id: A1,
                spec,
            },
        );
        assert!(reply.is_accepted(), "{reply:?}");
        harness
    }

    fn apply(&mut self, seconds: u64, command: Command) -> Outcome {
        self.log_index += 1;
        let ctx = ApplyCtx {
            log_index: self.log_index,
            timestamp: at(seconds),
        };
        let outcome = self.state.apply(ctx, &command);
        self.state
            .validate()
            .expect("state stays valid after every command");
        outcome
    }

    fn request(&mut self, seconds: u64, actor: Actor, id: &str, action: Action) -> Outcome {
        let request_id = RequestId::try_from(id).unwrap();
        self.apply(
            seconds,
            Command::Request(Request {
                actor,
                request_id,
                action,
            }),
        )
    }

    /// A request with a fresh request id; returns only the reply.
    fn act(&mut self, seconds: u64, actor: Actor, action: Action) -> Reply {
        self.next_request += 1;
        let id = format!("r{}", self.next_request);
        self.request(seconds, actor, &id, action).reply
    }

    fn bid(&mut self, seconds: u64, actor: Actor, amount: u64, max: Option<u64>) -> Reply {
        let action = Action::PlaceBid {
            auction_id: A1,
            amount: Amount(amount),
            max: max.map(Amount),
        };
        self.act(seconds, actor, action)
    }

    fn close(&mut self, seconds: u64) -> Reply {
        self.apply(seconds, Command::Close { auction_id: A1 }).reply
    }

    fn auction(&self) -> &Auction {
        self.state.auction(A1).expect("auction exists")
    }

    fn price(&self) -> Option<u64> {
        self.auction().price().map(|price| price.0)
    }

    fn leader(&self) -> Option<UserId> {
        self.auction().leader().map(|leader| leader.bidder)
    }

    fn result(&self) -> AuctionResult {
        self.auction()
            .closed()
            .expect("auction closed")
            .result
            .clone()
    }
}

fn rejected(reply: &Reply) -> RejectCode {
    reply
        .rejection()
        .unwrap_or_else(|| panic!("expected a rejection, got {reply:?}"))
}

fn sold(winner: Actor, price: u64) -> AuctionResult {
    AuctionResult::Sold {
        winner: winner.user,
        price: Amount(price),
        via: SaleKind::Bidding,
    }
}

// ---- creating and editing -------------------------------------------------------------------

#[test]
fn seller_creates_an_auction_and_its_creation_event_has_seq_one() {
    let mut harness = Harness::new();
    let outcome = harness.request(
        0,
        SELLER,
        "c",
        Action::CreateAuction {
            auction_id: A1,
            spec: spec(),
        },
    );
    assert_eq!(
        outcome.reply,
        Reply::Accepted(Accepted::AuctionCreated {
            auction_id: A1,
            seq: 1
        })
    );
    let Event::Auction(event) = &outcome.events[0] else {
        panic!("auction event expected")
    };
    assert_eq!((event.seq, event.at), (1, at(0)));
    assert!(matches!(
        event.kind,
        AuctionEventKind::Created {
            seller: UserId(1),
            ..
        }
    ));
}

#[test]
fn bidders_cannot_create_auctions() {
    let mut harness = Harness::new();
    let reply = harness.act(
        0,
        ALICE,
        Action::CreateAuction {
            auction_id: A1,
            spec: spec(),
        },
    );
    assert_eq!(rejected(&reply), RejectCode::PermissionDenied);
}

#[test]
fn creating_an_existing_auction_id_is_rejected() {
    let mut harness = Harness::with(spec());
    let reply = harness.act(
        1,
        ADMIN,
        Action::CreateAuction {
            auction_id: A1,
            spec: spec(),
        },
    );
    assert_eq!(rejected(&reply), RejectCode::AuctionExists);
}

#[test]
fn listing_rules_reject_bad_prices_windows_and_policies() {
    let cases: Vec<(AuctionSpec, RejectCode)> = vec![
        (
            AuctionSpec {
                starting_price: Amount(0),
                ..spec()
            },
            RejectCode::AmountOutOfRange,
        ),
        (
            AuctionSpec {
                starting_price: Amount(limits::AMOUNT_MAX + 1),
                ..spec()
            },
            RejectCode::AmountOutOfRange,
        ),
        (
            AuctionSpec {
                reserve_price: Some(Amount(999)),
                ..spec()
            },
            RejectCode::InvalidPrices,
        ),
        (
            AuctionSpec {
                reserve_price: Some(Amount(5_000)),
                buy_now_price: Some(Amount(4_000)),
                ..spec()
            },
            RejectCode::InvalidPrices,
        ),
        (
            AuctionSpec {
                increment: IncrementPolicy::Fixed(Amount(0)),
                ..spec()
            },
            RejectCode::InvalidIncrementPolicy,
        ),
        (
            AuctionSpec {
                end: at(0),
                ..spec()
            },
            RejectCode::InvalidWindow,
        ),
        (
            AuctionSpec {
                start: at(10),
                end: at(5),
                ..spec()
            },
            RejectCode::InvalidWindow,
        ),
        (
            AuctionSpec {
                end: at(0).plus(limits::AUCTION_DURATION_MAX).plus(Micros(1)),
                ..spec()
            },
            RejectCode::InvalidWindow,
        ),
        (
            AuctionSpec {
                soft_close: Some(SoftClose {
                    window: Micros(0),
                    mode: SoftCloseMode::AddToEnd(Micros::SECOND),
                    total_extension_max: None,
                }),
                ..spec()
            },
            RejectCode::InvalidSoftClose,
        ),
    ];
    for (bad, code) in cases {
        let mut harness = Harness::new();
        let reply = harness.act(
            0,
            SELLER,
            Action::CreateAuction {
                auction_id: A1,
                spec: bad,
            },
        );
        assert_eq!(rejected(&reply), code);
        assert!(harness.state.auction(A1).is_none());
    }
}

#[test]
fn an_auction_whose_end_is_already_past_is_rejected() {
    let mut harness = Harness::new();
    let reply = harness.act(
        2_000,
        SELLER,
        Action::CreateAuction {
            auction_id: A1,
            spec: spec(),
        },
    );
    assert_eq!(rejected(&reply), RejectCode::InvalidWindow);
}

#[test]
fn seller_edits_before_the_first_bid_and_the_new_end_schedules_the_close() {
    let mut harness = Harness::with(spec());
    let edited = AuctionSpec {
        end: at(500),
        starting_price: Amount(2_000),
        ..spec()
    };
    let reply = harness.act(
        1,
        SELLER,
        Action::EditAuction {
            auction_id: A1,
            spec: edited,
        },
    );
    assert!(reply.is_accepted());
    assert_eq!(harness.auction().end(), at(500));
    assert_eq!(harness.state.next_end(), Some((at(500), A1)));
    assert_eq!(
        rejected(&harness.bid(2, ALICE, 1_500, None)),
        RejectCode::BidTooLow
    );
}

#[test]
fn only_the_seller_edits_and_only_before_the_first_bid() {
    let mut harness = Harness::with(spec());
    let edit = || Action::EditAuction {
        auction_id: A1,
        spec: spec(),
    };
    assert_eq!(
        rejected(&harness.act(1, ALICE, edit())),
        RejectCode::NotSeller
    );
    assert!(harness.bid(2, ALICE, 1_000, None).is_accepted());
    assert_eq!(
        rejected(&harness.act(3, SELLER, edit())),
        RejectCode::HasBids
    );
}

#[test]
fn editing_an_unknown_auction_is_rejected() {
    let mut harness = Harness::new();
    let reply = harness.act(
        0,
        SELLER,
        Action::EditAuction {
            auction_id: A1,
            spec: spec(),
        },
    );
    assert_eq!(rejected(&reply), RejectCode::AuctionNotFound);
}

// ---- cancelling -----------------------------------------------------------------------------

#[test]
fn seller_cancels_before_the_first_bid_and_the_outcome_is_cancelled() {
    let mut harness = Harness::with(spec());
    let reply = harness.act(
        1,
        SELLER,
        Action::CancelAuction {
            auction_id: A1,
            reason: None,
        },
    );
    assert!(reply.is_accepted());
    assert_eq!(
        harness.result(),
        AuctionResult::Cancelled {
            by: SELLER.user,
            reason: None
        }
    );
    assert_eq!(
        rejected(&harness.bid(2, ALICE, 1_000, None)),
        RejectCode::AuctionClosed
    );
    assert_eq!(harness.state.next_end(), None);
}

#[test]
fn seller_cannot_cancel_after_a_bid_and_others_cannot_cancel_at_all() {
    let mut harness = Harness::with(spec());
    let cancel = || Action::CancelAuction {
        auction_id: A1,
        reason: None,
    };
    assert_eq!(
        rejected(&harness.act(1, BOB, cancel())),
        RejectCode::NotSeller
    );
    assert!(harness.bid(2, ALICE, 1_000, None).is_accepted());
    assert_eq!(
        rejected(&harness.act(3, SELLER, cancel())),
        RejectCode::HasBids
    );
}

#[test]
fn admin_cancels_at_any_time_but_must_give_a_reason() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, None).is_accepted());
    let no_reason = Action::CancelAuction {
        auction_id: A1,
        reason: None,
    };
    assert_eq!(
        rejected(&harness.act(2, ADMIN, no_reason)),
        RejectCode::ReasonRequired
    );
    let with_reason = Action::CancelAuction {
        auction_id: A1,
        reason: Some(reason("fraud")),
    };
    assert!(harness.act(3, ADMIN, with_reason).is_accepted());
    let expected = AuctionResult::Cancelled {
        by: ADMIN.user,
        reason: Some(reason("fraud")),
    };
    assert_eq!(harness.result(), expected);
}

// ---- the bidding window -----------------------------------------------------------------------

#[test]
fn bids_are_accepted_only_from_start_until_just_before_the_end() {
    let mut harness = Harness::with(AuctionSpec {
        start: at(100),
        end: at(200),
        ..spec()
    });
    assert_eq!(
        rejected(&harness.bid(99, ALICE, 1_000, None)),
        RejectCode::AuctionNotOpen
    );
    assert!(harness.bid(100, ALICE, 1_000, None).is_accepted());
    assert_eq!(
        rejected(&harness.bid(200, BOB, 5_000, None)),
        RejectCode::AuctionNotOpen
    );
}

#[test]
fn bid_on_an_unknown_auction_is_rejected() {
    let mut harness = Harness::new();
    assert_eq!(
        rejected(&harness.bid(0, ALICE, 1_000, None)),
        RejectCode::AuctionNotFound
    );
}

#[test]
fn the_engine_never_lets_time_run_backwards() {
    let mut harness = Harness::with(AuctionSpec {
        end: at(100),
        ..spec()
    });
    assert!(harness.bid(150, ALICE, 1_000, None).rejection() == Some(RejectCode::AuctionNotOpen));
    // An entry stamped earlier than one already applied is treated as happening at the later
    // time, so it cannot sneak a bid back into the window.
    assert_eq!(
        rejected(&harness.bid(50, BOB, 1_000, None)),
        RejectCode::AuctionNotOpen
    );
    assert_eq!(harness.state.last_applied().1, at(150));
}

#[test]
#[should_panic(expected = "log index")]
fn applying_a_log_index_twice_panics() {
    let mut state = State::new();
    let ctx = ApplyCtx {
        log_index: 5,
        timestamp: at(0),
    };
    state.apply(ctx, &Command::Close { auction_id: A1 });
    state.apply(ctx, &Command::Close { auction_id: A1 });
}

// ---- increments and amounts -------------------------------------------------------------------

#[test]
fn first_bid_must_reach_the_starting_price() {
    let mut harness = Harness::with(spec());
    assert_eq!(
        rejected(&harness.bid(1, ALICE, 999, None)),
        RejectCode::BidTooLow
    );
    assert!(harness.bid(2, ALICE, 1_000, None).is_accepted());
    assert_eq!(harness.price(), Some(1_000));
}

#[test]
fn later_bids_must_reach_price_plus_increment() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, None).is_accepted());
    assert_eq!(
        rejected(&harness.bid(2, BOB, 1_099, None)),
        RejectCode::BidTooLow
    );
    assert!(harness.bid(3, BOB, 1_100, None).is_accepted());
    assert_eq!(
        (harness.price(), harness.leader()),
        (Some(1_100), Some(BOB.user))
    );
}

#[test]
fn band_increments_follow_the_band_of_the_current_price() {
    let mut harness = Harness::with(AuctionSpec {
        increment: IncrementPolicy::Ebay,
        ..spec()
    });
    assert!(harness.bid(1, ALICE, 2_490, None).is_accepted());
    // 2,490 is in the 5.00-24.99 band: +50.
    assert_eq!(harness.auction().minimum_bid(), Amount(2_540));
    assert!(harness.bid(2, BOB, 2_540, None).is_accepted());
    // 2,540 is in the 25.00-99.99 band: +100.
    assert_eq!(harness.auction().minimum_bid(), Amount(2_640));
}

#[test]
fn amounts_out_of_range_are_rejected_before_anything_else() {
    let mut harness = Harness::with(spec());
    assert_eq!(
        rejected(&harness.bid(1, ALICE, 0, None)),
        RejectCode::AmountOutOfRange
    );
    let too_much = limits::AMOUNT_MAX + 1;
    assert_eq!(
        rejected(&harness.bid(1, ALICE, 1_000, Some(too_much))),
        RejectCode::AmountOutOfRange
    );
    let on_unknown = Action::PlaceBid {
        auction_id: AuctionId(9),
        amount: Amount(0),
        max: None,
    };
    assert_eq!(
        rejected(&harness.act(1, ALICE, on_unknown)),
        RejectCode::AmountOutOfRange
    );
}

#[test]
fn a_maximum_below_the_amount_is_rejected() {
    let mut harness = Harness::with(spec());
    assert_eq!(
        rejected(&harness.bid(1, ALICE, 2_000, Some(1_500))),
        RejectCode::MaxBelowAmount
    );
}

#[test]
fn bid_equal_to_current_max_loses_to_earlier_bidder() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, None).is_accepted());
    // Same plain amount, later in the log: below price + increment, rejected.
    assert_eq!(
        rejected(&harness.bid(2, BOB, 1_000, None)),
        RejectCode::BidTooLow
    );
    assert_eq!(harness.leader(), Some(ALICE.user));
}

// ---- proxy bidding ----------------------------------------------------------------------------

#[test]
fn proxy_price_is_second_highest_maximum_plus_one_increment() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, Some(5_000)).is_accepted());
    assert_eq!(harness.price(), Some(1_000));
    let reply = harness.bid(2, BOB, 2_000, Some(3_000));
    let Reply::Accepted(Accepted::Bid { leading, price, .. }) = reply else {
        panic!("{reply:?}")
    };
    assert!(!leading, "Alice's proxy outbids Bob at once");
    assert_eq!(price, Amount(3_100));
    assert_eq!(harness.leader(), Some(ALICE.user));
}

#[test]
fn proxy_price_is_capped_at_the_leaders_maximum() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, Some(3_050)).is_accepted());
    assert!(harness.bid(2, BOB, 3_000, None).is_accepted());
    assert_eq!(
        (harness.price(), harness.leader()),
        (Some(3_050), Some(ALICE.user))
    );
}

#[test]
fn a_higher_maximum_takes_the_lead_at_the_old_maximum_plus_one_increment() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, Some(2_000)).is_accepted());
    let outcome = {
        let action = Action::PlaceBid {
            auction_id: A1,
            amount: Amount(1_100),
            max: Some(Amount(9_000)),
        };
        harness.request(2, BOB, "bob-1", action)
    };
    assert_eq!(
        (harness.price(), harness.leader()),
        (Some(2_100), Some(BOB.user))
    );
    let outbid = outcome.events.iter().any(|event| {
        matches!(event, Event::Auction(AuctionEvent {
            kind: AuctionEventKind::Outbid { bidder, by }, ..
        }) if *bidder == ALICE.user && *by == BOB.user)
    });
    assert!(
        outbid,
        "the outbid event names who was outbid: {:?}",
        outcome.events
    );
}

#[test]
fn equal_maxima_are_won_by_the_earlier_bid_in_log_order() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, Some(4_000)).is_accepted());
    assert!(harness.bid(2, BOB, 1_100, Some(4_000)).is_accepted());
    assert_eq!(
        (harness.price(), harness.leader()),
        (Some(4_000), Some(ALICE.user))
    );
}

#[test]
fn the_leader_may_raise_their_maximum_without_raising_the_price() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, Some(2_000)).is_accepted());
    assert_eq!(
        rejected(&harness.bid(2, ALICE, 1_000, Some(2_000))),
        RejectCode::MaxNotRaised
    );
    assert!(harness.bid(3, ALICE, 1_000, Some(8_000)).is_accepted());
    assert_eq!(harness.price(), Some(1_000));
    assert_eq!(
        harness.auction().leader().map(|leader| leader.max),
        Some(Amount(8_000))
    );
}

// ---- reserve and buy it now -------------------------------------------------------------------

#[test]
fn reserve_not_met_ends_unsold_and_only_the_flag_is_public() {
    let mut harness = Harness::with(AuctionSpec {
        reserve_price: Some(Amount(5_000)),
        ..spec()
    });
    let reply = harness.bid(1, ALICE, 1_000, None);
    let Reply::Accepted(Accepted::Bid { reserve_met, .. }) = reply else {
        panic!("{reply:?}")
    };
    assert!(!reserve_met);
    let close = harness.apply(1_000, Command::Close { auction_id: A1 });
    let expected = AuctionResult::Unsold {
        reason: UnsoldReason::ReserveNotMet,
    };
    assert_eq!(harness.result(), expected);
    let public = serde_json::to_string(&close.events).unwrap();
    assert!(
        !public.contains("5000"),
        "the reserve amount never leaves the engine: {public}"
    );
}

#[test]
fn a_maximum_at_or_above_the_reserve_lifts_the_price_to_the_reserve() {
    let mut harness = Harness::with(AuctionSpec {
        reserve_price: Some(Amount(5_000)),
        ..spec()
    });
    assert!(harness.bid(1, ALICE, 1_000, Some(6_000)).is_accepted());
    assert_eq!(harness.price(), Some(5_000));
    assert!(harness.auction().reserve_met());
    harness.close(1_000);
    assert_eq!(harness.result(), sold(ALICE, 5_000));
}

#[test]
fn buy_now_ends_the_auction_at_once_at_the_listed_price() {
    let mut harness = Harness::with(AuctionSpec {
        buy_now_price: Some(Amount(9_000)),
        ..spec()
    });
    let reply = harness.act(1, ALICE, Action::BuyNow { auction_id: A1 });
    assert!(reply.is_accepted());
    let expected = AuctionResult::Sold {
        winner: ALICE.user,
        price: Amount(9_000),
        via: SaleKind::BuyNow,
    };
    assert_eq!(harness.result(), expected);
    assert_eq!(
        rejected(&harness.bid(2, BOB, 1_000, None)),
        RejectCode::AuctionClosed
    );
}

#[test]
fn buy_now_disappears_with_the_first_bid() {
    let mut harness = Harness::with(AuctionSpec {
        buy_now_price: Some(Amount(9_000)),
        ..spec()
    });
    assert!(harness.bid(1, ALICE, 1_000, None).is_accepted());
    let reply = harness.act(2, BOB, Action::BuyNow { auction_id: A1 });
    assert_eq!(rejected(&reply), RejectCode::BuyNowUnavailable);
}

#[test]
fn buy_now_stays_while_the_reserve_is_unmet() {
    let listing = AuctionSpec {
        reserve_price: Some(Amount(5_000)),
        buy_now_price: Some(Amount(9_000)),
        ..spec()
    };
    let mut harness = Harness::with(listing);
    assert!(harness.bid(1, ALICE, 1_000, None).is_accepted());
    assert!(
        harness
            .act(2, BOB, Action::BuyNow { auction_id: A1 })
            .is_accepted()
    );
    let bought = AuctionResult::Sold {
        winner: BOB.user,
        price: Amount(9_000),
        via: SaleKind::BuyNow,
    };
    assert_eq!(harness.result(), bought);
}

#[test]
fn buy_now_is_unavailable_without_a_listed_price() {
    let mut harness = Harness::with(spec());
    let reply = harness.act(1, ALICE, Action::BuyNow { auction_id: A1 });
    assert_eq!(rejected(&reply), RejectCode::BuyNowUnavailable);
}

// ---- soft close ---------------------------------------------------------------------------

fn soft(mode: SoftCloseMode, cap: Option<u64>) -> AuctionSpec {
    AuctionSpec {
        soft_close: Some(SoftClose {
            window: Micros::from_secs(60),
            mode,
            total_extension_max: cap.map(Micros::from_secs),
        }),
        ..spec()
    }
}

#[test]
fn a_bid_in_the_soft_close_window_adds_the_extension_to_the_end() {
    let mut harness = Harness::with(soft(SoftCloseMode::AddToEnd(Micros::from_secs(30)), None));
    assert!(harness.bid(900, ALICE, 1_000, None).is_accepted());
    assert_eq!(
        harness.auction().end(),
        at(1_000),
        "outside the window: no change"
    );
    let reply = harness.bid(950, BOB, 1_100, None);
    let Reply::Accepted(Accepted::Bid { end, .. }) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(end, at(1_030));
    assert_eq!(harness.state.next_end(), Some((at(1_030), A1)));
    assert_eq!(rejected(&harness.close(1_000)), RejectCode::AuctionNotEnded);
    assert!(harness.close(1_030).is_accepted());
}

#[test]
fn reset_mode_sets_the_remaining_time_and_the_cap_bounds_the_total() {
    let mut harness = Harness::with(soft(
        SoftCloseMode::ResetRemaining(Micros::from_secs(50)),
        Some(70),
    ));
    assert!(harness.bid(990, ALICE, 1_000, None).is_accepted());
    assert_eq!(harness.auction().end(), at(1_040));
    assert!(harness.bid(1_030, BOB, 1_100, None).is_accepted());
    assert_eq!(harness.auction().end(), at(1_070), "capped at end + 70 s");
    assert!(harness.bid(1_069, CAROL, 1_200, None).is_accepted());
    assert_eq!(harness.auction().end(), at(1_070));
}

// ---- who may bid ------------------------------------------------------------------------------

#[test]
fn sellers_cannot_bid_on_their_own_auction() {
    let mut harness = Harness::with(spec());
    assert_eq!(
        rejected(&harness.bid(1, SELLER, 1_000, None)),
        RejectCode::OwnAuction
    );
    let buy = Harness::with(AuctionSpec {
        buy_now_price: Some(Amount(2_000)),
        ..spec()
    })
    .act(1, SELLER, Action::BuyNow { auction_id: A1 });
    assert_eq!(rejected(&buy), RejectCode::OwnAuction);
}

#[test]
fn suspended_bidders_cannot_bid_until_reinstated() {
    let mut harness = Harness::with(spec());
    let suspend = Action::SuspendBidder {
        user: ALICE.user,
        reason: reason("chargebacks"),
    };
    assert!(harness.act(1, ADMIN, suspend.clone()).is_accepted());
    assert_eq!(
        rejected(&harness.act(1, ADMIN, suspend)),
        RejectCode::BidderAlreadySuspended
    );
    assert_eq!(
        rejected(&harness.bid(2, ALICE, 1_000, None)),
        RejectCode::BidderSuspended
    );
    let reinstate = Action::ReinstateBidder { user: ALICE.user };
    assert!(harness.act(3, ADMIN, reinstate.clone()).is_accepted());
    assert_eq!(
        rejected(&harness.act(3, ADMIN, reinstate)),
        RejectCode::BidderNotSuspended
    );
    assert!(harness.bid(4, ALICE, 1_000, None).is_accepted());
}

#[test]
fn only_admins_suspend_reinstate_and_void() {
    let mut harness = Harness::with(spec());
    let actions = [
        Action::SuspendBidder {
            user: BOB.user,
            reason: reason("x"),
        },
        Action::ReinstateBidder { user: BOB.user },
        Action::VoidBid {
            auction_id: A1,
            bid_id: BidId(0),
            reason: reason("x"),
        },
    ];
    for action in actions {
        assert_eq!(
            rejected(&harness.act(1, SELLER, action)),
            RejectCode::PermissionDenied
        );
    }
}

// ---- voiding bids ---------------------------------------------------------------------------

#[test]
fn voiding_the_leaders_bid_recomputes_leader_and_price_from_the_rest() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, Some(2_000)).is_accepted());
    assert!(harness.bid(2, BOB, 1_100, Some(9_000)).is_accepted());
    assert_eq!(
        (harness.price(), harness.leader()),
        (Some(2_100), Some(BOB.user))
    );
    let void = Action::VoidBid {
        auction_id: A1,
        bid_id: BidId(1),
        reason: reason("shill"),
    };
    assert!(harness.act(3, ADMIN, void.clone()).is_accepted());
    assert_eq!(
        (harness.price(), harness.leader()),
        (Some(1_000), Some(ALICE.user))
    );
    assert_eq!(
        rejected(&harness.act(4, ADMIN, void)),
        RejectCode::BidAlreadyVoided
    );
    let missing = Action::VoidBid {
        auction_id: A1,
        bid_id: BidId(7),
        reason: reason("x"),
    };
    assert_eq!(
        rejected(&harness.act(5, ADMIN, missing)),
        RejectCode::BidNotFound
    );
}

#[test]
fn voiding_every_bid_clears_the_price_and_the_auction_ends_with_no_bids() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, None).is_accepted());
    let void = Action::VoidBid {
        auction_id: A1,
        bid_id: BidId(0),
        reason: reason("test"),
    };
    let outcome = harness.request(2, ADMIN, "void", void);
    let cleared = outcome.events.iter().any(|event| {
        matches!(
            event,
            Event::Auction(AuctionEvent {
                kind: AuctionEventKind::PriceCleared,
                ..
            })
        )
    });
    assert!(cleared);
    assert_eq!(harness.price(), None);
    harness.close(1_000);
    assert_eq!(
        harness.result(),
        AuctionResult::Unsold {
            reason: UnsoldReason::NoBids
        }
    );
}

// ---- closing ------------------------------------------------------------------------------

#[test]
fn close_before_the_end_is_rejected_and_changes_nothing() {
    let mut harness = Harness::with(spec());
    let before = harness.auction().clone();
    assert_eq!(rejected(&harness.close(999)), RejectCode::AuctionNotEnded);
    assert_eq!(harness.auction(), &before);
}

#[test]
fn close_sells_to_the_leader_and_a_closed_auction_accepts_nothing() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, None).is_accepted());
    assert!(harness.bid(2, BOB, 1_200, None).is_accepted());
    assert_eq!(harness.state.due_for_close(at(999)).count(), 0);
    assert_eq!(
        harness.state.due_for_close(at(1_000)).collect::<Vec<_>>(),
        vec![A1]
    );
    assert!(harness.close(1_000).is_accepted());
    assert_eq!(harness.result(), sold(BOB, 1_200));
    assert_eq!(rejected(&harness.close(1_001)), RejectCode::AuctionClosed);
    assert_eq!(
        rejected(&harness.bid(1_001, CAROL, 9_000, None)),
        RejectCode::AuctionClosed
    );
    let buy = harness.act(1_001, CAROL, Action::BuyNow { auction_id: A1 });
    assert_eq!(rejected(&buy), RejectCode::AuctionClosed);
    let cancel = Action::CancelAuction {
        auction_id: A1,
        reason: Some(reason("late")),
    };
    assert_eq!(
        rejected(&harness.act(1_001, ADMIN, cancel)),
        RejectCode::AuctionClosed
    );
}

#[test]
fn close_without_bids_ends_unsold() {
    let mut harness = Harness::with(spec());
    harness.close(1_000);
    assert_eq!(
        harness.result(),
        AuctionResult::Unsold {
            reason: UnsoldReason::NoBids
        }
    );
}

#[test]
fn closed_auctions_leave_the_state_after_the_retention_period() {
    let mut harness = Harness::with(spec());
    harness.close(1_000);
    let retention = limits::CLOSED_RETENTION.0 / 1_000_000;
    harness.apply(
        1_000 + retention - 1,
        Command::Close {
            auction_id: AuctionId(2),
        },
    );
    assert!(harness.state.auction(A1).is_some());
    harness.apply(
        1_000 + retention,
        Command::Close {
            auction_id: AuctionId(2),
        },
    );
    assert!(harness.state.auction(A1).is_none());
}

// ---- idempotency ----------------------------------------------------------------------------

#[test]
fn a_retry_returns_the_first_outcome_and_changes_nothing() {
    let mut harness = Harness::with(spec());
    let action = Action::PlaceBid {
        auction_id: A1,
        amount: Amount(1_000),
        max: None,
    };
    let first = harness.request(1, ALICE, "k1", action.clone());
    let digest_after_first = harness.auction().clone();
    let retry = harness.request(2, ALICE, "k1", action);
    assert!(retry.replayed && retry.events.is_empty());
    assert_eq!(retry.reply, first.reply);
    assert_eq!(harness.auction(), &digest_after_first);
}

#[test]
fn a_retry_of_a_rejected_request_returns_the_same_rejection() {
    let mut harness = Harness::with(AuctionSpec {
        start: at(100),
        ..spec()
    });
    let action = Action::PlaceBid {
        auction_id: A1,
        amount: Amount(1_000),
        max: None,
    };
    let early = harness.request(1, ALICE, "k1", action.clone());
    assert_eq!(rejected(&early.reply), RejectCode::AuctionNotOpen);
    let retry = harness.request(150, ALICE, "k1", action);
    assert!(retry.replayed);
    assert_eq!(retry.reply, early.reply);
    assert_eq!(harness.price(), None);
}

#[test]
fn reusing_a_request_id_with_another_payload_is_rejected() {
    let mut harness = Harness::with(spec());
    let bid = |amount| Action::PlaceBid {
        auction_id: A1,
        amount: Amount(amount),
        max: None,
    };
    assert!(
        harness
            .request(1, ALICE, "k1", bid(1_000))
            .reply
            .is_accepted()
    );
    let reuse = harness.request(2, ALICE, "k1", bid(2_000));
    assert_eq!(rejected(&reuse.reply), RejectCode::RequestIdReused);
    assert_eq!(harness.price(), Some(1_000));
    // Request ids are per user: Bob may use the same one.
    assert!(
        harness
            .request(3, BOB, "k1", bid(2_000))
            .reply
            .is_accepted()
    );
}

#[test]
fn a_retry_of_a_create_returns_the_creation_reply() {
    let mut harness = Harness::new();
    let create = Action::CreateAuction {
        auction_id: A1,
        spec: spec(),
    };
    let first = harness.request(0, SELLER, "c1", create.clone());
    let retry = harness.request(1, SELLER, "c1", create);
    assert!(retry.replayed);
    assert_eq!(retry.reply, first.reply);
}

#[test]
fn records_of_requests_outside_auctions_expire_after_the_retention_period() {
    let mut harness = Harness::new();
    let suspend = Action::SuspendBidder {
        user: BOB.user,
        reason: reason("x"),
    };
    assert!(
        harness
            .request(0, ADMIN, "s1", suspend.clone())
            .reply
            .is_accepted()
    );
    assert!(harness.request(1, ADMIN, "s1", suspend.clone()).replayed);
    let retention = limits::REQUEST_RETENTION.0 / 1_000_000;
    let late = harness.request(retention, ADMIN, "s1", suspend);
    assert!(
        !late.replayed,
        "the record expired, so the request is evaluated again"
    );
    assert_eq!(rejected(&late.reply), RejectCode::BidderAlreadySuspended);
}

// ---- events, snapshot and digest --------------------------------------------------------------

#[test]
fn every_event_of_an_auction_carries_the_next_sequence_number() {
    let mut harness = Harness::with(soft(SoftCloseMode::AddToEnd(Micros::from_secs(30)), None));
    let mut seqs = vec![1];
    for (second, actor, amount) in [(10, ALICE, 1_000), (960, BOB, 1_100), (970, CAROL, 1_200)] {
        let action = Action::PlaceBid {
            auction_id: A1,
            amount: Amount(amount),
            max: None,
        };
        let outcome = harness.request(second, actor, &format!("b{second}"), action);
        for event in outcome.events {
            let Event::Auction(event) = event else {
                panic!("auction event expected")
            };
            seqs.push(event.seq);
        }
    }
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
}

#[test]
fn snapshot_restores_an_identical_state() {
    let mut harness = Harness::with(AuctionSpec {
        reserve_price: Some(Amount(3_000)),
        ..spec()
    });
    harness.bid(1, ALICE, 1_000, Some(2_000));
    harness.bid(2, BOB, 2_100, None);
    let bytes = bincode::serde::encode_to_vec(&harness.state, bincode::config::standard()).unwrap();
    let (restored, _): (State, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(restored, harness.state);
    assert_eq!(restored.digest(), harness.state.digest());
    restored.validate().unwrap();
}

// ---- capacity limits ------------------------------------------------------------------------

fn tiny() -> Capacity {
    Capacity {
        auctions_max: 2,
        bids_per_auction_max: 2,
        requests_per_auction_max: 4,
        group_requests_max: 2,
    }
}

fn harness_with_capacity(capacity: Capacity) -> Harness {
    let mut harness = Harness {
        state: State::with_capacity(capacity),
        ..Harness::new()
    };
    let reply = harness.act(
        0,
        SELLER,
        Action::CreateAuction {
            auction_id: A1,
            spec: spec(),
        },
    );
    assert!(reply.is_accepted());
    harness
}

#[test]
fn a_group_holds_at_most_its_auction_capacity() {
    let mut harness = harness_with_capacity(tiny());
    let create = |id| Action::CreateAuction {
        auction_id: AuctionId(id),
        spec: spec(),
    };
    assert!(harness.act(1, SELLER, create(2)).is_accepted());
    assert_eq!(
        rejected(&harness.act(2, SELLER, create(3))),
        RejectCode::AuctionLimitReached
    );
}

#[test]
fn an_auction_holds_at_most_its_bid_capacity() {
    let mut harness = harness_with_capacity(tiny());
    assert!(harness.bid(1, ALICE, 1_000, None).is_accepted());
    assert!(harness.bid(2, BOB, 1_100, None).is_accepted());
    assert_eq!(
        rejected(&harness.bid(3, CAROL, 1_200, None)),
        RejectCode::BidLimitReached
    );
}

#[test]
fn idempotency_records_are_bounded_and_an_unrecorded_rejection_is_not_replayed() {
    let mut harness = harness_with_capacity(tiny());
    // The create's own record plus three more fill the auction's four records.
    for second in 1..=3 {
        harness.bid(second, SELLER, 1_000, None);
    }
    let action = Action::PlaceBid {
        auction_id: A1,
        amount: Amount(1_000),
        max: None,
    };
    let full = harness.request(4, ALICE, "late", action.clone());
    assert_eq!(rejected(&full.reply), RejectCode::RequestLimitReached);
    assert!(!harness.request(5, ALICE, "late", action).replayed);
    // Requests outside auctions have their own bound.
    let suspend = |user| Action::SuspendBidder {
        user: UserId(user),
        reason: reason("x"),
    };
    assert!(harness.act(6, ADMIN, suspend(50)).is_accepted());
    assert!(harness.act(6, ADMIN, suspend(51)).is_accepted());
    assert_eq!(
        rejected(&harness.act(7, ADMIN, suspend(52))),
        RejectCode::RequestLimitReached
    );
    assert!(!harness.state.is_suspended(UserId(52)));
}

#[test]
fn early_rejection_covers_only_unrecorded_too_low_bids_while_open() {
    let mut harness = Harness::with(spec());
    assert!(harness.bid(1, ALICE, 1_000, Some(1_500)).is_accepted());
    let bid = |actor: Actor, id: &str, amount: u64, max: Option<u64>| Request {
        actor,
        request_id: RequestId::try_from(id).unwrap(),
        action: Action::PlaceBid {
            auction_id: A1,
            amount: Amount(amount),
            max: max.map(Amount),
        },
    };
    let early = |harness: &Harness, seconds: u64, request: &Request| {
        harness.state.early_bid_rejection(at(seconds), request)
    };
    // Too low, and the leader not raising their maximum: decided without the log.
    let low = bid(BOB, "low", 1_050, None);
    assert_eq!(early(&harness, 2, &low), Some(RejectCode::BidTooLow));
    let same_max = bid(ALICE, "same-max", 1_000, Some(1_500));
    assert_eq!(
        early(&harness, 2, &same_max),
        Some(RejectCode::MaxNotRaised)
    );
    // A bid that may win, one with a bad amount, and any other command go through the log.
    assert_eq!(early(&harness, 2, &bid(BOB, "high", 1_100, None)), None);
    assert_eq!(
        early(&harness, 2, &bid(BOB, "inverted", 1_100, Some(1_000))),
        None
    );
    let close = Request {
        actor: SELLER,
        request_id: RequestId::try_from("cancel").unwrap(),
        action: Action::CancelAuction {
            auction_id: A1,
            reason: None,
        },
    };
    assert_eq!(early(&harness, 2, &close), None);
    // Once the request is recorded, its retries get the recorded reply through the log.
    let outcome = harness.request(3, BOB, "low", low.action.clone());
    assert_eq!(outcome.reply, Reply::Rejected(RejectCode::BidTooLow));
    assert_eq!(early(&harness, 4, &low), None);
    // Outside the window, and once closed, the log decides (`auction_not_open`,
    // `auction_closed`), never `bid_too_low`.
    let late = bid(BOB, "late", 1_050, None);
    assert_eq!(early(&harness, 2_000, &late), None);
    assert!(harness.close(2_000).is_accepted());
    assert_eq!(early(&harness, 2_001, &late), None);
}
