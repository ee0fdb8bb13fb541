//! Client side: openraft's network for one group, [`NetworkFactory`] and [`Network`], over
//! the node's shared [`PeerChannels`].
//!
//! ```text
//!   group's Raft ──RaftNetworkV2──► Network (one per group and target, from NetworkFactory)
//!                                     │ codec payload + Envelope
//!                                     ├─ vote, pre_vote, transfer_leader, heartbeats: unary
//!                                     ├─ stream_append ──► client_append.rs (the pipeline)
//!                                     └─ full_snapshot ──► snapshot_send.rs
//!                                     ▼
//!                                   PeerChannels (peers.rs) ──gRPC──► peer's server.rs
//! ```
//!
//! - Unary RPCs (vote, pre-vote, append entries, transfer leader) run under
//!   `RPCOption::soft_ttl()`.
//! - Replication uses the bidirectional `StreamAppend` RPC, so a leader keeps several batches
//!   in flight; responses come back in request order. Heartbeats (openraft sends each as a
//!   one-request stream) go through the unary `AppendEntries` instead: one HTTP/2 stream per
//!   heartbeat costs less than opening a bidirectional one.
//!
//! How an outcome becomes openraft's `RPCError` (`Unreachable`, `Timeout`, `Network`) is
//! `client_failure.rs`; the channels themselves are `peers.rs`.

use std::time::Duration;

use martelo_proto::raft_transport_client::RaftTransportClient;
use martelo_raft_store::codec::wire::WireVersion;
use martelo_raft_store::types::{Snapshot, Vote};
use martelo_raft_store::{GroupId, SnapshotData, TypeConfig};
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{RPCError, ReplicationClosed, StreamingError};
use openraft::network::{RPCOption, RaftNetworkFactory, stream_append_sequential};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::Channel;

use super::client_append;
use super::client_failure::{
    Failure, Rpc, check_size, decode_reply, encode_payload, failure_from_status, record_rpc,
};
use super::peers::PeerChannels;
use super::snapshot_send::{self, SnapshotFailure};
use super::wire::{Envelope, IntoReply, UnaryMessage};

/// Makes the openraft network of one group: one [`Network`] per target node, all over the
/// node's shared [`PeerChannels`].
#[derive(Clone, Debug)]
pub struct NetworkFactory {
    group: GroupId,
    peers: PeerChannels,
}

impl NetworkFactory {
    pub fn new(group: GroupId, peers: PeerChannels) -> NetworkFactory {
        NetworkFactory { group, peers }
    }

    fn network(&self, target: u64, node: &BasicNode, kind: ClientKind) -> Network {
        Network {
            group: self.group,
            target,
            target_address: node.addr.clone(),
            kind,
            peers: self.peers.clone(),
            client: None,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Network {
        self.network(target, node, ClientKind::Replication)
    }

    async fn new_heartbeat_client(&mut self, target: u64, node: &BasicNode) -> Network {
        self.network(target, node, ClientKind::Heartbeat)
    }

    async fn new_snapshot_client(&mut self, target: u64, node: &BasicNode) -> Network {
        self.network(target, node, ClientKind::Snapshot)
    }
}

/// What openraft made a [`Network`] for; heartbeat clients send their one-request streams as
/// unary calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientKind {
    Replication,
    Heartbeat,
    Snapshot,
}

/// One group's openraft network to one target node.
#[derive(Debug)]
pub struct Network {
    group: GroupId,
    target: u64,
    /// The target's address in the group's membership (a dial override may replace it).
    target_address: String,
    kind: ClientKind,
    peers: PeerChannels,
    /// Made on first use and kept: a clone of the peer's shared channel.
    client: Option<RaftTransportClient<Channel>>,
}

fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    // Sent as `grpc-timeout`, so the peer can stop working on an answer nobody waits for.
    request.set_timeout(timeout);
    request
}

/// The wire message of an openraft append request, from `envelope`'s sender to its target.
pub(super) fn append_message(
    envelope: Envelope,
    request: &AppendEntriesRequest<TypeConfig>,
) -> Result<martelo_proto::AppendEntriesRequest, Failure> {
    let payload = encode_payload("AppendEntriesRequest", request)?;
    Ok(martelo_proto::AppendEntriesRequest::addressed(
        envelope, payload,
    ))
}

impl Network {
    fn envelope(&self) -> Envelope {
        Envelope {
            group_id: self.group.0,
            from_node_id: self.peers.self_id(),
            to_node_id: self.target,
            codec_version: WireVersion::CURRENT.codec_version(),
        }
    }

    fn client(&mut self) -> Result<RaftTransportClient<Channel>, Failure> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let channel = self
            .peers
            .channel(self.target, &self.target_address)
            .map_err(|error| Failure::Unreachable(error.to_string()))?;
        let client = martelo_proto::services::raft_transport_client(channel);
        self.client = Some(client.clone());
        Ok(client)
    }

    fn rpc_error(&self, rpc: Rpc, failure: Failure) -> RPCError<TypeConfig> {
        failure.into_rpc_error(rpc, self.peers.self_id(), self.target)
    }

    fn log_failure(&self, rpc: Rpc, failure: &Failure) {
        match failure {
            // Expected whenever a peer is down, restarting, slow or partitioned away.
            Failure::Unreachable(_) | Failure::Timeout(_) | Failure::Network(_) => tracing::debug!(
                group = self.group.0,
                peer = self.target,
                rpc = rpc.label(),
                %failure,
                "Raft RPC failed"
            ),
            Failure::Protocol(_) => tracing::warn!(
                group = self.group.0,
                peer = self.target,
                rpc = rpc.label(),
                %failure,
                "Raft RPC failed"
            ),
        }
    }

    /// One unary RPC: send `message` under `soft_ttl`, decode the answer, record metrics.
    async fn unary<M, P, Out, Fut>(
        &mut self,
        rpc: Rpc,
        option: &RPCOption,
        message: Result<M, Failure>,
        send: impl FnOnce(RaftTransportClient<Channel>, tonic::Request<M>) -> Fut,
    ) -> Result<Out, Failure>
    where
        M: prost::Message,
        P: IntoReply,
        Out: DeserializeOwned,
        Fut: Future<Output = Result<tonic::Response<P>, Status>>,
    {
        let started = Instant::now();
        let timeout = option.soft_ttl();
        let result = async {
            let message = message?;
            check_size(&message)?;
            let client = self.client()?;
            let answer =
                tokio::time::timeout(timeout, send(client, with_timeout(message, timeout)))
                    .await
                    .map_err(|_| Failure::Timeout(timeout))?
                    .map_err(|status| failure_from_status(&status, timeout))?;
            decode_reply(rpc.response_name(), answer.into_inner().into_reply())
        }
        .await;
        let label = match &result {
            Ok(_) => "ok",
            Err(failure) => {
                self.log_failure(rpc, failure);
                failure.label()
            }
        };
        record_rpc(rpc, label, started.elapsed());
        result
    }

    /// A vote or a pre-vote (`rpc`): the same message, sent to the method `rpc` names.
    async fn send_vote(
        &mut self,
        rpc: Rpc,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let message = encode_payload("VoteRequest", &request)
            .map(|payload| martelo_proto::VoteRequest::addressed(self.envelope(), payload));
        let pre_vote = rpc == Rpc::PreVote;
        self.unary(rpc, &option, message, |mut client, request| async move {
            if pre_vote {
                client.pre_vote(request).await
            } else {
                client.vote(request).await
            }
        })
        .await
        .map_err(|failure| self.rpc_error(rpc, failure))
    }
}

impl RaftNetworkV2<TypeConfig> for Network {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let message = append_message(self.envelope(), &rpc);
        let no_previous_log = rpc.prev_log_id.is_none();
        let result = self
            .unary(
                Rpc::AppendEntries,
                &option,
                message,
                |mut client, request| async move { client.append_entries(request).await },
            )
            .await
            .and_then(|response: AppendEntriesResponse<TypeConfig>| {
                // openraft turns a conflict into "conflict at prev_log_id" and unwraps it; no
                // log can conflict with the empty prefix, so such an answer is a broken peer.
                if no_previous_log && response.is_conflict() {
                    return Err(Failure::Protocol(
                        "the peer reported a conflict before the first log entry".into(),
                    ));
                }
                Ok(response)
            });
        result.map_err(|failure| self.rpc_error(Rpc::AppendEntries, failure))
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>>
            + OptionalSend
            + Unpin
            + 'static,
    {
        if self.kind == ClientKind::Heartbeat {
            return stream_append_sequential(self, input, option);
        }
        Box::pin(async move {
            let started = Instant::now();
            let opened = match self.client() {
                Ok(client) => client_append::open(client, self.envelope(), input, &option).await,
                Err(failure) => Err(failure),
            };
            let reader = match opened {
                Ok(reader) => reader,
                Err(failure) => {
                    self.log_failure(Rpc::StreamAppend, &failure);
                    record_rpc(Rpc::StreamAppend, failure.label(), started.elapsed());
                    return Err(self.rpc_error(Rpc::StreamAppend, failure));
                }
            };
            let results =
                client_append::results(reader, self.group, self.peers.self_id(), self.target);
            let results: BoxStream<'s, _> = Box::pin(results);
            Ok(results)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.send_vote(Rpc::Vote, rpc, option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.send_vote(Rpc::PreVote, rpc, option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let started = Instant::now();
        let result = match self.client() {
            Ok(client) => {
                let envelope = self.envelope();
                snapshot_send::send_snapshot(
                    client,
                    envelope,
                    vote,
                    snapshot,
                    cancel,
                    option.soft_ttl(),
                )
                .await
            }
            Err(failure) => Err(SnapshotFailure::Transport(failure)),
        };
        let label = match &result {
            Ok(_) => "ok",
            Err(failure) => failure.label(),
        };
        record_rpc(Rpc::InstallSnapshot, label, started.elapsed());
        result.map_err(|failure| match failure {
            SnapshotFailure::Transport(failure) => {
                self.log_failure(Rpc::InstallSnapshot, &failure);
                StreamingError::from(self.rpc_error(Rpc::InstallSnapshot, failure))
            }
            SnapshotFailure::Closed(closed) => StreamingError::Closed(closed),
            SnapshotFailure::Storage(error) => {
                tracing::warn!(
                    group = self.group.0,
                    peer = self.target,
                    %error,
                    "cannot read the snapshot to send"
                );
                StreamingError::StorageError(error)
            }
        })
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let message = encode_payload("TransferLeaderRequest", &rpc).map(|payload| {
            martelo_proto::TransferLeaderRequest::addressed(self.envelope(), payload)
        });
        self.unary(
            Rpc::TransferLeader,
            &option,
            message,
            |mut client, request| async move { client.transfer_leader(request).await },
        )
        .await
        .map_err(|failure| self.rpc_error(Rpc::TransferLeader, failure))
    }
}
