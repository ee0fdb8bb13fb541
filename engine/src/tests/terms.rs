//! Reserve, buy it now, soft close, and who may bid.

use super::*;

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

pub(super) fn soft(mode: SoftCloseMode, cap: Option<u64>) -> AuctionSpec {
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
