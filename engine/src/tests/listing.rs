//! Creating, editing and cancelling auctions.

use super::*;

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
        RejectCode::PermissionDenied
    );
    let other_seller = Actor {
        user: UserId(2),
        role: Role::Seller,
    };
    assert_eq!(
        rejected(&harness.act(1, other_seller, edit())),
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
