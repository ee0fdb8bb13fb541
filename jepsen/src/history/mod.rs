//! The history format (`history.jsonl`): what the clients did and saw, one event per line.
//!
//! Every client operation is written as two records: an `invoke` when the client sends it and
//! a completion when the client learns its fate:
//!
//! - `ok`: it took effect, and `value` holds what the system answered (a rejected bid is
//!   `ok` with `"accepted": false`: the engine applied it and said no);
//! - `fail`: it definitely did not take effect (for example refused before it was proposed);
//! - `info`: the outcome is unknown (timeout, "not leader", a crashed client: invariant I9).
//!
//! An invoke that never gets a completion is treated as `info`. A process never has two
//! operations outstanding; after an `info` the harness moves the client to a fresh process id,
//! as Jepsen does, because the old operation may still be in flight.
//!
//! ```text
//! {"index":0,"process":1,"type":"invoke","f":"bid","auction":7,"request":"r-42",
//!  "value":{"bid":{"amount":150,"bidder":1}},"time_ns":1200}
//! {"index":1,"process":1,"type":"ok","f":"bid","auction":7,"request":"r-42",
//!  "value":{"bid_reply":{"accepted":true}},"time_ns":1900}
//! ```
//! (each record is one line in the file; it is wrapped here to fit.)
//!
//! `index` is the record's position in the file, starting at 0, so line = index + 1.
//! `time_ns` is a monotonic clock in nanoseconds; the invoke time must be taken before the
//! request is sent and the completion time after the answer arrives, because the checker
//! orders operations by these times (equal times count as concurrent).
//!
//! Values by function and type:
//!
//! | f                | invoke                 | ok                                      |
//! |------------------|------------------------|-----------------------------------------|
//! | `create_auction` | `{"terms":{..}}`       | none, or `"already_exists"`             |
//! | `bid`            | `{"bid":{..}}`         | `{"bid_reply":{"accepted":bool}}`       |
//! | `read`           | none                   | `{"state":{..}}` or `"not_found"`       |
//! | `close`          | none                   | `{"closed":{"outcome":..}}`, `"not_found"` |
//!
//! `fail` and `info` carry no value; an optional `error` string says why. A `close` is an
//! *observation*: the harness does not close auctions (the group leader proposes `Close`), so
//! it records an invoke at the auction's nominal end time and the `ok` when it sees the
//! outcome. The close took effect somewhere in between, which is exactly what an operation's
//! interval means to the linearizability checker.
//!
//! Raw [`Record`]s are parsed with limits by [`HistoryReader`] and turned into typed, paired
//! [`Operation`]s by [`pair`]. Nothing here panics on bad input: every problem is a
//! [`HistoryError`] or [`PairError`] that names the line.
//!
//! The code is split by stage: `record` holds the line format itself, `io` reads and writes
//! it with limits, and `pairing` turns records into operations and counts them.

mod io;
mod pairing;
mod record;

#[cfg(test)]
mod tests;

pub use io::{HistoryError, HistoryReader, HistoryWriter, ReadLimits, read_history};
pub use pairing::{Call, Completion, Counts, Operation, Output, PairError, count, pair};
pub use record::{
    Amount, AuctionId, AuctionView, BidRequest, BidderId, CloseOutcome, ERROR_NOTE_BYTES_MAX,
    EventType, Function, REQUEST_ID_BYTES_MAX, Record, Terms, TopBid, Value,
};
