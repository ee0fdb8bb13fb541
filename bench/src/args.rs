//! `martelo bench` flags, and the checked plan they resolve to.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

/// `martelo bench`: drive bids at a cluster and report throughput and latency.
///
/// Without `--rate` the load is a closed loop: `--concurrency` bidders each send their next
/// bid when the last one is answered. With `--rate` it is an open loop: bids are due at a
/// constant rate, and latency is measured from when each bid was due (corrected for
/// coordinated omission, as wrk2 does).
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Client API addresses of the cluster's nodes, `host:port,...`.
    #[arg(long, value_delimiter = ',', required_unless_present_any = ["local", "gateway"])]
    pub addr: Vec<String>,
    /// Start a local 3-node cluster in a temporary directory and run against it.
    #[arg(long, conflicts_with = "addr")]
    pub local: bool,
    /// With --local: the nodes' Postgres sink writes to this database
    /// (`postgres://user@host:port/db`), and the report adds the sink's throughput and its
    /// lag at the end. Without it the local nodes run with the sink off.
    #[arg(long, requires = "local", value_name = "URL")]
    pub local_postgres: Option<String>,
    /// Prometheus endpoints of the nodes (`host:port,...`), scraped before and after the run
    /// for the Raft batch sizes. Known already with `--local`.
    #[arg(long, value_delimiter = ',')]
    pub metrics_addr: Vec<String>,
    /// The workload.
    #[arg(long, value_enum, default_value_t = Scenario::Hot)]
    pub scenario: Scenario,
    /// How long to measure, e.g. `10s`, `500ms`, `2m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How long to send before measuring (not counted in the report).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Closed loop: bids in flight, one per concurrent bidder (default 32). Open loop: the
    /// most bids in flight; later bids wait for a slot and the wait counts as latency
    /// (default 1024).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Bids per second. Switches to the open loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Distinct bidders (default depends on the scenario).
    #[arg(long)]
    pub bidders: Option<usize>,
    /// Auctions to create (default depends on the scenario; `hot` uses 1).
    #[arg(long)]
    pub auctions: Option<usize>,
    /// Seeds every random choice (auction picked, amount, proxy maximum).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the report goes; default `bench-results/<UTC timestamp>`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Deadline of one bid, retries through the client library included.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// How bids reach the cluster: `grpc` (the client library, straight to the nodes),
    /// `http` (`POST /v1/auctions/{id}/bids` on a gateway) or `ws` (`bid` messages on one
    /// gateway WebSocket per bidder).
    #[arg(long = "target", value_enum, default_value_t = TargetKind::Grpc)]
    pub target: TargetKind,
    /// A running gateway (`http://host:port`) for `--target http|ws` and `--watchers`.
    /// With `--local` the bench starts its own gateway instead.
    #[arg(long, conflicts_with = "local")]
    pub gateway: Option<String>,
    /// WebSocket clients that watch the first (with `hot`, the only) auction during the
    /// run, each measuring commit-to-receive latency and checking every event arrives in
    /// seq order. Needs a gateway (`--local` or `--gateway`).
    #[arg(long, default_value_t = 0)]
    pub watchers: usize,
    /// Watcher connections opened per second at most (the kernel's accept backlog is
    /// finite: connect in waves).
    #[arg(long, default_value_t = 1_000)]
    pub watcher_connect_rate: u32,
}

/// Where the bids go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// gRPC through `martelo-client`, straight to the nodes.
    Grpc,
    /// HTTP/1.1 keep-alive through a gateway.
    Http,
    /// WebSocket `bid` messages through a gateway, one socket per bidder.
    Ws,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Grpc => "grpc",
            TargetKind::Http => "http",
            TargetKind::Ws => "ws",
        }
    }

    pub fn through_gateway(self) -> bool {
        self != TargetKind::Grpc
    }
}

/// What the bidders do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// One hot auction; every bidder races to outbid the others at the current minimum.
    Hot,
    /// Many auctions; every bid goes to one picked uniformly.
    Spread,
    /// A few auctions with a mix of plain and proxy bids (`max` above `amount`), some with a
    /// reserve price.
    Proxy,
    /// Auctions with short windows that close during the run (with soft close), so later
    /// bids are rejected as `auction_not_open` or `auction_closed`.
    Closing,
    /// One hot auction whose bidders climb a ladder: each bid is one increment above the
    /// last bid *sent* (not the last one answered), as people who watch the live price and
    /// bid at once. Bids in flight then rise instead of racing at one stale minimum, so
    /// most are accepted and each makes 2-3 events (`bid_placed`, `price_changed`,
    /// `outbid`): the load for a page watching ~1,000 events a second.
    Ladder,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Hot => "hot",
            Scenario::Spread => "spread",
            Scenario::Proxy => "proxy",
            Scenario::Closing => "closing",
            Scenario::Ladder => "ladder",
        }
    }

    fn default_auctions(self) -> usize {
        match self {
            Scenario::Hot | Scenario::Ladder => 1,
            Scenario::Spread => 1_000,
            Scenario::Proxy => 16,
            Scenario::Closing => 64,
        }
    }

    fn default_bidders(self) -> usize {
        match self {
            Scenario::Hot | Scenario::Ladder => 16,
            Scenario::Spread => 1_000,
            Scenario::Proxy => 64,
            Scenario::Closing => 256,
        }
    }
}

/// How the load is offered.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadMode {
    Closed {
        concurrency: usize,
    },
    Open {
        rate_per_s: f64,
        in_flight_max: usize,
    },
}

pub const CONCURRENCY_MAX: usize = 100_000;
pub const BIDDERS_MAX: usize = 1_000_000;
pub const AUCTIONS_MAX: usize = 100_000;
pub const RATE_MAX: f64 = 10_000_000.0;
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Most `--watchers`: each is a socket in this process, and `ulimit -n` bounds them first.
pub const WATCHERS_MAX: usize = 50_000;
/// Most `--bidders` through a gateway: each is an account, signed up and signed in with an
/// argon2 hash (tens of milliseconds each) before the run.
pub const GATEWAY_BIDDERS_MAX: usize = 10_000;
pub const WATCHER_CONNECT_RATE_MAX: u32 = 100_000;
const CONCURRENCY_CLOSED_DEFAULT: usize = 32;
const IN_FLIGHT_OPEN_DEFAULT: usize = 1_024;

/// The checked settings of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub scenario: Scenario,
    pub mode: LoadMode,
    #[serde(serialize_with = "as_seconds")]
    pub duration: Duration,
    #[serde(serialize_with = "as_seconds")]
    pub warmup: Duration,
    #[serde(serialize_with = "as_seconds")]
    pub request_timeout: Duration,
    pub bidders: usize,
    pub auctions: usize,
    pub seed: u64,
    /// `grpc`, `http` or `ws`.
    pub target: TargetKind,
    /// WebSocket watchers of the first auction (0: none).
    pub watchers: usize,
    pub watcher_connect_rate: u32,
}

fn as_seconds<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(value.as_secs_f64())
}

impl BenchArgs {
    /// Checks the flags against each other and the limits, and fills in defaults.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let no_addr = self.addr.iter().all(|addr| addr.trim().is_empty());
        let gateway_needed = self.target.through_gateway() || self.watchers > 0;
        let gateway = self.gateway.as_deref().map(str::trim).unwrap_or_default();
        if !self.local {
            if self.target == TargetKind::Grpc && no_addr {
                bail!("no cluster to run against: pass --addr HOST:PORT,... or --local");
            }
            if gateway_needed && gateway.is_empty() {
                bail!(
                    "--target {} and --watchers need a gateway: pass --gateway http://HOST:PORT \
                     or --local",
                    self.target.as_str()
                );
            }
            let is_url = gateway.starts_with("http://") || gateway.starts_with("https://");
            if !gateway.is_empty() && !is_url {
                bail!("--gateway {gateway:?} must be an http:// or https:// URL");
            }
        }
        if self.watchers > WATCHERS_MAX {
            bail!(
                "--watchers {} must be at most {WATCHERS_MAX}",
                self.watchers
            );
        }
        if !(1..=WATCHER_CONNECT_RATE_MAX).contains(&self.watcher_connect_rate) {
            bail!(
                "--watcher-connect-rate {} must be between 1 and {WATCHER_CONNECT_RATE_MAX}",
                self.watcher_connect_rate
            );
        }
        if self.target.through_gateway() && self.scenario == Scenario::Closing {
            // The gateway takes soft-close windows in whole seconds; the closing scenario's
            // are fractions of a second, so it would measure a different workload.
            bail!(
                "--scenario closing runs over --target grpc only (its soft-close windows are \
                 below the gateway's one-second granularity)"
            );
        }
        if self.duration.is_zero() || self.duration > DURATION_MAX {
            bail!(
                "--duration {:?} must be above zero and at most 24h",
                self.duration
            );
        }
        if self.warmup > DURATION_MAX {
            bail!("--warmup {:?} must be at most 24h", self.warmup);
        }
        if self.request_timeout < Duration::from_millis(10) || self.request_timeout > DURATION_MAX {
            bail!(
                "--request-timeout {:?} must be between 10ms and 24h",
                self.request_timeout
            );
        }
        let mode = match self.rate {
            None => LoadMode::Closed {
                concurrency: self.concurrency.unwrap_or(CONCURRENCY_CLOSED_DEFAULT),
            },
            Some(rate) => {
                if !(rate.is_finite() && rate > 0.0 && rate <= RATE_MAX) {
                    bail!("--rate {rate} must be above 0 and at most {RATE_MAX} bids per second");
                }
                LoadMode::Open {
                    rate_per_s: rate,
                    in_flight_max: self.concurrency.unwrap_or(IN_FLIGHT_OPEN_DEFAULT),
                }
            }
        };
        let concurrency = match mode {
            LoadMode::Closed { concurrency } => concurrency,
            LoadMode::Open { in_flight_max, .. } => in_flight_max,
        };
        if !(1..=CONCURRENCY_MAX).contains(&concurrency) {
            bail!("--concurrency {concurrency} must be between 1 and {CONCURRENCY_MAX}");
        }
        let bidders = self.bidders.unwrap_or(self.scenario.default_bidders());
        if !(1..=BIDDERS_MAX).contains(&bidders) {
            bail!("--bidders {bidders} must be between 1 and {BIDDERS_MAX}");
        }
        if self.target.through_gateway() && bidders > GATEWAY_BIDDERS_MAX {
            bail!(
                "--bidders {bidders} must be at most {GATEWAY_BIDDERS_MAX} through a gateway \
                 (each is an account signed up before the run)"
            );
        }
        let auctions = self.auctions.unwrap_or(self.scenario.default_auctions());
        if !(1..=AUCTIONS_MAX).contains(&auctions) {
            bail!("--auctions {auctions} must be between 1 and {AUCTIONS_MAX}");
        }
        Ok(Plan {
            scenario: self.scenario,
            mode,
            duration: self.duration,
            warmup: self.warmup,
            request_timeout: self.request_timeout,
            bidders,
            auctions,
            seed: self.seed,
            target: self.target,
            watchers: self.watchers,
            watcher_connect_rate: self.watcher_connect_rate,
        })
    }
}

/// Parses `1500ms`, `10s`, `2m`, `1h` or a bare number of seconds (`2.5`).
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration such as 10s, 500ms or 2m"))?;
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => bail!("unknown unit {other:?} in {text:?}: use ms, s, m or h"),
    };
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || seconds > DURATION_MAX.as_secs_f64() {
        bail!("{text:?} is longer than 24h");
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(flags: &[&str]) -> Result<BenchArgs, clap::Error> {
        let argv = std::iter::once("martelo-bench").chain(flags.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.bench)
    }

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("10s").ok(), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_duration("1.5").ok(),
            Some(Duration::from_millis(1500))
        );
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("48h").is_err());
    }

    #[test]
    fn the_ci_smoke_flags_parse_into_a_closed_loop_plan() {
        let args = parse(&["--local", "--duration", "5s", "--warmup", "1s"]).expect("parses");
        let plan = args.plan().expect("valid");
        assert_eq!(plan.mode, LoadMode::Closed { concurrency: 32 });
        assert_eq!(plan.scenario, Scenario::Hot);
        assert_eq!((plan.auctions, plan.bidders), (1, 16));
        assert_eq!(plan.duration, Duration::from_secs(5));
    }

    #[test]
    fn a_rate_switches_to_the_open_loop() {
        let args = parse(&["--addr", "127.0.0.1:1,127.0.0.1:2", "--rate", "500"]).expect("parses");
        assert_eq!(args.addr.len(), 2);
        let plan = args.plan().expect("valid");
        assert_eq!(
            plan.mode,
            LoadMode::Open {
                rate_per_s: 500.0,
                in_flight_max: 1_024
            }
        );
    }

    #[test]
    fn inconsistent_or_out_of_range_flags_are_refused() {
        assert!(parse(&[]).is_err(), "a target is required");
        assert!(parse(&["--local", "--addr", "127.0.0.1:1"]).is_err());
        let zero_rate = parse(&["--local", "--rate", "0"]).expect("parses");
        assert!(zero_rate.plan().is_err());
        let no_bidders = parse(&["--local", "--bidders", "0"]).expect("parses");
        assert!(no_bidders.plan().is_err());
        let no_concurrency = parse(&["--local", "--concurrency", "0"]).expect("parses");
        assert!(no_concurrency.plan().is_err());
    }

    #[test]
    fn gateway_targets_and_watchers_need_a_gateway() {
        let plan = parse(&["--local", "--target", "ws", "--watchers", "5"])
            .expect("parses")
            .plan()
            .expect("valid");
        assert_eq!((plan.target, plan.watchers), (TargetKind::Ws, 5));
        let remote = parse(&["--gateway", "http://127.0.0.1:8080", "--target", "http"])
            .expect("parses without --addr");
        assert_eq!(remote.plan().expect("valid").target, TargetKind::Http);
        let no_gateway = parse(&["--addr", "127.0.0.1:1", "--target", "http"]).expect("parses");
        let error = no_gateway.plan().expect_err("no gateway");
        assert!(error.to_string().contains("--gateway"), "{error}");
        let watchers = parse(&["--addr", "127.0.0.1:1", "--watchers", "3"]).expect("parses");
        assert!(watchers.plan().is_err(), "watchers need a gateway");
        let not_url = parse(&["--gateway", "127.0.0.1:8080", "--target", "ws"]).expect("parses");
        assert!(not_url.plan().is_err());
        let grpc_without_addr = parse(&["--gateway", "http://127.0.0.1:1"]).expect("parses");
        assert!(grpc_without_addr.plan().is_err(), "grpc needs --addr");
        let closing =
            parse(&["--local", "--target", "http", "--scenario", "closing"]).expect("parses");
        assert!(closing.plan().is_err());
        assert!(parse(&["--local", "--gateway", "http://x"]).is_err());
    }

    #[test]
    fn the_ladder_scenario_runs_through_a_gateway_on_one_auction() {
        let flags = [
            "--gateway",
            "http://127.0.0.1:8080",
            "--target",
            "ws",
            "--scenario",
            "ladder",
        ];
        let plan = parse(&flags).expect("parses").plan().expect("valid");
        assert_eq!(plan.scenario, Scenario::Ladder);
        assert_eq!((plan.auctions, plan.bidders), (1, 16));
        assert_eq!(Scenario::Ladder.as_str(), "ladder");
    }
}
