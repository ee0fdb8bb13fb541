//! The client half of the Raft transport: openraft's network for one group, over one shared
//! gRPC channel per peer.
//!
//! ```text
//!   group's Raft ──RaftNetworkV2──► Network (one per group and target, from NetworkFactory)
//!                                     │ codec::encode(openraft message) + Envelope
//!                                     ▼
//!                                   PeerChannels: one lazily connected tonic Channel per peer
//!                                     address, shared by every group of the node (one HTTP/2
//!                                     connection per peer pair); dial overrides put the fault
//!                                     suite's proxies on the links
//!                                     │
//!                                     ▼ RaftTransport gRPC ──► peer's RaftTransportService
//! ```
//!
//! - Unary RPCs (vote, pre-vote, append entries, transfer leader) run under
//!   `RPCOption::soft_ttl()`.
//! - Replication uses the bidirectional `StreamAppend` RPC, so a leader keeps several batches
//!   in flight; responses come back in request order. Heartbeats (openraft sends each as a
//!   one-request stream) go through the unary `AppendEntries` instead: one HTTP/2 stream per
//!   heartbeat costs less than opening a bidirectional one.
//! - Snapshots stream as header, data chunks with offsets, trailer (see `raft.proto`).
//!
//! Failures map to what openraft expects: a peer that cannot be reached, or that cannot serve
//! the group (wrong node, unknown group, codec, stopped Raft), is `Unreachable`, which makes
//! openraft back off; running out of time is `Timeout`; anything else is `Network`. The
//! mapping is in plain functions ([`failure_from_status`], [`failure_from_api_error`],
//! [`decode_reply`]) with unit tests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use martelo_proto::raft_transport_client::RaftTransportClient;
use martelo_proto::{
    ApiError, ErrorCode, RAFT_MESSAGE_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX, SnapshotChunk,
    SnapshotHeader, SnapshotTrailer, check_encoded_len, snapshot_chunk,
};
use martelo_raft_store::types::{Snapshot, Vote};
use martelo_raft_store::{GroupId, SnapshotData, StoreError, TypeConfig, codec};
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, stream_append_sequential};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::TypeConfigExt;
use openraft::{BasicNode, OptionalSend, RPCTypes, RaftNetworkV2, StorageError};
use prost::bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

use super::transport::{
    Envelope, IntoReply, RPC_RECEIVED_TOTAL, Reply, SNAPSHOT_BYTES_RECEIVED_TOTAL,
};

/// Counter `martelo_raft_rpc_total{rpc, result}`: Raft RPCs this node sent, by outcome
/// (`ok`, `unreachable`, `timeout`, `network`, `closed`, `storage`). For `stream_append`,
/// one per response (or failure) of the stream.
pub const RPC_TOTAL: &str = "martelo_raft_rpc_total";
/// Histogram `martelo_raft_rpc_seconds{rpc}`: time from sending a Raft RPC to its answer. For
/// `stream_append`, from sending each request to its response; for `install_snapshot`, the
/// whole transfer and install.
pub const RPC_SECONDS: &str = "martelo_raft_rpc_seconds";
/// Counter `martelo_raft_snapshot_bytes_sent_total`: snapshot data bytes handed to the
/// transport.
pub const SNAPSHOT_BYTES_SENT_TOTAL: &str = "martelo_raft_snapshot_bytes_sent_total";

/// How long connecting to a peer may take. An RPC waiting for the connection fails sooner if
/// its own timeout is shorter.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 PING interval, also on idle connections. With [`KEEPALIVE_TIMEOUT`], a peer that
/// stopped answering (crashed host, paused process, silent partition) fails every stream on
/// its connection within about 4 s, even a `StreamAppend` waiting for new entries.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 flow-control windows that let a full append batch and a snapshot chunk travel
/// without waiting for a window update; what a peer may send us on one stream and on the
/// whole connection.
const STREAM_WINDOW_BYTES: u32 = 4 << 20;
const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;
/// Most peer addresses with a cached channel. A cluster has a handful of nodes; the limit
/// only matters if addresses keep changing, and then extra channels are made per client
/// instead of cached.
const PEER_CHANNELS_MAX: usize = 1024;
/// Least time a `StreamAppend` waits for the next response while requests are unanswered.
/// openraft hands replication a `soft_ttl` of 3/4 of the heartbeat interval, which is right for
/// one heartbeat but not for the next answer behind a pipeline of full batches, or on a link
/// the fault suite slows down: timing out there would resend the same batches forever. A dead
/// peer is still caught by HTTP/2 keepalive.
const STREAM_RESPONSE_WAIT_MIN: Duration = Duration::from_secs(1);
/// Snapshot messages queued ahead of the HTTP/2 stream: one chunk read from disk while the
/// previous one is on the wire.
const SNAPSHOT_MESSAGES_BUFFERED: usize = 2;

/// Describes the transport's metrics (both halves) to the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(RPC_TOTAL, "Raft RPCs sent to peers, by rpc and result.");
    metrics::describe_histogram!(
        RPC_SECONDS,
        metrics::Unit::Seconds,
        "Time from sending a Raft RPC to its answer."
    );
    metrics::describe_counter!(
        SNAPSHOT_BYTES_SENT_TOTAL,
        metrics::Unit::Bytes,
        "Snapshot bytes sent to peers."
    );
    metrics::describe_counter!(
        RPC_RECEIVED_TOTAL,
        "Raft messages received from peers, by rpc and result."
    );
    metrics::describe_counter!(
        SNAPSHOT_BYTES_RECEIVED_TOTAL,
        metrics::Unit::Bytes,
        "Snapshot bytes received from peers."
    );
}

/// A peer address that is not `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("peer address {address:?} is not host:port: {reason}")]
pub struct PeerAddressError {
    pub address: String,
    pub reason: String,
}

/// The node's connections to its peers: one lazily connected gRPC channel per peer address,
/// shared by every group (so one HTTP/2 connection per peer pair), and the dial overrides.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct PeerChannels {
    inner: Arc<PeerChannelsInner>,
}

struct PeerChannelsInner {
    self_id: u64,
    /// Node id -> the address to dial instead of the membership address. The fault suite puts
    /// a fault-injecting proxy on each link this way.
    dial_overrides: BTreeMap<u64, String>,
    /// Dialled address -> its channel. A std mutex: it is held for a map lookup, never across
    /// an await.
    channels: Mutex<HashMap<String, Channel>>,
    /// The local address outgoing peer connections bind to (`--source-address`); `None`: the
    /// kernel picks.
    source_address: Option<std::net::IpAddr>,
}

impl fmt::Debug for PeerChannels {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let channel_count = self
            .inner
            .channels
            .lock()
            .map_or(0, |channels| channels.len());
        formatter
            .debug_struct("PeerChannels")
            .field("self_id", &self.inner.self_id)
            .field("dial_overrides", &self.inner.dial_overrides)
            .field("channel_count", &channel_count)
            .field("source_address", &self.inner.source_address)
            .finish()
    }
}

impl PeerChannels {
    pub fn new(self_id: u64, dial_overrides: BTreeMap<u64, String>) -> PeerChannels {
        PeerChannels::with_source_address(self_id, dial_overrides, None)
    }

    /// Like [`PeerChannels::new`], binding every outgoing connection to `source_address`.
    pub fn with_source_address(
        self_id: u64,
        dial_overrides: BTreeMap<u64, String>,
        source_address: Option<std::net::IpAddr>,
    ) -> PeerChannels {
        PeerChannels {
            inner: Arc::new(PeerChannelsInner {
                self_id,
                dial_overrides,
                channels: Mutex::new(HashMap::new()),
                source_address,
            }),
        }
    }

    /// This node's id, sent as `from_node_id`.
    pub fn self_id(&self) -> u64 {
        self.inner.self_id
    }

    /// The address this node dials to reach `node_id`: its dial override if it has one, else
    /// the address from the group's membership.
    pub fn dial_address<'a>(&'a self, node_id: u64, membership_address: &'a str) -> &'a str {
        self.inner
            .dial_overrides
            .get(&node_id)
            .map_or(membership_address, String::as_str)
    }

    /// The channel to `node_id`, created on first use. It connects when the first RPC needs
    /// it and reconnects after a failure by itself.
    ///
    /// Must be called inside a tokio runtime: the channel's worker task starts here.
    pub fn channel(
        &self,
        node_id: u64,
        membership_address: &str,
    ) -> Result<Channel, PeerAddressError> {
        let address = self.dial_address(node_id, membership_address);
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = endpoint(address)?
            .local_address(self.inner.source_address)
            .connect_lazy();
        if channels.len() < PEER_CHANNELS_MAX {
            channels.insert(address.to_owned(), channel.clone());
        } else {
            tracing::warn!(
                peer = node_id,
                address,
                "too many peer addresses; this channel is not shared"
            );
        }
        Ok(channel)
    }
}

/// The endpoint of a peer at `address` (`host:port`), with the transport's connection
/// settings.
fn endpoint(address: &str) -> Result<Endpoint, PeerAddressError> {
    let invalid = |reason: String| PeerAddressError {
        address: address.to_owned(),
        reason,
    };
    if address.is_empty()
        || address.contains('/')
        || address.chars().any(char::is_whitespace)
        || !address.contains(':')
    {
        return Err(invalid("expected host:port".into()));
    }
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|error| invalid(error.to_string()))?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES))
}

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

/// The RPCs of the transport, for metric labels, codec names and openraft's `Timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rpc {
    AppendEntries,
    StreamAppend,
    Vote,
    PreVote,
    InstallSnapshot,
    TransferLeader,
}

impl Rpc {
    fn label(self) -> &'static str {
        match self {
            Rpc::AppendEntries => "append_entries",
            Rpc::StreamAppend => "stream_append",
            Rpc::Vote => "vote",
            Rpc::PreVote => "pre_vote",
            Rpc::InstallSnapshot => "install_snapshot",
            Rpc::TransferLeader => "transfer_leader",
        }
    }

    fn rpc_type(self) -> RPCTypes {
        match self {
            Rpc::AppendEntries | Rpc::StreamAppend => RPCTypes::AppendEntries,
            Rpc::Vote | Rpc::PreVote => RPCTypes::Vote,
            Rpc::InstallSnapshot => RPCTypes::InstallSnapshot,
            Rpc::TransferLeader => RPCTypes::TransferLeader,
        }
    }

    /// The codec name of the payload this RPC answers with.
    fn response_name(self) -> &'static str {
        match self {
            Rpc::AppendEntries => "AppendEntriesResponse",
            Rpc::StreamAppend => "StreamAppendResult",
            Rpc::Vote | Rpc::PreVote => "VoteResponse",
            Rpc::InstallSnapshot => "SnapshotResponse",
            Rpc::TransferLeader => "TransferLeaderResponse",
        }
    }
}

/// Why an RPC got no answer from the peer's Raft, in the three kinds openraft tells apart.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Failure {
    /// The peer cannot be reached or cannot serve this group: openraft backs off.
    Unreachable(String),
    /// No answer in time.
    Timeout(Duration),
    /// The connection broke or the call failed in transit.
    Network(String),
    /// The peer answered something this node cannot use (undecodable, out of protocol, a
    /// refusal of a malformed request), or this node could not encode its request. A bug on
    /// one side or a version mismatch: logged at warn. openraft sees it as `Network`.
    Protocol(String),
}

impl Failure {
    fn label(&self) -> &'static str {
        match self {
            Failure::Unreachable(_) => "unreachable",
            Failure::Timeout(_) => "timeout",
            Failure::Network(_) => "network",
            Failure::Protocol(_) => "protocol",
        }
    }

    fn into_rpc_error(self, rpc: Rpc, self_id: u64, target: u64) -> RPCError<TypeConfig> {
        match self {
            Failure::Unreachable(message) => {
                RPCError::Unreachable(Unreachable::from_string(message))
            }
            Failure::Timeout(timeout) => RPCError::Timeout(Timeout {
                action: rpc.rpc_type(),
                id: self_id,
                target,
                timeout,
            }),
            Failure::Network(message) | Failure::Protocol(message) => {
                RPCError::Network(NetworkError::from_string(message))
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(message) => write!(formatter, "unreachable: {message}"),
            Failure::Timeout(timeout) => write!(formatter, "no answer within {timeout:?}"),
            Failure::Network(message) => write!(formatter, "network: {message}"),
            Failure::Protocol(message) => write!(formatter, "protocol: {message}"),
        }
    }
}

/// Classifies a gRPC status. `waited` is the timeout the call ran under.
fn failure_from_status(status: &Status, waited: Duration) -> Failure {
    match status.code() {
        // Connection refused or reset, keepalive expired, connect timeout: tonic reports all of
        // them as `Unavailable`. `Unimplemented`: whatever listens there is not a martelo node.
        Code::Unavailable | Code::Unimplemented => Failure::Unreachable(status.to_string()),
        Code::DeadlineExceeded => Failure::Timeout(waited),
        // A message over a size limit (tonic's own check): resending it cannot help.
        Code::OutOfRange => Failure::Protocol(status.to_string()),
        _ => Failure::Network(status.to_string()),
    }
}

/// Classifies the peer's refusal of a request.
fn failure_from_api_error(error: &ApiError) -> Failure {
    let code = error.code();
    let message = format!("peer refused: {code}: {}", error.message);
    match code {
        // The peer cannot serve this group now: a stale address, a group it has not opened
        // yet, a node of another version, a node shutting down. Retrying at once cannot help.
        ErrorCode::WrongNode
        | ErrorCode::UnknownGroup
        | ErrorCode::UnsupportedCodec
        | ErrorCode::Unavailable => Failure::Unreachable(message),
        _ => Failure::Protocol(message),
    }
}

/// Decodes a peer's answer into the Raft's response, or classifies why there is none.
fn decode_reply<T: DeserializeOwned>(
    what: &'static str,
    reply: Option<Reply>,
) -> Result<T, Failure> {
    match reply {
        Some(Reply::Payload(bytes)) => codec::decode(what, &bytes).map_err(|error| {
            Failure::Protocol(format!("cannot decode the peer's answer: {error}"))
        }),
        Some(Reply::RaftError(bytes)) => {
            match codec::decode::<RaftError<TypeConfig>>("RaftError", &bytes) {
                // The group's Raft on the peer has stopped (shutdown, storage failure): to
                // this group the peer is as good as down.
                Ok(RaftError::Fatal(fatal)) => Err(Failure::Unreachable(format!(
                    "the peer's Raft for this group stopped: {fatal}"
                ))),
                Ok(RaftError::APIError(never)) => match never {},
                Err(error) => Err(Failure::Protocol(format!(
                    "cannot decode the peer's Raft error: {error}"
                ))),
            }
        }
        Some(Reply::Error(error)) => Err(failure_from_api_error(&error)),
        None => Err(Failure::Protocol(
            "the peer's answer has no result: is the peer newer than this node?".into(),
        )),
    }
}

/// Encodes an openraft message for the wire. A failure is a bug on this node (or a value over
/// the codec's 256 MiB limit); openraft retries it like a network error.
fn encode_payload<T: Serialize>(what: &'static str, value: &T) -> Result<Bytes, Failure> {
    codec::encode(what, value)
        .map(Bytes::from)
        .map_err(|error| Failure::Protocol(format!("cannot encode: {error}")))
}

/// Refuses to send a message over [`RAFT_MESSAGE_BYTES_MAX`]: tonic would refuse it with an
/// opaque status instead.
fn check_size(message: &impl prost::Message) -> Result<(), Failure> {
    check_encoded_len(message, RAFT_MESSAGE_BYTES_MAX)
        .map_err(|error| Failure::Protocol(error.message))
}

fn record_rpc(rpc: Rpc, result: &'static str, elapsed: Duration) {
    metrics::counter!(RPC_TOTAL, "rpc" => rpc.label(), "result" => result).increment(1);
    metrics::histogram!(RPC_SECONDS, "rpc" => rpc.label()).record(elapsed.as_secs_f64());
}

fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    // Sent as `grpc-timeout`, so the peer can stop working on an answer nobody waits for.
    request.set_timeout(timeout);
    request
}

impl Network {
    fn envelope(&self) -> Envelope {
        Envelope {
            group_id: self.group.0,
            from_node_id: self.peers.self_id(),
            to_node_id: self.target,
            codec_version: u32::from(codec::FORMAT_VERSION),
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

    fn append_message(
        envelope: Envelope,
        request: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<martelo_proto::AppendEntriesRequest, Failure> {
        Ok(martelo_proto::AppendEntriesRequest {
            group_id: envelope.group_id,
            from_node_id: envelope.from_node_id,
            to_node_id: envelope.to_node_id,
            codec_version: envelope.codec_version,
            payload: encode_payload("AppendEntriesRequest", request)?,
        })
    }

    fn vote_message(
        &self,
        request: &VoteRequest<TypeConfig>,
    ) -> Result<martelo_proto::VoteRequest, Failure> {
        let envelope = self.envelope();
        Ok(martelo_proto::VoteRequest {
            group_id: envelope.group_id,
            from_node_id: envelope.from_node_id,
            to_node_id: envelope.to_node_id,
            codec_version: envelope.codec_version,
            payload: encode_payload("VoteRequest", request)?,
        })
    }

    /// Opens a `StreamAppend` stream and returns its responses, in request order.
    async fn open_append_stream<S>(
        &mut self,
        input: S,
        option: &RPCOption,
    ) -> Result<AppendStreamReader, Failure>
    where
        S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let wait = option.soft_ttl().max(STREAM_RESPONSE_WAIT_MIN);
        let mut client = self.client()?;
        let pipeline = Arc::new(Pipeline::default());
        let requests = {
            let pipeline = Arc::clone(&pipeline);
            let envelope = self.envelope();
            futures::stream::unfold(input, move |mut input| {
                let pipeline = Arc::clone(&pipeline);
                async move {
                    let request = input.next().await?;
                    let message = Network::append_message(envelope, &request)
                        .and_then(|message| check_size(&message).map(|()| message));
                    match message {
                        Ok(message) => {
                            pipeline.record_sent(Instant::now());
                            Some((message, input))
                        }
                        // Ends the request stream; the reader reports the failure once the
                        // peer has answered the requests before it.
                        Err(failure) => {
                            pipeline.fail(failure);
                            None
                        }
                    }
                }
            })
        };
        let responses = tokio::time::timeout(wait, client.stream_append(requests))
            .await
            .map_err(|_| Failure::Timeout(wait))?
            .map_err(|status| failure_from_status(&status, wait))?
            .into_inner();
        tracing::debug!(
            group = self.group.0,
            peer = self.target,
            "StreamAppend opened"
        );
        Ok(AppendStreamReader {
            responses,
            pipeline,
            wait,
            last_progress: Instant::now(),
            finished: false,
        })
    }

    /// Sends a snapshot: header, every stored chunk (split to the wire's chunk limit), trailer;
    /// then waits for the peer to install it.
    async fn send_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed>,
        option: &RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, SnapshotFailure> {
        let wait = option.soft_ttl();
        let envelope = self.envelope();
        let header = SnapshotHeader {
            group_id: envelope.group_id,
            from_node_id: envelope.from_node_id,
            to_node_id: envelope.to_node_id,
            codec_version: envelope.codec_version,
            vote: encode_payload("Vote", &vote)?,
            meta: encode_payload("SnapshotMeta", &snapshot.meta)?,
            total_bytes: snapshot.snapshot.total_bytes(),
        };
        tracing::debug!(
            group = self.group.0,
            peer = self.target,
            snapshot = %snapshot.meta,
            total_bytes = header.total_bytes,
            "sending a snapshot"
        );
        let mut client = self.client()?;
        let (sender, receiver) = mpsc::channel(SNAPSHOT_MESSAGES_BUFFERED);
        let mut call = std::pin::pin!(client.install_snapshot(ReceiverStream::new(receiver)));
        let feed = feed_snapshot(sender, header, snapshot, wait);
        let mut feed = std::pin::pin!(feed);
        let mut cancel = std::pin::pin!(cancel);
        // The peer may answer before the trailer (a refusal); otherwise it answers after
        // installing, which `install_snapshot_timeout` (soft_ttl) must cover.
        let early = tokio::select! {
            biased;
            closed = &mut cancel => return Err(SnapshotFailure::Closed(closed)),
            answer = &mut call => Some(answer),
            fed = &mut feed => {
                fed?;
                None
            }
        };
        let answer = match early {
            Some(answer) => answer,
            None => tokio::select! {
                biased;
                closed = &mut cancel => return Err(SnapshotFailure::Closed(closed)),
                answer = tokio::time::timeout(wait, &mut call) => {
                    answer.map_err(|_| Failure::Timeout(wait))?
                }
            },
        };
        let answer = answer.map_err(|status| failure_from_status(&status, wait))?;
        Ok(decode_reply(
            Rpc::InstallSnapshot.response_name(),
            answer.into_inner().into_reply(),
        )?)
    }
}

/// Why a snapshot was not installed: openraft's `StreamingError` kinds.
#[derive(Debug)]
enum SnapshotFailure {
    Transport(Failure),
    /// openraft cancelled the transfer.
    Closed(ReplicationClosed),
    /// This node's snapshot could not be read.
    Storage(StorageError<TypeConfig>),
}

impl From<Failure> for SnapshotFailure {
    fn from(failure: Failure) -> Self {
        SnapshotFailure::Transport(failure)
    }
}

impl SnapshotFailure {
    fn label(&self) -> &'static str {
        match self {
            SnapshotFailure::Transport(failure) => failure.label(),
            SnapshotFailure::Closed(_) => "closed",
            SnapshotFailure::Storage(_) => "storage",
        }
    }
}

/// Splits a stored snapshot chunk that starts at byte `offset` into wire chunks of at most
/// `piece_bytes_max` bytes, each with its offset. An empty chunk yields nothing.
fn split_chunk(offset: u64, chunk: Bytes, piece_bytes_max: usize) -> Vec<(u64, Bytes)> {
    assert!(piece_bytes_max > 0, "a piece holds at least one byte");
    let mut pieces = Vec::with_capacity(chunk.len().div_ceil(piece_bytes_max));
    let mut start = 0;
    while start < chunk.len() {
        let end = (start + piece_bytes_max).min(chunk.len());
        pieces.push((offset + start as u64, chunk.slice(start..end)));
        start = end;
    }
    pieces
}

/// Reads one stored chunk off the async runtime (a RocksDB read of up to a chunk).
async fn read_chunk(
    data: &SnapshotData,
    chunk: u32,
    snapshot: &Snapshot,
) -> Result<Bytes, SnapshotFailure> {
    let data = data.clone();
    let read = tokio::task::spawn_blocking(move || data.read_chunk(chunk)).await;
    match read {
        Ok(Ok(bytes)) => Ok(Bytes::from(bytes)),
        // A newer snapshot replaced this one while it was being sent: openraft retries with
        // the current one.
        Ok(Err(error @ StoreError::MissingSnapshotChunk { .. })) => {
            Err(Failure::Network(format!("the snapshot changed while being sent: {error}")).into())
        }
        Ok(Err(error)) => Err(SnapshotFailure::Storage(StorageError::read_snapshot(
            Some(snapshot.meta.signature()),
            TypeConfig::err_from_error(&error),
        ))),
        Err(error) => Err(Failure::Network(format!("the snapshot reader failed: {error}")).into()),
    }
}

/// Feeds the `InstallSnapshot` request stream. Every message must be taken by the transport
/// within `wait`, so a stalled connection fails the transfer instead of hanging it. Dropping
/// the sender at the end closes the request stream.
///
/// Returns early, without an error, when the call stops taking messages: it has ended (the
/// peer refused the snapshot, or the connection failed), and its answer says why.
async fn feed_snapshot(
    sender: mpsc::Sender<SnapshotChunk>,
    header: SnapshotHeader,
    snapshot: Snapshot,
    wait: Duration,
) -> Result<(), SnapshotFailure> {
    let send = |kind: snapshot_chunk::Kind| {
        let sender = &sender;
        async move {
            let message = SnapshotChunk { kind: Some(kind) };
            match tokio::time::timeout(wait, sender.send(message)).await {
                Ok(Ok(())) => Ok(Sent::Taken),
                Ok(Err(_)) => Ok(Sent::CallEnded),
                Err(_) => Err(Failure::Timeout(wait)),
            }
        }
    };
    let total_bytes = header.total_bytes;
    if send(snapshot_chunk::Kind::Header(header)).await? == Sent::CallEnded {
        return Ok(());
    }
    let data = &snapshot.snapshot;
    let mut offset = 0u64;
    let mut chunk_count = 0u64;
    for chunk in 0..data.chunk_count() {
        let bytes = read_chunk(data, chunk, &snapshot).await?;
        let length = bytes.len() as u64;
        for (piece_offset, piece) in split_chunk(offset, bytes, SNAPSHOT_CHUNK_BYTES_MAX) {
            let piece_length = piece.len() as u64;
            let message = martelo_proto::SnapshotData {
                offset: piece_offset,
                data: piece,
            };
            if send(snapshot_chunk::Kind::Data(message)).await? == Sent::CallEnded {
                return Ok(());
            }
            chunk_count += 1;
            metrics::counter!(SNAPSHOT_BYTES_SENT_TOTAL).increment(piece_length);
        }
        offset += length;
    }
    if offset != total_bytes {
        let reason =
            format!("snapshot record says {total_bytes} bytes, its chunks hold {offset} bytes");
        return Err(SnapshotFailure::Storage(StorageError::read_snapshot(
            Some(snapshot.meta.signature()),
            TypeConfig::err_from_string(reason),
        )));
    }
    send(snapshot_chunk::Kind::Trailer(SnapshotTrailer {
        total_bytes: offset,
        chunk_count,
    }))
    .await?;
    Ok(())
}

/// Whether the transport took a snapshot message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Taken,
    /// The call no longer reads its request stream.
    CallEnded,
}

/// The requests of one `StreamAppend` stream that have been sent and not answered yet, in
/// order, and why the request stream ended early, if it did.
#[derive(Debug, Default)]
struct Pipeline {
    state: Mutex<PipelineState>,
    /// Woken when a request is sent, so a reader waiting without a deadline (nothing
    /// unanswered) starts the clock.
    sent: Notify,
}

#[derive(Debug, Default)]
struct PipelineState {
    unanswered: VecDeque<Instant>,
    failure: Option<Failure>,
}

impl Pipeline {
    fn state(&self) -> std::sync::MutexGuard<'_, PipelineState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record_sent(&self, at: Instant) {
        self.state().unanswered.push_back(at);
        self.sent.notify_one();
    }

    /// Pops the oldest unanswered request's send time.
    fn record_answered(&self) -> Option<Instant> {
        self.state().unanswered.pop_front()
    }

    fn oldest_unanswered(&self) -> Option<Instant> {
        self.state().unanswered.front().copied()
    }

    fn unanswered(&self) -> usize {
        self.state().unanswered.len()
    }

    fn fail(&self, failure: Failure) {
        self.state().failure.get_or_insert(failure);
    }

    fn take_failure(&self) -> Option<Failure> {
        self.state().failure.take()
    }
}

/// The response half of one `StreamAppend` stream.
struct AppendStreamReader {
    responses: Streaming<martelo_proto::StreamAppendResponse>,
    pipeline: Arc<Pipeline>,
    /// Longest wait for the next response while a request is unanswered.
    wait: Duration,
    /// When the last response arrived (or the stream opened).
    last_progress: Instant,
    finished: bool,
}

impl AppendStreamReader {
    /// The next result, in request order; `None` once the stream has ended. An error or a
    /// rejection (conflict, higher vote) is the last item.
    async fn next(&mut self) -> Option<Result<StreamAppendResult<TypeConfig>, Failure>> {
        if self.finished {
            return None;
        }
        let item = self.next_item().await;
        if !matches!(item, Some(Ok(Ok(_)))) {
            self.finished = true;
        }
        item
    }

    async fn next_item(&mut self) -> Option<Result<StreamAppendResult<TypeConfig>, Failure>> {
        let message = loop {
            match self.pipeline.oldest_unanswered() {
                // Nothing is owed: an idle stream may stay open for as long as openraft keeps
                // it, so wait without a deadline until a response or a new request.
                None => {
                    let sent = self.pipeline.sent.notified();
                    tokio::select! {
                        message = self.responses.next() => break message,
                        () = sent => continue,
                    }
                }
                Some(sent_at) => {
                    let deadline = sent_at.max(self.last_progress) + self.wait;
                    match tokio::time::timeout_at(deadline, self.responses.next()).await {
                        Ok(message) => break message,
                        Err(_) => return Some(Err(Failure::Timeout(self.wait))),
                    }
                }
            }
        };
        match message {
            Some(Ok(response)) => {
                let Some(sent_at) = self.pipeline.record_answered() else {
                    return Some(Err(Failure::Protocol(
                        "the peer sent more StreamAppend responses than requests".into(),
                    )));
                };
                self.last_progress = Instant::now();
                metrics::histogram!(RPC_SECONDS, "rpc" => Rpc::StreamAppend.label())
                    .record((self.last_progress - sent_at).as_secs_f64());
                Some(decode_reply(
                    Rpc::StreamAppend.response_name(),
                    response.into_reply(),
                ))
            }
            Some(Err(status)) => Some(Err(failure_from_status(&status, self.wait))),
            None => {
                if let Some(failure) = self.pipeline.take_failure() {
                    return Some(Err(failure));
                }
                match self.pipeline.unanswered() {
                    0 => None,
                    unanswered => Some(Err(Failure::Protocol(format!(
                        "the peer ended StreamAppend with {unanswered} requests unanswered"
                    )))),
                }
            }
        }
    }
}

impl RaftNetworkV2<TypeConfig> for Network {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let message = Network::append_message(self.envelope(), &rpc);
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
            let reader = match self.open_append_stream(input, &option).await {
                Ok(reader) => reader,
                Err(failure) => {
                    self.log_failure(Rpc::StreamAppend, &failure);
                    record_rpc(Rpc::StreamAppend, failure.label(), started.elapsed());
                    return Err(self.rpc_error(Rpc::StreamAppend, failure));
                }
            };
            let (group, self_id, target) = (self.group, self.peers.self_id(), self.target);
            let results = futures::stream::unfold(reader, move |mut reader| async move {
                let item = reader.next().await?;
                let label = match &item {
                    Ok(_) => "ok",
                    Err(failure) => {
                        let level_warn = matches!(failure, Failure::Protocol(_));
                        if level_warn {
                            tracing::warn!(group = group.0, peer = target, %failure, "StreamAppend failed");
                        } else {
                            tracing::debug!(group = group.0, peer = target, %failure, "StreamAppend failed");
                        }
                        failure.label()
                    }
                };
                metrics::counter!(RPC_TOTAL, "rpc" => Rpc::StreamAppend.label(), "result" => label)
                    .increment(1);
                let item = item
                    .map_err(|failure| failure.into_rpc_error(Rpc::StreamAppend, self_id, target));
                Some((item, reader))
            });
            let results: BoxStream<'s, _> = Box::pin(results);
            Ok(results)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let message = self.vote_message(&rpc);
        self.unary(
            Rpc::Vote,
            &option,
            message,
            |mut client, request| async move { client.vote(request).await },
        )
        .await
        .map_err(|failure| self.rpc_error(Rpc::Vote, failure))
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let message = self.vote_message(&rpc);
        self.unary(
            Rpc::PreVote,
            &option,
            message,
            |mut client, request| async move { client.pre_vote(request).await },
        )
        .await
        .map_err(|failure| self.rpc_error(Rpc::PreVote, failure))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let started = Instant::now();
        let result = self.send_snapshot(vote, snapshot, cancel, &option).await;
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
        let envelope = self.envelope();
        let message = encode_payload("TransferLeaderRequest", &rpc).map(|payload| {
            martelo_proto::TransferLeaderRequest {
                group_id: envelope.group_id,
                from_node_id: envelope.from_node_id,
                to_node_id: envelope.to_node_id,
                codec_version: envelope.codec_version,
                payload,
            }
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

#[cfg(test)]
mod tests {
    use openraft::raft::StreamAppendError;

    use super::*;

    #[test]
    fn dial_override_replaces_the_membership_address_of_that_node_only() {
        let peers = PeerChannels::new(1, BTreeMap::from([(2, "127.0.0.1:9002".to_owned())]));
        assert_eq!(peers.dial_address(2, "127.0.0.1:7002"), "127.0.0.1:9002");
        assert_eq!(peers.dial_address(3, "127.0.0.1:7003"), "127.0.0.1:7003");
        assert_eq!(peers.self_id(), 1);
    }

    #[tokio::test]
    async fn one_channel_is_shared_per_dialled_address() {
        let peers = PeerChannels::new(1, BTreeMap::from([(3, "127.0.0.1:9002".to_owned())]));
        peers.channel(2, "127.0.0.1:9002").expect("valid");
        peers.channel(2, "127.0.0.1:9002").expect("valid");
        // Node 3 is dialled through an override that names the same address.
        peers.channel(3, "127.0.0.1:7003").expect("valid");
        peers.channel(4, "127.0.0.1:7004").expect("valid");
        let count = peers.inner.channels.lock().map(|c| c.len()).unwrap_or(0);
        assert_eq!(count, 2);
    }

    #[test]
    fn malformed_peer_addresses_are_errors_not_panics() {
        for address in [
            "",
            "no-port",
            "http://127.0.0.1:1/x",
            "a b:1",
            "127.0.0.1:1/path",
        ] {
            assert!(endpoint(address).is_err(), "{address:?} accepted");
        }
        assert!(endpoint("127.0.0.1:7001").is_ok());
        assert!(endpoint("[::1]:7001").is_ok());
        assert!(endpoint("node-1.example:7001").is_ok());
    }

    #[test]
    fn unavailable_is_unreachable_and_deadline_is_timeout() {
        let waited = Duration::from_millis(75);
        assert!(matches!(
            failure_from_status(&Status::unavailable("tcp connect error"), waited),
            Failure::Unreachable(_)
        ));
        assert!(matches!(
            failure_from_status(&Status::unimplemented("no such service"), waited),
            Failure::Unreachable(_)
        ));
        assert_eq!(
            failure_from_status(&Status::deadline_exceeded("late"), waited),
            Failure::Timeout(waited)
        );
        assert!(matches!(
            failure_from_status(&Status::internal("h2 protocol error"), waited),
            Failure::Network(_)
        ));
        assert!(matches!(
            failure_from_status(&Status::out_of_range("too large"), waited),
            Failure::Protocol(_)
        ));
    }

    #[test]
    fn refusals_that_retrying_cannot_fix_are_unreachable() {
        for code in [
            ErrorCode::WrongNode,
            ErrorCode::UnknownGroup,
            ErrorCode::UnsupportedCodec,
            ErrorCode::Unavailable,
        ] {
            let failure = failure_from_api_error(&ApiError::new(code, "no"));
            assert!(
                matches!(failure, Failure::Unreachable(_)),
                "{code}: {failure:?}"
            );
        }
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::Internal,
            ErrorCode::PayloadTooLarge,
        ] {
            let failure = failure_from_api_error(&ApiError::new(code, "no"));
            assert!(
                matches!(failure, Failure::Protocol(_)),
                "{code}: {failure:?}"
            );
        }
    }

    #[test]
    fn failures_become_the_matching_openraft_errors() {
        let timeout = Failure::Timeout(Duration::from_millis(10)).into_rpc_error(Rpc::Vote, 1, 2);
        let RPCError::Timeout(timeout) = timeout else {
            panic!("expected a timeout, got {timeout:?}");
        };
        assert_eq!(
            (timeout.action, timeout.id, timeout.target),
            (RPCTypes::Vote, 1, 2)
        );
        assert!(matches!(
            Failure::Unreachable("x".into()).into_rpc_error(Rpc::AppendEntries, 1, 2),
            RPCError::Unreachable(_)
        ));
        assert!(matches!(
            Failure::Network("x".into()).into_rpc_error(Rpc::StreamAppend, 1, 2),
            RPCError::Network(_)
        ));
        let streaming = StreamingError::from(Failure::Unreachable("x".into()).into_rpc_error(
            Rpc::InstallSnapshot,
            1,
            2,
        ));
        assert!(matches!(streaming, StreamingError::Unreachable(_)));
    }

    #[test]
    fn payload_replies_decode_into_the_raft_answer() {
        let vote = Vote::new_committed(4, 2);
        let result: StreamAppendResult<TypeConfig> = Err(StreamAppendError::HigherVote(vote));
        let bytes = codec::encode("StreamAppendResult", &result).expect("encodes");
        let decoded: StreamAppendResult<TypeConfig> =
            decode_reply("StreamAppendResult", Some(Reply::Payload(bytes.into())))
                .expect("decodes");
        assert_eq!(decoded, result);
    }

    #[test]
    fn remote_fatal_error_is_unreachable() {
        let error: RaftError<TypeConfig> = RaftError::Fatal(openraft::errors::Fatal::Stopped);
        let bytes = codec::encode("RaftError", &error).expect("encodes");
        let failure = decode_reply::<VoteResponse<TypeConfig>>(
            "VoteResponse",
            Some(Reply::RaftError(bytes.into())),
        )
        .expect_err("fatal");
        assert!(matches!(failure, Failure::Unreachable(_)), "{failure:?}");
    }

    #[test]
    fn undecodable_or_empty_replies_are_network_errors() {
        let garbage = decode_reply::<VoteResponse<TypeConfig>>(
            "VoteResponse",
            Some(Reply::Payload(Bytes::from_static(b"\x01nonsense"))),
        );
        assert!(matches!(garbage, Err(Failure::Protocol(_))));
        let garbage_error = decode_reply::<VoteResponse<TypeConfig>>(
            "VoteResponse",
            Some(Reply::RaftError(Bytes::from_static(b""))),
        );
        assert!(matches!(garbage_error, Err(Failure::Protocol(_))));
        let empty = decode_reply::<VoteResponse<TypeConfig>>("VoteResponse", None);
        assert!(matches!(empty, Err(Failure::Protocol(_))));
        let refused = decode_reply::<VoteResponse<TypeConfig>>(
            "VoteResponse",
            Some(Reply::Error(ApiError::new(
                ErrorCode::WrongNode,
                "other node",
            ))),
        );
        assert!(matches!(refused, Err(Failure::Unreachable(_))));
    }

    #[test]
    fn stored_chunks_split_into_wire_chunks_with_contiguous_offsets() {
        let chunk = Bytes::from(vec![7u8; 10]);
        let pieces = split_chunk(100, chunk, 4);
        let shape: Vec<(u64, usize)> = pieces.iter().map(|(o, b)| (*o, b.len())).collect();
        assert_eq!(shape, vec![(100, 4), (104, 4), (108, 2)]);
        assert!(split_chunk(5, Bytes::new(), 4).is_empty());
        assert_eq!(split_chunk(0, Bytes::from_static(b"abcd"), 4).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pipeline_tracks_unanswered_requests_in_order() {
        let pipeline = Pipeline::default();
        let first = Instant::now();
        pipeline.record_sent(first);
        tokio::time::advance(Duration::from_millis(5)).await;
        pipeline.record_sent(Instant::now());
        assert_eq!(pipeline.unanswered(), 2);
        assert_eq!(pipeline.oldest_unanswered(), Some(first));
        assert_eq!(pipeline.record_answered(), Some(first));
        assert_eq!(pipeline.unanswered(), 1);
        pipeline.fail(Failure::Network("first".into()));
        pipeline.fail(Failure::Network("second".into()));
        assert_eq!(
            pipeline.take_failure(),
            Some(Failure::Network("first".into()))
        );
        assert_eq!(pipeline.take_failure(), None);
    }
}

/// Both halves of the transport over real loopback TCP: Raft groups on RocksDB stores in temp
/// dirs, each node serving `RaftTransportService` on 127.0.0.1:0.
#[cfg(test)]
mod loopback_tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use martelo_engine::{AuctionId, Command, Timestamp};
    use martelo_proto::raft_transport_client::RaftTransportClient;
    use martelo_proto::services::{raft_transport_client, raft_transport_server};
    use martelo_proto::{
        SnapshotChunk, SnapshotData as WireSnapshotData, SnapshotHeader, StreamAppendResponse,
        snapshot_chunk, stream_append_response,
    };
    use martelo_raft_store::{RaftStore, SnapshotReceiver, Stamped, StoreConfig};
    use tokio::sync::oneshot;
    use tonic::transport::Server;
    use tonic::transport::server::TcpIncoming;

    use super::super::Raft;
    use super::super::transport::{GroupLookup, RaftTransportService};
    use super::*;

    const WAIT: Duration = Duration::from_secs(20);

    /// One node: a store, its groups, and a transport server.
    struct TestNode {
        id: u64,
        address: String,
        store: RaftStore,
        peers: PeerChannels,
        rafts: Mutex<BTreeMap<GroupId, Raft>>,
        _dir: tempfile::TempDir,
    }

    impl GroupLookup for TestNode {
        fn node_id(&self) -> u64 {
            self.id
        }

        fn raft(&self, group: GroupId) -> Option<Raft> {
            self.rafts.lock().ok()?.get(&group).cloned()
        }

        fn snapshot_receiver(&self, group: GroupId) -> Option<SnapshotReceiver> {
            self.raft(group)?;
            Some(self.store.snapshot_receiver(group))
        }
    }

    impl TestNode {
        fn raft_of(&self, group: GroupId) -> Raft {
            self.raft(group).expect("group is open")
        }

        async fn open_group(&self, group: GroupId) -> Raft {
            let config = openraft::Config {
                cluster_name: "loopback".into(),
                heartbeat_interval: 50,
                election_timeout_min: 300,
                election_timeout_max: 600,
                install_snapshot_timeout: 5_000,
                max_payload_entries: 16,
                enable_pre_vote: Some(true),
                snapshot_policy: openraft::SnapshotPolicy::Never,
                max_in_snapshot_log_to_keep: 0,
                purge_batch_size: 1,
                ..openraft::Config::default()
            };
            let config = Arc::new(config.validate().expect("valid config"));
            let (log, state_machine) = self.store.group(group).await.expect("opens the group");
            let network = NetworkFactory::new(group, self.peers.clone());
            let raft = Raft::new(self.id, config, network, log, state_machine)
                .await
                .expect("starts Raft");
            self.rafts
                .lock()
                .expect("not poisoned")
                .insert(group, raft.clone());
            raft
        }
    }

    struct Running {
        node: Arc<TestNode>,
        stop: Option<oneshot::Sender<()>>,
        server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    }

    async fn start_node(id: u64) -> Running {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RaftStore::open(
            dir.path().join("raft"),
            StoreConfig {
                snapshot_chunk_bytes: 4096,
                ..StoreConfig::default()
            },
        )
        .expect("opens the store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let address: SocketAddr = listener.local_addr().expect("bound address");
        let node = Arc::new(TestNode {
            id,
            address: address.to_string(),
            store,
            peers: PeerChannels::new(id, BTreeMap::new()),
            rafts: Mutex::new(BTreeMap::new()),
            _dir: dir,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let service = raft_transport_server(RaftTransportService::new(Arc::clone(&node)));
        let server = tokio::spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                }),
        );
        Running {
            node,
            stop: Some(stop),
            server,
        }
    }

    /// Stops every group first, then the servers. A server's graceful shutdown waits for its
    /// open streams, and a peer's `StreamAppend` into it ends only when that peer's Raft
    /// stops; so the servers get a bounded drain, like the node's (then they are aborted).
    async fn stop_all(nodes: Vec<Running>) {
        for running in &nodes {
            let rafts: Vec<Raft> = running
                .node
                .rafts
                .lock()
                .expect("not poisoned")
                .values()
                .cloned()
                .collect();
            for raft in rafts {
                let _ = raft.shutdown().await;
            }
        }
        for mut running in nodes {
            if let Some(stop) = running.stop.take() {
                let _ = stop.send(());
            }
            if tokio::time::timeout(Duration::from_secs(5), &mut running.server)
                .await
                .is_err()
            {
                running.server.abort();
            }
        }
    }

    fn close_command(sequence: u64) -> Stamped {
        Stamped {
            traceparent: None,
            timestamp: Timestamp(1_000 + sequence),
            command: Command::Close {
                auction_id: AuctionId(sequence),
            },
        }
    }

    /// Writes through `leader`, retrying while a fresh leader answers `LeaseExpired` (until a
    /// quorum has acknowledged it).
    async fn write(
        leader: &Raft,
        command: martelo_raft_store::Stamped,
    ) -> openraft::raft::ClientWriteResponse<TypeConfig> {
        for _ in 0..200 {
            match leader.client_write(command.clone()).await {
                Ok(written) => return written,
                Err(error) if error.forward_to_leader().is_some() => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("write did not commit: {error}"),
            }
        }
        panic!("the leader never accepted the write");
    }

    async fn must_have_leader(raft: &Raft) -> u64 {
        let metrics = raft
            .wait(Some(WAIT))
            .metrics(|m| m.current_leader.is_some(), "a leader is elected")
            .await
            .expect("a leader within the deadline");
        metrics.current_leader.expect("checked above")
    }

    async fn must_apply(raft: &Raft, index: u64) {
        raft.wait(Some(WAIT))
            .applied_index_at_least(Some(index), "replicated and applied")
            .await
            .unwrap_or_else(|error| {
                panic!("node {} did not apply {index}: {error}", raft.node_id())
            });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_elect_replicate_transfer_and_catch_up_a_learner_by_snapshot() {
        let group = GroupId(7);
        let nodes = vec![
            start_node(1).await,
            start_node(2).await,
            start_node(3).await,
            start_node(4).await,
        ];
        for running in &nodes {
            running.node.open_group(group).await;
        }
        let node = |id: u64| &nodes[usize::try_from(id - 1).expect("small")].node;
        let members: BTreeMap<u64, BasicNode> = (1..=3)
            .map(|id| (id, BasicNode::new(node(id).address.clone())))
            .collect();
        node(1)
            .raft_of(group)
            .initialize(members)
            .await
            .expect("initializes");

        // Election (pre-vote and vote) and replication through StreamAppend.
        let leader_id = must_have_leader(&node(1).raft_of(group)).await;
        let leader = node(leader_id).raft_of(group);
        let mut last_index = 0;
        for sequence in 0..40 {
            last_index = write(&leader, close_command(sequence)).await.log_id.index();
        }
        for id in 1..=3 {
            must_apply(&node(id).raft_of(group), last_index).await;
        }

        // A learner that joins after the log was purged catches up through InstallSnapshot.
        leader.trigger().snapshot().await.expect("snapshot");
        leader
            .wait(Some(WAIT))
            .metrics(
                |m| m.snapshot.map(|id| id.index()) >= Some(last_index),
                "snapshot built",
            )
            .await
            .expect("snapshot within the deadline");
        leader.trigger().purge_log(last_index).await.expect("purge");
        leader
            .wait(Some(WAIT))
            .metrics(
                |m| m.purged.map(|id| id.index()) >= Some(last_index),
                "log purged",
            )
            .await
            .expect("purge within the deadline");
        leader
            .add_learner(4, BasicNode::new(node(4).address.clone()), true)
            .await
            .expect("learner added");
        let learner = node(4).raft_of(group);
        must_apply(&learner, last_index).await;
        let learner_metrics =
            openraft::async_runtime::WatchReceiver::borrow_watched(&learner.metrics()).clone();
        assert!(
            learner_metrics.snapshot.map(|id| id.index()) >= Some(last_index),
            "the learner installed the leader's snapshot: {learner_metrics:?}"
        );

        // Leadership moves through TransferLeader; the new leader replicates to everyone.
        let target = if leader_id == 1 { 2 } else { 1 };
        leader
            .trigger()
            .transfer_leader(target)
            .await
            .expect("transfer");
        let new_leader = node(target).raft_of(group);
        new_leader
            .wait(Some(WAIT))
            .current_leader(target, "leadership transferred")
            .await
            .expect("transfer within the deadline");
        let written = write(&new_leader, close_command(1_000)).await;
        for id in 1..=4 {
            must_apply(&node(id).raft_of(group), written.log_id.index()).await;
        }
        stop_all(nodes).await;
    }

    fn raw_client(address: &str) -> RaftTransportClient<Channel> {
        raft_transport_client(endpoint(address).expect("valid").connect_lazy())
    }

    fn heartbeat(group_id: u64, to_node_id: u64) -> martelo_proto::AppendEntriesRequest {
        let request = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(1, 9),
            prev_log_id: None,
            leader_commit: None,
            entries: vec![],
        };
        martelo_proto::AppendEntriesRequest {
            group_id,
            from_node_id: 9,
            to_node_id,
            codec_version: u32::from(codec::FORMAT_VERSION),
            payload: codec::encode("AppendEntriesRequest", &request)
                .expect("encodes")
                .into(),
        }
    }

    fn refusal_code(reply: Option<Reply>) -> ErrorCode {
        match reply {
            Some(Reply::Error(error)) => error.code(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_refuses_misaddressed_malformed_and_out_of_order_messages() {
        let group = GroupId(3);
        let running = start_node(2).await;
        running.node.open_group(group).await;
        let mut client = raw_client(&running.node.address);

        let wrong_node = client
            .append_entries(heartbeat(3, 5))
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(refusal_code(wrong_node.into_reply()), ErrorCode::WrongNode);
        let unknown_group = client
            .append_entries(heartbeat(4, 2))
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(
            refusal_code(unknown_group.into_reply()),
            ErrorCode::UnknownGroup
        );
        let mut garbage = heartbeat(3, 2);
        garbage.payload = Bytes::from_static(b"\x01\x02\x03\x04\x05\x06");
        let garbage = client
            .append_entries(garbage)
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(
            refusal_code(garbage.into_reply()),
            ErrorCode::InvalidArgument
        );
        let accepted = client
            .append_entries(heartbeat(3, 2))
            .await
            .expect("answers")
            .into_inner();
        let answer: AppendEntriesResponse<TypeConfig> =
            decode_reply("AppendEntriesResponse", accepted.into_reply()).expect("a Raft answer");
        assert_eq!(answer, AppendEntriesResponse::Success);

        // A stream that switches group gets its earlier request answered, then the error.
        let requests = futures::stream::iter([heartbeat(3, 2), heartbeat(4, 2), heartbeat(3, 2)]);
        let responses: Vec<StreamAppendResponse> = client
            .stream_append(requests)
            .await
            .expect("stream opens")
            .into_inner()
            .map(|response| response.expect("no transport error"))
            .collect()
            .await;
        assert_eq!(responses.len(), 2, "{responses:?}");
        assert!(matches!(
            responses[0].result,
            Some(stream_append_response::Result::Payload(_))
        ));
        assert_eq!(
            refusal_code(responses[1].clone().into_reply()),
            ErrorCode::InvalidArgument
        );

        // A snapshot with a gap installs nothing.
        let vote = Vote::new_committed(1, 9);
        let meta = martelo_raft_store::types::SnapshotMeta {
            last_log_id: None,
            last_membership: Default::default(),
        };
        let header = SnapshotHeader {
            group_id: 3,
            from_node_id: 9,
            to_node_id: 2,
            codec_version: u32::from(codec::FORMAT_VERSION),
            vote: codec::encode("Vote", &vote).expect("encodes").into(),
            meta: codec::encode("SnapshotMeta", &meta)
                .expect("encodes")
                .into(),
            total_bytes: 8,
        };
        let data = |offset: u64| SnapshotChunk {
            kind: Some(snapshot_chunk::Kind::Data(WireSnapshotData {
                offset,
                data: Bytes::from_static(b"abcd"),
            })),
        };
        let messages = vec![
            SnapshotChunk {
                kind: Some(snapshot_chunk::Kind::Header(header.clone())),
            },
            data(0),
            data(5),
        ];
        let answer = client
            .install_snapshot(futures::stream::iter(messages))
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(
            refusal_code(answer.into_reply()),
            ErrorCode::InvalidArgument
        );
        // Cut off before the trailer: refused too.
        let messages = vec![
            SnapshotChunk {
                kind: Some(snapshot_chunk::Kind::Header(header)),
            },
            data(0),
            data(4),
        ];
        let answer = client
            .install_snapshot(futures::stream::iter(messages))
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(
            refusal_code(answer.into_reply()),
            ErrorCode::InvalidArgument
        );

        stop_all(vec![running]).await;
    }

    #[tokio::test]
    async fn outgoing_connections_bind_the_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let address = listener.local_addr().expect("address").to_string();
        let source = std::net::IpAddr::from([127, 0, 0, 23]);
        let peers = PeerChannels::with_source_address(1, BTreeMap::new(), Some(source));
        let mut factory = NetworkFactory::new(GroupId(1), peers);
        let mut network = factory.new_client(2, &BasicNode::new(address)).await;
        let request = VoteRequest::<TypeConfig>::new(Vote::new(2, 1), None);
        // Nothing speaks gRPC there: the call fails, but only after connecting.
        let call = tokio::spawn(async move {
            let _ = network
                .vote(request, RPCOption::new(Duration::from_secs(2)))
                .await;
        });
        let (_stream, peer) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("a connection within the deadline")
            .expect("accepts");
        assert_eq!(peer.ip(), source);
        call.abort();
    }

    #[tokio::test]
    async fn a_peer_that_refuses_connections_is_unreachable() {
        // Bind, then drop: nothing listens on this port any more.
        let address = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
            listener.local_addr().expect("address").to_string()
        };
        let factory = NetworkFactory::new(GroupId(1), PeerChannels::new(1, BTreeMap::new()));
        let mut factory = factory;
        let mut network = factory.new_client(2, &BasicNode::new(address)).await;
        let request = VoteRequest::<TypeConfig>::new(Vote::new(2, 1), None);
        let error = network
            .vote(request, RPCOption::new(Duration::from_secs(2)))
            .await
            .expect_err("nothing listens");
        assert!(matches!(error, RPCError::Unreachable(_)), "{error:?}");
    }
}
