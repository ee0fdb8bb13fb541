//! The gateway side of a run: a `martelo gateway` child process in front of the local
//! cluster (`--local`), and a [`GatewaySession`] that signs the bench's accounts up and in
//! over HTTP before the measurement and creates its auctions as their seller.
//!
//! The local gateway gets a config file that lifts its per-IP and per-user rate limits (the
//! bench's thousands of bids per second come from one IP and a few users), so a run measures
//! the gateway's throughput, not its limiter. Everything else keeps the gateway's defaults.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use martelo_devkit::{GatewayProcess, write_key_file_with};
use martelo_engine::{Accepted, Action, AuctionId, Reply, Request};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::target::Decision;
use crate::wire;

/// The settings the local gateway runs with: rate limits out of the way (see the module
/// doc), and enough password hashing to sign a few hundred bidders in quickly.
pub const LOCAL_GATEWAY_CONFIG: &str = "\
# Written by martelo bench: the bench's load comes from one IP and a few users, so the
# per-IP and per-user limits are lifted to measure throughput rather than the limiter.
[rate]
per_ip_per_sec = 10000000
per_ip_burst = 10000000
per_user_per_sec = 10000000
per_user_burst = 10000000

[limits]
password_hash_concurrency = 2
password_queue_max = 4096
ws_connections_max = 15000
";

/// Sign-ups and sign-ins in flight at once during setup (the gateway hashes two at a time).
const ACCOUNT_CONCURRENCY: usize = 8;
/// Attempts of one sign-up or sign-in that the gateway answers `busy` (hashing saturated).
const BUSY_ATTEMPTS_MAX: u32 = 50;
/// The bench accounts' password: the accounts live only as long as the run's cluster, or are
/// the bench's own on a shared one. Never logged.
const BENCH_PASSWORD: &str = "martelo-bench-password";
/// Deadline of one setup request (argon2 included).
const SETUP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The local `martelo gateway` child process (martelo-devkit's [`GatewayProcess`]), killed
/// when dropped. Started with the binary the bench runs from, so a release bench measures a
/// release gateway.
#[derive(Debug)]
pub struct LocalGateway {
    process: GatewayProcess,
}

impl LocalGateway {
    /// Writes a key ring and [`LOCAL_GATEWAY_CONFIG`] into `dir`, starts `binary gateway`
    /// against `seeds` and waits for `/healthz`.
    pub async fn start(binary: &Path, dir: &Path, seeds: &[String]) -> anyhow::Result<Self> {
        let key_file = write_key_file_with(binary, dir)
            .await
            .context("cannot write the gateway's key file")?;
        let config = dir.join("gateway.toml");
        std::fs::write(&config, LOCAL_GATEWAY_CONFIG)
            .with_context(|| format!("cannot write {}", config.display()))?;
        let extra = ["--config".to_owned(), config.to_string_lossy().into_owned()];
        let process =
            GatewayProcess::start_in_own_group(binary, dir, "bench", seeds, &key_file, &extra)
                .await
                .context("the local gateway did not start")?;
        Ok(LocalGateway { process })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.process.base
    }

    /// Its log (JSON lines on stderr).
    pub fn log(&self) -> &Path {
        &self.process.log
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Stops the gateway (SIGKILL: it holds nothing that must be flushed).
    pub async fn stop(mut self) {
        self.process.kill().await;
    }
}

/// `ws://` (or `wss://`) for a gateway's `http://` (or `https://`) base.
pub fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}/v1/ws"),
        None => format!("ws://{}/v1/ws", base.trim_start_matches("http://")),
    }
}

/// The bench's accounts on one gateway, and its auctions' gateway ids.
#[derive(Debug)]
pub struct GatewaySession {
    pub base: String,
    /// Keep-alive connections, pooled; shared by every HTTP bidder.
    pub http: reqwest::Client,
    pub seller_token: String,
    /// Access token of bidder `i` (the workload's `Workload::bidder(i)`).
    pub bidder_tokens: Vec<String>,
    /// The workload's auction id to the id the gateway derived for it.
    auctions: RwLock<HashMap<AuctionId, u64>>,
}

impl GatewaySession {
    /// Signs up a seller and `bidders` bidders named after `nonce` (unique to the run) and
    /// signs each in. Argon2 makes this slow (tens of milliseconds per account each way);
    /// it happens before the measurement.
    pub async fn sign_in(
        base: &str,
        bidders: usize,
        nonce: u64,
        request_timeout: Duration,
        connections_max: usize,
    ) -> anyhow::Result<GatewaySession> {
        let base = base.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .pool_max_idle_per_host(connections_max)
            .tcp_nodelay(true)
            .build()
            .context("cannot build an HTTP client")?;
        let setup = reqwest::Client::builder()
            .timeout(SETUP_REQUEST_TIMEOUT)
            .build()
            .context("cannot build an HTTP client")?;
        let prefix = format!("bn{:x}", nonce & 0xffff_ffff_ffff);
        let seller = account(&setup, &base, &format!("{prefix}-s"), "seller").await?;
        let mut tasks = JoinSet::new();
        let mut tokens = vec![String::new(); bidders];
        let mut next = 0;
        loop {
            while tasks.len() < ACCOUNT_CONCURRENCY && next < bidders {
                let (setup, base, name) =
                    (setup.clone(), base.clone(), format!("{prefix}-b{next}"));
                let index = next;
                tasks.spawn(async move { (index, account(&setup, &base, &name, "bidder").await) });
                next += 1;
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let (index, token) = joined.context("a sign-up task failed")?;
            tokens[index] = token?;
        }
        Ok(GatewaySession {
            base,
            http,
            seller_token: seller,
            bidder_tokens: tokens,
            auctions: RwLock::new(HashMap::new()),
        })
    }

    /// The gateway's id of the workload's auction `id`, once created.
    pub fn gateway_id(&self, id: AuctionId) -> Option<u64> {
        self.auctions.read().ok()?.get(&id).copied()
    }

    /// Creates an auction through `POST /v1/auctions` as the seller; the request id is the
    /// idempotency key. Other actions are refused: the bench sends only creations and bids.
    pub async fn create(&self, request: &Request) -> Decision {
        let Action::CreateAuction { auction_id, spec } = &request.action else {
            return Decision::Failed {
                code: "unsupported_action".to_owned(),
            };
        };
        let answer = self
            .http
            .post(format!("{}/v1/auctions", self.base))
            .bearer_auth(&self.seller_token)
            .header("idempotency-key", request.request_id.as_str())
            .json(&wire::auction_body(spec))
            .send()
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                return Decision::Unknown {
                    code: transport_code(&error),
                };
            }
        };
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        if status != 201 {
            let code = body["code"].as_str().unwrap_or("malformed_answer");
            return wire::refused(code);
        }
        let (Some(gateway_id), Some(seq)) = (body["auction"].as_u64(), body["seq"].as_u64()) else {
            return Decision::Unknown {
                code: "malformed_answer".to_owned(),
            };
        };
        if let Ok(mut auctions) = self.auctions.write() {
            auctions.insert(*auction_id, gateway_id);
        }
        Decision::Decided {
            reply: Reply::Accepted(Accepted::AuctionCreated {
                auction_id: *auction_id,
                seq,
            }),
            replayed: body["replayed"].as_bool().unwrap_or(false),
        }
    }
}

/// The auction's seq now, read linearizably through the gateway at `base`.
pub async fn read_auction_seq(base: &str, gateway_id: u64) -> anyhow::Result<u64> {
    let http = reqwest::Client::builder()
        .timeout(SETUP_REQUEST_TIMEOUT)
        .build()
        .context("cannot build an HTTP client")?;
    let base = base.trim_end_matches('/');
    let answer = http
        .get(format!("{base}/v1/auctions/{gateway_id}"))
        .send()
        .await
        .context("cannot read the watched auction")?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    body["seq"]
        .as_u64()
        .ok_or_else(|| anyhow!("reading auction {gateway_id}: {status} {body}"))
}

/// Raises this process's soft limit of open files to the hard limit (watchers and bidder
/// sockets each take one) and returns the limit now in force.
pub fn raise_open_files_limit() -> anyhow::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).context("cannot read the open-files limit")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .context("cannot raise the open-files limit")?;
    }
    Ok(hard.max(soft))
}

/// The code of a transport failure: the request may have reached the gateway.
pub fn transport_code(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "deadline_exceeded".to_owned()
    } else {
        "transport".to_owned()
    }
}

/// Signs `username` up with `role` and in; returns the access token. Retries while the
/// gateway's password hashing is saturated (`busy`).
async fn account(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    role: &str,
) -> anyhow::Result<String> {
    let signup = json!({
        "username": username, "display_name": username,
        "password": BENCH_PASSWORD, "roles": [role],
    });
    post_until_not_busy(http, &format!("{base}/v1/accounts"), &signup, 201)
        .await
        .with_context(|| format!("signing up {username}"))?;
    let login = json!({"username": username, "password": BENCH_PASSWORD});
    let session = post_until_not_busy(http, &format!("{base}/v1/sessions"), &login, 201)
        .await
        .with_context(|| format!("signing in {username}"))?;
    session["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("signing in {username}: no access_token in the answer"))
}

async fn post_until_not_busy(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    expected: u16,
) -> anyhow::Result<Value> {
    for _ in 0..BUSY_ATTEMPTS_MAX {
        let answer = http
            .post(url)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = answer.status().as_u16();
        let value: Value = answer.json().await.unwrap_or(Value::Null);
        if status == expected {
            return Ok(value);
        }
        if status == 503 && value["code"] == "busy" {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        bail!(
            "POST {url}: {status} {}",
            value["code"].as_str().unwrap_or("(no code)")
        );
    }
    bail!("POST {url}: the gateway stayed busy (password hashing saturated)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_websocket_url_follows_the_scheme() {
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/v1/ws");
        assert_eq!(
            ws_url("http://127.0.0.1:8080/"),
            "ws://127.0.0.1:8080/v1/ws"
        );
        assert_eq!(ws_url("https://bids.example"), "wss://bids.example/v1/ws");
    }

    #[test]
    fn the_local_gateway_config_lifts_the_rate_limits() {
        let text = LOCAL_GATEWAY_CONFIG;
        let per_user = text
            .lines()
            .find_map(|line| line.strip_prefix("per_user_per_sec = "))
            .and_then(|value| value.parse::<u64>().ok());
        assert_eq!(per_user, Some(10_000_000));
        assert!(text.contains("[rate]") && text.contains("[limits]"));
    }
}
