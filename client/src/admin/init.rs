//! `martelo cluster init`: [`Admin::init_cluster`], the [`Layout`] it reports, and the
//! checks of a new cluster's node list and replica count, made before anything is sent.
//!
//! What does not live here: adding nodes to a running cluster (`super::membership`), the
//! health wait it ends with ([`Admin::wait_healthy`]).

use std::time::Instant;

use martelo_proto::{InitClusterRequest, init_cluster_response};
use martelo_types::{self as routing, NodeAddress, NodeId, ShardCount};
use serde::Serialize;

use super::status::node_ids;
use super::{Admin, empty_answer, wire_node};
use crate::channels::{bounded, request_with_timeout};
use crate::decide;
use crate::error::ClientError;

/// The groups and voters `InitCluster` created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub groups: Vec<Placement>,
}

/// One group's initial voters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub group_id: u64,
    pub voters: Vec<NodeId>,
}

impl Admin {
    /// Bootstraps a cluster through the node at `address` (which fans out to the others),
    /// waits until every group has a healthy leader, then records the shard count in the
    /// meta group ([`Admin::record_cluster_facts`]). `shard_count` and
    /// `replicas_per_group` 0 mean the node's defaults. Each node serves its client, admin
    /// and Raft APIs at its one address.
    pub async fn init_cluster(
        &self,
        address: &str,
        nodes: &[NodeAddress],
        shard_count: u32,
        replicas_per_group: u32,
    ) -> Result<Layout, ClientError> {
        check_init_nodes(nodes, shard_count)?;
        let started = Instant::now();
        let timeout = self.options.init_timeout;
        let message = InitClusterRequest {
            nodes: nodes.iter().map(wire_node).collect(),
            shard_count,
            replicas_per_group,
        };
        let answer = match self.channels.admin_api(address) {
            Ok(mut admin) => {
                bounded(
                    timeout,
                    admin.init_cluster(request_with_timeout(message, timeout)),
                )
                .await
            }
            Err(error) => Err(error),
        };
        let layout = match answer {
            Ok(response) => match response.result {
                Some(init_cluster_response::Result::Layout(layout)) => layout,
                Some(init_cluster_response::Result::Error(error)) => {
                    return Err(ClientError::from_api(address, error));
                }
                None => return Err(empty_answer(address, "init cluster response")),
            },
            Err(error) => return Err(decide::classify_call_error(address, error).1),
        };
        let layout = Layout {
            groups: layout
                .groups
                .into_iter()
                .map(|placement| Placement {
                    group_id: placement.group_id,
                    voters: node_ids(&placement.voters),
                })
                .collect(),
        };
        let remaining = timeout.saturating_sub(started.elapsed());
        let seeds = [address.to_owned()];
        let status = self.wait_healthy(&seeds, remaining).await?;
        // The shard count the cluster was created with, as the healthy nodes report it.
        self.record_cluster_facts(&seeds, status.shard_count)
            .await?;
        Ok(layout)
    }
}

/// Voters per group unless `cluster init --replicas` says otherwise; the node's default too.
pub const REPLICATION_FACTOR_DEFAULT: u32 = 3;

/// A cluster is never created with fewer voters per group than asked (the node checks the
/// same): too few nodes is an input error that says how to proceed.
pub fn check_replicas(replicas: u32, nodes: usize) -> Result<(), ClientError> {
    if replicas == 0 || replicas as usize > nodes {
        return Err(ClientError::InvalidInput(format!(
            "every group needs {replicas} voters, but only {nodes} node(s) are known: start \
             every node with --peers listing all of them (or pass each with --node \
             ID=HOST:PORT), or ask for fewer voters per group on purpose (--replicas {nodes}, \
             or --single-node), which survives fewer failures"
        )));
    }
    Ok(())
}

/// Checks an `InitCluster` node list before sending it.
pub fn check_init_nodes(nodes: &[NodeAddress], shard_count: u32) -> Result<(), ClientError> {
    if nodes.is_empty() {
        return Err(ClientError::InvalidInput(
            "no nodes given: pass every node of the new cluster with --node ID=HOST:PORT"
                .to_owned(),
        ));
    }
    if shard_count != 0 && ShardCount::try_from(shard_count).is_err() {
        return Err(ClientError::InvalidInput(format!(
            "shard count must be between 1 and {}, got {shard_count}",
            routing::SHARD_COUNT_MAX
        )));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut addresses = std::collections::BTreeSet::new();
    for node in nodes {
        if !node.id.is_valid() {
            return Err(ClientError::InvalidInput(
                "node id 0 is reserved: node ids start at 1".to_owned(),
            ));
        }
        if !ids.insert(node.id) {
            return Err(ClientError::InvalidInput(format!(
                "node id {} is given twice",
                node.id
            )));
        }
        if !addresses.insert(node.address.as_str()) {
            return Err(ClientError::InvalidInput(format!(
                "address {} is given for two nodes",
                node.address
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::node_address as node;
    use super::*;

    #[test]
    fn init_refuses_duplicate_ids_and_addresses_and_empty_lists() {
        assert!(check_init_nodes(&[node(1, 7001), node(2, 7002)], 8).is_ok());
        assert!(check_init_nodes(&[], 8).is_err());
        assert!(check_init_nodes(&[node(1, 7001), node(1, 7002)], 8).is_err());
        assert!(check_init_nodes(&[node(1, 7001), node(2, 7001)], 8).is_err());
        assert!(check_init_nodes(&[node(1, 7001)], 5000).is_err());
    }
}
