//! Two `martelo gateway` processes in front of one 3-node cluster, as a deployment runs
//! them: a token issued by one gateway is accepted by the other (one key file), and a bid
//! placed through either gateway reaches a WebSocket watcher on the other, every event once
//! and in seq order.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use martelo_tests::{GatewayProcess, must_start_gateway, must_write_key_file, spawn_cluster};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "two gateways share a key ring";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn call(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    path: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = http.post(format!("{}{path}", gateway.base)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let answer = request.send().await.expect("the gateway answers");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn must_sign_up_and_in(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    username: &str,
    roles: &[&str],
) -> (u64, String) {
    let body = json!({"username": username, "display_name": username,
                      "password": PASSWORD, "roles": roles});
    let (status, answer) = call(http, gateway, "/v1/accounts", None, None, body).await;
    assert_eq!(status, 201, "sign-up of {username}: {answer}");
    let id = answer["id"].as_u64().expect("user id");
    let body = json!({"username": username, "password": PASSWORD});
    let (status, answer) = call(http, gateway, "/v1/sessions", None, None, body).await;
    assert!(status == 200 || status == 201, "sign-in: {status} {answer}");
    let token = answer["access_token"].as_str().expect("an access token");
    (id, token.to_owned())
}

async fn must_open(gateway: &GatewayProcess, token: Option<&str>) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("ws://{}/v1/ws", gateway.address)
        .into_client_request()
        .expect("request");
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("header");
        request.headers_mut().insert("authorization", value);
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the WebSocket opens");
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("sent");
}

/// The next JSON message that is not a `time` tick.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("JSON");
            if value["type"] != "time" {
                return value;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_through_either_gateway_reaches_a_watcher_on_the_other() {
    let dir = tempfile::Builder::new()
        .prefix("martelo-two-gateways-")
        .tempdir()
        .expect("temp dir");
    println!("data and logs: {}", dir.path().display());
    let cluster = spawn_cluster(dir.path(), 3, 2).await;
    let seeds = cluster.api_addresses();
    let keys = must_write_key_file(dir.path()).await;
    let mut one = must_start_gateway(dir.path(), "one", &seeds, &keys).await;
    let mut two = must_start_gateway(dir.path(), "two", &seeds, &keys).await;
    let http = reqwest::Client::new();

    // Accounts and the auction through gateway one.
    let (_, seller) = must_sign_up_and_in(&http, &one, "sam", &["seller"]).await;
    let (bea, bidder) = must_sign_up_and_in(&http, &one, "bea", &["bidder"]).await;
    let (bob, other_bidder) = must_sign_up_and_in(&http, &two, "bob", &["bidder"]).await;
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as u64;
    let listing = json!({"title": "Brass lamp", "description": "Works.", "currency": "EUR",
        "starting_price": 100, "increment": {"fixed": 10},
        "start_us": now_us, "end_us": now_us + 3_600_000_000u64});
    let (status, created) = call(
        &http,
        &one,
        "/v1/auctions",
        Some(&seller),
        Some("lamp"),
        listing,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let auction = created["auction"].as_u64().expect("auction id");

    // An anonymous watcher on gateway two.
    let mut watcher = must_open(&two, None).await;
    send(
        &mut watcher,
        json!({"type": "subscribe", "auction": auction}),
    )
    .await;
    let snapshot = next(&mut watcher).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    let mut seen = snapshot["seq"].as_u64().expect("seq");

    // A bid over WebSocket on gateway two, with the token gateway one issued.
    let mut bidding = must_open(&two, Some(&bidder)).await;
    send(
        &mut bidding,
        json!({"type": "bid", "auction": auction, "request_id": "ws-1",
                              "amount": 150}),
    )
    .await;
    let result = loop {
        let message = next(&mut bidding).await;
        if message["type"] == "bid_result" {
            break message;
        }
    };
    assert_eq!(result["request_id"], "ws-1", "{result}");
    assert!(result["ok"].is_object(), "gateway two refused: {result}");
    let ws_seq = result["ok"]["seq"].as_u64().expect("seq");

    // Another bidder's bid over HTTP on gateway one, with the token gateway two issued.
    let path = format!("/v1/auctions/{auction}/bids");
    let (status, placed) = call(
        &http,
        &one,
        &path,
        Some(&other_bidder),
        Some("http-1"),
        json!({"amount": 300}),
    )
    .await;
    assert_eq!(status, 201, "{placed}");
    let http_seq = placed["seq"].as_u64().expect("seq");
    assert!(http_seq > ws_seq);

    // The watcher on gateway two sees every event up to the HTTP bid, once, in seq order.
    let mut bidders = Vec::new();
    while seen < http_seq {
        let event = next(&mut watcher).await;
        assert_eq!(event["type"], "event", "{event}");
        let seq = event["seq"].as_u64().expect("seq");
        assert_eq!(seq, seen + 1, "a gap or a duplicate: {event}");
        seen = seq;
        if event["event"]["kind"] == "bid_placed" {
            bidders.push(event["event"]["bidder"].as_u64().expect("bidder"));
        }
    }
    assert_eq!(bidders, [bea, bob], "both bids, in order");

    // Both gateways agree on the state.
    for gateway in [&one, &two] {
        let view: Value = http
            .get(format!("{}/v1/auctions/{auction}", gateway.base))
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON");
        assert_eq!(view["seq"].as_u64(), Some(http_seq), "{view}");
    }
    assert!(one.is_running() && two.is_running());
    for gateway in [&one, &two] {
        let log = std::fs::read_to_string(&gateway.log).expect("log");
        assert!(!log.is_empty(), "the gateway logs JSON lines");
        assert!(!log.contains(PASSWORD), "a password reached a gateway log");
        for token in [&seller, &bidder, &other_bidder] {
            assert!(
                !log.contains(token.as_str()),
                "a token reached a gateway log"
            );
        }
    }
}
