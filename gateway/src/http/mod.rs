//! The `/v1` HTTP routes, and the router that serves them with the WebSocket route.
//!
//! - [`extract`]: the JSON extractor (rejections → problems), `Authenticated`, headers;
//! - [`accounts`]: sign-up and `GET /v1/me`;
//! - [`sessions`]: sign-in, refresh rotation, sign-out (tokens and cookies);
//! - [`users`]: admin: list, suspend, reinstate, roles;
//! - [`auctions`]: create, edit, cancel, read, list;
//! - [`bids`]: bids and buy-it-now, and `place_bid` shared with the WebSocket;
//! - [`history`]: bid histories, closed auctions, the caller's bids and wins, and the admin
//!   audit search (CSV too), read from the sink's Postgres;
//! - [`names`]: display names of users, from the meta follower;
//! - [`limits`]: rate limiters (per IP as a layer, per user and failed sign-ins inside);
//! - [`observe`]: request metrics and the request timeout;
//! - [`openapi`]: the generated OpenAPI 3.1 document and the offline Swagger UI;
//! - [`meta_routes`]: server time, health, Prometheus metrics.
//!
//! Layers, outermost first: sensitive headers (Authorization, Cookie) → trace (method and
//! path only, never the query) → metrics → timeout → per-IP rate limit → body limit →
//! the route. `/healthz` and `/metrics` sit outside the limits.

pub mod accounts;
pub mod auctions;
pub mod bids;
pub mod extract;
pub mod history;
pub mod limits;
pub mod meta_routes;
pub mod names;
pub mod observe;
pub mod openapi;
pub mod sessions;
pub mod users;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::{Request, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::Problem;
use crate::state::AppState;

/// The API routes (no layers, no state yet).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts", post(accounts::register))
        .route("/v1/me", get(accounts::me))
        .route("/v1/sessions", post(sessions::login))
        .route("/v1/sessions/refresh", post(sessions::refresh))
        .route("/v1/sessions/current", delete(sessions::logout))
        .route("/v1/users", get(users::list_users))
        .route("/v1/users/{id}/suspend", post(users::suspend))
        .route("/v1/users/{id}/reinstate", post(users::reinstate))
        .route(
            "/v1/users/{id}/roles/{role}",
            put(users::grant_role).delete(users::revoke_role),
        )
        .route("/v1/auctions", post(auctions::create).get(auctions::list))
        .route("/v1/auctions/{id}", get(auctions::read).put(auctions::edit))
        .route("/v1/auctions/{id}/cancel", post(auctions::cancel))
        .route("/v1/auctions/{id}/bids", post(bids::post_bid))
        .route("/v1/auctions/{id}/buy", post(bids::post_buy))
        .route("/v1/auctions/{id}/history", get(history::auction_history))
        .route("/v1/history/auctions", get(history::closed_auctions))
        .route("/v1/me/bids", get(history::my_bids))
        .route("/v1/me/wins", get(history::my_wins))
        .route("/v1/audit", get(history::audit))
        .route(
            "/v1/auctions/{id}/bids/{bid_id}/void",
            post(auctions::void_bid),
        )
        .route(
            "/v1/auctions/{id}/bidders/{user}/remove",
            post(auctions::remove_bidder),
        )
        .route("/v1/names", get(names::names))
        .route("/v1/time", get(meta_routes::time))
}

/// The peer's IP as the per-IP limiter's key (unspecified when the server runs without
/// connect info, so the limiter never fails a request for want of a key).
#[derive(Clone, Copy, Debug)]
struct PeerIp;

impl KeyExtractor for PeerIp {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<IpAddr, tower_governor::GovernorError> {
        Ok(request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(address)| {
                address.ip()
            }))
    }
}

async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        crate::error::codes::METHOD_NOT_ALLOWED,
        "this route does not take this method",
    )
}

/// The whole gateway: these routes, the WebSocket route, the docs, and the layers, with
/// `state`. Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so the
/// per-IP limits see the peer.
pub fn router(state: AppState) -> Router {
    let config = &state.config;
    let per_ip = Duration::from_secs(1) / config.rate.per_ip_per_sec.max(1);
    let governor = GovernorConfigBuilder::default()
        .key_extractor(PeerIp)
        .period(per_ip)
        .burst_size(config.rate.per_ip_burst.max(1))
        .finish()
        .map(Arc::new);
    spawn_pruning(&state, governor.clone());
    let api = routes()
        .merge(crate::ws::router())
        .merge(crate::web::router())
        .merge(SwaggerUi::new("/v1/docs").url("/v1/openapi.json", openapi::document()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.limits.body_bytes_max));
    let api = match governor {
        Some(governor) => api.layer(GovernorLayer::new(governor).error_handler(|error| {
            let wait = match error {
                tower_governor::GovernorError::TooManyRequests { wait_time, .. } => wait_time,
                _ => 1,
            };
            limits::rate_limited("ip", Duration::from_secs(wait_time_floor(wait))).into_response()
        })),
        None => api,
    };
    api.layer(axum::middleware::from_fn_with_state(
        config.request_timeout(),
        observe::deadline,
    ))
    .layer(axum::middleware::from_fn(observe::record))
    .merge(probes())
    .layer(
        TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let span = tracing::info_span!(
                "http",
                method = %request.method(),
                path = request.uri().path(),
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
            );
            // A caller's valid `traceparent` header makes this span its child.
            let parent = extract::traceparent(request.headers());
            martelo_trace::adopt(
                &span,
                parent.as_ref().map(martelo_proto::Traceparent::as_str),
            );
            span
        }),
    )
    .layer(SetSensitiveRequestHeadersLayer::new([
        header::AUTHORIZATION,
        header::COOKIE,
    ]))
    .with_state(state)
}

/// `/healthz` and `/metrics`, outside the limits. Another method on them is 405
/// `method_not_allowed` problem+json, as on every other route (the API's fallback is set
/// on its own routes only).
fn probes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/healthz", get(meta_routes::healthz))
        .route("/metrics", get(meta_routes::metrics))
        .method_not_allowed_fallback(method_not_allowed)
}

fn wait_time_floor(secs: u64) -> u64 {
    secs.max(1)
}

/// Forgets idle rate-limiter keys every minute, while the gateway lives.
fn spawn_pruning(
    state: &AppState,
    governor: Option<
        Arc<
            tower_governor::governor::GovernorConfig<
                PeerIp,
                governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
            >,
        >,
    >,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let limiters = state.limiters.prune_handle();
    let governor = governor.as_ref().map(Arc::downgrade);
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            if !limiters.prune() {
                return;
            }
            if let Some(governor) = governor.as_ref().and_then(std::sync::Weak::upgrade) {
                governor.limiter().retain_recent();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, StatusCode};
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn another_method_on_the_probes_is_a_405_problem() {
        let call = |method: Method| {
            let request = Request::builder()
                .method(method)
                .uri("/healthz")
                .body(Body::empty())
                .expect("request");
            probes::<()>().oneshot(request)
        };
        assert_eq!(
            call(Method::GET).await.expect("answer").status(),
            StatusCode::OK
        );
        for method in [Method::POST, Method::TRACE, Method::DELETE] {
            let answer = call(method.clone()).await.expect("answer");
            assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(
                answer.headers()[header::CONTENT_TYPE],
                "application/problem+json",
                "{method}"
            );
        }
    }
}
