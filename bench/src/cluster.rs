//! The real target: a martelo cluster through `martelo-client`, running already (`--addr`)
//! or started here (`--local`, three `martelo node` processes in a temporary directory).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use martelo_client::{Client, ClientOptions, ProposeError};
use martelo_devkit::{LocalCluster, LocalClusterConfig};
use martelo_engine::Request;

use crate::target::{Decision, Target};

/// Nodes of the `--local` cluster.
pub const LOCAL_NODES: usize = 3;

/// Proposals through the client library, which follows leaders and retries with the same
/// request id until its deadline.
#[derive(Clone, Debug)]
pub struct ClusterTarget {
    client: Client,
}

impl ClusterTarget {
    /// Connects through the first reachable seed; `request_timeout` bounds each proposal
    /// with its retries.
    pub async fn connect(seeds: &[String], request_timeout: Duration) -> anyhow::Result<Self> {
        let options = ClientOptions {
            deadline: request_timeout,
            ..ClientOptions::default()
        };
        let client = Client::connect(seeds, options)
            .await
            .with_context(|| format!("cannot reach the cluster at {}", seeds.join(",")))?;
        Ok(ClusterTarget { client })
    }
}

/// How a client outcome is counted: engine replies are decisions; a proposal that was
/// provably not applied is an error under the node's code; anything else is unknown, under
/// the code of the last thing that went wrong (`deadline_exceeded`, `transport`, ...).
pub fn decision_of(result: Result<martelo_client::Proposed, ProposeError>) -> Decision {
    match result {
        Ok(proposed) => Decision::Decided {
            reply: proposed.reply,
            replayed: proposed.replayed,
        },
        Err(ProposeError::NotApplied { code, .. }) => Decision::Failed {
            code: code.as_code_str().to_owned(),
        },
        Err(ProposeError::Unknown { last_error, .. }) => Decision::Unknown {
            code: last_error.code().as_str().to_owned(),
        },
    }
}

impl Target for ClusterTarget {
    async fn propose(&self, request: Request) -> Decision {
        decision_of(self.client.propose(request).await)
    }
}

/// A local cluster and the directory it lives in. Fields drop in order: the nodes are
/// killed before their data directory is removed.
#[derive(Debug)]
pub struct LocalRun {
    pub cluster: LocalCluster,
    pub dir: tempfile::TempDir,
}

impl LocalRun {
    /// Starts [`LOCAL_NODES`] nodes of `binary` with metrics on (and their sink writing to
    /// `postgres`, when given), and initialises them.
    pub async fn start(binary: &Path, postgres: Option<&str>) -> anyhow::Result<LocalRun> {
        let dir = tempfile::Builder::new()
            .prefix("martelo-bench-")
            .tempdir()
            .context("cannot create a temporary directory for the local cluster")?;
        let mut config = LocalClusterConfig::new(binary, dir.path());
        config.nodes = LOCAL_NODES;
        config.metrics = true;
        // Ctrl-C in the terminal then reaches the bench alone, which finishes its report and
        // stops the nodes itself.
        config.own_process_group = true;
        if let Some(url) = postgres {
            config.extra_args = vec!["--postgres".to_owned(), url.to_owned()];
        }
        let cluster = LocalCluster::start(config)
            .await
            .with_context(|| format!("cannot start a local cluster from {}", binary.display()))?;
        cluster
            .init()
            .await
            .context("the local cluster did not initialise")?;
        Ok(LocalRun { cluster, dir })
    }

    pub fn api_addresses(&self) -> Vec<String> {
        self.cluster.api_addresses()
    }

    pub fn metrics_addresses(&self) -> Vec<String> {
        self.cluster
            .nodes()
            .into_iter()
            .filter_map(|node| node.metrics_address)
            .collect()
    }

    /// Stops every node with SIGTERM (SIGKILL after the supervisor's timeout).
    pub async fn stop(self) {
        let _ = self.cluster.stop_all().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use martelo_client::ClientError;
    use martelo_engine::{RejectCode, Reply, Timestamp};
    use martelo_proto::ErrorCode;

    #[test]
    fn client_outcomes_map_to_decisions_errors_and_unknowns() {
        let proposed = martelo_client::Proposed {
            reply: Reply::Rejected(RejectCode::BidTooLow),
            log_index: 9,
            log_term: 1,
            timestamp: Timestamp(1),
            replayed: true,
            decided_without_log: false,
            attempts: 2,
            node: martelo_client::NodeId(1),
        };
        assert_eq!(
            decision_of(Ok(proposed)),
            Decision::Decided {
                reply: Reply::Rejected(RejectCode::BidTooLow),
                replayed: true
            }
        );
        let refused = ProposeError::NotApplied {
            code: ErrorCode::Overloaded,
            message: "queue full".into(),
        };
        assert_eq!(
            decision_of(Err(refused)),
            Decision::Failed {
                code: "overloaded".into()
            }
        );
        let unknown = ProposeError::Unknown {
            attempts: 3,
            last_error: ClientError::Deadline {
                deadline: Duration::from_secs(5),
                attempts: 3,
                last: "timeout".into(),
            },
        };
        assert_eq!(
            decision_of(Err(unknown)),
            Decision::Unknown {
                code: "deadline_exceeded".into()
            }
        );
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_a_clear_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        let error = ClusterTarget::connect(std::slice::from_ref(&address), Duration::from_secs(2))
            .await
            .expect_err("nothing listens there");
        let text = format!("{error:#}");
        assert!(text.contains("cannot reach the cluster at"), "{text}");
        assert!(text.contains(&address), "{text}");
    }
}
