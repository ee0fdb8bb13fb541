//! The HTTP API's refusals against a real 3-node cluster, each with its status and code:
//! bad, expired, `alg: none`, wrong-key and wrong-audience tokens; an oversized body;
//! malformed JSON; negative, fractional and overflowing amounts; an unknown auction; a
//! missing `Idempotency-Key`; and the rate limits (per IP, per user, failed sign-ins) on
//! gateways configured with tiny limits. The gateways share one key file, so a token from
//! one is accepted by the others.

#[path = "support/http_harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;

use base64::Engine as _;
use harness::{Cluster, Gateway, test_config};
use martelo_engine::{Role, UserId};
use martelo_gateway::GatewayConfig;
use martelo_gateway::auth::keys::KeyRing;
use martelo_gateway::auth::tokens;
use reqwest::Method;
use serde_json::json;

const KEY: &str = "bWFydGVsby10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVm";
const OTHER_KEY: &str = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMTIz";

fn key_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("keys.toml");
    std::fs::write(&path, format!("current = \"k1\"\n[keys]\nk1 = \"{KEY}\"\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn config_with_keys(dir: &std::path::Path) -> GatewayConfig {
    let mut config = test_config();
    config.tokens.key_file = Some(key_file(dir));
    config.limits.body_bytes_max = 1024;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_each_have_their_status_and_code() {
    let cluster = Cluster::start().await;
    let keys_dir = tempfile::tempdir().expect("dir");
    let gw = Gateway::start(cluster.seeds(), config_with_keys(keys_dir.path())).await;
    gw.register("seller", "seller-password", &["seller"]).await;
    let bidder = gw.register("bidder", "bidder-password", &["bidder"]).await;
    let seller_token = gw.token("seller", "seller-password").await;
    let token = gw.token("bidder", "bidder-password").await;
    let auction = gw.create_auction(&seller_token, "a-1", json!({})).await;
    let bids = format!("/v1/auctions/{auction}/bids");

    // Bodies: too large, malformed, wrong fields, wrong content type.
    let big = format!("{{\"amount\": 100, \"pad\": \"{}\"}}", "x".repeat(2000));
    let answer = gw.raw(&bids, &token, "big", big.into_bytes()).await;
    answer.assert_problem(413, "payload_too_large");
    let answer = gw
        .raw(&bids, &token, "bad", b"{\"amount\": ".to_vec())
        .await;
    answer.assert_problem(400, "malformed_json");
    let answer = gw
        .raw(
            &bids,
            &token,
            "who",
            br#"{"amount": 100, "bidder": 9}"#.to_vec(),
        )
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "malformed_json"),
        "no bidder field"
    );
    let answer = gw
        .http
        .post(format!("{}{bids}", gw.base))
        .bearer_auth(&token)
        .header("idempotency-key", "text")
        .body(r#"{"amount": 100}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status().as_u16(), 415);

    // Amounts: whole minor units from 1 to 10^15.
    for (key, amount) in [
        ("neg", json!(-5)),
        ("frac", json!(1.5)),
        ("zero", json!(0)),
        ("big", json!(1_000_000_000_000_001u64)),
    ] {
        let answer = gw.bid(&token, auction, key, amount).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "invalid_amount"),
            "{key}: {answer:?}"
        );
    }
    let answer = gw.bid(&token, auction, "huge", json!(1e30)).await;
    assert_eq!(answer.code(), "invalid_amount");

    // Unknown auction, missing key.
    let answer = gw.bid(&token, 987_654_321, "ghost", json!(100)).await;
    answer.assert_problem(404, "auction_not_found");
    let answer = gw
        .call(Method::GET, "/v1/auctions/lamp", None, &[], None)
        .await;
    answer.assert_problem(400, "invalid_argument");
    let answer = gw
        .call(Method::GET, "/v1/auctions/987654321", None, &[], None)
        .await;
    answer.assert_problem(404, "auction_not_found");
    let answer = gw
        .call(
            Method::POST,
            &bids,
            Some(&token),
            &[],
            Some(json!({"amount": 100})),
        )
        .await;
    answer.assert_problem(400, "idempotency_key_required");
    let ok = gw.bid(&token, auction, "fine", json!(100)).await;
    assert_eq!(ok.status, 201, "{ok:?}");

    // Tokens.
    let ring =
        KeyRing::parse(&format!("current = \"k1\"\n[keys]\nk1 = \"{KEY}\"\n")).expect("ring");
    let config = GatewayConfig::default().tokens;
    let roles: BTreeSet<Role> = [Role::Bidder].into_iter().collect();
    let sign = |ring: &KeyRing, config: &martelo_gateway::config::TokenConfig, now: u64| {
        tokens::issue(ring, config, UserId(bidder), &roles, None, now)
            .expect("signed")
            .token
    };
    let expired = sign(&ring, &config, tokens::unix_now() - 3600);
    let wrong_ring =
        KeyRing::parse(&format!("current = \"k1\"\n[keys]\nk1 = \"{OTHER_KEY}\"\n")).expect("ring");
    let wrong_key = sign(&wrong_ring, &config, tokens::unix_now());
    let mut other_aud = config.clone();
    other_aud.audience = "another-service".into();
    let wrong_aud = sign(&ring, &other_aud, tokens::unix_now());
    let valid = sign(&ring, &config, tokens::unix_now());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = valid.split('.').nth(1).expect("payload");
    let alg_none = format!(
        "{}.{payload}.",
        b64.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#)
    );
    let me = |token: String| {
        let gw = &gw;
        async move {
            gw.call(Method::GET, "/v1/me", Some(&token), &[], None)
                .await
        }
    };
    assert_eq!(
        me(valid.clone()).await.status,
        200,
        "a token signed with the shared key"
    );
    for (name, token, code) in [
        ("expired", expired, "token_expired"),
        ("wrong key", wrong_key, "unauthorized"),
        ("wrong aud", wrong_aud, "unauthorized"),
        ("alg none", alg_none, "unauthorized"),
        ("garbage", "garbage".to_owned(), "unauthorized"),
    ] {
        let answer = me(token).await;
        assert_eq!((answer.status, answer.code()), (401, code), "{name}");
    }
    let answer = gw
        .call(
            Method::GET,
            "/v1/me",
            None,
            &[("authorization", "Basic YTpi")],
            None,
        )
        .await;
    answer.assert_problem(401, "unauthorized");
    let answer = gw.call(Method::GET, "/v1/me", None, &[], None).await;
    answer.assert_problem(401, "unauthorized");

    // Per-IP limit: a gateway allowing a burst of 5.
    let mut tight = config_with_keys(keys_dir.path());
    tight.rate.per_ip_per_sec = 1;
    tight.rate.per_ip_burst = 5;
    let limited = Gateway::start(cluster.seeds(), tight).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let answer = limited.call(Method::GET, "/v1/time", None, &[], None).await;
        statuses.push(answer.status);
        if answer.status == 429 {
            assert_eq!(answer.code(), "rate_limited");
            retry_after = answer.headers.get("retry-after").cloned();
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert!(retry_after.is_some(), "429 carries Retry-After");
    assert_eq!(
        limited
            .call(Method::GET, "/healthz", None, &[], None)
            .await
            .status,
        200
    );

    // Per-user and failed sign-in limits.
    let mut strict = config_with_keys(keys_dir.path());
    strict.rate.per_user_per_sec = 1;
    strict.rate.per_user_burst = 3;
    strict.rate.login_failures_burst = 2;
    let guarded = Gateway::start(cluster.seeds(), strict).await;
    let statuses: Vec<u16> = futures::future::join_all(
        (0..5).map(|_| guarded.call(Method::GET, "/v1/me", Some(&token), &[], None)),
    )
    .await
    .iter()
    .map(|answer| answer.status)
    .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    for _ in 0..3 {
        let answer = guarded.login("bidder", "wrong-password").await;
        assert!(
            matches!(answer.code(), "bad_credentials" | "rate_limited"),
            "{answer:?}"
        );
    }
    let right = guarded.login("bidder", "bidder-password").await;
    assert_eq!(
        (right.status, right.code()),
        (429, "rate_limited"),
        "even the right password"
    );
    let ghost = guarded.login("nobody-here", "whatever-pw").await;
    assert_eq!(
        (ghost.status, ghost.code()),
        (429, "rate_limited"),
        "the IP is blocked too"
    );
    assert!(right.headers.get("retry-after").is_some());
    assert_eq!(
        gw.login("bidder", "bidder-password").await.status,
        201,
        "per gateway"
    );
}
