//! # martelo-cluster
//!
//! Will hold the node runtime (Raft groups, gRPC server, leader timers, sink), the client
//! library and the `martelo` CLI. Today it holds only [`demo`], the engine replay behind
//! `martelo demo`; the node itself is tracked by the cluster issue.

pub mod demo;
