//! # martelo-types: the vocabulary every martelo crate shares
//!
//! A leaf crate: no IO, no async, no RocksDB, no gRPC. The engine, the node, the client
//! library, the dev kit, the gateway, the bench and the fault suite all name auctions, groups
//! and nodes with these types, route auctions with [`group_of`], and parse node addresses with
//! [`address`], so that there is one definition of each and one set of checks.
//!
//! - [`ids`]: [`AuctionId`], [`GroupId`] (0 is the meta group) and [`NodeId`];
//! - [`shards`]: [`ShardCount`] and [`group_of`], the routing rule that never changes;
//! - [`address`]: `HOST:PORT` and `ID=HOST:PORT` parsing and formatting;
//! - [`SHARD_COUNT_MAX`] and the other limits shared across crates;
//! - [`metric_names`]: the names of metrics one crate exports and another reads back.
//!
//! What does not live here: engine semantics (prices, bids, accounts: `martelo-engine`),
//! anything that talks to a node (`martelo-client`), wire types (`martelo-proto`).

pub mod address;
pub mod ids;
pub mod metric_names;
pub mod shards;

pub use address::{
    AddressError, NodeAddress, format_peers, parse_address, parse_node, parse_nodes,
};
pub use ids::{AuctionId, GroupId, NodeId};
pub use shards::{InvalidShardCount, SHARD_COUNT_MAX, ShardCount, group_of};
