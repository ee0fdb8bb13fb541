//! Small routes: `GET /v1/time` (server time for countdowns), `GET /healthz` and
//! `GET /metrics` (Prometheus text, when the recorder is installed).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The gateway's clock.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct TimeJson {
    /// µs since the Unix epoch.
    pub now_us: u64,
}

/// Server time, for countdowns (the cluster, not the client, decides when an auction
/// closes).
#[utoipa::path(get, path = "/v1/time", tag = "meta", responses((status = 200, body = TimeJson)))]
pub async fn time() -> axum::Json<TimeJson> {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    axum::Json(TimeJson {
        now_us: u64::try_from(micros).unwrap_or(u64::MAX),
    })
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "ok")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus text exposition of this process's metrics.
pub async fn metrics() -> Response {
    match crate::server::prometheus() {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => crate::error::Problem::not_found("no metrics recorder installed").into_response(),
    }
}
