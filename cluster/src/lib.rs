//! # martelo-cluster: the martelo node and the `martelo` CLI
//!
//! - [`cli`]: the `martelo` admin commands and `martelo dev`: clap arguments, tables, exit
//!   codes.
//! - [`node`]: the node runtime: Raft groups over gRPC, the client and admin APIs, leader
//!   close timers, the clock-skew guard, metrics and logs.
//! - [`clock`]: the leader's hybrid clock, the clock-skew verdict (pure) and the wall clock
//!   with its test-only offset.
//! - [`demo`]: the engine replay behind `martelo demo`.
//!
//! The client library (retries, topology, admin operations) is the crate `martelo-client` in
//! `client/`, which links no RocksDB; local process clusters are `martelo-devkit` in
//! `devkit/`; shared ids and routing are `martelo-types` in `types/`.

pub mod cli;
pub mod clock;
pub mod demo;
pub mod node;
pub mod signals;
