//! `martelo-jepsen`: runs the fault suite against real `martelo node` processes
//! (`run`), or re-checks a run directory (`check DIR`). See docs/TESTING.md.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use martelo_jepsen::nemesis::{NemesisKind, PartitionShape};
use martelo_jepsen::netns::{self, NetMode};
use martelo_jepsen::runner::{self, RunOptions, Via};
use martelo_jepsen::sink::SinkMode;

#[derive(Debug, Parser)]
#[command(name = "martelo-jepsen", about = "martelo's fault suite")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a cluster, run the workload under faults, check the history, write a report.
    Run(Box<RunArgs>),
    /// Re-check an existing run directory and rewrite its summary and report.
    Check {
        /// A directory written by `run`.
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The `martelo` binary (default: $MARTELO_BIN, else `martelo` next to this program).
    #[arg(long)]
    martelo_bin: Option<PathBuf>,
    /// The run directory (default: jepsen-runs/<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the nodes keep their data and logs (default: <out>/cluster). Node data dirs
    /// are removed at the end unless --keep-data; logs stay.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Nodes in the cluster (3 or more; 5 by default).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Auction shards (Raft groups besides the meta group).
    #[arg(long, default_value_t = 3)]
    shards: u32,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Auctions open at a time (each replaced by a new one when it closes).
    #[arg(long, default_value_t = 6)]
    auctions: usize,
    /// Seconds of workload (faults included).
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Operations per second over all clients, a ceiling.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Faults: a comma-separated list of kill, pause, partition, clock, membership,
    /// transfer, postgres (needs --sink private), or `all` (postgres included with
    /// --sink private), or `none`.
    #[arg(long, default_value = "all")]
    nemesis: String,
    /// Seconds from one fault's start to the next.
    #[arg(long, default_value_t = 10.0)]
    nemesis_interval: f64,
    /// Seconds each fault lasts (default: 60% of the interval).
    #[arg(long)]
    fault_duration: Option<f64>,
    /// Partition shapes to choose from (default: all four).
    #[arg(long, value_enum, value_delimiter = ',')]
    partition: Vec<PartitionShape>,
    /// Seed of every random choice (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Auction windows are drawn from [min, max] seconds.
    #[arg(long, default_value_t = 6.0)]
    window_min: f64,
    #[arg(long, default_value_t = 12.0)]
    window_max: f64,
    /// Percent of operations that are linearizable reads.
    #[arg(long, default_value_t = 35)]
    read_percent: u32,
    /// Percent of acknowledged bids whose request id is sent again (at-least-once delivery).
    #[arg(long, default_value_t = 5)]
    resend_percent: u32,
    /// Start nodes with `--test-plant-bug NAME` (binary built with the planted-bugs feature).
    #[arg(long)]
    plant_bug: Vec<String>,
    /// Keep the nodes' data dirs in the run directory.
    #[arg(long)]
    keep_data: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// How partitions cut peer links: `proxy`, a TCP proxy per link (unprivileged), or
    /// `iptables`, DROP rules in a private network namespace made for the run (root only).
    #[arg(long, value_enum, default_value_t = NetMode::Proxy)]
    net: NetMode,
    /// How workload clients reach the cluster: `grpc` (martelo-client, straight to the
    /// nodes) or `gateway` (HTTP through `martelo gateway` processes, as bidders do).
    #[arg(long, value_enum, default_value_t = Via::Grpc)]
    via: Via,
    /// With --via gateway: how many gateways (clients spread over them, retry on the next).
    #[arg(long, default_value_t = 2)]
    gateways: usize,
    /// With --via gateway: bidder accounts to sign up; each bids at most once per auction.
    #[arg(long, default_value_t = 150)]
    gateway_bidders: usize,
    /// With --via gateway: no kill -9 of gateways (by default, with two gateways or more and
    /// any nemesis, one gateway is killed and restarted every interval).
    #[arg(long)]
    no_gateway_faults: bool,
    /// The nodes' Postgres sink: `off` (default), `private` (a Postgres server of the run's
    /// own in <out>/postgres, which the postgres nemesis restarts), or a server URL
    /// `postgres://user@host:port` (the run creates a fresh database there). With a sink,
    /// the I6 checker compares Postgres with the Raft state after the run.
    #[arg(long, default_value = "off")]
    sink: String,
    /// Internal: set by `--net iptables` on the copy of this run started inside the
    /// namespace NAME.
    #[arg(long, hide = true, value_name = "NAME")]
    inside_netns: Option<String>,
}

fn default_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MARTELO_BIN") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("martelo")))
        .unwrap_or_else(|| PathBuf::from("martelo"))
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// The error of `--net iptables` without root; tests match it.
const NEEDS_ROOT: &str = "--net iptables needs root (it creates a network namespace and \
     iptables rules); run as root, or use --net proxy (the default, unprivileged)";

/// `--net iptables`, outside the namespace: makes the namespace, runs this same command line
/// inside it with `--inside-netns NAME`, waits, and deletes the namespace whatever happened.
/// Returns the inner run's exit code.
fn run_in_namespace() -> anyhow::Result<ExitCode> {
    anyhow::ensure!(netns::is_root(), NEEDS_ROOT);
    for (tool, flag) in [("ip", "-V"), ("iptables", "--version")] {
        let found = std::process::Command::new(tool)
            .arg(flag)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        anyhow::ensure!(
            found,
            "--net iptables needs `{tool}` on PATH (Debian: apt-get install iproute2 iptables)"
        );
    }
    let exe = std::env::current_exe()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = netns::namespace_name(std::process::id());
    netns::run_command("ip", &netns::netns_add_args(&name))?;
    let result = netns::run_command("ip", &netns::netns_lo_up_args(&name)).and_then(|()| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(wait_inner(netns::netns_exec_args(&name, &exe, &args)))
    });
    let deleted = netns::run_command("ip", &netns::netns_del_args(&name));
    let code = result?;
    deleted?;
    Ok(code)
}

/// Runs `ip <args>` (the inner run) to its end. A Ctrl-C in the terminal reaches the inner
/// run too, which stops its nodes and returns; SIGINT or SIGTERM sent to this process alone
/// is passed on as SIGINT. Either way this process waits, so the namespace is deleted after.
async fn wait_inner(args: Vec<String>) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut child = tokio::process::Command::new("ip").args(&args).spawn()?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = interrupt.recv() => forward_interrupt(child.id()),
            _ = terminate.recv() => forward_interrupt(child.id()),
        }
    };
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        None => ExitCode::from(2),
    })
}

fn forward_interrupt(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
    }
}

fn options(args: RunArgs) -> anyhow::Result<RunOptions> {
    anyhow::ensure!(args.nodes >= 3, "--nodes {} : at least 3", args.nodes);
    match (&args.inside_netns, args.net) {
        (Some(name), NetMode::Iptables) => netns::ensure_inside(name)?,
        (Some(_), NetMode::Proxy) => anyhow::bail!("--inside-netns goes with --net iptables"),
        (None, _) => {}
    }
    anyhow::ensure!(
        args.clients >= 1 && args.auctions >= 1,
        "clients and auctions >= 1"
    );
    anyhow::ensure!(
        args.via == Via::Grpc || (args.gateways >= 1 && args.gateway_bidders >= 1),
        "--via gateway: --gateways and --gateway-bidders >= 1"
    );
    anyhow::ensure!(
        args.via == Via::Grpc || args.net == NetMode::Proxy,
        "--via gateway has not been tried with --net iptables yet: use --net proxy"
    );
    let sink: SinkMode = args.sink.parse()?;
    let nemeses = NemesisKind::parse_list(&args.nemesis, sink == SinkMode::Private)?;
    anyhow::ensure!(
        args.window_min >= 1.0 && args.window_max >= args.window_min,
        "windows: 1 <= --window-min <= --window-max"
    );
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(1)
    });
    let interval = Duration::from_secs_f64(args.nemesis_interval.max(1.0));
    let fault = args
        .fault_duration
        .map(|seconds| Duration::from_secs_f64(seconds.max(0.1)))
        .unwrap_or(interval.mul_f64(0.6));
    Ok(RunOptions {
        binary: args.martelo_bin.unwrap_or_else(default_binary),
        out: args
            .out
            .unwrap_or_else(|| PathBuf::from(format!("jepsen-runs/{}", unix_seconds()))),
        data_dir: args.data_dir,
        nodes: args.nodes,
        shard_count: args.shards,
        clients: args.clients,
        auctions: args.auctions,
        duration: Duration::from_secs_f64(args.duration.max(1.0)),
        rate: args.rate.max(1.0),
        gateway_faults: args.via == Via::Gateway
            && !args.no_gateway_faults
            && args.gateways >= 2
            && !nemeses.is_empty(),
        nemeses,
        nemesis_interval: interval,
        fault_duration: fault,
        partition_shapes: args.partition,
        seed,
        window_min: Duration::from_secs_f64(args.window_min),
        window_max: Duration::from_secs_f64(args.window_max),
        read_percent: args.read_percent.min(100),
        resend_percent: args.resend_percent.min(100),
        planted_bugs: args.plant_bug,
        keep_data: args.keep_data,
        quiet: args.quiet,
        net: args.net,
        via: args.via,
        gateways: args.gateways,
        gateway_bidders: args.gateway_bidders,
        sink,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) if args.net == NetMode::Iptables && args.inside_netns.is_none() => {
            return run_in_namespace().unwrap_or_else(|error| {
                let _ = writeln!(std::io::stderr(), "martelo-jepsen: {error:#}");
                ExitCode::from(2)
            });
        }
        Command::Run(args) => options(*args).and_then(|options| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    // On Ctrl-C the run is dropped; dropping the runtime then drops every
                    // task, and the local cluster kills its nodes when the last one goes.
                    tokio::select! {
                        summary = runner::run(options) => summary,
                        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
                    }
                })
        }),
        Command::Check { dir } => runner::check_dir(&dir).inspect(|summary| {
            let _ = write!(
                std::io::stdout(),
                "{}",
                martelo_jepsen::report::render_text(summary)
            );
        }),
    };
    match result {
        Ok(summary) if summary.valid => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "martelo-jepsen: {error:#}");
            ExitCode::from(2)
        }
    }
}
