//! # martelo-cluster: the martelo node and the `martelo` CLI
//!
//! - [`node`]: the node runtime: Raft groups over gRPC, the client and admin APIs, leader
//!   close timers, the clock-skew guard, metrics and logs.
//! - [`clock`]: the leader's hybrid clock and the clock-skew verdict (pure).
//! - [`demo`]: the engine replay behind `martelo demo`.
//!
//! The client library (routing, retries, admin operations, local clusters) is the separate
//! crate `martelo-client` in `cluster/client/`, which links no RocksDB.

pub mod clock;
pub mod demo;
pub mod node;
