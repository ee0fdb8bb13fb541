//! `/v1/ws` refusals, each with a clear answer: a bad `Origin`, a bad token, too many
//! connections (before the upgrade, as problem+json); an oversized message (close 1009),
//! an expired token (close 4003), malformed JSON and out-of-range amounts (`error`
//! messages, the socket lives on).

#[path = "support/ws_harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Got, Harness, Setup};
use martelo_engine::{Role, UserId};
use martelo_gateway::auth::tokens;
use serde_json::json;
use tokio_tungstenite::tungstenite;

const WAIT: Duration = Duration::from_secs(10);

/// The HTTP status and problem code of a refused upgrade.
fn refusal(result: Result<harness::Ws, tungstenite::Error>) -> (u16, String) {
    match result {
        Err(tungstenite::Error::Http(response)) => {
            let body: serde_json::Value = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice(body).ok())
                .unwrap_or_default();
            (
                response.status().as_u16(),
                body["code"].as_str().unwrap_or_default().to_owned(),
            )
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the upgrade succeeded"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_origins_tokens_sizes_and_messages_are_refused_clearly() {
    let mut setup = Setup {
        nodes: 1,
        shards: 1,
        ..Setup::default()
    };
    setup.config.limits.ws_connections_max = 4;
    let test = Harness::start(setup).await;

    // Origin: another site is refused; the allowlist and the gateway's own origin pass.
    assert_eq!(
        refusal(
            test.open_with(&[("origin", "http://evil.example")], None)
                .await
        ),
        (403, "origin_not_allowed".to_owned())
    );
    let own = format!("http://{}", test.addr);
    let mut allowed = test
        .open_with(&[("origin", "http://app.example")], None)
        .await
        .expect("an allowed origin");
    let mut same = test
        .open_with(&[("origin", &own)], None)
        .await
        .expect("the gateway's own origin");

    // A token that does not verify is refused before the upgrade.
    assert_eq!(
        refusal(
            test.open_with(&[("authorization", "Bearer not.a.token")], None)
                .await
        ),
        (401, "unauthorized".to_owned())
    );

    // Malformed JSON and an amount out of range: an error message, the socket lives on.
    allowed
        .send_text("{\"type\":\"subscribe\"".to_owned())
        .await
        .expect("send");
    let error = allowed.next_json(WAIT).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "malformed_json", "{error}");
    allowed
        .send(json!({"type": "bid", "auction": 1, "request_id": "x", "amount": -5}))
        .await;
    let error = allowed.next_json(WAIT).await;
    assert_eq!(error["code"], "malformed_json", "{error}");
    allowed.send(json!({"type": "ping"})).await;
    assert_eq!(allowed.next_json(WAIT).await["type"], "pong");

    // A socket opened with a token that expires in 2 s is closed with 4003 then.
    let ttl = test.state.config.tokens.access_ttl_secs;
    let nearly_expired =
        test.token_issued_at(UserId(6), Role::Bidder, tokens::unix_now() + 2 - ttl);
    let bearer = format!("Bearer {nearly_expired}");
    let mut expiring = test
        .open_with(&[("authorization", &bearer)], None)
        .await
        .expect("a token that is still valid");
    let opened = Instant::now();
    loop {
        match expiring.next_within(Duration::from_secs(5)).await {
            Some(Got::Json(_)) => continue,
            Some(Got::Closed(frame)) => {
                assert_eq!(frame, Some((4003, "access token expired".to_owned())));
                break;
            }
            None => panic!("not closed when its token expired"),
        }
    }
    assert!(
        opened.elapsed() <= Duration::from_secs(4),
        "{:?}",
        opened.elapsed()
    );
    drop(expiring);
    // Its place in the connection limit is given back once its task ends.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The connection limit (4): two open, two more, the fifth is busy.
    let bidder = test.open_as(UserId(5)).await;
    let _fourth = test.open_with(&[], None).await.expect("the fourth");
    assert_eq!(
        refusal(test.open_with(&[], None).await),
        (503, "busy".to_owned())
    );
    drop(bidder);

    // A message over the limit (4 KiB) closes the socket with 1009.
    let big = json!({"type": "ping", "nonce": "x".repeat(8 * 1024)}).to_string();
    let _ = same.send_text(big).await;
    loop {
        match same.next_within(WAIT).await {
            // The clock ticks until the close.
            Some(Got::Json(message)) if message["type"] == "time" => continue,
            Some(Got::Closed(Some((code, reason)))) => {
                assert_eq!(code, 1009, "{reason}");
                assert!(reason.contains("4096"), "{reason}");
                break;
            }
            other => panic!("expected close 1009, got {other:?}"),
        }
    }
}
