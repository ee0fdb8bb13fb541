//! The `martelo` admin subcommands and `martelo dev`: clap arguments, what each command asks
//! of the cluster through [`Admin`], what it prints, and the exit code it ends with.
//!
//! The `martelo` binary wires [`AdminCommand`] into its clap tree (for example as a
//! `#[command(flatten)]` variant) and calls [`AdminCommand::run`] inside a tokio runtime.
//! On error it prints the error and exits with [`CliError::exit_code`]; the codes are
//! tabled in [`error`].
//!
//! Where things live:
//!
//! - this file: [`AdminCommand`], the admin subcommand tree, and its dispatch;
//! - [`args`]: what every admin subcommand shares: [`Connection`] (`--addr`) and the clap
//!   value parsers for addresses, node ids and read consistency;
//! - [`error`]: [`CliError`], the exit codes and [`EXIT_CODES`], which a test holds
//!   docs/OPERATIONS.md to;
//! - [`cluster`]: `status`, `cluster init` and `snapshot`;
//! - [`membership`]: `node add`, `node remove` and `leader transfer`;
//! - [`auction`]: `auction show` and `auction list`, with their own flag parsers;
//! - [`user`]: `user create` (hashes the password, proposes as the operator) and `user list`;
//! - [`render`]: the text and JSON those commands print (everything but the status table);
//! - [`status_table`]: the table `status` prints;
//! - [`dev`]: `martelo dev`, a local cluster (and a gateway) in the foreground;
//! - [`gateway`]: `martelo gateway`, one gateway in the foreground.
//!
//! Output is written to a `Write` (stdout in [`AdminCommand::run`]), so the formatting
//! functions ([`render_auction`], [`render_membership`]) are tested without a cluster.
//!
//! What does not live here: talking to nodes, retries and topology (`martelo-client`), ids
//! and address parsing (`martelo-types`), the child processes behind `martelo dev`
//! (`martelo-devkit`), and running a node (`martelo node` without a subcommand: the binary's
//! `main.rs` and [`crate::node`]).

use std::io::Write;

use clap::Subcommand;
use martelo_client::admin::Admin;

pub mod args;
pub mod auction;
pub mod cluster;
pub mod dev;
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
pub use cluster::{ClusterCommand, InitArgs, SnapshotArgs, StatusArgs};
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

/// The cluster administration commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Show every node's view of every group, and the cluster's health.
    ///
    /// A group is healthy when it has a leader that a majority of its voters acknowledge.
    /// Nodes that do not answer are listed, not fatal.
    Status(StatusArgs),
    /// Bootstrap a new cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Add a node to the cluster's groups, or remove one.
    #[command(subcommand)]
    Node(NodeCommand),
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
}

impl AdminCommand {
    /// Runs the command and prints to stdout.
    pub async fn run(self) -> Result<(), CliError> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        self.execute(&Admin::default(), &mut out).await
    }

    /// Runs the command with `admin`, printing to `out`.
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        match self {
            AdminCommand::Status(args) => args.execute(admin, out).await,
            AdminCommand::Cluster(ClusterCommand::Init(args)) => args.execute(admin, out).await,
            AdminCommand::Node(NodeCommand::Add(args)) => args.execute(admin, out).await,
            AdminCommand::Node(NodeCommand::Remove(args)) => args.execute(admin, out).await,
            AdminCommand::Leader(LeaderCommand::Transfer(args)) => args.execute(admin, out).await,
            AdminCommand::Snapshot(args) => args.execute(admin, out).await,
            AdminCommand::Auction(AuctionCommand::Show(args)) => args.execute(admin, out).await,
            AdminCommand::Auction(AuctionCommand::List(args)) => args.execute(admin, out).await,
            AdminCommand::User(UserCommand::Create(args)) => args.execute(admin, out).await,
            AdminCommand::User(UserCommand::List(args)) => args.execute(admin, out).await,
        }
    }
}

/// The admin subcommand tree as a parser, for the tests of every file in this module.
#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    pub(super) struct TestCli {
        #[command(subcommand)]
        pub(super) command: AdminCommand,
    }

    /// Parses `martelo ARGS...`; panics when clap refuses.
    pub(super) fn parse(args: &[&str]) -> AdminCommand {
        let mut argv = vec!["martelo"];
        argv.extend_from_slice(args);
        TestCli::try_parse_from(argv).expect("parses").command
    }

    #[test]
    fn the_clap_tree_is_consistent() {
        TestCli::command().debug_assert();
    }
}
