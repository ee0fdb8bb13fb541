//! The commands about the cluster as a whole: `status` (every node's view of every group,
//! and the health verdict), `cluster init` (bootstrap) and `snapshot` (one replica's
//! snapshot of one group).
//!
//! What does not live here: the status table and the init layout as text
//! ([`super::status_table`], [`super::render`]); changes to who is in a group
//! ([`super::membership`]); the health rules themselves (`martelo_client::admin::status`).

use std::io::Write;

use clap::{Args, Subcommand};
use martelo_client::admin::{self, Admin, HealthState};
use martelo_client::error::{ClientError, ClientErrorCode};
use martelo_engine::GroupId;
use martelo_proto::ErrorCode;
use martelo_types::{NodeAddress, NodeId};

use super::args::{Connection, address_arg, node_arg};
use super::error::CliError;
use super::render::render_layout;
use super::status_table::render_table;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create the meta group and the auction groups on the given nodes.
    ///
    /// Send it once, to one node of the new cluster (the first --addr); that node sets up
    /// every other. A node that already has cluster state refuses, so running it twice never
    /// forms a second cluster (with --if-not-initialized, that is a success). Nothing is
    /// created unless every listed node answers and belongs to no cluster. Waits until every
    /// group has a leader.
    Init(InitArgs),
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
    #[arg(long = "node", value_name = "ID=HOST:PORT", value_parser = node_arg)]
    pub nodes: Vec<NodeAddress>,
    /// Create a cluster of the contacted node alone, one voter per group: nothing survives
    /// the loss of its disk. For development and tests only.
    #[arg(long, conflicts_with_all = ["nodes", "replicas"])]
    pub single_node: bool,
    /// When the contacted node already belongs to a cluster, change nothing and succeed
    /// (exit 0) once every group has a leader, instead of failing with
    /// `cluster_already_initialized`: for scripts and Kubernetes Jobs that may run init more
    /// than once. Fails if --shard-count differs from the cluster's.
    #[arg(long)]
    pub if_not_initialized: bool,
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
    #[arg(long, value_name = "HOST:PORT", value_parser = address_arg)]
    pub node_address: Option<String>,
}

impl StatusArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let status = admin.cluster_status(&self.connection.addr).await?;
        if self.json {
            serde_json::to_writer_pretty(&mut *out, &status).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", render_table(&status))?;
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
        if self.if_not_initialized && admin.node_status(&address).await?.initialized {
            return already_initialized(admin, &address, self.shard_count, out).await;
        }
        let mut nodes = if self.nodes.is_empty() {
            address_book(admin, &address).await?
        } else {
            self.nodes
        };
        let replicas = if self.single_node {
            let own = admin.node_status(&address).await?.node;
            let own = own.map(|own| NodeId(own.node_id));
            nodes.retain(|node| own == Some(node.id));
            1
        } else {
            self.replicas.unwrap_or(admin::REPLICATION_FACTOR_DEFAULT)
        };
        admin::check_replicas(replicas, nodes.len())?;
        let names: Vec<String> = nodes
            .iter()
            .map(|node| format!("{}={}", node.id, node.address))
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
        let initialized = admin
            .init_cluster(&address, &nodes, self.shard_count.unwrap_or(0), replicas)
            .await;
        let layout = match initialized {
            Ok(layout) => layout,
            // Another init got there first (a retried Job): the same answer as above.
            Err(error)
                if self.if_not_initialized
                    && error.code()
                        == ClientErrorCode::Server(ErrorCode::ClusterAlreadyInitialized) =>
            {
                return already_initialized(admin, &address, self.shard_count, out).await;
            }
            Err(error) => return Err(error.into()),
        };
        write!(out, "{}", render_layout(&layout))?;
        Ok(())
    }
}

/// `--if-not-initialized` on a node that already belongs to a cluster: nothing is changed;
/// succeed once every group has a leader, and record the shard count in the meta group as
/// init does (idempotent), in case the init that formed the cluster stopped before it could.
/// A contacted node that belongs to no cluster while another listed node does (an init
/// interrupted halfway by an older build, or a node from another cluster) is not something
/// to paper over: that fails.
async fn already_initialized(
    admin: &Admin,
    address: &str,
    shard_count: Option<u32>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let status = admin.node_status(address).await?;
    if !status.initialized {
        return Err(CliError::Failed(format!(
            "the node at {address} belongs to no cluster, but another listed node already \
                 does; nothing was changed. `martelo status --addr ADDRESS` on each node shows \
                 which cluster it belongs to"
        )));
    }
    if let Some(wanted) = shard_count
        && wanted != status.shard_count
    {
        return Err(CliError::Failed(format!(
            "the cluster at {address} was initialized with {} shard(s), not the {wanted} \
                 asked for; the shard count is fixed for a cluster's life, so nothing was \
                 changed",
            status.shard_count
        )));
    }
    writeln!(
        out,
        "the node at {address} already belongs to a cluster of {} shard(s): nothing to \
             do; waiting until every group has a leader",
        status.shard_count
    )?;
    let seeds = [address.to_owned()];
    let healthy = admin
        .wait_healthy(&seeds, admin.options().init_timeout)
        .await?;
    admin
        .record_cluster_facts(&seeds, healthy.shard_count)
        .await?;
    writeln!(
        out,
        "already initialized: {} node(s), every group has a leader",
        healthy.nodes.len()
    )?;
    Ok(())
}

/// The nodes `address` knows (before init: its `--peers` and itself), for `cluster init`
/// without `--node`. A node serves every API at its one address, its `api_address`.
async fn address_book(admin: &Admin, address: &str) -> Result<Vec<NodeAddress>, CliError> {
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
    Ok(nodes
        .into_iter()
        .map(|node| NodeAddress {
            id: NodeId(node.node_id),
            address: node.api_address,
        })
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;
    use crate::cli::tests::parse;

    #[test]
    fn cluster_init_takes_repeated_nodes() {
        let Command::Cluster(ClusterCommand::Init(args)) = parse(&[
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
        assert_eq!(
            args.nodes[1],
            NodeAddress {
                id: NodeId(2),
                address: "127.0.0.1:7002".to_owned()
            }
        );
    }
}
