//! The clock guard's verdict, shared: may this node lead? (I7)
//!
//! The skew guard (`node/skew.rs`) decides it from samples of the peers' clocks
//! ([`super::skew_verdict`]) and sets it; each group's proposer, the lease reads and the
//! leader balancer read it. It is a handle of its own, so that what reads it needs neither
//! the node's registry nor the skew guard.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this node's clock agrees with its peers well enough to lead. Cheap to clone; every
/// clone sees the same flag. It starts out agreeing: a node knows nothing against its clock
/// until the first samples.
#[derive(Clone, Debug)]
pub struct ClockGuard {
    may_lead: Arc<AtomicBool>,
}

impl Default for ClockGuard {
    fn default() -> ClockGuard {
        ClockGuard {
            may_lead: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl ClockGuard {
    /// False while this node's clock is off from its peers by more than the bound.
    pub fn may_lead(&self) -> bool {
        self.may_lead.load(Ordering::Acquire)
    }

    /// Records the latest verdict; returns the one before it.
    pub fn set(&self, may_lead: bool) -> bool {
        self.may_lead.swap(may_lead, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_the_verdict_and_set_returns_the_previous_one() {
        let guard = ClockGuard::default();
        let reader = guard.clone();
        assert!(reader.may_lead(), "a node starts out agreeing");
        assert!(guard.set(false));
        assert!(!reader.may_lead());
        assert!(!guard.set(true));
        assert!(reader.may_lead());
    }
}
