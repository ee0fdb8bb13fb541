//! The admin audit search over the raw committed event stream (`events`): by the user an
//! event is about, the actor who did it, the auction, the kind, and a time range
//! `[from, to)`, oldest first, keyset-paginated on `(at, group_id, log_index, position)`;
//! and the same rows as CSV ([`audit_csv`]).
//!
//! Admin actions (suspensions, role changes, voids, cancellations) are events too, with their
//! actor where the event names one, so one search covers them: `kind=user_suspended`,
//! `actor=ID`. So are the commands that went through the log and were rejected: the sink
//! writes each as an `events` row of kind `rejected` (no seq; its sender as both `user` and
//! `actor`; the payload names the auction, actor, stable code and time), so `kind=rejected`
//! lists them and `user=ID` shows a user's rejections among their events. Every row carries
//! the `trace_id` of the command's entry when it was traced. Every filter matches an index that ends in the keyset's columns
//! (`events_by_user`, `events_by_actor`, `events_by_auction`, `events_by_kind`,
//! `events_by_time`).

use serde::Serialize;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder};

use super::cursor::{self, CursorKind};
use super::{Limit, Page, QueryError, Statement, bound, fetch_page, id};
use crate::ids::StoredOptionalId;
use crate::sql_time::{micros_of, push_ts};

/// Longest `kind` filter; kinds are `snake_case` names such as `bid_accepted`.
pub const KIND_BYTES_MAX: usize = 64;

/// What to search for; every field given must match. Times are microseconds since the Unix
/// epoch (cluster time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The user the event is about (bidder, seller, account).
    pub user: Option<u64>,
    /// The user who did it (admin actions, cancellations, role changes).
    pub actor: Option<u64>,
    pub auction: Option<u64>,
    /// The event's kind (`bid_accepted`, `user_suspended`, …: docs/QUERIES.md lists them).
    pub kind: Option<String>,
    /// From this time, inclusive.
    pub from_us: Option<u64>,
    /// Up to this time, exclusive.
    pub to_us: Option<u64>,
}

/// A bound of the audit search's time range, as a person or a program writes it: RFC 3339
/// (`2026-11-29T12:00:00Z`, any offset, up to microseconds) or microseconds since the Unix
/// epoch (`1795953600000000`). Cluster time is UTC microseconds; a finer fraction is refused
/// rather than rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditTime(pub u64);

/// The longest time text taken (an RFC 3339 time with nanoseconds and an offset is 35 bytes).
pub const AUDIT_TIME_BYTES_MAX: usize = 64;

impl std::str::FromStr for AuditTime {
    type Err = QueryError;

    fn from_str(text: &str) -> Result<AuditTime, QueryError> {
        let refuse = |reason: &str| QueryError::Filter {
            field: "time",
            reason: reason.to_owned(),
        };
        if text.len() > AUDIT_TIME_BYTES_MAX {
            return Err(refuse("longer than 64 bytes"));
        }
        if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
            return text
                .parse()
                .map(AuditTime)
                .map_err(|_| refuse("microseconds out of range"));
        }
        let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| {
            refuse("expected RFC 3339 (2026-11-29T12:00:00Z) or microseconds since the epoch")
        })?;
        if time.timestamp_subsec_nanos() % 1_000 != 0 {
            return Err(refuse("finer than a microsecond"));
        }
        u64::try_from(time.timestamp_micros())
            .map(AuditTime)
            .map_err(|_| refuse("before 1970"))
    }
}

/// One committed event, as the audit search returns it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    /// Commit time, RFC 3339 in UTC with microseconds.
    pub at: String,
    /// Commit time, microseconds since the Unix epoch (cluster time).
    pub at_us: i64,
    pub group_id: i64,
    pub log_index: i64,
    /// The event's index within its entry.
    pub position: i32,
    pub kind: String,
    pub seq: Option<i64>,
    /// Ids are the engine's `u64` ([`crate::ids`]).
    #[sqlx(try_from = "StoredOptionalId")]
    pub auction_id: Option<u64>,
    #[sqlx(try_from = "StoredOptionalId")]
    pub user_id: Option<u64>,
    #[sqlx(try_from = "StoredOptionalId")]
    pub actor_id: Option<u64>,
    /// The event itself, as the engine serialises it (for kind `rejected`, the rejection).
    pub payload: serde_json::Value,
    /// The trace id (32 hex digits) of the traced command whose entry this came from.
    pub trace_id: Option<String>,
}

/// A checked audit search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    user: Option<i64>,
    actor: Option<i64>,
    auction: Option<i64>,
    kind: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    after: Option<([i64; 3], i32)>,
    limit: Limit,
}

impl AuditQuery {
    /// Checks `filter` and `cursor` (a `next_cursor` of the same search).
    pub fn new(
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: Limit,
    ) -> Result<Self, QueryError> {
        let filter_error = |field, reason: &str| QueryError::Filter {
            field,
            reason: reason.to_owned(),
        };
        if let Some(kind) = &filter.kind
            && (kind.is_empty()
                || kind.len() > KIND_BYTES_MAX
                || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            return Err(filter_error(
                "kind",
                "1 to 64 lower-case letters and underscores",
            ));
        }
        let from = filter.from_us.map(|at| bound("from", at)).transpose()?;
        let to = filter.to_us.map(|at| bound("to", at)).transpose()?;
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(filter_error("to", "must be later than from"));
        }
        Ok(AuditQuery {
            user: filter.user.map(id),
            actor: filter.actor.map(id),
            auction: filter.auction.map(id),
            kind: filter.kind.clone(),
            from,
            to,
            after: cursor.map(audit_cursor).transpose()?,
            limit,
        })
    }
}

/// The key in an audit cursor; `position` is an INTEGER column, so it must fit one.
fn audit_cursor(text: &str) -> Result<([i64; 3], i32), QueryError> {
    let [at, group_id, log_index, position] = cursor::decode::<4>(CursorKind::Audit, text)?;
    let position = i32::try_from(position).map_err(|_| cursor::CursorError {
        reason: "a field is out of range",
    })?;
    Ok((
        [
            cursor::bigint(at)?,
            cursor::bigint(group_id)?,
            cursor::bigint(log_index)?,
        ],
        position,
    ))
}

impl Statement for AuditQuery {
    fn build(&self, prefix: &str) -> QueryBuilder<'_, Postgres> {
        let mut sql = QueryBuilder::new(prefix);
        sql.push(format!(
            "SELECT to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS at, \
             {} AS at_us, e.group_id, e.log_index, e.position, e.kind, e.seq, e.auction_id, \
             e.user_id, e.actor_id, e.payload, e.trace_id FROM events e",
            micros_of("e.at")
        ));
        let mut first = true;
        let mut and = |sql: &mut QueryBuilder<'_, Postgres>, condition: &str| {
            sql.push(if first { " WHERE " } else { " AND " });
            sql.push(condition);
            first = false;
        };
        for (column, value) in [
            ("e.user_id = ", self.user),
            ("e.actor_id = ", self.actor),
            ("e.auction_id = ", self.auction),
        ] {
            if let Some(value) = value {
                and(&mut sql, column);
                sql.push_bind(value);
            }
        }
        if let Some(kind) = &self.kind {
            and(&mut sql, "e.kind = ");
            sql.push_bind(kind.as_str());
        }
        if let Some(from) = self.from {
            and(&mut sql, "e.at >= ");
            push_ts(&mut sql, from);
        }
        if let Some(to) = self.to {
            and(&mut sql, "e.at < ");
            push_ts(&mut sql, to);
        }
        if let Some(([at, group_id, log_index], position)) = self.after {
            and(&mut sql, "(e.at, e.group_id, e.log_index, e.position) > (");
            push_ts(&mut sql, at);
            sql.push(", ");
            sql.push_bind(group_id);
            sql.push(", ");
            sql.push_bind(log_index);
            sql.push(", ");
            // `position` is INTEGER: bound as one, so the row comparison keeps the index.
            sql.push_bind(position);
            sql.push(")");
        }
        sql.push(" ORDER BY e.at, e.group_id, e.log_index, e.position LIMIT ");
        sql.push_bind(self.limit.fetch());
        sql
    }
}

/// One page (or export) of the audit search.
pub async fn search_audit(pool: &PgPool, query: &AuditQuery) -> Result<Page<AuditRow>, QueryError> {
    fetch_page(pool, query, query.limit, |row: &AuditRow| {
        cursor::encode(
            CursorKind::Audit,
            &[
                cursor::field(row.at_us),
                cursor::field(row.group_id),
                cursor::field(row.log_index),
                cursor::field(i64::from(row.position)),
            ],
        )
    })
    .await
}

/// The CSV columns, in order (`trace_id` appended last, after the payload, so older readers'
/// column positions hold).
pub const AUDIT_CSV_HEADER: [&str; 12] = [
    "at",
    "at_us",
    "group_id",
    "log_index",
    "position",
    "kind",
    "seq",
    "auction_id",
    "user_id",
    "actor_id",
    "payload",
    "trace_id",
];

/// `rows` as CSV (RFC 4180: comma-separated, CRLF line ends, a header line). Fields with a
/// comma, quote or line break are quoted, quotes doubled; a text field that a spreadsheet
/// would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'`.
pub fn audit_csv(rows: &[AuditRow]) -> String {
    let mut out = String::new();
    push_line(
        &mut out,
        AUDIT_CSV_HEADER.iter().map(|name| (*name).to_owned()),
    );
    let number = |value: Option<i64>| value.map(|value| value.to_string()).unwrap_or_default();
    let id = |value: Option<u64>| value.map(|value| value.to_string()).unwrap_or_default();
    for row in rows {
        push_line(
            &mut out,
            [
                text_field(&row.at),
                row.at_us.to_string(),
                row.group_id.to_string(),
                row.log_index.to_string(),
                row.position.to_string(),
                text_field(&row.kind),
                number(row.seq),
                id(row.auction_id),
                id(row.user_id),
                id(row.actor_id),
                text_field(&row.payload.to_string()),
                row.trace_id.clone().unwrap_or_default(),
            ]
            .into_iter(),
        );
    }
    out
}

fn push_line(out: &mut String, fields: impl Iterator<Item = String>) {
    for (index, field) in fields.enumerate() {
        if index > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&field);
        }
    }
    out.push_str("\r\n");
}

/// A text value made safe to open in a spreadsheet.
fn text_field(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_times_are_rfc_3339_or_microseconds_and_nothing_else() {
        let parse = |text: &str| text.parse::<AuditTime>();
        assert_eq!(
            parse("1795953600000000").ok(),
            Some(AuditTime(1_795_953_600_000_000))
        );
        assert_eq!(
            parse("2026-11-29T12:00:00Z").ok(),
            Some(AuditTime(1_795_953_600_000_000))
        );
        assert_eq!(
            parse("2026-11-29T13:00:00.000001+01:00").ok(),
            Some(AuditTime(1_795_953_600_000_001))
        );
        for bad in [
            "",
            "yesterday",
            "2026-11-29",
            "2026-11-29T12:00:00.0000001Z",
            "1969-12-31T23:59:59Z",
            "99999999999999999999999",
            &"1".repeat(65),
        ] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(error.code(), "invalid_filter", "{bad}");
        }
    }

    fn row(kind: &str, payload: serde_json::Value) -> AuditRow {
        AuditRow {
            at: "2027-01-15T08:00:00.000001Z".into(),
            at_us: 1_800_000_000_000_001,
            group_id: 1,
            log_index: 9,
            position: 0,
            kind: kind.into(),
            seq: Some(3),
            auction_id: None,
            user_id: Some(20),
            actor_id: None,
            payload,
            trace_id: None,
        }
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks_and_defuses_formulas() {
        let csv = audit_csv(&[
            row("bid_accepted", serde_json::json!({"a": "x,\"y\"\n"})),
            row("=cmd", serde_json::json!(null)),
        ]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], AUDIT_CSV_HEADER.join(","));
        assert_eq!(
            lines[1],
            "2027-01-15T08:00:00.000001Z,1800000000000001,1,9,0,bid_accepted,3,,20,,\
             \"{\"\"a\"\":\"\"x,\\\"\"y\\\"\"\\n\"\"}\","
        );
        assert!(lines[2].contains(",'=cmd,"), "{}", lines[2]);
        assert_eq!(lines.last(), Some(&""), "ends with CRLF");
    }

    #[test]
    fn filters_are_checked_at_the_edge() {
        let limit = Limit::page(None).unwrap();
        let bad_kind = AuditFilter {
            kind: Some("Bid; DROP".into()),
            ..AuditFilter::default()
        };
        assert_eq!(
            AuditQuery::new(&bad_kind, None, limit).unwrap_err().code(),
            "invalid_filter"
        );
        let empty_range = AuditFilter {
            from_us: Some(10),
            to_us: Some(10),
            ..AuditFilter::default()
        };
        assert!(AuditQuery::new(&empty_range, None, limit).is_err());
        let foreign = cursor::encode(CursorKind::Closed, &[1, 2]);
        assert_eq!(
            AuditQuery::new(&AuditFilter::default(), Some(&foreign), limit)
                .unwrap_err()
                .code(),
            "invalid_cursor"
        );
    }
}
