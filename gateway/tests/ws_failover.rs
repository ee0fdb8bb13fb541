//! Kill the leader of the auction's group while 3 WebSocket clients bid and watch through
//! the gateway: no client loses or sees twice an event (seqs stay contiguous after the
//! single first snapshot), and every acknowledged bid is in the final state.

#[path = "support/ws_harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::{Harness, Seen, Setup, Ws};
use martelo_engine::{AuctionId, UserId};
use serde_json::{Value, json};

const AUCTION: u64 = 1;

struct Bidder {
    user: u64,
    ws: Ws,
    seen: Seen,
    price: u64,
    /// (request id, bid id) of acknowledged bids.
    acknowledged: Vec<(String, u64)>,
}

impl Bidder {
    fn take(&mut self, message: &Value) {
        self.seen.take(message);
        if message["type"] == "event" && message["event"]["kind"] == "price_changed" {
            self.price = self
                .price
                .max(message["event"]["price"].as_u64().unwrap_or(0));
        }
        if message["type"] == "snapshot" {
            let price = message["state"]["price"].as_u64().unwrap_or(0);
            self.price = self.price.max(price);
        }
    }

    /// Bids just above the price it knows and waits for the answer.
    async fn bid_once(&mut self, round: u64) {
        let request_id = format!("u{}-{round}", self.user);
        let amount = (self.price + 10).max(100);
        self.ws
            .send(json!({"type": "bid", "auction": AUCTION, "request_id": request_id, "amount": amount}))
            .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no answer to {request_id}");
            let message = self.ws.next_json(Duration::from_secs(30)).await;
            if message["type"] == "bid_result" && message["request_id"] == request_id.as_str() {
                if let Some(bid_id) = message["ok"]["bid_id"].as_u64() {
                    self.acknowledged.push((request_id, bid_id));
                }
                if message["error"]["code"] == "bid_too_low" {
                    self.price = self.price.max(amount);
                }
                return;
            }
            self.take(&message);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_and_duplicates_no_event_at_any_client() {
    let test = Harness::start(Setup::default()).await;
    test.create_auction(AUCTION, Duration::from_secs(600)).await;
    let group = test.client.group_of(AuctionId(AUCTION));
    let leader = test.client.leader_of(group).expect("a leader").node_id;

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for user in 30..33u64 {
        let mut bidder = Bidder {
            user,
            ws: test.open_as(UserId(user)).await,
            seen: Seen::default(),
            price: 0,
            acknowledged: Vec::new(),
        };
        bidder
            .ws
            .send(json!({"type": "subscribe", "auction": AUCTION}))
            .await;
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                bidder.bid_once(round).await;
                round += 1;
            }
            bidder
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    test.cluster.kill(leader).expect("kill -9 the leader");
    println!("killed node {leader}, the leader of group {}", group.0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut bidders = Vec::new();
    for task in tasks {
        bidders.push(task.await.expect("bidder task"));
    }

    let view = test
        .client
        .read_auction(AuctionId(AUCTION), Default::default())
        .await
        .expect("read")
        .view;
    for bidder in &mut bidders {
        let deadline = Instant::now() + Duration::from_secs(15);
        while bidder.seen.at != Some(view.seq) {
            assert!(
                Instant::now() < deadline,
                "user {} stuck at {:?} of {}",
                bidder.user,
                bidder.seen.at,
                view.seq
            );
            let message = bidder.ws.next_json(Duration::from_secs(15)).await;
            bidder.take(&message);
        }
        assert_eq!(
            bidder.seen.snapshots.len(),
            1,
            "user {}: only the first snapshot, no gap to repair: {:?}",
            bidder.user,
            bidder.seen.snapshots
        );
        println!(
            "user {}: {} events, {} bids acknowledged",
            bidder.user,
            bidder.seen.events.len(),
            bidder.acknowledged.len()
        );
        for (request_id, bid_id) in &bidder.acknowledged {
            let bid = view.bids.get(*bid_id as usize);
            assert!(
                bid.is_some_and(|bid| bid.bidder == UserId(bidder.user) && !bid.voided),
                "acknowledged bid {request_id} (bid {bid_id}) is missing: {bid:?}"
            );
        }
    }
    // The hub's subscription was on the killed leader (the client's cached route): it broke
    // and was resumed, and the seqs above show it resumed without a gap or a duplicate.
    let opened = test.state.hub.subscriptions_opened();
    println!("group subscriptions opened: {opened}");
    assert!(opened >= 2, "the subscription never broke: {opened}");
    let acknowledged: usize = bidders.iter().map(|bidder| bidder.acknowledged.len()).sum();
    assert!(
        acknowledged >= 3,
        "too few bids acknowledged: {acknowledged}"
    );
}
