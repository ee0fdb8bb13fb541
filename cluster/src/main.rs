//! The `martelo` command-line tool: runs nodes and local clusters, administers clusters.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use martelo_cluster::cli::{
    AdminCommand, AuctionCommand, ClusterCommand, LeaderCommand, NodeCommand, SnapshotArgs,
    StatusArgs, UserCommand,
};
use martelo_cluster::node::{self, NodeArgs};

#[derive(Debug, Parser)]
#[command(
    name = "martelo",
    version,
    about = "martelo: a replicated real-time auction platform",
    long_about = "martelo: a replicated real-time auction platform.\n\n\
        Start a local 3-node cluster and a gateway with `martelo dev`; run a node with `martelo node` and a gateway with `martelo gateway`; \
        inspect and administer a cluster with `martelo status`, `martelo cluster init`, \
        `martelo node add|remove`, `martelo leader transfer`, `martelo snapshot`, \
        `martelo auction list|show` and `martelo user create|list`. Admin commands find the cluster through --addr \
        (env MARTELO_ADDR, default 127.0.0.1:7001)."
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

// `martelo node`'s flags make its variant far larger than the others; there is one value,
// parsed once at startup, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Commands {
    /// Run a node (`martelo node --id 1 --listen 127.0.0.1:7001 --data-dir DIR`), or add a
    /// node to groups / remove one (`martelo node add|remove`).
    Node(NodeCli),
    /// Start a 3-node cluster on loopback as child processes, initialize it, start a
    /// gateway, print where everything is, and stop it all on Ctrl-C.
    Dev(martelo_cluster::cli::DevArgs),
    /// Run a gateway: the HTTP + WebSocket API for bidders, sellers and admins.
    Gateway(martelo_cluster::cli::GatewayArgs),
    /// Show every node's view of every group, and whether each group has a healthy leader.
    Status(StatusArgs),
    /// Bootstrap a new cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Move a group's leadership to another node.
    #[command(subcommand)]
    Leader(LeaderCommand),
    /// Build a snapshot of a group's state on one node and purge the log it covers.
    Snapshot(SnapshotArgs),
    /// Inspect auctions.
    #[command(subcommand)]
    Auction(AuctionCommand),
    /// Create and list user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Drive load at a cluster and report throughput and latency.
    Bench(martelo_bench::BenchArgs),
    /// Replay a sample auction through the engine and print every command, reply and event
    /// as JSON lines, then the final state digest. No cluster is involved.
    Demo,
}

/// `martelo node` runs a node; `martelo node add` and `martelo node remove` change groups.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct NodeCli {
    #[command(subcommand)]
    membership: Option<NodeCommand>,
    #[command(flatten)]
    run: NodeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the async runtime: {error}"), 1),
    };
    runtime.block_on(run(cli.command))
}

async fn run(command: Commands) -> ExitCode {
    let admin = match command {
        Commands::Node(NodeCli {
            membership: Some(membership),
            ..
        }) => AdminCommand::Node(membership),
        Commands::Node(NodeCli { run, .. }) => return run_node(run).await,
        Commands::Dev(args) => return report(martelo_cluster::cli::run_dev(args).await),
        Commands::Gateway(args) => return report(martelo_cluster::cli::run_gateway(args).await),
        Commands::Bench(args) => {
            let binary = std::env::current_exe().unwrap_or_else(|_| "martelo".into());
            return report(martelo_bench::run(args, binary).await);
        }
        Commands::Demo => return report(demo()),
        Commands::Status(args) => AdminCommand::Status(args),
        Commands::Cluster(command) => AdminCommand::Cluster(command),
        Commands::Leader(command) => AdminCommand::Leader(command),
        Commands::Snapshot(args) => AdminCommand::Snapshot(args),
        Commands::Auction(command) => AdminCommand::Auction(command),
        Commands::User(command) => AdminCommand::User(command),
    };
    match admin.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string(), error.exit_code()),
    }
}

async fn run_node(args: NodeArgs) -> ExitCode {
    let print_config = args.print_config;
    let config = match args.resolve() {
        Ok(config) => config,
        Err(error) => return fail(&format!("{error:#}"), 2),
    };
    if print_config {
        // `--print-config`: the effective settings, as a config file would hold them.
        return match config.to_toml() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => fail(&format!("{error:#}"), 1),
        };
    }
    node::telemetry::init_logs(config.log_format);
    match node::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "node failed");
            fail(&format!("{error:#}"), 1)
        }
    }
}

fn demo() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in martelo_cluster::demo::run()? {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&format!("{error:#}"), 1),
    }
}

/// Prints `message` on stderr and returns the exit code.
fn fail(message: &str, code: i32) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {message}");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
