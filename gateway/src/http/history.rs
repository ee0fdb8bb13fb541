//! History and audit, read from the sink's Postgres (not from the cluster): an auction's bid
//! history, closed auctions with their outcome, the caller's own bids and wins, and the
//! admin audit search with CSV export.
//!
//! Every route needs a signed-in caller; `/v1/audit` needs the admin role. The SQL lives in
//! `martelo_sink::query` (shared with `martelo audit`); this file only parses the query
//! string, picks the page size, and maps errors to problems:
//! - a bad cursor, limit or filter is 400 `invalid_argument`, with the reason;
//! - no Postgres configured, or Postgres failing, is 503 `history_unavailable`.
//!
//! These rows lag the cluster by the sink's lag (normally well under a second): a bid just
//! accepted may not be in its auction's history yet.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use martelo_engine::Role;
use martelo_sink::query::{
    self, AuditFilter, AuditQuery, BidHistoryQuery, ClosedAuctionsQuery, Limit, PgPool, QueryError,
    ResultFilter, UserBidsQuery, UserWinsQuery,
};
use serde::{Deserialize, Serialize};

use crate::error::{Problem, codes};
use crate::http::extract::{Authenticated, Path, Query};
use crate::state::AppState;
use crate::telemetry;

/// The read pool, or 503 `history_unavailable` when the gateway has none.
fn pool<'a>(state: &'a AppState, name: &'static str) -> Result<&'a PgPool, Problem> {
    state.history.as_ref().ok_or_else(|| {
        metrics::counter!(
            telemetry::HISTORY_QUERY_ERRORS_TOTAL,
            "query" => name,
            "code" => codes::HISTORY_UNAVAILABLE
        )
        .increment(1);
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::HISTORY_UNAVAILABLE,
            "this gateway has no history database: start it with --postgres",
        )
    })
}

/// A query's error as a problem (and counted).
fn query_problem(name: &'static str, error: &QueryError) -> Problem {
    metrics::counter!(
        telemetry::HISTORY_QUERY_ERRORS_TOTAL,
        "query" => name,
        "code" => error.code()
    )
    .increment(1);
    if error.is_input() {
        return Problem::invalid(error.to_string());
    }
    tracing::warn!(query = name, %error, "history query failed");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        codes::HISTORY_UNAVAILABLE,
        "the history database did not answer; retry later",
    )
    .retry_after(1)
}

/// Runs `run` as the query `name`: timed, errors counted and mapped.
async fn timed<T>(
    name: &'static str,
    run: impl Future<Output = Result<T, QueryError>>,
) -> Result<T, Problem> {
    let started = Instant::now();
    let result = run.await;
    metrics::histogram!(telemetry::HISTORY_QUERY_SECONDS, "query" => name)
        .record(started.elapsed().as_secs_f64());
    result.map_err(|error| query_problem(name, &error))
}

/// A page of rows (see docs/API.md, "History and audit", for each row's fields).
#[derive(Clone, Debug, Serialize)]
pub struct HistoryPage<T: Serialize> {
    pub items: Vec<T>,
    /// Pass back (as `cursor`, or `after_seq` for a bid history) for the next page; `null`
    /// on the last.
    pub next_cursor: Option<String>,
}

/// [`HistoryPage`] as the OpenAPI document shows it (rows are tabled in docs/API.md).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPageJson {
    /// The rows of this page.
    pub items: Vec<serde_json::Value>,
    /// Pass back for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

impl<T: Serialize> From<query::Page<T>> for HistoryPage<T> {
    fn from(page: query::Page<T>) -> HistoryPage<T> {
        HistoryPage {
            items: page.items,
            next_cursor: page.next_cursor,
        }
    }
}

/// Query of `GET /v1/auctions/{id}/history`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BidHistoryParams {
    /// Only bids with a seq above this (the previous page's `next_cursor`).
    pub after_seq: Option<u64>,
    /// 1 to 200 (default 50).
    pub limit: Option<u64>,
}

/// An auction's accepted bids in seq order: public fields only (bidder id and display name,
/// amount, the visible price and leader after the bid, time, void).
#[utoipa::path(
    get,
    path = "/v1/auctions/{id}/history",
    tag = "history",
    params(("id" = u64, Path, description = "The auction id"), BidHistoryParams),
    responses(
        (status = 200, body = HistoryPageJson),
        (status = 400, body = Problem, description = "invalid_argument: limit out of range"),
        (status = 401, body = Problem, description = "unauthorized"),
        (status = 503, body = Problem, description = "history_unavailable"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn auction_history(
    State(state): State<AppState>,
    Authenticated(_principal): Authenticated,
    Path(auction): Path<u64>,
    Query(params): Query<BidHistoryParams>,
) -> Result<axum::Json<HistoryPage<query::HistoryBidRow>>, Problem> {
    const NAME: &str = "bid_history";
    let pool = pool(&state, NAME)?;
    let page = timed(NAME, async {
        let query = BidHistoryQuery::new(auction, params.after_seq, Limit::page(params.limit)?)?;
        query::bid_history(pool, &query).await
    })
    .await?;
    Ok(axum::Json(page.into()))
}

/// Query of `GET /v1/history/auctions`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ClosedParams {
    /// `sold`, `unsold` or `cancelled`.
    pub result: Option<String>,
    /// Only auctions of this seller.
    pub seller: Option<u64>,
    /// Only auctions this user won.
    pub winner: Option<u64>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<u64>,
}

/// Closed auctions with their outcome, newest first, filtered.
#[utoipa::path(
    get,
    path = "/v1/history/auctions",
    tag = "history",
    params(ClosedParams),
    responses(
        (status = 200, body = HistoryPageJson),
        (status = 400, body = Problem, description = "invalid_argument: bad cursor, filter or limit"),
        (status = 401, body = Problem, description = "unauthorized"),
        (status = 503, body = Problem, description = "history_unavailable"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn closed_auctions(
    State(state): State<AppState>,
    Authenticated(_principal): Authenticated,
    Query(params): Query<ClosedParams>,
) -> Result<axum::Json<HistoryPage<query::ClosedAuctionRow>>, Problem> {
    const NAME: &str = "closed_auctions";
    let pool = pool(&state, NAME)?;
    let page = timed(NAME, async {
        let result = params
            .result
            .as_deref()
            .map(str::parse::<ResultFilter>)
            .transpose()?;
        let query = ClosedAuctionsQuery::new(
            result,
            params.seller,
            params.winner,
            params.cursor.as_deref(),
            Limit::page(params.limit)?,
        )?;
        query::closed_auctions(pool, &query).await
    })
    .await?;
    Ok(axum::Json(page.into()))
}

/// Query of `GET /v1/me/bids` and `GET /v1/me/wins`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MineParams {
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<u64>,
}

/// The caller's own bids, newest first, with each auction's title, status and whether the
/// caller leads it now.
#[utoipa::path(
    get,
    path = "/v1/me/bids",
    tag = "history",
    params(MineParams),
    responses(
        (status = 200, body = HistoryPageJson),
        (status = 400, body = Problem, description = "invalid_argument: bad cursor or limit"),
        (status = 401, body = Problem, description = "unauthorized"),
        (status = 503, body = Problem, description = "history_unavailable"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn my_bids(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(params): Query<MineParams>,
) -> Result<axum::Json<HistoryPage<query::UserBidRow>>, Problem> {
    const NAME: &str = "user_bids";
    let pool = pool(&state, NAME)?;
    let page = timed(NAME, async {
        let query = UserBidsQuery::new(
            principal.user.0,
            params.cursor.as_deref(),
            Limit::page(params.limit)?,
        )?;
        query::user_bids(pool, &query).await
    })
    .await?;
    Ok(axum::Json(page.into()))
}

/// The auctions the caller won, newest first.
#[utoipa::path(
    get,
    path = "/v1/me/wins",
    tag = "history",
    params(MineParams),
    responses(
        (status = 200, body = HistoryPageJson),
        (status = 400, body = Problem, description = "invalid_argument: bad cursor or limit"),
        (status = 401, body = Problem, description = "unauthorized"),
        (status = 503, body = Problem, description = "history_unavailable"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn my_wins(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(params): Query<MineParams>,
) -> Result<axum::Json<HistoryPage<query::UserWinRow>>, Problem> {
    const NAME: &str = "user_wins";
    let pool = pool(&state, NAME)?;
    let page = timed(NAME, async {
        let query = UserWinsQuery::new(
            principal.user.0,
            params.cursor.as_deref(),
            Limit::page(params.limit)?,
        )?;
        query::user_wins(pool, &query).await
    })
    .await?;
    Ok(axum::Json(page.into()))
}

/// Query of `GET /v1/audit`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// The user the event is about (bidder, seller, account).
    pub user: Option<u64>,
    /// The user who did it (admin actions, cancellations).
    pub actor: Option<u64>,
    pub auction: Option<u64>,
    /// The event kind, e.g. `user_suspended`, `bid_accepted` (docs/QUERIES.md lists them).
    pub kind: Option<String>,
    /// From this time, inclusive: RFC 3339 (`2026-11-29T12:00:00Z`) or microseconds since
    /// the Unix epoch.
    pub from: Option<String>,
    /// Up to this time, exclusive: RFC 3339 or microseconds since the Unix epoch.
    pub to: Option<String>,
    /// The previous page's `next_cursor` (JSON) or `X-Next-Cursor` header (CSV).
    pub cursor: Option<String>,
    /// JSON: 1 to 200 (default 50). CSV: 1 to 100000 (default 100000).
    pub limit: Option<u64>,
    /// `csv` for a CSV download (or send `Accept: text/csv`); JSON otherwise.
    pub format: Option<String>,
}

/// A time bound of the audit search, checked ([`query::audit::AuditTime`]); 400 when bad.
fn audit_time(text: Option<&str>) -> Result<Option<u64>, Problem> {
    text.map(|text| {
        text.parse::<query::audit::AuditTime>()
            .map(|time| time.0)
            .map_err(|error| query_problem("audit", &error))
    })
    .transpose()
}

/// The response header that carries the next cursor of a CSV export.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// The admin audit search over every committed event, oldest first; JSON pages, or CSV.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "admin",
    params(AuditParams),
    responses(
        (status = 200, body = HistoryPageJson, description = "JSON, or text/csv (attachment) with `format=csv` or `Accept: text/csv`; the CSV's next cursor is in `X-Next-Cursor`"),
        (status = 400, body = Problem, description = "invalid_argument: bad cursor, filter or limit"),
        (status = 401, body = Problem, description = "unauthorized"),
        (status = 403, body = Problem, description = "forbidden: not an admin"),
        (status = 503, body = Problem, description = "history_unavailable"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn audit(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    Query(params): Query<AuditParams>,
) -> Result<Response, Problem> {
    const NAME: &str = "audit";
    if !principal.has(Role::Admin) {
        return Err(Problem::forbidden("the audit search needs the admin role"));
    }
    let csv = wants_csv(params.format.as_deref(), &headers)?;
    let pool = pool(&state, NAME)?;
    let filter = AuditFilter {
        user: params.user,
        actor: params.actor,
        auction: params.auction,
        kind: params.kind.clone(),
        from_us: audit_time(params.from.as_deref())?,
        to_us: audit_time(params.to.as_deref())?,
    };
    let page = timed(NAME, async {
        let limit = if csv {
            Limit::export(params.limit)?
        } else {
            Limit::page(params.limit)?
        };
        let query = AuditQuery::new(&filter, params.cursor.as_deref(), limit)?;
        query::search_audit(pool, &query).await
    })
    .await?;
    if !csv {
        return Ok(axum::Json(HistoryPage::from(page)).into_response());
    }
    let mut response = query::audit_csv(&page.items).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response_headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"martelo-audit.csv\""),
    );
    if let Some(next) = page
        .next_cursor
        .and_then(|next| HeaderValue::from_str(&next).ok())
    {
        response_headers.insert(NEXT_CURSOR_HEADER, next);
    }
    Ok(response)
}

/// Whether the caller asked for CSV: `format=csv`, or no `format` and an `Accept` that names
/// `text/csv`.
fn wants_csv(format: Option<&str>, headers: &HeaderMap) -> Result<bool, Problem> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(_) => Err(Problem::invalid("format is csv or json")),
        None => Ok(headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|accept| accept.to_ascii_lowercase().contains("text/csv"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_chosen_by_format_or_by_accept() {
        let mut accept_csv = HeaderMap::new();
        accept_csv.insert(header::ACCEPT, HeaderValue::from_static("text/csv"));
        assert!(wants_csv(Some("csv"), &HeaderMap::new()).unwrap());
        assert!(wants_csv(None, &accept_csv).unwrap());
        assert!(!wants_csv(Some("json"), &accept_csv).unwrap());
        assert!(!wants_csv(None, &HeaderMap::new()).unwrap());
        assert_eq!(
            wants_csv(Some("xml"), &HeaderMap::new())
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn input_errors_are_400_and_database_errors_503_history_unavailable() {
        let bad_limit = query_problem("audit", &Limit::page(Some(0)).unwrap_err());
        assert_eq!(
            (bad_limit.status, bad_limit.code.as_ref()),
            (400, "invalid_argument")
        );
        let down = query_problem("audit", &QueryError::Database(sqlx_pool_timeout()));
        assert_eq!(
            (down.status, down.code.as_ref()),
            (503, "history_unavailable")
        );
        assert_eq!(down.retry_after_secs, Some(1));
    }

    fn sqlx_pool_timeout() -> martelo_sink::query::DatabaseError {
        martelo_sink::query::DatabaseError::PoolTimedOut
    }
}
