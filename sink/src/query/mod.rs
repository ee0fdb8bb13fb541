//! Read queries over the sink's tables: the one home of the SQL behind the gateway's history
//! routes and `martelo audit`.
//!
//! ```text
//!   gateway /v1/…/history, /v1/me/…, /v1/audit ─┐
//!                                              ├─► query::{history, audit} ─► Postgres (read pool)
//!   martelo audit (CLI) ─────────────────────────┘        │
//!                                                        └─► typed rows (serde) + next cursor
//! ```
//!
//! - [`history`]: an auction's bid history (public fields only), closed auctions with their
//!   outcome, a user's own bids and wins;
//! - [`audit`]: the admin audit search over the raw `events` stream, and its CSV rendering;
//! - [`cursor`]: the opaque keyset cursors, parsed and checked at the edge.
//!
//! Every query is keyset-paginated (never `OFFSET`), takes a checked [`Limit`] and asks for
//! one row more than the page to know whether another page follows. Every query is served by
//! an index (docs/QUERIES.md shows the plans; `sink/tests/query.rs` asserts there is no
//! sequential scan). Filters are added to the SQL only when given, so each combination is a
//! plain statement the planner sees whole, never a `$1 IS NULL OR …` that a generic plan
//! cannot use an index for.
//!
//! The queries take a [`PgPool`]; [`connect_reader`] makes a small lazy pool with a
//! statement timeout shorter than the gateway's request timeout.

pub mod audit;
pub mod cursor;
pub mod history;

use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder};

use crate::sql_time::push_ts;

/// The database error inside [`QueryError::Database`], re-exported likewise.
pub use sqlx::Error as DatabaseError;
/// The pool type the queries take, re-exported so callers need no sqlx dependency.
pub use sqlx::postgres::PgPool;

pub use audit::{AuditFilter, AuditQuery, AuditRow, audit_csv, search_audit};
pub use cursor::CursorError;
pub use history::{
    BidHistoryQuery, ClosedAuctionRow, ClosedAuctionsQuery, HistoryBidRow, ResultFilter,
    UserBidRow, UserBidsQuery, UserWinRow, UserWinsQuery, bid_history, closed_auctions, user_bids,
    user_wins,
};

/// Largest page of any paged query.
pub const PAGE_ROWS_MAX: u32 = 200;
/// Page size when the caller names none.
pub const PAGE_ROWS_DEFAULT: u32 = 50;
/// Most rows one CSV export holds; a longer result ends with a cursor to continue from.
pub const EXPORT_ROWS_MAX: u32 = 100_000;
/// Statement timeout of the read pool's sessions: shorter than the gateway's default request
/// timeout (10 s), so a slow query fails as a query, not as a dropped request.
pub const READ_STATEMENT_TIMEOUT_MS: u32 = 5_000;
/// How long a reader waits for a connection (or to connect) before the query fails.
pub const READ_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

const _: () = assert!(PAGE_ROWS_DEFAULT <= PAGE_ROWS_MAX && PAGE_ROWS_MAX <= EXPORT_ROWS_MAX);

/// Why a query was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The cursor is not one this query issued (malformed, or from another query).
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The page size is outside `1..=max`.
    #[error("limit {limit} is outside 1..={max}")]
    Limit { limit: u64, max: u32 },
    /// A filter value cannot match anything valid (a time or seq above `i64::MAX`, an empty
    /// range). Ids are never refused: every `u64` has its stored form ([`crate::ids`]).
    #[error("{field}: {reason}")]
    Filter { field: &'static str, reason: String },
    /// Postgres failed or is unreachable.
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
}

impl QueryError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Cursor(_) => "invalid_cursor",
            QueryError::Limit { .. } => "invalid_limit",
            QueryError::Filter { .. } => "invalid_filter",
            QueryError::Database(_) => "database",
        }
    }

    /// Whether the caller's input is at fault (400), rather than the database (503).
    pub fn is_input(&self) -> bool {
        !matches!(self, QueryError::Database(_))
    }
}

/// A checked row count: a page (`1..=PAGE_ROWS_MAX`) or an export (`1..=EXPORT_ROWS_MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    /// A page of `rows` (default [`PAGE_ROWS_DEFAULT`]).
    pub fn page(rows: Option<u64>) -> Result<Limit, QueryError> {
        Limit::within(rows.unwrap_or(u64::from(PAGE_ROWS_DEFAULT)), PAGE_ROWS_MAX)
    }

    /// An export of `rows` (default [`EXPORT_ROWS_MAX`]).
    pub fn export(rows: Option<u64>) -> Result<Limit, QueryError> {
        Limit::within(rows.unwrap_or(u64::from(EXPORT_ROWS_MAX)), EXPORT_ROWS_MAX)
    }

    fn within(limit: u64, max: u32) -> Result<Limit, QueryError> {
        match u32::try_from(limit) {
            Ok(rows) if (1..=max).contains(&rows) => Ok(Limit(rows)),
            _ => Err(QueryError::Limit { limit, max }),
        }
    }

    /// The row count.
    pub fn rows(self) -> u32 {
        self.0
    }

    /// Rows to fetch: one more than the page, to learn whether another follows.
    fn fetch(self) -> i64 {
        i64::from(self.0) + 1
    }
}

/// One page of rows, and the cursor of the next page (`None` on the last).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Cuts `rows` (fetched with [`Limit::fetch`]) to the page, and makes the next cursor from
    /// the page's last row when more rows followed.
    fn cut(mut rows: Vec<T>, limit: Limit, cursor_of: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() > limit.rows() as usize;
        rows.truncate(limit.rows() as usize);
        let next_cursor = if more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// A query whose SQL can be built with a prefix (`EXPLAIN …`) for [`explain`].
/// `Sync`, so that a future holding one (the gateway's handlers) is `Send`.
pub trait Statement: Sync {
    /// The statement, its text starting with `prefix`, with its parameters bound.
    fn build(&self, prefix: &str) -> QueryBuilder<'_, Postgres>;
}

/// The plan of `statement` as Postgres prints it: `EXPLAIN (FORMAT JSON)` when `analyze` is
/// false (nothing runs), else `EXPLAIN (ANALYZE, BUFFERS)` as text.
pub async fn explain(
    pool: &PgPool,
    statement: &dyn Statement,
    analyze: bool,
) -> Result<String, QueryError> {
    let prefix = if analyze {
        "EXPLAIN (ANALYZE, BUFFERS) "
    } else {
        "EXPLAIN (FORMAT JSON) "
    };
    let mut builder = statement.build(prefix);
    if analyze {
        let lines: Vec<String> = builder
            .build_query_scalar::<String>()
            .fetch_all(pool)
            .await?;
        return Ok(lines.join("\n"));
    }
    // FORMAT JSON answers one `json` value, not lines of text.
    let value: serde_json::Value = builder
        .build_query_scalar::<serde_json::Value>()
        .fetch_one(pool)
        .await?;
    Ok(value.to_string())
}

/// The SQL text of `statement` (without a prefix), as the docs show it.
pub fn sql_of(statement: &dyn Statement) -> String {
    statement.build("").sql().to_owned()
}

/// A small lazy pool for the read queries on `url`: at most `connections_max` connections,
/// sessions with a [`READ_STATEMENT_TIMEOUT_MS`] statement timeout and
/// `default_transaction_read_only`, so a reader can never write.
pub fn connect_reader(
    url: &crate::PostgresUrl,
    connections_max: u32,
) -> Result<PgPool, QueryError> {
    let options: PgConnectOptions = url.expose().parse()?;
    let options = options.application_name("martelo-history").options([
        ("statement_timeout", READ_STATEMENT_TIMEOUT_MS.to_string()),
        ("default_transaction_read_only", "on".to_owned()),
    ]);
    Ok(PgPoolOptions::new()
        .max_connections(connections_max.max(1))
        .acquire_timeout(READ_ACQUIRE_TIMEOUT)
        .connect_lazy_with(options))
}

/// An id given as `u64` (the engine's) as the BIGINT it is stored as ([`crate::ids`]).
fn id(value: u64) -> i64 {
    crate::ids::to_bigint(value)
}

/// A seq or a time given as `u64` as the BIGINT it is stored as; above `i64::MAX` no stored
/// value can match, so it is refused rather than wrapped.
fn bound(field: &'static str, value: u64) -> Result<i64, QueryError> {
    i64::try_from(value).map_err(|_| QueryError::Filter {
        field,
        reason: format!("{value} is larger than any stored value"),
    })
}

/// Runs `statement` (built by its [`Statement::build`]) and cuts the rows to a page whose
/// next cursor is `cursor_of` the last row.
async fn fetch_page<R>(
    pool: &PgPool,
    statement: &dyn Statement,
    limit: Limit,
    cursor_of: impl Fn(&R) -> String,
) -> Result<Page<R>, QueryError>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let rows = statement
        .build("")
        .build_query_as::<R>()
        .fetch_all(pool)
        .await?;
    Ok(Page::cut(rows, limit, cursor_of))
}

/// Pushes the keyset condition of a page that continues after `(at, tie…)` in an order of
/// `column DESC` then the tie-break ascending: ` AND column <= at AND (column < at OR tie)`.
/// A row comparison cannot mix directions; the first half bounds the index scan, the
/// second picks up the rows of the same instant after the cursor's.
fn push_after_newest(
    sql: &mut QueryBuilder<'_, Postgres>,
    column: &str,
    at: i64,
    tie: impl FnOnce(&mut QueryBuilder<'_, Postgres>),
) {
    sql.push(format!(" AND {column} <= "));
    push_ts(sql, at);
    sql.push(format!(" AND ({column} < "));
    push_ts(sql, at);
    sql.push(" OR ");
    tie(sql);
    sql.push(")");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_their_range_are_refused_with_the_range() {
        assert_eq!(Limit::page(None).unwrap().rows(), PAGE_ROWS_DEFAULT);
        assert_eq!(Limit::page(Some(200)).unwrap().rows(), 200);
        for bad in [0, 201, u64::MAX] {
            let error = Limit::page(Some(bad)).unwrap_err();
            assert_eq!(error.code(), "invalid_limit");
            assert!(error.to_string().contains("1..=200"), "{error}");
        }
        assert_eq!(Limit::export(None).unwrap().rows(), EXPORT_ROWS_MAX);
        assert!(Limit::export(Some(100_001)).is_err());
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_followed() {
        let limit = Limit::page(Some(2)).unwrap();
        let full = Page::cut(vec![1, 2, 3], limit, |n| n.to_string());
        assert_eq!(
            (full.items, full.next_cursor),
            (vec![1, 2], Some("2".into()))
        );
        let last = Page::cut(vec![1, 2], limit, |n| n.to_string());
        assert_eq!((last.items, last.next_cursor), (vec![1, 2], None));
    }

    #[test]
    fn every_id_has_a_stored_form_but_seqs_and_times_above_i64_max_are_refused() {
        assert_eq!(id(7), 7);
        assert_eq!(id(u64::MAX), -1);
        assert_eq!(bound("after_seq", 7).unwrap(), 7);
        assert_eq!(
            bound("after_seq", u64::MAX).unwrap_err().code(),
            "invalid_filter"
        );
    }
}
