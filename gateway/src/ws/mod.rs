//! The `/v1/ws` WebSocket API: [`router`] and the upgrade checks; the protocol is in
//! [`protocol`], one connection's task in [`session`], the seq discipline in [`sequence`],
//! and the JSON forms of events and views (shared with HTTP) in [`json`].
//!
//! Before upgrading, in this order:
//! 1. the `Origin` header, when present, must be the gateway's own origin (the `Host` it was
//!    reached at, `http` or `https`) or one of `allowed_origins`: else 403
//!    `origin_not_allowed` (this is what stops cross-site WebSocket hijacking with the
//!    access cookie). Clients that are not browsers send no `Origin` and are not checked;
//! 2. credentials: an `Authorization: Bearer` header or the access cookie is verified
//!    ([`crate::auth::authenticate`]: a bad, expired or suspended one is refused with its
//!    problem). Without either the connection is anonymous: it may watch auctions (public
//!    data) but not bid, and gets no personal notices;
//! 3. the connection limit (`limits.ws_connections_max`): 503 `busy`.
//!
//! Client messages larger than `limits.ws_message_bytes_max` close the socket with 1009.
//!
//! `/v1/ws?subscribe=<auction>` opens the socket already subscribed to one auction, as if
//! its first message were `subscribe {auction}`: the snapshot comes right after the
//! handshake, without waiting for the client to send anything (a page's first load does
//! not wait for its scripts to run). A value that is not an auction id is refused with 400
//! `invalid_argument` before upgrading.

pub mod json;
pub mod protocol;
pub mod sequence;
pub mod session;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::cookies;
use crate::error::{Problem, codes};
use crate::state::AppState;

/// Bytes of frames a connection's socket buffers before writing them out. Small, so that a
/// client that does not read pushes back on its session (which then conflates) after a few
/// KiB instead of after tungstenite's default 128 KiB per connection.
pub const WRITE_BUFFER_BYTES: usize = 8 * 1024;

/// Bytes a connection reads from its socket at once (tungstenite's default, 128 KiB per
/// connection, would cost 1.3 GB for 10,000 watchers; client messages are a few hundred
/// bytes, and a longer one is read in several reads). Small also because tungstenite
/// zero-fills this many bytes on every read attempt, i.e. every time the session polls its
/// socket: at 8 KiB that was 5 % of the gateway's CPU with 10,000 watchers.
pub const READ_BUFFER_BYTES: usize = 2 * 1024;

/// The `/v1/ws` route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ws", get(upgrade))
}

/// Whether a browser page at `origin` may open a socket on a gateway reached as `host`.
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = host else { return false };
    ["http://", "https://"].iter().any(|scheme| {
        origin.len() == scheme.len() + host.len()
            && origin
                .get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
            && origin
                .get(scheme.len()..)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    })
}

fn header_text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|value| value.to_str().ok())
}

/// The upgrade request's query string.
#[derive(Debug, Default, serde::Deserialize)]
struct UpgradeQuery {
    /// An auction to subscribe to on connect.
    subscribe: Option<u64>,
}

async fn upgrade(
    State(state): State<AppState>,
    query: Result<Query<UpgradeQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = header_text(Some(origin)).is_some_and(|origin| {
            origin_allowed(
                origin,
                header_text(headers.get(header::HOST)),
                &state.config.allowed_origins,
            )
        });
        if !allowed {
            return Problem::new(
                StatusCode::FORBIDDEN,
                codes::ORIGIN_NOT_ALLOWED,
                "this Origin may not open WebSockets on this gateway",
            )
            .into_response();
        }
    }
    let subscribe = match query {
        Ok(Query(query)) => query.subscribe.map(martelo_engine::AuctionId),
        Err(rejection) => {
            return Problem::invalid(format!(
                "`subscribe` must be an auction id: {}",
                rejection.body_text()
            ))
            .into_response();
        }
    };
    let has_credentials = headers.contains_key(header::AUTHORIZATION)
        || cookies::get(&headers, cookies::ACCESS_COOKIE).is_some();
    let principal = if has_credentials {
        match crate::auth::authenticate(&state, &headers).await {
            Ok(principal) => Some(principal),
            Err(problem) => return problem.into_response(),
        }
    } else {
        None
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return Problem::invalid(format!("not a WebSocket upgrade: {rejection}"))
                .into_response();
        }
    };
    let limits = &state.config.limits;
    let Some(admission) = state.hub.admit(limits.ws_connections_max) else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::BUSY,
            "too many open WebSockets on this gateway: retry later",
        )
        .retry_after(1)
        .into_response();
    };
    let message_max = limits.ws_message_bytes_max;
    upgrade
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(message_max)
        .max_frame_size(message_max)
        .on_upgrade(move |socket| session::run(socket, state, principal, subscribe, admission))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_own_origin_and_the_allowlist_pass_others_do_not() {
        let allowed = vec!["http://app.example:3000".to_owned()];
        let host = Some("127.0.0.1:8080");
        assert!(origin_allowed("http://127.0.0.1:8080", host, &allowed));
        assert!(origin_allowed("https://127.0.0.1:8080", host, &allowed));
        assert!(origin_allowed("http://app.example:3000", host, &allowed));
        assert!(origin_allowed("HTTP://APP.example:3000/", host, &allowed));
        assert!(!origin_allowed("http://evil.example", host, &allowed));
        assert!(!origin_allowed("http://127.0.0.1:8081", host, &allowed));
        assert!(!origin_allowed(
            "http://127.0.0.1:8080.evil",
            host,
            &allowed
        ));
        assert!(!origin_allowed("null", None, &allowed));
    }
}
