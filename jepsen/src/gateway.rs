//! The gateway path (`--via gateway`): workload clients speak HTTP to `martelo gateway`
//! processes, as bidders do, instead of gRPC to the nodes.
//!
//! ```text
//!   GatewayPool::sign_up ── POST /v1/accounts, POST /v1/sessions ──► a seller + B bidders
//!   GatewayApi (one per client, a home gateway, the others on retry)
//!     create  POST /v1/auctions             Idempotency-Key = request id (names the auction)
//!     bid     POST /v1/auctions/{id}/bids   Idempotency-Key = request id, reused on retry
//!     read    GET  /v1/auctions/{id}?consistency=linearizable
//! ```
//!
//! How an HTTP answer is judged ([`classify`]): 2xx is success; a 4xx problem is definite
//! (the request changed nothing, or the engine applied it and said no), except 408; 503
//! `unavailable`, `not_leader` and `busy` and 429 are "not applied" and retried; anything
//! else (503 `outcome_unknown` or `timeout`, 5xx, a dropped connection, no answer) is
//! indeterminate and retried with the same key until the operation's deadline. An operation
//! that saw an indeterminate attempt is never reported as "not applied": a later refusal does
//! not prove the earlier attempt did nothing. Nothing is guessed: an operation out of time
//! after an indeterminate attempt is `info`.
//!
//! Bidders: the gateway assigns user ids at sign-up, and those ids are the history's bidder
//! ids (the engine records the token's user as the bidder). The workload uses each account at
//! most once per auction ([`crate::workload`]), which keeps the engine's "leader raises own
//! maximum" rule out of play, as unique bidder ids do on the gRPC path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use serde_json::{Value as Json, json};

use crate::api::{BidOutcome, CreateOutcome, NewAuction, REFUSED_BID_CODES, ReadOutcome};
use crate::history::{AuctionView, CloseOutcome, TopBid};

/// The password of every workload account (the accounts live as long as the run's cluster).
const PASSWORD: &str = "jepsen-workload-password";
/// Sign-ups and sign-ins in flight at once while the accounts are made.
const SIGN_UP_CONCURRENCY: usize = 4;
/// How long one account may take to be made and signed in (retries included).
const SIGN_UP_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between attempts of one operation.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Largest response body read; an auction view with 50 recent bids is a few KiB.
const RESPONSE_BYTES_MAX: usize = 256 * 1024;
/// The gateway's own request deadline: below the workload's operation deadline (5 s), so an
/// attempt usually ends with the gateway's `timeout` answer rather than a dropped connection.
pub const GATEWAY_REQUEST_TIMEOUT_MS: u64 = 4_000;

/// The `--config` file the fault suite gives its gateways: the rate limits far above the
/// workload's pace (every client comes from 127.0.0.1, and the limiter must not dominate
/// the run), long-lived tokens, and room to hash the workload's passwords.
pub fn config_toml() -> String {
    format!(
        "# Written by martelo-jepsen for its gateways.\n\
         [tokens]\n\
         access_ttl_secs = 86400\n\
         refresh_ttl_secs = 172800\n\
         \n\
         [limits]\n\
         request_timeout_ms = {GATEWAY_REQUEST_TIMEOUT_MS}\n\
         password_hash_concurrency = 2\n\
         password_queue_max = 1024\n\
         \n\
         [rate]\n\
         per_ip_per_sec = 1000000\n\
         per_ip_burst = 1000000\n\
         per_user_per_sec = 1000000\n\
         per_user_burst = 1000000\n\
         login_failures_burst = 1000\n"
    )
}

/// The auction id a seller's `Idempotency-Key` names, as docs/API.md defines it:
/// `blake3(user id (8 bytes, LE) ‖ key)`, its first 8 bytes as a little-endian integer,
/// reduced to `1..=2^53 - 1`. Written here from the documented rule, not imported from the
/// gateway, so that a gateway deriving something else shows up as a failed create.
pub fn auction_id_for(seller: u64, key: &str) -> u64 {
    const AUCTION_ID_MAX: u64 = (1 << 53) - 1;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seller.to_le_bytes());
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first) % AUCTION_ID_MAX + 1
}

/// What one HTTP attempt says about the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// 2xx, with the body.
    Success(Json),
    /// A definite answer: nothing to retry. The status and the problem `code`.
    Definite { status: u16, code: String },
    /// Not applied, worth retrying (no leader yet, the limiter, password hashing busy).
    NotApplied(String),
    /// Maybe applied: retry with the same key to learn which.
    Indeterminate(String),
}

/// Judges one HTTP answer (see the module doc).
pub fn classify(status: u16, body: Json) -> Class {
    let code = body["code"].as_str().unwrap_or_default().to_owned();
    match status {
        200..=299 => Class::Success(body),
        429 => Class::NotApplied(format!("429 {code}")),
        408 => Class::Indeterminate(format!("408 {code}")),
        400..=499 => Class::Definite { status, code },
        503 if matches!(code.as_str(), "unavailable" | "not_leader" | "busy") => {
            Class::NotApplied(format!("503 {code}"))
        }
        _ => Class::Indeterminate(format!("{status} {code}")),
    }
}

/// The final word on an operation after its attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Final {
    Success(Json),
    Definite { status: u16, code: String },
    NotApplied(String),
    Indeterminate(String),
}

/// Folds one attempt into the operation so far: `Some` when the operation is decided,
/// `None` to retry. `seen_unknown` remembers an indeterminate attempt: after one, a refusal
/// that says "not applied" proves nothing about the earlier attempt.
pub fn fold_attempt(class: Class, seen_unknown: &mut bool, out_of_time: bool) -> Option<Final> {
    match class {
        Class::Success(body) => Some(Final::Success(body)),
        Class::Definite { status, code } => Some(Final::Definite { status, code }),
        Class::NotApplied(why) if out_of_time => Some(if *seen_unknown {
            Final::Indeterminate(format!("{why} after an attempt with an unknown outcome"))
        } else {
            Final::NotApplied(why)
        }),
        Class::NotApplied(_) => None,
        Class::Indeterminate(why) => {
            *seen_unknown = true;
            out_of_time.then_some(Final::Indeterminate(why))
        }
    }
}

/// The history's view of `GET /v1/auctions/{id}`'s JSON (`price`, `leading_bidder`,
/// `result`). `None` when the body is not an auction view.
pub fn view_of_json(body: &Json) -> Option<AuctionView> {
    let optional = |field: &str| match &body[field] {
        Json::Null => Some(None),
        value => value.as_u64().map(Some),
    };
    let price = optional("price")?;
    let leader = optional("leading_bidder")?;
    let _id = body["id"].as_u64()?;
    let (closed, outcome) = match &body["result"] {
        Json::Null => (false, None),
        result => match result["outcome"].as_str()? {
            "sold" => (
                true,
                Some(CloseOutcome::Sold(TopBid {
                    amount: result["price"].as_u64()?,
                    bidder: result["winner"].as_u64()?,
                })),
            ),
            "unsold" => (true, Some(CloseOutcome::Unsold)),
            // Cancelled: closed, with no outcome the model knows.
            _ => (true, None),
        },
    };
    Some(AuctionView {
        price,
        leader,
        closed,
        outcome,
    })
}

/// One signed-in account.
#[derive(Clone, Debug)]
struct Account {
    user: u64,
    token: String,
}

/// The gateways and the workload's accounts, shared by every client.
#[derive(Debug)]
pub struct GatewayPool {
    bases: Vec<String>,
    http: reqwest::Client,
    seller: Account,
    bidders: BTreeMap<u64, String>,
}

impl GatewayPool {
    /// Makes a seller and `bidders` bidder accounts named after `run_tag` through the
    /// gateways at `bases` (`http://HOST:PORT`), and signs each in.
    pub async fn sign_up(
        bases: Vec<String>,
        bidders: usize,
        run_tag: &str,
    ) -> anyhow::Result<GatewayPool> {
        anyhow::ensure!(!bases.is_empty(), "no gateway to sign up through");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .context("building the HTTP client")?;
        let tag = run_tag.to_ascii_lowercase();
        let seller = sign_up_one(&http, &bases[0], &format!("{tag}-seller"), "seller").await?;
        let accounts: Vec<anyhow::Result<Account>> = futures::stream::iter(0..bidders)
            .map(|index| {
                let (http, base) = (http.clone(), bases[index % bases.len()].clone());
                let username = format!("{tag}-b{index}");
                async move { sign_up_one(&http, &base, &username, "bidder").await }
            })
            .buffer_unordered(SIGN_UP_CONCURRENCY)
            .collect()
            .await;
        let mut tokens = BTreeMap::new();
        for account in accounts {
            let account = account?;
            tokens.insert(account.user, account.token);
        }
        Ok(GatewayPool {
            bases,
            http,
            seller,
            bidders: tokens,
        })
    }

    /// The bidder accounts' user ids.
    pub fn bidders(&self) -> Vec<u64> {
        self.bidders.keys().copied().collect()
    }

    /// The seller's user id.
    pub fn seller(&self) -> u64 {
        self.seller.user
    }
}

/// Signs `username` up with `role` (a taken name counts: an earlier attempt made it) and in.
async fn sign_up_one(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    role: &str,
) -> anyhow::Result<Account> {
    let deadline = Instant::now() + SIGN_UP_DEADLINE;
    let account = json!({
        "username": username, "display_name": username, "password": PASSWORD, "roles": [role],
    });
    loop {
        let (status, body) = send(http.post(format!("{base}/v1/accounts")), &account, deadline)
            .await
            .unwrap_or((0, Json::Null));
        if status == 201 || body["code"] == "username_taken" {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline && (!(400..500).contains(&status) || status == 429),
            "signing up {username} through {base}: {status} {body}"
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    let login = json!({"username": username, "password": PASSWORD});
    loop {
        let (status, body) = send(http.post(format!("{base}/v1/sessions")), &login, deadline)
            .await
            .unwrap_or((0, Json::Null));
        if status == 201
            && let (Some(user), Some(token)) =
                (body["user"]["id"].as_u64(), body["access_token"].as_str())
        {
            return Ok(Account {
                user,
                token: token.to_owned(),
            });
        }
        anyhow::ensure!(
            Instant::now() < deadline && (!(400..500).contains(&status) || status == 429),
            "signing {username} in through {base}: {status} {body}"
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Sends `request` with JSON `body` (unless null) and a timeout of what is left before
/// `deadline`; the status and the JSON body (null when there is none or it is not JSON).
async fn send(
    request: reqwest::RequestBuilder,
    body: &Json,
    deadline: Instant,
) -> Result<(u16, Json), String> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    let request = if body.is_null() {
        request
    } else {
        request.json(body)
    };
    let mut answer = request
        .timeout(left)
        .send()
        .await
        .map_err(|error| format!("no answer: {error}"))?;
    let status = answer.status().as_u16();
    let mut bytes = Vec::new();
    loop {
        match answer.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() <= RESPONSE_BYTES_MAX => {
                bytes.extend_from_slice(&chunk);
            }
            Ok(Some(_)) => {
                return Err(format!(
                    "{status}: the body is over {RESPONSE_BYTES_MAX} bytes"
                ));
            }
            Ok(None) => break,
            Err(error) => return Err(format!("{status}: the body was cut off: {error}")),
        }
    }
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Json::Null)))
}

/// One workload client of the gateways: a home gateway, and the others in turn on retries.
#[derive(Clone, Debug)]
pub struct GatewayApi {
    pool: Arc<GatewayPool>,
    home: usize,
    /// Bounds one operation, all its attempts included.
    deadline: Duration,
}

impl GatewayApi {
    pub fn new(pool: Arc<GatewayPool>, home: usize, deadline: Duration) -> GatewayApi {
        GatewayApi {
            pool,
            home,
            deadline,
        }
    }

    /// The auction a create with key `request` names (the seller is the pool's).
    pub fn auction_id_for(&self, request: &str) -> u64 {
        auction_id_for(self.pool.seller.user, request)
    }

    /// Sends one request (same key, same body every attempt) until it is decided or the
    /// deadline passes. The first attempt goes to the home gateway; a retry goes to the next
    /// gateway, as a browser behind a load balancer would.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: &Json,
    ) -> Final {
        let deadline = Instant::now() + self.deadline;
        let mut seen_unknown = false;
        let mut attempt = 0usize;
        loop {
            let bases = &self.pool.bases;
            let base = &bases[(self.home + attempt) % bases.len()];
            attempt += 1;
            let mut request = self
                .pool
                .http
                .request(method.clone(), format!("{base}{path}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            let class = match send(request, body, deadline).await {
                Ok((status, body)) => classify(status, body),
                Err(why) => Class::Indeterminate(format!("{base}: {why}")),
            };
            let out_of_time = Instant::now() + RETRY_PAUSE >= deadline;
            if let Some(decided) = fold_attempt(class, &mut seen_unknown, out_of_time) {
                return decided;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    pub async fn create_auction(&self, auction: &NewAuction, request: &str) -> CreateOutcome {
        let expected = self.auction_id_for(request);
        let soft_secs = (auction.soft_window_us / 1_000_000).max(1);
        let body = json!({
            "title": format!("jepsen auction {request}"),
            "description": "",
            "currency": "USD",
            "starting_price": auction.terms.starting_price,
            "increment": {"fixed": auction.terms.increment},
            "start_us": auction.start_us,
            "end_us": auction.end_us,
            "soft_close": {
                "window_secs": soft_secs,
                "mode": "add_to_end",
                "extension_secs": soft_secs,
                "total_extension_max_secs": (auction.extension_total_max_us / 1_000_000).max(1),
            },
        });
        let token = self.pool.seller.token.as_str();
        let answer = self
            .call(
                reqwest::Method::POST,
                "/v1/auctions",
                Some(token),
                Some(request),
                &body,
            )
            .await;
        match answer {
            Final::Success(body) => match body["auction"].as_u64() {
                Some(id) if id == expected => CreateOutcome::Created,
                other => CreateOutcome::Failed(format!(
                    "the gateway created auction {other:?} for key {request}, not {expected}"
                )),
            },
            Final::Definite { code, .. } if code == "auction_exists" => {
                CreateOutcome::AlreadyExists
            }
            Final::Definite { status, code } => CreateOutcome::Failed(format!("{status} {code}")),
            Final::NotApplied(why) => CreateOutcome::Failed(why),
            Final::Indeterminate(why) => CreateOutcome::Unknown(why),
        }
    }

    pub async fn bid(&self, auction: u64, amount: u64, bidder: u64, request: &str) -> BidOutcome {
        let Some(token) = self.pool.bidders.get(&bidder) else {
            return BidOutcome::Rejected(format!("no signed-in account {bidder}"));
        };
        let path = format!("/v1/auctions/{auction}/bids");
        let body = json!({ "amount": amount });
        let answer = self
            .call(
                reqwest::Method::POST,
                &path,
                Some(token),
                Some(request),
                &body,
            )
            .await;
        match answer {
            Final::Success(body) if body["kind"] == "bid" => BidOutcome::Accepted,
            Final::Success(body) => BidOutcome::Unknown(format!("unexpected answer {body}")),
            Final::Definite { code, .. } if REFUSED_BID_CODES.contains(&code.as_str()) => {
                BidOutcome::Refused
            }
            Final::Definite { status, code } if code.is_empty() => {
                BidOutcome::Rejected(format!("{status}"))
            }
            Final::Definite { code, .. } => BidOutcome::Rejected(code),
            Final::NotApplied(why) => BidOutcome::NotApplied(why),
            Final::Indeterminate(why) => BidOutcome::Unknown(why),
        }
    }

    pub async fn read(&self, auction: u64) -> ReadOutcome {
        let path = format!("/v1/auctions/{auction}?consistency=linearizable");
        match self
            .call(reqwest::Method::GET, &path, None, None, &Json::Null)
            .await
        {
            Final::Success(body) => match view_of_json(&body) {
                Some(view) => ReadOutcome::View(view),
                None => ReadOutcome::Failed(format!("not an auction view: {body}")),
            },
            Final::Definite { code, .. } if code == "auction_not_found" => ReadOutcome::NotFound,
            Final::Definite { status, code } => ReadOutcome::Failed(format!("{status} {code}")),
            Final::NotApplied(why) | Final::Indeterminate(why) => ReadOutcome::Failed(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_as_toml_with_the_limiter_far_above_the_workload() {
        let config: toml::Value = toml::from_str(&config_toml()).expect("valid TOML");
        assert_eq!(
            config["rate"]["per_ip_per_sec"].as_integer(),
            Some(1_000_000)
        );
        assert_eq!(
            config["rate"]["per_user_burst"].as_integer(),
            Some(1_000_000)
        );
        assert_eq!(
            config["limits"]["request_timeout_ms"].as_integer(),
            Some(GATEWAY_REQUEST_TIMEOUT_MS as i64)
        );
    }

    #[test]
    fn auction_ids_follow_the_documented_derivation() {
        // Same seller and key: same id; another key or seller: another id; always < 2^53.
        assert_eq!(auction_id_for(7, "k-1"), auction_id_for(7, "k-1"));
        assert_ne!(auction_id_for(7, "k-1"), auction_id_for(7, "k-2"));
        assert_ne!(auction_id_for(7, "k-1"), auction_id_for(8, "k-1"));
        let mut hasher = blake3::Hasher::new();
        hasher.update(&7u64.to_le_bytes());
        hasher.update(b"k-1");
        let bytes: [u8; 8] = hasher.finalize().as_bytes()[..8]
            .try_into()
            .expect("8 bytes");
        assert_eq!(
            auction_id_for(7, "k-1"),
            u64::from_le_bytes(bytes) % ((1 << 53) - 1) + 1
        );
        assert!(auction_id_for(u64::MAX, "x") < 1 << 53);
    }

    fn problem(code: &str) -> Json {
        json!({"code": code})
    }

    #[test]
    fn answers_are_classified_without_guessing() {
        assert_eq!(
            classify(201, json!({"a": 1})),
            Class::Success(json!({"a": 1}))
        );
        assert_eq!(
            classify(409, problem("bid_too_low")),
            Class::Definite {
                status: 409,
                code: "bid_too_low".into()
            }
        );
        assert!(matches!(
            classify(404, problem("auction_not_found")),
            Class::Definite { status: 404, .. }
        ));
        assert!(matches!(
            classify(503, problem("unavailable")),
            Class::NotApplied(_)
        ));
        assert!(matches!(
            classify(429, problem("rate_limited")),
            Class::NotApplied(_)
        ));
        for (status, code) in [
            (503, "outcome_unknown"),
            (503, "timeout"),
            (504, "timeout"),
            (500, "internal"),
            (502, ""),
            (408, ""),
        ] {
            assert!(
                matches!(classify(status, problem(code)), Class::Indeterminate(_)),
                "{status} {code}"
            );
        }
    }

    #[test]
    fn a_refusal_after_an_unknown_attempt_stays_unknown() {
        let mut seen = false;
        let unknown = Class::Indeterminate("503 outcome_unknown".into());
        assert_eq!(fold_attempt(unknown, &mut seen, false), None);
        assert!(seen);
        let refused = Class::NotApplied("503 unavailable".into());
        assert!(matches!(
            fold_attempt(refused.clone(), &mut seen, true),
            Some(Final::Indeterminate(_))
        ));
        let mut fresh = false;
        assert_eq!(fold_attempt(refused.clone(), &mut fresh, false), None);
        assert!(matches!(
            fold_attempt(refused, &mut fresh, true),
            Some(Final::NotApplied(_))
        ));
        // A definite answer after an unknown one is the answer (the same key was replayed).
        let definite = Class::Definite {
            status: 409,
            code: "bid_too_low".into(),
        };
        assert!(matches!(
            fold_attempt(definite, &mut seen, false),
            Some(Final::Definite { .. })
        ));
    }

    #[test]
    fn views_map_to_the_history_like_the_grpc_path() {
        let open = json!({"id": 5, "price": 120, "leading_bidder": 42, "result": null});
        assert_eq!(
            view_of_json(&open),
            Some(AuctionView {
                price: Some(120),
                leader: Some(42),
                closed: false,
                outcome: None
            })
        );
        let sold = json!({"id": 5, "price": 120, "leading_bidder": 42,
            "result": {"outcome": "sold", "winner": 42, "price": 120, "at_us": 1}});
        assert_eq!(
            view_of_json(&sold).and_then(|view| view.outcome),
            Some(CloseOutcome::Sold(TopBid {
                amount: 120,
                bidder: 42
            }))
        );
        let unsold = json!({"id": 5, "price": null, "leading_bidder": null,
            "result": {"outcome": "unsold", "reason": "no_bids", "at_us": 1}});
        let view = view_of_json(&unsold).expect("a view");
        assert!(view.closed);
        assert_eq!(view.outcome, Some(CloseOutcome::Unsold));
        let cancelled = json!({"id": 5, "price": null, "leading_bidder": null,
            "result": {"outcome": "cancelled", "by": 1, "at_us": 1}});
        let view = view_of_json(&cancelled).expect("a view");
        assert!(view.closed && view.outcome.is_none());
        assert_eq!(view_of_json(&json!({"code": "internal"})), None);
        assert_eq!(view_of_json(&json!({"id": 5, "price": "x"})), None);
    }
}
