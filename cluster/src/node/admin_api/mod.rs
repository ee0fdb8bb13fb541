//! The admin API: status, cluster bootstrap, membership, leadership and snapshots, as the
//! `martelo` CLI calls them. Membership changes (add, promote, remove, retire) and their
//! quorum rules are in `membership`; the operator's meta-group actions (`ProposeMeta`) in
//! `meta`.

use openraft::async_runtime::WatchReceiver as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use martelo_engine::meta::NodeId as MetaNodeId;
use martelo_engine::{
    AuctionId, Command, GroupId, MetaAction, MetaActor, MetaCommand, Reply, RequestId,
};
use martelo_proto::{
    AddLearnerRequest, AdminTransferLeaderRequest, AdminTransferLeaderResponse, ApiError,
    ClusterLayout, ErrorCode, GroupPlacement, GroupStatus, InitClusterRequest, InitClusterResponse,
    MembershipChanged, MembershipResponse, Node, OpenGroupRequest, OpenGroupResponse,
    PromoteVoterRequest, RaftRole, RemoveNodeRequest, ReplicationStatus, ShowAuctionRequest,
    ShowAuctionResponse, StatusRequest, StatusResponse, TriggerSnapshotRequest,
    TriggerSnapshotResponse, admin_transfer_leader_response, init_cluster_response,
    membership_response, open_group_response, show_auction_response, trigger_snapshot_response,
};
use martelo_proto::{AdminMetaRequest, ProposeResponse, propose_response};
use martelo_types::{SHARD_COUNT_MAX, ShardCount, group_of};
use openraft::{BasicNode, ChangeMembers, ServerState};
use tonic::{Request, Response, Status};

use super::client_api::read_view;
use super::group::Group;
use super::registry::Registry;

mod membership;
mod meta;
#[cfg(test)]
use membership::removal_keeps_quorum;

/// Longest an admin call waits for a change to take effect.
const ADMIN_WAIT: Duration = Duration::from_secs(10);
/// How long `InitCluster` waits for each listed node's `Status` before it creates anything.
const INIT_PREFLIGHT_WAIT: Duration = Duration::from_secs(3);
/// A follower whose last acknowledgement is older than this counts as unhealthy when
/// deciding whether a removal puts the quorum at risk.
const HEALTHY_ACK_WITHIN: Duration = Duration::from_secs(3);
/// How long a leader that is asked to remove itself waits for another voter to take over.
/// An idle group moves in milliseconds; one that ignores the transfer elects in about one.
const REMOVAL_HANDOFF_WAIT: Duration = Duration::from_secs(2);
/// How long a leader waits for acknowledgements before it judges that a removal endangers
/// the quorum. A leader elected a moment ago (after the hand-off of a removal, the very call
/// the CLI then retries here) has heard from no follower yet.
const QUORUM_CHECK_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct AdminApiService {
    registry: Arc<Registry>,
}

impl AdminApiService {
    pub fn new(registry: Arc<Registry>) -> AdminApiService {
        AdminApiService { registry }
    }

    fn group(&self, group_id: u64) -> Result<Arc<Group>, ApiError> {
        self.registry.group(GroupId(group_id)).ok_or_else(|| {
            let code = if self.registry.groups().is_empty() {
                ErrorCode::ClusterNotInitialized
            } else {
                ErrorCode::UnknownGroup
            };
            let message = if code == ErrorCode::ClusterNotInitialized {
                "this node holds no group: run `martelo cluster init` (or `martelo node add` \
                 for a new node)"
                    .to_string()
            } else {
                format!("this node holds no replica of group {group_id}; ask a node that does")
            };
            ApiError::new(code, message).with_group(group_id)
        })
    }

    fn leader_group(&self, group_id: u64) -> Result<Arc<Group>, ApiError> {
        let group = self.group(group_id)?;
        if !group.raft.is_leader() {
            return Err(ApiError::not_leader(group.leader_hint()));
        }
        Ok(group)
    }

    fn status(&self, request: &StatusRequest) -> StatusResponse {
        let wanted: BTreeSet<u64> = request.group_ids.iter().copied().collect();
        let groups = self
            .registry
            .groups()
            .iter()
            .filter(|group| wanted.is_empty() || wanted.contains(&group.id.0))
            .map(|group| group_status(group, self.registry.clock_ok(), request.include_digest))
            .collect();
        let mut book = self.registry.address_book();
        if self.registry.shard_count().is_none() {
            // Before init the node knows its future peers only from --peers: listing them
            // lets `cluster init` without --node show (and use) exactly those.
            for (node_id, address) in &self.registry.config().peers {
                book.entry(*node_id).or_insert_with(|| address.clone());
            }
        }
        let nodes = book
            .into_iter()
            .map(|(node_id, address)| node(node_id, &address))
            .collect();
        StatusResponse {
            node: Some(node(
                self.registry.node_id(),
                &self.registry.config().advertise,
            )),
            version: env!("CARGO_PKG_VERSION").to_string(),
            initialized: self.registry.shard_count().is_some(),
            groups,
            wall_clock_us: self.registry.wall_now().0,
            shard_count: self.registry.shard_count().unwrap_or(0),
            nodes,
            replication_factor: self.registry.replication_factor().unwrap_or(0),
        }
    }

    async fn init_cluster(&self, request: InitClusterRequest) -> Result<ClusterLayout, ApiError> {
        if self.registry.shard_count().is_some() || !self.registry.groups().is_empty() {
            return Err(ApiError::new(
                ErrorCode::ClusterAlreadyInitialized,
                "this node already belongs to a cluster; nothing was changed",
            ));
        }
        let mut nodes: BTreeMap<u64, String> = BTreeMap::new();
        let listed = if request.nodes.is_empty() {
            // Default: the members the node was started with (its --peers), and itself.
            let mut book = self.registry.config().peers.clone();
            book.entry(self.registry.node_id())
                .or_insert_with(|| self.registry.config().advertise.clone());
            book.iter()
                .map(|(id, address)| node(*id, address))
                .collect()
        } else {
            request.nodes.clone()
        };
        for listed in &listed {
            if listed.node_id == 0 {
                return Err(invalid("node id 0 is reserved"));
            }
            super::config::check_address("node address", &listed.raft_address)
                .map_err(|error| invalid(&error.to_string()))?;
            if nodes
                .insert(listed.node_id, listed.raft_address.clone())
                .is_some()
            {
                return Err(invalid(&format!("node {} is listed twice", listed.node_id)));
            }
        }
        if nodes.is_empty() {
            return Err(invalid(
                "no nodes given, and this node was started without --peers",
            ));
        }
        if !nodes.contains_key(&self.registry.node_id()) {
            return Err(invalid(
                "the node list must include the node that receives the call",
            ));
        }
        let shard_count = match request.shard_count {
            0 => self.registry.config().shard_count.get(),
            count => count,
        };
        let shards = ShardCount::try_from(shard_count)
            .map_err(|_| invalid(&format!("shard count must be in 1..={SHARD_COUNT_MAX}")))?;
        let replicas = match request.replicas_per_group {
            0 => REPLICATION_FACTOR_DEFAULT,
            count => count as usize,
        };
        check_replicas(replicas, nodes.len())?;
        self.check_nodes_answer(&nodes).await?;
        let layout = placement(&nodes, shards, replicas);
        for placement in &layout {
            let voters: Vec<Node> = placement
                .voters
                .iter()
                .map(|id| node(*id, &nodes[id]))
                .collect();
            // Empty replicas first, so the initializing voter's first election reaches them.
            for (index, voter) in voters.iter().enumerate().rev() {
                let initial = if index == 0 {
                    voters.clone()
                } else {
                    Vec::new()
                };
                self.open_group_on(voter, placement.group_id, shard_count, replicas, initial)
                    .await?;
            }
        }
        tracing::info!(
            shard_count,
            nodes = nodes.len(),
            replicas,
            "cluster initialized"
        );
        Ok(ClusterLayout { groups: layout })
    }

    /// Before anything is created, every other listed node must answer, as the node listed.
    /// Without this, a node still starting (a pod not scheduled yet) failed init halfway:
    /// groups created on some nodes only, and when the contacted node already held one, a
    /// second init refused to touch them (`cluster_already_initialized`), leaving a cluster
    /// that could not be finished. Whether the others already hold groups is not asked, so
    /// init treats them as it did before this check. Nodes are asked at once, each for at
    /// most [`INIT_PREFLIGHT_WAIT`].
    async fn check_nodes_answer(&self, nodes: &BTreeMap<u64, String>) -> Result<(), ApiError> {
        let own = self.registry.node_id();
        let checks = nodes
            .iter()
            .filter(|(node_id, _)| **node_id != own)
            .map(|(node_id, address)| self.check_node_answers(*node_id, address));
        for checked in futures::future::join_all(checks).await {
            checked?;
        }
        Ok(())
    }

    async fn check_node_answers(&self, node_id: u64, address: &str) -> Result<(), ApiError> {
        let unreachable = |detail: &str| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "node {node_id} at {address} does not answer ({detail}); nothing was \
                     created: start it (or correct its address), then run `cluster init` again"
                ),
            )
        };
        let channel = self
            .registry
            .peers()
            .channel(node_id, address)
            .map_err(|error| unreachable(&error.to_string()))?;
        let mut client = martelo_proto::services::admin_api_client(channel);
        let mut call = Request::new(StatusRequest::default());
        call.set_timeout(INIT_PREFLIGHT_WAIT);
        let status = tokio::time::timeout(INIT_PREFLIGHT_WAIT, client.status(call))
            .await
            .map_err(|_| unreachable(&format!("no answer within {INIT_PREFLIGHT_WAIT:?}")))?
            .map_err(|status| unreachable(status.message()))?
            .into_inner();
        let answered = status.node.map(|node| node.node_id);
        if answered != Some(node_id) {
            return Err(ApiError::new(
                ErrorCode::WrongNode,
                format!(
                    "the node at {address} is {}, not node {node_id}; nothing was created",
                    answered.map_or("a node without an id".to_owned(), |id| format!("node {id}"))
                ),
            ));
        }
        Ok(())
    }

    /// Opens a group's replica here or on another node.
    async fn open_group_on(
        &self,
        target: &Node,
        group: u64,
        shard_count: u32,
        replicas: usize,
        voters: Vec<Node>,
    ) -> Result<(), ApiError> {
        let request = OpenGroupRequest {
            group_id: group,
            shard_count,
            voters,
            replication_factor: u32::try_from(replicas).unwrap_or(u32::MAX),
        };
        if target.node_id == self.registry.node_id() {
            return self.open_group(request).await.map(|_| ());
        }
        let channel = self
            .registry
            .peers()
            .channel(target.node_id, &target.api_address)
            .map_err(|error| {
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "cannot reach node {} at {}: {error}",
                        target.node_id, target.api_address
                    ),
                )
            })?;
        let mut client = martelo_proto::services::admin_api_client(channel);
        let mut call = Request::new(request);
        call.set_timeout(ADMIN_WAIT);
        let response = client.open_group(call).await.map_err(|status| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "node {} at {} did not open group {group}: {}; is it running?",
                    target.node_id,
                    target.api_address,
                    status.message()
                ),
            )
        })?;
        match response.into_inner().result {
            Some(open_group_response::Result::Opened(_)) => Ok(()),
            Some(open_group_response::Result::Error(error)) => Err(error),
            None => Err(ApiError::new(ErrorCode::Internal, "empty OpenGroup answer")),
        }
    }

    async fn open_group(&self, request: OpenGroupRequest) -> Result<GroupPlacement, ApiError> {
        ShardCount::try_from(request.shard_count)
            .map_err(|_| invalid(&format!("shard count must be in 1..={SHARD_COUNT_MAX}")))?;
        if request.group_id > u64::from(request.shard_count) {
            return Err(invalid(&format!(
                "group {} is outside 0..={}",
                request.group_id, request.shard_count
            )));
        }
        let voters = if request.voters.is_empty() {
            None
        } else {
            let mut voters = BTreeMap::new();
            for voter in &request.voters {
                super::config::check_address("voter address", &voter.raft_address)
                    .map_err(|error| invalid(&error.to_string()))?;
                if voter.node_id == 0
                    || voters
                        .insert(voter.node_id, BasicNode::new(voter.raft_address.clone()))
                        .is_some()
                {
                    return Err(invalid("voter ids must be unique and non-zero"));
                }
            }
            if !voters.contains_key(&self.registry.node_id()) {
                return Err(invalid(
                    "the voters must include the node that opens the group",
                ));
            }
            Some(voters)
        };
        self.registry
            .record_shard_count(request.shard_count)
            .map_err(|error| invalid(&error.to_string()))?;
        self.registry
            .record_replication_factor(request.replication_factor)
            .map_err(|error| ApiError::new(ErrorCode::Internal, format!("{error:#}")))?;
        self.registry
            .open_group(GroupId(request.group_id), voters)
            .await
            .map_err(|error| ApiError::new(ErrorCode::Internal, format!("{error:#}")))?;
        Ok(GroupPlacement {
            group_id: request.group_id,
            voters: request.voters.iter().map(|voter| voter.node_id).collect(),
        })
    }

    async fn transfer_leader(&self, request: AdminTransferLeaderRequest) -> Result<u64, ApiError> {
        let group = self.leader_group(request.group_id)?;
        let (voters, _) = group.members();
        if !voters.contains(&request.to_node_id) {
            return Err(ApiError::new(
                ErrorCode::UnknownNode,
                format!(
                    "node {} is not a voter of group {}",
                    request.to_node_id, request.group_id
                ),
            ));
        }
        if request.to_node_id == self.registry.node_id() {
            return Ok(request.to_node_id);
        }
        group
            .transfer_leadership(request.to_node_id, ADMIN_WAIT)
            .await
            .ok_or_else(|| timeout("waiting for the new leader"))
    }

    async fn trigger_snapshot(&self, request: TriggerSnapshotRequest) -> Result<u64, ApiError> {
        let group = self.group(request.group_id)?;
        let target = group
            .raft
            .metrics()
            .borrow_watched()
            .last_applied
            .map_or(0, |id| id.index());
        group
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|error| ApiError::new(ErrorCode::Unavailable, error.to_string()))?;
        let mut metrics = group.raft.metrics();
        let waited = tokio::time::timeout(ADMIN_WAIT, async {
            loop {
                let snapshot = metrics.borrow_watched().snapshot.map(|id| id.index());
                if let Some(index) = snapshot
                    && index >= target
                {
                    return Some(index);
                }
                if metrics.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match waited {
            Ok(Some(index)) => Ok(index),
            _ => Err(timeout("building the snapshot")),
        }
    }

    async fn show_auction(
        &self,
        request: ShowAuctionRequest,
    ) -> Result<martelo_proto::AuctionView, ApiError> {
        let group_id = if request.group_id == 0 {
            let shards = self
                .registry
                .shard_count()
                .and_then(|count| ShardCount::try_from(count).ok())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::ClusterNotInitialized,
                        "this node does not know the shard count yet: run `martelo cluster init`",
                    )
                })?;
            group_of(AuctionId(request.auction_id), shards).0
        } else {
            request.group_id
        };
        let group = self.group(group_id)?;
        read_view(
            &self.registry,
            &group,
            AuctionId(request.auction_id),
            request.consistency(),
        )
        .await
    }
}

/// Voters per group when `cluster init` does not say: a group of 3 survives one failure.
pub const REPLICATION_FACTOR_DEFAULT: usize = 3;

/// A cluster is never created with fewer voters per group than asked: with too few nodes,
/// `cluster init` fails and says how to proceed, instead of quietly making smaller groups.
pub fn check_replicas(replicas: usize, nodes: usize) -> Result<(), ApiError> {
    if replicas == 0 || replicas > nodes {
        return Err(invalid(&format!(
            "every group needs {replicas} voters, but only {nodes} node(s) were given: start \
             more nodes and list every one (each node's --peers, or `cluster init --node`), or \
             ask for fewer voters per group explicitly (`--replicas {nodes}`, or \
             `--single-node` for one node), which survives fewer failures"
        )));
    }
    Ok(())
}

/// Groups on nodes: group `g`'s voters are `replicas` consecutive nodes (by id) starting at
/// position `g mod n`, so leaders and load spread evenly.
pub fn placement(
    nodes: &BTreeMap<u64, String>,
    shards: ShardCount,
    replicas: usize,
) -> Vec<GroupPlacement> {
    let ids: Vec<u64> = nodes.keys().copied().collect();
    (0..=u64::from(shards.get()))
        .map(|group| {
            let start = (group as usize) % ids.len();
            GroupPlacement {
                group_id: group,
                voters: (0..replicas)
                    .map(|offset| ids[(start + offset) % ids.len()])
                    .collect(),
            }
        })
        .collect()
}

fn group_status(group: &Group, clock_ok: bool, include_digest: bool) -> GroupStatus {
    use openraft::Instant as _;
    // Digest and index under one read of the state, so they belong together.
    let (state_digest, state_digest_index) = include_digest
        .then(|| {
            group
                .reader
                .read(|state, last| (state.digest().to_string(), last.map(|id| id.index())))
                .ok()
        })
        .flatten()
        .map_or((None, None), |(digest, index)| (Some(digest), index));
    let metrics = group.raft.metrics().borrow_watched().clone();
    let role = match metrics.state {
        ServerState::Leader => RaftRole::Leader,
        ServerState::Follower => RaftRole::Follower,
        ServerState::Candidate => RaftRole::Candidate,
        ServerState::Learner => RaftRole::Learner,
        ServerState::Shutdown => RaftRole::Shutdown,
    };
    let membership = metrics.membership_config.membership();
    let last_log = metrics.last_log_index;
    let replication = metrics
        .replication
        .iter()
        .flatten()
        .filter(|(id, _)| **id != metrics.id)
        .map(|(id, matched)| {
            let matched_index = matched.as_ref().map(|id| id.index());
            ReplicationStatus {
                node_id: *id,
                matched_index,
                lag_entries: last_log
                    .unwrap_or(0)
                    .saturating_sub(matched_index.unwrap_or(0)),
            }
        })
        .collect();
    GroupStatus {
        group_id: group.id.0,
        role: role.into(),
        term: metrics.current_term,
        leader_id: metrics.current_leader,
        last_log_index: last_log,
        committed_index: metrics.local_committed.map(|id| id.index()),
        applied_index: metrics.last_applied.map(|id| id.index()),
        snapshot_index: metrics.snapshot.map(|id| id.index()),
        purged_index: metrics.purged.map(|id| id.index()),
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
        replication,
        quorum_ack_age_ms: metrics
            .last_quorum_acked
            .as_ref()
            .map(|acked| acked.elapsed().as_millis() as u64),
        clock_ok,
        state_digest,
        state_digest_index,
    }
}

fn write_error(
    group: &Group,
    error: &openraft::errors::RaftError<
        martelo_raft_store::TypeConfig,
        openraft::errors::ClientWriteError<martelo_raft_store::TypeConfig>,
    >,
) -> ApiError {
    use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            ApiError::not_leader(group.leader_hint())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => ApiError::new(
            ErrorCode::ChangeInProgress,
            format!(
                "another membership change of group {} is still in progress; retry",
                group.id.0
            ),
        ),
        other => ApiError::new(ErrorCode::Unavailable, other.to_string()).with_group(group.id.0),
    }
}

fn node(node_id: u64, address: &str) -> Node {
    Node {
        node_id,
        raft_address: address.to_string(),
        api_address: address.to_string(),
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidArgument, message)
}

fn timeout(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Timeout,
        format!("timed out {what}; check `martelo status` before retrying"),
    )
}

#[tonic::async_trait]
impl martelo_proto::admin_api_server::AdminApi for AdminApiService {
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(AdminApiService::status(
            self,
            request.get_ref(),
        )))
    }

    async fn init_cluster(
        &self,
        request: Request<InitClusterRequest>,
    ) -> Result<Response<InitClusterResponse>, Status> {
        let result = match AdminApiService::init_cluster(self, request.into_inner()).await {
            Ok(layout) => init_cluster_response::Result::Layout(layout),
            Err(error) => init_cluster_response::Result::Error(error),
        };
        Ok(Response::new(InitClusterResponse {
            result: Some(result),
        }))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Ok(membership(
            AdminApiService::add_learner(self, request.into_inner()).await,
        ))
    }

    async fn promote_voter(
        &self,
        request: Request<PromoteVoterRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Ok(membership(
            AdminApiService::promote_voter(self, request.into_inner()).await,
        ))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Ok(membership(
            AdminApiService::remove_node(self, request.into_inner()).await,
        ))
    }

    async fn transfer_leader(
        &self,
        request: Request<AdminTransferLeaderRequest>,
    ) -> Result<Response<AdminTransferLeaderResponse>, Status> {
        let result = match AdminApiService::transfer_leader(self, request.into_inner()).await {
            Ok(leader) => admin_transfer_leader_response::Result::LeaderId(leader),
            Err(error) => admin_transfer_leader_response::Result::Error(error),
        };
        Ok(Response::new(AdminTransferLeaderResponse {
            result: Some(result),
        }))
    }

    async fn trigger_snapshot(
        &self,
        request: Request<TriggerSnapshotRequest>,
    ) -> Result<Response<TriggerSnapshotResponse>, Status> {
        let result = match AdminApiService::trigger_snapshot(self, request.into_inner()).await {
            Ok(index) => trigger_snapshot_response::Result::SnapshotIndex(index),
            Err(error) => trigger_snapshot_response::Result::Error(error),
        };
        Ok(Response::new(TriggerSnapshotResponse {
            result: Some(result),
        }))
    }

    async fn show_auction(
        &self,
        request: Request<ShowAuctionRequest>,
    ) -> Result<Response<ShowAuctionResponse>, Status> {
        let result = match AdminApiService::show_auction(self, request.into_inner()).await {
            Ok(view) => show_auction_response::Result::Auction(view),
            Err(error) => show_auction_response::Result::Error(error),
        };
        Ok(Response::new(ShowAuctionResponse {
            result: Some(result),
        }))
    }

    async fn propose_meta(
        &self,
        request: Request<AdminMetaRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        let wait = super::client_api::propose_wait(request.metadata());
        let result = AdminApiService::propose_meta(self, request.into_inner(), wait).await;
        meta::count(&result);
        let result = match result {
            Ok(applied) => propose_response::Result::Applied(applied),
            Err(error) => propose_response::Result::Error(error),
        };
        Ok(Response::new(ProposeResponse {
            result: Some(result),
        }))
    }

    async fn open_group(
        &self,
        request: Request<OpenGroupRequest>,
    ) -> Result<Response<OpenGroupResponse>, Status> {
        let result = match AdminApiService::open_group(self, request.into_inner()).await {
            Ok(placement) => open_group_response::Result::Opened(placement),
            Err(error) => open_group_response::Result::Error(error),
        };
        Ok(Response::new(OpenGroupResponse {
            result: Some(result),
        }))
    }
}

fn membership(result: Result<MembershipChanged, ApiError>) -> Response<MembershipResponse> {
    let result = match result {
        Ok(changed) => membership_response::Result::Changed(changed),
        Err(error) => membership_response::Result::Error(error),
    };
    Response::new(MembershipResponse {
        result: Some(result),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(count: u64) -> BTreeMap<u64, String> {
        (1..=count)
            .map(|id| (id, format!("127.0.0.1:{}", 7000 + id)))
            .collect()
    }

    #[test]
    fn init_refuses_fewer_nodes_than_voters_per_group() {
        assert!(check_replicas(3, 3).is_ok());
        assert!(check_replicas(3, 5).is_ok());
        assert!(check_replicas(1, 1).is_ok());
        let error = check_replicas(3, 1).expect_err("one node cannot hold 3 voters");
        assert_eq!(error.code(), ErrorCode::InvalidArgument);
        assert!(error.message.contains("--single-node"), "{}", error.message);
        assert!(check_replicas(0, 3).is_err());
    }

    #[test]
    fn placement_spreads_groups_over_nodes() {
        let layout = placement(&nodes(5), ShardCount::try_from(8).expect("8"), 3);
        assert_eq!(layout.len(), 9, "meta group plus 8 shards");
        assert_eq!(layout[0].voters, vec![1, 2, 3]);
        assert_eq!(layout[4].voters, vec![5, 1, 2]);
        let mut per_node = BTreeMap::new();
        for group in &layout {
            assert_eq!(group.voters.iter().collect::<BTreeSet<_>>().len(), 3);
            for voter in &group.voters {
                *per_node.entry(*voter).or_insert(0) += 1;
            }
        }
        assert!(
            per_node.values().all(|count| (5..=6).contains(count)),
            "{per_node:?}"
        );
        let small = placement(&nodes(2), ShardCount::try_from(1).expect("1"), 2);
        assert_eq!(small[1].voters, vec![2, 1]);
    }

    #[test]
    fn removals_that_endanger_the_quorum_are_refused() {
        let three = BTreeSet::from([1, 2, 3]);
        let four = BTreeSet::from([1, 2, 3, 4]);
        assert!(removal_keeps_quorum(&four, &four, 1).is_ok());
        let refused = removal_keeps_quorum(&three, &three, 1).unwrap_err();
        assert!(refused.contains("2 voters"), "{refused}");
        let sick = removal_keeps_quorum(&four, &BTreeSet::from([1, 2]), 1).unwrap_err();
        assert!(sick.contains("not a majority"), "{sick}");
        assert!(removal_keeps_quorum(&BTreeSet::from([1]), &BTreeSet::from([1]), 1).is_err());
        assert!(removal_keeps_quorum(&BTreeSet::from([1, 2]), &BTreeSet::from([1, 2]), 2).is_ok());
    }
}
