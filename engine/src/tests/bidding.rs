//! The bidding window, increments and amounts, proxy bidding.

use super::*;

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

// ---- the flags of an accepted bid -----------------------------------------------------------

/// `BidAccepted`'s `(proxy, raise)` in `outcome`, if it accepted a bid.
fn bid_flags(outcome: &Outcome) -> Option<(bool, bool)> {
    outcome.events.iter().find_map(|event| match event {
        Event::Auction(AuctionEvent {
            kind: AuctionEventKind::BidAccepted { proxy, raise, .. },
            ..
        }) => Some((*proxy, *raise)),
        _ => None,
    })
}

#[test]
fn an_accepted_bid_says_whether_it_is_a_proxy_bid_and_whether_it_raised_the_leaders_maximum() {
    let mut harness = Harness::with(spec());
    let bid = |harness: &mut Harness, id: &str, actor: Actor, amount: u64, max: Option<u64>| {
        let action = Action::PlaceBid {
            auction_id: A1,
            amount: Amount(amount),
            max: max.map(Amount),
        };
        harness.request(1, actor, id, action)
    };
    // A plain bid: no maximum above its amount, nobody led.
    let plain = bid(&mut harness, "a", ALICE, 1_000, None);
    assert_eq!(bid_flags(&plain), Some((false, false)));
    // A maximum equal to the amount is no proxy.
    let equal = bid(&mut harness, "b", BOB, 1_100, Some(1_100));
    assert_eq!(bid_flags(&equal), Some((false, false)));
    // A maximum above the amount: a proxy bid (Alice did not lead any more).
    let proxy = bid(&mut harness, "c", ALICE, 1_200, Some(5_000));
    assert_eq!(bid_flags(&proxy), Some((true, false)));
    // Alice leads and raises her own maximum: a raise, recorded at the price (so a proxy).
    let raise = bid(&mut harness, "d", ALICE, 1_300, Some(8_000));
    assert_eq!(bid_flags(&raise), Some((true, true)));
    assert_eq!(harness.leader(), Some(ALICE.user));
    // Bob bids above the price without a maximum: Alice's proxy answers; Bob's bid is plain.
    let outbid = bid(&mut harness, "e", BOB, 6_000, None);
    assert_eq!(bid_flags(&outbid), Some((false, false)));
    // A rejected bid (Alice raising to less than her maximum) emits no event at all.
    let refused = bid(&mut harness, "f", ALICE, 6_200, Some(7_000));
    assert_eq!(refused.reply.rejection(), Some(RejectCode::MaxNotRaised));
    assert_eq!(bid_flags(&refused), None);
}

#[test]
fn a_rejection_through_the_log_names_its_auction_actor_code_and_time_but_not_a_replay() {
    let mut harness = Harness::with(spec());
    let command = Command::Request(Request {
        actor: BOB,
        request_id: RequestId::try_from("low").unwrap(),
        action: Action::PlaceBid {
            auction_id: A1,
            amount: Amount(10),
            max: None,
        },
    });
    let outcome = harness.apply(5, command.clone());
    assert_eq!(
        crate::outcome::Rejection::of(&command, at(5), &outcome),
        Some(crate::outcome::Rejection {
            auction_id: Some(A1),
            actor: Some(BOB.user),
            code: RejectCode::BidTooLow,
            at: at(5),
        })
    );
    // The same request again is judged again (rules 2 records no rejection): a new
    // rejection, at its own time.
    let again = harness.apply(6, command.clone());
    assert!(!again.replayed);
    assert_eq!(
        crate::outcome::Rejection::of(&command, at(6), &again).map(|rejection| rejection.at),
        Some(at(6))
    );
    // Under rules 1, a rejection was recorded and its retry replayed: not a new rejection.
    let mut old = Harness::with_rules_1(spec());
    assert!(old.apply(5, command.clone()).reply.rejection().is_some());
    let replay = old.apply(6, command.clone());
    assert!(replay.replayed);
    assert_eq!(
        crate::outcome::Rejection::of(&command, at(6), &replay),
        None
    );
    // An accepted command is no rejection; the leader's close has no actor.
    let accepted = harness.bid(7, ALICE, 1_000, None);
    assert!(accepted.is_accepted());
    let close = Command::Close { auction_id: A1 };
    let early = harness.apply(8, close.clone());
    let rejection = crate::outcome::Rejection::of(&close, at(8), &early).unwrap();
    assert_eq!(
        (rejection.actor, rejection.code),
        (None, RejectCode::AuctionNotEnded)
    );
}
