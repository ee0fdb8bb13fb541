//! # martelo-engine: the auction rules as a pure state machine
//!
//! Every business rule of an auction lives in this crate and nowhere else. Each Raft group
//! applies its committed log through [`State::apply`]:
//!
//! ```text
//!   committed entry ──► ApplyCtx { log_index, timestamp } + Command
//!                                   │
//!                           State::apply (pure)
//!                                   │
//!                   Outcome { reply, events, replayed }
//!                      │                   │
//!          reply to the proposer    events to the event log, watchers and the sink
//! ```
//!
//! The engine reads no clock, randomness, environment or IO, and keeps every collection
//! ordered, so the same log gives the same state, byte for byte, on every replica
//! (invariant I5). Time arrives inside [`ApplyCtx`]. The crate's `clippy.toml` forbids the
//! usual ways of breaking this.
//!
//! Where new code goes:
//! - a value type or limit: [`types`], [`limits`];
//! - a listing rule: [`spec`];
//! - a new command: [`command::Action`], then its rule in `state.rs` (`State::execute`), its
//!   reply in [`outcome::Accepted`] and any rejection in [`outcome::RejectCode`] (append only:
//!   the codes are a wire contract);
//! - a new event: [`outcome::AuctionEventKind`];
//! - anything about accounts, sessions or cluster facts: the meta group's state machine,
//!   [`meta`] (group 0 applies [`Command::Meta`]; its state is [`State::meta`]).
//!
//! The rules themselves, with the choices made where the product brief was silent, are
//! written up in `docs/ENGINE.md`.

pub mod codec;
pub mod command;
mod digest;
pub mod limits;
pub mod meta;
pub mod outcome;
pub mod planted;
pub mod spec;
mod state;
pub mod types;
mod view;

#[cfg(test)]
mod tests;

pub use command::{Action, Actor, ApplyCtx, Command, Request, Role};
pub use meta::{
    MetaAccepted, MetaAction, MetaActor, MetaCommand, MetaEvent, MetaEventKind, MetaRejectCode,
    MetaState,
};
pub use outcome::{
    Accepted, AuctionEvent, AuctionEventKind, AuctionResult, Event, Listing, Outcome, RejectCode,
    Reply, SaleKind, UnsoldReason,
};
pub use spec::{AuctionSpec, IncrementBand, IncrementPolicy, SoftClose, SoftCloseMode};
pub use state::{
    Auction, Bid, Capacity, Closed, InvariantViolation, Leader, RulesVersion, State, StateDigest,
};
pub use types::{
    Amount, AuctionId, BidId, Currency, Description, GroupId, Micros, ParseError, Reason,
    RequestId, Timestamp, Title, UserId,
};
pub use view::{
    AuctionFilter, AuctionPage, AuctionPhase, AuctionQuery, AuctionSummary, AuctionView, PublicBid,
};
