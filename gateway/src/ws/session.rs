//! One WebSocket connection: [`run`] reads client messages, sends the auctions' snapshots
//! and events in seq order, places bids, and closes the socket when the user's session ends.
//!
//! Output has one order and bounded queues, and the session task writes the socket itself
//! (no second task per connection: one wake-up per batch of events, not two). The hub
//! pushes events into the connection's [`Outbox`](crate::fanout::outbox::Outbox)
//! (conflating past `limits.ws_send_queue`); the session takes up to [`FRAMES_PER_TURN`]
//! frames from it into its *turn* only once the previous turn is handed to the socket and
//! flushed, and the socket takes frames only while its write buffer
//! ([`super::WRITE_BUFFER_BYTES`]) is not blocked on the kernel. So a client that does not
//! read makes its outbox conflate instead of growing anything, and never holds back the
//! hub or other connections. Frames the session makes itself (snapshots, bid results,
//! pongs, time) wait in `pending`, which is bounded too: past it the client is closed as too
//! slow (4008). A close for a suspension or sign-out jumps ahead of the frames not yet
//! handed to the socket; a socket that does not drain gets [`CLOSE_GRACE`] to take the
//! close frame, then is dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, SplitSink, SplitStream};
use futures::{FutureExt, Sink, SinkExt, StreamExt};
use martelo_engine::{AuctionEventKind, AuctionId, AuctionResult, Listing};
use martelo_proto::{ErrorCode, Traceparent};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::sync::{broadcast, watch};

use super::protocol::{self, ClientMessage, SnapshotReason, close};
use super::sequence::{Step, Tracker};
use crate::auth::Principal;
use crate::error::{Problem, codes};
use crate::fanout::outbox::{OutItem, ResetReason};
use crate::fanout::snapshots::SnapshotResult;
use crate::fanout::{Connection, Delivered};
use crate::follow::{EndReason, SessionEnd};
use crate::http::bids::{BidInput, place_bid};
use crate::state::AppState;
use crate::telemetry;

/// How long a closing connection's socket may take to send the close frame.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Bids of one connection waiting for their outcome at once.
pub const BIDS_IN_FLIGHT_MAX: usize = 32;
/// How often a connection's clock is checked for a `time` frame.
pub const TIME_TICK: Duration = Duration::from_secs(1);
/// A `time` frame goes out when the connection has written nothing for about a tick (so a
/// quiet connection hears from the server every second, and a client calls 5 s of silence
/// a dead link), and at least this often while other frames flow: a busy connection does
/// not pay one more write a second for a clock that its events already show alive.
pub const TIME_EVERY_BUSY: Duration = Duration::from_secs(5);
/// Snapshot reads tried before a subscription is given up (with an `error`).
const SNAPSHOT_ATTEMPTS: u32 = 5;
const SNAPSHOT_RETRY: Duration = Duration::from_millis(400);

/// Error codes of the WebSocket protocol (besides the HTTP API's).
pub mod ws_codes {
    /// The connection watches `ws_subscriptions_max` auctions already.
    pub const SUBSCRIPTION_LIMIT: &str = "subscription_limit";
    /// `subscribe` for an auction the connection already watches.
    pub const ALREADY_SUBSCRIBED: &str = "already_subscribed";
    /// `unsubscribe` for an auction the connection does not watch.
    pub const NOT_SUBSCRIBED: &str = "not_subscribed";
    /// The auction's state could not be read; the subscription ended (subscribe again).
    pub const SUBSCRIPTION_FAILED: &str = "subscription_failed";
}

/// Why a connection ended (the `reason` label of `WS_CLOSED_TOTAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    ClientClosed,
    Suspended,
    SignedOut,
    TokenExpired,
    TooSlow,
    TooBig,
    Error,
}

impl Ended {
    fn label(self) -> &'static str {
        match self {
            Ended::ClientClosed => "client_closed",
            Ended::Suspended => "suspended",
            Ended::SignedOut => "signed_out",
            Ended::TokenExpired => "token_expired",
            Ended::TooSlow => "too_slow",
            Ended::TooBig => "message_too_big",
            Ended::Error => "error",
        }
    }

    /// The close frame the server sends, if any.
    fn close_frame(self, message_max: usize) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Ended::ClientClosed | Ended::Error => return None,
            Ended::Suspended => (close::SUSPENDED, "account suspended".to_owned()),
            Ended::SignedOut => (close::SIGNED_OUT, "signed out".to_owned()),
            Ended::TokenExpired => (close::TOKEN_EXPIRED, "access token expired".to_owned()),
            Ended::TooSlow => (close::TOO_SLOW, "client too slow".to_owned()),
            Ended::TooBig => (
                close::TOO_BIG,
                format!("message larger than {message_max} bytes"),
            ),
        };
        Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        })
    }
}

struct Sub {
    tracker: Tracker,
    ready: watch::Receiver<bool>,
    /// The fetch whose answer is awaited (older answers are ignored).
    fetch: Option<u64>,
    /// The signed-in user bid on this auction (for `lost` notices).
    bid_in: bool,
    /// The auction's listing as of the last snapshot or edit, for the `minimum_bid` of
    /// price events (`None` after a resume without a snapshot: those frames go without it).
    listing: Option<Arc<Listing>>,
}

type Fetched = (AuctionId, u64, SnapshotResult);

struct Session {
    state: AppState,
    principal: Option<Principal>,
    connection: Connection,
    subs: HashMap<AuctionId, Sub>,
    fetches: FuturesUnordered<BoxFuture<'static, Fetched>>,
    next_fetch: u64,
    bids: FuturesUnordered<BoxFuture<'static, Utf8Bytes>>,
    /// Frames made by the session, sent before the outbox's items: (kind, frame).
    pending: VecDeque<(&'static str, Utf8Bytes)>,
    pending_max: usize,
    /// `martelo_gateway_ws_messages_sent_total{kind="event"}`, looked up once and counted
    /// once per turn: the fan-out's hot path sends one per event and watcher.
    events_sent: metrics::Counter,
    /// `martelo_gateway_fanout_lag_seconds`, looked up once (recorded per event sent).
    fanout_lag: metrics::Histogram,
}

type Sender = SplitSink<WebSocket, Message>;

/// Frames taken for the socket per turn, at most: they are written into the socket's
/// buffer and flushed once, so a burst of events (one entry's 2-3, or a backlog) costs one
/// `write` and one wake-up. It also bounds what a connection holds outside its outbox.
pub const FRAMES_PER_TURN: usize = 64;

/// Serves one upgraded connection until it ends, subscribed first to `subscribe` (the
/// upgrade's `?subscribe=`), if any. `admission` holds its place in the connection limit.
pub async fn run<A: Send + 'static>(
    socket: WebSocket,
    state: AppState,
    principal: Option<Principal>,
    subscribe: Option<AuctionId>,
    admission: A,
) {
    let (mut sink, stream) = socket.split();
    let limits = &state.config.limits;
    let mut session = Session {
        connection: state.hub.connect(),
        pending_max: 2 * limits.ws_send_queue + limits.ws_subscriptions_max + 64,
        principal,
        subs: HashMap::new(),
        fetches: FuturesUnordered::new(),
        next_fetch: 1,
        bids: FuturesUnordered::new(),
        pending: VecDeque::new(),
        events_sent: metrics::counter!(telemetry::WS_MESSAGES_SENT_TOTAL, "kind" => "event"),
        fanout_lag: metrics::histogram!(telemetry::FANOUT_LAG_SECONDS),
        state: state.clone(),
    };
    if let Some(auction) = subscribe {
        session.subscribe(auction, None);
    }
    let ended = session.serve(stream, &mut sink).await;
    metrics::counter!(telemetry::WS_CLOSED_TOTAL, "reason" => ended.label()).increment(1);
    session.unwatch_all();
    drop(session);
    // Frames of the turn not yet in the socket are dropped (the close jumps ahead of them);
    // what the socket's buffer holds goes out first. Without a frame of ours (the client
    // closed, or an error) this finishes the closing handshake. A socket that does not
    // drain is dropped after the grace.
    let close_frame = ended.close_frame(state.config.limits.ws_message_bytes_max);
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if let Some(frame) = close_frame {
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    })
    .await;
    drop(admission);
}

/// Hands the turn's frames to the socket, in order, while it takes them, then flushes:
/// `Ready(Ok)` once all are written out, `Pending` while the socket's buffer waits on the
/// kernel (the frames left stay in `turn`, so dropping this between polls loses nothing).
fn poll_write(
    sink: &mut Sender,
    turn: &mut VecDeque<Utf8Bytes>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), axum::Error>> {
    while !turn.is_empty() {
        ready!(Pin::new(&mut *sink).poll_ready(cx))?;
        let Some(frame) = turn.pop_front() else {
            break;
        };
        Pin::new(&mut *sink).start_send(Message::Text(frame))?;
    }
    Pin::new(&mut *sink).poll_flush(cx)
}

fn seconds_until(unix_secs: u64) -> Duration {
    let now = crate::auth::tokens::unix_now();
    Duration::from_secs(unix_secs.saturating_sub(now))
}

impl Session {
    /// Takes the next frames (at most [`FRAMES_PER_TURN`]) into `turn` and counts them, the
    /// events with one increment.
    fn fill_turn(&mut self, turn: &mut VecDeque<Utf8Bytes>) {
        let mut events = 0;
        while turn.len() < FRAMES_PER_TURN {
            let Some((kind, frame)) = self.next_frame() else {
                break;
            };
            if kind == "event" {
                events += 1;
            } else {
                metrics::counter!(telemetry::WS_MESSAGES_SENT_TOTAL, "kind" => kind).increment(1);
            }
            turn.push_back(frame);
        }
        if events > 0 {
            self.events_sent.increment(events);
        }
    }

    fn me(&self) -> Option<martelo_engine::UserId> {
        self.principal.as_ref().map(|principal| principal.user)
    }

    async fn serve(&mut self, mut stream: SplitStream<WebSocket>, sink: &mut Sender) -> Ended {
        let mut ends: Option<broadcast::Receiver<SessionEnd>> = self
            .principal
            .as_ref()
            .map(|_| self.state.meta.session_ends());
        let expiry = tokio::time::sleep(match &self.principal {
            Some(principal) => seconds_until(principal.expires_at),
            None => Duration::from_secs(u64::from(u32::MAX)),
        });
        tokio::pin!(expiry);
        let mut ticker = tokio::time::interval(TIME_TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut clock = TimeFrames::new(tokio::time::Instant::now());
        let outbox = self.connection.outbox.clone();
        // Frames taken for the socket and not yet written out, and whether the socket has
        // frames to flush (the turn is refilled only once it is written and flushed).
        let mut turn: VecDeque<Utf8Bytes> = VecDeque::with_capacity(FRAMES_PER_TURN);
        let mut unflushed = false;
        loop {
            if self.pending.len() > self.pending_max {
                return Ended::TooSlow;
            }
            if !unflushed {
                self.fill_turn(&mut turn);
                unflushed = !turn.is_empty();
            }
            tokio::select! {
                biased;
                end = recv_end(&mut ends) => {
                    if matches!(end, Err(broadcast::error::RecvError::Closed)) {
                        ends = None;
                    }
                    if let Some(ended) = self.on_session_end(end) {
                        return ended;
                    }
                }
                _ = &mut expiry => return Ended::TokenExpired,
                // Before reading: a client that floods messages still gets its output.
                written = std::future::poll_fn(|cx| poll_write(sink, &mut turn, cx)), if unflushed => {
                    if written.is_err() {
                        return Ended::Error;
                    }
                    unflushed = false;
                    clock.written(tokio::time::Instant::now());
                }
                incoming = stream.next() => match incoming {
                    None | Some(Ok(Message::Close(_))) => return Ended::ClientClosed,
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
                    Some(Ok(Message::Binary(_))) => self.push(
                        "error",
                        protocol::error(
                            codes::MALFORMED_JSON,
                            "binary frames are not accepted: send JSON text",
                            None,
                            None,
                        ),
                    ),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Err(error)) => {
                        let text = error.to_string();
                        if text.contains("limit exceeded") || text.contains("too long") {
                            return Ended::TooBig;
                        }
                        tracing::debug!(%error, "WebSocket read failed");
                        return Ended::Error;
                    }
                },
                // Nothing to write: wait for the hub (a push since the last `pop` is not lost:
                // the wake-up is stored).
                _ = outbox.wait(), if !unflushed => {}
                Some((auction, id, result)) = self.fetches.next(), if !self.fetches.is_empty() => {
                    self.on_fetched(auction, id, result);
                }
                Some(frame) = self.bids.next(), if !self.bids.is_empty() => {
                    self.push("bid_result", frame);
                }
                now = ticker.tick() => {
                    if self.pending.len() < self.pending_max / 2 && clock.due(now) {
                        self.push("time", protocol::time());
                    }
                }
            }
        }
    }

    fn push(&mut self, kind: &'static str, frame: Utf8Bytes) {
        self.pending.push_back((kind, frame));
    }

    fn on_session_end(
        &mut self,
        end: Result<SessionEnd, broadcast::error::RecvError>,
    ) -> Option<Ended> {
        let me = self.me()?;
        match end {
            Ok(end) if end.user == me => match end.reason {
                EndReason::Suspended => Some(Ended::Suspended),
                EndReason::AllSessionsRevoked => Some(Ended::SignedOut),
                // One session (refresh-token family) ended: close this connection if its
                // access token was issued in that session (the token's `sid`).
                EndReason::SignedOut => {
                    let mine = self.principal.as_ref().and_then(|p| p.session);
                    (end.family.is_some() && end.family == mine).then_some(Ended::SignedOut)
                }
            },
            Ok(_) => None,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "missed session-end notices: checking the block list"
                );
                self.state.meta.is_blocked(me).then_some(Ended::Suspended)
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    fn on_text(&mut self, text: &str) {
        let message = match ClientMessage::parse(text) {
            Ok(message) => message,
            Err(detail) => {
                self.push(
                    "error",
                    protocol::error(codes::MALFORMED_JSON, &detail, None, None),
                );
                return;
            }
        };
        match message {
            ClientMessage::Subscribe { auction, after_seq } => {
                self.subscribe(AuctionId(auction), after_seq);
            }
            ClientMessage::Unsubscribe { auction } => {
                if self.subs.remove(&AuctionId(auction)).is_some() {
                    self.state.hub.unwatch(&self.connection, AuctionId(auction));
                    metrics::gauge!(telemetry::WS_SUBSCRIPTIONS).decrement(1.0);
                    self.push("unsubscribed", protocol::unsubscribed(auction));
                } else {
                    self.push(
                        "error",
                        protocol::error(
                            ws_codes::NOT_SUBSCRIBED,
                            "this connection does not watch that auction",
                            None,
                            Some(auction),
                        ),
                    );
                }
            }
            ClientMessage::Bid {
                auction,
                request_id,
                amount,
                max,
                traceparent,
            } => self.bid(
                BidInput {
                    auction: AuctionId(auction),
                    request_id,
                    amount: Some(amount),
                    max,
                },
                traceparent,
            ),
            ClientMessage::Buy {
                auction,
                request_id,
                traceparent,
            } => self.bid(
                BidInput {
                    auction: AuctionId(auction),
                    request_id,
                    amount: None,
                    max: None,
                },
                traceparent,
            ),
            ClientMessage::Ping { nonce } => self.push("pong", protocol::pong(nonce.as_deref())),
        }
    }

    fn subscribe(&mut self, auction: AuctionId, after_seq: Option<u64>) {
        let refuse =
            |code: &str, detail: &str| protocol::error(code, detail, None, Some(auction.0));
        if auction.0 == 0 {
            let frame = refuse(codes::INVALID_ARGUMENT, "auction ids start at 1");
            return self.push("error", frame);
        }
        if self.subs.contains_key(&auction) {
            let frame = refuse(
                ws_codes::ALREADY_SUBSCRIBED,
                "this connection already watches that auction",
            );
            return self.push("error", frame);
        }
        let limit = self.state.config.limits.ws_subscriptions_max;
        if self.subs.len() >= limit {
            let frame = refuse(
                ws_codes::SUBSCRIPTION_LIMIT,
                &format!("a connection watches at most {limit} auctions"),
            );
            return self.push("error", frame);
        }
        let watch = self.state.hub.watch(&self.connection, auction, after_seq);
        metrics::gauge!(telemetry::WS_SUBSCRIPTIONS).increment(1.0);
        let buffer_max = self.state.config.limits.ws_send_queue;
        let (tracker, replay) = match (after_seq, watch.replay) {
            (Some(after), Some(events)) => (Tracker::live(after, buffer_max), Some(events)),
            (Some(_), None) => {
                metrics::counter!(telemetry::FANOUT_CONFLATED_TOTAL, "reason" => "replay_gone")
                    .increment(1);
                (Tracker::fetching(SnapshotReason::Gap, buffer_max), None)
            }
            (None, _) => (Tracker::fetching(SnapshotReason::New, buffer_max), None),
        };
        self.subs.insert(
            auction,
            Sub {
                tracker,
                ready: watch.ready,
                fetch: None,
                bid_in: false,
                listing: None,
            },
        );
        match (after_seq, replay) {
            (Some(after), Some(events)) => {
                self.push("resumed", protocol::resumed(auction.0, after, events.len()));
                for delivered in events {
                    self.on_delivered(delivered);
                }
            }
            _ => self.start_fetch(auction),
        }
    }

    fn bid(&mut self, input: BidInput, traceparent: Option<String>) {
        let traceparent = traceparent.and_then(|text| Traceparent::try_from(text.as_str()).ok());
        let request_id = input.request_id.clone();
        let refuse = |problem: Problem| protocol::bid_result(&request_id, Err(&problem));
        let Some(principal) = self.principal.clone() else {
            let frame = refuse(Problem::unauthorized(
                "sign in to bid: connect with an access token",
            ));
            return self.push("bid_result", frame);
        };
        if self.state.meta.is_blocked(principal.user) {
            let frame = refuse(Problem::new(
                axum::http::StatusCode::FORBIDDEN,
                codes::ACCOUNT_SUSPENDED,
                "the account is suspended",
            ));
            return self.push("bid_result", frame);
        }
        if self.bids.len() >= BIDS_IN_FLIGHT_MAX {
            let frame = refuse(
                Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    codes::BUSY,
                    format!("at most {BIDS_IN_FLIGHT_MAX} bids per connection wait at once"),
                )
                .retry_after(1),
            );
            return self.push("bid_result", frame);
        }
        let state = self.state.clone();
        let span = tracing::info_span!(
            "ws.bid",
            auction = input.auction.0,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        martelo_trace::adopt(&span, traceparent.as_ref().map(Traceparent::as_str));
        self.bids.push(
            async move {
                match place_bid(&state, &principal, input, traceparent.as_ref()).await {
                    Ok(accepted) => match serde_json::to_value(&accepted) {
                        Ok(value) => protocol::bid_result(&request_id, Ok(value)),
                        Err(_) => protocol::bid_result(&request_id, Err(&Problem::internal())),
                    },
                    Err(problem) => protocol::bid_result(&request_id, Err(&problem)),
                }
            }
            .instrument(span)
            .boxed(),
        );
    }

    fn start_fetch(&mut self, auction: AuctionId) {
        let Some(sub) = self.subs.get_mut(&auction) else {
            return;
        };
        let id = self.next_fetch;
        self.next_fetch += 1;
        sub.fetch = Some(id);
        let ready = sub.ready.clone();
        let state = self.state.clone();
        self.fetches.push(
            async move {
                let mut attempt = 1;
                loop {
                    let result = state.hub.snapshot(auction, ready.clone()).await;
                    let retry = match &result {
                        Ok(_) => false,
                        Err(error) => {
                            error.server_code() != ErrorCode::AuctionNotFound
                                && attempt < SNAPSHOT_ATTEMPTS
                        }
                    };
                    if !retry {
                        return (auction, id, result);
                    }
                    attempt += 1;
                    tokio::time::sleep(SNAPSHOT_RETRY).await;
                }
            }
            .boxed(),
        );
    }

    fn on_fetched(&mut self, auction: AuctionId, id: u64, result: SnapshotResult) {
        let me = self.me();
        let Some(sub) = self.subs.get_mut(&auction) else {
            return;
        };
        if sub.fetch != Some(id) {
            return;
        }
        sub.fetch = None;
        let read = match result {
            Ok(read) => read,
            Err(error) => {
                let problem = Problem::from_client(&error);
                let code = if error.server_code() == ErrorCode::AuctionNotFound {
                    problem.code.to_string()
                } else {
                    ws_codes::SUBSCRIPTION_FAILED.to_owned()
                };
                self.subs.remove(&auction);
                self.state.hub.unwatch(&self.connection, auction);
                metrics::gauge!(telemetry::WS_SUBSCRIPTIONS).decrement(1.0);
                let detail = format!("the subscription ended: {}", problem.detail);
                self.push(
                    "error",
                    protocol::error(&code, &detail, None, Some(auction.0)),
                );
                return;
            }
        };
        match sub.tracker.on_snapshot(read.seq) {
            Err(_) => self.start_fetch(auction),
            Ok((reason, steps)) => {
                if let Some(me) = me {
                    sub.bid_in = read.view.bids.iter().any(|bid| bid.bidder == me);
                }
                sub.listing = Some(Arc::new(read.view.listing.clone()));
                let people = std::iter::once(read.view.seller)
                    .chain(read.view.bids.iter().map(|bid| bid.bidder))
                    .collect::<std::collections::BTreeSet<_>>();
                let names = self.state.meta.display_names(people);
                self.push("snapshot", protocol::snapshot(&read, reason, &names));
                self.apply_steps(auction, steps);
            }
        }
    }

    fn apply_steps(&mut self, auction: AuctionId, steps: Vec<Step>) {
        for step in steps {
            self.apply_step(auction, step);
        }
    }

    fn apply_step(&mut self, auction: AuctionId, step: Step) {
        match step {
            Step::Send(delivered) => self.send_event(delivered),
            Step::Fetch(_) => self.start_fetch(auction),
        }
    }

    /// An event for this connection, from the outbox or a replay.
    fn on_delivered(&mut self, delivered: Arc<Delivered>) {
        let auction = delivered.auction;
        let Some(sub) = self.subs.get_mut(&auction) else {
            return;
        };
        if let Some(step) = sub.tracker.on_event(delivered) {
            self.apply_step(auction, step);
        }
    }

    /// Queues an event's frame and the notices it means for the signed-in user.
    fn send_event(&mut self, delivered: Arc<Delivered>) {
        let lag_us = protocol::server_time_us().saturating_sub(delivered.timestamp.0);
        self.fanout_lag.record(lag_us as f64 / 1e6);
        let frame = self.frame_of(&delivered);
        self.push("event", frame);
        let (Some(me), Some(sub)) = (self.me(), self.subs.get_mut(&delivered.auction)) else {
            return;
        };
        let notice = match &delivered.event.kind {
            AuctionEventKind::BidAccepted { bidder, .. } if *bidder == me => {
                sub.bid_in = true;
                None
            }
            AuctionEventKind::Outbid { bidder, .. } if *bidder == me => Some("outbid"),
            AuctionEventKind::Closed { result } => match result {
                AuctionResult::Sold { winner, .. } if *winner == me => Some("won"),
                AuctionResult::Sold { .. } | AuctionResult::Unsold { .. } if sub.bid_in => {
                    Some("lost")
                }
                AuctionResult::Cancelled { .. } if sub.bid_in => Some("cancelled"),
                _ => None,
            },
            _ => None,
        };
        if let Some(kind) = notice {
            let frame = protocol::notice(kind, delivered.auction.0, delivered.seq);
            self.push("notice", frame);
        }
    }

    /// The frame of an event for this connection: the hub's shared frame, except that price
    /// events carry the next minimum bid from the listing this subscription knows. The
    /// priced frame is built once per event, by the first watcher that needs it
    /// ([`Delivered::priced_frame`]), and shared by the others.
    fn frame_of(&mut self, delivered: &Delivered) -> Utf8Bytes {
        let Some(sub) = self.subs.get_mut(&delivered.auction) else {
            return delivered.frame.clone();
        };
        let price = match &delivered.event.kind {
            AuctionEventKind::Created { listing, .. } | AuctionEventKind::Edited { listing } => {
                sub.listing = Some(Arc::new(Listing::clone(listing)));
                return delivered.frame.clone();
            }
            AuctionEventKind::PriceChanged { price, .. } => Some(*price),
            AuctionEventKind::PriceCleared => None,
            _ => return delivered.frame.clone(),
        };
        match &sub.listing {
            Some(listing) => delivered
                .priced_frame
                .get_or_init(|| {
                    Utf8Bytes::from(super::json::event_frame_with_minimum(
                        &delivered.event,
                        delivered.timestamp,
                        super::json::minimum_bid(listing, price),
                    ))
                })
                .clone(),
            None => delivered.frame.clone(),
        }
    }

    /// The next frame to write: the session's own first, then the outbox's.
    fn next_frame(&mut self) -> Option<(&'static str, Utf8Bytes)> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            let item = self.connection.outbox.pop()?;
            match item {
                OutItem::Event(delivered) => self.on_delivered(delivered),
                OutItem::Conflated(auction) => self.reset(auction, SnapshotReason::Conflated),
                OutItem::Reset(auction, ResetReason::Resync) => {
                    self.reset(auction, SnapshotReason::Resync);
                }
            }
        }
    }

    fn reset(&mut self, auction: AuctionId, reason: SnapshotReason) {
        let Some(sub) = self.subs.get_mut(&auction) else {
            return;
        };
        if let Some(step) = sub.tracker.on_reset(reason) {
            self.apply_step(auction, step);
        }
    }

    fn unwatch_all(&mut self) {
        let auctions: Vec<AuctionId> = self.subs.keys().copied().collect();
        for auction in auctions {
            self.state.hub.unwatch(&self.connection, auction);
            metrics::gauge!(telemetry::WS_SUBSCRIPTIONS).decrement(1.0);
        }
        self.subs.clear();
    }
}

/// When a connection sends its `time` frame: see [`TIME_EVERY_BUSY`].
#[derive(Clone, Copy, Debug)]
struct TimeFrames {
    last_write: tokio::time::Instant,
    last_time: tokio::time::Instant,
}

impl TimeFrames {
    fn new(now: tokio::time::Instant) -> TimeFrames {
        TimeFrames {
            last_write: now,
            last_time: now,
        }
    }

    fn written(&mut self, now: tokio::time::Instant) {
        self.last_write = now;
    }

    /// Whether a tick at `now` sends a `time` frame (and if so, counts it as sent). A tick
    /// fires a little late, never early, so "quiet for a tick" allows a tenth of one.
    fn due(&mut self, now: tokio::time::Instant) -> bool {
        let quiet = now.saturating_duration_since(self.last_write) >= TIME_TICK * 9 / 10;
        let stale = now.saturating_duration_since(self.last_time) >= TIME_EVERY_BUSY;
        if quiet || stale {
            self.last_time = now;
        }
        quiet || stale
    }
}

/// The next session-end notice, or never (anonymous connections).
async fn recv_end(
    ends: &mut Option<broadcast::Receiver<SessionEnd>>,
) -> Result<SessionEnd, broadcast::error::RecvError> {
    match ends {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_connection_gets_time_every_tick_and_a_busy_one_every_five_seconds() {
        let start = tokio::time::Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut quiet = TimeFrames::new(start);
        // Nothing written: every tick (even one 1 ms late or 100 ms early-ish) sends.
        assert!(quiet.due(at(1_000)));
        assert!(quiet.due(at(2_001)));
        assert!(quiet.due(at(2_901)));

        let mut busy = TimeFrames::new(start);
        let mut sent = Vec::new();
        // Frames written every 200 ms for 12 s, a tick every second.
        for ms in (200..=12_000).step_by(200) {
            busy.written(at(ms));
            if ms % 1_000 == 0 && busy.due(at(ms + 1)) {
                sent.push(ms);
            }
        }
        assert_eq!(sent, vec![5_000, 10_000], "busy: at most every 5 s");
        // The flow stops at 12 s: the next tick a second later sends again.
        assert!(!busy.due(at(12_500)));
        assert!(busy.due(at(13_000)));
    }
}
