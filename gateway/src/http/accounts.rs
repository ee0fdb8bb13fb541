//! Accounts: `POST /v1/accounts` (sign up) and `GET /v1/me`, and the JSON form of an
//! account ([`UserJson`]) that the session and admin routes share.
//!
//! Sign-up hashes the password here (argon2id, bounded) and proposes `RegisterUser` to the
//! meta group as the anonymous actor with a fresh UUIDv4 request id (anonymous requests
//! share one key space, so ids must be unguessable). The meta group assigns the user id.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use martelo_client::{ReadConsistency, UserKey};
use martelo_engine::meta::{AccountStatus, DisplayName, UserSummary, Username};
use martelo_engine::{
    Accepted, MetaAccepted, MetaAction, MetaActor, MetaCommand, Reply, RequestId, Role,
};
use serde::{Deserialize, Serialize};

use crate::auth::password::check_new_password;
use crate::error::Problem;
use crate::http::extract::{Authenticated, Json, traceparent};
use crate::state::AppState;

/// An account as the API shows it (no secrets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserJson {
    pub id: u64,
    /// The folded (lower-case) username.
    pub username: String,
    pub display_name: String,
    /// `bidder`, `seller`, `admin`.
    pub roles: Vec<String>,
    /// `active` or `suspended`.
    pub status: &'static str,
    /// Why the account is suspended, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended_reason: Option<String>,
    /// Cluster time of the sign-up, µs since the epoch.
    pub created_at_us: u64,
}

impl From<&UserSummary> for UserJson {
    fn from(summary: &UserSummary) -> UserJson {
        let (status, suspended_reason) = match &summary.status {
            AccountStatus::Active => ("active", None),
            AccountStatus::Suspended { reason, .. } => ("suspended", Some(reason.to_string())),
        };
        UserJson {
            id: summary.id.0,
            username: summary.username.to_string(),
            display_name: summary.display_name.to_string(),
            roles: role_names(&summary.roles),
            status,
            suspended_reason,
            created_at_us: summary.created_at.0,
        }
    }
}

/// Roles as their JSON names, in order.
pub fn role_names(roles: &BTreeSet<Role>) -> Vec<String> {
    roles.iter().map(|role| role.as_str().to_owned()).collect()
}

/// A fresh random request id for a meta command the client gave no key for.
pub fn fresh_request_id() -> RequestId {
    RequestId::try_from(uuid::Uuid::new_v4().to_string())
        .unwrap_or_else(|_| unreachable!("a UUID is 36 visible ASCII characters"))
}

/// The body of `POST /v1/accounts`.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// 3 to 32 characters of `[a-z0-9_.-]` after lower-casing, starting with a letter or
    /// digit.
    pub username: String,
    /// 1 to 64 characters, shown to others.
    pub display_name: String,
    /// 8 to 128 characters.
    pub password: String,
    /// A subset of `bidder`, `seller`; default `[bidder]`. `admin` is granted by admins.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

impl std::fmt::Debug for RegisterBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterBody")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Parses a username as typed into its folded form, 400 `invalid_argument` otherwise.
pub fn parse_username(text: &str) -> Result<Username, Problem> {
    Username::fold(text).map_err(|error| Problem::invalid_field(&error))
}

pub(crate) fn parse_signup_roles(names: Option<&[String]>) -> Result<BTreeSet<Role>, Problem> {
    let Some(names) = names else {
        return Ok([Role::Bidder].into_iter().collect());
    };
    let mut roles = BTreeSet::new();
    for name in names {
        match name.parse::<Role>().ok() {
            Some(role @ (Role::Bidder | Role::Seller)) => {
                roles.insert(role);
            }
            Some(Role::Admin) => {
                return Err(Problem::forbidden(
                    "sign-up cannot claim the admin role: an admin grants it",
                ));
            }
            None => {
                return Err(Problem::invalid(format!(
                    "unknown role {name:?}: bidder or seller"
                )));
            }
        }
    }
    if roles.is_empty() {
        return Err(Problem::invalid("name at least one role: bidder or seller"));
    }
    Ok(roles)
}

/// Signs up a new account.
#[utoipa::path(
    post,
    path = "/v1/accounts",
    tag = "accounts",
    request_body = RegisterBody,
    responses(
        (status = 201, body = UserJson, description = "Registered"),
        (status = 400, body = Problem, description = "invalid_argument, invalid_password, malformed_json"),
        (status = 403, body = Problem, description = "forbidden: sign-up asked for the admin role"),
        (status = 409, body = Problem, description = "username_taken"),
        (status = 503, body = Problem, description = "busy (password hashing saturated) or outcome_unknown"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<RegisterBody>,
) -> Result<impl IntoResponse, Problem> {
    let username = parse_username(&body.username)?;
    let display_name = DisplayName::try_from(body.display_name.as_str())
        .map_err(|error| Problem::invalid_field(&error))?;
    check_new_password(&body.password)?;
    let roles = parse_signup_roles(body.roles.as_deref())?;
    let hash = state.passwords.hash(&body.password).await?;
    let password_hash = martelo_engine::meta::PasswordHash::try_from(hash).map_err(|error| {
        tracing::error!(%error, "argon2 produced a hash the meta group refuses");
        Problem::internal()
    })?;
    let command = MetaCommand {
        actor: MetaActor::Anonymous,
        request_id: fresh_request_id(),
        action: MetaAction::RegisterUser {
            username: username.clone(),
            display_name: display_name.clone(),
            password_hash,
            roles: roles.clone(),
        },
    };
    let proposed = state
        .client
        .propose_meta(command, traceparent(&headers).as_ref())
        .await
        .map_err(|error| Problem::from_propose(&error))?;
    match proposed.reply {
        Reply::Accepted(Accepted::Meta(MetaAccepted::UserRegistered { user, username })) => {
            tracing::info!(user = user.0, "account registered");
            let json = UserJson {
                id: user.0,
                username: username.to_string(),
                display_name: display_name.to_string(),
                roles: role_names(&roles),
                status: "active",
                suspended_reason: None,
                created_at_us: proposed.timestamp.0,
            };
            Ok((StatusCode::CREATED, axum::Json(json)))
        }
        Reply::Rejected(code) => Err(Problem::rejected(code)),
        Reply::Accepted(other) => Err(unexpected(&other)),
    }
}

/// 500 for an acceptance of another kind than the command's (a bug).
pub fn unexpected(accepted: &Accepted) -> Problem {
    tracing::error!(
        ?accepted,
        "the cluster answered with an unexpected acceptance"
    );
    Problem::internal()
}

/// The signed-in account.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "accounts",
    responses(
        (status = 200, body = UserJson),
        (status = 401, body = Problem, description = "unauthorized or token_expired"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn me(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<axum::Json<UserJson>, Problem> {
    let read = state
        .client
        .read_user(UserKey::Id(principal.user), ReadConsistency::Linearizable)
        .await
        .map_err(|error| Problem::from_client(&error))?;
    let credentials = read
        .credentials
        .ok_or_else(|| Problem::not_found("the account no longer exists"))?;
    Ok(axum::Json(UserJson::from(&credentials.summary)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_up_roles_default_to_bidder_and_never_include_admin() {
        assert_eq!(
            parse_signup_roles(None).expect("default"),
            [Role::Bidder].into_iter().collect()
        );
        let both = ["seller".to_owned(), "bidder".to_owned()];
        assert_eq!(parse_signup_roles(Some(&both)).expect("ok").len(), 2);
        let admin = ["admin".to_owned()];
        assert_eq!(
            parse_signup_roles(Some(&admin)).expect_err("admin").status,
            403
        );
        assert_eq!(
            parse_signup_roles(Some(&[])).expect_err("empty").status,
            400
        );
        let unknown = ["king".to_owned()];
        assert_eq!(
            parse_signup_roles(Some(&unknown)).expect_err("x").status,
            400
        );
    }

    #[test]
    fn a_register_body_never_debug_prints_the_password() {
        let body = RegisterBody {
            username: "ana".into(),
            display_name: "Ana".into(),
            password: "hunter2hunter2".into(),
            roles: None,
        };
        assert!(!format!("{body:?}").contains("hunter2"));
    }
}
