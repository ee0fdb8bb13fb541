//! Admin operations: what `martelo status`, `cluster init`, `node add|remove`,
//! `leader transfer`, `snapshot` and `auction show|list` do, callable from tests.
//!
//! Every operation starts from a few seed addresses and discovers the rest through the
//! nodes' address books. Changes go to the group's leader and follow `not_leader` hints.
//! A change is retried only where the node proves it did nothing (a redirect, `unavailable`,
//! `change_in_progress`); after a timeout it is reported, because it may have happened.
//!
//! - [`status`]: [`ClusterStatus`] (serde, for `--json`), the health verdict and
//!   [`render_table`], all pure.
//! - this module: [`Admin`], the IO.

pub mod status;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use martelo_engine::{AuctionId, GroupId};
use martelo_proto::{
    AddLearnerRequest, AdminTransferLeaderRequest, ApiError, InitClusterRequest, MembershipChanged,
    MembershipResponse, Node, OpenGroupRequest, PromoteVoterRequest, RemoveNodeRequest,
    ShowAuctionRequest, StatusResponse, TriggerSnapshotRequest, admin_transfer_leader_response,
    init_cluster_response, membership_response, open_group_response, trigger_snapshot_response,
};
use serde::Serialize;

pub use status::{ClusterStatus, ErrorReport, GroupReport, Health, HealthState, render_table};

use crate::channels::{Channels, bounded, request_with_timeout};
use crate::client::{self, AuctionRead, Client, ClientOptions, ReadConsistency};
use crate::decide::{self, CallError, Failure, Verdict};
use crate::error::ClientError;
use crate::listing::{AuctionList, ListCursor, ListFilter};
use crate::retry::RetryPolicy;
use crate::routing::{self, ShardCount};
use crate::topology::{Target, Topology};

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

/// The groups and voters `InitCluster` created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub groups: Vec<Placement>,
}

/// One group's initial voters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub group_id: u64,
    pub voters: Vec<u64>,
}

/// What a membership operation did, group by group. A failed group does not stop the
/// others; run the command again to finish (every step is idempotent on the node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MembershipReport {
    pub node_id: u64,
    pub groups: Vec<GroupChange>,
}

impl MembershipReport {
    /// True when every group's change succeeded.
    pub fn all_ok(&self) -> bool {
        self.groups.iter().all(|group| group.error.is_none())
    }
}

/// One group's part of a membership operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupChange {
    pub group_id: u64,
    /// The last step attempted: `open_group`, `add_learner`, `promote_voter` or
    /// `remove_node`.
    pub step: &'static str,
    /// The membership after the last successful step, from the leader.
    pub log_index: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// Why the step failed; `None` when the group is done.
    pub error: Option<ErrorReport>,
    /// The group was already as asked (a repeated command): nothing was changed.
    pub unchanged: bool,
}

impl GroupChange {
    fn new(group: GroupId, step: &'static str) -> GroupChange {
        GroupChange {
            group_id: group.0,
            step,
            log_index: None,
            voters: Vec::new(),
            learners: Vec::new(),
            error: None,
            unchanged: false,
        }
    }

    /// A group that was already as asked, with its membership from `status`.
    fn unchanged(group: GroupId, step: &'static str, membership: &GroupReport) -> GroupChange {
        GroupChange {
            voters: membership.voters.clone(),
            learners: membership.learners.clone(),
            unchanged: true,
            ..GroupChange::new(group, step)
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
        client::node_status(&self.channels, address, self.options.status_timeout).await
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
            let answer = client::node_status(&self.channels, seed, timeout).await;
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
            return Err(client::combine_errors(errors));
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
                    .map(|address| client::node_status(&self.channels, address, timeout)),
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

    /// Bootstraps a cluster through the node at `address` (which fans out to the others),
    /// then waits until every group has a healthy leader. `shard_count` and
    /// `replicas_per_group` 0 mean the node's defaults.
    pub async fn init_cluster(
        &self,
        address: &str,
        nodes: Vec<Node>,
        shard_count: u32,
        replicas_per_group: u32,
    ) -> Result<Layout, ClientError> {
        check_init_nodes(&nodes, shard_count)?;
        let started = Instant::now();
        let timeout = self.options.init_timeout;
        let message = InitClusterRequest {
            nodes,
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
                    voters: placement.voters,
                })
                .collect(),
        };
        let remaining = timeout.saturating_sub(started.elapsed());
        self.wait_healthy(&[address.to_owned()], remaining).await?;
        Ok(layout)
    }

    /// Adds `node` to `groups` (default: every group, the meta group included): opens an
    /// empty replica on it, adds it as a learner at the leader (waiting until it caught up),
    /// then promotes it to voter unless `promote` is false. Reports each group.
    pub async fn add_node(
        &self,
        seeds: &[String],
        node: Node,
        groups: Option<Vec<GroupId>>,
        promote: bool,
    ) -> Result<MembershipReport, ClientError> {
        let survey = self.survey(seeds).await?;
        let shards = survey.shard_count(seeds)?;
        check_new_node(&survey.topology, &node)?;
        let groups = match groups {
            Some(groups) => checked_groups(groups, shards)?,
            None => (0..=u64::from(shards.get())).map(GroupId).collect(),
        };
        let replication_factor = survey.status.health.replication_factor;
        let topology = Mutex::new(survey.topology);
        let mut report = MembershipReport {
            node_id: node.node_id,
            groups: Vec::new(),
        };
        for group in groups {
            let membership = survey.status.membership(group.0);
            let is_voter = membership.is_some_and(|m| m.voters.contains(&node.node_id));
            let is_learner = membership.is_some_and(|m| m.learners.contains(&node.node_id));
            // A learner left by an interrupted run is added again: the leader then waits
            // for it to catch up, which the promotion needs anyway.
            let change = match membership {
                // Already done: a repeated `node add` changes nothing and succeeds.
                Some(membership) if is_voter || (is_learner && !promote) => {
                    let step = if is_voter {
                        "promote_voter"
                    } else {
                        "add_learner"
                    };
                    GroupChange::unchanged(group, step, membership)
                }
                _ => {
                    let target = AddTarget {
                        node: &node,
                        group,
                        shards,
                        replication_factor,
                        promote,
                    };
                    self.add_to_group(&topology, target).await
                }
            };
            report.groups.push(change);
        }
        Ok(report)
    }

    async fn add_to_group(&self, topology: &Mutex<Topology>, target: AddTarget<'_>) -> GroupChange {
        let AddTarget {
            node,
            group,
            shards,
            replication_factor,
            promote,
        } = target;
        let mut change = GroupChange::new(group, "open_group");
        if let Err(error) = self
            .open_group(node, group, shards, replication_factor)
            .await
        {
            change.error = Some(ErrorReport::from(&error));
            return change;
        }
        change.step = "add_learner";
        let message = AddLearnerRequest {
            group_id: group.0,
            node: Some(node.clone()),
            wait_for_catch_up: true,
        };
        let added = self
            .change_at_leader(
                topology,
                group,
                self.options.catch_up_timeout,
                |mut admin, timeout| {
                    let message = message.clone();
                    async move {
                        bounded(
                            timeout,
                            admin.add_learner(request_with_timeout(message, timeout)),
                        )
                        .await
                    }
                },
            )
            .await;
        if !record(&mut change, added) || !promote {
            return change;
        }
        change.step = "promote_voter";
        let message = PromoteVoterRequest {
            group_id: group.0,
            node_id: node.node_id,
        };
        let promoted = self
            .change_at_leader(
                topology,
                group,
                self.options.change_timeout,
                |mut admin, timeout| async move {
                    bounded(
                        timeout,
                        admin.promote_voter(request_with_timeout(message, timeout)),
                    )
                    .await
                },
            )
            .await;
        record(&mut change, promoted);
        change
    }

    async fn open_group(
        &self,
        node: &Node,
        group: GroupId,
        shards: ShardCount,
        replication_factor: u32,
    ) -> Result<(), ClientError> {
        let address = node.api_address.as_str();
        let timeout = self.options.change_timeout;
        let message = OpenGroupRequest {
            group_id: group.0,
            shard_count: shards.get(),
            voters: Vec::new(),
            replication_factor,
        };
        let answer = match self.channels.admin_api(address) {
            Ok(mut admin) => {
                bounded(
                    timeout,
                    admin.open_group(request_with_timeout(message, timeout)),
                )
                .await
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok(response) => match response.result {
                Some(open_group_response::Result::Opened(_)) => Ok(()),
                Some(open_group_response::Result::Error(error)) => {
                    Err(ClientError::from_api(address, error))
                }
                None => Err(empty_answer(address, "open group response")),
            },
            Err(error) => Err(decide::classify_call_error(address, error).1),
        }
    }

    /// Removes node `node_id` from `groups` (default: every group it is a voter or learner
    /// of). The node refuses with `quorum_at_risk` when the remaining voters could not form
    /// a healthy majority, unless `force`.
    pub async fn remove_node(
        &self,
        seeds: &[String],
        node_id: u64,
        groups: Option<Vec<GroupId>>,
        force: bool,
    ) -> Result<MembershipReport, ClientError> {
        let survey = self.survey(seeds).await?;
        let shards = survey.shard_count(seeds)?;
        // With no --group, the groups it is in: none means it is removed already, and the
        // report is empty (done, nothing to do).
        let groups = match groups {
            Some(groups) => checked_groups(groups, shards)?,
            None => member_groups(&survey.status, node_id),
        };
        let topology = Mutex::new(survey.topology);
        let mut report = MembershipReport {
            node_id,
            groups: Vec::new(),
        };
        for group in groups {
            if let Some(membership) = survey.status.membership(group.0)
                && !membership.voters.contains(&node_id)
                && !membership.learners.contains(&node_id)
            {
                report
                    .groups
                    .push(GroupChange::unchanged(group, "remove_node", membership));
                continue;
            }
            let mut change = GroupChange::new(group, "remove_node");
            let message = RemoveNodeRequest {
                group_id: group.0,
                node_id,
                force,
            };
            let removed = self
                .change_at_leader(
                    &topology,
                    group,
                    self.options.change_timeout,
                    |mut admin, timeout| async move {
                        bounded(
                            timeout,
                            admin.remove_node(request_with_timeout(message, timeout)),
                        )
                        .await
                    },
                )
                .await;
            record(&mut change, removed);
            report.groups.push(change);
        }
        Ok(report)
    }

    /// Asks `group`'s leader to hand leadership to `to_node_id`; returns the node that
    /// leads when the call returns (compare it with `to_node_id`: a transfer can fail).
    pub async fn transfer_leader(
        &self,
        seeds: &[String],
        group: GroupId,
        to_node_id: u64,
    ) -> Result<u64, ClientError> {
        let survey = self.survey(seeds).await?;
        let shards = survey.shard_count(seeds)?;
        checked_groups(vec![group], shards)?;
        let topology = Mutex::new(survey.topology);
        let message = AdminTransferLeaderRequest {
            group_id: group.0,
            to_node_id,
        };
        let policy = self.policy(self.options.change_timeout);
        let served = client::drive(&topology, policy, "admin", group, |target, timeout| {
            let channels = self.channels.clone();
            async move {
                let answer = match channels.admin_api(&target.address) {
                    Ok(mut admin) => {
                        bounded(
                            timeout,
                            admin.transfer_leader(request_with_timeout(message, timeout)),
                        )
                        .await
                    }
                    Err(error) => Err(error),
                };
                let answer = answer.map(|response| match response.result {
                    Some(admin_transfer_leader_response::Result::LeaderId(leader)) => Ok(leader),
                    Some(admin_transfer_leader_response::Result::Error(error)) => Err(error),
                    None => Err(empty_api_error()),
                });
                change_verdict(&target.address, answer)
            }
        })
        .await;
        leader_answered(&topology, group, served)
    }

    /// Builds a snapshot of `group` on the node at `address` (snapshots are per replica);
    /// returns the last log index it covers.
    pub async fn trigger_snapshot(
        &self,
        address: &str,
        group: GroupId,
    ) -> Result<u64, ClientError> {
        let timeout = self.options.change_timeout;
        let message = TriggerSnapshotRequest { group_id: group.0 };
        let answer = match self.channels.admin_api(address) {
            Ok(mut admin) => {
                bounded(
                    timeout,
                    admin.trigger_snapshot(request_with_timeout(message, timeout)),
                )
                .await
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok(response) => match response.result {
                Some(trigger_snapshot_response::Result::SnapshotIndex(index)) => Ok(index),
                Some(trigger_snapshot_response::Result::Error(error)) => {
                    Err(ClientError::from_api(address, error))
                }
                None => Err(empty_answer(address, "trigger snapshot response")),
            },
            Err(error) => Err(decide::classify_call_error(address, error).1),
        }
    }

    /// An auction's state through the admin API. `Linearizable` and `Lease` go to the
    /// group's leader (following hints); `Local` shows what the first seed that answers
    /// holds, stale or not.
    pub async fn show_auction(
        &self,
        seeds: &[String],
        auction: AuctionId,
        consistency: ReadConsistency,
    ) -> Result<AuctionRead, ClientError> {
        let (seed, status) =
            client::first_initialized_status(&self.channels, seeds, self.options.status_timeout)
                .await?;
        let mut topology = Topology::default();
        topology.observe_status(&status);
        let shards = topology
            .shard_count()
            .ok_or_else(|| ClientError::ClusterNotInitialized {
                address: seed.clone(),
            })?;
        let group = routing::group_of(auction, shards);
        if consistency == ReadConsistency::Local {
            // Pin the route to the seed: a local read shows that replica, not the leader's.
            let seed_id = status.node.as_ref().map_or(0, |node| node.node_id);
            topology.observe_success(group, seed_id, u64::MAX);
        }
        let topology = Mutex::new(topology);
        let message = ShowAuctionRequest {
            group_id: group.0,
            auction_id: auction.0,
            consistency: consistency.to_proto().into(),
        };
        let policy = self.policy(self.options.change_timeout);
        let served = client::drive(&topology, policy, "admin", group, |target, timeout| {
            let channels = self.channels.clone();
            async move {
                let answer = match channels.admin_api(&target.address) {
                    Ok(mut admin) => {
                        bounded(
                            timeout,
                            admin.show_auction(request_with_timeout(message, timeout)),
                        )
                        .await
                    }
                    Err(error) => Err(error),
                };
                decide::classify_show(&target.address, answer)
            }
        })
        .await;
        match served {
            Ok(served) => client::decode_view(&served.target, served.value),
            Err(exhausted) => Err(exhausted.last_error),
        }
    }

    /// One page of the cluster's auctions for `martelo auction list`, through the client
    /// API's `ListAuctions` (see [`crate::Client::list_auctions`]): a client is connected
    /// through `seeds` and follows leader hints group by group. `Local` reads whatever
    /// replica answers first (the cached leader first), not a chosen one.
    pub async fn list_auctions(
        &self,
        seeds: &[String],
        filter: ListFilter,
        from: ListCursor,
        limit: usize,
        consistency: ReadConsistency,
    ) -> Result<AuctionList, ClientError> {
        let policy = self.policy(self.options.change_timeout);
        let options = ClientOptions {
            deadline: policy.deadline,
            attempts_max: policy.attempts_max,
            backoff_initial: policy.backoff_initial,
            backoff_max: policy.backoff_max,
            connect_timeout: self.options.connect_timeout,
        };
        let client = Client::connect(seeds, options).await?;
        client.list_auctions(filter, from, limit, consistency).await
    }

    /// One membership change at `group`'s leader, following hints, within `timeout`.
    async fn change_at_leader<F, Fut>(
        &self,
        topology: &Mutex<Topology>,
        group: GroupId,
        timeout: Duration,
        send: F,
    ) -> Result<MembershipChanged, ClientError>
    where
        F: Fn(
            martelo_proto::admin_api_client::AdminApiClient<tonic::transport::Channel>,
            Duration,
        ) -> Fut,
        Fut: Future<Output = Result<MembershipResponse, CallError>>,
    {
        let policy = self.policy(timeout);
        let served = client::drive(
            topology,
            policy,
            "admin",
            group,
            |target: Target, remaining| {
                let admin = self.channels.admin_api(&target.address);
                let call = admin.map(|admin| send(admin, remaining));
                async move {
                    let answer = match call {
                        Ok(call) => call.await,
                        Err(error) => Err(error),
                    };
                    let answer = answer.map(|response| match response.result {
                        Some(membership_response::Result::Changed(changed)) => Ok(changed),
                        Some(membership_response::Result::Error(error)) => Err(error),
                        None => Err(empty_api_error()),
                    });
                    change_verdict(&target.address, answer)
                }
            },
        )
        .await;
        leader_answered(topology, group, served)
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

/// What [`Admin::add_to_group`] adds where.
struct AddTarget<'a> {
    node: &'a Node,
    group: GroupId,
    shards: ShardCount,
    replication_factor: u32,
    promote: bool,
}

/// The verdict on one attempt at an admin change. A call that may have reached the node
/// stops: the change may have happened, and retrying could report a misleading error.
fn change_verdict<T>(address: &str, answer: Result<Result<T, ApiError>, CallError>) -> Verdict<T> {
    match answer {
        Ok(Ok(value)) => Verdict::Done(value),
        Ok(Err(error)) => decide::classify_admin_error(address, error),
        Err(error) => match decide::classify_call_error(address, error) {
            (Failure::NotSent, error) => Verdict::Retry {
                retry: decide::Retry::NotSent,
                error,
            },
            (Failure::Indeterminate | Failure::WrongServer, error) => Verdict::Stop(error),
        },
    }
}

/// The value of a change that only a leader makes; the node that made it leads now, so
/// the group's next change goes straight to it.
fn leader_answered<T>(
    topology: &Mutex<Topology>,
    group: GroupId,
    served: Result<client::Served<T>, client::Exhausted>,
) -> Result<T, ClientError> {
    match served {
        Ok(served) => {
            topology
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe_success(group, served.target.node_id, 0);
            Ok(served.value)
        }
        Err(exhausted) => Err(exhausted.last_error),
    }
}

/// Records a step's result in `change`; true when it succeeded.
fn record(change: &mut GroupChange, result: Result<MembershipChanged, ClientError>) -> bool {
    match result {
        Ok(changed) => {
            change.log_index = Some(changed.log_index);
            change.voters = changed.voters;
            change.learners = changed.learners;
            change.error = None;
            true
        }
        Err(error) => {
            change.error = Some(ErrorReport::from(&error));
            false
        }
    }
}

/// The groups `node_id` is a voter or learner of, by the membership each leader reports.
pub fn member_groups(status: &ClusterStatus, node_id: u64) -> Vec<GroupId> {
    status
        .group_ids()
        .into_iter()
        .filter(|&group| {
            status.membership(group).is_some_and(|membership| {
                membership.voters.contains(&node_id) || membership.learners.contains(&node_id)
            })
        })
        .map(GroupId)
        .collect()
}

/// Group ids must exist in the cluster: 0 (meta) or `1..=shard_count`.
fn checked_groups(groups: Vec<GroupId>, shards: ShardCount) -> Result<Vec<GroupId>, ClientError> {
    if let Some(bad) = groups
        .iter()
        .find(|group| group.0 > u64::from(shards.get()))
    {
        return Err(ClientError::InvalidInput(format!(
            "there is no group {}: the cluster has the meta group 0 and auction groups 1..={}",
            bad.0,
            shards.get()
        )));
    }
    let mut groups = groups;
    groups.sort();
    groups.dedup();
    Ok(groups)
}

/// A node to add needs a fresh, non-zero id and an address no other node uses. Adding a
/// node that is already known with the same address is allowed: it resumes an add that
/// stopped half way.
pub fn check_new_node(topology: &Topology, node: &Node) -> Result<(), ClientError> {
    if node.node_id == 0 {
        return Err(ClientError::InvalidInput(
            "node id 0 is reserved: pick a positive id never used in this cluster".to_owned(),
        ));
    }
    if node.api_address.is_empty() {
        return Err(ClientError::InvalidInput(
            "the new node's address is empty: pass --address HOST:PORT".to_owned(),
        ));
    }
    for known in topology.nodes() {
        if known.node_id == node.node_id && known.address != node.api_address {
            return Err(ClientError::InvalidInput(format!(
                "node id {} is already used by the node at {}; node ids are never reused, \
                 pick another",
                node.node_id, known.address
            )));
        }
        if known.node_id != node.node_id && known.address == node.api_address {
            return Err(ClientError::InvalidInput(format!(
                "address {} already belongs to node {}; is the new node's address right?",
                node.api_address, known.node_id
            )));
        }
    }
    Ok(())
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
pub fn check_init_nodes(nodes: &[Node], shard_count: u32) -> Result<(), ClientError> {
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
        if node.node_id == 0 {
            return Err(ClientError::InvalidInput(
                "node id 0 is reserved: node ids start at 1".to_owned(),
            ));
        }
        if !ids.insert(node.node_id) {
            return Err(ClientError::InvalidInput(format!(
                "node id {} is given twice",
                node.node_id
            )));
        }
        if !addresses.insert(node.api_address.as_str()) {
            return Err(ClientError::InvalidInput(format!(
                "address {} is given for two nodes",
                node.api_address
            )));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, port: u16) -> Node {
        let address = format!("127.0.0.1:{port}");
        Node {
            node_id: id,
            raft_address: address.clone(),
            api_address: address,
        }
    }

    fn topology() -> Topology {
        let mut topology = Topology::default();
        topology.observe_status(&StatusResponse {
            node: Some(node(1, 7001)),
            initialized: true,
            shard_count: 2,
            nodes: vec![node(1, 7001), node(2, 7002)],
            ..StatusResponse::default()
        });
        topology
    }

    #[test]
    fn a_new_node_needs_a_fresh_id_and_address() {
        assert!(check_new_node(&topology(), &node(3, 7003)).is_ok());
        // Re-running an add that stopped half way is fine.
        assert!(check_new_node(&topology(), &node(2, 7002)).is_ok());
        let error = check_new_node(&topology(), &node(2, 7009)).unwrap_err();
        assert!(error.to_string().contains("never reused"), "{error}");
        let error = check_new_node(&topology(), &node(5, 7002)).unwrap_err();
        assert!(
            error.to_string().contains("already belongs to node 2"),
            "{error}"
        );
        assert!(check_new_node(&topology(), &node(0, 7005)).is_err());
    }

    #[test]
    fn init_refuses_duplicate_ids_and_addresses_and_empty_lists() {
        assert!(check_init_nodes(&[node(1, 7001), node(2, 7002)], 8).is_ok());
        assert!(check_init_nodes(&[], 8).is_err());
        assert!(check_init_nodes(&[node(1, 7001), node(1, 7002)], 8).is_err());
        assert!(check_init_nodes(&[node(1, 7001), node(2, 7001)], 8).is_err());
        assert!(check_init_nodes(&[node(1, 7001)], 5000).is_err());
    }

    #[test]
    fn groups_outside_the_cluster_are_refused() {
        let shards = ShardCount::try_from(4).unwrap();
        assert_eq!(
            checked_groups(vec![GroupId(3), GroupId(0), GroupId(3)], shards).unwrap(),
            vec![GroupId(0), GroupId(3)]
        );
        let error = checked_groups(vec![GroupId(5)], shards).unwrap_err();
        assert!(error.to_string().contains("1..=4"), "{error}");
    }

    #[test]
    fn a_change_that_may_have_reached_the_node_is_not_retried() {
        let timed_out: Result<Result<(), ApiError>, CallError> =
            Err(CallError::TimedOut(Duration::from_secs(1)));
        assert!(matches!(
            change_verdict("127.0.0.1:7001", timed_out),
            Verdict::Stop(_)
        ));
        let unavailable: Result<Result<(), ApiError>, CallError> = Ok(Err(ApiError::new(
            martelo_proto::ErrorCode::Unavailable,
            "starting",
        )));
        assert!(matches!(
            change_verdict("127.0.0.1:7001", unavailable),
            Verdict::Retry { .. }
        ));
    }
}
