//! The `martelo` admin subcommands: clap arguments and what each prints.
//!
//! `martelo-cluster`'s binary wires [`AdminCommand`] into its clap tree (for example as a
//! `#[command(flatten)]` variant) and calls [`AdminCommand::run`] inside a tokio runtime.
//! On error it prints the error and exits with [`CliError::exit_code`]:
//!
//! | code | meaning |
//! |---|---|
//! | 1 | the operation failed (the message says why and what to do) |
//! | 3 | no node could be reached at the given addresses |
//! | 4 | the cluster is not initialized |
//! | 5 | the operation finished only in part (some groups failed, or a transfer did not take) |
//! | 6 | `status`: the cluster is not healthy (the table, printed first, says which groups) |
//!
//! (clap itself exits with 2 on a usage error.)
//!
//! Output is written to a `Write` (stdout in [`AdminCommand::run`]), so the formatting
//! functions ([`render_auction`], [`render_membership`]) are tested without a cluster.

use std::io::Write;

use clap::{Args, Subcommand};
use martelo_engine::{AuctionId, AuctionResult, GroupId, Timestamp};
use martelo_proto::Node;

use crate::admin::{self, Admin, Layout, MembershipReport};
use crate::client::{AuctionRead, ReadConsistency};
use crate::error::{ClientError, ClientErrorCode};

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
        default_value = "127.0.0.1:7001"
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
    /// Voters per group. [default: min(3, number of nodes)]
    #[arg(long, value_name = "R")]
    pub replicas: Option<u32>,
    /// A node of the new cluster, as its id and its address (which serves the client, admin
    /// and Raft APIs). Repeat for every node. Without --node, every node in the contacted
    /// node's address book (its --peers) is used.
    #[arg(long = "node", value_name = "ID=HOST:PORT", value_parser = parse_node)]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Args)]
pub struct NodeAddArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The new node's id: positive, never used before in this cluster.
    #[arg(long, value_name = "ID")]
    pub id: u64,
    /// The new node's address (HOST:PORT), where it serves the client, admin and Raft APIs.
    /// The node must be running.
    #[arg(long, value_name = "HOST:PORT")]
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
    #[arg(long, value_name = "ID")]
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
    #[arg(long, value_name = "ID")]
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
    #[arg(long, value_name = "HOST:PORT")]
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
    /// Print the auction as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Part of the work was done; the message says what is left and how to finish.
    #[error("{0}")]
    Incomplete(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// `status` found a group without a healthy leader; the output above says which.
    #[error("the cluster is not healthy: {0}")]
    Unhealthy(String),
}

impl CliError {
    /// The process exit code (see the module docs).
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Client(error) => match error.code() {
                ClientErrorCode::Unreachable => 3,
                ClientErrorCode::Server(martelo_proto::ErrorCode::ClusterNotInitialized) => 4,
                _ => 1,
            },
            CliError::Incomplete(_) => 5,
            CliError::Output(_) => 1,
            CliError::Unhealthy(_) => 6,
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
        if !status.health.healthy {
            return Err(CliError::Unhealthy(status.health.summary));
        }
        Ok(())
    }
}

impl InitArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let address = self.connection.first()?.to_owned();
        let nodes = if self.nodes.is_empty() {
            address_book(admin, &address).await?
        } else {
            self.nodes
        };
        let names: Vec<String> = nodes
            .iter()
            .map(|node| format!("{}={}", node.node_id, node.api_address))
            .collect();
        writeln!(
            out,
            "initializing a cluster of {} node(s) through {address}: {}",
            nodes.len(),
            names.join(", ")
        )?;
        let layout = admin
            .init_cluster(
                &address,
                nodes,
                self.shard_count.unwrap_or(0),
                self.replicas.unwrap_or(0),
            )
            .await?;
        write!(out, "{}", render_layout(&layout))?;
        Ok(())
    }
}

/// The nodes `address` knows (its `--peers` and itself), for `cluster init` without
/// `--node`.
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
            let json = serde_json::json!({
                "group_id": read.group.0,
                "seq": read.seq,
                "applied_index": read.applied_index,
                "node_id": read.node,
                "auction": read.view,
            });
            serde_json::to_writer_pretty(&mut *out, &json).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", render_auction(&read))?;
        }
        Ok(())
    }
}

fn optional_groups(groups: Vec<u64>) -> Option<Vec<GroupId>> {
    (!groups.is_empty()).then(|| groups.into_iter().map(GroupId).collect())
}

fn incomplete(report: &MembershipReport) -> Result<(), CliError> {
    let failed = report
        .groups
        .iter()
        .filter(|group| group.error.is_some())
        .count();
    if failed == 0 {
        return Ok(());
    }
    Err(CliError::Incomplete(format!(
        "{failed} of {} groups failed (see above); fix the cause and run the same command \
         again: groups that are done are left as they are",
        report.groups.len()
    )))
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
    let address = address.trim();
    let valid = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid {
        return Err(format!("address {address:?} is not HOST:PORT"));
    }
    Ok(Node {
        node_id,
        raft_address: address.to_owned(),
        api_address: address.to_owned(),
    })
}

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
    for group in &report.groups {
        let line = match &group.error {
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

/// What `auction show` prints.
pub fn render_auction(read: &AuctionRead) -> String {
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
    lines.push(format!("  bids:         {}", view.bids.len()));
    for (index, bid) in view.bids.iter().enumerate() {
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
                    }),
                },
            ],
        };
        assert_eq!(
            render_membership(&report),
            "group 0: node 4 is a voter (voters: 1, 2, 3, 4; learners: none; log index 57)\n\
             group 1: FAILED at add_learner: node 127.0.0.1:7001 answered change_in_progress: \
             busy\n"
        );
        let error = incomplete(&report).unwrap_err();
        assert!(
            error.to_string().starts_with("1 of 2 groups failed"),
            "{error}"
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
        let text = render_auction(&read);
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
}
