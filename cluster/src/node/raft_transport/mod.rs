//! The Raft transport: how the openraft instances of one group, on different nodes, reach
//! each other. One gRPC service (`RaftTransport` in `raft.proto`) serves every group of a
//! node, over one HTTP/2 connection per peer pair; openraft messages travel as opaque bytes
//! in the codec's wire format (`martelo_raft_store::codec::wire`, peer payloads), inside an
//! envelope that names the group, both nodes and the wire version. A node serves any wire
//! version it reads and answers in it; each payload is decoded with its own limit
//! (`RAFT_MESSAGE_BYTES_MAX` for an append batch, `RAFT_CONTROL_PAYLOAD_BYTES_MAX` for the
//! rest, `SNAPSHOT_CHUNK_BYTES_MAX` a snapshot chunk).
//!
//! ```text
//!          sending node (client side)                   receiving node (server side)
//!
//!   group's Raft                                      group's Raft (found by GroupLookup)
//!     │ RaftNetworkV2                                   ▲
//!     ▼                                                 │
//!   Network ── vote, pre_vote, append, transfer ──────► RaftTransportService
//!     │        (unary)                                  │  (server.rs)
//!     ├────── StreamAppend pipeline ──────────────────► ├─ server_append.rs
//!     │       (client_append.rs)                        │
//!     └────── InstallSnapshot stream ─────────────────► └─ snapshot_recv.rs
//!             (snapshot_send.rs)
//!     all over PeerChannels (peers.rs): one lazily connected channel per peer address
//! ```
//!
//! What lives where:
//! - Client side (this node sends): `peers.rs` (the channel pool and dial overrides),
//!   `client.rs` (openraft's [`NetworkFactory`] and [`Network`]: unary RPCs and heartbeats),
//!   `client_append.rs` (the `StreamAppend` pipeline), `snapshot_send.rs`, and
//!   `client_failure.rs` (how an outcome becomes openraft's `Unreachable`, `Timeout` or
//!   `Network`).
//! - Server side (a peer sends to this node): `server.rs` ([`RaftTransportService`],
//!   [`GroupLookup`], the unary RPCs), `server_append.rs`, `snapshot_recv.rs`.
//! - Both sides: `wire.rs` (the envelope and its check, the one shape of every reply) and
//!   `metrics.rs` (metric names).
//!
//! What does not live here: the messages themselves (`martelo-proto`), the codec and the
//! snapshot store (`martelo-raft-store`), the node's groups (`registry.rs` implements
//! [`GroupLookup`] and owns the node's [`PeerChannels`]), and the gRPC server the service is
//! added to (`node/mod.rs`).
//!
//! The types re-exported below are public so that the transport can be run in-process
//! without a whole node: `cluster/tests/raft_transport.rs` starts Raft groups over it on
//! loopback.

mod client;
mod client_append;
mod client_failure;
mod metrics;
mod peers;
mod server;
mod server_append;
mod snapshot_recv;
mod snapshot_send;
mod wire;

pub use client::{Network, NetworkFactory};
pub use peers::PeerChannels;
pub use server::{GroupLookup, RaftTransportService};

pub(crate) use self::metrics::describe_metrics;
