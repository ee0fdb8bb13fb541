//! Request metrics and the request timeout, as axum middleware.
//!
//! [`record`] counts every request by its matched route template (never the raw path, so
//! ids do not explode the label set) and status, and times it. [`deadline`] answers 503
//! `timeout` when a request outlives `limits.request_timeout_ms`; a change may still have
//! been applied, so the problem says to retry with the same key.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{Problem, codes};
use crate::telemetry;

/// Records `HTTP_REQUESTS_TOTAL{route,status}` and `HTTP_REQUEST_SECONDS{route}`.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(telemetry::HTTP_REQUESTS_TOTAL, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(telemetry::HTTP_REQUEST_SECONDS, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Bounds a request's handling by `timeout`.
pub async fn deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::TIMEOUT,
            "the request took too long; a change may still have been applied: retry with the \
             same Idempotency-Key to learn its outcome",
        )
        .retry_after(1)
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }

    #[tokio::test]
    async fn a_request_past_the_deadline_is_503_timeout_and_a_fast_one_passes() {
        let app = Router::new()
            .route("/slow", get(slow))
            .route("/fast", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(50),
                deadline,
            ));
        let request = |path: &str| {
            axum::http::Request::builder()
                .uri(path)
                .body(Body::empty())
                .expect("request")
        };
        let response = app
            .clone()
            .oneshot(request("/slow"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let fast = app.oneshot(request("/fast")).await.expect("response");
        assert_eq!(fast.status(), StatusCode::OK);
    }
}
