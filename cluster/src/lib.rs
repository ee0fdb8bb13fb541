//! # martelo-cluster
//!
//! Will hold the node runtime (Raft groups, gRPC server, leader timers, sink), the client
//! library and the `martelo` CLI. Built so far:
//!
//! - [`routing`]: which group owns an auction (the stable shard hash);
//! - [`clock`]: the leader's hybrid clock and the clock-skew guard;
//! - [`retry`]: the client library's retry rule (same request id, unknown is never failed);
//! - [`demo`]: the engine replay behind `martelo demo`.
//!
//! Pure logic goes in modules like these, callable from tests without sockets; the node's
//! runtime (tracked by the cluster issue) will be a thin shell around them.

pub mod clock;
pub mod demo;
pub mod retry;
pub mod routing;
