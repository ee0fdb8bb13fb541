//! What the load is sent to: anything that proposes an engine request and says what became
//! of it. The cluster client implements it ([`crate::cluster`]); tests use an in-process
//! engine, so the drivers and the report are tested without a network.

use std::future::Future;

use martelo_engine::{RejectCode, Reply, Request};

/// What became of one proposed request, after the client library's retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Committed and applied: the engine's reply. `replayed` when a retry found the first
    /// outcome stored under the same request id.
    Decided { reply: Reply, replayed: bool },
    /// Provably not applied (refused before proposing); `code` is the stable error code.
    Failed { code: String },
    /// Possibly applied, possibly not: the deadline passed with the outcome open (I9).
    Unknown { code: String },
}

/// How a decision is counted in the report.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tally {
    Accepted,
    Rejected(RejectCode),
    Error(String),
    Unknown(String),
}

impl Decision {
    pub fn tally(&self) -> Tally {
        match self {
            Decision::Decided {
                reply: Reply::Accepted(_),
                ..
            } => Tally::Accepted,
            Decision::Decided {
                reply: Reply::Rejected(code),
                ..
            } => Tally::Rejected(*code),
            Decision::Failed { code } => Tally::Error(code.clone()),
            Decision::Unknown { code } => Tally::Unknown(code.clone()),
        }
    }

    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Decision::Decided { reply, .. } => Some(reply),
            Decision::Failed { .. } | Decision::Unknown { .. } => None,
        }
    }

    pub fn replayed(&self) -> bool {
        matches!(self, Decision::Decided { replayed: true, .. })
    }
}

/// Something that takes proposals. Implementations retry internally with the same request
/// id; the bench never retries on its own.
pub trait Target: Send + Sync + 'static {
    fn propose(&self, request: Request) -> impl Future<Output = Decision> + Send;
}

#[cfg(test)]
pub mod fake {
    //! An in-process cluster of one engine, with an adjustable service time per request.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use martelo_engine::{ApplyCtx, Command, Micros, Request, State, Timestamp};

    use super::{Decision, Target};

    /// Applies requests to one engine state, after `service(n)` of (tokio) time for the
    /// `n`-th request (0-based).
    pub struct EngineTarget<F> {
        pub state: Mutex<(State, u64)>,
        pub arrivals: AtomicU64,
        pub service: F,
        pub now: Timestamp,
    }

    impl<F> std::fmt::Debug for EngineTarget<F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("EngineTarget").finish_non_exhaustive()
        }
    }

    impl<F: Fn(u64) -> Duration + Send + Sync + 'static> EngineTarget<F> {
        pub fn new(now: Timestamp, service: F) -> EngineTarget<F> {
            EngineTarget {
                state: Mutex::new((State::new(), 0)),
                arrivals: AtomicU64::new(0),
                service,
                now,
            }
        }
    }

    impl<F: Fn(u64) -> Duration + Send + Sync + 'static> Target for EngineTarget<F> {
        async fn propose(&self, request: Request) -> Decision {
            let arrival = self.arrivals.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep((self.service)(arrival)).await;
            // Log indexes are assigned in apply order, as a Raft log would.
            let mut guard = self.state.lock().expect("not poisoned");
            guard.1 += 1;
            let ctx = ApplyCtx {
                log_index: guard.1,
                timestamp: self.now.plus(Micros(guard.1)),
            };
            let outcome = guard.0.apply(ctx, &Command::Request(request));
            Decision::Decided {
                reply: outcome.reply,
                replayed: outcome.replayed,
            }
        }
    }
}
