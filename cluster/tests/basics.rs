//! A 3-node cluster of real `martelo node` processes: proposals, linearizable reads, the
//! redirect from a follower, bad requests, and the CLI's status.

mod support;

use std::time::Duration;

use martelo_client::ReadConsistency;
use martelo_engine::codec::wire::{self, WireVersion};
use martelo_engine::{AuctionId, Reply};
use martelo_proto::channel::{ChannelSettings, endpoint};
use martelo_proto::{
    ErrorCode, ProposeRequest, propose_request, propose_response, services::client_api_client,
};
use support::*;

fn proposal(group: u64, auction: u64, request_id: &str, bytes: Vec<u8>) -> ProposeRequest {
    ProposeRequest {
        group_id: group,
        request_id: request_id.into(),
        auction_id: auction,
        traceparent: String::new(),
        codec_version: WireVersion::CURRENT.codec_version(),
        attempt: 1,
        command: Some(propose_request::Command::EncodedRequest(bytes.into())),
    }
}

async fn raw_client(
    address: &str,
) -> martelo_proto::client_api_client::ClientApiClient<tonic::transport::Channel> {
    let channel = endpoint(address, &ChannelSettings::CLIENT)
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    client_api_client(channel)
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_bids_are_read_linearizably_and_retries_replay() {
    let test = TestCluster::start(3, 2).await;
    let client = &test.client;
    create_auction(client, 1, Duration::from_secs(600)).await;
    let mut amount = 100;
    for round in 0..20u64 {
        let bidder = 10 + round % 3;
        let proposed = bid(client, 1, bidder, amount, &format!("bid-{round}"))
            .await
            .expect("bid decided");
        let price = accepted_price(&proposed.reply)
            .unwrap_or_else(|| panic!("round {round}: {:?}", proposed.reply));
        // I8: a linearizable read that starts after the acknowledgement sees the bid.
        let view = read(client, 1).await;
        assert_eq!(view.price, Some(price), "round {round}");
        assert_eq!(view.leading_bidder, Some(martelo_engine::UserId(bidder)));
        amount = price.0 + 10;
    }
    // I2: a retry with the same request id gets the first outcome, not a second bid.
    let first = bid(client, 1, 10, 100_000, "once").await.expect("decided");
    let again = bid(client, 1, 10, 100_000, "once").await.expect("decided");
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.reply, again.reply);
    assert_eq!(first.log_index, again.log_index.min(first.log_index));
    let view = read(client, 1).await;
    assert_eq!(
        view.bids.len(),
        21,
        "20 bids and one retried bid, applied once"
    );
    // A rejection is an answer with a stable code, not an error. A first attempt of a bid
    // too low to win is decided from a lease read, without a log entry...
    let low = bid(client, 1, 11, 1, "too-low").await.expect("decided");
    assert_eq!(
        low.reply,
        Reply::Rejected(martelo_engine::RejectCode::BidTooLow)
    );
    assert!(low.decided_without_log && low.log_term == 0, "{low:?}");
    let view = read(client, 1).await;
    assert_eq!(view.bids.len(), 21, "nothing was recorded");
    // ...but a retry (attempt 2) goes through the log. The engine (rules 2) records no
    // rejection either, so a later first attempt is decided early again, and nothing replays.
    let group = client.group_of(AuctionId(1));
    let leader = client.leader_of(group).expect("leader known");
    let encoded = wire::encode(
        "request",
        &request(
            martelo_engine::UserId(11),
            martelo_engine::Role::Bidder,
            "too-low",
            martelo_engine::Action::PlaceBid {
                auction_id: AuctionId(1),
                amount: martelo_engine::Amount(1),
                max: None,
            },
        ),
        WireVersion::CURRENT,
    )
    .expect("encodes");
    let mut raw = raw_client(&leader.address).await;
    for (attempt, through_log) in [(2, true), (1, false)] {
        let mut message = proposal(group.0, 1, "too-low", encoded.clone());
        message.attempt = attempt;
        let answer = raw.propose(message).await.expect("answers").into_inner();
        let Some(propose_response::Result::Applied(applied)) = answer.result else {
            panic!("attempt {attempt}: {answer:?}");
        };
        assert_eq!(
            (applied.decided_without_log, applied.log_term > 0),
            (!through_log, through_log),
            "attempt {attempt}"
        );
        assert_eq!(
            (applied.reject_code.as_str(), applied.replayed),
            ("bid_too_low", false)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_names_the_leader_and_the_client_follows_it() {
    let test = TestCluster::start(3, 2).await;
    let client = &test.client;
    create_auction(client, 7, Duration::from_secs(600)).await;
    let group = client.group_of(AuctionId(7));
    let leader = client.leader_of(group).expect("leader known after a write");
    let follower = test
        .cluster
        .nodes()
        .into_iter()
        .find(|node| node.id != leader.node_id)
        .expect("a follower");
    let request = request(
        martelo_engine::UserId(20),
        martelo_engine::Role::Bidder,
        "via-follower",
        martelo_engine::Action::PlaceBid {
            auction_id: AuctionId(7),
            amount: martelo_engine::Amount(500),
            max: None,
        },
    );
    let bytes = wire::encode("request", &request, WireVersion::CURRENT).expect("encode");
    let answer = raw_client(&follower.address)
        .await
        .propose(proposal(group.0, 7, "via-follower", bytes))
        .await
        .expect("rpc")
        .into_inner();
    let Some(propose_response::Result::Error(error)) = answer.result else {
        panic!("a follower must not apply: {answer:?}");
    };
    assert_eq!(error.code(), ErrorCode::NotLeader);
    let hint = error.leader_hint().expect("hint");
    assert_eq!(hint.leader_id, Some(leader.node_id.get()));
    let leader_address = test.cluster.node(leader.node_id).expect("leader").address;
    assert_eq!(hint.leader_address, leader_address);
    // A client that only knows the follower follows the hint and the bid is applied once.
    let via_follower = martelo_client::Client::connect(
        std::slice::from_ref(&follower.address),
        martelo_client::ClientOptions::default(),
    )
    .await
    .expect("connect");
    let proposed = via_follower.propose(request).await.expect("decided");
    let price = accepted_price(&proposed.reply);
    assert!(price.is_some(), "{:?}", proposed.reply);
    assert_eq!(proposed.node, leader.node_id);
    // Reads on a follower with LOCAL consistency are allowed and eventually see it.
    let local = eventually(Duration::from_secs(5), "the follower to apply", || {
        let via_follower = via_follower.clone();
        async move {
            let read = via_follower
                .read_auction(AuctionId(7), ReadConsistency::Local)
                .await
                .ok()?;
            (read.view.price.is_some()).then_some(read)
        }
    })
    .await;
    assert_eq!(local.view.price, price);
    assert_eq!(local.view.bids.len(), 1, "the bid was applied once");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_stable_codes_and_the_node_keeps_serving() {
    let test = TestCluster::start(3, 2).await;
    let client = &test.client;
    create_auction(client, 3, Duration::from_secs(600)).await;
    let group = client.group_of(AuctionId(3)).0;
    let leader = client
        .leader_of(client.group_of(AuctionId(3)))
        .expect("leader");
    let address = test.cluster.node(leader.node_id).expect("node").address;
    let mut raw = raw_client(&address).await;
    let code = |answer: martelo_proto::ProposeResponse| match answer.result {
        Some(propose_response::Result::Error(error)) => error.code(),
        other => panic!("expected an error, got {other:?}"),
    };
    let good = request(
        martelo_engine::UserId(30),
        martelo_engine::Role::Bidder,
        "r-1",
        martelo_engine::Action::PlaceBid {
            auction_id: AuctionId(3),
            amount: martelo_engine::Amount(100),
            max: None,
        },
    );
    let good_bytes = wire::encode("request", &good, WireVersion::CURRENT).expect("encode");
    let unknown_group = raw
        .propose(proposal(999, 3, "r-1", good_bytes.clone()))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(code(unknown_group), ErrorCode::UnknownGroup);
    let malformed = raw
        .propose(proposal(group, 3, "r-1", vec![0xde, 0xad, 0xbe, 0xef]))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(code(malformed), ErrorCode::InvalidArgument);
    let oversized = raw
        .propose(proposal(group, 3, "r-1", vec![7; 66 * 1024]))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(code(oversized), ErrorCode::PayloadTooLarge);
    // Beyond the transport limit the gRPC layer refuses the message before decoding it.
    let mut unlimited = martelo_proto::client_api_client::ClientApiClient::new(
        endpoint(&address, &ChannelSettings::CLIENT)
            .expect("endpoint")
            .connect()
            .await
            .expect("connect"),
    );
    let huge = unlimited
        .propose(proposal(group, 3, "r-1", vec![7; 1 << 20]))
        .await
        .expect_err("refused by the transport");
    println!("a 1 MiB proposal: {huge:?}");
    let mismatched = raw
        .propose(proposal(group, 3, "another-id", good_bytes.clone()))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(code(mismatched), ErrorCode::InvalidArgument);
    // The node still serves, and none of the bad requests left a trace.
    let answer = raw
        .propose(proposal(group, 3, "r-1", good_bytes))
        .await
        .expect("rpc")
        .into_inner();
    assert!(
        matches!(answer.result, Some(propose_response::Result::Applied(ref applied)) if applied.accepted),
        "{answer:?}"
    );
    assert_eq!(read(client, 3).await.bids.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_reports_a_healthy_cluster() {
    let test = TestCluster::start(3, 2).await;
    let addresses = test.cluster.api_addresses().join(",");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_martelo"))
        .args(["status", "--json", "--addr", &addresses])
        .output()
        .await
        .expect("run martelo status");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        status["health"]["healthy"],
        serde_json::Value::Bool(true),
        "{status:#}"
    );
    let table = tokio::process::Command::new(env!("CARGO_BIN_EXE_martelo"))
        .args(["status", "--addr", &addresses])
        .output()
        .await
        .expect("run martelo status");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success() && text.contains("leader"), "{text}");
    // An unreachable address is an error that says so.
    let down = tokio::process::Command::new(env!("CARGO_BIN_EXE_martelo"))
        .args(["status", "--addr", "127.0.0.1:1"])
        .output()
        .await
        .expect("run martelo status");
    assert!(!down.status.success());
    let message =
        String::from_utf8_lossy(&down.stderr).to_string() + &String::from_utf8_lossy(&down.stdout);
    assert!(message.contains("127.0.0.1:1"), "{message}");
}

/// Trace context crosses processes: the client's `traceparent` travels in the log entry and
/// every replica's apply logs it.
#[tokio::test(flavor = "multi_thread")]
async fn the_callers_trace_reaches_every_replicas_apply() {
    let test = TestCluster::start_with(3, 1, |config| {
        config.env = vec![("RUST_LOG".into(), "info,martelo_raft_store=debug".into())];
    })
    .await;
    let client = &test.client;
    create_auction(client, 5, Duration::from_secs(600)).await;
    let traceparent = martelo_proto::Traceparent::try_from(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    .expect("valid traceparent");
    let request = request(
        martelo_engine::UserId(10),
        martelo_engine::Role::Bidder,
        "traced-bid",
        martelo_engine::Action::PlaceBid {
            auction_id: AuctionId(5),
            amount: martelo_engine::Amount(100),
            max: None,
        },
    );
    let proposed = client
        .propose_with(client.group_of(AuctionId(5)), request, Some(&traceparent))
        .await
        .expect("applied");
    assert!(proposed.reply.is_accepted(), "{:?}", proposed.reply);
    for node in test.cluster.nodes() {
        eventually(
            Duration::from_secs(10),
            "the replica logs the trace",
            || {
                let path = node.log_path.clone();
                let wanted = traceparent.as_str().to_owned();
                async move {
                    let log = std::fs::read_to_string(&path).unwrap_or_default();
                    log.lines()
                        .any(|line| {
                            line.contains("applied a traced command") && line.contains(&wanted)
                        })
                        .then_some(())
                }
            },
        )
        .await;
    }
}
