//! Shared pieces of the multi-process cluster tests: a real cluster of `martelo node`
//! processes on loopback with temporary data dirs, and builders for engine requests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use martelo_client::{Client, ClientOptions, ProposeError, Proposed, ReadConsistency};
use martelo_devkit::{LocalCluster, LocalClusterConfig};
use martelo_engine::{
    Accepted, Action, Actor, Amount, AuctionId, AuctionSpec, AuctionView, Currency, Description,
    IncrementPolicy, Reply, Request, RequestId, Role, SoftClose, Timestamp, Title, UserId,
};
use martelo_proto::channel::{ChannelSettings, endpoint};
use martelo_types::NodeId;

pub const SELLER: UserId = UserId(1);

/// A running cluster, its client, and the directory that holds its data and logs (kept on
/// failure so the logs can be read: the path is printed).
pub struct TestCluster {
    pub cluster: LocalCluster,
    pub client: Client,
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `nodes` nodes with `shards` auction shards and initializes the cluster.
    pub async fn start(nodes: usize, shards: u32) -> TestCluster {
        TestCluster::start_with(nodes, shards, |_| {}).await
    }

    pub async fn start_with(
        nodes: usize,
        shards: u32,
        adjust: impl FnOnce(&mut LocalClusterConfig),
    ) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix("martelo-cluster-test-")
            .tempdir()
            .expect("temp dir");
        println!("cluster data and logs: {}", dir.path().display());
        let mut config = LocalClusterConfig::new(env!("CARGO_BIN_EXE_martelo"), dir.path());
        config.nodes = nodes;
        config.shard_count = shards;
        config.extra_args = vec!["--log-format".into(), "text".into()];
        adjust(&mut config);
        let cluster = LocalCluster::start(config).await.expect("nodes start");
        cluster.init().await.expect("cluster init");
        let client = connect(&cluster).await;
        TestCluster {
            cluster,
            client,
            dir,
        }
    }

    /// Prints the tail of every node's log (call before failing on a cluster problem).
    pub fn dump_logs(&self) {
        for node in self.cluster.nodes() {
            let log = std::fs::read_to_string(&node.log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            println!("--- node {} log tail ---", node.id);
            for line in tail.into_iter().rev() {
                println!("{line}");
            }
        }
    }
}

/// Waits until a running node other than `not` reports that it leads `group`, and returns
/// it; fails the test after 15 s.
pub async fn must_find_leader(test: &TestCluster, group: u64, not: Option<NodeId>) -> NodeId {
    eventually(Duration::from_secs(15), "a leader", || async {
        for node in test.cluster.node_ids() {
            if Some(node) == not || !test.cluster.is_running(node) {
                continue;
            }
            let status = test.cluster.status(node).await.ok()?;
            let group_status = status.groups.iter().find(|g| g.group_id == group)?;
            if group_status.role() == martelo_proto::RaftRole::Leader {
                return Some(node);
            }
        }
        None
    })
    .await
}

/// An acknowledged bid of a [`Load`]: the acknowledgement's bid id identifies it (a retry
/// answered from the idempotency record names the first attempt's bid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acknowledged {
    pub auction: u64,
    pub bidder: u64,
    pub bid_id: u32,
}

/// Bidders that bid without pause until stopped, each on `auctions` in turn, recording every
/// acknowledged bid by request id. Errors (unknown outcomes) are indeterminate: they may or
/// may not have been applied, and are not recorded.
pub struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<BTreeMap<String, Acknowledged>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Bidders `10..10 + bidders`. Amounts are unique per bid (so each can be found in the
    /// history) and grow, so most bids are accepted.
    pub fn start(client: &Client, auctions: &[u64], bidders: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged: Arc<Mutex<BTreeMap<String, Acknowledged>>> = Arc::default();
        let tasks = (0..bidders)
            .map(|bidder| {
                let (client, stop) = (client.clone(), Arc::clone(&stop));
                let acknowledged = Arc::clone(&acknowledged);
                let auctions = auctions.to_vec();
                tokio::spawn(async move {
                    let mut round = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        round += 1;
                        let auction = auctions[round as usize % auctions.len()];
                        let request_id = format!("b{bidder}-{round}");
                        let amount = 1_000 + round * 100 + bidder;
                        let user = 10 + bidder;
                        if let Ok(proposed) = bid(&client, auction, user, amount, &request_id).await
                            && let martelo_engine::Reply::Accepted(Accepted::Bid { bid_id, .. }) =
                                proposed.reply
                        {
                            let record = Acknowledged {
                                auction,
                                bidder: user,
                                bid_id: bid_id.0,
                            };
                            acknowledged
                                .lock()
                                .expect("lock")
                                .insert(request_id, record);
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            acknowledged,
            tasks,
        }
    }

    /// How many bids were acknowledged so far.
    pub fn accepted(&self) -> usize {
        self.acknowledged.lock().expect("lock").len()
    }

    /// Waits until `more` further bids are acknowledged (fails the test after `timeout`).
    pub async fn must_accept(&self, more: usize, timeout: Duration) {
        let target = self.accepted() + more;
        eventually(
            timeout,
            &format!("{more} more acknowledged bids"),
            || async { (self.accepted() >= target).then_some(()) },
        )
        .await;
    }

    /// Stops the bidders, waits for them, and returns every acknowledged bid.
    pub async fn stop(self) -> BTreeMap<String, Acknowledged> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("bidder task");
        }
        let acknowledged = self.acknowledged.lock().expect("lock");
        acknowledged.clone()
    }
}

/// The sum of every sample of metric `name` on the Prometheus endpoint at `address`
/// (`host:port`) whose labels contain `label` (e.g. `kind="database"`; `""` for all); 0 when
/// the metric is absent. `None` when the endpoint does not answer.
pub async fn metric_total(address: &str, name: &str, label: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    let total = body
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?;
            let matches = (labels.is_empty() || labels.starts_with('{')) && labels.contains(label);
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum();
    Some(total)
}

/// [`metric_total`] summed over every running node of the cluster (metrics must be on).
pub async fn cluster_metric_total(test: &TestCluster, name: &str, label: &str) -> f64 {
    let mut total = 0.0;
    for node in test.cluster.nodes() {
        if let Some(address) = &node.metrics_address {
            total += metric_total(address, name, label).await.unwrap_or(0.0);
        }
    }
    total
}

pub async fn connect(cluster: &LocalCluster) -> Client {
    let options = ClientOptions {
        deadline: Duration::from_secs(10),
        attempts_max: 64,
        ..ClientOptions::default()
    };
    Client::connect(&cluster.api_addresses(), options)
        .await
        .expect("client connects")
}

pub fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros();
    Timestamp(micros as u64)
}

pub fn after(timestamp: Timestamp, duration: Duration) -> Timestamp {
    Timestamp(timestamp.0 + duration.as_micros() as u64)
}

pub fn spec(start: Timestamp, end: Timestamp, soft_close: Option<SoftClose>) -> AuctionSpec {
    AuctionSpec {
        title: Title::try_from("Test lot").expect("title"),
        description: Description::try_from("").expect("description"),
        currency: Currency::try_from("EUR").expect("currency"),
        starting_price: Amount(100),
        reserve_price: None,
        buy_now_price: None,
        increment: IncrementPolicy::Fixed(Amount(10)),
        start,
        end,
        soft_close,
    }
}

pub fn request(user: UserId, role: Role, request_id: &str, action: Action) -> Request {
    Request {
        actor: Actor { user, role },
        request_id: RequestId::try_from(request_id).expect("request id"),
        action,
    }
}

/// Creates auction `id`, open from now for `open_for`.
pub async fn create_auction(client: &Client, id: u64, open_for: Duration) -> Proposed {
    let start = now();
    let action = Action::CreateAuction {
        auction_id: AuctionId(id),
        spec: spec(start, after(start, open_for), None),
    };
    let proposed = client
        .propose(request(
            SELLER,
            Role::Seller,
            &format!("create-{id}"),
            action,
        ))
        .await
        .expect("create proposed");
    assert!(
        matches!(
            proposed.reply,
            Reply::Accepted(Accepted::AuctionCreated { .. })
        ),
        "{:?}",
        proposed.reply
    );
    proposed
}

pub async fn bid(
    client: &Client,
    auction: u64,
    user: u64,
    amount: u64,
    request_id: &str,
) -> Result<Proposed, ProposeError> {
    let action = Action::PlaceBid {
        auction_id: AuctionId(auction),
        amount: Amount(amount),
        max: None,
    };
    client
        .propose(request(UserId(user), Role::Bidder, request_id, action))
        .await
}

/// Bids like [`bid`] and asserts that the bid was decided and accepted; returns the price
/// after it.
pub async fn must_bid(
    client: &Client,
    auction: u64,
    user: u64,
    amount: u64,
    request_id: &str,
) -> Amount {
    let proposed = bid(client, auction, user, amount, request_id)
        .await
        .expect("decided");
    accepted_price(&proposed.reply)
        .unwrap_or_else(|| panic!("bid {request_id} not accepted: {:?}", proposed.reply))
}

/// The price after an accepted bid, `None` for anything else.
pub fn accepted_price(reply: &Reply) -> Option<Amount> {
    match reply {
        Reply::Accepted(Accepted::Bid { price, .. }) => Some(*price),
        _ => None,
    }
}

pub async fn read(client: &Client, auction: u64) -> AuctionView {
    client
        .read_auction(AuctionId(auction), ReadConsistency::Linearizable)
        .await
        .expect("linearizable read")
        .view
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the node at `address` has applied of `auction` (a LOCAL read on exactly that node),
/// or `None` if it cannot answer yet.
pub async fn read_on_node(client: &Client, address: &str, auction: u64) -> Option<AuctionView> {
    let channel = endpoint(address, &ChannelSettings::CLIENT)
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut raw = martelo_proto::services::client_api_client(channel);
    let answer = raw
        .read_auction(martelo_proto::ReadAuctionRequest {
            group_id: client.group_of(AuctionId(auction)).0,
            auction_id: auction,
            consistency: martelo_proto::ReadConsistency::Local.into(),
            traceparent: String::new(),
        })
        .await
        .ok()?
        .into_inner();
    match answer.result? {
        martelo_proto::read_auction_response::Result::Auction(view) => {
            martelo_engine::codec::wire::decode::<_, { martelo_proto::AUCTION_VIEW_BYTES_MAX }>(
                "auction view",
                &view.state,
            )
            .ok()
        }
        martelo_proto::read_auction_response::Result::Error(_) => None,
    }
}

/// What one `martelo` command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything the command wrote: stdout, then stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Asserts the exit code, showing what the command wrote when it differs.
    #[track_caller]
    pub fn must_exit(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "{}", self.output());
        self
    }

    /// Asserts that the command said each of `phrases`, on stdout or stderr.
    #[track_caller]
    pub fn must_say(&self, phrases: &[&str]) -> &Run {
        must_contain(&self.output(), phrases, true);
        self
    }

    /// Asserts that the command said none of `phrases`, on stdout or stderr.
    #[track_caller]
    pub fn must_not_say(&self, phrases: &[&str]) -> &Run {
        must_contain(&self.output(), phrases, false);
        self
    }

    /// Asserts that the command printed each of `phrases` on stdout (its answer, not its
    /// diagnostics).
    #[track_caller]
    pub fn must_print(&self, phrases: &[&str]) -> &Run {
        must_contain(&self.stdout, phrases, true);
        self
    }

    /// Asserts that the command printed none of `phrases` on stdout.
    #[track_caller]
    pub fn must_not_print(&self, phrases: &[&str]) -> &Run {
        must_contain(&self.stdout, phrases, false);
        self
    }
}

/// Asserts that `text` holds every one of `phrases` (`wanted`) or none of them.
#[track_caller]
fn must_contain(text: &str, phrases: &[&str], wanted: bool) {
    for phrase in phrases {
        let verb = if wanted { "expected" } else { "did not expect" };
        assert_eq!(
            text.contains(phrase),
            wanted,
            "{verb} {phrase:?} in:\n{text}"
        );
    }
}

/// Runs the `martelo` binary with `args` (and no `MARTELO_ADDR`), echoing what it did.
pub async fn martelo(args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_martelo"))
        .args(args)
        .env_remove("MARTELO_ADDR")
        .kill_on_drop(true)
        .output()
        .await
        .expect("martelo runs");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    println!(
        "$ martelo {}\n-> {}\n{}",
        args.join(" "),
        run.code,
        run.output()
    );
    run
}
