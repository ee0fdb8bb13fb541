//! Crashes and restarts of real node processes: no acknowledged bid is lost (I1), a new
//! leader serves within 2 s, and a full restart keeps every auction.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use martelo_engine::{AuctionId, UserId};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_leader_loses_no_acknowledged_bid() {
    let test = TestCluster::start(3, 2).await;
    let client = test.client.clone();
    create_auction(&client, 1, Duration::from_secs(600)).await;
    let group = client.group_of(AuctionId(1));
    let leader = client.leader_of(group).expect("leader").node_id;

    // Bidders keep bidding through the crash; every acknowledged bid is recorded.
    let load = Load::start(&client, &[1], 3);
    load.must_accept(10, Duration::from_secs(15)).await;
    test.cluster.kill(leader).expect("kill -9 the leader");
    let killed_at = Instant::now();
    let successor = must_find_leader(&test, group.0, Some(leader)).await;
    let election = killed_at.elapsed();
    // The new leader serves: a fresh write through it succeeds.
    let probe = bid(&client, 1, 99, 1, "probe-after-kill")
        .await
        .expect("decided");
    let served = killed_at.elapsed();
    assert_eq!(probe.node, successor);
    println!("new leader {successor} after {election:?}, serving after {served:?}");
    assert!(
        served < Duration::from_secs(2) + Duration::from_millis(500),
        "{served:?}"
    );
    load.must_accept(5, Duration::from_secs(15)).await;
    let acknowledged = load.stop().await;
    test.cluster
        .restart(leader)
        .await
        .expect("restart the killed node");

    assert!(
        acknowledged.len() > 10,
        "too few bids acknowledged: {}",
        acknowledged.len()
    );
    let final_view = read(&client, 1).await;
    // Every replica, the restarted one included, catches up and holds every acknowledged bid.
    for node in test.cluster.nodes() {
        let view = eventually(Duration::from_secs(15), "the replica to catch up", || {
            let client = client.clone();
            let address = node.address.clone();
            let wanted = final_view.seq;
            async move {
                let view = read_on_node(&client, &address, 1).await?;
                (view.seq >= wanted).then_some(view)
            }
        })
        .await;
        for (request_id, Acknowledged { bidder, bid_id, .. }) in &acknowledged {
            let bid = view.bids.get(*bid_id as usize);
            assert!(
                bid.is_some_and(|bid| bid.bidder == UserId(*bidder) && !bid.voided),
                "node {}: acknowledged bid {request_id} (bid {bid_id}) is missing: {bid:?}",
                node.id
            );
        }
        assert_eq!(view.bids, final_view.bids, "node {} differs", node.id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_restart_keeps_every_auction() {
    let test = TestCluster::start(3, 2).await;
    let client = &test.client;
    let mut views = BTreeMap::new();
    for auction in 1..=6u64 {
        create_auction(client, auction, Duration::from_secs(600)).await;
        for round in 0..5u64 {
            must_bid(
                client,
                auction,
                10 + round % 2,
                100 + round * 10,
                &format!("{auction}-{round}"),
            )
            .await;
        }
        views.insert(auction, read(client, auction).await);
    }
    for (node, clean) in test.cluster.stop_all().await {
        assert!(
            clean.expect("stop"),
            "node {node} did not exit cleanly on SIGTERM"
        );
    }
    for node in test.cluster.node_ids() {
        test.cluster.restart(node).await.expect("restart");
    }
    test.cluster
        .wait_healthy(Duration::from_secs(30))
        .await
        .expect("healthy after restart");
    let client = connect(&test.cluster).await;
    for (auction, before) in views {
        assert_eq!(
            read(&client, auction).await,
            before,
            "auction {auction} changed"
        );
    }
    // And it keeps taking bids.
    must_bid(&client, 1, 50, 10_000, "after-restart").await;
    assert_eq!(read(&client, 1).await.leading_bidder, Some(UserId(50)));
}
