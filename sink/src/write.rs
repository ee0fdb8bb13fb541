//! The sink's Postgres side: connect, migrate, read a group's cursor, and write one batch.
//!
//! A batch commits in ONE transaction whose first statement is the cursor's compare-and-set
//! (`UPDATE sink_cursor … WHERE group_id = $1 AND applied_index = $2`). The row lock it takes
//! makes two writers of the same group (a deposed leader that does not know it yet, and the
//! new one) queue; the second then finds the cursor moved, updates 0 rows, rolls back and gets
//! [`SinkError::CursorMoved`]. Every row also has a natural key and is inserted with
//! `ON CONFLICT DO NOTHING`, and every update only moves a row's `seq` forward, so even a
//! replayed batch would change nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::sql_time::{micros, ts};

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use crate::SinkRecord;
use crate::plan::{self, AccountChange, AuctionBefore, OutOfRange, Plan};

/// The schema, embedded from the workspace's `migrations/` at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Connections the sink's pool opens at most; one writer per led group shares them.
pub const POOL_CONNECTIONS_MAX: u32 = 4;
/// How long a writer waits for a connection (or to connect) before the attempt fails.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Statement timeout of the sink's sessions: a stuck Postgres fails the batch, which retries.
pub const STATEMENT_TIMEOUT_MS: u32 = 30_000;

/// Another writer moved the group's cursor: this writer is not (or no longer) the group's
/// sink and must stop. Nothing of its batch was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "group {group}: the sink cursor is at {found:?}, not {expected}: another sink wrote; \
     this one stops"
)]
pub struct CursorMoved {
    pub group: u64,
    pub expected: u64,
    pub found: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    CursorMoved(#[from] CursorMoved),
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    #[error("group {group}: invalid batch: records must lie in ({expected}, {covered}], in order")]
    InvalidBatch {
        group: u64,
        expected: u64,
        covered: u64,
    },
}

impl SinkError {
    /// Stable label for the errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkError::CursorMoved(_) => "cursor_moved",
            SinkError::Database(_) => "database",
            SinkError::Migrate(_) => "migrate",
            SinkError::OutOfRange(_) => "out_of_range",
            SinkError::InvalidBatch { .. } => "invalid_batch",
        }
    }

    /// Whether retrying the same batch later may succeed (Postgres down, slow, restarting).
    /// The others are fatal for the writer of that group.
    pub fn is_transient(&self) -> bool {
        matches!(self, SinkError::Database(_))
    }
}

/// A lazy pool on `url`: connecting happens on first use, so a node starts while Postgres is
/// down and the sink retries. Sessions get a statement timeout.
pub fn connect(url: &str) -> Result<PgPool, SinkError> {
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    Ok(pool_with(options))
}

/// [`connect`] for a checked URL.
pub fn connect_url(url: &crate::PostgresUrl) -> Result<PgPool, SinkError> {
    connect(url.expose())
}

fn pool_with(options: sqlx::postgres::PgConnectOptions) -> PgPool {
    let options = options
        .application_name("martelo-sink")
        .options([("statement_timeout", STATEMENT_TIMEOUT_MS.to_string())]);
    PgPoolOptions::new()
        .max_connections(POOL_CONNECTIONS_MAX)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options)
}

/// Applies the pending migrations. Safe to run from several processes at once: sqlx's
/// Postgres migrator holds an advisory lock (`pg_advisory_lock`) for the whole run, so the
/// others wait and then find nothing left to apply.
pub async fn migrate(pool: &PgPool) -> Result<(), SinkError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The group's cursor: the highest log index whose events are in Postgres (0 before any).
/// Creates the group's row at 0 when it has none.
pub async fn read_cursor(pool: &PgPool, group: u64) -> Result<u64, SinkError> {
    let group_id = group_id(group)?;
    sqlx::query(
        "INSERT INTO sink_cursor (group_id, applied_index) VALUES ($1, 0) \
         ON CONFLICT (group_id) DO NOTHING",
    )
    .bind(group_id)
    .execute(pool)
    .await?;
    let index: i64 =
        sqlx::query_scalar("SELECT applied_index FROM sink_cursor WHERE group_id = $1")
            .bind(group_id)
            .fetch_one(pool)
            .await?;
    Ok(index.max(0) as u64)
}

fn group_id(group: u64) -> Result<i64, OutOfRange> {
    i64::try_from(group).map_err(|_| OutOfRange {
        what: "group id",
        value: group,
        column: "BIGINT",
    })
}

/// What a committed batch wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchWritten {
    pub cursor: u64,
    pub events: usize,
}

/// Writes `records` of `group` and moves the group's cursor from `expected_cursor` to
/// `covered` (at least the last record's index: entries without events have no record, so
/// the cursor moves past them too), all in one transaction. Fails with
/// [`SinkError::CursorMoved`] and writes nothing if the cursor is not at `expected_cursor`.
pub async fn write_batch(
    pool: &PgPool,
    group: u64,
    expected_cursor: u64,
    covered: u64,
    records: &[SinkRecord],
) -> Result<BatchWritten, SinkError> {
    let in_order = records
        .windows(2)
        .all(|pair| pair[0].log_index < pair[1].log_index);
    let in_range = records
        .iter()
        .all(|record| record.log_index > expected_cursor && record.log_index <= covered);
    if !in_order || !in_range || covered < expected_cursor {
        return Err(SinkError::InvalidBatch {
            group,
            expected: expected_cursor,
            covered,
        });
    }
    let group_id = group_id(group)?;
    let expected = i64::try_from(expected_cursor).map_err(|_| big_index(expected_cursor))?;
    let covered_db = i64::try_from(covered).map_err(|_| big_index(covered))?;
    let last_event_at = records
        .iter()
        .rev()
        .flat_map(|record| record.events.last())
        .next()
        .map(event_at_micros);

    let mut tx = pool.begin().await?;
    let moved = sqlx::query(concat!(
        "UPDATE sink_cursor SET applied_index = $3, last_event_at = COALESCE(",
        ts!("$4::bigint"),
        ", last_event_at) WHERE group_id = $1 AND applied_index = $2"
    ))
    .bind(group_id)
    .bind(expected)
    .bind(covered_db)
    .bind(last_event_at.transpose()?)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() != 1 {
        tx.rollback().await?;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT applied_index FROM sink_cursor WHERE group_id = $1")
                .bind(group_id)
                .fetch_optional(pool)
                .await?;
        return Err(CursorMoved {
            group,
            expected: expected_cursor,
            found: found.map(|index| index.max(0) as u64),
        }
        .into());
    }
    if martelo_engine::planted::active(martelo_engine::planted::Bug::SinkCursorOutsideTx) {
        tx = planted_cursor_outside_tx(pool, tx).await?;
    }
    let events: usize = records.iter().map(|record| record.events.len()).sum();
    if records.iter().any(|record| !record.is_empty()) {
        let before = load_auctions(&mut tx, &plan::touched_auctions(records)).await?;
        let plan = plan::plan(records, &before)?;
        write_plan(&mut tx, group_id, &plan).await?;
    }
    tx.commit().await?;
    Ok(BatchWritten {
        cursor: covered,
        events,
    })
}

/// How long the planted `sink-cursor-outside-tx` holds the rows' transaction open, after
/// the cursor committed and before any row is written.
const PLANTED_GAP_SECONDS: f64 = 0.3;

/// The planted bug `sink-cursor-outside-tx` (test builds only, see
/// `martelo_engine::planted`): commits the cursor move on its own and opens a second
/// transaction for the rows. A crash between the two commits then loses the rows, and the
/// sink resumes after the cursor. So that the fault suite's Postgres restarts (every few
/// seconds, for 1 to 5 s) land in that gap in a short run, the rows' transaction first waits
/// `PLANTED_GAP_SECONDS` inside Postgres (`pg_sleep`): the gap a crash needs, made wide,
/// not a failure the bug makes up by itself. A restart during the wait aborts it like a
/// crash would.
async fn planted_cursor_outside_tx(
    pool: &PgPool,
    tx: Transaction<'static, Postgres>,
) -> Result<Transaction<'static, Postgres>, SinkError> {
    tx.commit().await?;
    let mut rows = pool.begin().await?;
    sqlx::query("SELECT pg_sleep($1)")
        .bind(PLANTED_GAP_SECONDS)
        .execute(&mut *rows)
        .await?;
    Ok(rows)
}

fn big_index(value: u64) -> OutOfRange {
    OutOfRange {
        what: "log index",
        value,
        column: "BIGINT",
    }
}

fn event_at_micros(event: &martelo_engine::Event) -> Result<i64, OutOfRange> {
    use martelo_engine::Event;
    let at = match event {
        Event::Auction(event) => event.at,
        Event::BidderSuspended { at, .. } | Event::BidderReinstated { at, .. } => *at,
        Event::Meta(event) => event.at,
    };
    i64::try_from(at.0).map_err(|_| OutOfRange {
        what: "timestamp",
        value: at.0,
        column: "BIGINT",
    })
}

async fn load_auctions(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[i64],
) -> Result<BTreeMap<i64, AuctionBefore>, SinkError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows = sqlx::query(concat!(
        "SELECT auction_id, current_price, leader_id, reserve_met, ",
        micros!("effective_end_at"),
        " AS end_micros, status, ",
        micros!("closed_at"),
        " AS closed_micros, seq FROM auctions WHERE auction_id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut before = BTreeMap::new();
    for row in rows {
        let status: String = row.try_get("status")?;
        let status = match status.as_str() {
            "sold" => "sold",
            "unsold" => "unsold",
            "cancelled" => "cancelled",
            _ => "open",
        };
        before.insert(
            row.try_get("auction_id")?,
            AuctionBefore {
                current_price: row.try_get("current_price")?,
                leader_id: row.try_get("leader_id")?,
                reserve_met: row.try_get("reserve_met")?,
                effective_end_micros: row.try_get("end_micros")?,
                status,
                closed_at_micros: row.try_get("closed_micros")?,
                seq: row.try_get("seq")?,
            },
        );
    }
    Ok(before)
}

async fn write_plan(
    tx: &mut Transaction<'_, Postgres>,
    group_id: i64,
    plan: &Plan,
) -> Result<(), SinkError> {
    insert_events(tx, group_id, plan).await?;
    insert_rejections(tx, group_id, plan).await?;
    for row in &plan.auctions_created {
        let listing = &row.listing;
        sqlx::query(concat!(
            "INSERT INTO auctions (auction_id, group_id, seller_id, title, description, ",
            "currency, starting_price, has_reserve, buy_now_price, increment, soft_close, ",
            "starts_at, ends_at, effective_end_at, created_at, seq) VALUES ($1, $2, $3, $4, $5, ",
            "$6, $7, $8, $9, $10, $11, ",
            ts!("$12::bigint"),
            ", ",
            ts!("$13::bigint"),
            ", ",
            ts!("$13::bigint"),
            ", ",
            ts!("$14::bigint"),
            ", $15) ON CONFLICT (auction_id) DO NOTHING"
        ))
        .bind(row.auction_id)
        .bind(group_id)
        .bind(row.seller_id)
        .bind(&listing.title)
        .bind(&listing.description)
        .bind(&listing.currency)
        .bind(listing.starting_price)
        .bind(listing.has_reserve)
        .bind(listing.buy_now_price)
        .bind(&listing.increment)
        .bind(&listing.soft_close)
        .bind(listing.starts_at_micros)
        .bind(listing.ends_at_micros)
        .bind(row.created_at_micros)
        .bind(row.seq)
        .execute(&mut **tx)
        .await?;
    }
    insert_bids(tx, group_id, plan).await?;
    for void in &plan.voids {
        sqlx::query(concat!(
            "UPDATE bids SET voided = TRUE, void_reason = $3, voided_at = ",
            ts!("$4::bigint"),
            " WHERE auction_id = $1 AND bid_id = $2 AND NOT voided"
        ))
        .bind(void.auction_id)
        .bind(void.bid_id)
        .bind(&void.reason)
        .bind(void.at_micros)
        .execute(&mut **tx)
        .await?;
    }
    for update in &plan.auction_updates {
        let state = &update.state;
        if let Some(listing) = &update.listing {
            sqlx::query(concat!(
                "UPDATE auctions SET title = $3, description = $4, currency = $5, ",
                "starting_price = $6, has_reserve = $7, buy_now_price = $8, increment = $9, ",
                "soft_close = $10, starts_at = ",
                ts!("$11::bigint"),
                ", ends_at = ",
                ts!("$12::bigint"),
                " WHERE auction_id = $1 AND seq < $2"
            ))
            .bind(update.auction_id)
            .bind(state.seq)
            .bind(&listing.title)
            .bind(&listing.description)
            .bind(&listing.currency)
            .bind(listing.starting_price)
            .bind(listing.has_reserve)
            .bind(listing.buy_now_price)
            .bind(&listing.increment)
            .bind(&listing.soft_close)
            .bind(listing.starts_at_micros)
            .bind(listing.ends_at_micros)
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query(concat!(
            "UPDATE auctions SET current_price = $3, leader_id = $4, reserve_met = $5, ",
            "effective_end_at = ",
            ts!("$6::bigint"),
            ", status = $7, closed_at = ",
            ts!("$8::bigint"),
            ", seq = $2 WHERE auction_id = $1 AND seq < $2"
        ))
        .bind(update.auction_id)
        .bind(state.seq)
        .bind(state.current_price)
        .bind(state.leader_id)
        .bind(state.reserve_met)
        .bind(state.effective_end_micros)
        .bind(state.status)
        .bind(state.closed_at_micros)
        .execute(&mut **tx)
        .await?;
    }
    for outcome in &plan.outcomes {
        sqlx::query(concat!(
            "INSERT INTO outcomes (auction_id, group_id, log_index, seq, at, result, ",
            "winner_id, price, sale_kind, unsold_reason, cancelled_by, cancel_reason) ",
            "VALUES ($1, $2, $3, $4, ",
            ts!("$5::bigint"),
            ", $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (auction_id) DO NOTHING"
        ))
        .bind(outcome.auction_id)
        .bind(group_id)
        .bind(outcome.log_index)
        .bind(outcome.seq)
        .bind(outcome.at_micros)
        .bind(outcome.result)
        .bind(outcome.winner_id)
        .bind(outcome.price)
        .bind(outcome.sale_kind)
        .bind(outcome.unsold_reason)
        .bind(outcome.cancelled_by)
        .bind(&outcome.cancel_reason)
        .execute(&mut **tx)
        .await?;
    }
    for change in &plan.accounts {
        write_account(tx, change).await?;
    }
    for action in &plan.admin_actions {
        sqlx::query(concat!(
            "INSERT INTO admin_actions (group_id, log_index, position, at, kind, actor_id, ",
            "subject_id, auction_id, bid_id, reason) VALUES ($1, $2, $3, ",
            ts!("$4::bigint"),
            ", $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
        ))
        .bind(group_id)
        .bind(action.log_index)
        .bind(action.position)
        .bind(action.at_micros)
        .bind(action.kind)
        .bind(action.actor_id)
        .bind(action.subject_id)
        .bind(action.auction_id)
        .bind(action.bid_id)
        .bind(&action.reason)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The raw stream, in one statement per batch (arrays unnested: no parameter-count limit).
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    group_id: i64,
    plan: &Plan,
) -> Result<(), SinkError> {
    let rows = &plan.events;
    sqlx::query(concat!(
        "INSERT INTO events (group_id, log_index, position, at, kind, seq, auction_id, ",
        "user_id, actor_id, payload, trace_id) SELECT $1, log_index, position, ",
        ts!("at_micros"),
        ", kind, seq, auction_id, user_id, actor_id, payload, trace_id FROM UNNEST(",
        "$2::bigint[], $3::int[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], ",
        "$8::bigint[], $9::bigint[], $10::jsonb[], $11::text[]) AS t(log_index, position, ",
        "at_micros, kind, seq, auction_id, user_id, actor_id, payload, trace_id) ",
        "ON CONFLICT DO NOTHING"
    ))
    .bind(group_id)
    .bind(rows.iter().map(|row| row.log_index).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.position).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.at_micros).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.kind).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.auction_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.user_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.actor_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|row| row.payload.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|row| row.trace_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The rejections, in one statement per batch (their `events` rows went with the events).
async fn insert_rejections(
    tx: &mut Transaction<'_, Postgres>,
    group_id: i64,
    plan: &Plan,
) -> Result<(), SinkError> {
    let rows = &plan.rejections;
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(concat!(
        "INSERT INTO rejections (group_id, log_index, position, at, auction_id, actor_id, ",
        "code, trace_id) SELECT $1, log_index, position, ",
        ts!("at_micros"),
        ", auction_id, actor_id, code, trace_id FROM UNNEST($2::bigint[], $3::int[], ",
        "$4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[]) AS t(log_index, ",
        "position, at_micros, auction_id, actor_id, code, trace_id) ON CONFLICT DO NOTHING"
    ))
    .bind(group_id)
    .bind(rows.iter().map(|row| row.log_index).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.position).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.at_micros).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.auction_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.actor_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.code).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|row| row.trace_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_bids(
    tx: &mut Transaction<'_, Postgres>,
    group_id: i64,
    plan: &Plan,
) -> Result<(), SinkError> {
    let rows = &plan.bids;
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(concat!(
        "INSERT INTO bids (group_id, auction_id, bid_id, log_index, position, seq, bidder_id, ",
        "amount, price_after, leader_after, at, proxy, raise) SELECT $1, auction_id, bid_id, ",
        "log_index, position, seq, bidder_id, amount, price_after, leader_after, ",
        ts!("at_micros"),
        ", proxy, raise FROM UNNEST($2::bigint[], $3::int[], $4::bigint[], $5::int[], ",
        "$6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], ",
        "$11::bigint[], $12::bool[], $13::bool[]) AS t(auction_id, bid_id, log_index, ",
        "position, seq, bidder_id, amount, price_after, leader_after, at_micros, proxy, ",
        "raise) ON CONFLICT DO NOTHING"
    ))
    .bind(group_id)
    .bind(rows.iter().map(|row| row.auction_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.bid_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.log_index).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.position).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.bidder_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.amount).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.price_after).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.leader_after).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.at_micros).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.proxy).collect::<Vec<_>>())
    .bind(rows.iter().map(|row| row.raise).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_account(
    tx: &mut Transaction<'_, Postgres>,
    change: &AccountChange,
) -> Result<(), SinkError> {
    let query = match change {
        AccountChange::Registered {
            user_id,
            username,
            display_name,
            roles,
            at_micros,
            seq,
        } => sqlx::query(concat!(
            "INSERT INTO accounts (user_id, username, display_name, roles, registered_at, ",
            "updated_at, seq) VALUES ($1, $2, $3, $4, ",
            ts!("$5::bigint"),
            ", ",
            ts!("$5::bigint"),
            ", $6) ON CONFLICT (user_id) DO NOTHING"
        ))
        .bind(*user_id)
        .bind(username)
        .bind(display_name)
        .bind(roles)
        .bind(*at_micros)
        .bind(*seq),
        AccountChange::Roles {
            user_id,
            roles,
            at_micros,
            seq,
        } => sqlx::query(concat!(
            "UPDATE accounts SET roles = $3, updated_at = ",
            ts!("$4::bigint"),
            ", seq = $2 WHERE user_id = $1 AND seq < $2"
        ))
        .bind(*user_id)
        .bind(*seq)
        .bind(roles)
        .bind(*at_micros),
        AccountChange::Suspended {
            user_id,
            reason,
            at_micros,
            seq,
        } => sqlx::query(concat!(
            "UPDATE accounts SET status = 'suspended', suspended_reason = $3, updated_at = ",
            ts!("$4::bigint"),
            ", seq = $2 WHERE user_id = $1 AND seq < $2"
        ))
        .bind(*user_id)
        .bind(*seq)
        .bind(reason)
        .bind(*at_micros),
        AccountChange::Reinstated {
            user_id,
            at_micros,
            seq,
        } => sqlx::query(concat!(
            "UPDATE accounts SET status = 'active', suspended_reason = NULL, updated_at = ",
            ts!("$3::bigint"),
            ", seq = $2 WHERE user_id = $1 AND seq < $2"
        ))
        .bind(*user_id)
        .bind(*seq)
        .bind(*at_micros),
    };
    query.execute(&mut **tx).await?;
    Ok(())
}
