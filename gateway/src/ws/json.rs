//! The stable JSON forms of auction events and of an auction's public view, shared by the
//! WebSocket protocol and the HTTP API. Engine structs are never serialized directly: this
//! mapping is the contract, so an engine refactor cannot change what clients see.
//!
//! Amounts are integers in minor units, times are integers in µs since the Unix epoch, user
//! ids are integers. An event is `{"kind": "...", ...}`:
//!
//! | kind | fields |
//! |---|---|
//! | `auction_created` | `seller`, `listing` (as in the view) |
//! | `auction_edited` | `listing` |
//! | `bid_placed` | `bid_id`, `bidder`, `amount`, `proxy` (the bid set a maximum above its amount; never the maximum), `raise` (the leader raised their own maximum) |
//! | `price_changed` | `price`, `leader`, `reserve_met`, `minimum_bid` (see below) |
//! | `outbid` | `bidder` (no longer leads), `by` |
//! | `auction_extended` | `effective_end_us` |
//! | `bid_voided` | `bid_id`, `reason` |
//! | `price_cleared` | `minimum_bid` (see below) |
//! | `auction_closed` | `outcome` (`sold`, `unsold`, `cancelled`), `winner`, `price`, `via` (`bidding`, `buy_now`), `unsold_reason` (`no_bids`, `reserve_not_met`), `cancelled_by`, `reason` |
//!
//! `minimum_bid` (the next minimum bid after the event) is not in the engine's event: the
//! WebSocket session adds it from the listing it knows ([`event_frame_with_minimum`]), so a
//! page never shows a stale minimum. A frame without it (the session did not know the
//! listing yet) means "read the auction for the minimum".

use martelo_engine::{
    Amount, AuctionEvent, AuctionEventKind, AuctionResult, AuctionView, Closed, IncrementPolicy,
    Listing, SaleKind, SoftCloseMode, Timestamp, UnsoldReason,
};
use serde_json::{Value, json};

/// An auction event's JSON (`{"kind": ..., ...}`), without its seq and time.
pub fn event_json(kind: &AuctionEventKind) -> Value {
    match kind {
        AuctionEventKind::Created { seller, listing } => json!({
            "kind": "auction_created",
            "seller": seller.0,
            "listing": listing_json(listing),
        }),
        AuctionEventKind::Edited { listing } => json!({
            "kind": "auction_edited",
            "listing": listing_json(listing),
        }),
        AuctionEventKind::BidAccepted {
            bid_id,
            bidder,
            amount,
            proxy,
            raise,
        } => json!({
            "kind": "bid_placed",
            "bid_id": bid_id.0,
            "bidder": bidder.0,
            "amount": amount.0,
            "proxy": proxy,
            "raise": raise,
        }),
        AuctionEventKind::PriceChanged {
            price,
            leader,
            reserve_met,
        } => json!({
            "kind": "price_changed",
            "price": price.0,
            "leader": leader.0,
            "reserve_met": reserve_met,
        }),
        AuctionEventKind::Outbid { bidder, by } => json!({
            "kind": "outbid",
            "bidder": bidder.0,
            "by": by.0,
        }),
        AuctionEventKind::EndExtended { end } => json!({
            "kind": "auction_extended",
            "effective_end_us": end.0,
        }),
        AuctionEventKind::BidVoided { bid_id, reason } => json!({
            "kind": "bid_voided",
            "bid_id": bid_id.0,
            "reason": reason.as_str(),
        }),
        AuctionEventKind::PriceCleared => json!({ "kind": "price_cleared" }),
        AuctionEventKind::Closed { result } => {
            let mut value = result_json(result);
            value["kind"] = json!("auction_closed");
            value
        }
    }
}

/// An auction's result: `{"outcome": "sold" | "unsold" | "cancelled", ...}`.
pub fn result_json(result: &AuctionResult) -> Value {
    match result {
        AuctionResult::Sold { winner, price, via } => json!({
            "outcome": "sold",
            "winner": winner.0,
            "price": price.0,
            "via": match via {
                SaleKind::Bidding => "bidding",
                SaleKind::BuyNow => "buy_now",
            },
        }),
        AuctionResult::Unsold { reason } => json!({
            "outcome": "unsold",
            "unsold_reason": match reason {
                UnsoldReason::NoBids => "no_bids",
                UnsoldReason::ReserveNotMet => "reserve_not_met",
            },
        }),
        AuctionResult::Cancelled { by, reason } => json!({
            "outcome": "cancelled",
            "cancelled_by": by.0,
            "reason": reason.as_ref().map(|reason| reason.as_str()),
        }),
    }
}

/// A listing's public fields (the reserve amount is never in it).
pub fn listing_json(listing: &Listing) -> Value {
    json!({
        "title": listing.title.as_str(),
        "description": listing.description.as_str(),
        "currency": listing.currency.as_str(),
        "starting_price": listing.starting_price.0,
        "has_reserve": listing.has_reserve,
        "buy_now_price": listing.buy_now_price.map(|amount| amount.0),
        "increment": match &listing.increment {
            IncrementPolicy::Fixed(amount) => json!({ "fixed": amount.0 }),
            IncrementPolicy::Bands(bands) => json!({
                "bands": bands
                    .iter()
                    .map(|band| json!({ "from": band.from.0, "increment": band.increment.0 }))
                    .collect::<Vec<_>>(),
            }),
            IncrementPolicy::Ebay => json!("ebay"),
        },
        "start_us": listing.start.0,
        "scheduled_end_us": listing.end.0,
        "soft_close": listing.soft_close.map(|soft| {
            let (mode, by) = match soft.mode {
                SoftCloseMode::AddToEnd(by) => ("add_to_end", by),
                SoftCloseMode::ResetRemaining(by) => ("reset_remaining", by),
            };
            json!({
                "window_us": soft.window.0,
                "mode": mode,
                "by_us": by.0,
                "total_extension_max_us": soft.total_extension_max.map(|max| max.0),
            })
        }),
    })
}

/// An auction's public view (what a snapshot's `state` holds).
pub fn view_json(view: &AuctionView) -> Value {
    json!({
        "id": view.id.0,
        "seller": view.seller.0,
        "listing": listing_json(&view.listing),
        "created_at_us": view.created_at.0,
        "effective_end_us": view.end.0,
        "seq": view.seq,
        "price": view.price.map(|amount| amount.0),
        "leading_bidder": view.leading_bidder.map(|user| user.0),
        "minimum_bid": view.minimum_bid.0,
        "reserve_met": view.reserve_met,
        "buy_now_price": view.buy_now_price.map(|amount| amount.0),
        "bids": view
            .bids
            .iter()
            .map(|bid| json!({
                "bidder": bid.bidder.0,
                "amount": bid.amount.0,
                "at_us": bid.at.0,
                "log_index": bid.log_index,
                "voided": bid.voided,
            }))
            .collect::<Vec<_>>(),
        "closed": view.closed.as_ref().map(closed_json),
    })
}

fn closed_json(closed: &Closed) -> Value {
    let mut value = result_json(&closed.result);
    value["at_us"] = json!(closed.at.0);
    value
}

/// The server's `event` message for `event`, committed at `timestamp`.
pub fn event_frame(event: &AuctionEvent, timestamp: Timestamp) -> String {
    event_frame_value(event, timestamp).to_string()
}

/// [`event_frame`] with the next minimum bid in the event (for `price_changed` and
/// `price_cleared`).
pub fn event_frame_with_minimum(
    event: &AuctionEvent,
    timestamp: Timestamp,
    minimum: Amount,
) -> String {
    let mut value = event_frame_value(event, timestamp);
    value["event"]["minimum_bid"] = json!(minimum.0);
    value.to_string()
}

fn event_frame_value(event: &AuctionEvent, timestamp: Timestamp) -> Value {
    json!({
        "type": "event",
        "auction": event.auction_id.0,
        "seq": event.seq,
        "timestamp_us": timestamp.0,
        "event": event_json(&event.kind),
    })
}

/// The smallest bid a non-leading bidder may place when the visible price is `price`
/// (`None`: no valid bid), under `listing`: the engine's rule (`Auction::minimum_bid`:
/// the starting price, or the price plus the increment at it), from the public listing.
pub fn minimum_bid(listing: &Listing, price: Option<Amount>) -> Amount {
    match price {
        None => listing.starting_price,
        // Both terms are at most AMOUNT_MAX, whose double fits in u64 (the engine's
        // limits); saturate rather than trust that here.
        Some(price) => Amount(
            price
                .0
                .saturating_add(listing.increment.increment_at(price).0),
        ),
    }
}

#[cfg(test)]
mod tests {
    use martelo_engine::{Amount, AuctionId, BidId, UserId};

    use super::*;

    #[test]
    fn events_map_to_their_stable_kinds() {
        let event = AuctionEvent {
            auction_id: AuctionId(7),
            seq: 3,
            at: Timestamp(5),
            kind: AuctionEventKind::BidAccepted {
                bid_id: BidId(1),
                bidder: UserId(9),
                amount: Amount(150),
                proxy: true,
                raise: false,
            },
        };
        let frame: Value = serde_json::from_str(&event_frame(&event, Timestamp(11))).unwrap();
        assert_eq!(
            frame,
            json!({
                "type": "event", "auction": 7, "seq": 3, "timestamp_us": 11,
                "event": {"kind": "bid_placed", "bid_id": 1, "bidder": 9, "amount": 150,
                          "proxy": true, "raise": false},
            })
        );
        let closed = event_json(&AuctionEventKind::Closed {
            result: AuctionResult::Sold {
                winner: UserId(9),
                price: Amount(150),
                via: SaleKind::BuyNow,
            },
        });
        assert_eq!(
            closed,
            json!({"kind": "auction_closed", "outcome": "sold", "winner": 9, "price": 150, "via": "buy_now"})
        );
        assert_eq!(
            event_json(&AuctionEventKind::EndExtended { end: Timestamp(99) }),
            json!({"kind": "auction_extended", "effective_end_us": 99})
        );
    }

    #[test]
    fn price_frames_carry_the_minimum_the_engine_would_ask_next() {
        let listing = |increment| Listing {
            title: martelo_engine::Title::try_from("Lamp").unwrap(),
            description: martelo_engine::Description::try_from("").unwrap(),
            currency: martelo_engine::Currency::try_from("EUR").unwrap(),
            starting_price: Amount(1000),
            has_reserve: false,
            buy_now_price: None,
            increment,
            start: Timestamp(0),
            end: Timestamp(10),
            soft_close: None,
        };
        let fixed = listing(IncrementPolicy::Fixed(Amount(50)));
        assert_eq!(minimum_bid(&fixed, None), Amount(1000), "no bid: the start");
        assert_eq!(minimum_bid(&fixed, Some(Amount(1200))), Amount(1250));
        // eBay's table: 25.00 is in the 1.00 band (minor units: 2_500 → +100).
        let ebay = listing(IncrementPolicy::Ebay);
        assert_eq!(minimum_bid(&ebay, Some(Amount(2_500))), Amount(2_600));
        let event = AuctionEvent {
            auction_id: AuctionId(7),
            seq: 4,
            at: Timestamp(5),
            kind: AuctionEventKind::PriceChanged {
                price: Amount(1200),
                leader: UserId(9),
                reserve_met: true,
            },
        };
        let frame: Value = serde_json::from_str(&event_frame_with_minimum(
            &event,
            Timestamp(6),
            Amount(1250),
        ))
        .unwrap();
        assert_eq!(
            frame["event"],
            json!({"kind": "price_changed", "price": 1200, "leader": 9, "reserve_met": true,
                   "minimum_bid": 1250})
        );
    }
}
