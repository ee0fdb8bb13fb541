//! Leader timers: an auction closes by itself at its end, with the right winner, also when
//! its group's leader dies just before the end.

mod support;

use std::time::Duration;

use martelo_engine::{Amount, AuctionId, AuctionResult, UserId};
use support::*;

/// Bids 100 (user 10), 200 (user 11), 300 (user 10): user 10 wins at 300.
async fn three_bids(client: &martelo_client::Client, auction: u64) {
    for (round, (user, amount)) in [(10, 100), (11, 200), (10, 300)].into_iter().enumerate() {
        must_bid(client, auction, user, amount, &format!("{auction}-{round}")).await;
    }
}

async fn wait_closed(client: &martelo_client::Client, auction: u64) -> martelo_engine::AuctionView {
    eventually(Duration::from_secs(20), "the auction to close", || async {
        let view = client
            .read_auction(
                AuctionId(auction),
                martelo_client::ReadConsistency::Linearizable,
            )
            .await
            .ok()?
            .view;
        view.closed.is_some().then_some(view)
    })
    .await
}

fn assert_sold_to_10_at_300(view: &martelo_engine::AuctionView) {
    let closed = view.closed.as_ref().expect("closed");
    match &closed.result {
        AuctionResult::Sold { winner, price, .. } => {
            assert_eq!((*winner, *price), (UserId(10), Amount(300)), "{view:?}");
        }
        other => panic!("expected a sale, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auction_closes_on_time_with_the_right_winner() {
    let test = TestCluster::start(3, 2).await;
    let client = &test.client;
    create_auction(client, 1, Duration::from_secs(2)).await;
    three_bids(client, 1).await;
    let view = wait_closed(client, 1).await;
    assert_sold_to_10_at_300(&view);
    let closed_at = view.closed.as_ref().expect("closed").at;
    assert!(
        closed_at >= view.end,
        "closed early: {closed_at:?} < {:?}",
        view.end
    );
    let late = Duration::from_micros(closed_at.0 - view.end.0);
    println!("closed {late:?} after its end");
    // One tick (100 ms) plus a commit, with room for a loaded machine.
    assert!(late < Duration::from_millis(1500), "closed {late:?} late");
    // A closed auction accepts nothing (I4).
    let after = bid(client, 1, 11, 10_000, "after-close")
        .await
        .expect("decided");
    assert!(accepted_price(&after.reply).is_none(), "{:?}", after.reply);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_dying_just_before_the_end_still_closes_with_the_right_winner() {
    let test = TestCluster::start(3, 2).await;
    let client = &test.client;
    let created = create_auction(client, 5, Duration::from_secs(3)).await;
    three_bids(client, 5).await;
    let group = client.group_of(AuctionId(5));
    let leader = client.leader_of(group).expect("leader").node_id;
    let end = after(created.timestamp, Duration::from_secs(3));
    let until_end = Duration::from_micros(end.0.saturating_sub(now().0));
    tokio::time::sleep(until_end.saturating_sub(Duration::from_millis(300))).await;
    test.cluster.kill(leader).expect("kill -9 the leader");
    let view = wait_closed(client, 5).await;
    assert_sold_to_10_at_300(&view);
    let closed_at = view.closed.as_ref().expect("closed").at;
    assert!(closed_at >= view.end);
    let late = Duration::from_micros(closed_at.0 - view.end.0);
    println!("closed {late:?} after its end, across a leader change");
    // An election timeout (at most 1.5 s) plus one tick, with room for a loaded machine.
    assert!(late < Duration::from_millis(3000), "closed {late:?} late");
}
