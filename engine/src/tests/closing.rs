//! Voiding bids and closing auctions.

use super::*;

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
