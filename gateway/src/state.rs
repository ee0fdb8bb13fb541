//! [`AppState`]: what every HTTP and WebSocket handler shares. Cheap to clone (one `Arc`).

use std::sync::Arc;

use martelo_client::Client;

use crate::auth::keys::KeyRing;
use crate::auth::password::Passwords;
use crate::config::GatewayConfig;
use crate::fanout::Hub;
use crate::follow::MetaFollower;
use crate::http::limits::Limiters;

/// The gateway's shared state.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The validated configuration.
    pub config: GatewayConfig,
    /// The cluster: proposals, reads, listings and subscriptions, with retries.
    pub client: Client,
    /// Committed auction events, fanned out to WebSocket sessions.
    pub hub: Hub,
    /// What the meta group's committed events say about users (suspended, signed out).
    pub meta: MetaFollower,
    /// The access-token keys (`Debug` shows key ids only).
    pub keys: KeyRing,
    /// Password hashing, bounded.
    pub passwords: Passwords,
    /// Per-user and failed-sign-in rate limiters.
    pub limiters: Limiters,
    /// The sink's Postgres (a small lazy read pool), when the gateway was given one: the
    /// history and audit routes read it.
    pub history: Option<martelo_sink::query::PgPool>,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
