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
/// Idempotency records one user may hold in one auction (rules 2; admins are exempt). A
/// record is an accepted request (a bid, a raise of one's maximum, an edit), so this bounds
/// how much of an auction's bid and record capacity one account can take.
pub const REQUESTS_PER_USER_PER_AUCTION_MAX: usize = 1_000;
/// Auctions held by one group, open or closed-but-retained (and, from rules 2, ids retired
/// until their listing's end).
pub const AUCTIONS_PER_GROUP_MAX: usize = 1_000_000;
/// Idempotency records kept outside any auction (suspensions, requests that named no
/// existing auction).
pub const GROUP_REQUESTS_MAX: usize = 1_000_000;

/// How long, in cluster time, a closed auction and all of its idempotency records stay in the
/// state after it closes. Postgres keeps the history for good; this bounds the Raft state.
pub const CLOSED_RETENTION: Micros = Micros::from_secs(24 * 3600);
/// How long, in cluster time, an idempotency record that belongs to no auction is kept.
pub const REQUEST_RETENTION: Micros = Micros::from_secs(24 * 3600);

// ---- the meta group (group 0): accounts, sessions and cluster facts ----------------------

/// Usernames, after case folding: 3 to 32 characters of `[a-z0-9_.-]`, starting with a
/// letter or a digit. Every allowed character is ASCII, so characters and bytes agree.
pub const USERNAME_CHARS_MIN: usize = 3;
pub const USERNAME_CHARS_MAX: usize = 32;
/// Longest username input accepted before folding. Lower-casing may grow a string, and a
/// long input can never fold into a valid name, so this bounds the work of folding.
pub const USERNAME_INPUT_BYTES_MAX: usize = 4 * USERNAME_CHARS_MAX;
/// Display names: 1 to 64 characters (Unicode scalar values), no control characters.
pub const DISPLAY_NAME_CHARS_MAX: usize = 64;
/// A password hash in PHC string format, computed by the gateway (argon2id). The meta group
/// only stores it.
pub const PASSWORD_HASH_BYTES_MAX: usize = 256;

/// Refresh-token families kept per user, revoked ones included. Creating one more evicts the
/// oldest (a revoked family before any live one).
pub const SESSIONS_PER_USER_MAX: usize = 16;
/// Furthest a refresh token's expiry may lie after the entry that sets it.
pub const REFRESH_LIFETIME_MAX: Micros = Micros::from_secs(90 * 24 * 3600);

/// Accounts held by the meta group.
pub const USERS_MAX: usize = 10_000_000;
/// Idempotency records of meta commands, kept `REQUEST_RETENTION` each.
pub const META_REQUESTS_MAX: usize = 1_000_000;
/// Retired node ids remembered by the meta group.
pub const RETIRED_NODES_MAX: usize = 65_536;
/// Auction shards a cluster may have: defined in `martelo-types` with the routing rule.
pub use martelo_types::SHARD_COUNT_MAX;
/// Most users in one page of a user listing.
pub const USER_PAGE_MAX: usize = 200;

const _: () = assert!(USERNAME_CHARS_MIN >= 1 && USERNAME_CHARS_MIN <= USERNAME_CHARS_MAX);
const _: () = assert!(USERNAME_INPUT_BYTES_MAX >= USERNAME_CHARS_MAX);
const _: () = assert!(SESSIONS_PER_USER_MAX >= 1);
