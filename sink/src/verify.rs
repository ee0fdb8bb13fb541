//! The I6 checker: what Postgres holds against what the engine holds. Every difference is a
//! typed [`Violation`]: a row missing, a row the engine lacks, a duplicate, a wrong value.
//!
//! ```text
//!   engine views (one per auction, as the cluster's client reads them)
//!        │  expected rows, derived here from the views
//!        ▼
//!   violations(pool, views) ◄── auctions, bids, outcomes, auction events (4 queries)
//! ```
//!
//! The expected rows are derived from the views here, independently of [`crate::plan`]: a
//! checker that reused the mapping it checks could not catch a bug in that mapping.
//!
//! `views` must hold every auction of the cluster: a row for any other auction is reported
//! as one the engine lacks. Accounts, admin actions and non-auction events are not compared
//! (the views do not carry them). Nor are a bid's `proxy` and `raise` flags, the
//! `rejections` table and its `events` rows of kind `rejected` (seq NULL), or trace ids:
//! the engine's public view (`AuctionView`, `PublicBid`), which the checker is fed by the
//! nodes' linearizable reads, has no flags and no rejections, and the event log that has
//! them is not what the checker reads. They are checked against the engine's records by
//! `sink/tests/verify.rs` (`flags_rejections_and_trace_ids_land_once_and_only_once`).
//!
//! Ids are compared as the engine's `u64` ([`crate::ids`]).
//!
//! Used by the node's multi-process tests and, as its I6 checker, by the fault suite; each
//! shows it failing on planted damage. `testing::wait_for_match` (feature `testing`) polls
//! it until the asynchronous sink has caught up.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use martelo_engine::{AuctionResult, AuctionView, SaleKind, UnsoldReason};
use sqlx::PgPool;

use crate::ids::from_bigint;

/// An auction's row in `auctions`, the columns the engine's view determines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuctionRow {
    pub seller_id: u64,
    pub status: String,
    pub current_price: Option<i64>,
    pub leader_id: Option<u64>,
    pub seq: i64,
    /// `effective_end_at` in microseconds since the epoch.
    pub effective_end_micros: i64,
}

/// A bid's row in `bids`, the columns the engine's view determines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BidRow {
    pub bidder_id: u64,
    pub amount: i64,
    /// `at` in microseconds since the epoch.
    pub at_micros: i64,
    pub log_index: i64,
    pub voided: bool,
}

/// An auction's row in `outcomes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeRow {
    pub result: String,
    pub winner_id: Option<u64>,
    pub price: Option<i64>,
    pub sale_kind: Option<String>,
    pub unsold_reason: Option<String>,
    pub cancelled_by: Option<u64>,
}

/// How a [`Violation`] breaks I6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationClass {
    /// The engine holds it; Postgres does not.
    Missing,
    /// Postgres holds it; the engine does not.
    NotInEngine,
    /// Postgres holds it more than once.
    Duplicate,
    /// Both hold it, with different values.
    Differs,
}

/// One difference between Postgres and the engine. Ids are the engine's `u64`: every stored
/// `BIGINT` id is read back through [`crate::ids`], so a row for an auction id above
/// `i64::MAX` names that id, not its negative stored form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    AuctionMissing {
        auction: u64,
    },
    AuctionNotInEngine {
        auction: u64,
    },
    AuctionDiffers {
        auction: u64,
        postgres: AuctionRow,
        engine: AuctionRow,
    },
    /// No event row with this auction seq (every seq `1..=view.seq` has one).
    EventMissing {
        auction: u64,
        seq: i64,
    },
    /// An event row whose auction or seq the engine does not have.
    EventNotInEngine {
        auction: u64,
        seq: i64,
    },
    /// Several event rows carry this auction seq.
    EventDuplicated {
        auction: u64,
        seq: i64,
        copies: i64,
    },
    BidMissing {
        auction: u64,
        bid_id: i64,
    },
    BidNotInEngine {
        auction: u64,
        bid_id: i64,
    },
    BidDiffers {
        auction: u64,
        bid_id: i64,
        postgres: BidRow,
        engine: BidRow,
    },
    /// The engine closed the auction; Postgres has no outcome.
    OutcomeMissing {
        auction: u64,
    },
    /// An outcome for an auction the engine has not closed (or does not have).
    OutcomeNotInEngine {
        auction: u64,
    },
    OutcomeDiffers {
        auction: u64,
        postgres: OutcomeRow,
        engine: OutcomeRow,
    },
}

impl Violation {
    pub fn class(&self) -> ViolationClass {
        match self {
            Violation::AuctionMissing { .. }
            | Violation::EventMissing { .. }
            | Violation::BidMissing { .. }
            | Violation::OutcomeMissing { .. } => ViolationClass::Missing,
            Violation::AuctionNotInEngine { .. }
            | Violation::EventNotInEngine { .. }
            | Violation::BidNotInEngine { .. }
            | Violation::OutcomeNotInEngine { .. } => ViolationClass::NotInEngine,
            Violation::EventDuplicated { .. } => ViolationClass::Duplicate,
            Violation::AuctionDiffers { .. }
            | Violation::BidDiffers { .. }
            | Violation::OutcomeDiffers { .. } => ViolationClass::Differs,
        }
    }

    /// The auction the violation is about.
    pub fn auction(&self) -> u64 {
        match self {
            Violation::AuctionMissing { auction }
            | Violation::AuctionNotInEngine { auction }
            | Violation::AuctionDiffers { auction, .. }
            | Violation::EventMissing { auction, .. }
            | Violation::EventNotInEngine { auction, .. }
            | Violation::EventDuplicated { auction, .. }
            | Violation::BidMissing { auction, .. }
            | Violation::BidNotInEngine { auction, .. }
            | Violation::BidDiffers { auction, .. }
            | Violation::OutcomeMissing { auction }
            | Violation::OutcomeNotInEngine { auction }
            | Violation::OutcomeDiffers { auction, .. } => *auction,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::AuctionMissing { auction } => {
                write!(f, "auction {auction}: missing in Postgres")
            }
            Violation::AuctionNotInEngine { auction } => {
                write!(f, "auction {auction}: in Postgres, not in the engine")
            }
            Violation::AuctionDiffers {
                auction,
                postgres,
                engine,
            } => write!(
                f,
                "auction {auction}: Postgres has {postgres:?}, the engine {engine:?}"
            ),
            Violation::EventMissing { auction, seq } => {
                write!(f, "auction {auction}: event seq {seq} missing in Postgres")
            }
            Violation::EventNotInEngine { auction, seq } => write!(
                f,
                "auction {auction}: event seq {seq} in Postgres, not in the engine"
            ),
            Violation::EventDuplicated {
                auction,
                seq,
                copies,
            } => write!(
                f,
                "auction {auction}: event seq {seq} is in Postgres {copies} times"
            ),
            Violation::BidMissing { auction, bid_id } => {
                write!(f, "auction {auction}: bid {bid_id} missing in Postgres")
            }
            Violation::BidNotInEngine { auction, bid_id } => write!(
                f,
                "auction {auction}: bid {bid_id} in Postgres, not in the engine"
            ),
            Violation::BidDiffers {
                auction,
                bid_id,
                postgres,
                engine,
            } => write!(
                f,
                "auction {auction}: bid {bid_id}: Postgres has {postgres:?}, the engine {engine:?}"
            ),
            Violation::OutcomeMissing { auction } => {
                write!(f, "auction {auction}: closed, but no outcome in Postgres")
            }
            Violation::OutcomeNotInEngine { auction } => write!(
                f,
                "auction {auction}: an outcome in Postgres, none in the engine"
            ),
            Violation::OutcomeDiffers {
                auction,
                postgres,
                engine,
            } => write!(
                f,
                "auction {auction}: outcome in Postgres {postgres:?}, the engine {engine:?}"
            ),
        }
    }
}

/// A query of the checker failed: no verdict.
#[derive(Debug, thiserror::Error)]
#[error("the sink checker could not read {table}: {error}")]
pub struct VerifyError {
    pub table: &'static str,
    pub error: sqlx::Error,
}

/// Every difference between Postgres and the engine's `views` (which must hold every auction
/// of the cluster), sorted by auction. Empty when Postgres holds exactly the engine's state.
pub async fn violations(
    pool: &PgPool,
    views: &[AuctionView],
) -> Result<Vec<Violation>, VerifyError> {
    let rows = PostgresRows::read(pool).await?;
    let mut found = compare(&rows, views);
    found.sort_by_key(Violation::auction);
    Ok(found)
}

/// What Postgres holds, as the checker compares it.
#[derive(Debug, Default)]
struct PostgresRows {
    auctions: BTreeMap<u64, AuctionRow>,
    bids: BTreeMap<(u64, i64), BidRow>,
    outcomes: BTreeMap<u64, OutcomeRow>,
    /// (auction, seq) → how many event rows carry it.
    events: BTreeMap<(u64, i64), i64>,
}

type AuctionTuple = (i64, i64, String, Option<i64>, Option<i64>, i64, i64);
type BidTuple = (i64, i32, i64, i64, i64, i64, bool);
type OutcomeTuple = (
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

impl PostgresRows {
    async fn read(pool: &PgPool) -> Result<PostgresRows, VerifyError> {
        let failed = |table| move |error| VerifyError { table, error };
        let auctions: Vec<AuctionTuple> = sqlx::query_as(
            "SELECT auction_id, seller_id, status, current_price, leader_id, seq, \
             (extract(epoch from effective_end_at) * 1000000)::bigint FROM auctions",
        )
        .fetch_all(pool)
        .await
        .map_err(failed("auctions"))?;
        let bids: Vec<BidTuple> = sqlx::query_as(
            "SELECT auction_id, bid_id, bidder_id, amount, \
             (extract(epoch from at) * 1000000)::bigint, log_index, voided FROM bids",
        )
        .fetch_all(pool)
        .await
        .map_err(failed("bids"))?;
        let outcomes: Vec<OutcomeTuple> = sqlx::query_as(
            "SELECT auction_id, result, winner_id, price, sale_kind, unsold_reason, \
             cancelled_by FROM outcomes",
        )
        .fetch_all(pool)
        .await
        .map_err(failed("outcomes"))?;
        let events: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT auction_id, seq, count(*) FROM events \
             WHERE auction_id IS NOT NULL AND seq IS NOT NULL GROUP BY auction_id, seq",
        )
        .fetch_all(pool)
        .await
        .map_err(failed("events"))?;
        Ok(PostgresRows {
            auctions: auctions
                .into_iter()
                .map(
                    |(id, seller_id, status, current_price, leader_id, seq, end)| {
                        let row = AuctionRow {
                            seller_id: from_bigint(seller_id),
                            status,
                            current_price,
                            leader_id: leader_id.map(from_bigint),
                            seq,
                            effective_end_micros: end,
                        };
                        (from_bigint(id), row)
                    },
                )
                .collect(),
            bids: bids
                .into_iter()
                .map(
                    |(auction, bid_id, bidder_id, amount, at, log_index, voided)| {
                        let row = BidRow {
                            bidder_id: from_bigint(bidder_id),
                            amount,
                            at_micros: at,
                            log_index,
                            voided,
                        };
                        ((from_bigint(auction), i64::from(bid_id)), row)
                    },
                )
                .collect(),
            outcomes: outcomes
                .into_iter()
                .map(|(auction, result, winner_id, price, sale, unsold, by)| {
                    let row = OutcomeRow {
                        result,
                        winner_id: winner_id.map(from_bigint),
                        price,
                        sale_kind: sale,
                        unsold_reason: unsold,
                        cancelled_by: by.map(from_bigint),
                    };
                    (from_bigint(auction), row)
                })
                .collect(),
            events: events
                .into_iter()
                .map(|(auction, seq, copies)| ((from_bigint(auction), seq), copies))
                .collect(),
        })
    }
}

/// An engine value that is not an id (an amount, a time, a seq, a log index) as Postgres
/// stores it. The sink refuses such values above `i64::MAX`; one maps to `i64::MIN`, which no
/// row holds, so it shows as a difference. Ids are compared as the engine's `u64`.
fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MIN)
}

fn expected_auction(view: &AuctionView) -> AuctionRow {
    let status = match view.closed.as_ref().map(|closed| &closed.result) {
        None => "open",
        Some(AuctionResult::Sold { .. }) => "sold",
        Some(AuctionResult::Unsold { .. }) => "unsold",
        Some(AuctionResult::Cancelled { .. }) => "cancelled",
    };
    AuctionRow {
        seller_id: view.seller.0,
        status: status.to_owned(),
        current_price: view.price.map(|price| big(price.0)),
        leader_id: view.leading_bidder.map(|user| user.0),
        seq: big(view.seq),
        effective_end_micros: big(view.end.0),
    }
}

fn expected_outcome(view: &AuctionView) -> Option<OutcomeRow> {
    let result = &view.closed.as_ref()?.result;
    let mut row = OutcomeRow {
        result: String::new(),
        winner_id: None,
        price: None,
        sale_kind: None,
        unsold_reason: None,
        cancelled_by: None,
    };
    match result {
        AuctionResult::Sold { winner, price, via } => {
            row.result = "sold".to_owned();
            row.winner_id = Some(winner.0);
            row.price = Some(big(price.0));
            row.sale_kind = Some(
                match via {
                    SaleKind::Bidding => "bidding",
                    SaleKind::BuyNow => "buy_now",
                }
                .to_owned(),
            );
        }
        AuctionResult::Unsold { reason } => {
            row.result = "unsold".to_owned();
            row.unsold_reason = Some(
                match reason {
                    UnsoldReason::NoBids => "no_bids",
                    UnsoldReason::ReserveNotMet => "reserve_not_met",
                }
                .to_owned(),
            );
        }
        AuctionResult::Cancelled { by, .. } => {
            row.result = "cancelled".to_owned();
            row.cancelled_by = Some(by.0);
        }
    }
    Some(row)
}

/// The pure comparison of what was read with what the views imply.
fn compare(rows: &PostgresRows, views: &[AuctionView]) -> Vec<Violation> {
    let mut found = Vec::new();
    let engine_ids: BTreeSet<u64> = views.iter().map(|view| view.id.0).collect();
    for &auction in rows.auctions.keys() {
        if !engine_ids.contains(&auction) {
            found.push(Violation::AuctionNotInEngine { auction });
        }
    }
    for (&(auction, bid_id), _) in rows.bids.iter() {
        if !engine_ids.contains(&auction) {
            found.push(Violation::BidNotInEngine { auction, bid_id });
        }
    }
    for &auction in rows.outcomes.keys() {
        if !engine_ids.contains(&auction) {
            found.push(Violation::OutcomeNotInEngine { auction });
        }
    }
    for (&(auction, seq), &copies) in &rows.events {
        if !engine_ids.contains(&auction) {
            found.push(Violation::EventNotInEngine { auction, seq });
            if copies > 1 {
                found.push(Violation::EventDuplicated {
                    auction,
                    seq,
                    copies,
                });
            }
        }
    }
    for view in views {
        compare_auction(rows, view, &mut found);
    }
    found
}

fn compare_auction(rows: &PostgresRows, view: &AuctionView, found: &mut Vec<Violation>) {
    let auction = view.id.0;
    let engine = expected_auction(view);
    match rows.auctions.get(&auction) {
        None => found.push(Violation::AuctionMissing { auction }),
        Some(postgres) if *postgres != engine => found.push(Violation::AuctionDiffers {
            auction,
            postgres: postgres.clone(),
            engine,
        }),
        Some(_) => {}
    }

    let seq_max = big(view.seq);
    for seq in 1..=seq_max {
        match rows.events.get(&(auction, seq)) {
            None => found.push(Violation::EventMissing { auction, seq }),
            Some(&copies) if copies > 1 => found.push(Violation::EventDuplicated {
                auction,
                seq,
                copies,
            }),
            Some(_) => {}
        }
    }
    for (&(_, seq), &copies) in rows.events.range((auction, i64::MIN)..=(auction, i64::MAX)) {
        if !(1..=seq_max).contains(&seq) {
            found.push(Violation::EventNotInEngine { auction, seq });
            if copies > 1 {
                found.push(Violation::EventDuplicated {
                    auction,
                    seq,
                    copies,
                });
            }
        }
    }

    for (index, bid) in view.bids.iter().enumerate() {
        let bid_id = index as i64;
        let engine = BidRow {
            bidder_id: bid.bidder.0,
            amount: big(bid.amount.0),
            at_micros: big(bid.at.0),
            log_index: big(bid.log_index),
            voided: bid.voided,
        };
        match rows.bids.get(&(auction, bid_id)) {
            None => found.push(Violation::BidMissing { auction, bid_id }),
            Some(postgres) if *postgres != engine => found.push(Violation::BidDiffers {
                auction,
                bid_id,
                postgres: *postgres,
                engine,
            }),
            Some(_) => {}
        }
    }
    let bid_count = view.bids.len() as i64;
    for (&(_, bid_id), _) in rows.bids.range((auction, i64::MIN)..=(auction, i64::MAX)) {
        if !(0..bid_count).contains(&bid_id) {
            found.push(Violation::BidNotInEngine { auction, bid_id });
        }
    }

    match (rows.outcomes.get(&auction), expected_outcome(view)) {
        (None, None) => {}
        (None, Some(_)) => found.push(Violation::OutcomeMissing { auction }),
        (Some(_), None) => found.push(Violation::OutcomeNotInEngine { auction }),
        (Some(postgres), Some(engine)) if *postgres != engine => {
            found.push(Violation::OutcomeDiffers {
                auction,
                postgres: postgres.clone(),
                engine,
            });
        }
        (Some(_), Some(_)) => {}
    }
}
