//! Deliberate bugs for the fault suite's proof that its checkers can fail (issue 5).
//!
//! They exist only in builds with the `planted-bugs` feature; [`active`] is a constant
//! `false` otherwise, so the branches that use it compile away and a normal build cannot
//! plant anything. A test build turns one bug on for the whole process with [`plant`]
//! (the node's hidden `--plant-bug` flag) before the engine runs.
//!
//! The feature compiles only with debug assertions on (the dev and test profiles): with it,
//! a build without them (`--release`, the bench profile) stops at a `compile_error!`, so no
//! release binary can hold a planted bug.
//!
//! This process-wide switch is the engine's only global. It is set once, before any command
//! is applied, and never changes afterwards, so every replica of a test cluster started with
//! the same flag still applies commands deterministically.

// Release builds turn debug assertions off; a planted bug must never reach one.
#[cfg(all(feature = "planted-bugs", not(debug_assertions)))]
compile_error!(
    "the `planted-bugs` feature plants deliberate bugs for the fault suite and is allowed only \
     in builds with debug assertions (the dev and test profiles): build without \
     `--features planted-bugs`, or without `--release`"
);

/// The bugs that can be planted. The engine plants the first two, the node the next two,
/// and the sink (`martelo-sink`'s `write_batch`) the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bug {
    /// The engine ignores its idempotency records: a resent request runs again (breaks I2).
    SkipDedupe,
    /// The engine accepts bids on closed and ended auctions (breaks I4).
    BidAfterClose,
    /// The leader answers a proposal before it commits, with a speculative outcome (I1).
    AckBeforeCommit,
    /// A node that believes it leads serves linearizable reads from its own state, without
    /// confirming leadership, so a deposed leader serves stale reads (I8).
    StaleRead,
    /// The sink commits a batch's cursor move in its own transaction, before the batch's
    /// rows, so a Postgres crash (or a node crash) between the two commits loses the rows
    /// for good: the sink resumes after the cursor (breaks I6).
    SinkCursorOutsideTx,
}

impl Bug {
    pub const ALL: [Bug; 5] = [
        Bug::SkipDedupe,
        Bug::BidAfterClose,
        Bug::AckBeforeCommit,
        Bug::StaleRead,
        Bug::SinkCursorOutsideTx,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::SkipDedupe => "skip-dedupe",
            Bug::BidAfterClose => "bid-after-close",
            Bug::AckBeforeCommit => "ack-before-commit",
            Bug::StaleRead => "stale-read",
            Bug::SinkCursorOutsideTx => "sink-cursor-outside-tx",
        }
    }

    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|bug| bug.name() == name)
    }
}

#[cfg(feature = "planted-bugs")]
static PLANTED: std::sync::OnceLock<Bug> = std::sync::OnceLock::new();

/// Plants `bug` for the rest of the process. Returns false if another bug was planted first.
#[cfg(feature = "planted-bugs")]
pub fn plant(bug: Bug) -> bool {
    PLANTED.set(bug).is_ok() || PLANTED.get() == Some(&bug)
}

/// Whether `bug` is planted. Always false without the `planted-bugs` feature.
#[inline]
pub fn active(bug: Bug) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        PLANTED.get() == Some(&bug)
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = bug;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for bug in Bug::ALL {
            assert_eq!(Bug::from_name(bug.name()), Some(bug));
        }
        assert_eq!(Bug::from_name("none"), None);
    }

    #[cfg(not(feature = "planted-bugs"))]
    #[test]
    fn nothing_is_planted_without_the_feature() {
        assert!(Bug::ALL.into_iter().all(|bug| !active(bug)));
    }
}
