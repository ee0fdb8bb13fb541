//! Admin routes over accounts: list and search, suspend and reinstate, grant and revoke
//! roles. The token must name `admin`; the meta group re-checks the caller's *current*
//! roles on every command, so a demoted admin's old token does not help.
//!
//! Suspending is two parts: `SuspendUser` in the meta group (the account, its sessions),
//! then the engine's `SuspendBidder` in every auction group (so bids are refused by the
//! groups themselves). The second part is reported per group: a group that did not confirm
//! is listed, and repeating the call (same `Idempotency-Key`, or a new one) completes it.
//! Reinstating mirrors it.

use axum::extract::State;
use axum::http::HeaderMap;
use martelo_client::ReadConsistency;
use martelo_engine::meta::UserQuery;
use martelo_engine::{
    Accepted, Action, Actor, GroupId, MetaAccepted, MetaAction, MetaActor, MetaCommand,
    MetaRejectCode, Reason, RejectCode, Reply, Request, RequestId, Role, UserId,
};
use martelo_proto::Traceparent;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::error::Problem;
use crate::http::accounts::{UserJson, fresh_request_id, parse_username, role_names, unexpected};
use crate::http::extract::{Authenticated, IDEMPOTENCY_KEY, Json, Path, Query, traceparent};
use crate::state::AppState;

/// Default page size of `GET /v1/users`.
const USERS_PAGE_DEFAULT: usize = 50;

fn require_admin(principal: &Principal) -> Result<(), Problem> {
    if principal.has(Role::Admin) {
        Ok(())
    } else {
        Err(Problem::forbidden("this needs the admin role"))
    }
}

/// The request id of an admin change: the `Idempotency-Key` when given, else a fresh one.
fn request_id(headers: &HeaderMap) -> Result<RequestId, Problem> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(fresh_request_id()),
        Some(_) => RequestId::try_from(crate::http::extract::idempotency_key(headers)?)
            .map_err(|error| Problem::invalid_field(&error)),
    }
}

/// Query of `GET /v1/users`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    /// Only usernames starting with this.
    pub prefix: Option<String>,
    /// The cursor from the previous page (`next_after`).
    pub after: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<usize>,
}

/// A page of accounts.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UsersPage {
    pub users: Vec<UserJson>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next_after: Option<String>,
}

/// Lists and searches accounts (admin).
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "admin",
    params(UsersQuery),
    responses(
        (status = 200, body = UsersPage),
        (status = 403, body = Problem, description = "forbidden"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn list_users(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<UsersQuery>,
) -> Result<axum::Json<UsersPage>, Problem> {
    require_admin(&principal)?;
    let limit = query.limit.unwrap_or(USERS_PAGE_DEFAULT);
    if !(1..=martelo_engine::limits::USER_PAGE_MAX).contains(&limit) {
        return Err(Problem::invalid(format!(
            "limit is 1 to {}",
            martelo_engine::limits::USER_PAGE_MAX
        )));
    }
    let after = query.after.as_deref().map(parse_username).transpose()?;
    let prefix = query.prefix.unwrap_or_default().to_lowercase();
    if prefix.len() > martelo_engine::limits::USERNAME_CHARS_MAX {
        return Err(Problem::invalid("prefix is at most 32 characters"));
    }
    let page = state
        .client
        .list_users(
            &UserQuery {
                prefix,
                after,
                limit,
            },
            ReadConsistency::Linearizable,
        )
        .await
        .map_err(|error| Problem::from_client(&error))?;
    Ok(axum::Json(UsersPage {
        users: page.users.iter().map(UserJson::from).collect(),
        next_after: page.next_after.map(|name| name.to_string()),
    }))
}

/// The body of `POST /v1/users/{id}/suspend`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    /// 1 to 500 bytes, recorded with the suspension.
    pub reason: String,
}

/// A group that did not confirm the per-group part of a suspension or reinstatement.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct GroupFailure {
    pub group: u64,
    /// The node's or engine's code (`outcome_unknown`, `unavailable`, …).
    pub code: String,
}

/// What a suspension or reinstatement did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct StatusChange {
    pub user: u64,
    /// `suspended`, `already_suspended`, `reinstated` or `not_suspended` (meta group).
    pub account: &'static str,
    /// Auction groups that applied (or had already applied) the change.
    pub groups_confirmed: Vec<u64>,
    /// Auction groups that did not confirm: repeat the call to complete them.
    pub groups_unconfirmed: Vec<GroupFailure>,
}

async fn meta_change(
    state: &AppState,
    principal: &Principal,
    request_id: RequestId,
    action: MetaAction,
    traceparent: Option<&Traceparent>,
) -> Result<Reply, Problem> {
    let command = MetaCommand {
        actor: MetaActor::User(principal.user),
        request_id,
        action,
    };
    state
        .client
        .propose_meta(command, traceparent)
        .await
        .map(|proposed| proposed.reply)
        .map_err(|error| Problem::from_propose(&error))
}

/// Proposes `action` to every auction group; splits the groups into confirmed and not.
async fn every_group(
    state: &AppState,
    principal: &Principal,
    request_id: &RequestId,
    action: Action,
    already: RejectCode,
    traceparent: Option<&Traceparent>,
) -> (Vec<u64>, Vec<GroupFailure>) {
    let shards = u64::from(state.client.shard_count().get());
    let proposals = (1..=shards).map(|group| {
        let request = Request {
            actor: Actor {
                user: principal.user,
                role: Role::Admin,
            },
            request_id: request_id.clone(),
            action: action.clone(),
        };
        async move {
            let result = state
                .client
                .propose_with(GroupId(group), request, traceparent)
                .await;
            (group, result)
        }
    });
    let mut confirmed = Vec::new();
    let mut unconfirmed = Vec::new();
    for (group, result) in futures::future::join_all(proposals).await {
        match result {
            Ok(proposed) => match proposed.reply {
                Reply::Accepted(_) => confirmed.push(group),
                Reply::Rejected(code) if code == already => confirmed.push(group),
                Reply::Rejected(code) => unconfirmed.push(GroupFailure {
                    group,
                    code: code.as_str().to_owned(),
                }),
            },
            Err(error) => unconfirmed.push(GroupFailure {
                group,
                code: Problem::from_propose(&error).code.into_owned(),
            }),
        }
    }
    if !unconfirmed.is_empty() {
        tracing::warn!(
            ?unconfirmed,
            "some groups did not confirm a suspension change"
        );
    }
    (confirmed, unconfirmed)
}

/// Suspends a user (admin): the account, its sessions, and bidding in every group.
#[utoipa::path(
    post,
    path = "/v1/users/{id}/suspend",
    tag = "admin",
    params(("id" = u64, Path, description = "The user id")),
    request_body = SuspendBody,
    responses(
        (status = 200, body = StatusChange),
        (status = 403, body = Problem, description = "forbidden, last_admin"),
        (status = 404, body = Problem, description = "user_not_found"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn suspend(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(user): Path<u64>,
    headers: HeaderMap,
    Json(body): Json<SuspendBody>,
) -> Result<axum::Json<StatusChange>, Problem> {
    require_admin(&principal)?;
    let reason =
        Reason::try_from(body.reason.as_str()).map_err(|error| Problem::invalid_field(&error))?;
    let request_id = request_id(&headers)?;
    let trace = traceparent(&headers);
    let user = UserId(user);
    let action = MetaAction::SuspendUser {
        user,
        reason: reason.clone(),
    };
    let account = match meta_change(
        &state,
        &principal,
        request_id.clone(),
        action,
        trace.as_ref(),
    )
    .await?
    {
        Reply::Accepted(Accepted::Meta(MetaAccepted::UserSuspended { .. })) => "suspended",
        Reply::Rejected(RejectCode::Meta(MetaRejectCode::UserAlreadySuspended)) => {
            "already_suspended"
        }
        Reply::Rejected(code) => return Err(Problem::rejected(code)),
        Reply::Accepted(other) => return Err(unexpected(&other)),
    };
    let (groups_confirmed, groups_unconfirmed) = every_group(
        &state,
        &principal,
        &request_id,
        Action::SuspendBidder { user, reason },
        RejectCode::BidderAlreadySuspended,
        trace.as_ref(),
    )
    .await;
    Ok(axum::Json(StatusChange {
        user: user.0,
        account,
        groups_confirmed,
        groups_unconfirmed,
    }))
}

/// Lifts a suspension (admin). Sessions stay revoked: the user signs in again.
#[utoipa::path(
    post,
    path = "/v1/users/{id}/reinstate",
    tag = "admin",
    params(("id" = u64, Path, description = "The user id")),
    responses(
        (status = 200, body = StatusChange),
        (status = 403, body = Problem, description = "forbidden"),
        (status = 404, body = Problem, description = "user_not_found"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn reinstate(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(user): Path<u64>,
    headers: HeaderMap,
) -> Result<axum::Json<StatusChange>, Problem> {
    require_admin(&principal)?;
    let request_id = request_id(&headers)?;
    let trace = traceparent(&headers);
    let user = UserId(user);
    let action = MetaAction::ReinstateUser { user };
    let account = match meta_change(
        &state,
        &principal,
        request_id.clone(),
        action,
        trace.as_ref(),
    )
    .await?
    {
        Reply::Accepted(Accepted::Meta(MetaAccepted::UserReinstated { .. })) => "reinstated",
        Reply::Rejected(RejectCode::Meta(MetaRejectCode::UserNotSuspended)) => "not_suspended",
        Reply::Rejected(code) => return Err(Problem::rejected(code)),
        Reply::Accepted(other) => return Err(unexpected(&other)),
    };
    let (groups_confirmed, groups_unconfirmed) = every_group(
        &state,
        &principal,
        &request_id,
        Action::ReinstateBidder { user },
        RejectCode::BidderNotSuspended,
        trace.as_ref(),
    )
    .await;
    Ok(axum::Json(StatusChange {
        user: user.0,
        account,
        groups_confirmed,
        groups_unconfirmed,
    }))
}

/// A user's roles after a change.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RolesJson {
    pub user: u64,
    pub roles: Vec<String>,
}

async fn change_role(
    state: AppState,
    principal: Principal,
    headers: HeaderMap,
    user: u64,
    role: String,
    grant: bool,
) -> Result<axum::Json<RolesJson>, Problem> {
    require_admin(&principal)?;
    let role = role
        .parse::<Role>()
        .map_err(|_| Problem::not_found(format!("no role {role:?}: bidder, seller or admin")))?;
    let user = UserId(user);
    let action = if grant {
        MetaAction::GrantRole { user, role }
    } else {
        MetaAction::RevokeRole { user, role }
    };
    let reply = meta_change(
        &state,
        &principal,
        request_id(&headers)?,
        action,
        traceparent(&headers).as_ref(),
    )
    .await?;
    match reply {
        Reply::Accepted(Accepted::Meta(MetaAccepted::RolesChanged { user, roles })) => {
            Ok(axum::Json(RolesJson {
                user: user.0,
                roles: role_names(&roles),
            }))
        }
        Reply::Rejected(code) => Err(Problem::rejected(code)),
        Reply::Accepted(other) => Err(unexpected(&other)),
    }
}

/// Grants a role (admin).
#[utoipa::path(
    put,
    path = "/v1/users/{id}/roles/{role}",
    tag = "admin",
    params(("id" = u64, Path), ("role" = String, Path, description = "bidder, seller or admin")),
    responses(
        (status = 200, body = RolesJson),
        (status = 404, body = Problem, description = "user_not_found, or not_found: no such role"),
        (status = 409, body = Problem, description = "roles_unchanged"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn grant_role(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((user, role)): Path<(u64, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<RolesJson>, Problem> {
    change_role(state, principal, headers, user, role, true).await
}

/// Revokes a role (admin).
#[utoipa::path(
    delete,
    path = "/v1/users/{id}/roles/{role}",
    tag = "admin",
    params(("id" = u64, Path), ("role" = String, Path, description = "bidder, seller or admin")),
    responses(
        (status = 200, body = RolesJson),
        (status = 404, body = Problem, description = "user_not_found, or not_found: no such role"),
        (status = 409, body = Problem, description = "roles_unchanged, last_role, last_admin"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn revoke_role(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((user, role)): Path<(u64, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<RolesJson>, Problem> {
    change_role(state, principal, headers, user, role, false).await
}
