//! Idempotency, events, snapshots and digests, capacity limits.

use super::terms::soft;
use super::*;

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

/// Rules 1 only: rules 2 records no rejection (`rules_v2.rs`).
#[test]
fn under_rules_1_a_retry_of_a_rejected_request_returns_the_same_rejection() {
    let mut harness = Harness::with_rules_1(AuctionSpec {
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

pub(super) fn tiny() -> Capacity {
    Capacity {
        auctions_max: 2,
        bids_per_auction_max: 2,
        requests_per_auction_max: 4,
        group_requests_max: 2,
    }
}

pub(super) fn harness_with_capacity(capacity: Capacity) -> Harness {
    harness_with_capacity_at(capacity, RulesVersion::CURRENT)
}

pub(super) fn harness_with_capacity_at(capacity: Capacity, version: RulesVersion) -> Harness {
    let mut harness = Harness::at_rules(State::with_capacity(capacity), version);
    harness.create(spec());
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

/// Rules 1: this is the lockout rules 2 removes (`rules_v2.rs`): the seller's garbage bids
/// were recorded and filled the auction's records.
#[test]
fn under_rules_1_idempotency_records_are_bounded_and_an_unrecorded_rejection_is_not_replayed() {
    let mut harness = harness_with_capacity_at(tiny(), RulesVersion::FIRST);
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
    // A rejection leaves no record (rules 2), so the leader may keep answering it early.
    let outcome = harness.request(3, BOB, "low", low.action.clone());
    assert_eq!(outcome.reply, Reply::Rejected(RejectCode::BidTooLow));
    assert_eq!(early(&harness, 4, &low), Some(RejectCode::BidTooLow));
    // Once a request is recorded, its retries get the recorded reply through the log, even
    // when the same bid would now be too low.
    let high = bid(BOB, "high", 1_100, None);
    assert!(
        harness
            .request(4, BOB, "high", high.action.clone())
            .reply
            .is_accepted()
    );
    assert!(harness.bid(4, ALICE, 1_200, Some(3_000)).is_accepted());
    assert_eq!(early(&harness, 5, &high), None);
    // Outside the window, and once closed, the log decides (`auction_not_open`,
    // `auction_closed`), never `bid_too_low`.
    let late = bid(BOB, "late", 1_050, None);
    assert_eq!(early(&harness, 2_000, &late), None);
    assert!(harness.close(2_000).is_accepted());
    assert_eq!(early(&harness, 2_001, &late), None);
}
