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
