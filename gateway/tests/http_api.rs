//! The HTTP API end to end against a real 3-node cluster: sign-up, sign-in, auctions, bids
//! from two users, idempotent retries, ownership, cookies with CSRF, refresh rotation and
//! replay, sign-out, the admin routes (suspend and reinstate in every group, roles), the
//! docs, and that no password or token ever reaches a log (this process's, captured, and
//! the nodes').

#[path = "support/http_harness.rs"]
mod harness;

use std::io::Write;
use std::sync::{Arc, Mutex};

use harness::{Cluster, Gateway, auction_body, test_config};
use reqwest::Method;
use serde_json::json;

/// Captures this process's logs (every gateway's, at TRACE) for the no-secrets check.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

const PASSWORD_SELLER: &str = "seller-secret-pw-1";
const PASSWORD_ANA: &str = "ana-secret-pw-2";
const PASSWORD_BEN: &str = "ben-secret-pw-3";
const PASSWORD_ADMIN: &str = "admin-secret-pw-4";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_http_api_end_to_end() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("subscriber");
    martelo_gateway::server::install_metrics_recorder().expect("recorder");

    let cluster = Cluster::start().await;
    let gw = Gateway::start(cluster.seeds(), test_config()).await;
    let mut secrets: Vec<String> = [PASSWORD_SELLER, PASSWORD_ANA, PASSWORD_BEN, PASSWORD_ADMIN]
        .map(str::to_owned)
        .to_vec();

    // Health, time and docs.
    assert_eq!(
        gw.call(Method::GET, "/healthz", None, &[], None)
            .await
            .status,
        200
    );
    let time = gw.call(Method::GET, "/v1/time", None, &[], None).await;
    assert!(
        time.body["now_us"].as_u64().is_some_and(|now| now > 0),
        "{time:?}"
    );
    let doc = gw
        .call(Method::GET, "/v1/openapi.json", None, &[], None)
        .await;
    assert!(
        doc.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    assert!(doc.body["paths"]["/v1/sessions/refresh"]["post"].is_object());
    let ui = gw.call(Method::GET, "/v1/docs/", None, &[], None).await;
    assert_eq!(ui.status, 200, "the vendored Swagger UI");
    let missing = gw.call(Method::GET, "/v1/nowhere", None, &[], None).await;
    missing.assert_problem(404, "not_found");
    let wrong_method = gw.call(Method::DELETE, "/v1/time", None, &[], None).await;
    wrong_method.assert_problem(405, "method_not_allowed");

    // Sign-up: a seller and two bidders; usernames are unique case-insensitively.
    let seller = gw
        .register("Seller_One", PASSWORD_SELLER, &["seller"])
        .await;
    let ana = gw.register("ana", PASSWORD_ANA, &["bidder"]).await;
    let ben = gw.register("ben", PASSWORD_BEN, &["bidder"]).await;
    let taken = gw
        .call(
            Method::POST,
            "/v1/accounts",
            None,
            &[],
            Some(json!({"username": "ANA", "display_name": "x", "password": "another-pw-1"})),
        )
        .await;
    taken.assert_problem(409, "username_taken");
    let admin_claim = gw
        .call(
            Method::POST,
            "/v1/accounts",
            None,
            &[],
            Some(
                json!({"username": "eve", "display_name": "Eve", "password": "eve-pw-123",
                        "roles": ["admin"]}),
            ),
        )
        .await;
    assert_eq!(admin_claim.status, 403, "sign-up cannot claim admin");

    // Sign-in; a wrong password and an unknown user get the same answer.
    let seller_token = gw.token("seller_one", PASSWORD_SELLER).await;
    let ana_login = gw.login("ana", PASSWORD_ANA).await;
    assert_eq!(ana_login.status, 201);
    assert_eq!(ana_login.body["token_type"], "Bearer");
    assert_eq!(ana_login.body["user"]["id"], ana);
    let ana_token = ana_login.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let ben_token = gw.token("ben", PASSWORD_BEN).await;
    secrets.extend([seller_token.clone(), ana_token.clone(), ben_token.clone()]);
    let wrong = gw.login("ana", "not-her-password").await;
    let unknown = gw.login("nobody", "not-her-password").await;
    wrong.assert_problem(401, "bad_credentials");
    unknown.assert_problem(401, "bad_credentials");
    assert_eq!(
        wrong.body["detail"], unknown.body["detail"],
        "no enumeration"
    );
    let me = gw
        .call(Method::GET, "/v1/me", Some(&ana_token), &[], None)
        .await;
    assert_eq!(
        (me.status, me.body["username"].as_str()),
        (200, Some("ana"))
    );

    // Auctions: sellers create; the Idempotency-Key names the auction.
    let lamp = auction_body(json!({}));
    let create = |body: serde_json::Value| {
        let (gw, token) = (&gw, &seller_token);
        async move {
            gw.call(
                Method::POST,
                "/v1/auctions",
                Some(token),
                &[("idempotency-key", "lamp-1")],
                Some(body),
            )
            .await
        }
    };
    let created = create(lamp.clone()).await;
    assert_eq!(
        (created.status, created.body["replayed"].as_bool()),
        (201, Some(false)),
        "{created:?}"
    );
    let auction = created.body["auction"].as_u64().expect("id");
    assert!(auction > 0 && auction < (1 << 53));
    let again = create(lamp).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.body["auction"], auction);
    assert_eq!(
        (again.body["replayed"].as_bool(), &again.body["seq"]),
        (Some(true), &created.body["seq"])
    );
    let changed = create(auction_body(json!({"title": "Another lamp"}))).await;
    changed.assert_problem(409, "request_id_reused");
    let no_key = gw
        .call(
            Method::POST,
            "/v1/auctions",
            Some(&seller_token),
            &[],
            Some(auction_body(json!({}))),
        )
        .await;
    no_key.assert_problem(400, "idempotency_key_required");
    let by_bidder = gw
        .call(
            Method::POST,
            "/v1/auctions",
            Some(&ana_token),
            &[("idempotency-key", "k")],
            Some(auction_body(json!({}))),
        )
        .await;
    assert_eq!(by_bidder.status, 403, "{by_bidder:?}");

    // Bids from two users; a retry with the same key returns the first outcome.
    let first = gw.bid(&ana_token, auction, "ana-1", json!(100)).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(
        (
            first.body["leading"].as_bool(),
            first.body["replayed"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let second = gw.bid(&ben_token, auction, "ben-1", json!(150)).await;
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(second.body["leading"], true);
    let retry = gw.bid(&ana_token, auction, "ana-1", json!(100)).await;
    assert_eq!(retry.status, 201, "{retry:?}");
    assert_eq!(retry.body["seq"], first.body["seq"]);
    assert_eq!(retry.body["price"], first.body["price"]);
    assert_eq!(
        retry.body["leading"], first.body["leading"],
        "the first outcome, not today's"
    );
    assert_eq!(retry.body["replayed"], true);
    let low = gw.bid(&ana_token, auction, "ana-2", json!(101)).await;
    low.assert_problem(409, "bid_too_low");
    let own = gw.bid(&seller_token, auction, "own-1", json!(10_000)).await;
    assert_eq!(
        own.status / 100,
        4,
        "a seller cannot bid on their own auction: {own:?}"
    );
    let view = gw
        .call(
            Method::GET,
            &format!("/v1/auctions/{auction}"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(view.status, 200, "{view:?}");
    assert_eq!(view.body["leading_bidder"], ben);
    assert_eq!(view.body["bid_count"], 2);
    assert_eq!(view.body["seq"], second.body["seq"]);
    assert_eq!(view.body["phase"], "open");
    assert_eq!(view.body["seller"], seller);
    let lease = gw
        .call(
            Method::GET,
            &format!("/v1/auctions/{auction}?consistency=local"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(lease.status, 200);
    let listed = gw
        .call(
            Method::GET,
            "/v1/auctions?filter=open&limit=10",
            None,
            &[],
            None,
        )
        .await;
    let ids: Vec<u64> = listed.body["auctions"]
        .as_array()
        .expect("auctions")
        .iter()
        .filter_map(|a| a["id"].as_u64())
        .collect();
    assert!(ids.contains(&auction), "{listed:?}");

    // Another seller's auction cannot be edited or cancelled.
    let other_seller = gw
        .register("seller_two", PASSWORD_SELLER, &["seller"])
        .await;
    assert!(other_seller > seller);
    let other_token = gw.token("seller_two", PASSWORD_SELLER).await;
    secrets.push(other_token.clone());
    let edit = gw
        .call(
            Method::PUT,
            &format!("/v1/auctions/{auction}"),
            Some(&other_token),
            &[("idempotency-key", "edit-1")],
            Some(auction_body(json!({"title": "Mine now"}))),
        )
        .await;
    edit.assert_problem(403, "not_seller");
    let cancel_other = gw
        .call(
            Method::POST,
            &format!("/v1/auctions/{auction}/cancel"),
            Some(&other_token),
            &[("idempotency-key", "cancel-1")],
            Some(json!({})),
        )
        .await;
    assert_eq!(cancel_other.status, 403);
    let fresh = gw
        .create_auction(&seller_token, "vase-1", json!({"buy_now_price": 500}))
        .await;
    let edited = gw
        .call(
            Method::PUT,
            &format!("/v1/auctions/{fresh}"),
            Some(&seller_token),
            &[("idempotency-key", "vase-edit")],
            Some(auction_body(
                json!({"title": "Blue vase", "buy_now_price": 500}),
            )),
        )
        .await;
    assert_eq!(edited.status, 200, "{edited:?}");
    let bought = gw
        .call(
            Method::POST,
            &format!("/v1/auctions/{fresh}/buy"),
            Some(&ben_token),
            &[("idempotency-key", "buy-1")],
            None,
        )
        .await;
    assert_eq!(bought.status, 201, "{bought:?}");
    assert_eq!(
        (bought.body["kind"].as_str(), bought.body["price"].as_u64()),
        (Some("buy_now"), Some(500))
    );
    let closed = gw
        .call(
            Method::GET,
            &format!("/v1/auctions/{fresh}"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(closed.body["phase"], "closed");
    assert_eq!(closed.body["result"]["outcome"], "sold");
    let doomed = gw
        .create_auction(&seller_token, "doomed-1", json!({}))
        .await;
    let cancel = |key: &'static str| {
        let (gw, token) = (&gw, &seller_token);
        async move {
            let path = format!("/v1/auctions/{doomed}/cancel");
            gw.call(
                Method::POST,
                &path,
                Some(token),
                &[("idempotency-key", key)],
                Some(json!({"reason": "withdrawn"})),
            )
            .await
        }
    };
    assert_eq!(cancel("cancel-doomed").await.status, 200);
    assert_eq!(cancel("cancel-doomed").await.body["replayed"], true);
    assert_eq!(cancel("cancel-again").await.code(), "auction_closed");

    // Listing pages with a cursor: every auction exactly once.
    let (mut seen, mut after) = (Vec::new(), None::<String>);
    for _ in 0..20 {
        let path = match &after {
            None => "/v1/auctions?filter=all&limit=1".to_owned(),
            Some(cursor) => format!("/v1/auctions?filter=all&limit=1&after={cursor}"),
        };
        let page = gw.call(Method::GET, &path, None, &[], None).await;
        assert_eq!(page.status, 200, "{page:?}");
        seen.extend(
            page.body["auctions"]
                .as_array()
                .expect("page")
                .iter()
                .filter_map(|a| a["id"].as_u64()),
        );
        match page.body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    seen.sort_unstable();
    let mut expected = vec![auction, fresh, doomed];
    expected.sort_unstable();
    assert_eq!(seen, expected);
    let bad_filter = gw
        .call(Method::GET, "/v1/auctions?filter=soon", None, &[], None)
        .await;
    bad_filter.assert_problem(400, "invalid_argument");

    // Cookies: the access cookie works, but a change needs the CSRF header.
    let cookie_login = gw.login("ana", PASSWORD_ANA).await;
    let access = cookie_login
        .cookie("martelo_access")
        .expect("access cookie");
    let csrf = cookie_login.cookie("martelo_csrf").expect("csrf cookie");
    let refresh_cookie = cookie_login
        .cookie("martelo_refresh")
        .expect("refresh cookie");
    secrets.extend([access.clone(), refresh_cookie.clone()]);
    let set_cookie: Vec<String> = cookie_login
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    assert!(set_cookie.iter().any(|c| c.starts_with("martelo_access=")
        && c.contains("HttpOnly")
        && c.contains("SameSite=Strict")));
    let jar = format!("martelo_access={access}; martelo_csrf={csrf}");
    let me = gw
        .call(Method::GET, "/v1/me", None, &[("cookie", &jar)], None)
        .await;
    assert_eq!(me.status, 200, "a safe method needs no CSRF header");
    let path = format!("/v1/auctions/{auction}/bids");
    let forged = gw
        .call(
            Method::POST,
            &path,
            None,
            &[("cookie", &jar), ("idempotency-key", "c-1")],
            Some(json!({"amount": 300})),
        )
        .await;
    forged.assert_problem(403, "csrf_failed");
    let with_csrf = gw
        .call(
            Method::POST,
            &path,
            None,
            &[
                ("cookie", &jar),
                ("idempotency-key", "c-1"),
                ("x-csrf-token", &csrf),
            ],
            Some(json!({"amount": 300})),
        )
        .await;
    assert_eq!(with_csrf.status, 201, "{with_csrf:?}");

    // Refresh rotation; replaying the old token revokes the whole session.
    let r1 = ana_login.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let rotated = gw.refresh(&r1).await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let r2 = rotated.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let a2 = rotated.body["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    secrets.extend([r1.clone(), r2.clone(), a2.clone()]);
    assert_ne!(r1, r2);
    let me = gw.call(Method::GET, "/v1/me", Some(&a2), &[], None).await;
    assert_eq!(me.status, 200);
    let replay = gw.refresh(&r1).await;
    replay.assert_problem(401, "invalid_refresh_token");
    let revoked = gw.refresh(&r2).await;
    assert_eq!(
        (revoked.status, revoked.code()),
        (401, "invalid_refresh_token"),
        "family revoked"
    );
    // The cookie session refreshes with the cookie and the CSRF header.
    let cookie_refresh_jar = format!("martelo_refresh={refresh_cookie}; martelo_csrf={csrf}");
    let no_csrf = gw
        .call(
            Method::POST,
            "/v1/sessions/refresh",
            None,
            &[("cookie", &cookie_refresh_jar)],
            None,
        )
        .await;
    assert_eq!(no_csrf.code(), "csrf_failed");
    let by_cookie = gw
        .call(
            Method::POST,
            "/v1/sessions/refresh",
            None,
            &[("cookie", &cookie_refresh_jar), ("x-csrf-token", &csrf)],
            None,
        )
        .await;
    assert_eq!(by_cookie.status, 200, "{by_cookie:?}");
    secrets.push(
        by_cookie.body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );

    // Sign-out revokes the session: its refresh token is refused afterwards.
    let ben_login = gw.login("ben", PASSWORD_BEN).await;
    let ben_access = ben_login.body["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let ben_refresh = ben_login.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    secrets.extend([ben_access.clone(), ben_refresh.clone()]);
    let out = gw
        .call(
            Method::DELETE,
            "/v1/sessions/current",
            Some(&ben_access),
            &[],
            None,
        )
        .await;
    assert_eq!(out.status, 204, "{out:?}");
    let after = gw.refresh(&ben_refresh).await;
    assert_eq!(after.code(), "invalid_refresh_token");

    // Admin: list, suspend (meta and every group), reinstate, roles.
    cluster.bootstrap_admin("root", PASSWORD_ADMIN).await;
    let admin_token = gw.token("root", PASSWORD_ADMIN).await;
    secrets.push(admin_token.clone());
    let page = gw
        .call(
            Method::GET,
            "/v1/users?prefix=se&limit=10",
            Some(&admin_token),
            &[],
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{page:?}");
    let names: Vec<&str> = page.body["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["seller_one", "seller_two"]);
    let not_admin = gw
        .call(Method::GET, "/v1/users", Some(&ana_token), &[], None)
        .await;
    assert_eq!(not_admin.status, 403);
    let suspend = gw
        .call(
            Method::POST,
            &format!("/v1/users/{ana}/suspend"),
            Some(&admin_token),
            &[],
            Some(json!({"reason": "shill bidding"})),
        )
        .await;
    assert_eq!(suspend.status, 200, "{suspend:?}");
    assert_eq!(suspend.body["account"], "suspended");
    assert_eq!(suspend.body["groups_confirmed"], json!([1, 2]));
    assert_eq!(suspend.body["groups_unconfirmed"], json!([]));
    let suspended_login = gw.login("ana", PASSWORD_ANA).await;
    suspended_login.assert_problem(403, "account_suspended");
    let suspended_bid = gw.bid(&ana_token, auction, "ana-9", json!(5_000)).await;
    assert_eq!(suspended_bid.status, 403, "{suspended_bid:?}");
    let reinstate = gw
        .call(
            Method::POST,
            &format!("/v1/users/{ana}/reinstate"),
            Some(&admin_token),
            &[],
            None,
        )
        .await;
    assert_eq!(
        (reinstate.status, reinstate.body["account"].as_str()),
        (200, Some("reinstated"))
    );
    assert_eq!(reinstate.body["groups_confirmed"], json!([1, 2]));
    let grant = gw
        .call(
            Method::PUT,
            &format!("/v1/users/{ben}/roles/seller"),
            Some(&admin_token),
            &[],
            None,
        )
        .await;
    assert_eq!(
        grant.body["roles"],
        json!(["bidder", "seller"]),
        "{grant:?}"
    );
    let revoke = gw
        .call(
            Method::DELETE,
            &format!("/v1/users/{ben}/roles/seller"),
            Some(&admin_token),
            &[],
            None,
        )
        .await;
    assert_eq!(revoke.body["roles"], json!(["bidder"]), "{revoke:?}");

    // Metrics name the route template, never the raw path.
    let metrics = gw.call(Method::GET, "/metrics", None, &[], None).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("martelo_gateway_http_requests_total"),
        "{text}"
    );
    assert!(text.contains("route=\"/v1/auctions/{id}/bids\""), "{text}");

    // No password or token in any log.
    let logs = capture.text();
    assert!(logs.contains("signed in"), "the capture works");
    let node_logs = cluster.node_logs();
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the gateway log"
        );
        assert!(
            !node_logs.contains(secret.as_str()),
            "a secret reached a node log"
        );
    }
}
