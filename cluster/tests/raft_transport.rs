//! Both sides of the Raft transport over real loopback TCP, in one process: Raft groups on
//! RocksDB stores in temp dirs, each node serving `RaftTransportService` on 127.0.0.1:0 and
//! reaching its peers through its own `PeerChannels`.
//!
//! These drive the transport through `martelo_cluster::node::raft_transport`, without the
//! rest of a node (registry, client API, timers); whole-node behaviour is in `failover.rs`
//! and `membership.rs`. The pure checks of each side are unit tests next to their code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use martelo_cluster::node::Raft;
use martelo_cluster::node::raft_transport::{
    GroupLookup, NetworkFactory, PeerChannels, RaftTransportService,
};
use martelo_engine::{AuctionId, Command, Timestamp};
use martelo_proto::channel::{ChannelSettings, endpoint};
use martelo_proto::raft_transport_client::RaftTransportClient;
use martelo_proto::services::{raft_transport_client, raft_transport_server};
use martelo_proto::{
    ErrorCode, SnapshotChunk, SnapshotData as WireSnapshotData, SnapshotHeader,
    StreamAppendResponse, append_entries_response, install_snapshot_response, snapshot_chunk,
    stream_append_response,
};
use martelo_raft_store::codec::wire::{self, WireVersion};
use martelo_raft_store::types::Vote;
use martelo_raft_store::{GroupId, RaftStore, SnapshotReceiver, Stamped, StoreConfig, TypeConfig};
use openraft::errors::RPCError;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest};
use openraft::{BasicNode, RaftNetworkV2};
use prost::bytes::Bytes;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};

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
/// open streams, and a peer's `StreamAppend` into it ends only when that peer's Raft stops;
/// so the servers get a bounded drain, like the node's (then they are aborted).
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
async fn must_write(
    leader: &Raft,
    command: Stamped,
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
        .unwrap_or_else(|error| panic!("node {} did not apply {index}: {error}", raft.node_id()));
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
        last_index = must_write(&leader, close_command(sequence))
            .await
            .log_id
            .index();
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
    let written = must_write(&new_leader, close_command(1_000)).await;
    for id in 1..=4 {
        must_apply(&node(id).raft_of(group), written.log_id.index()).await;
    }
    stop_all(nodes).await;
}

/// A client that speaks the transport's gRPC directly, with no openraft behind it.
fn raw_client(address: &str) -> RaftTransportClient<Channel> {
    let endpoint = endpoint(address, &ChannelSettings::PEER).expect("valid");
    raft_transport_client(endpoint.connect_lazy())
}

/// An empty append (a heartbeat) from node 9, leader of term 1, for `group_id` on
/// `to_node_id`.
fn heartbeat(group_id: u64, to_node_id: u64) -> martelo_proto::AppendEntriesRequest {
    heartbeat_in(WireVersion::CURRENT, group_id, to_node_id)
}

/// [`heartbeat`] sent in wire version `version`.
fn heartbeat_in(
    version: WireVersion,
    group_id: u64,
    to_node_id: u64,
) -> martelo_proto::AppendEntriesRequest {
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
        codec_version: version.codec_version(),
        payload: wire::encode_peer("AppendEntriesRequest", &request, version)
            .expect("encodes")
            .into(),
    }
}

/// The Raft's answer inside an append response that must carry one, and the wire version
/// it is encoded in.
fn raft_answer(
    response: martelo_proto::AppendEntriesResponse,
) -> (u8, AppendEntriesResponse<TypeConfig>) {
    match response.result {
        Some(append_entries_response::Result::Payload(bytes)) => {
            let answer =
                wire::decode_peer::<_, 1024>("AppendEntriesResponse", &bytes).expect("decodes");
            (bytes[0], answer)
        }
        other => panic!("expected a Raft answer, got {other:?}"),
    }
}

/// The error code of a response that must be a refusal; `$oneof` is the module of the
/// response's `result`.
macro_rules! refusal_code {
    ($response:expr, $oneof:ident) => {
        match $response.result {
            Some($oneof::Result::Error(error)) => error.code(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_refuses_misaddressed_malformed_and_out_of_order_messages() {
    let group = GroupId(3);
    let running = start_node(2).await;
    running.node.open_group(group).await;
    let mut client = raw_client(&running.node.address);

    // Refused before anything reaches the Raft: each case with the code it gets.
    let mut garbage = heartbeat(3, 2);
    garbage.payload = Bytes::from_static(b"\x01\x02\x03\x04\x05\x06");
    let mut unknown_version = heartbeat(3, 2);
    unknown_version.codec_version = u32::from(wire::WIRE_VERSION) + 1;
    let refused = [
        ("wrong node", heartbeat(3, 5), ErrorCode::WrongNode),
        ("unknown group", heartbeat(4, 2), ErrorCode::UnknownGroup),
        ("garbage payload", garbage, ErrorCode::InvalidArgument),
        // A version this node does not read is refused before anything is decoded.
        (
            "unknown wire version",
            unknown_version,
            ErrorCode::UnsupportedCodec,
        ),
    ];
    for (case, request, code) in refused {
        let answer = client
            .append_entries(request)
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(
            refusal_code!(answer, append_entries_response),
            code,
            "{case}"
        );
    }
    let accepted = client
        .append_entries(heartbeat(3, 2))
        .await
        .expect("answers")
        .into_inner();
    assert_eq!(raft_answer(accepted).1, AppendEntriesResponse::Success);

    // A peer one wire version older is served, and answered in its version.
    let older = client
        .append_entries(heartbeat_in(WireVersion::OLDEST, 3, 2))
        .await
        .expect("answers")
        .into_inner();
    let (version, answer) = raft_answer(older);
    assert_eq!(
        version,
        WireVersion::OLDEST.get(),
        "answered in its version"
    );
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
        refusal_code!(responses[1].clone(), stream_append_response),
        ErrorCode::InvalidArgument
    );

    let vote = Vote::new_committed(1, 9);
    let meta = martelo_raft_store::types::SnapshotMeta {
        last_log_id: None,
        last_membership: Default::default(),
    };
    let header = SnapshotHeader {
        group_id: 3,
        from_node_id: 9,
        to_node_id: 2,
        codec_version: WireVersion::CURRENT.codec_version(),
        vote: wire::encode_peer("Vote", &vote, WireVersion::CURRENT)
            .expect("encodes")
            .into(),
        meta: wire::encode_peer("SnapshotMeta", &meta, WireVersion::CURRENT)
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
    // A snapshot with a gap installs nothing, and one cut off before the trailer neither.
    for (case, second) in [("gap", data(5)), ("no trailer", data(4))] {
        let messages = vec![
            SnapshotChunk {
                kind: Some(snapshot_chunk::Kind::Header(header.clone())),
            },
            data(0),
            second,
        ];
        let answer = client
            .install_snapshot(futures::stream::iter(messages))
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(
            refusal_code!(answer, install_snapshot_response),
            ErrorCode::InvalidArgument,
            "{case}"
        );
    }

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
    let mut factory = NetworkFactory::new(GroupId(1), PeerChannels::new(1, BTreeMap::new()));
    let mut network = factory.new_client(2, &BasicNode::new(address)).await;
    let request = VoteRequest::<TypeConfig>::new(Vote::new(2, 1), None);
    let error = network
        .vote(request, RPCOption::new(Duration::from_secs(2)))
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, RPCError::Unreachable(_)), "{error:?}");
}
