//! The node's health for process supervisors and load balancers: the standard gRPC health
//! service (`grpc.health.v1.Health`, served by `tonic-health` on the node's one gRPC port),
//! which Kubernetes probes natively (`grpc:` probes) and `grpc_health_probe` speaks.
//!
//! | service name | SERVING when | used as |
//! |---|---|---|
//! | `""` (the server) | the process serves gRPC | liveness: fails only if the node hangs |
//! | [`READINESS_SERVICE`] | [`readiness`] says ready | readiness: the node can serve its groups |
//!
//! Readiness is decided by a pure function over what the node can tell cheaply
//! ([`NodeView`]: initialized, stopping, and the leader each replica knows), re-evaluated every
//! [`CHECK_EVERY`] by [`run`]. It is this node's own view, not the cluster's verdict (that is
//! `martelo status`): a replica that knows a leader can forward or serve; a replica that knows
//! none is in an election or cut off. A node that is not initialized is not ready, so a
//! Kubernetes StatefulSet must start its pods in parallel (`podManagementPolicy: Parallel`)
//! and its peer Service must publish not-ready addresses, or the cluster can never form.

use std::sync::Weak;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver as _;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::registry::{Registry, Ticker};

/// The health service name whose status is the node's readiness.
pub const READINESS_SERVICE: &str = "ready";
/// How often readiness is re-evaluated; a probe sees a change within this.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// What readiness is decided from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// The node belongs to a cluster (`cluster init` or `node add` reached it).
    pub initialized: bool,
    /// The node is stopping (SIGTERM).
    pub stopping: bool,
    /// Each live replica: its group id, and the leader it knows (`None`: none right now).
    pub groups: Vec<(u64, Option<u64>)>,
}

/// Whether the node is ready to serve, and if not, why (for the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
}

/// Ready when the node is initialized, not stopping, holds at least one group, and every
/// replica it holds knows a leader.
pub fn readiness(view: &NodeView) -> Readiness {
    if view.stopping {
        return Readiness::NotReady("the node is stopping".to_owned());
    }
    if !view.initialized {
        return Readiness::NotReady(
            "the node belongs to no cluster yet (`martelo cluster init`)".to_owned(),
        );
    }
    if view.groups.is_empty() {
        return Readiness::NotReady(
            "the node holds no group (`martelo node add` gives it some)".to_owned(),
        );
    }
    let leaderless: Vec<String> = view
        .groups
        .iter()
        .filter(|(_, leader)| leader.is_none())
        .map(|(group, _)| group.to_string())
        .collect();
    if leaderless.is_empty() {
        Readiness::Ready
    } else {
        Readiness::NotReady(format!(
            "no known leader for group(s) {}",
            leaderless.join(", ")
        ))
    }
}

/// The node's view for [`readiness`].
fn view(registry: &Registry) -> NodeView {
    NodeView {
        initialized: registry.shard_count().is_some(),
        stopping: registry.stopping(),
        groups: registry
            .groups()
            .iter()
            .map(|group| {
                let leader = group.raft.metrics().borrow_watched().current_leader;
                (group.id.0, leader)
            })
            .collect(),
    }
}

/// Keeps the readiness status of `reporter` current until the node stops, logging each
/// change; then reports the node as serving nothing.
pub async fn run(registry: Weak<Registry>, reporter: HealthReporter) {
    let mut ticker = Ticker::new(registry, CHECK_EVERY);
    let mut last: Option<Readiness> = None;
    while let Some(registry) = ticker.next().await {
        let now = readiness(&view(&registry));
        drop(registry);
        if last.as_ref() == Some(&now) {
            continue;
        }
        match &now {
            Readiness::Ready => tracing::info!("ready: every group this node holds has a leader"),
            Readiness::NotReady(why) => tracing::info!(reason = %why, "not ready"),
        }
        let status = match now {
            Readiness::Ready => ServingStatus::Serving,
            Readiness::NotReady(_) => ServingStatus::NotServing,
        };
        reporter.set_service_status(READINESS_SERVICE, status).await;
        last = Some(now);
    }
    // The node is stopping: no longer ready, and the server is going away.
    reporter
        .set_service_status(READINESS_SERVICE, ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initialized(groups: Vec<(u64, Option<u64>)>) -> NodeView {
        NodeView {
            initialized: true,
            stopping: false,
            groups,
        }
    }

    #[test]
    fn a_node_is_ready_when_every_group_it_holds_knows_a_leader() {
        let view = initialized(vec![(0, Some(1)), (1, Some(2)), (2, Some(3))]);
        assert_eq!(readiness(&view), Readiness::Ready);
    }

    #[test]
    fn one_group_without_a_known_leader_makes_the_node_not_ready_and_is_named() {
        let view = initialized(vec![(0, Some(1)), (3, None), (5, None)]);
        let Readiness::NotReady(why) = readiness(&view) else {
            panic!("ready without leaders");
        };
        assert!(why.contains("3, 5"), "{why}");
    }

    #[test]
    fn an_uninitialized_node_is_not_ready() {
        let view = NodeView {
            initialized: false,
            stopping: false,
            groups: Vec::new(),
        };
        let Readiness::NotReady(why) = readiness(&view) else {
            panic!("ready before init");
        };
        assert!(why.contains("cluster init"), "{why}");
    }

    #[test]
    fn an_initialized_node_without_groups_is_not_ready() {
        assert!(matches!(
            readiness(&initialized(Vec::new())),
            Readiness::NotReady(_)
        ));
    }

    #[test]
    fn a_stopping_node_is_not_ready_even_with_leaders() {
        let mut view = initialized(vec![(0, Some(1))]);
        view.stopping = true;
        assert_eq!(
            readiness(&view),
            Readiness::NotReady("the node is stopping".to_owned())
        );
    }
}
