//! Crashes and restarts of real node processes: no acknowledged bid is lost (I1), a new
//! leader serves within 2 s, and a full restart keeps every auction.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use martelo_engine::{AuctionId, UserId};
use martelo_types::NodeId;
use support::*;

/// Waits until some node other than `old` leads `group`, as the nodes report it.
async fn new_leader(test: &TestCluster, group: u64, old: NodeId) -> NodeId {
    eventually(Duration::from_secs(10), "a new leader", || async {
        for node in test.cluster.node_ids() {
            if node == old || !test.cluster.is_running(node) {
                continue;
            }
            let status = test.cluster.status(node).await.ok()?;
            let group_status = status.groups.iter().find(|g| g.group_id == group)?;
            if group_status.role() == martelo_proto::RaftRole::Leader {
                return Some(node);
            }
        }
        None
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_leader_loses_no_acknowledged_bid() {
    let test = TestCluster::start(3, 2).await;
    let client = test.client.clone();
    create_auction(&client, 1, Duration::from_secs(600)).await;
    let group = client.group_of(AuctionId(1));
    let leader = client.leader_of(group).expect("leader").node_id;

    // Bidders keep bidding through the crash; every acknowledged bid is recorded.
    // Request id -> (bidder, the bid id the acknowledgement named). A retry answered from the
    // idempotency record names the first attempt's bid, so the id, not the log index of the
    // answering entry, identifies the bid.
    let acknowledged: Arc<Mutex<BTreeMap<String, (u64, u32)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut bidders = Vec::new();
    for bidder in 0..3u64 {
        let client = client.clone();
        let acknowledged = Arc::clone(&acknowledged);
        let stop = Arc::clone(&stop);
        bidders.push(tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                let request_id = format!("b{bidder}-{round}");
                // Amounts are unique per bid so each one can be found in the history.
                let amount = 1_000 + round * 100 + bidder;
                // Unknown outcomes (errors) may or may not be applied: they prove nothing.
                if let Ok(proposed) = bid(&client, 1, 10 + bidder, amount, &request_id).await
                    && let martelo_engine::Reply::Accepted(martelo_engine::Accepted::Bid {
                        bid_id,
                        ..
                    }) = proposed.reply
                {
                    acknowledged
                        .lock()
                        .expect("lock")
                        .insert(request_id, (10 + bidder, bid_id.0));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    test.cluster.kill(leader).expect("kill -9 the leader");
    let killed_at = Instant::now();
    let successor = new_leader(&test, group.0, leader).await;
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
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for bidder in bidders {
        bidder.await.expect("bidder task");
    }
    test.cluster
        .restart(leader)
        .await
        .expect("restart the killed node");

    let acknowledged = acknowledged.lock().expect("lock").clone();
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
        for (request_id, (bidder, bid_id)) in &acknowledged {
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
