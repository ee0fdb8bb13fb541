//! `martelo node`: one process holding replicas of many Raft groups.
//!
//! ```text
//!              one gRPC port (tonic, HTTP/2)
//!   peers ───► RaftTransport ──┐
//!   clients ─► ClientApi ──────┼──► Registry: group id -> Group { Raft, Proposer, reader, events }
//!   CLI ─────► AdminApi ───────┘          │            │ openraft (one per group)
//!                                         │            ▼
//!   timers (Close at end) ────────────────┤      RaftStore: one RocksDB for every group
//!   skew guard (refuse to lead) ──────────┤
//!   telemetry (/metrics, JSON logs) ──────┘
//! ```
//!
//! - [`config`]: flags, environment and config file.
//! - `registry`: the groups of the node and `node.json` (which groups to reopen at start).
//! - `network` / `transport`: the Raft transport, client and server side.
//! - `propose`: the batching write path (stamping with the hybrid clock, `client_write_many`).
//! - `client_api` / `admin_api`: the services.
//! - `timers`: leader close timers. `skew`: the clock-skew guard. [`telemetry`]: logs, metrics.

mod admin_api;
mod client_api;
pub mod config;
mod network;
mod propose;
mod registry;
mod skew;
pub mod telemetry;
mod timers;
mod transport;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use tracing::Instrument;

pub use config::{NodeArgs, NodeConfig};

/// The openraft instance type of every group.
pub type Raft = openraft::Raft<martelo_raft_store::TypeConfig, martelo_raft_store::StateMachine>;

/// The gRPC path prefix of the Raft transport service.
const RAFT_TRANSPORT_PATH: &str = "/martelo.v1.RaftTransport/";

/// How long a stopping node waits for in-flight requests before it closes connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a node until SIGTERM or Ctrl-C, then stops cleanly.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    // Before any group applies anything, so every command sees the same engine.
    #[cfg(feature = "planted-bugs")]
    if let Some(bug) = config.plant_bug {
        anyhow::ensure!(
            martelo_engine::planted::plant(bug),
            "another bug is already planted"
        );
        tracing::warn!(bug = bug.name(), "TEST BUILD: a deliberate bug is planted");
    }
    if let Some(address) = &config.metrics_listen {
        telemetry::serve_metrics(address)?;
    }
    let listen = config.listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}: is another process using it?"))?;
    let registry = registry::Registry::open(config).await?;
    tracing::info!(
        node_id = registry.node_id(),
        listen = %listen,
        advertise = %registry.config.advertise,
        data_dir = %registry.config.data_dir.display(),
        groups = registry.groups().len(),
        initialized = registry.shard_count().is_some(),
        "node started"
    );
    // Every log line of the node carries its id: background tasks run inside this span, and
    // each gRPC request gets a child span of it with the method name.
    let node_span = tracing::info_span!("node", node_id = registry.node_id());
    tokio::spawn(timers::run(Arc::downgrade(&registry)).instrument(node_span.clone()));
    tokio::spawn(skew::run(Arc::downgrade(&registry)).instrument(node_span.clone()));
    if let Some(path) = registry.config.clock_offset_file.clone() {
        tokio::spawn(
            skew::follow_offset_file(Arc::downgrade(&registry), path).instrument(node_span.clone()),
        );
    }
    tokio::spawn(telemetry::sample_groups(Arc::downgrade(&registry)).instrument(node_span.clone()));
    let request_span = node_span.clone();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The builder's `tcp_nodelay` only reaches connections it accepts itself; ours come from
    // this listener, so set it here. Without it, small answers (every Raft response and
    // client reply) waited for the peer's delayed ACK: a 40 ms stall on 1-3% of proposals.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .trace_fn(move |request| {
            // Raft traffic (thousands of messages a second, long-lived streams) gets no span
            // of its own: entering one on every poll showed up as 10% of a busy node's CPU.
            let method = request.uri().path();
            if method.starts_with(RAFT_TRANSPORT_PATH) {
                return tracing::Span::none();
            }
            tracing::info_span!(parent: &request_span, "rpc", method = %method)
        })
        .add_service(martelo_proto::services::raft_transport_server(
            transport::RaftTransportService::new(Arc::clone(&registry)),
        ))
        .add_service(martelo_proto::services::client_api_server(
            client_api::ClientApiService::new(Arc::clone(&registry)),
        ))
        .add_service(martelo_proto::services::admin_api_server(
            admin_api::AdminApiService::new(Arc::clone(&registry)),
        ))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    let mut server = tokio::spawn(server);
    tokio::select! {
        () = shutdown_signal() => {}
        served = &mut server => {
            served.context("the gRPC server task failed")?.context("the gRPC server failed")?;
            anyhow::bail!("the gRPC server stopped unexpectedly");
        }
    }
    tracing::info!("stopping: handing off leadership, finishing in-flight requests");
    registry.shutting_down.store(true, Ordering::Release);
    hand_off_leadership(&registry).await;
    let _ = stop.send(());
    // Long-lived peer streams never end by themselves: wait a bounded time, then close.
    if tokio::time::timeout(DRAIN_TIMEOUT, &mut server)
        .await
        .is_err()
    {
        server.abort();
    }
    for group in registry.groups() {
        if let Err(error) = group.raft.shutdown().await {
            tracing::warn!(group = group.id.0, %error, "group did not stop cleanly");
        }
    }
    registry
        .store
        .sync()
        .await
        .context("final flush of the store")?;
    tracing::info!("node stopped cleanly");
    Ok(())
}

/// Asks another voter to lead each group this node leads, so clients fail over at once
/// instead of after an election timeout.
async fn hand_off_leadership(registry: &registry::Registry) {
    for group in registry.groups() {
        if !group.raft.is_leader() {
            continue;
        }
        let (voters, _) = group.members();
        if let Some(target) = voters.into_iter().find(|id| *id != registry.node_id()) {
            let _ = group.raft.trigger().transfer_leader(target).await;
        }
    }
    // Give the targets a moment to win their elections.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
