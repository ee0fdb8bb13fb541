//! Sessions: `POST /v1/sessions` (sign in), `POST /v1/sessions/refresh` (rotate) and
//! `DELETE /v1/sessions/current` (sign out).
//!
//! Sign-in reads the account (linearizable, so a fresh sign-up is found), verifies the
//! password (an unknown username verifies against a dummy hash: same cost, same
//! `bad_credentials`), then proposes `CreateSession` with a random family and the hash of a
//! new refresh token. Failed sign-ins are limited per account and per IP
//! ([`crate::http::limits::Limiters`]).
//!
//! Refresh proposes `RotateRefresh` as the anonymous actor; the meta group revokes the
//! family when an old token is presented. Every refusal of a refresh token (unknown,
//! expired, revoked, replayed) is 401 `invalid_refresh_token`.
//!
//! Tokens come back in the JSON body and as cookies (see [`crate::auth::cookies`]).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use martelo_client::{ReadConsistency, UserKey};
use martelo_engine::meta::{AccountStatus, FamilyId, UserSummary, Username};
use martelo_engine::{
    Accepted, MetaAccepted, MetaAction, MetaActor, MetaCommand, MetaRejectCode, RejectCode, Reply,
    Timestamp, UserId,
};
use serde::{Deserialize, Serialize};

use crate::auth::cookies::{self, REFRESH_COOKIE};
use crate::auth::password::PASSWORD_CHARS_MAX;
use crate::auth::refresh::RefreshToken;
use crate::auth::tokens::{self, unix_now};
use crate::error::{Problem, codes};
use crate::http::accounts::{UserJson, fresh_request_id, unexpected};
use crate::http::extract::{Authenticated, ClientIp, Json, json_problem, traceparent};
use crate::state::AppState;
use crate::telemetry;

/// The body of `POST /v1/sessions`.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginBody")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The body of `POST /v1/sessions/refresh` (optional: the cookie may carry the token).
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for RefreshBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshBody").finish_non_exhaustive()
    }
}

/// A new session or a rotated one.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct SessionJson {
    /// The access token (a JWT). Send it as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token: present it once to `POST /v1/sessions/refresh`.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    pub user: UserJson,
}

impl std::fmt::Debug for SessionJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionJson")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn bad_credentials() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        codes::BAD_CREDENTIALS,
        "the username or the password is wrong",
    )
}

fn suspended() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        codes::ACCOUNT_SUSPENDED,
        "the account is suspended",
    )
}

fn invalid_refresh(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        codes::INVALID_REFRESH_TOKEN,
        format!("the refresh token is not valid: {detail}; sign in again"),
    )
}

fn now_timestamp() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    Timestamp(u64::try_from(micros).unwrap_or(u64::MAX))
}

/// Issues the access token and builds the response with the session cookies.
fn session_response(
    state: &AppState,
    status: StatusCode,
    summary: &UserSummary,
    family: FamilyId,
    refresh: &RefreshToken,
) -> Result<Response, Problem> {
    let config = &state.config.tokens;
    let now = unix_now();
    let issued = tokens::issue(
        &state.keys,
        config,
        summary.id,
        &summary.roles,
        Some(family),
        now,
    )?;
    let body = SessionJson {
        access_token: issued.token.clone(),
        token_type: "Bearer",
        expires_in: issued.expires_at.saturating_sub(now),
        refresh_token: refresh.expose().to_owned(),
        refresh_expires_in: config.refresh_ttl_secs,
        user: UserJson::from(summary),
    };
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    for cookie in cookies::session_cookies(
        &issued.token,
        config.access_ttl_secs,
        refresh.expose(),
        config.refresh_ttl_secs,
        config.secure_cookies,
    ) {
        headers.append(header::SET_COOKIE, cookie);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Signs in.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "sessions",
    request_body = LoginBody,
    responses(
        (status = 201, body = SessionJson, description = "Signed in; also sets the cookies"),
        (status = 401, body = Problem, description = "bad_credentials"),
        (status = 403, body = Problem, description = "account_suspended"),
        (status = 429, body = Problem, description = "rate_limited (too many failed sign-ins)"),
        (status = 503, body = Problem, description = "busy or outcome_unknown"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> Result<Response, Problem> {
    // The limiter's account key: the folded name, or the raw lower-cased text when it does
    // not fold (such a name has no account, but is limited the same way).
    let folded = Username::fold(&body.username).ok();
    let account_key = folded.as_ref().map_or_else(
        || {
            body.username
                .chars()
                .take(128)
                .collect::<String>()
                .to_lowercase()
        },
        |name| name.to_string(),
    );
    state.limiters.check_login(&account_key, ip)?;
    let credentials = match &folded {
        Some(name) if body.password.chars().count() <= PASSWORD_CHARS_MAX => {
            state
                .client
                .read_user(
                    UserKey::Username(name.to_string()),
                    ReadConsistency::Linearizable,
                )
                .await
                .map_err(|error| Problem::from_client(&error))?
                .credentials
        }
        _ => None,
    };
    let hash = credentials
        .as_ref()
        .map(|credentials| credentials.password_hash.as_phc());
    let matches = state.passwords.verify(&body.password, hash).await?;
    let Some(credentials) = credentials.filter(|_| matches) else {
        state.limiters.login_failed(&account_key, ip);
        metrics::counter!(telemetry::LOGINS_TOTAL, "result" => "bad_credentials").increment(1);
        return Err(bad_credentials());
    };
    let summary = credentials.summary;
    if !matches!(summary.status, AccountStatus::Active) {
        metrics::counter!(telemetry::LOGINS_TOTAL, "result" => "suspended").increment(1);
        return Err(suspended());
    }
    let family = RefreshToken::new_family();
    let refresh = RefreshToken::generate(family);
    let expires_at = now_timestamp().plus(martelo_engine::Micros::from_secs(
        state.config.tokens.refresh_ttl_secs,
    ));
    let command = MetaCommand {
        actor: MetaActor::User(summary.id),
        request_id: fresh_request_id(),
        action: MetaAction::CreateSession {
            user: summary.id,
            family,
            token_hash: refresh.hash(),
            expires_at,
        },
    };
    let proposed = state
        .client
        .propose_meta(command, traceparent(&headers).as_ref())
        .await
        .map_err(|error| Problem::from_propose(&error))?;
    match proposed.reply {
        Reply::Accepted(Accepted::Meta(MetaAccepted::SessionCreated { .. })) => {
            metrics::counter!(telemetry::LOGINS_TOTAL, "result" => "ok").increment(1);
            tracing::info!(user = summary.id.0, "signed in");
            session_response(&state, StatusCode::CREATED, &summary, family, &refresh)
        }
        Reply::Rejected(RejectCode::Meta(
            MetaRejectCode::ActorSuspended | MetaRejectCode::UserSuspended,
        )) => Err(suspended()),
        Reply::Rejected(code) => Err(Problem::rejected(code)),
        Reply::Accepted(other) => Err(unexpected(&other)),
    }
}

/// Where the refresh token came from: the body (no CSRF needed) or the cookie (CSRF
/// checked).
fn presented_refresh(headers: &HeaderMap, body: &Bytes) -> Result<Option<(String, bool)>, Problem> {
    if !body.is_empty() {
        let parsed: RefreshBody = serde_json::from_slice(body).map_err(|error| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                codes::MALFORMED_JSON,
                format!("the body is not the JSON this route takes: {error}"),
            )
        })?;
        if let Some(token) = parsed.refresh_token {
            return Ok(Some((token, false)));
        }
    }
    Ok(cookies::get(headers, REFRESH_COOKIE).map(|token| (token.to_owned(), true)))
}

/// Rotates the refresh token: a new access token and a new refresh token. Presenting an old
/// refresh token revokes the whole session.
#[utoipa::path(
    post,
    path = "/v1/sessions/refresh",
    tag = "sessions",
    request_body(content = RefreshBody, description = "Optional: the martelo_refresh cookie works too (then X-CSRF-Token is needed)"),
    responses(
        (status = 200, body = SessionJson, description = "Rotated; also sets the cookies"),
        (status = 401, body = Problem, description = "invalid_refresh_token"),
        (status = 403, body = Problem, description = "csrf_failed or account_suspended"),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Problem> {
    let body = body.map_err(|rejection| json_problem(&rejection.into()))?;
    let (text, via_cookie) =
        presented_refresh(&headers, &body)?.ok_or_else(|| invalid_refresh("none was presented"))?;
    cookies::check_csrf(via_cookie, &Method::POST, &headers)?;
    let presented = RefreshToken::parse(&text).ok_or_else(|| invalid_refresh("malformed"))?;
    let family = presented.family();
    let next = RefreshToken::generate(family);
    let expires_at = now_timestamp().plus(martelo_engine::Micros::from_secs(
        state.config.tokens.refresh_ttl_secs,
    ));
    let command = MetaCommand {
        actor: MetaActor::Anonymous,
        request_id: fresh_request_id(),
        action: MetaAction::RotateRefresh {
            family,
            presented_token_hash: presented.hash(),
            new_token_hash: next.hash(),
            new_expires_at: expires_at,
        },
    };
    let proposed = state
        .client
        .propose_meta(command, traceparent(&headers).as_ref())
        .await
        .map_err(|error| Problem::from_propose(&error))?;
    let user = match proposed.reply {
        Reply::Accepted(Accepted::Meta(MetaAccepted::RefreshRotated { user, .. })) => user,
        Reply::Rejected(RejectCode::Meta(code)) => return Err(refresh_rejection(code)),
        Reply::Rejected(code) => return Err(Problem::rejected(code)),
        Reply::Accepted(other) => return Err(unexpected(&other)),
    };
    let summary = read_summary(&state, user).await?;
    if !matches!(summary.status, AccountStatus::Active) {
        return Err(suspended());
    }
    session_response(&state, StatusCode::OK, &summary, family, &next)
}

/// The problem for a meta rejection of a rotation.
fn refresh_rejection(code: MetaRejectCode) -> Problem {
    match code {
        MetaRejectCode::RefreshTokenReused => {
            tracing::warn!("a replayed refresh token was presented: its session is revoked");
            invalid_refresh("it was already used, so its session is now revoked")
        }
        MetaRejectCode::SessionNotFound
        | MetaRejectCode::SessionRevoked
        | MetaRejectCode::NotOwner
        | MetaRejectCode::InvalidExpiry => invalid_refresh(code.message()),
        MetaRejectCode::ActorSuspended | MetaRejectCode::UserSuspended => suspended(),
        other => Problem::rejected(RejectCode::Meta(other)),
    }
}

async fn read_summary(state: &AppState, user: UserId) -> Result<UserSummary, Problem> {
    state
        .client
        .read_user(UserKey::Id(user), ReadConsistency::Linearizable)
        .await
        .map_err(|error| Problem::from_client(&error))?
        .credentials
        .map(|credentials| credentials.summary)
        .ok_or_else(|| invalid_refresh("the account no longer exists"))
}

/// Signs out: revokes the session the access token was issued in, and clears the cookies.
/// When the token is refused (expired, revoked, suspended account) the answer is that
/// problem, and the cookies are cleared all the same: the browser must not stay half
/// signed in. A CSRF or origin refusal clears nothing (another site must not sign people
/// out).
#[utoipa::path(
    delete,
    path = "/v1/sessions/current",
    tag = "sessions",
    responses(
        (status = 204, description = "Signed out; cookies cleared"),
        (status = 401, body = Problem, description = "unauthorized, token_expired: cookies cleared"),
        (status = 403, body = Problem, description = "account_suspended (cookies cleared), csrf_failed"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn logout(
    State(state): State<AppState>,
    authenticated: Result<Authenticated, Problem>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let principal = match authenticated {
        Ok(Authenticated(principal)) => principal,
        Err(problem) if clears_cookies(&problem) => {
            let mut response = problem.into_response();
            for cookie in cookies::cleared_cookies(state.config.tokens.secure_cookies) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            return Ok(response);
        }
        Err(problem) => return Err(problem),
    };
    if let Some(family) = principal.session {
        let command = MetaCommand {
            actor: MetaActor::User(principal.user),
            request_id: fresh_request_id(),
            action: MetaAction::RevokeFamily { family },
        };
        let proposed = state
            .client
            .propose_meta(command, traceparent(&headers).as_ref())
            .await
            .map_err(|error| Problem::from_propose(&error))?;
        match proposed.reply {
            Reply::Accepted(_)
            | Reply::Rejected(RejectCode::Meta(
                MetaRejectCode::SessionNotFound | MetaRejectCode::SessionRevoked,
            )) => {}
            Reply::Rejected(code) => return Err(Problem::rejected(code)),
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    for cookie in cookies::cleared_cookies(state.config.tokens.secure_cookies) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Whether a sign-out refused with `problem` still clears the cookies: every refusal of
/// the token itself, never a CSRF or origin refusal.
fn clears_cookies(problem: &Problem) -> bool {
    !matches!(
        problem.code.as_ref(),
        codes::CSRF_FAILED | codes::ORIGIN_NOT_ALLOWED
    ) && (problem.status == 401 || problem.status == 403)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_clears_the_cookies_but_a_csrf_refusal_does_not() {
        assert!(clears_cookies(&Problem::unauthorized("expired")));
        assert!(clears_cookies(&Problem::new(
            StatusCode::FORBIDDEN,
            codes::ACCOUNT_SUSPENDED,
            "suspended"
        )));
        assert!(!clears_cookies(&Problem::new(
            StatusCode::FORBIDDEN,
            codes::CSRF_FAILED,
            "no token"
        )));
        assert!(!clears_cookies(&Problem::internal()));
    }

    #[test]
    fn every_refusal_of_a_refresh_token_is_invalid_refresh_token() {
        for code in [
            MetaRejectCode::RefreshTokenReused,
            MetaRejectCode::SessionNotFound,
            MetaRejectCode::SessionRevoked,
            MetaRejectCode::NotOwner,
        ] {
            let problem = refresh_rejection(code);
            assert_eq!(
                (problem.status, problem.code.as_ref()),
                (401, "invalid_refresh_token")
            );
        }
        assert_eq!(refresh_rejection(MetaRejectCode::UserSuspended).status, 403);
    }

    #[test]
    fn the_refresh_token_comes_from_the_body_first_then_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "martelo_refresh=fromcookie".parse().expect("v"),
        );
        let body = Bytes::from_static(br#"{"refresh_token":"frombody"}"#);
        assert_eq!(
            presented_refresh(&headers, &body).expect("ok"),
            Some(("frombody".to_owned(), false))
        );
        assert_eq!(
            presented_refresh(&headers, &Bytes::new()).expect("ok"),
            Some(("fromcookie".to_owned(), true))
        );
        let bad = Bytes::from_static(b"{");
        assert_eq!(
            presented_refresh(&headers, &bad).expect_err("bad").code,
            "malformed_json"
        );
    }
}
