//! Shared pieces of the multi-process cluster tests: a real cluster of `martelo node`
//! processes on loopback with temporary data dirs, and builders for engine requests.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use martelo_client::{Client, ClientOptions, ProposeError, Proposed, ReadConsistency};
use martelo_devkit::{LocalCluster, LocalClusterConfig};
use martelo_engine::{
    Accepted, Action, Actor, Amount, AuctionId, AuctionSpec, AuctionView, Currency, Description,
    IncrementPolicy, Reply, Request, RequestId, Role, SoftClose, Timestamp, Title, UserId,
};
use martelo_proto::channel::{ChannelSettings, endpoint};

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
