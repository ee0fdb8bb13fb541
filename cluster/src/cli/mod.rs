//! The `martelo` command line: the one clap tree ([`Cli`], [`Command`]), what each command
//! asks of the cluster through [`Admin`], what it prints, and the exit code it ends with.
//!
//! The binary's `main.rs` only parses [`Cli`], builds the tokio runtime and calls
//! [`Command::run`]. Admin commands that fail print the error and exit with
//! [`CliError::exit_code`]; the codes are tabled in [`error`]. The long-running commands
//! (`node`, `dev`, `gateway`, `bench`) exit 1 on failure and 2 on a bad configuration.
//!
//! Where things live:
//!
//! - this file: [`Cli`], [`Command`] (every subcommand, with its help text) and its dispatch;
//! - [`entry`]: the process-level glue: running a node in the foreground, `demo`, and how
//!   errors become exit codes;
//! - [`args`]: what every admin subcommand shares: [`Connection`] (`--addr`) and the clap
//!   value parsers for addresses, node ids and read consistency;
//! - [`error`]: [`CliError`], the exit codes and [`EXIT_CODES`], which a test holds
//!   docs/OPERATIONS.md to;
//! - [`cluster`]: `status`, `cluster init` and `snapshot`;
//! - [`db`]: `db migrate`, the sink's Postgres schema;
//! - [`audit`]: `audit`, the admin audit search over the sink's Postgres (`--json`, `--csv`);
//! - [`membership`]: `node add`, `node remove` and `leader transfer`;
//! - [`auction`]: `auction show` and `auction list`, with their own flag parsers;
//! - [`user`]: `user create` (hashes the password, proposes as the operator) and `user list`;
//! - [`render`]: the text and JSON those commands print (everything but the status table);
//! - [`status_table`]: the table `status` prints;
//! - [`dev`]: `martelo dev`, a local cluster (and a gateway) in the foreground;
//! - [`gateway`]: `martelo gateway`, one gateway in the foreground.
//!
//! Output is written to a `Write` (stdout in [`Command::run`]), so the formatting
//! functions ([`render_auction`], [`render_membership`]) are tested without a cluster.
//!
//! What does not live here: talking to nodes, retries and topology (`martelo-client`), ids
//! and address parsing (`martelo-types`), the child processes behind `martelo dev`
//! (`martelo-devkit`), the node itself ([`crate::node`]) and the load generator
//! (`martelo-bench`).

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use martelo_client::admin::Admin;

use crate::node::NodeArgs;

pub mod args;
pub mod auction;
pub mod audit;
pub mod cluster;
pub mod db;
pub mod dev;
pub mod entry;
pub mod error;
pub mod gateway;
pub mod membership;
pub mod render;
pub mod status_table;
pub mod user;

pub use args::Connection;
pub use auction::{
    AuctionCommand, AuctionListArgs, AuctionShowArgs, BidsShown, ListStatus, parse_bids_shown,
    parse_closing_within,
};
pub use audit::{AuditArgs, render_audit_table};
pub use cluster::{ClusterCommand, InitArgs, SnapshotArgs, StatusArgs};
pub use db::{DbCommand, DbMigrateArgs, PostgresArgs};
pub use dev::{DevArgs, run_dev};
pub use error::{CliError, EXIT_CODES};
pub use gateway::{GatewayArgs, run_gateway};
pub use membership::{LeaderCommand, LeaderTransferArgs, NodeAddArgs, NodeCommand, NodeRemoveArgs};
pub use render::{
    auction_list_json, format_timestamp, render_auction, render_auction_list, render_layout,
    render_membership,
};
pub use status_table::render_table;
pub use user::{UserCommand, UserCreateArgs, UserListArgs};

/// `martelo`: run nodes, a gateway and local clusters; administer a cluster.
#[derive(Debug, Parser)]
#[command(
    name = "martelo",
    version,
    about = "martelo: a replicated real-time auction platform",
    long_about = "martelo: a replicated real-time auction platform.\n\n\
        Start a local 3-node cluster and a gateway with `martelo dev`; run a node with \
        `martelo node` and a gateway with `martelo gateway`; inspect and administer a cluster \
        with `martelo status`, `martelo cluster init`, `martelo node add|remove`, \
        `martelo leader transfer`, `martelo snapshot`, `martelo auction list|show`, \
        `martelo user create|list`; prepare the sink's database with `martelo db migrate` \
        and search its audit trail with `martelo audit`. Admin commands find the cluster \
        through --addr (env MARTELO_ADDR, default 127.0.0.1:7001)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every `martelo` subcommand.
// `martelo node`'s flags make its variant far larger than the others; there is one value,
// parsed once at startup, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (`martelo node --id 1 --listen 127.0.0.1:7001 --data-dir DIR`), or add a
    /// node to the cluster's groups / remove one (`martelo node add|remove`).
    Node(NodeCli),
    /// Start a 3-node cluster on loopback as child processes, initialize it, start a
    /// gateway, print where everything is, and stop it all on Ctrl-C.
    Dev(DevArgs),
    /// Run a gateway: the HTTP + WebSocket API for bidders, sellers and admins.
    Gateway(GatewayArgs),
    /// Show every node's view of every group, and the cluster's health.
    ///
    /// A group is healthy when it has a leader that a majority of its voters acknowledge.
    /// Nodes that do not answer are listed, not fatal.
    Status(StatusArgs),
    /// Bootstrap a new cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Move a group's leadership to another node.
    #[command(subcommand)]
    Leader(LeaderCommand),
    /// Build a snapshot of a group's state on one node.
    ///
    /// Snapshots are per replica; the node then purges its log up to the snapshot as
    /// configured.
    Snapshot(SnapshotArgs),
    /// Inspect auctions.
    #[command(subcommand)]
    Auction(AuctionCommand),
    /// Create and list user accounts (the meta group's).
    #[command(subcommand)]
    User(UserCommand),
    /// The sink's Postgres database (`martelo db migrate --postgres URL`).
    #[command(subcommand)]
    Db(DbCommand),
    /// Search the audit trail in the sink's Postgres: every committed event, by user, actor,
    /// auction, kind and time range (`martelo audit --postgres URL --kind user_suspended`).
    /// A table by default; `--json` or `--csv`.
    Audit(AuditArgs),
    /// Drive load at a cluster and report throughput and latency.
    Bench(martelo_bench::BenchArgs),
    /// Replay a sample auction through the engine and print every command, reply and event
    /// as JSON lines, then the final state digest. No cluster is involved.
    Demo,
}

/// `martelo node` runs a node; `martelo node add` and `martelo node remove` change groups.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeCli {
    #[command(subcommand)]
    pub membership: Option<NodeCommand>,
    #[command(flatten)]
    pub run: NodeArgs,
}

impl Command {
    /// Runs the command to its end, printing to stdout, and returns the process exit code.
    pub async fn run(self) -> ExitCode {
        let result = match self {
            Command::Node(NodeCli {
                membership: None,
                run,
            }) => return entry::run_node(run).await,
            Command::Dev(args) => return entry::report(run_dev(args).await),
            Command::Gateway(args) => return entry::report(run_gateway(args).await),
            Command::Bench(args) => {
                let binary = std::env::current_exe().unwrap_or_else(|_| "martelo".into());
                return entry::report(martelo_bench::run(args, binary).await);
            }
            Command::Demo => return entry::report(entry::demo()),
            admin => {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                admin.execute(&Admin::default(), &mut out).await
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => entry::fail(&error.to_string(), error.exit_code()),
        }
    }

    /// Runs an admin command with `admin`, printing to `out`. The foreground commands
    /// (`node` without a subcommand, `dev`, `gateway`, `bench`, `demo`) are refused as a
    /// failure: they run only through [`Command::run`].
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        match self {
            Command::Status(args) => args.execute(admin, out).await,
            Command::Cluster(ClusterCommand::Init(args)) => args.execute(admin, out).await,
            Command::Node(NodeCli {
                membership: Some(NodeCommand::Add(args)),
                ..
            }) => args.execute(admin, out).await,
            Command::Node(NodeCli {
                membership: Some(NodeCommand::Remove(args)),
                ..
            }) => args.execute(admin, out).await,
            Command::Leader(LeaderCommand::Transfer(args)) => args.execute(admin, out).await,
            Command::Snapshot(args) => args.execute(admin, out).await,
            Command::Auction(AuctionCommand::Show(args)) => args.execute(admin, out).await,
            Command::Auction(AuctionCommand::List(args)) => args.execute(admin, out).await,
            Command::User(UserCommand::Create(args)) => args.execute(admin, out).await,
            Command::User(UserCommand::List(args)) => args.execute(admin, out).await,
            Command::Db(DbCommand::Migrate(args)) => args.execute(out).await,
            Command::Audit(args) => args.execute(out).await,
            Command::Node(NodeCli {
                membership: None, ..
            })
            | Command::Dev(_)
            | Command::Gateway(_)
            | Command::Bench(_)
            | Command::Demo => Err(CliError::Failed(
                "this command runs in the foreground through `Command::run`, not as an admin \
                 command"
                    .into(),
            )),
        }
    }
}

/// The `martelo` tree as a parser, for the tests of every file in this module.
#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// The whole tree, under the name the tests of this module use.
    pub(super) type TestCli = Cli;

    /// Parses `martelo ARGS...`; panics when clap refuses.
    pub(super) fn parse(args: &[&str]) -> Command {
        let mut argv = vec!["martelo"];
        argv.extend_from_slice(args);
        TestCli::try_parse_from(argv).expect("parses").command
    }

    #[test]
    fn the_clap_tree_is_consistent() {
        TestCli::command().debug_assert();
    }
}
