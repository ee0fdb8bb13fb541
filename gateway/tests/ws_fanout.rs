//! `/v1/ws` fan-out against a real 3-node cluster: two watchers see every event in seq
//! order, a resume gets exactly the missed events (or a snapshot marked `gap` when they
//! are gone), bidders get their bid results and personal notices (outbid, won, lost), and
//! a consumer that does not read is conflated while a fast one is not.

#[path = "support/ws_harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harness::{Got, Harness, Seen, Setup};
use martelo_engine::UserId;
use serde_json::json;

const AUCTION: u64 = 1;
const WAIT: Duration = Duration::from_secs(10);

/// Reads `ws` until the auction reaches `seq`, checking the seq discipline; returns the
/// other messages (bid results, notices, errors).
async fn read_until(ws: &mut harness::Ws, seen: &mut Seen, seq: u64) -> Vec<serde_json::Value> {
    let mut others = Vec::new();
    let deadline = Instant::now() + WAIT;
    while seen.at != Some(seq) {
        assert!(
            Instant::now() < deadline,
            "stuck at {:?}, waiting for {seq}",
            seen.at
        );
        let message = ws.next_json(WAIT).await;
        match message["type"].as_str() {
            Some("snapshot" | "event" | "resumed") => seen.take(&message),
            _ => others.push(message),
        }
    }
    others
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_see_every_event_in_order_and_a_resume_gets_exactly_the_missed_ones() {
    let mut setup = Setup::default();
    setup.config.limits.replay_events_per_auction = 20;
    let test = Harness::start(setup).await;
    test.create_auction(AUCTION, Duration::from_secs(600)).await;

    // A signed-in bidder who subscribes with a message, and an anonymous watcher whose
    // socket opens subscribed (`?subscribe=`: it sends nothing and gets the snapshot).
    let mut alice = test.open_as(UserId(10)).await;
    let mut watcher = test
        .open_with_query(&format!("subscribe={AUCTION}"))
        .await
        .expect("anonymous watchers may connect");
    let (mut alice_seen, mut watcher_seen) = (Seen::default(), Seen::default());
    alice
        .send(json!({"type": "subscribe", "auction": AUCTION}))
        .await;
    let first = alice.next_json(WAIT).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    assert_eq!(first["reason"], "new");
    assert_eq!(first["state"]["listing"]["title"], "Test lot");
    alice_seen.take(&first);
    let watched = watcher.next_json(WAIT).await;
    assert_eq!(watched["type"], "snapshot", "{watched}");
    assert_eq!(watched["auction"], AUCTION, "{watched}");
    watcher_seen.take(&watched);
    // A `subscribe` that is not an auction id is refused before the upgrade.
    for query in [
        "subscribe=lot-7",
        "subscribe=-1",
        "subscribe=99999999999999999999999",
    ] {
        let refused = test.open_with_query(query).await;
        assert!(
            matches!(
                &refused,
                Err(tokio_tungstenite::tungstenite::Error::Http(response))
                    if response.status() == 400
            ),
            "{query}: {:?}",
            refused.as_ref().err()
        );
    }

    // Alice bids over the socket; bidder 11 outbids her through the cluster; the anonymous
    // watcher may not bid.
    alice
        .send(json!({"type": "bid", "auction": AUCTION, "request_id": "alice-1", "amount": 100}))
        .await;
    let mut alice_other = Vec::new();
    let result = loop {
        let message = alice.next_json(WAIT).await;
        if message["type"] == "bid_result" {
            break message;
        }
        match message["type"].as_str() {
            Some("snapshot" | "event") => alice_seen.take(&message),
            _ => alice_other.push(message),
        }
    };
    assert_eq!(result["request_id"], "alice-1");
    assert_eq!(result["ok"]["leading"], true, "{result}");
    watcher
        .send(json!({"type": "bid", "auction": AUCTION, "request_id": "anon-1", "amount": 500}))
        .await;
    for round in 0..10u64 {
        assert!(
            test.bid(AUCTION, 11, 200 + 20 * round, &format!("bob-{round}"))
                .await
        );
    }
    let last = test.seq(AUCTION).await;
    alice_other.extend(read_until(&mut alice, &mut alice_seen, last).await);
    let watcher_other = read_until(&mut watcher, &mut watcher_seen, last).await;
    assert_eq!(alice_seen.events, watcher_seen.events);
    let first_seq = alice_seen.snapshots[0].0;
    assert_eq!(
        alice_seen.events,
        ((first_seq + 1)..=last).collect::<Vec<_>>()
    );
    assert_eq!(alice_seen.snapshots.len(), 1);
    assert!(
        alice_other
            .iter()
            .any(|message| message["type"] == "notice" && message["kind"] == "outbid"),
        "alice was outbid: {alice_other:?}"
    );
    let refused = watcher_other
        .iter()
        .find(|message| message["type"] == "bid_result")
        .expect("the anonymous bid's result");
    assert_eq!(refused["error"]["code"], "unauthorized", "{refused}");

    // The watcher drops; 5 more bids; it resumes after the last seq it saw and gets exactly
    // the missed events.
    drop(watcher);
    let resume_after = last;
    for round in 10..15u64 {
        assert!(
            test.bid(
                AUCTION,
                11 + round % 2,
                200 + 20 * round,
                &format!("r-{round}")
            )
            .await
        );
    }
    let last = test.seq(AUCTION).await;
    let mut resumed = test.open_with(&[], None).await.expect("upgrade");
    resumed
        .send(json!({"type": "subscribe", "auction": AUCTION, "after_seq": resume_after}))
        .await;
    let answer = resumed.next_json(WAIT).await;
    assert_eq!(answer["type"], "resumed", "{answer}");
    assert_eq!(answer["replayed"], last - resume_after);
    let mut resumed_seen = Seen::default();
    resumed_seen.take(&answer);
    read_until(&mut resumed, &mut resumed_seen, last).await;
    assert_eq!(
        resumed_seen.events,
        ((resume_after + 1)..=last).collect::<Vec<_>>()
    );

    // A resume from before the replay buffer (20 events) gets a snapshot marked `gap`.
    let mut old = test.open_with(&[], None).await.expect("upgrade");
    old.send(json!({"type": "subscribe", "auction": AUCTION, "after_seq": 1}))
        .await;
    let answer = old.next_json(WAIT).await;
    assert_eq!(answer["type"], "snapshot", "{answer}");
    assert_eq!(answer["reason"], "gap");
    assert_eq!(answer["seq"], last);

    // Unknown auctions and double subscriptions are errors, the socket lives on.
    old.send(json!({"type": "subscribe", "auction": 999_999}))
        .await;
    old.send(json!({"type": "subscribe", "auction": AUCTION}))
        .await;
    let mut codes = Vec::new();
    while codes.len() < 2 {
        let message = old.next_json(WAIT).await;
        if message["type"] == "error" {
            codes.push(message["code"].as_str().unwrap_or_default().to_owned());
        }
    }
    codes.sort();
    assert_eq!(codes, ["already_subscribed", "auction_not_found"]);
    // Many watchers subscribing at once (their snapshot reads are coalesced) all get the
    // same, current snapshot.
    let mut crowd = Vec::new();
    for _ in 0..20 {
        let mut ws = test.open_with(&[], None).await.expect("upgrade");
        ws.send(json!({"type": "subscribe", "auction": AUCTION}))
            .await;
        crowd.push(ws);
    }
    for ws in &mut crowd {
        let snapshot = ws.next_json(WAIT).await;
        assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
        assert_eq!(snapshot["seq"], last);
    }

    old.send(json!({"type": "ping", "nonce": "n1"})).await;
    let pong = old.next_json(WAIT).await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["nonce"], "n1");

    // Personal notices at the close: alice wins auction 2, carl, who bid too, lost.
    test.create_auction(2, Duration::from_secs(3)).await;
    let mut carl = test.open_as(UserId(12)).await;
    for ws in [&mut alice, &mut carl] {
        ws.send(json!({"type": "subscribe", "auction": 2})).await;
    }
    for (ws, request_id, amount) in [(&mut carl, "carl-2", 100), (&mut alice, "alice-2", 110)] {
        ws.send(json!({"type": "bid", "auction": 2, "request_id": request_id, "amount": amount}))
            .await;
        loop {
            let message = ws.next_json(WAIT).await;
            if message["type"] == "bid_result" {
                assert_eq!(message["ok"]["leading"], true, "{message}");
                break;
            }
        }
    }
    for (ws, expected) in [(&mut alice, "won"), (&mut carl, "lost")] {
        let mut closed = None;
        let notice = loop {
            let message = ws.next_json(WAIT).await;
            if message["auction"] != 2 {
                continue;
            }
            if message["type"] == "event" && message["event"]["kind"] == "auction_closed" {
                closed = Some(message["event"].clone());
            }
            if message["type"] == "notice" && message["kind"] != "outbid" {
                break message;
            }
        };
        assert_eq!(notice["kind"], expected, "{notice}");
        let closed = closed.expect("the close event comes before its notice");
        assert_eq!(closed["outcome"], "sold");
        assert_eq!(closed["winner"], 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_does_not_read_is_conflated_while_a_fast_one_is_unaffected() {
    // Small kernel buffers: the gateway feels a client that does not read after a few KiB.
    let mut setup = Setup {
        send_buffer: Some(4096),
        ..Setup::default()
    };
    setup.config.limits.ws_send_queue = 8;
    let test = Harness::start(setup).await;
    test.create_auction(AUCTION, Duration::from_secs(600)).await;

    let mut slow = test.open_with(&[], Some(4096)).await.expect("upgrade");
    slow.send(json!({"type": "subscribe", "auction": AUCTION}))
        .await;
    let mut slow_seen = Seen::default();
    slow_seen.take(&slow.next_json(WAIT).await);

    let mut fast = test.open_with(&[], None).await.expect("upgrade");
    fast.send(json!({"type": "subscribe", "auction": AUCTION}))
        .await;
    // The fast client reads all along, until it reaches the last seq (known at the end).
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let fast_target = Arc::clone(&target);
    let fast_reader = tokio::spawn(async move {
        let mut seen = Seen::default();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.at != Some(fast_target.load(Ordering::Relaxed)) {
            assert!(
                Instant::now() < deadline,
                "the fast client stuck at {:?}",
                seen.at
            );
            match fast.next_within(Duration::from_millis(500)).await {
                Some(Got::Json(message)) => seen.take(&message),
                None => {}
                Some(Got::Closed(frame)) => panic!("the fast client was closed: {frame:?}"),
            }
        }
        seen
    });

    // Hundreds of events while the slow client reads nothing.
    for round in 0..150u64 {
        let bidder = 20 + round % 2;
        assert!(
            test.bid(AUCTION, bidder, 100 + 10 * round, &format!("b-{round}"))
                .await
        );
    }
    let last = test.seq(AUCTION).await;
    target.store(last, Ordering::Relaxed);
    let fast_seen = fast_reader.await.expect("fast reader");
    assert_eq!(
        fast_seen.snapshots.len(),
        1,
        "the fast client got only its first snapshot: {:?}",
        fast_seen.snapshots
    );
    assert_eq!(
        fast_seen.events.len() as u64,
        last - fast_seen.snapshots[0].0
    );

    // Now the slow client reads: a conflated snapshot replaced its backlog, and it still
    // reaches the last seq with no silent gap (`Seen` panics on one).
    let deadline = Instant::now() + WAIT;
    while slow_seen.at != Some(last) {
        assert!(
            Instant::now() < deadline,
            "slow client stuck at {:?}",
            slow_seen.at
        );
        let message = slow.next_json(WAIT).await;
        slow_seen.take(&message);
    }
    assert!(
        slow_seen
            .snapshots
            .iter()
            .any(|(_, reason)| reason == "conflated"),
        "{:?}",
        slow_seen.snapshots
    );
    assert!(
        slow_seen.events.len() < fast_seen.events.len(),
        "the slow client skipped its backlog"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_floods_requests_without_reading_is_closed_as_too_slow() {
    // The session writes the socket itself: when the client stops reading, the frames the
    // session makes (here pongs) wait in its bounded queue, and past the bound the client is
    // closed with 4008 instead of growing the gateway's memory.
    let mut setup = Setup {
        send_buffer: Some(4096),
        ..Setup::default()
    };
    setup.config.limits.ws_send_queue = 8;
    let pending_max = 2 * 8 + setup.config.limits.ws_subscriptions_max + 64;
    let test = Harness::start(setup).await;
    let mut ws = test.open_with(&[], Some(4096)).await.expect("upgrade");
    // Far more pongs than the kernel buffers, the socket's write buffer, one turn and the
    // bounded queue hold together.
    let pings = 20_000;
    for index in 0..pings {
        let ping = format!(r#"{{"type":"ping","nonce":"n-{index}"}}"#);
        if ws.send_text(ping).await.is_err() {
            break; // the gateway has closed: fine, it is what this test expects
        }
    }
    let (mut pongs, mut closed) = (0, None);
    while closed.is_none() {
        match ws.next_within(WAIT).await {
            Some(Got::Json(message)) if message["type"] == "pong" => pongs += 1,
            Some(Got::Json(_)) => {}
            Some(Got::Closed(frame)) => closed = Some(frame),
            None => panic!("not closed within {WAIT:?}, after {pongs} pongs"),
        }
    }
    assert!(
        pongs < pings,
        "{pongs} pongs of {pings}: the client was not cut off (queue bound {pending_max})"
    );
    // The close frame comes when the client reads within the grace; either way the socket
    // is closed and the gateway counted why.
    if let Some(Some((code, reason))) = closed {
        assert_eq!((code, reason.as_str()), (4008, "client too slow"));
    }
}
