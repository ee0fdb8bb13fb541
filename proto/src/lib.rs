//! # martelo-proto: the wire contract between martelo processes
//!
//! Protobuf messages and gRPC services (prost + tonic 0.14), generated at build time from
//! `proto/martelo/v1/*.proto` by `build.rs` (pure Rust, no system `protoc`). This crate holds
//! only the contract: the generated code, its limits and small pure helpers. Servers and
//! clients live in `cluster/`.
//!
//! ```text
//!   gateway / jepsen / bench ──ClientApi──▶ node ──(leader)──▶ openraft group ──▶ engine
//!   martelo CLI ─────────────AdminApi────▶ node
//!   node ◀──────────────RaftTransport─────▶ node   (one HTTP/2 connection per peer pair,
//!                                                   every group multiplexed by group_id)
//! ```
//!
//! What is where:
//! - [`v1`]: everything generated from package `martelo.v1`, re-exported at the crate root.
//!   - `common.proto`: [`ErrorCode`], [`ApiError`], [`NotLeader`], [`Node`].
//!   - `raft.proto`: [`raft_transport_server::RaftTransport`] and its client. openraft
//!     messages travel as opaque `bytes` in the raft-store codec.
//!   - `client.proto`: [`client_api_server::ClientApi`] (`Propose`, `ReadAuction`,
//!     `ListAuctions`, `Subscribe`, and the meta group's `ReadUser`, `ListUsers`) and its
//!     client. Engine commands, replies and events travel as opaque
//!     `bytes` in the engine codec.
//!   - `admin.proto`: [`admin_api_server::AdminApi`] and its client.
//! - [`limits`]: message and chunk size limits; [`services`] applies them to every generated
//!   server and client, so use its constructors rather than `XServer::new`.
//! - [`error_code`]: stable strings and retry semantics of [`ErrorCode`]; [`ApiError`]
//!   constructors.
//! - [`traceparent`]: the W3C `traceparent` newtype checked at the edge.
//! - [`channel`]: the one way to build a channel to a node (timeouts, nodelay, keepalive,
//!   windows), used by every process that dials a node.
//!
//! Where new things go: a new message or field goes into the `.proto` file of its service
//! (shared types into `common.proto`), following the compatibility rules in `README.md`:
//! field numbers and enum values are never reused, enums only grow at the end. A new `.proto`
//! file is also listed in `build.rs`. Pure helpers on generated types go into a module here
//! with their unit tests; anything that does IO goes to `cluster/`.

pub mod channel;
pub mod error_code;
pub mod limits;
pub mod services;
pub mod traceparent;

/// Code generated from package `martelo.v1`. Field docs come from the `.proto` comments.
#[allow(
    // Generated code: its shape is decided by prost and tonic, not by us.
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations,
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags
)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/martelo.v1.rs"));
}

pub use limits::*;
pub use traceparent::{Traceparent, TraceparentError};
pub use v1::*;
