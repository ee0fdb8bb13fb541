//! The leader's hybrid clock: each group's timestamps follow the wall clock and never repeat
//! or run backwards, across leader changes too (DESIGN.md, Time).
//!
//! Pure: the caller supplies the wall-clock reading ([`super::WallClock`] in the node), so
//! tests control time completely.

use martelo_engine::{Micros, Timestamp};

/// The leader's stamp for the next entry: `max(wall clock, last stamp + 1 µs)`.
///
/// Monotonic per group even when a new leader's wall clock is behind the previous leader's:
/// the new leader starts from the last applied timestamp it finds in its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HybridClock {
    last: Timestamp,
}

impl HybridClock {
    /// A clock that will never stamp at or before `last_applied`.
    pub fn starting_after(last_applied: Timestamp) -> HybridClock {
        HybridClock { last: last_applied }
    }

    /// Stamps the next entry given a wall-clock reading.
    pub fn stamp(&mut self, wall: Timestamp) -> Timestamp {
        let next = wall.max(self.last.plus(Micros(1)));
        self.last = next;
        next
    }

    /// Moves the floor up after applying an entry stamped elsewhere (e.g. by a previous
    /// leader), so the next stamp still comes after it.
    pub fn observe(&mut self, applied: Timestamp) {
        self.last = self.last.max(applied);
    }

    pub fn last(&self) -> Timestamp {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_follow_the_wall_clock_and_never_repeat() {
        let mut clock = HybridClock::starting_after(Timestamp(100));
        assert_eq!(clock.stamp(Timestamp(500)), Timestamp(500));
        assert_eq!(clock.stamp(Timestamp(500)), Timestamp(501));
        assert_eq!(clock.stamp(Timestamp(900)), Timestamp(900));
    }

    #[test]
    fn a_new_leader_whose_clock_is_behind_still_stamps_after_the_last_entry() {
        let mut clock = HybridClock::starting_after(Timestamp(1_000_000));
        assert_eq!(clock.stamp(Timestamp(400_000)), Timestamp(1_000_001));
        clock.observe(Timestamp(2_000_000));
        assert_eq!(clock.stamp(Timestamp(400_000)), Timestamp(2_000_001));
        clock.observe(Timestamp(5));
        assert_eq!(clock.last(), Timestamp(2_000_001));
    }
}
