//! Authentication: who is calling, proven by a signed access token (Bearer header or
//! HttpOnly cookie), and the secrets behind sign-in.
//!
//! The rest of the gateway sees only [`Principal`]: the user id and roles from a verified
//! token. The id and roles are never taken from a request body.
//!
//! - [`keys`]: the key ring (current key signs, every key verifies), from the key file;
//! - [`tokens`]: access tokens (HS256 pinned, `exp`/`iss`/`aud` checked, `kid`);
//! - [`refresh`]: opaque rotating refresh tokens, stored by the meta group as hashes;
//! - [`password`]: argon2id behind a bounded semaphore;
//! - [`cookies`]: the web UI's cookies and the double-submit CSRF rule;
//! - [`authenticate`]: headers → [`Principal`], shared by HTTP and WebSocket.

pub mod cookies;
pub mod keys;
pub mod password;
pub mod refresh;
pub mod tokens;

use std::collections::BTreeSet;

use axum::http::{HeaderMap, StatusCode, header};
use martelo_engine::meta::FamilyId;
use martelo_engine::{Role, UserId};

use crate::error::{Problem, codes};
use crate::state::AppState;

/// A caller whose access token was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The account (the token's `sub`).
    pub user: UserId,
    /// The roles the token names. The meta group re-checks roles on every meta command,
    /// and the auction engine on every auction command, so a demotion takes effect at the
    /// next command even while an old token lives.
    pub roles: BTreeSet<Role>,
    /// The token's expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// How the token came: cookie-authenticated requests need the CSRF check.
    pub via_cookie: bool,
    /// The session (refresh-token family) the token was issued in, from its `sid` claim:
    /// sign-out revokes it, and a WebSocket can end when the meta group revokes it.
    pub session: Option<FamilyId>,
}

impl Principal {
    /// The highest role the token names: what an auction command's actor carries.
    pub fn top_role(&self) -> Role {
        self.roles
            .iter()
            .next_back()
            .copied()
            .unwrap_or(Role::Bidder)
    }

    /// Whether the token names `role` (roles are ordered: an admin may do what a seller may).
    pub fn has(&self, role: Role) -> bool {
        self.top_role() >= role
    }
}

/// The access token a request carries and how: the `Authorization: Bearer` header first,
/// else the access cookie. A present but malformed `Authorization` header is refused, not
/// skipped in favour of the cookie.
pub fn presented_token(headers: &HeaderMap) -> Result<(&str, bool), Problem> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|text| {
                text.strip_prefix("Bearer ")
                    .or_else(|| text.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be `Bearer <access token>`")
            })?;
        return Ok((token, false));
    }
    match cookies::get(headers, cookies::ACCESS_COOKIE) {
        Some(token) => Ok((token, true)),
        None => Err(Problem::unauthorized(
            "no access token: send `Authorization: Bearer <token>` or sign in",
        )),
    }
}

/// Authenticates a request from its headers: the Bearer header, else the access cookie;
/// verifies the token (pinned algorithm, key ring, `exp`, `iss`, `aud`); refuses a user the
/// meta follower reports blocked (suspended), and applies the per-user rate limit.
///
/// The CSRF check of cookie-authenticated changes needs the method: see
/// [`cookies::check_csrf`], which the HTTP extractor applies after this.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, Problem> {
    let (token, via_cookie) = presented_token(headers)?;
    let verified = tokens::verify(&state.keys, &state.config.tokens, token)?;
    if state.meta.is_blocked(verified.user) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            codes::ACCOUNT_SUSPENDED,
            "the account is suspended",
        ));
    }
    state.limiters.check_user(verified.user)?;
    Ok(Principal {
        user: verified.user,
        roles: verified.roles,
        expires_at: verified.expires_at,
        via_cookie,
        session: verified.session,
    })
}
