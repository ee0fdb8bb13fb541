//! The gateway's extractors and header readers: [`Json`] (axum's JSON with its rejections
//! mapped to problems), [`Authenticated`] (a verified [`Principal`] with the CSRF rule
//! applied), the `Idempotency-Key` and `traceparent` headers, and the client's IP.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use martelo_proto::Traceparent;
use serde::de::DeserializeOwned;

use crate::auth::{self, Principal, cookies};
use crate::error::{Problem, codes};
use crate::state::AppState;

/// The header that carries a change's request id.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A JSON body. Unlike `axum::Json`, every rejection is a problem: syntax errors, wrong
/// types, unknown fields and a missing `Content-Type: application/json` are
/// `malformed_json`; a body over the limit is 413 `payload_too_large`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Json<T>, Problem> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

/// The problem for one of axum's JSON rejections.
pub fn json_problem(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::BytesRejection(inner) if inner.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            payload_too_large()
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::MALFORMED_JSON,
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonDataError(error) => Problem::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED_JSON,
            format!("the JSON does not fit this route: {}", error.body_text()),
        ),
        JsonRejection::JsonSyntaxError(error) => Problem::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED_JSON,
            format!("the body is not valid JSON: {}", error.body_text()),
        ),
        other => Problem::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED_JSON,
            format!("the body could not be read: {}", other.body_text()),
        ),
    }
}

/// 413 `payload_too_large`.
pub fn payload_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::PAYLOAD_TOO_LARGE,
        "the request body is larger than the gateway accepts",
    )
}

/// A path parameter. Unlike `axum::extract::Path`, a malformed one (`/v1/auctions/abc`) is
/// a problem: 400 `invalid_argument`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Path<T>, Problem> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(Problem::invalid(format!(
                "a path parameter is not valid: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// A query string. Unlike `axum::extract::Query`, a malformed one is a problem: 400
/// `invalid_argument`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Query<T>, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(Problem::invalid(format!(
                "the query string is not valid: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// A caller authenticated by [`auth::authenticate`], with the double-submit CSRF check
/// applied to cookie-authenticated changes.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Authenticated, Problem> {
        let principal = auth::authenticate(state, &parts.headers).await?;
        cookies::check_csrf(principal.via_cookie, &parts.method, &parts.headers)?;
        Ok(Authenticated(principal))
    }
}

/// The `Idempotency-Key` header: 400 `idempotency_key_required` when missing, 400
/// `invalid_argument` when not 1 to 64 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let value = headers.get(IDEMPOTENCY_KEY).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            codes::IDEMPOTENCY_KEY_REQUIRED,
            "this change needs an Idempotency-Key header (a UUID is fine); retry with the \
             same key to learn the outcome",
        )
    })?;
    let text = value
        .to_str()
        .ok()
        .filter(|text| martelo_engine::RequestId::try_from(*text).is_ok())
        .ok_or_else(|| {
            Problem::invalid(format!(
                "the Idempotency-Key must be 1 to {} visible ASCII characters",
                martelo_engine::limits::REQUEST_ID_BYTES_MAX
            ))
        })?;
    Ok(text.to_owned())
}

/// The W3C `traceparent` header, if present and valid (an invalid one is ignored, as W3C
/// asks).
pub fn traceparent(headers: &HeaderMap) -> Option<Traceparent> {
    headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| Traceparent::try_from(text).ok())
}

/// The peer's IP, when the server runs with connect info.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<ClientIp, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::header;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body1 {
        amount: u64,
    }

    async fn extract(content_type: Option<&str>, body: &str) -> Result<Json<Body1>, Problem> {
        let mut builder = axum::http::Request::builder().method("POST").uri("/");
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        let request = builder.body(Body::from(body.to_owned())).expect("request");
        Json::<Body1>::from_request(request, &()).await
    }

    #[tokio::test]
    async fn json_rejections_become_malformed_json_problems() {
        let json = Some("application/json");
        assert!(extract(json, r#"{"amount": 5}"#).await.is_ok());
        for (content_type, body, status) in [
            (json, "{\"amount\": ", 400),
            (json, r#"{"amount": "five"}"#, 400),
            (json, r#"{"amount": 5, "bidder": 9}"#, 400),
            (None, r#"{"amount": 5}"#, 415),
            (Some("text/plain"), r#"{"amount": 5}"#, 415),
        ] {
            let problem = extract(content_type, body).await.expect_err(body);
            assert_eq!(problem.code, "malformed_json", "{body}");
            assert_eq!(problem.status, status, "{body}");
        }
    }

    #[tokio::test]
    async fn malformed_paths_and_queries_are_invalid_argument_problems() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Q {
            limit: Option<u32>,
        }
        async fn handler(Path(_): Path<u64>, Query(_): Query<Q>) -> &'static str {
            "ok"
        }
        let app = axum::Router::new().route("/a/{id}", axum::routing::get(handler));
        let call = |uri: &'static str| {
            let app = app.clone();
            async move {
                let request = axum::http::Request::builder()
                    .uri(uri)
                    .body(Body::empty())
                    .expect("request");
                tower::ServiceExt::oneshot(app, request)
                    .await
                    .expect("response")
            }
        };
        assert_eq!(call("/a/5?limit=2").await.status(), StatusCode::OK);
        for uri in ["/a/abc", "/a/-1", "/a/5?limit=x"] {
            let response = call(uri).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
    }

    #[test]
    fn the_idempotency_key_is_required_and_bounded() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            idempotency_key(&headers).expect_err("missing").code,
            "idempotency_key_required"
        );
        headers.insert(IDEMPOTENCY_KEY, "x".repeat(65).parse().expect("value"));
        assert_eq!(
            idempotency_key(&headers).expect_err("long").code,
            "invalid_argument"
        );
        headers.insert(IDEMPOTENCY_KEY, "key-1".parse().expect("value"));
        assert_eq!(idempotency_key(&headers).expect("ok"), "key-1");
    }
}
