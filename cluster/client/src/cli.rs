//! The `martelo` admin subcommands: clap arguments and what each prints.
//!
//! `martelo-cluster`'s binary wires [`AdminCommand`] into its clap tree (for example as a
//! `#[command(flatten)]` variant) and calls [`AdminCommand::run`] inside a tokio runtime.
//! On error it prints the error and exits with [`CliError::exit_code`]:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (also when there was nothing to do: membership commands are idempotent) |
//! | 1 | the operation failed (the message says why and what to do) |
//! | 2 | usage error: a bad flag or value; nothing was sent (clap's own code too) |
//! | 3 | no martelo node could be reached at the given addresses |
//! | 4 | the cluster is not initialized |
//! | 5 | the operation finished only in part (some groups failed, or a transfer did not take) |
//! | 6 | `status`: some group has no healthy leader and takes no writes |
//! | 7 | `status`: every group takes writes, but some have lost redundancy (degraded) |
//!
//! [`EXIT_CODES`] is this table as data; a test holds docs/OPERATIONS.md to it.
//!
//! Output is written to a `Write` (stdout in [`AdminCommand::run`]), so the formatting
//! functions ([`render_auction`], [`render_membership`]) are tested without a cluster.

use std::io::Write;

use clap::{Args, Subcommand};
use martelo_engine::{AuctionId, AuctionResult, GroupId, Timestamp};
use martelo_proto::Node;

use crate::admin::{self, Admin, ErrorReport, HealthState, Layout, MembershipReport};
use crate::client::{AuctionRead, ReadConsistency};
use crate::error::{ClientError, ClientErrorCode};
use crate::listing::{AuctionList, ListCursor, ListFilter, ListedAuction};

/// How to find the cluster; shared by every admin subcommand.
#[derive(Clone, Debug, Args)]
pub struct Connection {
    /// Address of one or more martelo nodes, comma-separated. Any node of the cluster will
    /// do: the others are found through its address book. Tried in order.
    #[arg(
        long = "addr",
        env = "MARTELO_ADDR",
        value_name = "HOST:PORT[,HOST:PORT...]",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001",
        value_parser = parse_address
    )]
    pub addr: Vec<String>,
}

impl Connection {
    /// The first address, where commands aimed at one node go.
    fn first(&self) -> Result<&str, CliError> {
        self.addr.first().map(String::as_str).ok_or_else(|| {
            CliError::Client(ClientError::InvalidInput(
                "no node address given: pass --addr HOST:PORT or set MARTELO_ADDR".to_owned(),
            ))
        })
    }
}

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
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create the meta group and the auction groups on the given nodes.
    ///
    /// Send it once, to one node of the new cluster (the first --addr); that node sets up
    /// every other. A node that already has cluster state refuses, so running it twice never
    /// forms a second cluster. Waits until every group has a leader.
    Init(InitArgs),
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Add a running, empty node to groups.
    ///
    /// For each group: open an empty replica on the new node, add it as a learner at the
    /// group's leader, wait until it has caught up, then make it a voter. Groups are done one
    /// by one; if one fails, the others still run, and running the same command again
    /// finishes the job.
    Add(NodeAddArgs),
    /// Remove a node from groups.
    ///
    /// Each group's leader refuses when the remaining voters could not form a healthy
    /// majority, unless --force.
    Remove(NodeRemoveArgs),
}

#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Ask a group's leader to hand leadership to another voter.
    Transfer(LeaderTransferArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuctionCommand {
    /// Show one auction's state (never the reserve amount or proxy maxima).
    Show(AuctionShowArgs),
    /// List the cluster's auctions, a page at a time: group by group, by id in each group.
    ///
    /// Prints a table and, when more auctions follow, the `--after` cursor of the next page.
    /// Closed auctions are listed until they leave the state, 24 h after their close.
    List(AuctionListArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Print the full status as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Number of auction groups (shards), fixed for the cluster's life. [default: the
    /// node's default, 8]
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u32>,
    /// Voters per group: the replication factor. Init refuses when fewer nodes are given.
    /// Fewer than 3 voters per group survive no failure; ask for it only on purpose.
    /// [default: 3]
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=7))]
    pub replicas: Option<u32>,
    /// A node of the new cluster, as its id and its address (which serves the client, admin
    /// and Raft APIs). Repeat for every node. Without --node, the contacted node's --peers
    /// (and the node itself) are used.
    #[arg(long = "node", value_name = "ID=HOST:PORT", value_parser = parse_node)]
    pub nodes: Vec<Node>,
    /// Create a cluster of the contacted node alone, one voter per group: nothing survives
    /// the loss of its disk. For development and tests only.
    #[arg(long, conflicts_with_all = ["nodes", "replicas"])]
    pub single_node: bool,
}

#[derive(Debug, Args)]
pub struct NodeAddArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The new node's id: positive, never used before in this cluster.
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u64).range(1..))]
    pub id: u64,
    /// The new node's address (HOST:PORT), where it serves the client, admin and Raft APIs.
    /// The node must be running.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_address)]
    pub address: String,
    /// A group to add the node to; repeat for several. [default: every group, the meta
    /// group 0 included]
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<u64>,
    /// Stop once the node is a caught-up learner: do not make it a voter.
    #[arg(long)]
    pub learner_only: bool,
}

#[derive(Debug, Args)]
pub struct NodeRemoveArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The id of the node to remove.
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u64).range(1..))]
    pub id: u64,
    /// A group to remove the node from; repeat for several. [default: every group the node
    /// is a voter or learner of]
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<u64>,
    /// Remove even when the remaining voters could not form a healthy majority. The group
    /// may then be unable to commit anything (no bid is accepted) until enough voters
    /// return.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LeaderTransferArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The group whose leadership moves (0 is the meta group).
    #[arg(long, value_name = "G")]
    pub group: u64,
    /// The voter that should lead.
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u64).range(1..))]
    pub to: u64,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The group to snapshot (0 is the meta group).
    #[arg(long, value_name = "G")]
    pub group: u64,
    /// The node that builds the snapshot (snapshots are per replica). [default: the first
    /// --addr]
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_address)]
    pub node_address: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuctionShowArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The auction id.
    #[arg(value_name = "ID")]
    pub id: u64,
    /// How fresh the state must be.
    #[arg(long, value_enum, default_value_t = ReadConsistency::Linearizable)]
    pub consistency: ReadConsistency,
    /// How many bids to show: the most recent N, printed oldest first (in log order), or
    /// `all` (also 0) for every bid. Applies to --json too; `bid_count` there is the total.
    #[arg(long, value_name = "N|all", default_value = "20", value_parser = parse_bids_shown)]
    pub bids: BidsShown,
    /// Print the auction as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which of an auction's bids `auction show` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BidsShown {
    All,
    /// The most recent N (at least 1), in log order.
    Last(usize),
}

impl BidsShown {
    /// The bids to show, and how many were left out (the oldest ones).
    pub fn pick<T>(self, bids: &[T]) -> (&[T], usize) {
        match self {
            BidsShown::Last(count) if count < bids.len() => {
                let skipped = bids.len() - count;
                (&bids[skipped..], skipped)
            }
            _ => (bids, 0),
        }
    }
}

/// Parses `--bids`: a count, or `all` (0 means all too).
pub fn parse_bids_shown(text: &str) -> Result<BidsShown, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("all") {
        return Ok(BidsShown::All);
    }
    match text.parse::<usize>() {
        Ok(0) => Ok(BidsShown::All),
        Ok(count) => Ok(BidsShown::Last(count)),
        Err(_) => Err(format!("{text:?} is neither a number of bids nor `all`")),
    }
}

#[derive(Debug, Args)]
pub struct AuctionListArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Which auctions to list: `open` (not closed yet, including scheduled ones and ones
    /// past their end waiting to be closed), `closing-soon` (open, ending within
    /// --closing-within), `closed` (sold, unsold or cancelled) or `all`. [default: all, or
    /// closing-soon when --closing-within is given]
    #[arg(long, value_enum, value_name = "STATUS")]
    pub status: Option<ListStatus>,
    /// With --status closing-soon: how far ahead "soon" reaches, judged by the serving node's
    /// clock: `90s`, `10m`, `2h`, `1d`. [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = parse_closing_within)]
    pub closing_within: Option<std::time::Duration>,
    /// Most auctions on this page (1 to 500).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50,
        value_parser = clap::value_parser!(u32).range(1..=LIST_LIMIT_MAX)
    )]
    pub limit: u32,
    /// Continue a listing: the cursor the previous page printed (`GROUP:AUCTION`, or
    /// `GROUP:start` for the start of a group).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<ListCursor>,
    /// How fresh each group's page must be.
    #[arg(long, value_enum, default_value_t = ReadConsistency::Linearizable)]
    pub consistency: ReadConsistency,
    /// Print the page as JSON: `auctions` (each with `auction_id`, `group_id`, `status` and
    /// the engine's `summary`) and `next_after` (the cursor, or null after the last page).
    #[arg(long)]
    pub json: bool,
}

/// `auction list --status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListStatus {
    All,
    Open,
    ClosingSoon,
    Closed,
}

/// `auction list --limit`'s upper bound, as clap's range wants it.
const LIST_LIMIT_MAX: i64 = martelo_proto::LIST_AUCTIONS_LIMIT_MAX as i64;

/// How far ahead `--status closing-soon` looks without `--closing-within`.
const CLOSING_WITHIN_DEFAULT: std::time::Duration = std::time::Duration::from_secs(3600);

impl AuctionListArgs {
    /// The filter that `--status` and `--closing-within` ask for.
    pub fn filter(&self) -> Result<ListFilter, CliError> {
        let status = match (self.status, self.closing_within) {
            (Some(status), _) => status,
            (None, Some(_)) => ListStatus::ClosingSoon,
            (None, None) => ListStatus::All,
        };
        Ok(match status {
            ListStatus::ClosingSoon => ListFilter::ClosingSoon {
                within: self.closing_within.unwrap_or(CLOSING_WITHIN_DEFAULT),
            },
            _ if self.closing_within.is_some() => {
                return Err(CliError::Client(ClientError::InvalidInput(
                    "--closing-within applies to --status closing-soon only".to_owned(),
                )));
            }
            ListStatus::All => ListFilter::All,
            ListStatus::Open => ListFilter::Open,
            ListStatus::Closed => ListFilter::Closed,
        })
    }
}

/// Parses `--closing-within`: a positive whole number with a unit, `s`, `m`, `h` or `d`.
pub fn parse_closing_within(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a duration such as 90s, 10m, 2h or 1d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let seconds = number.checked_mul(seconds_per_unit).ok_or_else(bad)?;
    if seconds == 0 {
        return Err(format!("{text:?}: the window must be positive"));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Part of the work was done; the message says what is left and how to finish.
    #[error("{0}")]
    Incomplete(String),
    /// Nothing was done; the message says why.
    #[error("{0}")]
    Failed(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// `status` found a group without a healthy leader; the output above says which.
    #[error("the cluster is unavailable: {0}")]
    Unhealthy(String),
    /// `status` found every group writable, but some with less redundancy than configured.
    #[error("the cluster is degraded: {0}")]
    Degraded(String),
}

/// The CLI's exit codes and what each means (see the module docs).
pub const EXIT_CODES: &[(i32, &str)] = &[
    (0, "done"),
    (1, "failed"),
    (2, "usage error"),
    (3, "no node reachable"),
    (4, "cluster not initialized"),
    (5, "done only in part"),
    (6, "unavailable"),
    (7, "degraded"),
];

impl CliError {
    /// The process exit code (see the module docs).
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Client(error) => match error.code() {
                ClientErrorCode::Unreachable
                | ClientErrorCode::NotMartelo
                | ClientErrorCode::ConnectionClosed => 3,
                ClientErrorCode::Server(martelo_proto::ErrorCode::ClusterNotInitialized) => 4,
                ClientErrorCode::InvalidInput => 2,
                _ => 1,
            },
            CliError::Incomplete(_) => 5,
            CliError::Failed(_) | CliError::Output(_) => 1,
            CliError::Unhealthy(_) => 6,
            CliError::Degraded(_) => 7,
        }
    }
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
        }
    }
}

impl StatusArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let status = admin.cluster_status(&self.connection.addr).await?;
        if self.json {
            serde_json::to_writer_pretty(&mut *out, &status).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", admin::render_table(&status))?;
        }
        let summary = status.health.summary;
        match status.health.state {
            HealthState::Ok => Ok(()),
            HealthState::Degraded => Err(CliError::Degraded(summary)),
            HealthState::Unavailable => Err(CliError::Unhealthy(summary)),
            HealthState::NotInitialized => {
                Err(CliError::Client(ClientError::ClusterNotInitialized {
                    address: self.connection.addr.join(", "),
                }))
            }
            HealthState::Unreachable => Err(CliError::Client(ClientError::Unreachable {
                address: self.connection.addr.join(", "),
                reason: summary,
            })),
        }
    }
}

impl InitArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let address = self.connection.first()?.to_owned();
        let mut nodes = if self.nodes.is_empty() {
            address_book(admin, &address).await?
        } else {
            self.nodes
        };
        let replicas = if self.single_node {
            let own = admin.node_status(&address).await?.node;
            nodes.retain(|node| own.as_ref().is_some_and(|own| own.node_id == node.node_id));
            1
        } else {
            self.replicas.unwrap_or(admin::REPLICATION_FACTOR_DEFAULT)
        };
        admin::check_replicas(replicas, nodes.len())?;
        let names: Vec<String> = nodes
            .iter()
            .map(|node| format!("{}={}", node.node_id, node.api_address))
            .collect();
        writeln!(
            out,
            "initializing a cluster of {} node(s) through {address}: {}; {replicas} voter(s) \
             per group",
            nodes.len(),
            names.join(", ")
        )?;
        if replicas < admin::REPLICATION_FACTOR_DEFAULT {
            writeln!(
                out,
                "WARNING: {replicas} voter(s) per group survive no node failure: a lost disk \
                 loses acknowledged bids. Use at least {} for anything but development.",
                admin::REPLICATION_FACTOR_DEFAULT
            )?;
        }
        let layout = admin
            .init_cluster(&address, nodes, self.shard_count.unwrap_or(0), replicas)
            .await?;
        write!(out, "{}", render_layout(&layout))?;
        Ok(())
    }
}

/// The nodes `address` knows (before init: its `--peers` and itself), for `cluster init`
/// without `--node`.
async fn address_book(admin: &Admin, address: &str) -> Result<Vec<Node>, CliError> {
    let status = admin.node_status(address).await?;
    let mut nodes = status.nodes;
    if let Some(own) = status.node
        && !nodes.iter().any(|node| node.node_id == own.node_id)
    {
        nodes.push(own);
    }
    nodes.sort_by_key(|node| node.node_id);
    if nodes.is_empty() {
        return Err(CliError::Client(ClientError::InvalidInput(format!(
            "the node at {address} knows no nodes, not even itself: pass every node with \
             --node ID=HOST:PORT"
        ))));
    }
    Ok(nodes)
}

impl NodeAddArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let node = Node {
            node_id: self.id,
            raft_address: self.address.clone(),
            api_address: self.address,
        };
        let groups = optional_groups(self.groups);
        let promote = !self.learner_only;
        let report = admin
            .add_node(&self.connection.addr, node, groups, promote)
            .await?;
        write!(out, "{}", render_membership(&report))?;
        incomplete(&report)
    }
}

impl NodeRemoveArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let groups = optional_groups(self.groups);
        let report = admin
            .remove_node(&self.connection.addr, self.id, groups, self.force)
            .await?;
        write!(out, "{}", render_membership(&report))?;
        incomplete(&report)
    }
}

impl LeaderTransferArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let leader = admin
            .transfer_leader(&self.connection.addr, GroupId(self.group), self.to)
            .await?;
        if leader == self.to {
            writeln!(out, "node {leader} now leads group {}", self.group)?;
            Ok(())
        } else {
            Err(CliError::Incomplete(format!(
                "the transfer did not take: node {leader} leads group {} (node {} may have lost \
                 the election or be behind; check `martelo status` and try again)",
                self.group, self.to
            )))
        }
    }
}

impl SnapshotArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let address = match self.node_address {
            Some(address) => address,
            None => self.connection.first()?.to_owned(),
        };
        let index = admin
            .trigger_snapshot(&address, GroupId(self.group))
            .await?;
        writeln!(
            out,
            "the node at {address} built a snapshot of group {} covering the log up to index \
             {index}",
            self.group
        )?;
        Ok(())
    }
}

impl AuctionShowArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let read = admin
            .show_auction(&self.connection.addr, AuctionId(self.id), self.consistency)
            .await?;
        if self.json {
            let mut view = read.view.clone();
            let bid_count = view.bids.len();
            let (_, skipped) = self.bids.pick(&view.bids);
            view.bids.drain(..skipped);
            let json = serde_json::json!({
                "group_id": read.group.0,
                "seq": read.seq,
                "applied_index": read.applied_index,
                "node_id": read.node,
                "bid_count": bid_count,
                "auction": view,
            });
            serde_json::to_writer_pretty(&mut *out, &json).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", render_auction(&read, self.bids))?;
        }
        Ok(())
    }
}

impl AuctionListArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let filter = self.filter()?;
        let from = self.after.unwrap_or(ListCursor::START);
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let list = admin
            .list_auctions(&self.connection.addr, filter, from, limit, self.consistency)
            .await?;
        if self.json {
            serde_json::to_writer_pretty(&mut *out, &auction_list_json(&list))
                .map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", render_auction_list(&list))?;
        }
        Ok(())
    }
}

fn optional_groups(groups: Vec<u64>) -> Option<Vec<GroupId>> {
    (!groups.is_empty()).then(|| groups.into_iter().map(GroupId).collect())
}

/// The exit status of a membership command: done (also when every group was already as
/// asked), failed (no group done: 1), or done in part (5). "Run it again" is said only when
/// every failure can pass by itself; a permanent refusal says to fix the cause.
fn incomplete(report: &MembershipReport) -> Result<(), CliError> {
    let failures: Vec<&ErrorReport> = report
        .groups
        .iter()
        .filter_map(|group| group.error.as_ref())
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    let advice = if failures.iter().all(|error| error.retryable) {
        "run the same command again when the cause has passed: groups that are done are left \
         as they are"
    } else {
        "the cause is not one that passes by itself: fix it (see the messages above) before \
         running the command again"
    };
    let total = report.groups.len();
    let message = format!("{} of {total} groups failed; {advice}", failures.len());
    if failures.len() == total {
        Err(CliError::Failed(message))
    } else {
        Err(CliError::Incomplete(message))
    }
}

/// Parses `ID=HOST:PORT` into a node whose one address serves every API.
pub fn parse_node(text: &str) -> Result<Node, String> {
    let (id, address) = text
        .split_once('=')
        .ok_or_else(|| format!("expected ID=HOST:PORT, got {text:?}"))?;
    let node_id: u64 = id
        .trim()
        .parse()
        .map_err(|_| format!("node id {id:?} is not a positive integer"))?;
    if node_id == 0 {
        return Err("node id 0 is reserved: node ids start at 1".to_owned());
    }
    let address = parse_address(address)?;
    Ok(Node {
        node_id,
        raft_address: address.to_owned(),
        api_address: address.to_owned(),
    })
}

/// A node address, `HOST:PORT` with a non-empty host and a port number.
pub fn parse_address(text: &str) -> Result<String, String> {
    let address = text.trim();
    let valid = address.len() <= ADDRESS_BYTES_MAX
        && address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid {
        return Err(format!("address {address:?} is not HOST:PORT"));
    }
    Ok(address.to_owned())
}

/// The longest address accepted (a DNS name is at most 253 bytes).
const ADDRESS_BYTES_MAX: usize = 256;

/// What `cluster init` prints once the cluster is up.
pub fn render_layout(layout: &Layout) -> String {
    let mut out = format!(
        "cluster initialized: {} groups, every one with a leader\n",
        layout.groups.len()
    );
    for placement in &layout.groups {
        let voters: Vec<String> = placement.voters.iter().map(u64::to_string).collect();
        let name = if placement.group_id == 0 {
            "group 0 (meta)".to_owned()
        } else {
            format!("group {}", placement.group_id)
        };
        out.push_str(&format!("  {name}: voters {}\n", voters.join(", ")));
    }
    out
}

/// What `node add` and `node remove` print: one line per group.
pub fn render_membership(report: &MembershipReport) -> String {
    let mut out = String::new();
    if report.groups.is_empty() {
        out.push_str(&format!(
            "node {} is in no group: nothing to do\n",
            report.node_id
        ));
    }
    for group in &report.groups {
        let line = match &group.error {
            None if group.unchanged => {
                let what = match group.step {
                    "promote_voter" => "is already a voter",
                    "add_learner" => "is already a learner",
                    _ => "is not a member",
                };
                format!(
                    "group {}: node {} {what}: nothing to do",
                    group.group_id, report.node_id
                )
            }
            None => {
                let voters: Vec<String> = group.voters.iter().map(u64::to_string).collect();
                let learners: Vec<String> = group.learners.iter().map(u64::to_string).collect();
                let what = match group.step {
                    "add_learner" => format!("node {} is a caught-up learner", report.node_id),
                    "promote_voter" => format!("node {} is a voter", report.node_id),
                    "remove_node" => format!("node {} is removed", report.node_id),
                    other => format!("node {}: {other} done", report.node_id),
                };
                format!(
                    "group {}: {what} (voters: {}; learners: {}; log index {})",
                    group.group_id,
                    list_or_none(&voters),
                    list_or_none(&learners),
                    group
                        .log_index
                        .map_or_else(|| "-".to_owned(), |index| index.to_string())
                )
            }
            Some(error) => format!(
                "group {}: FAILED at {}: {}",
                group.group_id, group.step, error.message
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// What `auction show` prints, with the bids `bids` picks.
pub fn render_auction(read: &AuctionRead, bids: BidsShown) -> String {
    let view = &read.view;
    let listing = &view.listing;
    let currency = listing.currency.as_str();
    let amount = |amount: martelo_engine::Amount| format!("{} {currency}", amount.0);
    let user = |user: martelo_engine::UserId| format!("user {}", user.0);
    let mut lines = vec![
        format!(
            "auction {} (group {}, seq {}, applied index {}, served by node {})",
            view.id.0, read.group.0, read.seq, read.applied_index, read.node
        ),
        format!("  title:        {}", listing.title),
        format!("  seller:       {}", user(view.seller)),
        format!(
            "  window:       {} to {} (end with soft-close extensions: {})",
            format_timestamp(listing.start),
            format_timestamp(listing.end),
            format_timestamp(view.end)
        ),
    ];
    let state = match &view.closed {
        None => "open".to_owned(),
        Some(closed) => {
            let result = match &closed.result {
                AuctionResult::Sold { winner, price, via } => format!(
                    "sold to {} for {} ({})",
                    user(*winner),
                    amount(*price),
                    match via {
                        martelo_engine::SaleKind::Bidding => "bidding",
                        martelo_engine::SaleKind::BuyNow => "buy it now",
                    }
                ),
                AuctionResult::Unsold { reason } => format!(
                    "unsold ({})",
                    match reason {
                        martelo_engine::UnsoldReason::NoBids => "no bids",
                        martelo_engine::UnsoldReason::ReserveNotMet => "reserve not met",
                    }
                ),
                AuctionResult::Cancelled { by, reason } => format!(
                    "cancelled by {}{}",
                    user(*by),
                    reason
                        .as_ref()
                        .map_or_else(String::new, |reason| format!(": {reason}"))
                ),
            };
            format!("closed at {}: {result}", format_timestamp(closed.at))
        }
    };
    lines.push(format!("  state:        {state}"));
    lines.push(format!(
        "  price:        {}",
        view.price.map_or_else(|| "no bids yet".to_owned(), amount)
    ));
    lines.push(format!(
        "  leading:      {}",
        view.leading_bidder
            .map_or_else(|| "nobody".to_owned(), user)
    ));
    lines.push(format!("  minimum bid:  {}", amount(view.minimum_bid)));
    lines.push(format!(
        "  reserve:      {}",
        match (listing.has_reserve, view.reserve_met) {
            (false, _) => "none",
            (true, true) => "met",
            (true, false) => "not met",
        }
    ));
    lines.push(format!(
        "  buy it now:   {}",
        view.buy_now_price
            .map_or_else(|| "not available".to_owned(), amount)
    ));
    let (shown, skipped) = bids.pick(&view.bids);
    lines.push(if skipped == 0 {
        format!("  bids:         {}", view.bids.len())
    } else {
        format!(
            "  bids:         {} (the last {} below, oldest first; --bids all shows every one)",
            view.bids.len(),
            shown.len()
        )
    });
    for (index, bid) in (skipped..).zip(shown) {
        lines.push(format!(
            "    #{index:<4} {:<12} {:>16}  {}  log {}{}",
            user(bid.bidder),
            amount(bid.amount),
            format_timestamp(bid.at),
            bid.log_index,
            if bid.voided { "  VOIDED" } else { "" }
        ));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Titles longer than this many characters are cut in `auction list`'s table.
const LIST_TITLE_CHARS_MAX: usize = 32;

/// What `auction list` prints: a table, then where the next page starts.
pub fn render_auction_list(list: &AuctionList) -> String {
    let header = [
        "AUCTION",
        "GROUP",
        "STATUS",
        "TITLE",
        "PRICE",
        "BIDS",
        "ENDS (UTC)",
    ];
    // Numbers are right-aligned, text left-aligned.
    let right = [true, true, false, false, true, true, false];
    let rows: Vec<[String; 7]> = list.auctions.iter().map(auction_row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .zip(right)
            .map(|((cell, width), right)| {
                let pad = " ".repeat(width - cell.chars().count());
                if right {
                    format!("{pad}{cell}")
                } else {
                    format!("{cell}{pad}")
                }
            })
            .collect();
        let mut text = padded.join("  ").trim_end().to_owned();
        text.push('\n');
        text
    };
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no auctions on this page\n");
    } else {
        out.push_str(&line(header));
        for row in &rows {
            out.push_str(&line(row.each_ref().map(String::as_str)));
        }
    }
    match list.next {
        Some(cursor) => out.push_str(&format!("next page: --after {cursor}\n")),
        None => out.push_str("end of the list\n"),
    }
    out
}

/// One row of `auction list`'s table.
fn auction_row(listed: &ListedAuction) -> [String; 7] {
    let summary = &listed.summary;
    let title = summary.title.as_str();
    let title = if title.chars().count() > LIST_TITLE_CHARS_MAX {
        let cut: String = title.chars().take(LIST_TITLE_CHARS_MAX - 1).collect();
        format!("{cut}…")
    } else {
        title.to_owned()
    };
    let price = summary.price.map_or_else(
        || "-".to_owned(),
        |price| format!("{} {}", price.0, summary.currency.as_str()),
    );
    let mut ends = format_timestamp(summary.end);
    // Whole seconds are enough in a table: `2026-01-01T00:00:00Z`.
    if let Some(dot) = ends.find('.') {
        ends.replace_range(dot.., "Z");
    }
    [
        summary.id.0.to_string(),
        listed.group.0.to_string(),
        listed.status().to_owned(),
        title,
        price,
        summary.bid_count.to_string(),
        ends,
    ]
}

/// What `auction list --json` prints.
pub fn auction_list_json(list: &AuctionList) -> serde_json::Value {
    let auctions: Vec<serde_json::Value> = list
        .auctions
        .iter()
        .map(|listed| {
            serde_json::json!({
                "auction_id": listed.summary.id.0,
                "group_id": listed.group.0,
                "seq": listed.summary.seq,
                "status": listed.status(),
                "now_us": listed.now.0,
                "summary": listed.summary,
            })
        })
        .collect();
    serde_json::json!({
        "auctions": auctions,
        "next_after": list.next.map(|cursor| cursor.to_string()),
    })
}

/// Cluster time as UTC ISO 8601 with microseconds (`2026-01-01T00:00:00.000000Z`).
pub fn format_timestamp(timestamp: Timestamp) -> String {
    const MICROS_PER_DAY: u64 = 86_400_000_000;
    let days = timestamp.0 / MICROS_PER_DAY;
    let in_day = timestamp.0 % MICROS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let seconds = in_day / 1_000_000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        in_day % 1_000_000
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use martelo_engine::{
        Amount, AuctionView, Closed, Currency, Description, IncrementPolicy, Listing, PublicBid,
        Title, UserId,
    };

    use super::*;
    use crate::admin::ErrorReport;
    use crate::admin::GroupChange;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: AdminCommand,
    }

    fn parse(args: &[&str]) -> AdminCommand {
        let mut argv = vec!["martelo"];
        argv.extend_from_slice(args);
        TestCli::try_parse_from(argv).expect("parses").command
    }

    #[test]
    fn the_clap_tree_is_consistent() {
        TestCli::command().debug_assert();
    }

    #[test]
    fn addr_takes_a_comma_separated_list_and_defaults_to_the_local_node() {
        let AdminCommand::Status(args) = parse(&["status", "--addr", "a:1,b:2", "--json"]) else {
            panic!("status");
        };
        assert_eq!(args.connection.addr, vec!["a:1", "b:2"]);
        assert!(args.json);
        // The default applies when neither --addr nor MARTELO_ADDR is set.
        if std::env::var_os("MARTELO_ADDR").is_none() {
            let AdminCommand::Status(args) = parse(&["status"]) else {
                panic!("status");
            };
            assert_eq!(args.connection.addr, vec!["127.0.0.1:7001"]);
        }
    }

    #[test]
    fn cluster_init_takes_repeated_nodes() {
        let AdminCommand::Cluster(ClusterCommand::Init(args)) = parse(&[
            "cluster",
            "init",
            "--shard-count",
            "4",
            "--node",
            "1=127.0.0.1:7001",
            "--node",
            "2=127.0.0.1:7002",
        ]) else {
            panic!("cluster init");
        };
        assert_eq!(args.shard_count, Some(4));
        assert_eq!(args.nodes.len(), 2);
        assert_eq!(args.nodes[1].api_address, "127.0.0.1:7002");
        assert_eq!(args.nodes[1].raft_address, "127.0.0.1:7002");
    }

    #[test]
    fn node_add_and_remove_parse_their_flags() {
        let AdminCommand::Node(NodeCommand::Add(add)) = parse(&[
            "node",
            "add",
            "--id",
            "4",
            "--address",
            "127.0.0.1:7004",
            "--group",
            "0",
            "--group",
            "3",
            "--learner-only",
        ]) else {
            panic!("node add");
        };
        assert_eq!(
            (add.id, add.groups.clone(), add.learner_only),
            (4, vec![0, 3], true)
        );
        let AdminCommand::Node(NodeCommand::Remove(remove)) =
            parse(&["node", "remove", "--id", "2", "--force"])
        else {
            panic!("node remove");
        };
        assert!(remove.force && remove.groups.is_empty());
        let AdminCommand::Auction(AuctionCommand::Show(show)) =
            parse(&["auction", "show", "42", "--consistency", "local"])
        else {
            panic!("auction show");
        };
        assert_eq!((show.id, show.consistency), (42, ReadConsistency::Local));
    }

    #[test]
    fn node_specs_are_checked() {
        assert_eq!(parse_node("3=10.1.2.3:7003").unwrap().node_id, 3);
        assert!(parse_node("3").unwrap_err().contains("ID=HOST:PORT"));
        assert!(parse_node("0=h:1").unwrap_err().contains("reserved"));
        assert!(parse_node("x=h:1").is_err());
        assert!(parse_node("3=h").unwrap_err().contains("HOST:PORT"));
    }

    #[test]
    fn exit_codes_tell_unreachable_and_uninitialized_apart() {
        let unreachable = CliError::Client(ClientError::Unreachable {
            address: "a:1".into(),
            reason: "refused".into(),
        });
        assert_eq!(unreachable.exit_code(), 3);
        let fresh = CliError::Client(ClientError::ClusterNotInitialized {
            address: "a:1".into(),
        });
        assert_eq!(fresh.exit_code(), 4);
        assert_eq!(CliError::Incomplete("x".into()).exit_code(), 5);
        assert_eq!(CliError::Unhealthy("x".into()).exit_code(), 6);
        assert_eq!(CliError::Degraded("x".into()).exit_code(), 7);
        assert_eq!(CliError::Failed("x".into()).exit_code(), 1);
        let usage = CliError::Client(ClientError::InvalidInput("x".into()));
        assert_eq!(usage.exit_code(), 2);
        let wrong = CliError::Client(ClientError::NotMartelo {
            address: "a:1".into(),
            detail: "x".into(),
        });
        assert_eq!(wrong.exit_code(), 3);
    }

    /// docs/OPERATIONS.md's exit-code table, as `(code, meaning)` rows.
    fn documented_exit_codes() -> Vec<(i32, String)> {
        let doc = include_str!("../../../docs/OPERATIONS.md");
        let start = doc
            .find("<!-- exit-codes -->")
            .expect("OPERATIONS.md marks its exit-code table");
        doc[start..]
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.parse().ok()?;
                Some((code, cells.get(2)?.to_string()))
            })
            .collect()
    }

    #[test]
    fn the_documented_exit_codes_are_the_codes_of_the_binary() {
        let documented = documented_exit_codes();
        let codes: Vec<i32> = documented.iter().map(|(code, _)| *code).collect();
        let ours: Vec<i32> = EXIT_CODES.iter().map(|(code, _)| *code).collect();
        assert_eq!(codes, ours, "OPERATIONS.md's table lists other codes");
        for ((_, meaning), (code, name)) in documented.iter().zip(EXIT_CODES) {
            assert!(
                meaning.to_lowercase().contains(name),
                "OPERATIONS.md says {code} means {meaning:?}, the code says {name:?}"
            );
        }
        // Every error the CLI can end with maps to a documented code.
        let errors = [
            CliError::Client(ClientError::InvalidInput("x".into())),
            CliError::Client(ClientError::Unreachable {
                address: "a".into(),
                reason: "x".into(),
            }),
            CliError::Client(ClientError::ClusterNotInitialized {
                address: "a".into(),
            }),
            CliError::Incomplete("x".into()),
            CliError::Failed("x".into()),
            CliError::Unhealthy("x".into()),
            CliError::Degraded("x".into()),
            CliError::Output(std::io::Error::other("x")),
        ];
        for error in errors {
            assert!(ours.contains(&error.exit_code()), "{error:?}");
        }
        // clap's usage code is the documented 2.
        let usage = TestCli::try_parse_from(["martelo", "node", "remove", "--id", "0"])
            .expect_err("id 0 is refused");
        assert_eq!(usage.exit_code(), 2);
    }

    #[test]
    fn timestamps_print_as_utc() {
        assert_eq!(
            format_timestamp(Timestamp(0)),
            "1970-01-01T00:00:00.000000Z"
        );
        // 2024-02-29T12:34:56.789012Z, a leap day.
        assert_eq!(
            format_timestamp(Timestamp(1_709_210_096_789_012)),
            "2024-02-29T12:34:56.789012Z"
        );
    }

    #[test]
    fn membership_reports_print_one_line_per_group_with_failures_named() {
        let report = MembershipReport {
            node_id: 4,
            groups: vec![
                GroupChange {
                    group_id: 0,
                    step: "promote_voter",
                    log_index: Some(57),
                    voters: vec![1, 2, 3, 4],
                    learners: Vec::new(),
                    error: None,
                    unchanged: false,
                },
                GroupChange {
                    group_id: 1,
                    step: "add_learner",
                    log_index: None,
                    voters: Vec::new(),
                    learners: Vec::new(),
                    error: Some(ErrorReport {
                        code: "change_in_progress".into(),
                        message: "node 127.0.0.1:7001 answered change_in_progress: busy".into(),
                        retryable: true,
                    }),
                    unchanged: false,
                },
                GroupChange {
                    group_id: 2,
                    step: "promote_voter",
                    log_index: None,
                    voters: vec![1, 4],
                    learners: Vec::new(),
                    error: None,
                    unchanged: true,
                },
            ],
        };
        assert_eq!(
            render_membership(&report),
            "group 0: node 4 is a voter (voters: 1, 2, 3, 4; learners: none; log index 57)\n\
             group 1: FAILED at add_learner: node 127.0.0.1:7001 answered change_in_progress: \
             busy\n\
             group 2: node 4 is already a voter: nothing to do\n"
        );
        let error = incomplete(&report).unwrap_err();
        assert_eq!(error.exit_code(), 5, "done in part");
        assert!(
            error.to_string().starts_with("1 of 3 groups failed")
                && error.to_string().contains("run the same command again"),
            "{error}"
        );
    }

    #[test]
    fn a_membership_command_that_did_nothing_fails_and_a_permanent_cause_is_not_retried() {
        let failed = |retryable: bool| MembershipReport {
            node_id: 1,
            groups: vec![GroupChange {
                group_id: 2,
                step: "remove_node",
                log_index: None,
                voters: Vec::new(),
                learners: Vec::new(),
                error: Some(ErrorReport {
                    code: "invalid_argument".into(),
                    message: "only voter".into(),
                    retryable,
                }),
                unchanged: false,
            }],
        };
        let error = incomplete(&failed(false)).unwrap_err();
        assert_eq!(error.exit_code(), 1, "nothing was done");
        assert!(
            !error.to_string().contains("run the same command again"),
            "{error}"
        );
        assert!(
            incomplete(&failed(true))
                .unwrap_err()
                .to_string()
                .contains("again")
        );
        let nothing = MembershipReport {
            node_id: 4,
            groups: Vec::new(),
        };
        assert!(incomplete(&nothing).is_ok());
        assert_eq!(
            render_membership(&nothing),
            "node 4 is in no group: nothing to do\n"
        );
    }

    #[test]
    fn an_auction_prints_its_state_bids_and_result() {
        let listing = Listing {
            title: Title::try_from("Vintage bicycle").unwrap(),
            description: Description::try_from("Steel frame").unwrap(),
            currency: Currency::try_from("EUR").unwrap(),
            starting_price: Amount(1000),
            has_reserve: true,
            buy_now_price: None,
            increment: IncrementPolicy::Fixed(Amount(50)),
            start: Timestamp(0),
            end: Timestamp(3_600_000_000),
            soft_close: None,
        };
        let view = AuctionView {
            id: AuctionId(42),
            seller: UserId(9),
            listing,
            created_at: Timestamp(0),
            end: Timestamp(3_600_000_000),
            seq: 4,
            price: Some(Amount(1050)),
            leading_bidder: Some(UserId(5)),
            minimum_bid: Amount(1100),
            reserve_met: false,
            buy_now_price: None,
            bids: vec![PublicBid {
                bidder: UserId(5),
                amount: Amount(1050),
                at: Timestamp(60_000_000),
                log_index: 17,
                voided: false,
            }],
            closed: Some(Closed {
                result: AuctionResult::Unsold {
                    reason: martelo_engine::UnsoldReason::ReserveNotMet,
                },
                at: Timestamp(3_600_000_000),
            }),
        };
        let read = AuctionRead {
            view,
            group: GroupId(3),
            seq: 4,
            applied_index: 20,
            node: 1,
        };
        let text = render_auction(&read, BidsShown::All);
        assert!(
            text.starts_with("auction 42 (group 3, seq 4, applied index 20, served by node 1)\n"),
            "{text}"
        );
        assert!(text.contains("  title:        Vintage bicycle\n"), "{text}");
        assert!(
            text.contains(
                "  state:        closed at 1970-01-01T01:00:00.000000Z: unsold (reserve not met)\n"
            ),
            "{text}"
        );
        assert!(text.contains("  reserve:      not met\n"), "{text}");
        assert!(
            text.contains(
                "    #0    user 5               1050 EUR  1970-01-01T00:01:00.000000Z  log 17\n"
            ),
            "{text}"
        );
    }

    fn auction_read_with_bids(count: u64) -> AuctionRead {
        let listing = Listing {
            title: Title::try_from("Lamp").unwrap(),
            description: Description::try_from("").unwrap(),
            currency: Currency::try_from("EUR").unwrap(),
            starting_price: Amount(100),
            has_reserve: false,
            buy_now_price: None,
            increment: IncrementPolicy::Fixed(Amount(10)),
            start: Timestamp(0),
            end: Timestamp(3_600_000_000),
            soft_close: None,
        };
        let bids = (0..count)
            .map(|index| PublicBid {
                bidder: UserId(5 + index % 2),
                amount: Amount(100 + 10 * index),
                at: Timestamp(1_000_000 * (index + 1)),
                log_index: 10 + index,
                voided: false,
            })
            .collect();
        let view = AuctionView {
            id: AuctionId(7),
            seller: UserId(9),
            listing,
            created_at: Timestamp(0),
            end: Timestamp(3_600_000_000),
            seq: 1 + count,
            price: Some(Amount(100 + 10 * (count - 1))),
            leading_bidder: Some(UserId(5)),
            minimum_bid: Amount(100 + 10 * count),
            reserve_met: true,
            buy_now_price: None,
            bids,
            closed: None,
        };
        AuctionRead {
            view,
            group: GroupId(1),
            seq: 1 + count,
            applied_index: 30,
            node: 2,
        }
    }

    #[test]
    fn auction_show_prints_the_most_recent_bids_oldest_first_with_their_own_numbers() {
        let AdminCommand::Auction(AuctionCommand::Show(show)) = parse(&["auction", "show", "7"])
        else {
            panic!("auction show");
        };
        assert_eq!(show.bids, BidsShown::Last(20));
        for (flag, expected) in [
            ("2", BidsShown::Last(2)),
            ("all", BidsShown::All),
            ("0", BidsShown::All),
        ] {
            let AdminCommand::Auction(AuctionCommand::Show(show)) =
                parse(&["auction", "show", "7", "--bids", flag])
            else {
                panic!("auction show");
            };
            assert_eq!(show.bids, expected, "{flag}");
        }
        assert!(
            TestCli::try_parse_from(["martelo", "auction", "show", "7", "--bids", "x"]).is_err()
        );

        let read = auction_read_with_bids(5);
        let text = render_auction(&read, BidsShown::Last(2));
        assert!(
            text.contains(
                "  bids:         5 (the last 2 below, oldest first; --bids all shows every one)\n"
            ),
            "{text}"
        );
        let numbers: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix('#'))
            .map(|rest| rest.split_whitespace().next().unwrap_or(""))
            .collect();
        assert_eq!(numbers, vec!["3", "4"], "{text}");
        let all = render_auction(&read, BidsShown::All);
        assert!(all.contains("  bids:         5\n"), "{all}");
        assert_eq!(all.matches("    #").count(), 5, "{all}");
        // Asking for more than there are shows them all, without a note.
        assert_eq!(render_auction(&read, BidsShown::Last(9)), all);
    }

    #[test]
    fn auction_list_parses_status_window_limit_and_cursor() {
        let AdminCommand::Auction(AuctionCommand::List(list)) = parse(&[
            "auction",
            "list",
            "--status",
            "closing-soon",
            "--closing-within",
            "10m",
            "--limit",
            "3",
            "--after",
            "2:17",
            "--json",
        ]) else {
            panic!("auction list");
        };
        assert_eq!(
            list.filter().unwrap(),
            ListFilter::ClosingSoon {
                within: std::time::Duration::from_secs(600)
            }
        );
        assert_eq!(list.limit, 3);
        assert_eq!(list.after, Some("2:17".parse().unwrap()));
        assert!(list.json);
        let filter_of = |args: &[&str]| {
            let mut argv = vec!["auction", "list"];
            argv.extend_from_slice(args);
            let AdminCommand::Auction(AuctionCommand::List(list)) = parse(&argv) else {
                panic!("auction list");
            };
            list.filter()
        };
        assert_eq!(filter_of(&[]).unwrap(), ListFilter::All);
        assert_eq!(filter_of(&["--status", "open"]).unwrap(), ListFilter::Open);
        assert_eq!(
            filter_of(&["--status", "closed"]).unwrap(),
            ListFilter::Closed
        );
        assert_eq!(
            filter_of(&["--closing-within", "2h"]).unwrap(),
            ListFilter::ClosingSoon {
                within: std::time::Duration::from_secs(7200)
            }
        );
        assert_eq!(
            filter_of(&["--status", "closing-soon"]).unwrap(),
            ListFilter::ClosingSoon {
                within: CLOSING_WITHIN_DEFAULT
            }
        );
        assert!(filter_of(&["--status", "open", "--closing-within", "1m"]).is_err());
        for bad in [
            ["--limit", "0"],
            ["--limit", "501"],
            ["--after", "x"],
            ["--closing-within", "0s"],
        ] {
            let mut argv = vec!["martelo", "auction", "list"];
            argv.extend_from_slice(&bad);
            assert!(TestCli::try_parse_from(argv).is_err(), "{bad:?}");
        }
        assert_eq!(parse_closing_within("1d").unwrap().as_secs(), 86_400);
        assert!(parse_closing_within("10").is_err());
        assert!(parse_closing_within("5w").is_err());
    }

    fn listed(id: u64, group: u64, title: &str, closed: bool) -> ListedAuction {
        ListedAuction {
            group: GroupId(group),
            summary: martelo_engine::AuctionSummary {
                id: AuctionId(id),
                seller: UserId(1),
                title: Title::try_from(title).unwrap(),
                currency: Currency::try_from("EUR").unwrap(),
                created_at: Timestamp(0),
                start: Timestamp(0),
                end: Timestamp(3_600_000_000),
                seq: 4,
                price: (!closed).then_some(Amount(1_250)),
                leading_bidder: (!closed).then_some(UserId(5)),
                minimum_bid: Amount(1_300),
                bid_count: if closed { 0 } else { 3 },
                has_reserve: false,
                reserve_met: !closed,
                buy_now_price: None,
                closed: closed.then_some(Closed {
                    result: AuctionResult::Cancelled {
                        by: UserId(1),
                        reason: None,
                    },
                    at: Timestamp(60_000_000),
                }),
            },
            now: Timestamp(120_000_000),
        }
    }

    #[test]
    fn an_auction_list_prints_a_table_and_the_next_cursor() {
        let list = AuctionList {
            auctions: vec![
                listed(7, 1, "Vintage bicycle", false),
                listed(1_048_577, 2, &"Lamp ".repeat(10), true),
            ],
            next: Some("2:1048577".parse().unwrap()),
        };
        let text = render_auction_list(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "AUCTION  GROUP  STATUS     TITLE                                PRICE  BIDS  \
                 ENDS (UTC)",
                "      7      1  open       Vintage bicycle                   1250 EUR     3  \
                 1970-01-01T01:00:00Z",
                "1048577      2  cancelled  Lamp Lamp Lamp Lamp Lamp Lamp L…         -     0  \
                 1970-01-01T01:00:00Z",
                "next page: --after 2:1048577",
            ],
            "{text}"
        );
        let last = AuctionList {
            auctions: Vec::new(),
            next: None,
        };
        assert_eq!(
            render_auction_list(&last),
            "no auctions on this page\nend of the list\n"
        );
        let json = auction_list_json(&list);
        assert_eq!(json["next_after"], "2:1048577");
        assert_eq!(json["auctions"][1]["auction_id"], 1_048_577);
        assert_eq!(json["auctions"][1]["status"], "cancelled");
        assert_eq!(json["auctions"][0]["summary"]["title"], "Vintage bicycle");
        assert_eq!(
            auction_list_json(&last)["next_after"],
            serde_json::Value::Null
        );
    }
}
