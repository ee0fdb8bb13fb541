//! The write path of one group: a queue in front of openraft that batches proposals.
//!
//! Every command for the group (client requests and the leader's `Close`s) goes into one
//! bounded queue. A single task drains whatever is waiting (up to [`BATCH_ENTRIES_MAX`]),
//! stamps each command with the group's hybrid clock in queue order, and hands the batch to
//! openraft's `client_write_many`, which appends it with one storage write, so a hot auction
//! pays one fsync round per batch rather than per bid. The task does not wait for the batch to
//! commit: a forwarder answers each proposer as its entry is applied, while the next batch is
//! already on its way (pipelining).

use openraft::async_runtime::WatchReceiver as _;
use std::time::Instant;
use tracing::Instrument as _;

use futures::StreamExt;
use martelo_engine::{Command, GroupId, Outcome, Timestamp};
use martelo_proto::ErrorCode;
use martelo_raft_store::{Stamped, StateReader};
use tokio::sync::{mpsc, oneshot};

use super::Raft;
use super::metric_names::{PROPOSE_BATCH_ENTRIES, PROPOSE_SECONDS};
use crate::clock::{ClockGuard, HybridClock, WallClock};

/// Most commands in one `client_write_many` call.
pub const BATCH_ENTRIES_MAX: usize = 1024;
/// Most commands waiting in a group's queue; beyond it proposals fail with `overloaded`.
pub const QUEUE_ENTRIES_MAX: usize = 16 * 1024;

/// A committed and applied command.
#[derive(Debug)]
pub struct Proposed {
    pub log_index: u64,
    pub log_term: u64,
    pub timestamp: Timestamp,
    pub outcome: Outcome,
}

/// Why a proposal has no outcome.
#[derive(Debug)]
pub enum ProposeFailure {
    /// Not proposed: this node does not lead the group.
    NotLeader(martelo_proto::NotLeader),
    /// Not proposed, for the reason given (`overloaded`, `unavailable`, `clock_skew`).
    NotProposed { code: ErrorCode, message: String },
    /// Proposed, but whether it commits is unknown (leadership changed, node stopping).
    Unknown(String),
}

#[derive(Debug)]
struct Pending {
    command: Command,
    traceparent: Option<String>,
    queued: Instant,
    reply: oneshot::Sender<Result<Proposed, ProposeFailure>>,
}

/// Handle on a group's proposal queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts the group's batching task, which stamps with `wall` under the group's hybrid
    /// clock and proposes nothing while `clock_guard` says this node may not lead. The task
    /// ends when the last handle on the queue is dropped.
    pub fn start(
        group: GroupId,
        raft: Raft,
        reader: StateReader,
        wall: WallClock,
        clock_guard: ClockGuard,
    ) -> Proposer {
        let (queue, receiver) = mpsc::channel(QUEUE_ENTRIES_MAX);
        let batcher = Batcher {
            group,
            raft,
            reader,
            wall,
            clock_guard,
            clock: HybridClock::starting_after(Timestamp(0)),
        };
        tokio::spawn(batcher.run(receiver));
        Proposer { queue }
    }

    /// Queues `command` and waits for its outcome. Dropping the future does not withdraw a
    /// command already queued: it may still commit (I9).
    pub async fn propose(
        &self,
        command: Command,
        traceparent: Option<String>,
    ) -> Result<Proposed, ProposeFailure> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            command,
            traceparent,
            queued: Instant::now(),
            reply,
        };
        if let Err(error) = self.queue.try_send(pending) {
            let (code, message) = match error {
                mpsc::error::TrySendError::Full(_) => (
                    ErrorCode::Overloaded,
                    format!(
                        "the group's proposal queue is full ({QUEUE_ENTRIES_MAX}); retry after a short backoff"
                    ),
                ),
                mpsc::error::TrySendError::Closed(_) => (
                    ErrorCode::Unavailable,
                    "the group is shutting down".to_string(),
                ),
            };
            return Err(ProposeFailure::NotProposed { code, message });
        }
        answer.await.unwrap_or_else(|_| {
            Err(ProposeFailure::Unknown(
                "the node stopped before the command's outcome was known".into(),
            ))
        })
    }
}

struct Batcher {
    group: GroupId,
    raft: Raft,
    reader: StateReader,
    wall: WallClock,
    clock_guard: ClockGuard,
    clock: HybridClock,
}

impl Batcher {
    async fn run(mut self, mut receiver: mpsc::Receiver<Pending>) {
        let group_label = self.group.0.to_string();
        let batch_entries =
            metrics::histogram!(PROPOSE_BATCH_ENTRIES, "group" => group_label.clone());
        let mut batch = Vec::with_capacity(BATCH_ENTRIES_MAX);
        while receiver.recv_many(&mut batch, BATCH_ENTRIES_MAX).await > 0 {
            batch_entries.record(batch.len() as f64);
            let pending = std::mem::take(&mut batch);
            if !self.clock_guard.may_lead() {
                refuse(pending, || ProposeFailure::NotProposed {
                    code: ErrorCode::ClockSkew,
                    message: "this node's clock is off from its peers by more than the bound; \
                              it refuses to lead (see its logs)"
                        .into(),
                });
                continue;
            }
            if !self.raft.is_leader() {
                let hint = leader_hint(self.group, &self.raft);
                refuse(pending, || ProposeFailure::NotLeader(hint.clone()));
                continue;
            }
            // Stamp after everything applied so far, so time never runs backwards in the
            // group even across leader changes (I7); the engine clamps as a second guard.
            if let Ok(last) = self.reader.read(|state, _| state.last_applied().1) {
                self.clock.observe(last);
            }
            let wall = self.wall.now();
            let mut stamps = Vec::with_capacity(pending.len());
            let entries: Vec<Stamped> = pending
                .iter()
                .map(|pending| {
                    let timestamp = self.clock.stamp(wall);
                    stamps.push(timestamp);
                    Stamped {
                        timestamp,
                        command: pending.command.clone(),
                        traceparent: pending.traceparent.clone(),
                    }
                })
                .collect();
            // One span for the batch: the first traced proposal's child, linked to the rest.
            let span = tracing::info_span!(
                "raft.batch",
                group = self.group.0,
                entries = entries.len(),
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
            );
            if martelo_trace::exporting() {
                martelo_trace::adopt_many(
                    &span,
                    pending.iter().map(|pending| pending.traceparent.as_deref()),
                );
            }
            match self.raft.client_write_many(entries).instrument(span).await {
                Err(fatal) => {
                    let message = format!("the group's Raft stopped: {fatal}");
                    refuse(pending, || ProposeFailure::NotProposed {
                        code: ErrorCode::Unavailable,
                        message: message.clone(),
                    });
                }
                Ok(results)
                    if martelo_engine::planted::active(
                        martelo_engine::planted::Bug::AckBeforeCommit,
                    ) =>
                {
                    self.answer_before_commit(pending, &stamps);
                    tokio::spawn(results.for_each(|_| async {}));
                }
                Ok(results) => {
                    let latency =
                        metrics::histogram!(PROPOSE_SECONDS, "group" => group_label.clone());
                    tokio::spawn(forward(
                        results,
                        pending,
                        stamps,
                        self.group,
                        self.raft.clone(),
                        latency,
                    ));
                }
            }
        }
    }
}

impl Batcher {
    /// Planted bug `ack-before-commit` (test builds only): answers every proposer at once
    /// with the outcome of applying its command to a copy of the applied state, before the
    /// entry commits or even reaches a quorum.
    fn answer_before_commit(&self, pending: Vec<Pending>, stamps: &[Timestamp]) {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let next_index = metrics.last_log_index.unwrap_or(0) + 1;
        let Ok(mut state) = self.reader.read(|state, _| state.clone()) else {
            return refuse(pending, || {
                ProposeFailure::Unknown("cannot read the state to speculate on".into())
            });
        };
        for (offset, (pending, timestamp)) in pending.into_iter().zip(stamps).enumerate() {
            let log_index = (next_index + offset as u64).max(state.last_applied().0 + 1);
            let context = martelo_engine::ApplyCtx {
                log_index,
                timestamp: *timestamp,
            };
            let outcome = state.apply(context, &pending.command);
            let _ = pending.reply.send(Ok(Proposed {
                log_index,
                log_term: metrics.current_term,
                timestamp: *timestamp,
                outcome,
            }));
        }
    }
}

type WriteResults = futures::stream::BoxStream<
    'static,
    Result<
        openraft::raft::WriteResult<martelo_raft_store::TypeConfig>,
        openraft::errors::Fatal<martelo_raft_store::TypeConfig>,
    >,
>;

/// Answers each proposer, in log order, as its entry is applied.
async fn forward(
    mut results: WriteResults,
    pending: Vec<Pending>,
    stamps: Vec<Timestamp>,
    group: GroupId,
    raft: Raft,
    latency: metrics::Histogram,
) {
    for (pending, timestamp) in pending.into_iter().zip(stamps) {
        let answer = match results.next().await {
            Some(Ok(Ok(written))) => match written.response.outcome {
                Some(outcome) => Ok(Proposed {
                    log_index: written.log_id.index(),
                    log_term: written.log_id.committed_leader_id().term,
                    timestamp,
                    outcome,
                }),
                None => Err(ProposeFailure::Unknown(
                    "the entry was applied without an engine outcome".into(),
                )),
            },
            // Rejected before it was appended: routing information, nothing proposed.
            Some(Ok(Err(openraft::errors::ClientWriteError::ForwardToLeader(_)))) => {
                Err(ProposeFailure::NotLeader(leader_hint(group, &raft)))
            }
            Some(Ok(Err(error))) => Err(ProposeFailure::Unknown(format!(
                "leadership changed after the command was proposed; it may still commit: {error}"
            ))),
            Some(Err(fatal)) => Err(ProposeFailure::Unknown(format!(
                "the group's Raft stopped after the command was proposed: {fatal}"
            ))),
            None => Err(ProposeFailure::Unknown(
                "no answer for the proposed command".into(),
            )),
        };
        latency.record(pending.queued.elapsed().as_secs_f64());
        let _ = pending.reply.send(answer);
    }
}

fn refuse(pending: Vec<Pending>, failure: impl Fn() -> ProposeFailure) {
    for pending in pending {
        let _ = pending.reply.send(Err(failure()));
    }
}

/// The leader `raft` knows of, with its address and term.
pub fn leader_hint(group: GroupId, raft: &Raft) -> martelo_proto::NotLeader {
    let metrics = raft.metrics().borrow_watched().clone();
    let leader_id = metrics.current_leader;
    let leader_address = leader_id
        .and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|node| node.addr.clone())
        })
        .unwrap_or_default();
    martelo_proto::NotLeader {
        group_id: group.0,
        leader_id,
        leader_address,
        term: metrics.current_term,
    }
}
