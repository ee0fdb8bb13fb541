//! The mapping from committed events to rows (`martelo_sink::plan`), without a database.

use std::collections::BTreeMap;

use martelo_engine::{
    Amount, AuctionEvent, AuctionEventKind, AuctionId, BidId, Event, Reason, Timestamp, UserId,
};
use martelo_sink::SinkRecord;
use martelo_sink::plan::{AuctionBefore, plan};

fn event(seq: u64, kind: AuctionEventKind) -> Event {
    Event::Auction(AuctionEvent {
        auction_id: AuctionId(5),
        seq,
        at: Timestamp(1_000 + seq),
        kind,
    })
}

fn before() -> BTreeMap<i64, AuctionBefore> {
    BTreeMap::from([(
        5,
        AuctionBefore {
            current_price: Some(300),
            leader_id: Some(7),
            reserve_met: true,
            effective_end_micros: 9_000,
            status: "open",
            closed_at_micros: None,
            seq: 10,
        },
    )])
}

#[test]
fn a_bid_that_leaves_the_price_unchanged_gets_the_price_from_before_the_batch() {
    // The leader raising their own maximum: accepted, no PriceChanged.
    let records = [SinkRecord {
        log_index: 40,
        rejections: Vec::new(),
        traceparent: None,
        events: vec![event(
            11,
            AuctionEventKind::BidAccepted {
                bid_id: BidId(3),
                bidder: UserId(7),
                amount: Amount(500),
                proxy: false,
                raise: false,
            },
        )],
    }];
    let plan = plan(&records, &before()).unwrap();
    assert_eq!(plan.bids.len(), 1);
    assert_eq!(
        (plan.bids[0].price_after, plan.bids[0].leader_after),
        (300, 7)
    );
    assert_eq!(plan.auction_updates[0].state.seq, 11);
    assert_eq!(plan.auction_updates[0].state.current_price, Some(300));
}

#[test]
fn a_proxy_response_in_the_same_entry_sets_the_bids_visible_price() {
    let records = [SinkRecord {
        log_index: 41,
        rejections: Vec::new(),
        traceparent: None,
        events: vec![
            event(
                11,
                AuctionEventKind::BidAccepted {
                    bid_id: BidId(3),
                    bidder: UserId(8),
                    amount: Amount(320),
                    proxy: false,
                    raise: false,
                },
            ),
            event(
                12,
                AuctionEventKind::Outbid {
                    bidder: UserId(8),
                    by: UserId(7),
                },
            ),
            event(
                13,
                AuctionEventKind::PriceChanged {
                    price: Amount(330),
                    leader: UserId(7),
                    reserve_met: true,
                },
            ),
        ],
    }];
    let plan = plan(&records, &before()).unwrap();
    assert_eq!(
        (plan.bids[0].price_after, plan.bids[0].leader_after),
        (330, 7)
    );
    assert_eq!(plan.events.len(), 3);
    assert_eq!(
        plan.events
            .iter()
            .map(|row| row.position)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
}

#[test]
fn a_void_then_price_cleared_marks_the_bid_and_clears_the_leader() {
    let records = [SinkRecord {
        log_index: 42,
        rejections: Vec::new(),
        traceparent: None,
        events: vec![
            event(
                11,
                AuctionEventKind::BidVoided {
                    bid_id: BidId(0),
                    reason: Reason::try_from("shill").unwrap(),
                },
            ),
            event(12, AuctionEventKind::PriceCleared),
        ],
    }];
    let plan = plan(&records, &before()).unwrap();
    assert_eq!(plan.voids.len(), 1);
    assert_eq!(plan.admin_actions[0].kind, "bid_voided");
    let state = &plan.auction_updates[0].state;
    assert_eq!((state.current_price, state.leader_id), (None, None));
}

#[test]
fn ids_above_i64_max_keep_their_bits_but_amounts_and_times_stay_checked() {
    let records = [SinkRecord {
        log_index: 1,
        rejections: Vec::new(),
        traceparent: None,
        events: vec![Event::BidderReinstated {
            user: UserId(u64::MAX),
            at: Timestamp(1),
        }],
    }];
    let rows = plan(&records, &BTreeMap::new()).expect("every id has a stored form");
    assert_eq!(rows.events[0].user_id, Some(-1));
    assert_eq!(rows.admin_actions[0].subject_id, Some(-1));
    assert_eq!(martelo_sink::ids::from_bigint(-1), u64::MAX);

    // Not ids: an amount or a time above i64::MAX is refused, never wrapped.
    let amount = [SinkRecord {
        log_index: 1,
        rejections: Vec::new(),
        traceparent: None,
        events: vec![event(
            11,
            AuctionEventKind::BidAccepted {
                bid_id: BidId(0),
                bidder: UserId(u64::MAX),
                amount: Amount(u64::MAX),
                proxy: false,
                raise: false,
            },
        )],
    }];
    let error = plan(&amount, &before()).unwrap_err();
    assert_eq!((error.what, error.value), ("amount", u64::MAX));
    let time = [SinkRecord {
        log_index: 1,
        rejections: Vec::new(),
        traceparent: None,
        events: vec![Event::BidderReinstated {
            user: UserId(1),
            at: Timestamp(u64::MAX),
        }],
    }];
    let error = plan(&time, &before()).unwrap_err();
    assert_eq!((error.what, error.value), ("timestamp", u64::MAX));
}
