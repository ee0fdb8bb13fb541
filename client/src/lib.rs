//! # martelo-client: how programs talk to a martelo cluster
//!
//! Used by the `martelo` CLI, the gateway, the fault suite and the load generator. It links
//! no RocksDB: engine payloads are encoded with `martelo_engine::codec`, and the wire types
//! come from `martelo_proto`.
//!
//! ```text
//!   Client::connect(seeds) ── Status ──► Topology (shard count, address book, leaders)
//!   Client::propose / read_auction ──► group_of ─► Topology::route ─► node ─► decide ─► retry
//!   Client::list_auctions ──► listing: group by group ─► Topology::route ─► node ─► decide
//!   Client::subscribe ──► one replica's committed event stream, decoded
//!   Client::propose_meta / read_user / list_users ──► the meta group (group 0): accounts
//!   admin::Admin ──► AdminApi of every node (status, init, membership, leadership)
//! ```
//!
//! Where things are, and where new code goes:
//! - [`retry`]: the retry rule as a pure state machine (same request id, unknown is never
//!   failed);
//! - [`decide`]: what one attempt's answer means (done, stop, or which kind of retry), pure;
//! - [`topology`]: address book, group voters and the leader cache, pure;
//! - [`client`]: [`Client`], the IO shell that drives the three above over tonic;
//! - [`listing`]: listing auctions across groups: filters, the cursor, page decoding, pure;
//! - [`channels`]: one lazily connected gRPC channel per node address;
//! - [`error`]: [`ClientError`] and [`ProposeError`], with stable codes and advice;
//! - [`admin`]: cluster status (with a health verdict and a table), init, node add and
//!   remove, leader transfer, snapshots, auction inspection, the operator's meta actions;
//! - `telemetry` (private): the `martelo_client_*` metrics.
//!
//! A new decision (how to treat a new error code) goes into [`decide`] with a unit test; a
//! new RPC wrapper goes into [`client`] or [`admin`] and reuses their attempt loops.

pub mod admin;
pub mod channels;
pub mod client;
pub mod decide;
pub mod error;
pub mod listing;
pub mod retry;
mod telemetry;
pub mod topology;

pub use client::{
    AuctionRead, Client, ClientOptions, Proposed, ReadConsistency, ResyncReason, SubscribeItem,
    UserKey, UserRead,
};
pub use error::{ClientError, ClientErrorCode, ProposeError};
pub use listing::{AuctionList, GroupPage, ListCursor, ListFilter, ListedAuction};
pub use martelo_types::{GroupId, NodeId, ShardCount};
pub use topology::Target;
