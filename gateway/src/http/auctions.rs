//! Auctions: create (`POST /v1/auctions`), edit (`PUT /v1/auctions/{id}`), cancel
//! (`POST /v1/auctions/{id}/cancel`), void a bid (admin:
//! `POST /v1/auctions/{id}/bids/{bid_id}/void`), remove a bidder's bids (admin:
//! `POST /v1/auctions/{id}/bidders/{user}/remove`), read one (`GET /v1/auctions/{id}`) and
//! list (`GET /v1/auctions`: filter, title search, seller, sort, paged).
//!
//! Changes need an `Idempotency-Key` (the engine's request id). A new auction's id is
//! derived from `blake3(user id ‖ key)` reduced to `1..2^53` ([`derive_auction_id`]), so a
//! retry with the same key names the same auction and ids stay exact in JSON numbers. The
//! seller is the token's user; the engine refuses edits and cancels by anyone but the
//! seller or an admin (`not_seller`, 403).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use martelo_client::{ListCursor, ListFilter, ListedAuction, ReadConsistency};
use martelo_engine::{
    Accepted, Action, Actor, Amount, AuctionId, AuctionResult, AuctionSpec, AuctionView, BidId,
    Closed, Currency, Description, IncrementBand, IncrementPolicy, Micros, Reason, Reply, Request,
    RequestId, Role, SaleKind, SoftClose, SoftCloseMode, Timestamp, Title, UnsoldReason, UserId,
};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::error::Problem;
use crate::http::accounts::unexpected;
use crate::http::bids::check_amount;
use crate::http::extract::{Authenticated, Json, Path, Query, idempotency_key, traceparent};
use crate::state::AppState;

/// Largest auction id: ids stay below 2^53, exact in every JSON parser.
pub const AUCTION_ID_MAX: u64 = (1 << 53) - 1;
/// Default and largest page of `GET /v1/auctions`.
const AUCTIONS_PAGE_DEFAULT: usize = 50;
const AUCTIONS_PAGE_MAX: usize = 200;

/// The auction id a seller's `Idempotency-Key` names: `blake3(user id (8 bytes, LE) ‖ key)`,
/// its first 8 bytes as a little-endian integer, reduced to `1..=2^53 - 1`.
pub fn derive_auction_id(user: UserId, key: &str) -> AuctionId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&user.0.to_le_bytes());
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    AuctionId(u64::from_le_bytes(first) % AUCTION_ID_MAX + 1)
}

/// The increment rule, as JSON: `"ebay"`, `{"fixed": 50}` or
/// `{"bands": [{"from": 0, "increment": 10}, …]}`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum IncrementJson {
    Ebay,
    Fixed(u64),
    Bands(Vec<BandJson>),
}

/// One band of a banded increment.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BandJson {
    pub from: u64,
    pub increment: u64,
}

/// Soft close: a bid within `window_secs` of the end extends it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftCloseJson {
    pub window_secs: u64,
    /// `add_to_end` (end += extension) or `reset_remaining` (end = bid time + extension).
    pub mode: SoftCloseModeJson,
    pub extension_secs: u64,
    /// Total extension cap, seconds (default 7 days).
    pub total_extension_max_secs: Option<u64>,
}

/// How soft close extends.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SoftCloseModeJson {
    AddToEnd,
    ResetRemaining,
}

/// An auction's terms, as JSON. Amounts are whole minor units (1 to 10^15); times are
/// microseconds since the Unix epoch (cluster time).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuctionInput {
    /// 1 to 200 bytes.
    pub title: String,
    /// Up to 8 KiB.
    #[serde(default)]
    pub description: String,
    /// ISO 4217, three upper-case letters.
    pub currency: String,
    pub starting_price: u64,
    pub reserve_price: Option<u64>,
    pub buy_now_price: Option<u64>,
    pub increment: IncrementJson,
    /// When bidding opens (a time in the past opens it at once). Required, not defaulted to
    /// "now": a retry must send the same terms, or the engine answers `request_id_reused`.
    pub start_us: u64,
    pub end_us: u64,
    pub soft_close: Option<SoftCloseJson>,
}

/// The engine's spec for an input; field errors are 400 with the field named.
pub fn to_spec(input: &AuctionInput) -> Result<AuctionSpec, Problem> {
    let field = |error: martelo_engine::ParseError| Problem::invalid_field(&error);
    let increment = match &input.increment {
        IncrementJson::Ebay => IncrementPolicy::Ebay,
        IncrementJson::Fixed(step) => IncrementPolicy::Fixed(check_amount("increment", *step)?),
        IncrementJson::Bands(bands) => {
            if bands.len() > martelo_engine::limits::INCREMENT_BANDS_MAX {
                return Err(Problem::invalid(format!(
                    "at most {} increment bands",
                    martelo_engine::limits::INCREMENT_BANDS_MAX
                )));
            }
            IncrementPolicy::Bands(
                bands
                    .iter()
                    .map(|band| {
                        Ok(IncrementBand {
                            from: Amount(band.from),
                            increment: check_amount("increment", band.increment)?,
                        })
                    })
                    .collect::<Result<_, Problem>>()?,
            )
        }
    };
    let soft_close = input.soft_close.map(|soft| {
        let extension = Micros::from_secs(soft.extension_secs.min(u64::MAX / 1_000_000));
        SoftClose {
            window: Micros::from_secs(soft.window_secs.min(u64::MAX / 1_000_000)),
            mode: match soft.mode {
                SoftCloseModeJson::AddToEnd => SoftCloseMode::AddToEnd(extension),
                SoftCloseModeJson::ResetRemaining => SoftCloseMode::ResetRemaining(extension),
            },
            total_extension_max: soft
                .total_extension_max_secs
                .map(|secs| Micros::from_secs(secs.min(u64::MAX / 1_000_000))),
        }
    });
    Ok(AuctionSpec {
        title: Title::try_from(input.title.as_str()).map_err(field)?,
        description: Description::try_from(input.description.as_str()).map_err(field)?,
        currency: Currency::try_from(input.currency.as_str()).map_err(field)?,
        starting_price: check_amount("starting_price", input.starting_price)?,
        reserve_price: input
            .reserve_price
            .map(|price| check_amount("reserve_price", price))
            .transpose()?,
        buy_now_price: input
            .buy_now_price
            .map(|price| check_amount("buy_now_price", price))
            .transpose()?,
        increment,
        start: Timestamp(input.start_us),
        end: Timestamp(input.end_us),
        soft_close,
    })
}

/// What a change to an auction did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuctionChanged {
    pub auction: u64,
    /// The auction's sequence number after the change.
    pub seq: u64,
    /// True when this is a retry of an applied request: the first outcome.
    pub replayed: bool,
    pub log_index: u64,
    pub timestamp_us: u64,
}

fn now_us() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    Timestamp(u64::try_from(micros).unwrap_or(u64::MAX))
}

async fn change(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    request_id: String,
    action: Action,
) -> Result<AuctionChanged, Problem> {
    let request_id = RequestId::try_from(request_id).map_err(|e| Problem::invalid_field(&e))?;
    let auction = action
        .auction_id()
        .unwrap_or_else(|| unreachable!("auction changes name their auction"));
    let request = Request {
        actor: Actor {
            user: principal.user,
            role: principal.top_role(),
        },
        request_id,
        action,
    };
    let proposed = state
        .client
        .propose_with(
            state.client.group_of(auction),
            request,
            traceparent(headers).as_ref(),
        )
        .await
        .map_err(|error| Problem::from_propose(&error))?;
    let seq = match proposed.reply {
        Reply::Accepted(
            Accepted::AuctionCreated { seq, .. }
            | Accepted::AuctionEdited { seq, .. }
            | Accepted::AuctionCancelled { seq, .. }
            | Accepted::BidVoided { seq, .. },
        ) => seq,
        Reply::Rejected(code) => return Err(Problem::rejected(code)),
        Reply::Accepted(other) => return Err(unexpected(&other)),
    };
    Ok(AuctionChanged {
        auction: auction.0,
        seq,
        replayed: proposed.replayed,
        log_index: proposed.log_index,
        timestamp_us: proposed.timestamp.0,
    })
}

fn require_seller(principal: &Principal) -> Result<(), Problem> {
    if principal.has(Role::Seller) {
        Ok(())
    } else {
        Err(Problem::forbidden("this needs the seller role"))
    }
}

/// Creates an auction (seller or admin).
#[utoipa::path(
    post,
    path = "/v1/auctions",
    tag = "auctions",
    params(("Idempotency-Key" = String, Header, description = "Names the auction: a retry gets the same id and outcome")),
    request_body = AuctionInput,
    responses(
        (status = 201, body = AuctionChanged),
        (status = 400, body = Problem, description = "invalid_argument, invalid_amount, malformed_json, idempotency_key_required"),
        (status = 403, body = Problem, description = "forbidden"),
        (status = 409, body = Problem, description = "invalid_window, invalid_prices, …"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    Json(input): Json<AuctionInput>,
) -> Result<impl IntoResponse, Problem> {
    require_seller(&principal)?;
    let key = idempotency_key(&headers)?;
    let spec = to_spec(&input)?;
    let auction_id = derive_auction_id(principal.user, &key);
    let action = Action::CreateAuction { auction_id, spec };
    let changed = change(&state, &principal, &headers, key, action).await?;
    Ok((StatusCode::CREATED, axum::Json(changed)))
}

/// Edits an auction before its first bid (its seller or an admin).
#[utoipa::path(
    put,
    path = "/v1/auctions/{id}",
    tag = "auctions",
    params(("id" = u64, Path), ("Idempotency-Key" = String, Header)),
    request_body = AuctionInput,
    responses(
        (status = 200, body = AuctionChanged),
        (status = 403, body = Problem, description = "not_seller"),
        (status = 404, body = Problem, description = "auction_not_found"),
        (status = 409, body = Problem, description = "has_bids, …"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn edit(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(auction): Path<u64>,
    headers: HeaderMap,
    Json(input): Json<AuctionInput>,
) -> Result<axum::Json<AuctionChanged>, Problem> {
    require_seller(&principal)?;
    let key = idempotency_key(&headers)?;
    let spec = to_spec(&input)?;
    let action = Action::EditAuction {
        auction_id: AuctionId(auction),
        spec,
    };
    change(&state, &principal, &headers, key, action)
        .await
        .map(axum::Json)
}

/// The body of `POST /v1/auctions/{id}/cancel`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    pub reason: Option<String>,
}

/// Cancels an auction (its seller or an admin).
#[utoipa::path(
    post,
    path = "/v1/auctions/{id}/cancel",
    tag = "auctions",
    params(("id" = u64, Path), ("Idempotency-Key" = String, Header)),
    request_body = CancelBody,
    responses(
        (status = 200, body = AuctionChanged),
        (status = 403, body = Problem, description = "not_seller"),
        (status = 404, body = Problem, description = "auction_not_found"),
        (status = 409, body = Problem, description = "has_bids, auction_closed, reason_required"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(auction): Path<u64>,
    headers: HeaderMap,
    Json(body): Json<CancelBody>,
) -> Result<axum::Json<AuctionChanged>, Problem> {
    let key = idempotency_key(&headers)?;
    let reason = body
        .reason
        .as_deref()
        .map(Reason::try_from)
        .transpose()
        .map_err(|error| Problem::invalid_field(&error))?;
    let action = Action::CancelAuction {
        auction_id: AuctionId(auction),
        reason,
    };
    change(&state, &principal, &headers, key, action)
        .await
        .map(axum::Json)
}

/// The body of `POST /v1/auctions/{id}/bids/{bid_id}/void`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidBody {
    /// Why the bid is struck (1 to 500 characters); watchers see it.
    pub reason: String,
}

/// Voids a bid (admin): the engine strikes it and recomputes the leader and the price
/// without it; watchers get `bid_voided`, then `price_changed` or `price_cleared` when the
/// price moved.
#[utoipa::path(
    post,
    path = "/v1/auctions/{id}/bids/{bid_id}/void",
    tag = "auctions",
    params(
        ("id" = u64, Path, description = "The auction id"),
        ("bid_id" = u32, Path, description = "The bid's id in the auction's history"),
        ("Idempotency-Key" = String, Header),
    ),
    request_body = VoidBody,
    responses(
        (status = 200, body = AuctionChanged, description = "Voided"),
        (status = 400, body = Problem, description = "invalid_argument (the reason), idempotency_key_required"),
        (status = 403, body = Problem, description = "forbidden: not an admin"),
        (status = 404, body = Problem, description = "auction_not_found, bid_not_found"),
        (status = 409, body = Problem, description = "bid_already_voided, auction_closed"),
        (status = 503, body = Problem, description = "outcome_unknown: retry with the same key"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn void_bid(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((auction, bid_id)): Path<(u64, u32)>,
    headers: HeaderMap,
    Json(body): Json<VoidBody>,
) -> Result<axum::Json<AuctionChanged>, Problem> {
    if !principal.has(Role::Admin) {
        return Err(Problem::forbidden("voiding a bid needs the admin role"));
    }
    let key = idempotency_key(&headers)?;
    let reason = Reason::try_from(body.reason.as_str()).map_err(|e| Problem::invalid_field(&e))?;
    let action = Action::VoidBid {
        auction_id: AuctionId(auction),
        bid_id: BidId(bid_id),
        reason,
    };
    change(&state, &principal, &headers, key, action)
        .await
        .map(axum::Json)
}

/// Removes a bidder from an auction (admin): the engine voids every standing bid of that
/// user, raises of their maximum included, and recomputes the leader and the price without
/// them (eBay removes a suspended user's bids). Watchers get one `bid_voided` per bid, then
/// `price_changed` or `price_cleared` when the price moved. Accepted only while the auction
/// is open; at its close, the bids of bidders suspended by then are removed the same way.
#[utoipa::path(
    post,
    path = "/v1/auctions/{id}/bidders/{user}/remove",
    tag = "auctions",
    params(
        ("id" = u64, Path, description = "The auction id"),
        ("user" = u64, Path, description = "The bidder's user id"),
        ("Idempotency-Key" = String, Header),
    ),
    request_body = VoidBody,
    responses(
        (status = 200, body = AuctionChanged, description = "The bidder's bids are voided"),
        (status = 400, body = Problem, description = "invalid_argument (the reason), idempotency_key_required"),
        (status = 403, body = Problem, description = "forbidden: not an admin"),
        (status = 404, body = Problem, description = "auction_not_found, bid_not_found (the user has no standing bid)"),
        (status = 409, body = Problem, description = "auction_closed, auction_not_open (its end has passed)"),
        (status = 503, body = Problem, description = "outcome_unknown: retry with the same key"),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn remove_bidder(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((auction, user)): Path<(u64, u64)>,
    headers: HeaderMap,
    Json(body): Json<VoidBody>,
) -> Result<axum::Json<AuctionChanged>, Problem> {
    if !principal.has(Role::Admin) {
        return Err(Problem::forbidden("removing a bidder needs the admin role"));
    }
    let key = idempotency_key(&headers)?;
    let reason = Reason::try_from(body.reason.as_str()).map_err(|e| Problem::invalid_field(&e))?;
    let action = Action::RemoveBidder {
        auction_id: AuctionId(auction),
        user: UserId(user),
        reason,
    };
    change(&state, &principal, &headers, key, action)
        .await
        .map(axum::Json)
}

/// An auction's public state.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuctionJson {
    pub id: u64,
    pub seller: u64,
    pub title: String,
    pub description: String,
    pub currency: String,
    pub starting_price: u64,
    pub has_reserve: bool,
    pub reserve_met: bool,
    pub buy_now_price: Option<u64>,
    /// `"ebay"`, `{"fixed": …}` or `{"bands": […]}`, as the seller gave it.
    pub increment: IncrementJson,
    pub start_us: u64,
    /// The effective end (soft close may have moved it), µs.
    pub end_us: u64,
    pub created_at_us: u64,
    /// `scheduled`, `open`, `ended` (waiting for the close) or `closed`.
    pub phase: &'static str,
    /// The visible price, or `null` before the first bid.
    pub price: Option<u64>,
    pub leading_bidder: Option<u64>,
    /// The smallest bid the engine would accept now.
    pub next_minimum_bid: u64,
    pub bid_count: usize,
    /// The last bids, newest last (at most 50).
    pub recent_bids: Vec<BidJson>,
    /// How it closed, once closed.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// The auction's sequence number: WebSocket events after it are news.
    pub seq: u64,
    /// The group (shard) that holds it.
    pub group: u64,
    /// This gateway's clock, µs: compare with `end_us` for countdowns (the cluster decides
    /// the close).
    pub server_time_us: u64,
}

/// One bid in an auction's history.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct BidJson {
    pub bidder: u64,
    pub amount: u64,
    pub at_us: u64,
    pub voided: bool,
}

const RECENT_BIDS: usize = 50;

fn increment_json(policy: &IncrementPolicy) -> IncrementJson {
    match policy {
        IncrementPolicy::Ebay => IncrementJson::Ebay,
        IncrementPolicy::Fixed(step) => IncrementJson::Fixed(step.0),
        IncrementPolicy::Bands(bands) => IncrementJson::Bands(
            bands
                .iter()
                .map(|band| BandJson {
                    from: band.from.0,
                    increment: band.increment.0,
                })
                .collect(),
        ),
    }
}

fn phase(start: Timestamp, end: Timestamp, closed: bool, now: Timestamp) -> &'static str {
    if closed {
        "closed"
    } else if now < start {
        "scheduled"
    } else if now < end {
        "open"
    } else {
        "ended"
    }
}

fn result_json(closed: &Closed) -> serde_json::Value {
    let at = closed.at.0;
    match &closed.result {
        AuctionResult::Sold { winner, price, via } => serde_json::json!({
            "outcome": "sold", "winner": winner.0, "price": price.0, "at_us": at,
            "via": match via { SaleKind::Bidding => "bidding", SaleKind::BuyNow => "buy_now" },
        }),
        AuctionResult::Unsold { reason } => serde_json::json!({
            "outcome": "unsold", "at_us": at,
            "reason": match reason {
                UnsoldReason::NoBids => "no_bids",
                UnsoldReason::ReserveNotMet => "reserve_not_met",
            },
        }),
        AuctionResult::Cancelled { by, reason } => serde_json::json!({
            "outcome": "cancelled", "by": by.0, "at_us": at,
            "reason": reason.as_ref().map(ToString::to_string),
        }),
    }
}

/// The JSON of an auction view.
pub fn auction_json(view: &AuctionView, seq: u64, group: u64, now: Timestamp) -> AuctionJson {
    let listing = &view.listing;
    let skip = view.bids.len().saturating_sub(RECENT_BIDS);
    AuctionJson {
        id: view.id.0,
        seller: view.seller.0,
        title: listing.title.to_string(),
        description: listing.description.to_string(),
        currency: listing.currency.to_string(),
        starting_price: listing.starting_price.0,
        has_reserve: listing.has_reserve,
        reserve_met: view.reserve_met,
        buy_now_price: view.buy_now_price.map(|price| price.0),
        increment: increment_json(&listing.increment),
        start_us: listing.start.0,
        end_us: view.end.0,
        created_at_us: view.created_at.0,
        phase: phase(listing.start, view.end, view.closed.is_some(), now),
        price: view.price.map(|price| price.0),
        leading_bidder: view.leading_bidder.map(|user| user.0),
        next_minimum_bid: view.minimum_bid.0,
        bid_count: view.bids.len(),
        recent_bids: view.bids[skip..]
            .iter()
            .map(|bid| BidJson {
                bidder: bid.bidder.0,
                amount: bid.amount.0,
                at_us: bid.at.0,
                voided: bid.voided,
            })
            .collect(),
        result: view.closed.as_ref().map(result_json),
        seq,
        group,
        server_time_us: now.0,
    }
}

/// Query of `GET /v1/auctions/{id}`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// `linearizable` (default), `lease` or `local` (a follower read, possibly stale).
    pub consistency: Option<String>,
}

fn consistency(text: Option<&str>) -> Result<ReadConsistency, Problem> {
    text.map_or(Ok(ReadConsistency::Linearizable), |text| {
        text.parse().map_err(Problem::invalid)
    })
}

/// One auction.
#[utoipa::path(
    get,
    path = "/v1/auctions/{id}",
    tag = "auctions",
    params(("id" = u64, Path), ReadQuery),
    responses(
        (status = 200, body = AuctionJson),
        (status = 404, body = Problem, description = "auction_not_found"),
    )
)]
pub async fn read(
    State(state): State<AppState>,
    Path(auction): Path<u64>,
    Query(query): Query<ReadQuery>,
) -> Result<axum::Json<AuctionJson>, Problem> {
    let level = consistency(query.consistency.as_deref())?;
    let read = state
        .client
        .read_auction(AuctionId(auction), level)
        .await
        .map_err(|error| Problem::from_client(&error))?;
    Ok(axum::Json(auction_json(
        &read.view,
        read.seq,
        read.group.0,
        now_us(),
    )))
}

/// Query of `GET /v1/auctions`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `open` (default), `closing_soon`, `closed` or `all`.
    pub filter: Option<String>,
    /// For `closing_soon`: within this many seconds (default 3600).
    pub within_secs: Option<u64>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<usize>,
    /// Titles containing this text, ignoring case (1 to 100 characters).
    pub q: Option<String>,
    /// Only this seller's auctions (a user id).
    pub seller: Option<u64>,
    /// `ending` (soonest effective end first) or `newest` (latest created first). Without
    /// it (and without `q` or `seller`) the cluster's order. With `q` or `seller` and no
    /// `sort`: `newest`.
    pub sort: Option<String>,
}

/// Longest `q` of `GET /v1/auctions`, characters.
pub const LIST_QUERY_CHARS_MAX: usize = 100;
/// Auctions a sorted or searched listing reads from the cluster at most, per request. The
/// cluster lists in its own order (group, then id), so sorting and searching read the
/// filtered listing and order it here; past this bound the answer says `partial: true`.
pub const LIST_SCAN_MAX: usize = 10_000;

/// The order of a sorted listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListSort {
    /// Soonest effective end first, then lowest id.
    Ending,
    /// Latest created first, then highest id.
    Newest,
}

impl ListSort {
    fn parse(name: &str) -> Result<ListSort, Problem> {
        match name {
            "ending" => Ok(ListSort::Ending),
            "newest" => Ok(ListSort::Newest),
            other => Err(Problem::invalid(format!(
                "unknown sort {other:?}: ending or newest"
            ))),
        }
    }

    /// The cursor prefix: a cursor of one sort is refused by another.
    fn letter(self) -> char {
        match self {
            ListSort::Ending => 'e',
            ListSort::Newest => 'n',
        }
    }

    /// The auction's place in this order: ascending keys come first.
    fn key(self, auction: &AuctionSummaryJson) -> (u64, u64) {
        match self {
            ListSort::Ending => (auction.end_us, auction.id),
            ListSort::Newest => (u64::MAX - auction.created_at_us, u64::MAX - auction.id),
        }
    }

    fn cursor(self, key: (u64, u64)) -> String {
        format!("{}{}.{}", self.letter(), key.0, key.1)
    }

    /// Parses a cursor this sort wrote.
    fn parse_cursor(self, text: &str) -> Result<(u64, u64), Problem> {
        let bad = || Problem::invalid(format!("the cursor {text:?} is not one of this listing"));
        let rest = text.strip_prefix(self.letter()).ok_or_else(bad)?;
        let (first, second) = rest.split_once('.').ok_or_else(bad)?;
        Ok((
            first.parse().map_err(|_| bad())?,
            second.parse().map_err(|_| bad())?,
        ))
    }
}

/// What a sorted or searched listing keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ListMatch {
    /// Lowercased.
    title: Option<String>,
    seller: Option<u64>,
}

impl ListMatch {
    fn keeps(&self, auction: &AuctionSummaryJson) -> bool {
        self.seller.is_none_or(|seller| auction.seller == seller)
            && self
                .title
                .as_ref()
                .is_none_or(|needle| auction.title.to_lowercase().contains(needle.as_str()))
    }
}

/// Parses `q`: trimmed, 1 to [`LIST_QUERY_CHARS_MAX`] characters, lowercased.
fn title_query(q: Option<&str>) -> Result<Option<String>, Problem> {
    let Some(q) = q.map(str::trim) else {
        return Ok(None);
    };
    if q.is_empty() || q.chars().count() > LIST_QUERY_CHARS_MAX {
        return Err(Problem::invalid(format!(
            "q has 1 to {LIST_QUERY_CHARS_MAX} characters"
        )));
    }
    Ok(Some(q.to_lowercase()))
}

/// Keeps the auctions `matching` keeps, orders them by `sort`, and cuts the page after
/// `after`: (page, next cursor).
fn sorted_page(
    mut auctions: Vec<AuctionSummaryJson>,
    matching: &ListMatch,
    sort: ListSort,
    after: Option<(u64, u64)>,
    limit: usize,
) -> (Vec<AuctionSummaryJson>, Option<String>) {
    auctions.retain(|auction| {
        matching.keeps(auction) && after.is_none_or(|after| sort.key(auction) > after)
    });
    auctions.sort_by_key(|auction| sort.key(auction));
    let next = (auctions.len() > limit).then(|| sort.cursor(sort.key(&auctions[limit - 1])));
    auctions.truncate(limit);
    (auctions, next)
}

/// One auction in a listing.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuctionSummaryJson {
    pub id: u64,
    pub group: u64,
    pub seller: u64,
    pub title: String,
    pub currency: String,
    pub start_us: u64,
    pub end_us: u64,
    pub phase: &'static str,
    pub price: Option<u64>,
    pub leading_bidder: Option<u64>,
    pub next_minimum_bid: u64,
    pub bid_count: u32,
    pub buy_now_price: Option<u64>,
    pub seq: u64,
    pub created_at_us: u64,
    /// Once closed, the result (as `result` in `GET /v1/auctions/{id}`): `outcome` (`sold`,
    /// `unsold`, `cancelled`), `winner` and `price` when sold; `null` while not closed.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
}

/// A page of auctions.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuctionsPage {
    pub auctions: Vec<AuctionSummaryJson>,
    /// Pass as `after` for the next page; `null` after the last.
    pub next: Option<String>,
    pub server_time_us: u64,
    /// A sorted or searched listing read its bound of auctions (`LIST_SCAN_MAX`, 10,000)
    /// before the cluster's listing ended: matches past it are missing. Narrow the filter.
    pub partial: bool,
}

fn summary_json(listed: &ListedAuction) -> AuctionSummaryJson {
    let summary = &listed.summary;
    AuctionSummaryJson {
        id: summary.id.0,
        group: listed.group.0,
        seller: summary.seller.0,
        title: summary.title.to_string(),
        currency: summary.currency.to_string(),
        start_us: summary.start.0,
        end_us: summary.end.0,
        phase: summary.phase(listed.now).as_str(),
        price: summary.price.map(|price| price.0),
        leading_bidder: summary.leading_bidder.map(|user| user.0),
        next_minimum_bid: summary.minimum_bid.0,
        bid_count: summary.bid_count,
        buy_now_price: summary.buy_now_price.map(|price| price.0),
        seq: summary.seq,
        created_at_us: summary.created_at.0,
        result: summary.closed.as_ref().map(result_json),
    }
}

/// Parses the listing filter.
pub fn list_filter(name: Option<&str>, within_secs: Option<u64>) -> Result<ListFilter, Problem> {
    match name.unwrap_or("open") {
        "open" => Ok(ListFilter::Open),
        "all" => Ok(ListFilter::All),
        "closed" => Ok(ListFilter::Closed),
        "closing_soon" => Ok(ListFilter::ClosingSoon {
            within: std::time::Duration::from_secs(within_secs.unwrap_or(3600)),
        }),
        other => Err(Problem::invalid(format!(
            "unknown filter {other:?}: open, closing_soon, closed or all"
        ))),
    }
}

/// Lists auctions, paged.
#[utoipa::path(
    get,
    path = "/v1/auctions",
    tag = "auctions",
    params(ListQuery),
    responses((status = 200, body = AuctionsPage), (status = 400, body = Problem))
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<AuctionsPage>, Problem> {
    let filter = list_filter(query.filter.as_deref(), query.within_secs)?;
    let limit = query.limit.unwrap_or(AUCTIONS_PAGE_DEFAULT);
    if !(1..=AUCTIONS_PAGE_MAX).contains(&limit) {
        return Err(Problem::invalid(format!(
            "limit is 1 to {AUCTIONS_PAGE_MAX}"
        )));
    }
    let matching = ListMatch {
        title: title_query(query.q.as_deref())?,
        seller: query.seller,
    };
    let sort = match query.sort.as_deref() {
        Some(name) => Some(ListSort::parse(name)?),
        None if matching.title.is_some() || matching.seller.is_some() => Some(ListSort::Newest),
        None => None,
    };
    if let Some(sort) = sort {
        let after = query
            .after
            .as_deref()
            .map(|text| sort.parse_cursor(text))
            .transpose()?;
        let (auctions, partial) = scan(&state, filter).await?;
        let (auctions, next) = sorted_page(auctions, &matching, sort, after, limit);
        return Ok(axum::Json(AuctionsPage {
            auctions,
            next,
            server_time_us: now_us().0,
            partial,
        }));
    }
    let from = match query.after.as_deref() {
        None => ListCursor::START,
        Some(text) => text.parse::<ListCursor>().map_err(Problem::invalid)?,
    };
    let page = state
        .client
        .list_auctions(filter, from, limit, ReadConsistency::Linearizable)
        .await
        .map_err(|error| Problem::from_client(&error))?;
    Ok(axum::Json(AuctionsPage {
        auctions: page.auctions.iter().map(summary_json).collect(),
        next: page.next.map(|cursor| cursor.to_string()),
        server_time_us: now_us().0,
        partial: false,
    }))
}

/// Reads the cluster's listing under `filter`, at most [`LIST_SCAN_MAX`] auctions:
/// (auctions, whether the bound cut it short).
async fn scan(
    state: &AppState,
    filter: ListFilter,
) -> Result<(Vec<AuctionSummaryJson>, bool), Problem> {
    let mut auctions = Vec::new();
    let mut from = ListCursor::START;
    loop {
        let room = (LIST_SCAN_MAX - auctions.len()).min(AUCTIONS_PAGE_MAX);
        let page = state
            .client
            .list_auctions(filter, from, room, ReadConsistency::Linearizable)
            .await
            .map_err(|error| Problem::from_client(&error))?;
        auctions.extend(page.auctions.iter().map(summary_json));
        match page.next {
            None => return Ok((auctions, false)),
            Some(_) if auctions.len() >= LIST_SCAN_MAX => return Ok((auctions, true)),
            Some(next) => from = next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auction_ids_are_stable_per_user_and_key_and_safe_json_numbers() {
        let a = derive_auction_id(UserId(1), "key-1");
        assert_eq!(
            a,
            derive_auction_id(UserId(1), "key-1"),
            "a retry names the same id"
        );
        assert_ne!(a, derive_auction_id(UserId(2), "key-1"), "per user");
        assert_ne!(a, derive_auction_id(UserId(1), "key-2"), "per key");
        for i in 0..1000 {
            let id = derive_auction_id(UserId(i), &format!("k{i}")).0;
            assert!((1..=AUCTION_ID_MAX).contains(&id), "{id}");
        }
    }

    fn input() -> AuctionInput {
        serde_json::from_value(serde_json::json!({
            "title": "Lamp", "currency": "EUR", "starting_price": 100,
            "increment": {"fixed": 10}, "start_us": 5, "end_us": 2_000_000_000_000_000u64,
        }))
        .expect("input")
    }

    #[test]
    fn an_input_becomes_a_spec_and_bad_fields_are_named() {
        let spec = to_spec(&input()).expect("spec");
        assert_eq!(spec.start, Timestamp(5));
        assert_eq!(spec.increment, IncrementPolicy::Fixed(Amount(10)));
        let mut bad = input();
        bad.currency = "eur".into();
        assert!(
            to_spec(&bad)
                .expect_err("currency")
                .detail
                .contains("currency")
        );
        let mut zero = input();
        zero.starting_price = 0;
        assert_eq!(to_spec(&zero).expect_err("zero").code, "invalid_amount");
        let ebay: IncrementJson = serde_json::from_str("\"ebay\"").expect("ebay");
        assert!(matches!(ebay, IncrementJson::Ebay));
    }

    #[test]
    fn filters_and_consistency_levels_parse_or_are_refused() {
        assert_eq!(list_filter(None, None).expect("default"), ListFilter::Open);
        assert!(list_filter(Some("soon"), None).is_err());
        assert_eq!(
            consistency(Some("lease")).expect("lease"),
            ReadConsistency::Lease
        );
        assert_eq!(consistency(Some("strong")).expect_err("bad").status, 400);
    }

    fn summary(
        id: u64,
        title: &str,
        seller: u64,
        end_us: u64,
        created_at_us: u64,
    ) -> AuctionSummaryJson {
        AuctionSummaryJson {
            id,
            group: 1,
            seller,
            title: title.to_owned(),
            currency: "EUR".to_owned(),
            start_us: 0,
            end_us,
            phase: "open",
            price: None,
            leading_bidder: None,
            next_minimum_bid: 100,
            bid_count: 0,
            buy_now_price: None,
            seq: 1,
            created_at_us,
            result: None,
        }
    }

    #[test]
    fn sorted_listings_page_by_keyset_and_search_titles_ignoring_case() {
        let all = vec![
            summary(1, "Brass Lamp", 7, 300, 10),
            summary(2, "Oak chair", 8, 100, 30),
            summary(3, "brass bell", 7, 200, 20),
            summary(4, "Table", 7, 100, 40),
        ];
        let every = ListMatch {
            title: None,
            seller: None,
        };
        let ids = |page: &[AuctionSummaryJson]| page.iter().map(|a| a.id).collect::<Vec<_>>();
        let (page, next) = sorted_page(all.clone(), &every, ListSort::Ending, None, 2);
        assert_eq!(ids(&page), [2, 4], "soonest end first, ties by id");
        let after = ListSort::Ending
            .parse_cursor(next.as_deref().unwrap())
            .unwrap();
        let (page, next) = sorted_page(all.clone(), &every, ListSort::Ending, Some(after), 2);
        assert_eq!((ids(&page), next), (vec![3, 1], None));
        let (page, _) = sorted_page(all.clone(), &every, ListSort::Newest, None, 10);
        assert_eq!(ids(&page), [4, 2, 3, 1]);
        let brass = ListMatch {
            title: title_query(Some(" BRASS ")).unwrap(),
            seller: Some(7),
        };
        let (page, _) = sorted_page(all, &brass, ListSort::Newest, None, 10);
        assert_eq!(ids(&page), [3, 1]);
        assert!(
            ListSort::Newest.parse_cursor("e1.2").is_err(),
            "another sort's cursor"
        );
        assert!(title_query(Some("  ")).is_err());
        assert!(title_query(Some(&"x".repeat(LIST_QUERY_CHARS_MAX + 1))).is_err());
        assert!(ListSort::parse("price").is_err());
    }
}
