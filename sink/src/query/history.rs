//! History for signed-in users: an auction's bid history (public fields only), closed
//! auctions with their outcome, and a user's own bids and wins.
//!
//! Public fields only: the `bids` table holds no proxy maximum (the events never carry one),
//! and these rows add the bidder's display name from `accounts`, never more of the account.
//!
//! Ids in and out are the engine's `u64`; [`crate::ids`] maps them to and from the stored
//! `BIGINT` (the rows decode through [`StoredId`] and [`StoredOptionalId`]).

use serde::Serialize;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder};

use super::cursor::{self, CursorKind};
use super::{Limit, Page, QueryError, Statement, bound, fetch_page, id, push_after_newest};
use crate::ids::{StoredId, StoredOptionalId};
use crate::sql_time::micros_of;

/// One accepted bid of an auction, as anyone signed in may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct HistoryBidRow {
    /// The auction's event seq of the bid: the history's order and its paging key.
    pub seq: i64,
    pub bid_id: i32,
    #[sqlx(try_from = "StoredId")]
    pub bidder_id: u64,
    /// The bidder's display name, when the account is in the database.
    pub bidder_name: Option<String>,
    pub amount: i64,
    /// The visible price once the bid (and any proxy response) was folded in.
    pub price_after: i64,
    /// Who led then.
    #[sqlx(try_from = "StoredId")]
    pub leader_after: u64,
    /// Commit time, microseconds since the Unix epoch (cluster time).
    pub at_us: i64,
    pub voided: bool,
    pub void_reason: Option<String>,
    /// A proxy bid: the bidder set a maximum above `amount` (the maximum stays private).
    pub proxy: bool,
    /// The bidder led already and raised their own maximum.
    pub raise: bool,
}

/// An auction's bids in seq order, after `after_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidHistoryQuery {
    auction_id: i64,
    after_seq: i64,
    limit: Limit,
}

impl BidHistoryQuery {
    /// The bids of `auction` with a seq above `after_seq` (all when `None`).
    pub fn new(auction: u64, after_seq: Option<u64>, limit: Limit) -> Result<Self, QueryError> {
        Ok(BidHistoryQuery {
            auction_id: id(auction),
            after_seq: bound("after_seq", after_seq.unwrap_or(0))?,
            limit,
        })
    }
}

impl Statement for BidHistoryQuery {
    fn build(&self, prefix: &str) -> QueryBuilder<'_, Postgres> {
        let mut sql = QueryBuilder::new(prefix);
        sql.push(format!(
            "SELECT b.seq, b.bid_id, b.bidder_id, a.display_name AS bidder_name, b.amount, \
             b.price_after, b.leader_after, {} AS at_us, b.voided, b.void_reason, b.proxy, \
             b.raise FROM bids b LEFT JOIN accounts a ON a.user_id = b.bidder_id WHERE b.auction_id = ",
            micros_of("b.at")
        ));
        sql.push_bind(self.auction_id);
        sql.push(" AND b.seq > ");
        sql.push_bind(self.after_seq);
        sql.push(" ORDER BY b.seq LIMIT ");
        sql.push_bind(self.limit.fetch());
        sql
    }
}

/// One page of an auction's bid history. `next_cursor` is the last seq (decimal): pass it
/// as `after_seq`.
pub async fn bid_history(
    pool: &PgPool,
    query: &BidHistoryQuery,
) -> Result<Page<HistoryBidRow>, QueryError> {
    fetch_page(pool, query, query.limit, |row: &HistoryBidRow| {
        row.seq.to_string()
    })
    .await
}

/// The key of a (time, auction) cursor, as the query binds it.
fn time_and_auction(kind: CursorKind, text: &str) -> Result<[i64; 2], QueryError> {
    let [at, auction] = cursor::decode::<2>(kind, text)?;
    Ok([cursor::bigint(at)?, id(auction)])
}

/// How a closed auction ended, as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFilter {
    Sold,
    Unsold,
    Cancelled,
}

impl ResultFilter {
    /// The value of `auctions.status` and `outcomes.result`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultFilter::Sold => "sold",
            ResultFilter::Unsold => "unsold",
            ResultFilter::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for ResultFilter {
    type Err = QueryError;

    fn from_str(text: &str) -> Result<ResultFilter, QueryError> {
        match text {
            "sold" => Ok(ResultFilter::Sold),
            "unsold" => Ok(ResultFilter::Unsold),
            "cancelled" => Ok(ResultFilter::Cancelled),
            _ => Err(QueryError::Filter {
                field: "result",
                reason: "sold, unsold or cancelled".to_owned(),
            }),
        }
    }
}

/// A closed auction and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ClosedAuctionRow {
    #[sqlx(try_from = "StoredId")]
    pub auction_id: u64,
    #[sqlx(try_from = "StoredId")]
    pub seller_id: u64,
    pub title: String,
    pub currency: String,
    /// `sold`, `unsold` or `cancelled`.
    pub result: String,
    #[sqlx(try_from = "StoredOptionalId")]
    pub winner_id: Option<u64>,
    /// The sale price when sold.
    pub price: Option<i64>,
    /// `bidding` or `buy_now` when sold.
    pub sale_kind: Option<String>,
    /// `no_bids` or `reserve_not_met` when unsold.
    pub unsold_reason: Option<String>,
    #[sqlx(try_from = "StoredOptionalId")]
    pub cancelled_by: Option<u64>,
    /// Microseconds since the Unix epoch (cluster time).
    pub closed_at_us: i64,
}

/// Closed auctions, newest first, filtered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedAuctionsQuery {
    result: Option<ResultFilter>,
    seller: Option<i64>,
    winner: Option<i64>,
    /// (closed_at µs, auction id as stored).
    after: Option<[i64; 2]>,
    limit: Limit,
}

impl ClosedAuctionsQuery {
    /// Closed auctions matching every filter given, after `cursor` (a `next_cursor`).
    pub fn new(
        result: Option<ResultFilter>,
        seller: Option<u64>,
        winner: Option<u64>,
        cursor: Option<&str>,
        limit: Limit,
    ) -> Result<Self, QueryError> {
        Ok(ClosedAuctionsQuery {
            result,
            seller: seller.map(id),
            winner: winner.map(id),
            after: cursor
                .map(|text| time_and_auction(CursorKind::Closed, text))
                .transpose()?,
            limit,
        })
    }
}

impl Statement for ClosedAuctionsQuery {
    fn build(&self, prefix: &str) -> QueryBuilder<'_, Postgres> {
        let mut sql = QueryBuilder::new(prefix);
        sql.push(format!(
            "SELECT a.auction_id, a.seller_id, a.title, a.currency, o.result, o.winner_id, \
             o.price, o.sale_kind, o.unsold_reason, o.cancelled_by, {} AS closed_at_us \
             FROM auctions a JOIN outcomes o ON o.auction_id = a.auction_id \
             WHERE a.status <> 'open'",
            micros_of("a.closed_at")
        ));
        if let Some(result) = self.result {
            sql.push(" AND a.status = ");
            sql.push_bind(result.as_str());
        }
        if let Some(seller) = self.seller {
            sql.push(" AND a.seller_id = ");
            sql.push_bind(seller);
        }
        if let Some(winner) = self.winner {
            sql.push(" AND o.winner_id = ");
            sql.push_bind(winner);
        }
        if let Some([closed_at, auction_id]) = self.after {
            push_after_newest(&mut sql, "a.closed_at", closed_at, |sql| {
                sql.push("a.auction_id > ");
                sql.push_bind(auction_id);
            });
        }
        sql.push(" ORDER BY a.closed_at DESC, a.auction_id LIMIT ");
        sql.push_bind(self.limit.fetch());
        sql
    }
}

/// One page of closed auctions.
pub async fn closed_auctions(
    pool: &PgPool,
    query: &ClosedAuctionsQuery,
) -> Result<Page<ClosedAuctionRow>, QueryError> {
    fetch_page(pool, query, query.limit, |row: &ClosedAuctionRow| {
        cursor::encode(
            CursorKind::Closed,
            &[cursor::field(row.closed_at_us), row.auction_id],
        )
    })
    .await
}

/// One of the user's own bids, with the auction it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UserBidRow {
    #[sqlx(try_from = "StoredId")]
    pub auction_id: u64,
    pub bid_id: i32,
    pub seq: i64,
    pub amount: i64,
    pub price_after: i64,
    #[sqlx(try_from = "StoredId")]
    pub leader_after: u64,
    /// Microseconds since the Unix epoch (cluster time).
    pub at_us: i64,
    pub voided: bool,
    pub void_reason: Option<String>,
    /// The auction's title and currency (absent when its listing is not in the database).
    pub title: Option<String>,
    pub currency: Option<String>,
    /// `open`, `sold`, `unsold` or `cancelled`.
    pub auction_status: Option<String>,
    /// Whether the user leads (or won) the auction now.
    pub leading_now: bool,
    /// The bid set a maximum above its amount (the maximum is the user's own, not shown).
    pub proxy: bool,
    /// The user led already and raised their own maximum.
    pub raise: bool,
}

/// A user's bids, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserBidsQuery {
    bidder: i64,
    /// (at µs, auction id as stored, bid id).
    after: Option<[i64; 3]>,
    limit: Limit,
}

impl UserBidsQuery {
    /// The bids of `bidder`, after `cursor` (a `next_cursor`).
    pub fn new(bidder: u64, cursor: Option<&str>, limit: Limit) -> Result<Self, QueryError> {
        Ok(UserBidsQuery {
            bidder: id(bidder),
            after: cursor
                .map(|text| {
                    let [at, auction, bid] = cursor::decode::<3>(CursorKind::UserBids, text)?;
                    Ok::<_, QueryError>([cursor::bigint(at)?, id(auction), cursor::bigint(bid)?])
                })
                .transpose()?,
            limit,
        })
    }
}

impl Statement for UserBidsQuery {
    fn build(&self, prefix: &str) -> QueryBuilder<'_, Postgres> {
        let mut sql = QueryBuilder::new(prefix);
        sql.push(format!(
            "SELECT b.auction_id, b.bid_id, b.seq, b.amount, b.price_after, b.leader_after, \
             {} AS at_us, b.voided, b.void_reason, a.title, a.currency, \
             a.status AS auction_status, COALESCE(a.leader_id = b.bidder_id, false) \
             AS leading_now, b.proxy, b.raise FROM bids b LEFT JOIN auctions a ON a.auction_id = b.auction_id \
             WHERE b.bidder_id = ",
            micros_of("b.at")
        ));
        sql.push_bind(self.bidder);
        if let Some([at, auction_id, bid_id]) = self.after {
            // The key is (at DESC, auction_id ASC, bid_id ASC), as `bids_by_bidder` orders.
            push_after_newest(&mut sql, "b.at", at, |sql| {
                sql.push("(b.auction_id, b.bid_id) > (");
                sql.push_bind(auction_id);
                sql.push(", ");
                sql.push_bind(bid_id);
                sql.push(")");
            });
        }
        sql.push(" ORDER BY b.at DESC, b.auction_id, b.bid_id LIMIT ");
        sql.push_bind(self.limit.fetch());
        sql
    }
}

/// One page of a user's bids.
pub async fn user_bids(
    pool: &PgPool,
    query: &UserBidsQuery,
) -> Result<Page<UserBidRow>, QueryError> {
    fetch_page(pool, query, query.limit, |row: &UserBidRow| {
        cursor::encode(
            CursorKind::UserBids,
            &[
                cursor::field(row.at_us),
                row.auction_id,
                cursor::field(i64::from(row.bid_id)),
            ],
        )
    })
    .await
}

/// An auction the user won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UserWinRow {
    #[sqlx(try_from = "StoredId")]
    pub auction_id: u64,
    pub title: Option<String>,
    pub currency: Option<String>,
    #[sqlx(try_from = "StoredOptionalId")]
    pub seller_id: Option<u64>,
    pub price: Option<i64>,
    /// `bidding` or `buy_now`.
    pub sale_kind: Option<String>,
    /// Microseconds since the Unix epoch (cluster time).
    pub won_at_us: i64,
}

/// The auctions a user won, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWinsQuery {
    winner: i64,
    /// (won at µs, auction id as stored).
    after: Option<[i64; 2]>,
    limit: Limit,
}

impl UserWinsQuery {
    /// The wins of `winner`, after `cursor` (a `next_cursor`).
    pub fn new(winner: u64, cursor: Option<&str>, limit: Limit) -> Result<Self, QueryError> {
        Ok(UserWinsQuery {
            winner: id(winner),
            after: cursor
                .map(|text| time_and_auction(CursorKind::UserWins, text))
                .transpose()?,
            limit,
        })
    }
}

impl Statement for UserWinsQuery {
    fn build(&self, prefix: &str) -> QueryBuilder<'_, Postgres> {
        let mut sql = QueryBuilder::new(prefix);
        sql.push(format!(
            "SELECT o.auction_id, a.title, a.currency, a.seller_id, o.price, o.sale_kind, \
             {} AS won_at_us FROM outcomes o LEFT JOIN auctions a \
             ON a.auction_id = o.auction_id WHERE o.winner_id = ",
            micros_of("o.at")
        ));
        sql.push_bind(self.winner);
        if let Some([at, auction_id]) = self.after {
            push_after_newest(&mut sql, "o.at", at, |sql| {
                sql.push("o.auction_id > ");
                sql.push_bind(auction_id);
            });
        }
        sql.push(" ORDER BY o.at DESC, o.auction_id LIMIT ");
        sql.push_bind(self.limit.fetch());
        sql
    }
}

/// One page of a user's wins.
pub async fn user_wins(
    pool: &PgPool,
    query: &UserWinsQuery,
) -> Result<Page<UserWinRow>, QueryError> {
    fetch_page(pool, query, query.limit, |row: &UserWinRow| {
        cursor::encode(
            CursorKind::UserWins,
            &[cursor::field(row.won_at_us), row.auction_id],
        )
    })
    .await
}
