//! The HTTP tests' harness: a real cluster of `martelo node` processes on loopback
//! (martelo-devkit's `LocalCluster`), gateways started with `martelo_gateway::serve_on` on
//! 127.0.0.1:0 in this process (the whole router: HTTP, WebSocket, limits), and a small JSON
//! client on reqwest.
//!
//! The `martelo` binary comes from `martelo_devkit::martelo_bin` (`MARTELO_BIN`, else
//! `$CARGO_TARGET_DIR/debug/martelo`, else `target/debug/martelo`): build it first with
//! `cargo build -p martelo-cluster --bin martelo`.

#![allow(dead_code)]

use std::time::Duration;

use martelo_client::admin::{Admin, AdminOptions};
use martelo_devkit::LocalCluster;
use martelo_engine::meta::{DisplayName, PasswordHash, Username};
use martelo_engine::{MetaAction, RequestId, Role};
use martelo_gateway::GatewayConfig;
use martelo_gateway::auth::password::Passwords;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use common::start_cluster;

#[path = "common.rs"]
pub mod common;

/// A started, initialized cluster.
pub struct Cluster {
    pub cluster: LocalCluster,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Three nodes, two shards.
    pub async fn start() -> Cluster {
        let (cluster, dir) = start_cluster("martelo-http-test-", 3, 2, Vec::new()).await;
        Cluster { cluster, dir }
    }

    /// The nodes' API addresses.
    pub fn seeds(&self) -> Vec<String> {
        self.cluster.api_addresses()
    }

    /// Creates an admin account as the operator (the bootstrap `martelo user create
    /// --admin` does), with `password`.
    pub async fn bootstrap_admin(&self, username: &str, password: &str) {
        let hash = Passwords::new(&GatewayConfig::default().limits)
            .hash(password)
            .await
            .expect("hash");
        let action = MetaAction::RegisterUser {
            username: Username::fold(username).expect("username"),
            display_name: DisplayName::try_from("Admin").expect("display name"),
            password_hash: PasswordHash::try_from(hash).expect("phc"),
            roles: [Role::Admin].into_iter().collect(),
        };
        let proposed = Admin::new(AdminOptions::default())
            .propose_meta(
                &self.seeds(),
                action,
                RequestId::try_from("bootstrap-admin").expect("id"),
            )
            .await
            .expect("admin registered");
        assert!(proposed.reply.is_accepted(), "{:?}", proposed.reply);
    }

    /// Every node log's text.
    pub fn node_logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.path()).expect("dir").flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "log") {
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
        text
    }
}

/// A gateway serving in this process; dropping it shuts it down.
pub struct Gateway {
    pub base: String,
    pub http: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A gateway configuration for tests: generous rate limits (tests tighten them).
pub fn test_config() -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.rate.per_ip_per_sec = 10_000;
    config.rate.per_ip_burst = 10_000;
    config.rate.per_user_per_sec = 10_000;
    config.rate.per_user_burst = 10_000;
    config.rate.login_failures_burst = 1_000;
    config.limits.password_hash_concurrency = 2;
    config
}

/// What a call answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The problem code, if the body is a problem.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// Asserts that the call answered `status` with the problem `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "{self:?}");
    }

    /// The `Set-Cookie` value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|text| text.split(';').next())
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    }
}

impl Gateway {
    /// Starts a gateway on 127.0.0.1:0 in front of `seeds`.
    pub async fn start(seeds: Vec<String>, mut config: GatewayConfig) -> Gateway {
        config.cluster = seeds;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let (address, serving) = martelo_gateway::serve_on(config, listener, async move {
            let _ = stopped.await;
        })
        .await
        .expect("gateway starts");
        tokio::spawn(serving);
        Gateway {
            base: format!("http://{address}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
            _shutdown: shutdown,
        }
    }

    /// Sends a request; `token` as Bearer, extra `headers`, a JSON `body`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sends raw bytes with a content type.
    pub async fn raw(&self, path: &str, token: &str, key: &str, body: Vec<u8>) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// Registers `username` with `roles`; returns the user id.
    pub async fn register(&self, username: &str, password: &str, roles: &[&str]) -> u64 {
        let answer = self
            .call(
                Method::POST,
                "/v1/accounts",
                None,
                &[],
                Some(json!({
                    "username": username, "display_name": username,
                    "password": password, "roles": roles,
                })),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_u64().expect("id")
    }

    /// Signs in; the whole answer (tokens in the body, cookies in the headers).
    /// `POST /v1/sessions/refresh` with `refresh_token` in the body.
    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.call(
            Method::POST,
            "/v1/sessions/refresh",
            None,
            &[],
            Some(json!({ "refresh_token": refresh_token })),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Answer {
        self.call(
            Method::POST,
            "/v1/sessions",
            None,
            &[],
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// Signs in and returns the access token.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let answer = self.login(username, password).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// Creates an auction open for an hour as the seller `token`; returns its id.
    pub async fn create_auction(&self, token: &str, key: &str, extra: Value) -> u64 {
        let answer = self
            .call(
                Method::POST,
                "/v1/auctions",
                Some(token),
                &[("idempotency-key", key)],
                Some(auction_body(extra)),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["auction"].as_u64().expect("auction id")
    }

    /// Bids `amount` on `auction` as `token` with `key`.
    pub async fn bid(&self, token: &str, auction: u64, key: &str, amount: Value) -> Answer {
        self.call(
            Method::POST,
            &format!("/v1/auctions/{auction}/bids"),
            Some(token),
            &[("idempotency-key", key)],
            Some(json!({ "amount": amount })),
        )
        .await
    }
}

/// Microseconds since the epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as u64
}

/// An auction body open for an hour, with `extra` fields merged in.
pub fn auction_body(extra: Value) -> Value {
    let mut body = json!({
        "title": "Brass lamp", "description": "Works.", "currency": "EUR",
        "starting_price": 100, "increment": {"fixed": 10},
        "start_us": now_us(), "end_us": now_us() + 3_600_000_000u64,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            body.insert(key.clone(), value.clone());
        }
    }
    body
}
