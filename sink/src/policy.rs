//! The sink loop's decisions, as plain functions: how far a batch lets the cursor move, and
//! how long to wait after a failure.

use std::time::Duration;

/// Records asked of the event log per batch; also bounds one transaction's size.
pub const BATCH_RECORDS_MAX: usize = 1024;

/// The index the cursor may move to after writing `records_read` records ending at
/// `last_record` (if any), read from `from` after observing `applied` as the group's applied
/// index. A short read saw everything up to `applied`: entries without events leave no
/// record, so the cursor moves past them too. A full read may have stopped early.
pub fn covered_index(
    from: u64,
    applied: u64,
    records_read: usize,
    last_record: Option<u64>,
    max_records: usize,
) -> u64 {
    let before_from = from.saturating_sub(1);
    match last_record {
        Some(last) if records_read >= max_records => last,
        Some(last) => last.max(applied),
        None => applied.max(before_from),
    }
}

/// Bounded exponential back-off: 100 ms, doubling, at most 10 s. Reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(100);
    pub const MAX: Duration = Duration::from_secs(10);

    pub fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The wait before the next attempt; each call doubles the following one, up to MAX.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_read_covers_everything_applied_even_entries_without_events() {
        assert_eq!(covered_index(11, 40, 3, Some(30), 1024), 40);
        assert_eq!(covered_index(11, 40, 0, None, 1024), 40);
    }

    #[test]
    fn a_full_read_covers_only_up_to_its_last_record() {
        assert_eq!(covered_index(11, 5000, 1024, Some(2000), 1024), 2000);
    }

    #[test]
    fn the_cursor_never_moves_back() {
        assert_eq!(covered_index(11, 3, 0, None, 1024), 10);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..10).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays[0], Backoff::FIRST);
        assert_eq!(delays[1], Backoff::FIRST * 2);
        assert!(delays.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(*delays.last().unwrap(), Backoff::MAX);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Backoff::FIRST);
    }
}
