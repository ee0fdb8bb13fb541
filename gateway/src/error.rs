//! [`Problem`]: every error the gateway answers, as RFC 9457 `application/problem+json`,
//! with a stable machine-readable `code`.
//!
//! Codes come from three places and keep their spelling from each: the engine's rejection
//! codes (`bid_too_low`, `username_taken`: [`martelo_engine::RejectCode::as_str`]), the
//! node's error codes (`not_leader`, `unavailable`: `martelo_proto::ErrorCode`), and the
//! gateway's own, listed in [`codes`]. docs/API.md tables them all. A code is never renamed.
//!
//! Messages never echo secrets (passwords, tokens) and never say whether a username exists
//! on a failed sign-in.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use martelo_client::{ClientError, ProposeError};
use martelo_engine::RejectCode;
use martelo_proto::ErrorCode;
use serde::Serialize;

/// The gateway's own error codes (the engine's and the node's keep theirs).
pub mod codes {
    /// The body is not JSON, or not the JSON this route takes.
    pub const MALFORMED_JSON: &str = "malformed_json";
    /// A field is missing, out of range or malformed; `detail` names it.
    pub const INVALID_ARGUMENT: &str = "invalid_argument";
    /// The body, a field or a WebSocket message is larger than its limit.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// No credentials, or credentials that are not valid (bad signature, wrong `alg`,
    /// `aud` or `iss`, unknown `kid`, malformed).
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The access token has expired: refresh it.
    pub const TOKEN_EXPIRED: &str = "token_expired";
    /// Username or password is wrong (never says which).
    pub const BAD_CREDENTIALS: &str = "bad_credentials";
    /// The account is suspended.
    pub const ACCOUNT_SUSPENDED: &str = "account_suspended";
    /// Signed in, but this action needs another role or ownership.
    pub const FORBIDDEN: &str = "forbidden";
    /// A cookie-authenticated request without the matching CSRF header.
    pub const CSRF_FAILED: &str = "csrf_failed";
    /// The WebSocket `Origin` is not in the allowlist.
    pub const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";
    /// A rate limit refused the request; `Retry-After` says when to try again.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// A bid or other change without the required `Idempotency-Key` header.
    pub const IDEMPOTENCY_KEY_REQUIRED: &str = "idempotency_key_required";
    /// The refresh token is unknown, expired, revoked or was replayed.
    pub const INVALID_REFRESH_TOKEN: &str = "invalid_refresh_token";
    /// No such route or object.
    pub const NOT_FOUND: &str = "not_found";
    /// The route exists, but not with this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// The outcome of a change is unknown: retry with the same `Idempotency-Key` to learn
    /// it. Never a failure.
    pub const OUTCOME_UNKNOWN: &str = "outcome_unknown";
    /// The gateway is saturated (password hashing queue full, too many sockets): retry later.
    pub const BUSY: &str = "busy";
    /// The cluster cannot answer now: retry later.
    pub const UNAVAILABLE: &str = "unavailable";
    /// A bug or an unreadable answer from the cluster.
    pub const INTERNAL: &str = "internal";
    /// An amount is not an integer number of minor units in `1..=AMOUNT_MAX` (negative,
    /// fractional, zero or too large).
    pub const INVALID_AMOUNT: &str = "invalid_amount";
    /// A new password is shorter than 8 or longer than 128 characters.
    pub const INVALID_PASSWORD: &str = "invalid_password";
    /// The request took longer than the gateway's request timeout. A change may still have
    /// been applied: retry with the same `Idempotency-Key`.
    pub const TIMEOUT: &str = "timeout";
    /// The history and audit routes cannot answer: this gateway has no Postgres configured
    /// (`--postgres`), or the sink's database is unreachable or failed the query. The
    /// auction routes are unaffected.
    pub const HISTORY_UNAVAILABLE: &str = "history_unavailable";
}

/// Why a gateway could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The token key file is not usable.
    #[error(transparent)]
    Keys(#[from] crate::auth::keys::KeyError),
    /// No cluster node could be reached.
    #[error("cannot connect to the cluster: {0}")]
    Cluster(#[from] ClientError),
    /// Binding or serving the socket failed.
    #[error("serving on {address}: {reason}")]
    Io { address: String, reason: String },
}

/// An RFC 9457 problem, with martelo's `code` extension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:martelo:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, fixed sentence for the code.
    pub title: &'static str,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What went wrong in this request, for people.
    pub detail: String,
    /// The stable machine-readable code: match on this.
    pub code: Cow<'static, str>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl Problem {
    /// A problem with `status`, a stable `code` and a `detail` for people.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Problem {
        let code = code.into();
        Problem {
            kind: format!("urn:martelo:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            retry_after_secs: None,
        }
    }

    /// Adds a `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Problem {
        self.retry_after_secs = Some(secs);
        self
    }

    /// 400 `invalid_argument`.
    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, codes::INVALID_ARGUMENT, detail)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, detail)
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, detail)
    }

    /// 400 `invalid_argument` for a value that failed the engine's edge parsing.
    pub fn invalid_field(error: &martelo_engine::ParseError) -> Problem {
        Problem::invalid(error.to_string())
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, detail)
    }

    /// 500 `internal`. The detail is logged by the caller, not sent: it may say too much.
    pub fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "the gateway failed; the error is logged",
        )
    }

    /// The engine rejected the command (it went through the log, or the leader decided it
    /// from a lease read): 409 with the engine's code, 403 and 404 for the codes that mean
    /// exactly that.
    pub fn rejected(code: RejectCode) -> Problem {
        let status = match code.as_str() {
            "permission_denied" | "not_seller" | "not_owner" | "actor_suspended"
            | "bidder_suspended" | "user_suspended" => StatusCode::FORBIDDEN,
            "auction_not_found" | "user_not_found" | "bid_not_found" | "session_not_found" => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::CONFLICT,
        };
        Problem::new(status, code.as_str(), code.message())
    }

    /// A proposal that got no reply. `Unknown` is never a failure: 503 `outcome_unknown`,
    /// "retry with the same key". `NotApplied` keeps the node's code.
    pub fn from_propose(error: &ProposeError) -> Problem {
        match error {
            ProposeError::Unknown { .. } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::OUTCOME_UNKNOWN,
                "the outcome is unknown: it may or may not have been applied. Retry with the \
                 same Idempotency-Key (or request id) to learn it",
            )
            .retry_after(1),
            ProposeError::NotApplied { code, message } => Problem::from_node_code(*code, message),
        }
    }

    /// A read or listing that failed.
    pub fn from_client(error: &ClientError) -> Problem {
        Problem::from_node_code(error.server_code(), &error.to_string())
    }

    fn from_node_code(code: ErrorCode, message: &str) -> Problem {
        let status = match code {
            ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::AuctionNotFound => StatusCode::NOT_FOUND,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::Internal | ErrorCode::UnsupportedCodec | ErrorCode::Unspecified => {
                tracing::error!(code = code.as_code_str(), %message, "cluster error");
                return Problem::internal();
            }
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let problem = Problem::new(status, code.as_code_str(), message.to_owned());
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::GATEWAY_TIMEOUT {
            problem.retry_after(1)
        } else {
            problem
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after_secs;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_outcome_is_503_outcome_unknown_never_a_failure() {
        let error = ProposeError::Unknown {
            attempts: 3,
            last_error: ClientError::InvalidInput("x".into()),
        };
        let problem = Problem::from_propose(&error);
        assert_eq!(problem.status, 503);
        assert_eq!(problem.code, "outcome_unknown");
        assert_eq!(problem.retry_after_secs, Some(1));
    }

    #[test]
    fn engine_rejections_keep_their_codes_with_fitting_statuses() {
        assert_eq!(Problem::rejected(RejectCode::BidTooLow).status, 409);
        assert_eq!(Problem::rejected(RejectCode::BidTooLow).code, "bid_too_low");
        assert_eq!(Problem::rejected(RejectCode::NotSeller).status, 403);
        assert_eq!(Problem::rejected(RejectCode::AuctionNotFound).status, 404);
    }

    #[test]
    fn the_response_is_problem_json_with_retry_after() {
        let response = Problem::new(StatusCode::TOO_MANY_REQUESTS, codes::RATE_LIMITED, "slow")
            .retry_after(2)
            .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
