//! Cluster time (DESIGN.md, Time; I7): every clock the node keeps, and nothing else.
//!
//! ```text
//!   system clock ──► WallClock (+ test-only offset, OffsetFile) ──► wall reading
//!                                                                      │
//!   last applied timestamp ──► HybridClock::stamp(wall reading) ──► entry timestamp
//!   peers' readings ──► ClockSample ──► skew_verdict ──► may this node lead? (ClockGuard)
//! ```
//!
//! - [`guard`]: [`ClockGuard`], the shared verdict of the skew guard that proposers read;
//! - [`hybrid`]: the leader's hybrid clock, which stamps each group's entries (pure);
//! - [`skew`]: the clock-skew verdict from samples of the peers' clocks (pure);
//! - [`wall`]: the wall clock with its test-only offset, and the offset file a fault suite
//!   moves it with: the one place the node reads the system clock for cluster time.
//!
//! The pure parts take readings the caller supplies, so tests control time completely. What
//! does not live here: the tasks that act on time (the skew guard, close timers: `node/`);
//! the engine, which never reads a clock and takes its time from each entry.

pub mod guard;
pub mod hybrid;
pub mod skew;
pub mod wall;

pub use guard::ClockGuard;
pub use hybrid::HybridClock;
pub use skew::{ClockSample, SkewVerdict, skew_verdict};
pub use wall::{OffsetFile, WallClock};
