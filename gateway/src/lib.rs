//! # martelo-gateway: the front door for bidders, sellers and admins
//!
//! A stateless HTTP + WebSocket server on axum. Any number of gateways serve one cluster:
//! everything they know comes from the cluster through `martelo-client` (accounts and
//! sessions from the meta group, auctions from their groups) or from the signed tokens they
//! issue. It links no RocksDB and no openraft.
//!
//! ```text
//!   bidder ──HTTP /v1/…──► http::router ─► auth (token → Principal) ─► martelo_client::Client ─► leader
//!   bidder ──WS /v1/ws──► ws::session ─► subscribe / bid ─┐
//!                                                        ├─ fanout::Hub ◄── one Subscribe per group
//!                                                        └─ follow::MetaFollower ◄── Subscribe(group 0)
//! ```
//!
//! Where things live:
//! - [`config`]: [`GatewayConfig`] (flags and a TOML file), every limit with its default;
//! - [`error`]: [`Problem`], RFC 9457 problem+json with stable machine-readable codes;
//! - [`state`]: [`AppState`], what every handler shares;
//! - [`auth`]: access tokens (key ring, pinned algorithm), refresh tokens, password hashing
//!   behind a semaphore, the `Principal` extractor, cookies and CSRF;
//! - [`http`]: the `/v1` routes (accounts, sessions, auctions, bids, admin), OpenAPI;
//! - [`ws`]: the `/v1/ws` protocol and one task per connection;
//! - [`fanout`]: one committed-event subscription per group, fanned out by auction, with a
//!   bounded replay buffer per auction;
//! - [`follow`]: follows the meta group's committed events (suspensions, revoked sessions)
//!   so that they take effect on open sockets and new bids within a second;
//! - [`server`]: [`serve`] and [`serve_on`]: start-up and graceful shutdown;
//! - `telemetry`: the `martelo_gateway_*` metric names;
//! - [`web`]: the web UI's static files (`gateway/web/`), embedded and served;
//! - `fuzzing` (feature `fuzzing` only): private parsers exposed to the fuzz targets in
//!   `fuzz/`.

pub mod auth;
pub mod config;
pub mod error;
pub mod fanout;
pub mod follow;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod server;
pub mod state;
mod telemetry;
pub mod web;
pub mod ws;

pub use config::GatewayConfig;
pub use error::{GatewayError, Problem};
pub use server::{serve, serve_on};
pub use state::AppState;
