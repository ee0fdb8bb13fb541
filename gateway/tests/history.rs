//! The history and audit routes end to end: a real 3-node cluster whose nodes run the sink
//! into a fresh Postgres database (`--postgres`), a gateway reading that database, and one
//! without a database. Users sign up, bid and buy through the gateway; once the sink has the
//! rows, every route answers them: bid history (public fields, paged), closed auctions
//! (filtered), the caller's bids and wins, the admin audit search (JSON and CSV); and the
//! refusals: 401 without a token, 403 audit for a non-admin, 400 for a bad cursor, 503
//! `history_unavailable` without Postgres.

#[path = "support/http_harness.rs"]
mod harness;

use std::time::Duration;

use harness::{Answer, Cluster, Gateway, test_config};
use martelo_sink::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD_SELLER: &str = "seller-password-1";
const PASSWORD_ANA: &str = "ana-password-123";
const PASSWORD_BEN: &str = "ben-password-456";
const PASSWORD_ADMIN: &str = "admin-password-789";
/// How long the sink may take to copy a committed event into Postgres.
const SINK_TIMEOUT: Duration = Duration::from_secs(30);

async fn get(gw: &Gateway, path: &str, token: Option<&str>) -> Answer {
    gw.call(Method::GET, path, token, &[], None).await
}

/// Polls `path` until `done` holds for its JSON answer, or fails after [`SINK_TIMEOUT`].
async fn must_see(gw: &Gateway, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + SINK_TIMEOUT;
    loop {
        let answer = get(gw, path, Some(token)).await;
        if answer.status == 200 && done(&answer.body) {
            return answer.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} did not show the sink's rows within {SINK_TIMEOUT:?}: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn items(body: &Value) -> &Vec<Value> {
    body["items"].as_array().expect("items")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_routes_answer_from_the_sinks_postgres() {
    let db = TestDb::create().await;
    let (cluster, dir) = harness::common::start_cluster(
        "martelo-history-test-",
        3,
        2,
        vec!["--postgres".to_owned(), db.url().to_owned()],
    )
    .await;
    let cluster = Cluster { cluster, dir };
    let mut config = test_config();
    config.set_postgres(db.url()).expect("postgres url");
    let gw = Gateway::start(cluster.seeds(), config).await;
    let without = Gateway::start(cluster.seeds(), test_config()).await;

    cluster.bootstrap_admin("root", PASSWORD_ADMIN).await;
    let seller = gw.register("sally", PASSWORD_SELLER, &["seller"]).await;
    let ana = gw.register("ana", PASSWORD_ANA, &["bidder"]).await;
    let ben = gw.register("ben", PASSWORD_BEN, &["bidder"]).await;
    let seller_token = gw.token("sally", PASSWORD_SELLER).await;
    let ana_token = gw.token("ana", PASSWORD_ANA).await;
    let ben_token = gw.token("ben", PASSWORD_BEN).await;
    let admin_token = gw.token("root", PASSWORD_ADMIN).await;

    // Auction 1: two bids, stays open. Auction 2: bought now by ben (sold).
    let lamp = gw.create_auction(&seller_token, "lamp-1", json!({})).await;
    let first = gw.bid(&ana_token, lamp, "ana-bid-1", json!(100)).await;
    assert_eq!(first.status, 201, "{first:?}");
    let second = gw.bid(&ben_token, lamp, "ben-bid-1", json!(150)).await;
    assert_eq!(second.status, 201, "{second:?}");
    let vase = gw
        .create_auction(&seller_token, "vase-1", json!({"buy_now_price": 500}))
        .await;
    let bought = gw
        .call(
            Method::POST,
            &format!("/v1/auctions/{vase}/buy"),
            Some(&ben_token),
            &[("idempotency-key", "buy-1")],
            None,
        )
        .await;
    assert_eq!(bought.status, 201, "{bought:?}");

    // The bid history, once the sink has both bids: public fields, in seq order.
    let history_path = format!("/v1/auctions/{lamp}/history");
    let history = must_see(&gw, &history_path, &ana_token, |body| {
        items(body).len() == 2
    })
    .await;
    let bids = items(&history);
    assert_eq!(
        (bids[0]["bidder_id"].as_u64(), bids[0]["amount"].as_u64()),
        (Some(ana), Some(100))
    );
    assert_eq!(bids[0]["bidder_name"], "ana");
    assert_eq!(
        (
            bids[1]["bidder_id"].as_u64(),
            bids[1]["price_after"].as_u64()
        ),
        (Some(ben), Some(150))
    );
    assert!(bids[0]["seq"].as_u64() < bids[1]["seq"].as_u64());
    assert!(
        bids.iter().all(|bid| bid.get("max").is_none()),
        "no proxy maximum in a public history: {history}"
    );
    assert!(history["next_cursor"].is_null());
    let page = get(&gw, &format!("{history_path}?limit=1"), Some(&ben_token)).await;
    let cursor = page.body["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let rest = get(
        &gw,
        &format!("{history_path}?limit=1&after_seq={cursor}"),
        Some(&ben_token),
    )
    .await;
    assert_eq!(items(&rest.body)[0], bids[1], "{rest:?}");

    // Closed auctions, filtered; the caller's bids and wins.
    let closed = must_see(&gw, "/v1/history/auctions", &ana_token, |body| {
        !items(body).is_empty()
    })
    .await;
    assert_eq!(items(&closed).len(), 1, "only the vase is closed: {closed}");
    assert_eq!(items(&closed)[0]["auction_id"].as_u64(), Some(vase));
    assert_eq!(items(&closed)[0]["result"], "sold");
    assert_eq!(items(&closed)[0]["winner_id"].as_u64(), Some(ben));
    assert_eq!(items(&closed)[0]["sale_kind"], "buy_now");
    let by_seller = get(
        &gw,
        &format!("/v1/history/auctions?seller={seller}&result=sold"),
        Some(&ana_token),
    )
    .await;
    assert_eq!(items(&by_seller.body).len(), 1, "{by_seller:?}");
    let unsold = get(&gw, "/v1/history/auctions?result=unsold", Some(&ana_token)).await;
    assert!(items(&unsold.body).is_empty(), "{unsold:?}");
    let bad_result = get(&gw, "/v1/history/auctions?result=won", Some(&ana_token)).await;
    bad_result.assert_problem(400, "invalid_argument");

    let ana_bids = get(&gw, "/v1/me/bids", Some(&ana_token)).await;
    assert_eq!(items(&ana_bids.body).len(), 1, "{ana_bids:?}");
    assert_eq!(items(&ana_bids.body)[0]["auction_id"].as_u64(), Some(lamp));
    assert_eq!(items(&ana_bids.body)[0]["leading_now"], false);
    let ben_bids = get(&gw, "/v1/me/bids", Some(&ben_token)).await;
    let ben_on_lamp: Vec<&Value> = items(&ben_bids.body)
        .iter()
        .filter(|bid| bid["auction_id"].as_u64() == Some(lamp))
        .collect();
    assert_eq!(ben_on_lamp.len(), 1, "{ben_bids:?}");
    assert_eq!(ben_on_lamp[0]["leading_now"], true, "{ben_bids:?}");
    let ben_wins = get(&gw, "/v1/me/wins", Some(&ben_token)).await;
    assert_eq!(items(&ben_wins.body).len(), 1, "{ben_wins:?}");
    assert_eq!(items(&ben_wins.body)[0]["price"].as_u64(), Some(500));
    let ana_wins = get(&gw, "/v1/me/wins", Some(&ana_token)).await;
    assert!(items(&ana_wins.body).is_empty());

    // The audit search: admins only, JSON and CSV.
    let audit_path = format!("/v1/audit?auction={lamp}");
    let audit = must_see(&gw, &audit_path, &admin_token, |body| {
        items(body)
            .iter()
            .filter(|row| row["kind"] == "bid_accepted")
            .count()
            == 2
    })
    .await;
    assert_eq!(items(&audit)[0]["kind"], "auction_created");
    let ana_bids_audit = get(
        &gw,
        &format!("/v1/audit?user={ana}&kind=bid_accepted"),
        Some(&admin_token),
    )
    .await;
    assert_eq!(items(&ana_bids_audit.body).len(), 1, "{ana_bids_audit:?}");
    let paged = get(&gw, &format!("{audit_path}&limit=1"), Some(&admin_token)).await;
    let cursor = paged.body["next_cursor"].as_str().expect("more").to_owned();
    let next = get(
        &gw,
        &format!("{audit_path}&limit=1&cursor={cursor}"),
        Some(&admin_token),
    )
    .await;
    assert_eq!(items(&next.body)[0], items(&audit)[1]);
    // A time range in RFC 3339 or in microseconds: all of it, then nothing before 2001.
    let from_2001 = get(
        &gw,
        &format!("{audit_path}&from=2001-01-01T00:00:00Z"),
        Some(&admin_token),
    )
    .await;
    assert_eq!(
        items(&from_2001.body).len(),
        items(&audit).len(),
        "{from_2001:?}"
    );
    let before_2001 = get(
        &gw,
        &format!("{audit_path}&from=0&to=2001-01-01T00:00:00%2B01:00"),
        Some(&admin_token),
    )
    .await;
    assert!(items(&before_2001.body).is_empty(), "{before_2001:?}");
    let csv = get(&gw, &format!("{audit_path}&format=csv"), Some(&admin_token)).await;
    assert_eq!(csv.status, 200, "{csv:?}");
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let text = csv.body.as_str().expect("csv text");
    let lines: Vec<&str> = text.trim_end().split("\r\n").collect();
    assert!(lines[0].starts_with("at,at_us,group_id"), "{text}");
    assert_eq!(lines.len(), 1 + items(&audit).len(), "{text}");
    let accept_csv = gw
        .call(
            Method::GET,
            &audit_path,
            Some(&admin_token),
            &[("accept", "text/csv")],
            None,
        )
        .await;
    assert_eq!(accept_csv.body.as_str(), Some(text));

    // Refusals. The gateway without Postgres signs its own tokens (an ephemeral key).
    let without_token = without.token("root", PASSWORD_ADMIN).await;
    for path in [
        history_path.as_str(),
        "/v1/history/auctions",
        "/v1/me/bids",
        "/v1/me/wins",
        "/v1/audit",
    ] {
        get(&gw, path, None)
            .await
            .assert_problem(401, "unauthorized");
        get(&without, path, Some(&without_token))
            .await
            .assert_problem(503, "history_unavailable");
    }
    get(&gw, "/v1/audit", Some(&ana_token))
        .await
        .assert_problem(403, "forbidden");
    get(&gw, "/v1/me/bids?cursor=not-a-cursor", Some(&ana_token))
        .await
        .assert_problem(400, "invalid_argument");
    get(
        &gw,
        &format!("/v1/audit?cursor={cursor}x"),
        Some(&admin_token),
    )
    .await
    .assert_problem(400, "invalid_argument");
    get(&gw, "/v1/audit?from=yesterday", Some(&admin_token))
        .await
        .assert_problem(400, "invalid_argument");
    get(&gw, "/v1/me/wins?limit=201", Some(&ana_token))
        .await
        .assert_problem(400, "invalid_argument");
    drop(db);
}
