//! Every limit the engine enforces, in one place. Units come last in each name.
//!
//! These are part of the replicated protocol: changing one changes which commands are
//! accepted, so every replica must run with the same values (they are constants for that
//! reason, not configuration).

use crate::types::Micros;

/// Largest amount in minor units (10^15: ten trillion dollars in cents). Small enough that
/// the sum of two amounts never overflows `u64`.
pub const AMOUNT_MAX: u64 = 1_000_000_000_000_000;
const _: () = assert!(AMOUNT_MAX.checked_mul(4).is_some());

pub const REQUEST_ID_BYTES_MAX: usize = 64;
pub const TITLE_BYTES_MAX: usize = 200;
pub const DESCRIPTION_BYTES_MAX: usize = 8 * 1024;
pub const REASON_BYTES_MAX: usize = 500;

/// Bands in a custom increment table.
pub const INCREMENT_BANDS_MAX: usize = 32;

/// Longest scheduled auction, from start to (unextended) end.
pub const AUCTION_DURATION_MAX: Micros = Micros::from_secs(90 * 24 * 3600);
/// How far in the future an auction may be scheduled to start.
pub const START_AHEAD_MAX: Micros = Micros::from_secs(365 * 24 * 3600);

/// Soft close: longest window before the end in which a bid extends it.
pub const SOFT_CLOSE_WINDOW_MAX: Micros = Micros::from_secs(3600);
/// Soft close: longest single extension.
pub const SOFT_CLOSE_EXTENSION_MAX: Micros = Micros::from_secs(3600);
/// Soft close: longest total extension. Also the implicit cap when a policy sets none, so an
/// auction always has a latest possible end.
pub const SOFT_CLOSE_TOTAL_MAX: Micros = Micros::from_secs(7 * 24 * 3600);

/// Bids kept per auction (accepted bids, including voided ones).
pub const BIDS_PER_AUCTION_MAX: usize = 1_000_000;
/// Idempotency records kept per auction (every request that named the auction).
pub const REQUESTS_PER_AUCTION_MAX: usize = 2 * BIDS_PER_AUCTION_MAX;
/// Auctions held by one group, open or closed-but-retained.
pub const AUCTIONS_PER_GROUP_MAX: usize = 1_000_000;
/// Idempotency records kept outside any auction (suspensions, requests that named no
/// existing auction).
pub const GROUP_REQUESTS_MAX: usize = 1_000_000;

/// How long, in cluster time, a closed auction and all of its idempotency records stay in the
/// state after it closes. Postgres keeps the history for good; this bounds the Raft state.
pub const CLOSED_RETENTION: Micros = Micros::from_secs(24 * 3600);
/// How long, in cluster time, an idempotency record that belongs to no auction is kept.
pub const REQUEST_RETENTION: Micros = Micros::from_secs(24 * 3600);
