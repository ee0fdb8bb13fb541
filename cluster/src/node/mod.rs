//! `martelo node`: one process holding replicas of many Raft groups.
//!
//! ```text
//!              one gRPC port (tonic, HTTP/2)
//!   peers ───► RaftTransport ──┐
//!   clients ─► ClientApi ──────┼──► Registry: group id -> Group (one owner per replica)
//!   CLI ─────► AdminApi ───────┘          │       Group { Raft, Proposer, reader, events,
//!                                         │               lifecycle, its own tasks:
//!                                         │               close timer, gauges, removal watch }
//!                                         │            │ openraft (one per group)
//!   skew guard (refuse to lead) ──────────┤            ▼
//!   leader balancer ──────────────────────┤      RaftStore: one RocksDB for every group
//!   telemetry (/metrics, JSON logs) ──────┘
//! ```
//!
//! - [`config`]: flags, environment and config file.
//! - `registry`: the node's shared state behind accessors, its groups, and `node.json`
//!   (which groups to reopen at start, which removed ones still hold data).
//! - `group`: one replica's owner: its handles, its lifecycle (Open → Serving → Removed →
//!   Destroyed: a replica removed from its group stops, and its data is deleted after the
//!   `store.removed_group_grace_ms` grace period), and its tasks.
//! - [`raft_transport`]: the Raft transport, client and server side, a file per role.
//! - `propose`: the batching write path (stamping with the hybrid clock, `client_write_many`);
//!   it gets the wall clock and the clock guard at start, not the registry.
//! - `client_api` / `admin_api`: the services.
//! - `timers`: a group's close timer. `skew`: the clock-skew guard. [`telemetry`]: logs,
//!   metrics, a group's gauge sampler.
//! - [`metric_names`]: every metric name the node exports, with its type, labels and meaning.
//! - `balance`: the leader balancer, and which voter takes over a group a leader gives up.
//! - [`health`]: the gRPC health service (liveness, and readiness: initialized and every
//!   group it holds knows a leader) that Kubernetes probes and load balancers ask.
//! - `sink`: copies the committed events of the groups this node leads into Postgres
//!   (`--postgres` / `DATABASE_URL`; martelo-sink does the writing).
//!
//! Stopping (SIGTERM, Ctrl-C), in [`run`]: hand off the groups this node leads, all at once
//! and each for at most [`HANDOFF_WAIT`]; stop taking requests; let in-flight ones finish for
//! up to [`DRAIN_TIMEOUT`]; stop every group's Raft at once; close what is left of the server
//! after [`SERVER_CLOSE_WAIT`]; flush the store. Each step logs its duration at debug level,
//! and the last line ("node stopped cleanly") carries them all.

mod admin_api;
mod balance;
mod client_api;
pub mod config;
mod group;
pub mod health;
pub mod metric_names;
mod propose;
pub mod raft_transport;
mod registry;
mod sink;
mod skew;
pub mod telemetry;
mod timers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tracing::Instrument;

pub use config::{NodeArgs, NodeConfig};

/// The openraft instance type of every group.
pub type Raft = openraft::Raft<martelo_raft_store::TypeConfig, martelo_raft_store::StateMachine>;

/// The gRPC path prefix of the Raft transport service.
const RAFT_TRANSPORT_PATH: &str = "/martelo.v1.RaftTransport/";
/// The gRPC path prefix of the standard health service (probes, every few seconds).
const HEALTH_PATH: &str = "/grpc.health.v1.Health/";

/// How long a stopping node waits for in-flight requests before it closes connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping node waits for each group it leads to be taken over (all groups at
/// once). An idle group moves in a few tens of milliseconds; a target that is itself
/// stopping may never take over, and then the group elects a leader as after a crash.
const HANDOFF_WAIT: Duration = Duration::from_millis(300);
/// How long stopping the groups' Raft may take before the node flushes and exits anyway.
const RAFT_STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the server may take to close once the groups have stopped (time to flush the
/// last answers). What is still open then is a peer's replication stream into this node or
/// an event subscription, neither of which ends by itself: tonic's graceful shutdown waited
/// for them, and a stop used to spend the whole 5 s drain bound there.
const SERVER_CLOSE_WAIT: Duration = Duration::from_millis(100);

/// Runs a node until SIGTERM or Ctrl-C, then stops cleanly.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    // Before any group applies anything, so every command sees the same engine.
    // First, before the port is bound: see `crate::signals`.
    let stop_signals =
        crate::signals::StopSignals::install().context("installing the SIGTERM handler")?;
    #[cfg(feature = "planted-bugs")]
    if let Some(bug) = config.test.plant_bug {
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
        advertise = %registry.config().advertise,
        data_dir = %registry.config().data_dir.display(),
        groups = registry.groups().len(),
        initialized = registry.shard_count().is_some(),
        "node started"
    );
    // Every log line of the node carries its id: background tasks run inside this span, and
    // each gRPC request gets a child span of it with the method name.
    let node_span = tracing::info_span!("node", node_id = registry.node_id());
    tokio::spawn(skew::run(Arc::downgrade(&registry)).instrument(node_span.clone()));
    if let Some(path) = registry.config().test.clock_offset_file.clone() {
        tokio::spawn(
            skew::follow_offset_file(Arc::downgrade(&registry), path).instrument(node_span.clone()),
        );
    }
    tokio::spawn(telemetry::sample_node(Arc::downgrade(&registry)).instrument(node_span.clone()));
    if registry.config().leader_balance {
        tokio::spawn(balance::run(Arc::downgrade(&registry)).instrument(node_span.clone()));
    }
    match registry.config().postgres.clone() {
        Some(url) => {
            let pool = martelo_sink::connect_url(&url).context("the sink's Postgres URL")?;
            tracing::info!(postgres = %url, "sink on: copying led groups' events to Postgres");
            tokio::spawn(sink::run(Arc::downgrade(&registry), pool).instrument(node_span.clone()));
        }
        None => tracing::info!(
            "sink off: no --postgres or DATABASE_URL, so committed events are not copied to \
             Postgres"
        ),
    }
    // Not ready until the first check says so; liveness ("") is serving from the start.
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status(
            health::READINESS_SERVICE,
            tonic_health::ServingStatus::NotServing,
        )
        .await;
    tokio::spawn(
        health::run(Arc::downgrade(&registry), health_reporter).instrument(node_span.clone()),
    );
    let request_span = node_span.clone();
    let in_flight = Arc::new(InFlight::default());

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
            // Health probes neither: they are noise in the logs.
            let method = request.uri().path();
            if method.starts_with(RAFT_TRANSPORT_PATH) || method.starts_with(HEALTH_PATH) {
                return tracing::Span::none();
            }
            tracing::info_span!(parent: &request_span, "rpc", method = %method)
        })
        .add_service(health_service)
        .add_service(martelo_proto::services::raft_transport_server(
            raft_transport::RaftTransportService::new(Arc::clone(&registry)),
        ))
        .add_service(Counted {
            inner: martelo_proto::services::client_api_server(client_api::ClientApiService::new(
                Arc::clone(&registry),
            )),
            in_flight: Arc::clone(&in_flight),
        })
        .add_service(Counted {
            inner: martelo_proto::services::admin_api_server(admin_api::AdminApiService::new(
                Arc::clone(&registry),
            )),
            in_flight: Arc::clone(&in_flight),
        })
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    let mut server = tokio::spawn(server);
    tokio::select! {
        () = stop_signals.received() => {}
        served = &mut server => {
            served.context("the gRPC server task failed")?.context("the gRPC server failed")?;
            anyhow::bail!("the gRPC server stopped unexpectedly");
        }
    }
    tracing::info!("stopping: handing off leadership, finishing in-flight requests");
    let mut phases = Phases::start();
    registry.start_stopping();
    let (led, handed_off) = hand_off_leadership(&registry).await;
    let handoff_ms = phases.next("leadership handed off");
    // Stop taking requests: the listener closes and open connections get GOAWAY.
    let _ = stop.send(());
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, in_flight.idle())
        .await
        .is_ok();
    if !drained {
        tracing::warn!(
            in_flight = in_flight.count(),
            "requests still in flight after {DRAIN_TIMEOUT:?}; closing them"
        );
    }
    let drain_ms = phases.next("in-flight requests finished");
    let groups = registry.groups();
    let stopped = tokio::time::timeout(
        RAFT_STOP_TIMEOUT,
        futures::future::join_all(groups.iter().map(|group| async move {
            if let Err(error) = group.raft.shutdown().await {
                tracing::warn!(group = group.id.0, %error, "group did not stop cleanly");
            }
        })),
    )
    .await;
    if stopped.is_err() {
        tracing::warn!("the groups' Raft did not stop within {RAFT_STOP_TIMEOUT:?}");
    }
    let raft_ms = phases.next("groups stopped");
    let server_closed = tokio::time::timeout(SERVER_CLOSE_WAIT, &mut server)
        .await
        .is_ok();
    if !server_closed {
        server.abort();
    }
    let server_ms = phases.next("server closed");
    registry
        .store()
        .sync()
        .await
        .context("final flush of the store")?;
    let flush_ms = phases.next("store flushed");
    tracing::info!(
        led,
        handed_off,
        handoff_ms,
        drain_ms,
        raft_ms,
        server_ms,
        server_closed,
        flush_ms,
        total_ms = phases.total_ms(),
        "node stopped cleanly"
    );
    Ok(())
}

/// Asks another voter to lead each group this node leads, so clients fail over at once
/// instead of after an election timeout. All groups at once, each waiting at most
/// [`HANDOFF_WAIT`] for the new leader: a stop costs one short wait, not one per group.
/// Voters that have not acknowledged lately (stopped, unreachable) are not asked. Returns
/// how many groups this node led, and how many were taken over in time.
async fn hand_off_leadership(registry: &registry::Registry) -> (usize, usize) {
    let excluded = registry.handoff_excluded();
    let led: Vec<Arc<group::Group>> = registry
        .groups()
        .into_iter()
        .filter(|group| group.raft.is_leader())
        .collect();
    let handoffs = led.iter().map(|group| {
        let excluded = &excluded;
        async move {
            let Some(target) = group.handoff_target(excluded) else {
                tracing::debug!(
                    group = group.id.0,
                    "stop: no reachable voter to hand off to"
                );
                return false;
            };
            let leader = group.transfer_leadership(target, HANDOFF_WAIT).await;
            tracing::debug!(group = group.id.0, target, ?leader, "stop: hand-off");
            leader.is_some()
        }
    });
    let handed_off = futures::future::join_all(handoffs)
        .await
        .into_iter()
        .filter(|moved| *moved)
        .count();
    (led.len(), handed_off)
}

/// Times the steps of a stop, for the logs.
#[derive(Debug)]
struct Phases {
    started: Instant,
    last: Instant,
}

impl Phases {
    fn start() -> Phases {
        let now = Instant::now();
        Phases {
            started: now,
            last: now,
        }
    }

    /// Logs that step `what` ended; returns how long it took, in milliseconds.
    fn next(&mut self, what: &'static str) -> u64 {
        let now = Instant::now();
        let step_ms = now.duration_since(self.last).as_millis() as u64;
        self.last = now;
        tracing::debug!(step_ms, elapsed_ms = self.total_ms(), "stop: {what}");
        step_ms
    }

    fn total_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// Client and admin requests being served, so a stopping node can wait for exactly those.
/// Raft streams and event subscriptions are not requests that finish: a streaming call
/// counts only until its stream is returned.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl InFlight {
    fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(Arc::clone(self))
    }

    /// Returns once no request is in flight.
    async fn idle(&self) {
        loop {
            // Created before the check, so a request that ends in between still wakes it.
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Debug)]
struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A gRPC service whose calls are counted in [`InFlight`] until their response is ready.
#[derive(Clone, Debug)]
struct Counted<S> {
    inner: S,
    in_flight: Arc<InFlight>,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Counted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, R> tonic::codegen::Service<R> for Counted<S>
where
    S: tonic::codegen::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let guard = self.in_flight.enter();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(guard);
            response
        })
    }
}
