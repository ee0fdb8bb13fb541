//! From committed event records to the rows of the read model: a pure function, no IO.
//!
//! [`plan`] takes one batch of a group's records, plus the state of the auctions that the
//! batch touches as Postgres holds it before the batch ([`AuctionBefore`]), and returns every
//! row to insert and every update to make. The writer (`write.rs`) only carries the plan out,
//! so the mapping is tested here without a database.

use std::collections::BTreeMap;

use martelo_engine::{
    AuctionEventKind, AuctionId, AuctionResult, Event, Listing, MetaEventKind, SaleKind, Timestamp,
    UnsoldReason, UserId,
};
use serde_json::Value;

use crate::SinkRecord;
use crate::ids;

/// A value does not fit the column it goes into (amounts, timestamps, seqs and log indexes
/// are BIGINT, positions INT). Ids never fail: they are stored by [`crate::ids`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value} does not fit a Postgres {column} column")]
pub struct OutOfRange {
    pub what: &'static str,
    pub value: u64,
    pub column: &'static str,
}

fn big(what: &'static str, value: u64) -> Result<i64, OutOfRange> {
    i64::try_from(value).map_err(|_| OutOfRange {
        what,
        value,
        column: "BIGINT",
    })
}

fn int(what: &'static str, value: u64) -> Result<i32, OutOfRange> {
    i32::try_from(value).map_err(|_| OutOfRange {
        what,
        value,
        column: "INTEGER",
    })
}

/// Cluster time in microseconds since the Unix epoch, as the writer binds it.
fn micros(at: Timestamp) -> Result<i64, OutOfRange> {
    big("timestamp", at.0)
}

/// The mutable part of an auction row, as Postgres holds it before a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuctionBefore {
    pub current_price: Option<i64>,
    pub leader_id: Option<i64>,
    pub reserve_met: bool,
    pub effective_end_micros: i64,
    pub status: &'static str,
    pub closed_at_micros: Option<i64>,
    pub seq: i64,
}

/// One row of `events`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub log_index: i64,
    pub position: i32,
    pub at_micros: i64,
    pub kind: &'static str,
    pub seq: Option<i64>,
    pub auction_id: Option<i64>,
    pub user_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub payload: Value,
    /// The entry's trace id ([`crate::trace_id`]).
    pub trace_id: Option<String>,
}

/// One row of `rejections` (and, with kind `rejected`, of `events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionRow {
    pub log_index: i64,
    pub position: i32,
    pub at_micros: i64,
    pub auction_id: Option<i64>,
    pub actor_id: Option<i64>,
    /// `RejectCode::as_str()`.
    pub code: &'static str,
    pub trace_id: Option<String>,
}

/// The `events.kind` of a rejection's row.
pub const REJECTED_KIND: &str = "rejected";

/// One row of `bids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidRow {
    pub auction_id: i64,
    pub bid_id: i32,
    pub log_index: i64,
    pub position: i32,
    pub seq: i64,
    pub bidder_id: i64,
    pub amount: i64,
    pub price_after: i64,
    pub leader_after: i64,
    pub at_micros: i64,
    /// A proxy bid: a maximum above `amount` (never the maximum itself).
    pub proxy: bool,
    /// The bidder led already and raised their own maximum.
    pub raise: bool,
}

/// A new auction row, from its `Created` event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuctionRow {
    pub auction_id: i64,
    pub seller_id: i64,
    pub listing: ListingColumns,
    pub created_at_micros: i64,
    pub seq: i64,
}

/// The listing's columns (`Created` and `Edited`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListingColumns {
    pub title: String,
    pub description: String,
    pub currency: String,
    pub starting_price: i64,
    pub has_reserve: bool,
    pub buy_now_price: Option<i64>,
    pub increment: Value,
    pub soft_close: Option<Value>,
    pub starts_at_micros: i64,
    pub ends_at_micros: i64,
}

/// The state of an auction after the batch, written only over a row whose `seq` is lower.
#[derive(Debug, Clone, PartialEq)]
pub struct AuctionUpdate {
    pub auction_id: i64,
    pub state: AuctionBefore,
    /// The last edit of the listing in the batch, if any.
    pub listing: Option<ListingColumns>,
}

/// One row of `outcomes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRow {
    pub auction_id: i64,
    pub log_index: i64,
    pub seq: i64,
    pub at_micros: i64,
    pub result: &'static str,
    pub winner_id: Option<i64>,
    pub price: Option<i64>,
    pub sale_kind: Option<&'static str>,
    pub unsold_reason: Option<&'static str>,
    pub cancelled_by: Option<i64>,
    pub cancel_reason: Option<String>,
}

/// A void to mark on an existing bid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidRow {
    pub auction_id: i64,
    pub bid_id: i32,
    pub reason: String,
    pub at_micros: i64,
}

/// A change to `accounts`, in meta seq order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    Registered {
        user_id: i64,
        username: String,
        display_name: String,
        roles: Vec<String>,
        at_micros: i64,
        seq: i64,
    },
    Roles {
        user_id: i64,
        roles: Vec<String>,
        at_micros: i64,
        seq: i64,
    },
    Suspended {
        user_id: i64,
        reason: String,
        at_micros: i64,
        seq: i64,
    },
    Reinstated {
        user_id: i64,
        at_micros: i64,
        seq: i64,
    },
}

/// One row of `admin_actions`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminActionRow {
    pub log_index: i64,
    pub position: i32,
    pub at_micros: i64,
    pub kind: &'static str,
    pub actor_id: Option<i64>,
    pub subject_id: Option<i64>,
    pub auction_id: Option<i64>,
    pub bid_id: Option<i32>,
    pub reason: Option<String>,
}

/// Everything one batch writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub events: Vec<EventRow>,
    pub auctions_created: Vec<AuctionRow>,
    pub bids: Vec<BidRow>,
    pub voids: Vec<VoidRow>,
    pub auction_updates: Vec<AuctionUpdate>,
    pub outcomes: Vec<OutcomeRow>,
    pub accounts: Vec<AccountChange>,
    pub admin_actions: Vec<AdminActionRow>,
    pub rejections: Vec<RejectionRow>,
    /// Cluster time of the batch's last event.
    pub last_event_at_micros: Option<i64>,
}

/// The auctions that `records` touch: the writer loads their state before planning.
pub fn touched_auctions(records: &[SinkRecord]) -> Vec<i64> {
    let mut ids: Vec<i64> = records
        .iter()
        .flat_map(|record| &record.events)
        .filter_map(|event| match event {
            Event::Auction(event) => Some(auction(event.auction_id)),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn listing_columns(listing: &Listing) -> Result<ListingColumns, OutOfRange> {
    Ok(ListingColumns {
        title: listing.title.as_str().to_owned(),
        description: listing.description.as_str().to_owned(),
        currency: listing.currency.as_str().to_owned(),
        starting_price: big("starting price", listing.starting_price.0)?,
        has_reserve: listing.has_reserve,
        buy_now_price: listing
            .buy_now_price
            .map(|price| big("buy-now price", price.0))
            .transpose()?,
        increment: serde_json::to_value(&listing.increment).unwrap_or(Value::Null),
        soft_close: listing
            .soft_close
            .map(|policy| serde_json::to_value(policy).unwrap_or(Value::Null)),
        starts_at_micros: micros(listing.start)?,
        ends_at_micros: micros(listing.end)?,
    })
}

/// A user id as stored ([`crate::ids`]: every id fits).
fn user(value: UserId) -> i64 {
    ids::to_bigint(value.0)
}

/// An auction id as stored ([`crate::ids`]: every id fits).
fn auction(value: AuctionId) -> i64 {
    ids::to_bigint(value.0)
}

/// The stable name of an event's kind, as the `events.kind` column holds it.
pub fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::Auction(event) => match &event.kind {
            AuctionEventKind::Created { .. } => "auction_created",
            AuctionEventKind::Edited { .. } => "auction_edited",
            AuctionEventKind::BidAccepted { .. } => "bid_accepted",
            AuctionEventKind::PriceChanged { .. } => "price_changed",
            AuctionEventKind::Outbid { .. } => "outbid",
            AuctionEventKind::EndExtended { .. } => "end_extended",
            AuctionEventKind::BidVoided { .. } => "bid_voided",
            AuctionEventKind::PriceCleared => "price_cleared",
            AuctionEventKind::Closed { .. } => "auction_closed",
        },
        Event::BidderSuspended { .. } => "bidder_suspended",
        Event::BidderReinstated { .. } => "bidder_reinstated",
        Event::Meta(event) => match &event.kind {
            MetaEventKind::UserRegistered { .. } => "user_registered",
            MetaEventKind::PasswordChanged { .. } => "password_changed",
            MetaEventKind::RolesChanged { .. } => "roles_changed",
            MetaEventKind::UserSuspended { .. } => "user_suspended",
            MetaEventKind::UserReinstated { .. } => "user_reinstated",
            MetaEventKind::SessionCreated { .. } => "session_created",
            MetaEventKind::SessionRevoked { .. } => "session_revoked",
            MetaEventKind::AllSessionsRevoked { .. } => "all_sessions_revoked",
            MetaEventKind::ClusterFactsSet { .. } => "cluster_facts_set",
            MetaEventKind::NodeRetired { .. } => "node_retired",
        },
    }
}

fn roles(roles: &std::collections::BTreeSet<martelo_engine::Role>) -> Vec<String> {
    roles.iter().map(|role| role.as_str().to_owned()).collect()
}

/// Maps one batch to rows. `before` holds the Postgres state of the auctions the batch
/// touches ([`touched_auctions`]); an auction absent from it and not created in the batch is
/// one whose `Created` event is not in this database, and its state events are skipped for
/// the `auctions` table (the raw `events` rows are still written).
pub fn plan(
    records: &[SinkRecord],
    before: &BTreeMap<i64, AuctionBefore>,
) -> Result<Plan, OutOfRange> {
    let mut plan = Plan::default();
    let mut states: BTreeMap<i64, AuctionBefore> = before.clone();
    let mut listings: BTreeMap<i64, ListingColumns> = BTreeMap::new();
    let mut touched: Vec<i64> = Vec::new();
    // Bids whose visible price is known only once the rest of their entry is folded in.
    let mut pending_bids: Vec<usize> = Vec::new();
    for record in records {
        let log_index = big("log index", record.log_index)?;
        let trace_id = crate::trace_id(record.traceparent.as_deref());
        for (position, event) in record.events.iter().enumerate() {
            let position = int("event position", position as u64)?;
            let mut row = plan_event(
                log_index,
                position,
                event,
                &mut plan,
                &mut states,
                &mut touched,
            )?;
            row.trace_id.clone_from(&trace_id);
            if let Event::Auction(auction_event) = event {
                match &auction_event.kind {
                    AuctionEventKind::BidAccepted { .. } => pending_bids.push(plan.bids.len() - 1),
                    AuctionEventKind::Edited { listing } => {
                        listings.insert(row.auction_id.unwrap_or(0), listing_columns(listing)?);
                    }
                    _ => {}
                }
            }
            plan.last_event_at_micros = Some(row.at_micros);
            plan.events.push(row);
        }
        // Rejections follow the entry's events (a rejected command has none), numbered on.
        for (index, rejection) in record.rejections.iter().enumerate() {
            let position = int("event position", (record.events.len() + index) as u64)?;
            let row = RejectionRow {
                log_index,
                position,
                at_micros: micros(rejection.at)?,
                auction_id: rejection.auction_id.map(auction),
                actor_id: rejection.actor.map(user),
                code: rejection.code.as_str(),
                trace_id: trace_id.clone(),
            };
            plan.events.push(rejection_event(&row, rejection));
            plan.rejections.push(row);
        }
        // The entry is applied in full: the auction's price and leader now are the ones its
        // bids left behind (a proxy response is part of the same entry).
        for index in pending_bids.drain(..) {
            let bid = &mut plan.bids[index];
            if let Some(state) = states.get(&bid.auction_id) {
                bid.price_after = state.current_price.unwrap_or(bid.amount);
                bid.leader_after = state.leader_id.unwrap_or(bid.bidder_id);
            }
        }
    }
    touched.sort_unstable();
    touched.dedup();
    for auction_id in touched {
        // An auction whose `Created` is not in this database has no row to update.
        let Some(state) = states.remove(&auction_id) else {
            continue;
        };
        let listing = listings.remove(&auction_id);
        if before.get(&auction_id) == Some(&state) && listing.is_none() {
            continue;
        }
        plan.auction_updates.push(AuctionUpdate {
            auction_id,
            state,
            listing,
        });
    }
    Ok(plan)
}

/// The `events` row of a rejection: kind `rejected`, no seq, the actor as both the user it
/// is about and the user who did it, the rejection itself as the payload.
fn rejection_event(row: &RejectionRow, rejection: &martelo_engine::outcome::Rejection) -> EventRow {
    EventRow {
        log_index: row.log_index,
        position: row.position,
        at_micros: row.at_micros,
        kind: REJECTED_KIND,
        seq: None,
        auction_id: row.auction_id,
        user_id: row.actor_id,
        actor_id: row.actor_id,
        payload: serde_json::to_value(rejection).unwrap_or(Value::Null),
        trace_id: row.trace_id.clone(),
    }
}

fn plan_event(
    log_index: i64,
    position: i32,
    event: &Event,
    plan: &mut Plan,
    states: &mut BTreeMap<i64, AuctionBefore>,
    touched: &mut Vec<i64>,
) -> Result<EventRow, OutOfRange> {
    let payload = serde_json::to_value(event).unwrap_or(Value::Null);
    let kind = event_kind(event);
    let mut row = EventRow {
        log_index,
        position,
        at_micros: 0,
        kind,
        seq: None,
        auction_id: None,
        user_id: None,
        actor_id: None,
        payload,
        trace_id: None,
    };
    let admin = |kind, at_micros| AdminActionRow {
        log_index,
        position,
        at_micros,
        kind,
        actor_id: None,
        subject_id: None,
        auction_id: None,
        bid_id: None,
        reason: None,
    };
    match event {
        Event::Auction(event) => {
            let auction_id = auction(event.auction_id);
            let at = micros(event.at)?;
            let seq = big("seq", event.seq)?;
            row.at_micros = at;
            row.seq = Some(seq);
            row.auction_id = Some(auction_id);
            touched.push(auction_id);
            if let AuctionEventKind::Created { seller, listing } = &event.kind {
                let listing = listing_columns(listing)?;
                states.insert(
                    auction_id,
                    AuctionBefore {
                        current_price: None,
                        leader_id: None,
                        reserve_met: false,
                        effective_end_micros: listing.ends_at_micros,
                        status: "open",
                        closed_at_micros: None,
                        seq,
                    },
                );
                row.user_id = Some(user(*seller));
                plan.auctions_created.push(AuctionRow {
                    auction_id,
                    seller_id: user(*seller),
                    listing,
                    created_at_micros: at,
                    seq,
                });
                return Ok(row);
            }
            let state = states.get_mut(&auction_id);
            let state_seen = |state: Option<&mut AuctionBefore>| -> Option<()> {
                let state = state?;
                state.seq = state.seq.max(seq);
                Some(())
            };
            match &event.kind {
                AuctionEventKind::Created { .. } => {}
                AuctionEventKind::Edited { .. } => {
                    state_seen(state);
                }
                AuctionEventKind::BidAccepted {
                    bid_id,
                    bidder,
                    amount,
                    proxy,
                    raise,
                } => {
                    let bidder = user(*bidder);
                    let amount = big("amount", amount.0)?;
                    row.user_id = Some(bidder);
                    state_seen(state);
                    plan.bids.push(BidRow {
                        auction_id,
                        bid_id: int("bid id", u64::from(bid_id.0))?,
                        log_index,
                        position,
                        seq,
                        bidder_id: bidder,
                        amount,
                        price_after: amount,
                        leader_after: bidder,
                        at_micros: at,
                        proxy: *proxy,
                        raise: *raise,
                    });
                }
                AuctionEventKind::PriceChanged {
                    price,
                    leader,
                    reserve_met,
                } => {
                    let (price, leader) = (big("price", price.0)?, user(*leader));
                    row.user_id = Some(leader);
                    if let Some(state) = state {
                        state.current_price = Some(price);
                        state.leader_id = Some(leader);
                        state.reserve_met = *reserve_met;
                        state.seq = state.seq.max(seq);
                    }
                }
                AuctionEventKind::Outbid { bidder, .. } => {
                    row.user_id = Some(user(*bidder));
                    state_seen(state);
                }
                AuctionEventKind::EndExtended { end } => {
                    let end = micros(*end)?;
                    if let Some(state) = state {
                        state.effective_end_micros = end;
                        state.seq = state.seq.max(seq);
                    }
                }
                AuctionEventKind::BidVoided { bid_id, reason } => {
                    let bid_id = int("bid id", u64::from(bid_id.0))?;
                    state_seen(state);
                    plan.voids.push(VoidRow {
                        auction_id,
                        bid_id,
                        reason: reason.as_str().to_owned(),
                        at_micros: at,
                    });
                    plan.admin_actions.push(AdminActionRow {
                        auction_id: Some(auction_id),
                        bid_id: Some(bid_id),
                        reason: Some(reason.as_str().to_owned()),
                        ..admin("bid_voided", at)
                    });
                }
                AuctionEventKind::PriceCleared => {
                    if let Some(state) = state {
                        state.current_price = None;
                        state.leader_id = None;
                        state.reserve_met = false;
                        state.seq = state.seq.max(seq);
                    }
                }
                AuctionEventKind::Closed { result } => {
                    let outcome = outcome_row(auction_id, log_index, seq, at, result)?;
                    if let Some(state) = state {
                        state.status = outcome.result;
                        state.closed_at_micros = Some(at);
                        state.seq = state.seq.max(seq);
                    }
                    row.user_id = outcome.winner_id;
                    row.actor_id = outcome.cancelled_by;
                    if let AuctionResult::Cancelled { by, reason } = result {
                        plan.admin_actions.push(AdminActionRow {
                            actor_id: Some(user(*by)),
                            auction_id: Some(auction_id),
                            reason: reason.as_ref().map(|reason| reason.as_str().to_owned()),
                            ..admin("auction_cancelled", at)
                        });
                    }
                    plan.outcomes.push(outcome);
                }
            }
        }
        Event::BidderSuspended {
            user: who,
            reason,
            at,
        } => {
            let (who, at) = (user(*who), micros(*at)?);
            row.at_micros = at;
            row.user_id = Some(who);
            plan.admin_actions.push(AdminActionRow {
                subject_id: Some(who),
                reason: Some(reason.as_str().to_owned()),
                ..admin("bidder_suspended", at)
            });
        }
        Event::BidderReinstated { user: who, at } => {
            let (who, at) = (user(*who), micros(*at)?);
            row.at_micros = at;
            row.user_id = Some(who);
            plan.admin_actions.push(AdminActionRow {
                subject_id: Some(who),
                ..admin("bidder_reinstated", at)
            });
        }
        Event::Meta(event) => {
            let at = micros(event.at)?;
            let seq = big("meta seq", event.seq)?;
            row.at_micros = at;
            row.seq = Some(seq);
            if let Some(action) = plan_meta(&event.kind, at, seq, &mut row, &mut plan.accounts)? {
                plan.admin_actions.push(AdminActionRow {
                    actor_id: row.actor_id,
                    subject_id: row.user_id,
                    reason: action.1,
                    ..admin(action.0, at)
                });
            }
        }
    }
    Ok(row)
}

/// Fills the row's user and actor, records account changes, and returns the admin action
/// (kind and reason) the event is, if it is one.
fn plan_meta(
    kind: &MetaEventKind,
    at_micros: i64,
    seq: i64,
    row: &mut EventRow,
    accounts: &mut Vec<AccountChange>,
) -> Result<Option<(&'static str, Option<String>)>, OutOfRange> {
    let mut action = None;
    match kind {
        MetaEventKind::UserRegistered {
            user: who,
            username,
            display_name,
            roles: granted,
        } => {
            row.user_id = Some(user(*who));
            accounts.push(AccountChange::Registered {
                user_id: user(*who),
                username: username.as_str().to_owned(),
                display_name: display_name.as_str().to_owned(),
                roles: roles(granted),
                at_micros,
                seq,
            });
        }
        MetaEventKind::PasswordChanged { user: who, by } => {
            row.user_id = Some(user(*who));
            row.actor_id = Some(user(*by));
            // Only an admin resetting someone else's password is an admin action.
            if who != by {
                action = Some(("password_changed", None));
            }
        }
        MetaEventKind::RolesChanged {
            user: who,
            roles: granted,
            by,
        } => {
            row.user_id = Some(user(*who));
            row.actor_id = Some(user(*by));
            accounts.push(AccountChange::Roles {
                user_id: user(*who),
                roles: roles(granted),
                at_micros,
                seq,
            });
            action = Some(("roles_changed", None));
        }
        MetaEventKind::UserSuspended {
            user: who,
            reason,
            by,
        } => {
            row.user_id = Some(user(*who));
            row.actor_id = Some(user(*by));
            accounts.push(AccountChange::Suspended {
                user_id: user(*who),
                reason: reason.as_str().to_owned(),
                at_micros,
                seq,
            });
            action = Some(("user_suspended", Some(reason.as_str().to_owned())));
        }
        MetaEventKind::UserReinstated { user: who, by } => {
            row.user_id = Some(user(*who));
            row.actor_id = Some(user(*by));
            accounts.push(AccountChange::Reinstated {
                user_id: user(*who),
                at_micros,
                seq,
            });
            action = Some(("user_reinstated", None));
        }
        MetaEventKind::SessionCreated { user: who, .. }
        | MetaEventKind::SessionRevoked { user: who, .. }
        | MetaEventKind::AllSessionsRevoked { user: who } => {
            row.user_id = Some(user(*who));
        }
        MetaEventKind::ClusterFactsSet { .. } | MetaEventKind::NodeRetired { .. } => {}
    }
    Ok(action)
}

fn outcome_row(
    auction_id: i64,
    log_index: i64,
    seq: i64,
    at: i64,
    result: &AuctionResult,
) -> Result<OutcomeRow, OutOfRange> {
    let mut row = OutcomeRow {
        auction_id,
        log_index,
        seq,
        at_micros: at,
        result: "unsold",
        winner_id: None,
        price: None,
        sale_kind: None,
        unsold_reason: None,
        cancelled_by: None,
        cancel_reason: None,
    };
    match result {
        AuctionResult::Sold { winner, price, via } => {
            row.result = "sold";
            row.winner_id = Some(user(*winner));
            row.price = Some(big("price", price.0)?);
            row.sale_kind = Some(match via {
                SaleKind::Bidding => "bidding",
                SaleKind::BuyNow => "buy_now",
            });
        }
        AuctionResult::Unsold { reason } => {
            row.unsold_reason = Some(match reason {
                UnsoldReason::NoBids => "no_bids",
                UnsoldReason::ReserveNotMet => "reserve_not_met",
            });
        }
        AuctionResult::Cancelled { by, reason } => {
            row.result = "cancelled";
            row.cancelled_by = Some(user(*by));
            row.cancel_reason = reason.as_ref().map(|reason| reason.as_str().to_owned());
        }
    }
    Ok(row)
}
