//! Admin operations: what `martelo status`, `cluster init`, `node add|remove`,
//! `leader transfer`, `snapshot`, `auction show|list` and `user create` do, callable from
//! tests.
//!
//! Every operation starts from a few seed addresses and discovers the rest through the
//! nodes' address books. Changes go to the group's leader and follow `not_leader` hints.
//! A change is retried only where the node proves it did nothing (a redirect, `unavailable`,
//! `change_in_progress`); after a timeout it is reported, because it may have happened.
//!
//! - this file: [`Admin`] and [`AdminOptions`], one node's status, the survey of the whole
//!   cluster ([`Admin::cluster_status`], [`Admin::wait_healthy`]) and what the other files
//!   share;
//! - [`status`]: [`ClusterStatus`] (serde, for `--json`), built from the nodes' answers;
//!   [`health`]: the verdict on each group and the cluster; both pure, and the CLI prints
//!   them as tables;
//! - `init`: [`Admin::init_cluster`], its [`Layout`] and the checks of a new cluster's nodes;
//! - `membership`: [`Admin::add_node`], [`Admin::remove_node`] and
//!   [`Admin::transfer_leader`], with their per-group [`MembershipReport`];
//! - `inspect`: snapshots and auction reads through the admin API
//!   ([`Admin::trigger_snapshot`], [`Admin::show_auction`], [`Admin::list_auctions`]);
//! - `users`: the operator's meta-group actions ([`Admin::propose_meta`], what `martelo user
//!   create` sends; [`Admin::record_cluster_facts`], what `init_cluster` ends with);
//! - `fixtures` (tests and the `fixtures` feature): hand-made `Status` answers.
//!
//! What does not live here: the attempt loop that changes and reads go through
//! (`crate::client::attempts`), what a node's answer means ([`crate::decide`]).

pub mod health;
mod init;
mod inspect;
mod membership;
pub mod status;
mod users;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use martelo_proto::{ApiError, Node, StatusResponse};
use martelo_types::{NodeAddress, ShardCount};

pub use init::{Layout, Placement, REPLICATION_FACTOR_DEFAULT, check_init_nodes, check_replicas};
pub use membership::{GroupChange, MembershipReport, check_new_node, member_groups};
pub use status::{
    ClusterStatus, ErrorReport, GroupHealth, GroupReport, Health, HealthState, NodeStatus, Role,
};

use crate::channels::Channels;
use crate::client::attempts::{combine_errors, node_status};
use crate::error::ClientError;
use crate::retry::RetryPolicy;
use crate::topology::Topology;

/// Timeouts of admin operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminOptions {
    /// One node's `Status`.
    pub status_timeout: Duration,
    /// One change (open a group, promote, remove, transfer, snapshot), retries included.
    pub change_timeout: Duration,
    /// Adding a learner, which waits until it has caught up with the leader's log.
    pub catch_up_timeout: Duration,
    /// `InitCluster` plus the wait until every group has a leader.
    pub init_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for AdminOptions {
    fn default() -> AdminOptions {
        AdminOptions {
            status_timeout: Duration::from_secs(3),
            change_timeout: Duration::from_secs(15),
            catch_up_timeout: Duration::from_secs(120),
            init_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// Runs admin operations. Cheap to clone; clones share channels.
#[derive(Clone, Debug)]
pub struct Admin {
    options: AdminOptions,
    channels: Channels,
}

impl Default for Admin {
    fn default() -> Admin {
        Admin::new(AdminOptions::default())
    }
}

impl Admin {
    pub fn new(options: AdminOptions) -> Admin {
        Admin {
            options,
            channels: Channels::new(options.connect_timeout),
        }
    }

    pub fn options(&self) -> &AdminOptions {
        &self.options
    }

    /// One node's `Status`, whether or not it is initialized.
    pub async fn node_status(&self, address: &str) -> Result<StatusResponse, ClientError> {
        node_status(&self.channels, address, self.options.status_timeout).await
    }

    /// The `Status` of every node in the cluster: the first seed that answers gives the
    /// address book, then every node in it (and in the books of those) is asked. Nodes that
    /// do not answer are reported, not fatal; only "no seed answered" is an error.
    pub async fn cluster_status(&self, seeds: &[String]) -> Result<ClusterStatus, ClientError> {
        self.survey(seeds).await.map(|survey| survey.status)
    }

    async fn survey(&self, seeds: &[String]) -> Result<Survey, ClientError> {
        if seeds.is_empty() {
            return Err(ClientError::InvalidInput(
                "no node address given: pass at least one host:port (--addr or MARTELO_ADDR)"
                    .to_owned(),
            ));
        }
        let timeout = self.options.status_timeout;
        let mut answers: Vec<(String, Result<StatusResponse, ClientError>)> = Vec::new();
        for seed in seeds {
            let answer = node_status(&self.channels, seed, timeout).await;
            let reached = answer.is_ok();
            answers.push((seed.clone(), answer));
            if reached {
                break;
            }
        }
        if answers.iter().all(|(_, answer)| answer.is_err()) {
            let errors = answers
                .into_iter()
                .filter_map(|(_, answer)| answer.err())
                .collect();
            return Err(combine_errors(errors));
        }
        // Ask every node in the address books, until no answer names a node not yet asked.
        // Bounded: each round asks only new addresses, and there are finitely many.
        loop {
            let asked: Vec<&String> = answers.iter().map(|(address, _)| address).collect();
            let answered_ids: Vec<u64> = answers
                .iter()
                .filter_map(|(_, answer)| answer.as_ref().ok())
                .filter_map(|status| status.node.as_ref().map(|node| node.node_id))
                .collect();
            let mut next: Vec<String> = answers
                .iter()
                .filter_map(|(_, answer)| answer.as_ref().ok())
                .flat_map(|status| status.nodes.iter())
                .filter(|node| {
                    !node.api_address.is_empty()
                        && !answered_ids.contains(&node.node_id)
                        && !asked.contains(&&node.api_address)
                })
                .map(|node| node.api_address.clone())
                .collect();
            next.sort();
            next.dedup();
            if next.is_empty() {
                break;
            }
            let found = futures::future::join_all(
                next.iter()
                    .map(|address| node_status(&self.channels, address, timeout)),
            )
            .await;
            answers.extend(next.into_iter().zip(found));
        }
        let mut topology = Topology::default();
        let mut known_ids = BTreeMap::new();
        for status in answers
            .iter()
            .filter_map(|(_, answer)| answer.as_ref().ok())
        {
            topology.observe_status(status);
        }
        for target in topology.nodes() {
            known_ids.insert(target.address, target.node_id);
        }
        let status = ClusterStatus::from_answers(answers, &known_ids);
        Ok(Survey { status, topology })
    }

    /// Waits until every group has a leader acknowledged by a majority of its voters.
    pub async fn wait_healthy(
        &self,
        seeds: &[String],
        timeout: Duration,
    ) -> Result<ClusterStatus, ClientError> {
        let started = Instant::now();
        let mut polls = 0;
        loop {
            polls += 1;
            let last = match self.cluster_status(seeds).await {
                Ok(status) if status.health.healthy => return Ok(status),
                Ok(status) => status.health.summary,
                Err(error) => error.to_string(),
            };
            if started.elapsed() + HEALTH_POLL_INTERVAL >= timeout {
                return Err(ClientError::Deadline {
                    deadline: timeout,
                    attempts: polls,
                    last,
                });
            }
            tokio::time::sleep(HEALTH_POLL_INTERVAL).await;
        }
    }

    fn policy(&self, deadline: Duration) -> RetryPolicy {
        RetryPolicy {
            deadline,
            attempts_max: 32,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
        }
    }
}

const HEALTH_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A cluster status with the topology (address book, voters, leaders) behind it.
struct Survey {
    status: ClusterStatus,
    topology: Topology,
}

impl Survey {
    fn shard_count(&self, seeds: &[String]) -> Result<ShardCount, ClientError> {
        self.topology
            .shard_count()
            .ok_or_else(|| ClientError::ClusterNotInitialized {
                address: seeds.join(", "),
            })
    }
}

fn empty_answer(address: &str, what: &'static str) -> ClientError {
    ClientError::Decode {
        address: address.to_owned(),
        what,
        reason: "the answer holds neither a result nor an error".to_owned(),
    }
}

fn empty_api_error() -> ApiError {
    ApiError::new(
        martelo_proto::ErrorCode::Internal,
        "the answer holds neither a result nor an error",
    )
}

/// The wire form of a node whose one address serves its client, admin and Raft APIs, as
/// every node that `init_cluster` and `add_node` are given does.
fn wire_node(node: &NodeAddress) -> Node {
    Node {
        node_id: node.id.get(),
        raft_address: node.address.clone(),
        api_address: node.address.clone(),
    }
}
