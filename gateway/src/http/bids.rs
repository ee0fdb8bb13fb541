//! Bids and buy-it-now: `POST /v1/auctions/{id}/bids` and `POST /v1/auctions/{id}/buy`, and
//! [`place_bid`], which the WebSocket session shares so both paths answer the same.
//!
//! The bidder is always the token's user (`Actor { user, role: principal.top_role() }`),
//! never a body field. The `Idempotency-Key` header is the engine's request id: a retry with
//! the same key gets the first outcome (`replayed: true`). An unknown outcome is 503
//! `outcome_unknown` ("retry with the same key"), never a guess. A `bid_too_low` refusal does
//! not name the minimum: the engine's refusal does not carry it, and reading it for every
//! refusal would double the work of a hot auction's commonest answer. Watchers get it in
//! every price event; the web page reads the auction after such a refusal.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use martelo_engine::{Accepted, Action, Actor, Amount, AuctionId, Reply, Request, RequestId};
use martelo_proto::Traceparent;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::error::{Problem, codes};
use crate::http::extract::{Authenticated, Json, Path, idempotency_key, traceparent};
use crate::state::AppState;

/// A bid (or, with `amount: None`, a buy-it-now) as the HTTP and WebSocket paths give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BidInput {
    pub auction: AuctionId,
    /// The client's idempotency key (HTTP `Idempotency-Key`, WS `request_id`).
    pub request_id: String,
    /// Minor units; `None` buys the auction now at its buy-it-now price.
    pub amount: Option<u64>,
    /// Proxy maximum, minor units.
    pub max: Option<u64>,
}

/// An accepted bid or purchase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BidAccepted {
    /// The auction id.
    pub auction: u64,
    /// The auction's sequence number after this bid.
    pub seq: u64,
    /// The visible price after this bid, minor units.
    pub price: u64,
    /// Whether the caller leads now.
    pub leading: bool,
    /// Whether the reserve is met (always true after a purchase).
    pub reserve_met: bool,
    /// The bid's id in the auction's history (`null` for a purchase).
    pub bid_id: Option<u32>,
    /// The effective end after this bid (soft close may extend it), µs since the epoch
    /// (`null` for a purchase: the auction is sold).
    pub end_us: Option<u64>,
    /// True when this is a retry of an applied request: the first outcome, unchanged.
    pub replayed: bool,
    /// The log index of the entry.
    pub log_index: u64,
    /// The cluster timestamp of the entry, µs since the epoch.
    pub timestamp_us: u64,
    /// `bid` or `buy_now`.
    pub kind: &'static str,
}

/// Checks an amount: an integer in `1..=AMOUNT_MAX` minor units.
pub fn check_amount(field: &str, value: u64) -> Result<Amount, Problem> {
    let amount = Amount(value);
    if amount.in_range() {
        Ok(amount)
    } else {
        Err(invalid_amount(field))
    }
}

/// 400 `invalid_amount` naming `field`.
pub fn invalid_amount(field: &str) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        codes::INVALID_AMOUNT,
        format!(
            "{field} must be a whole number of minor units from 1 to {}",
            martelo_engine::limits::AMOUNT_MAX
        ),
    )
}

/// Places a bid (or buys now) as `principal`, proposing it to the auction's group.
/// Rejections are `Problem::rejected` (409 with the engine's code, 403/404 where that is
/// what the code means); an unknown outcome is 503 `outcome_unknown`.
pub async fn place_bid(
    state: &AppState,
    principal: &Principal,
    bid: BidInput,
    traceparent: Option<&Traceparent>,
) -> Result<BidAccepted, Problem> {
    let request_id = RequestId::try_from(bid.request_id.as_str()).map_err(|error| {
        Problem::invalid(format!(
            "the idempotency key (request id) is not valid: {error}"
        ))
    })?;
    let action = match bid.amount {
        Some(amount) => {
            let amount = check_amount("amount", amount)?;
            let max = bid.max.map(|max| check_amount("max", max)).transpose()?;
            Action::PlaceBid {
                auction_id: bid.auction,
                amount,
                max,
            }
        }
        None if bid.max.is_some() => {
            return Err(Problem::invalid("a purchase (buy it now) takes no max"));
        }
        None => Action::BuyNow {
            auction_id: bid.auction,
        },
    };
    let request = Request {
        actor: Actor {
            user: principal.user,
            role: principal.top_role(),
        },
        request_id,
        action,
    };
    let group = state.client.group_of(bid.auction);
    // The current span's context (HTTP request or WebSocket bid) when spans are exported,
    // so the client's and the nodes' spans join it; otherwise the caller's, unchanged.
    let traceparent = martelo_trace::outgoing(
        &tracing::Span::current(),
        traceparent.map(Traceparent::as_str),
    )
    .and_then(|text| Traceparent::try_from(text.as_str()).ok());
    let proposed = state
        .client
        .propose_with(group, request, traceparent.as_ref())
        .await
        .map_err(|error| Problem::from_propose(&error))?;
    let (log_index, timestamp_us, replayed) =
        (proposed.log_index, proposed.timestamp.0, proposed.replayed);
    match proposed.reply {
        Reply::Accepted(Accepted::Bid {
            auction_id,
            bid_id,
            seq,
            price,
            leading,
            reserve_met,
            end,
        }) => Ok(BidAccepted {
            auction: auction_id.0,
            seq,
            price: price.0,
            leading,
            reserve_met,
            bid_id: Some(bid_id.0),
            end_us: Some(end.0),
            replayed,
            log_index,
            timestamp_us,
            kind: "bid",
        }),
        Reply::Accepted(Accepted::BoughtNow {
            auction_id,
            seq,
            price,
        }) => Ok(BidAccepted {
            auction: auction_id.0,
            seq,
            price: price.0,
            leading: true,
            reserve_met: true,
            bid_id: None,
            end_us: None,
            replayed,
            log_index,
            timestamp_us,
            kind: "buy_now",
        }),
        Reply::Rejected(code) => Err(Problem::rejected(code)),
        Reply::Accepted(other) => {
            tracing::error!(?other, "a bid was answered with another acceptance");
            Err(Problem::internal())
        }
    }
}

/// The body of `POST /v1/auctions/{id}/bids`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BidBody {
    /// The bid, in minor units (an integer from 1 to 10^15).
    #[schema(value_type = u64)]
    pub amount: serde_json::Number,
    /// Optional proxy maximum, minor units: the engine bids for you up to it.
    #[schema(value_type = Option<u64>)]
    pub max: Option<serde_json::Number>,
}

/// A JSON number that must be a whole, positive, in-range amount (`-5`, `1.5` and `1e30`
/// are refused with `invalid_amount`, not a generic JSON error).
pub fn amount_from_json(field: &str, number: &serde_json::Number) -> Result<u64, Problem> {
    let value = number.as_u64().ok_or_else(|| invalid_amount(field))?;
    check_amount(field, value).map(|amount| amount.0)
}

/// Places a bid.
#[utoipa::path(
    post,
    path = "/v1/auctions/{id}/bids",
    tag = "bids",
    params(
        ("id" = u64, Path, description = "The auction id"),
        ("Idempotency-Key" = String, Header, description = "The request id: retry with the same key to learn the outcome"),
    ),
    request_body = BidBody,
    responses(
        (status = 201, body = BidAccepted, description = "Accepted"),
        (status = 400, body = Problem, description = "Bad input: malformed_json, invalid_amount, idempotency_key_required"),
        (status = 401, body = Problem, description = "unauthorized or token_expired"),
        (status = 404, body = Problem, description = "auction_not_found"),
        (status = 409, body = Problem, description = "Rejected by the engine: bid_too_low, auction_closed, own_auction, …"),
        (status = 503, body = Problem, description = "outcome_unknown: retry with the same key"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn post_bid(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(auction): Path<u64>,
    headers: HeaderMap,
    Json(body): Json<BidBody>,
) -> Result<impl IntoResponse, Problem> {
    let request_id = idempotency_key(&headers)?;
    let bid = BidInput {
        auction: AuctionId(auction),
        request_id,
        amount: Some(amount_from_json("amount", &body.amount)?),
        max: body
            .max
            .as_ref()
            .map(|max| amount_from_json("max", max))
            .transpose()?,
    };
    let accepted = place_bid(&state, &principal, bid, traceparent(&headers).as_ref()).await?;
    Ok((StatusCode::CREATED, axum::Json(accepted)))
}

/// Buys the auction now at its buy-it-now price.
#[utoipa::path(
    post,
    path = "/v1/auctions/{id}/buy",
    tag = "bids",
    params(
        ("id" = u64, Path, description = "The auction id"),
        ("Idempotency-Key" = String, Header, description = "The request id"),
    ),
    responses(
        (status = 201, body = BidAccepted, description = "Bought"),
        (status = 404, body = Problem, description = "auction_not_found"),
        (status = 409, body = Problem, description = "buy_now_unavailable, auction_closed, …"),
        (status = 503, body = Problem, description = "outcome_unknown: retry with the same key"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn post_buy(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(auction): Path<u64>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let request_id = idempotency_key(&headers)?;
    let bid = BidInput {
        auction: AuctionId(auction),
        request_id,
        amount: None,
        max: None,
    };
    let accepted = place_bid(&state, &principal, bid, traceparent(&headers).as_ref()).await?;
    Ok((StatusCode::CREATED, axum::Json(accepted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_whole_positive_and_at_most_the_engine_maximum() {
        let number = |text: &str| serde_json::from_str::<serde_json::Number>(text).expect("num");
        assert_eq!(amount_from_json("amount", &number("150")).expect("ok"), 150);
        for bad in ["-5", "1.5", "0", "1e30", "1000000000000001"] {
            let problem = amount_from_json("amount", &number(bad)).expect_err(bad);
            assert_eq!(
                (problem.status, problem.code.as_ref()),
                (400, "invalid_amount")
            );
        }
        assert!(amount_from_json("amount", &number("1000000000000000")).is_ok());
    }
}
