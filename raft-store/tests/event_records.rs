//! What the state machine writes to the event log since storage format 3: beside the
//! events, the entry's rejection and its stored traceparent; and that every replica writes
//! the same records.

mod support;

use martelo_engine::outcome::Rejection;
use martelo_engine::{
    Action, Actor, Amount, AuctionEvent, AuctionEventKind, AuctionId, Command, Event, RejectCode,
    Request, RequestId, Role, Timestamp, UserId,
};
use martelo_raft_store::Stamped;
use martelo_raft_store::types::Entry;
use openraft::entry::RaftEntry;
use support::*;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn entry(index: u64, at: u64, command: Command, traceparent: Option<&str>) -> Entry {
    let log_id = openraft::testing::log_id::<martelo_raft_store::TypeConfig>(1, 1, index);
    Entry::new_normal(
        log_id,
        Stamped {
            timestamp: Timestamp(at),
            command,
            traceparent: traceparent.map(str::to_owned),
        },
    )
}

fn bid(user: u64, id: &str, amount: u64, max: Option<u64>) -> Command {
    Command::Request(Request {
        actor: Actor {
            user: UserId(user),
            role: Role::Bidder,
        },
        request_id: RequestId::try_from(id).unwrap(),
        action: Action::PlaceBid {
            auction_id: AuctionId(1),
            amount: Amount(amount),
            max: max.map(Amount),
        },
    })
}

/// The first entry of a workload creates auction 1 (at 1_001_000 µs, a long window,
/// starting price 100, increment 1); then: a proxy bid (traced), a bid too low (traced, rejected),
/// the same request again (a replay: no new rejection), an early close (untraced, rejected).
fn entries() -> Vec<Entry> {
    let mut workload = Workload::new(1, 1);
    let mut all = workload.entries(1, 1, 1);
    all.push(entry(
        2,
        1_002_000,
        bid(5, "a", 100, Some(500)),
        Some(PARENT),
    ));
    all.push(entry(3, 1_003_000, bid(6, "b", 50, None), Some(PARENT)));
    all.push(entry(4, 1_004_000, bid(6, "b", 50, None), None));
    all.push(entry(
        5,
        1_005_000,
        Command::Close {
            auction_id: AuctionId(1),
        },
        None,
    ));
    all
}

#[tokio::test]
async fn records_carry_rejections_and_traceparents_and_replicas_agree() {
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let store = must_open(dir.path(), test_config());
        let (_, mut state_machine) = must_group(&store, 1).await;
        must_apply(&mut state_machine, entries()).await;
        let records = state_machine.event_log().read_from(0, 4096).unwrap();
        replicas.push(records);
    }
    assert_eq!(
        replicas[0], replicas[1],
        "the same records on every replica"
    );
    let records = &replicas[0];
    let indexes: Vec<u64> = records.iter().map(|record| record.log_index).collect();
    assert_eq!(
        indexes,
        [1, 2, 3, 5],
        "the replay (4) has nothing to record"
    );

    let bid = &records[1];
    assert_eq!(bid.traceparent.as_deref(), Some(PARENT));
    assert!(bid.rejections.is_empty());
    let flags = bid.events.iter().find_map(|event| match event {
        Event::Auction(AuctionEvent {
            kind: AuctionEventKind::BidAccepted { proxy, raise, .. },
            ..
        }) => Some((*proxy, *raise)),
        _ => None,
    });
    assert_eq!(flags, Some((true, false)), "a proxy bid, not a raise");

    let too_low = &records[2];
    assert!(too_low.events.is_empty());
    assert_eq!(too_low.traceparent.as_deref(), Some(PARENT));
    assert_eq!(
        too_low.rejections,
        vec![Rejection {
            auction_id: Some(AuctionId(1)),
            actor: Some(UserId(6)),
            code: RejectCode::BidTooLow,
            at: Timestamp(1_003_000),
        }]
    );

    let close = &records[3];
    assert_eq!(close.traceparent, None);
    assert_eq!(close.rejections.len(), 1);
    assert_eq!(
        (close.rejections[0].actor, close.rejections[0].code),
        (None, RejectCode::AuctionNotEnded)
    );
}
