//! Bids through a gateway: [`HttpTarget`] (`POST /v1/auctions/{id}/bids` on pooled
//! keep-alive connections) and [`WsTarget`] (`bid` messages on one WebSocket per bidder,
//! answers matched to requests by `request_id`). Both create auctions over HTTP as the
//! bench's seller ([`GatewaySession::create`]).
//!
//! Neither retries: the gateway retries with the same request id inside its own deadline
//! and answers `outcome_unknown` when the outcome stayed open, which the report counts as
//! unknown, as it does the gRPC client's. [`AnyTarget`] is whichever target `--target`
//! names, built by [`connect_target`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use martelo_engine::{Action, AuctionId, Request, UserId};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::Message;

use crate::args::{LoadMode, Plan, TargetKind};
use crate::cluster::ClusterTarget;
use crate::gateway::{self, GatewaySession, raise_open_files_limit, transport_code};
use crate::target::{Decision, Target};
use crate::wire;
use crate::workload::BENCH_USER_BASE;

/// Messages queued for one bidder's socket before `propose` waits.
const WS_SEND_QUEUE: usize = 1_024;
/// Bidder sockets opened at once during setup.
const WS_CONNECT_CONCURRENCY: usize = 32;
/// Bids one socket has waiting at once: the gateway answers `busy` to more
/// (`BIDS_IN_FLIGHT_MAX` in gateway/src/ws/session.rs), so a bid beyond it waits here for a
/// slot, inside its deadline, and the wait counts in its latency.
pub const WS_BIDS_IN_FLIGHT_MAX: usize = 32;

/// The index of a bench bidder (`Workload::bidder(index)`), or `None` for another user.
fn bidder_index(user: UserId, bidders: usize) -> Option<usize> {
    let index = user.0.checked_sub(BENCH_USER_BASE + 1)?;
    let index = usize::try_from(index).ok()?;
    (index < bidders).then_some(index)
}

fn unsupported() -> Decision {
    Decision::Failed {
        code: "unsupported_action".to_owned(),
    }
}

fn unknown_auction() -> Decision {
    Decision::Failed {
        code: "auction_not_created".to_owned(),
    }
}

/// A bench bid on its way to the gateway: the auction (the bench's id and its id at the
/// gateway), the bench bidder who sends it, the amount and the optional proxy maximum (minor units).
#[derive(Debug)]
struct RoutedBid {
    auction_id: AuctionId,
    bidder: usize,
    gateway_id: u64,
    amount: u64,
    max: Option<u64>,
}

/// Routes `request` for either target: a bid by one of the `bidders` bench bidders on an
/// auction that `session` created, or else the decision itself (auctions are created over
/// HTTP as the bench's seller; any other action, or a bid by another user, is unsupported).
async fn route_bid(
    session: &GatewaySession,
    bidders: usize,
    request: &Request,
) -> Result<RoutedBid, Decision> {
    let Action::PlaceBid {
        auction_id,
        amount,
        max,
    } = &request.action
    else {
        return Err(match request.action {
            Action::CreateAuction { .. } => session.create(request).await,
            _ => unsupported(),
        });
    };
    let bidder = bidder_index(request.actor.user, bidders).ok_or_else(unsupported)?;
    let gateway_id = session
        .gateway_id(*auction_id)
        .ok_or_else(unknown_auction)?;
    Ok(RoutedBid {
        auction_id: *auction_id,
        bidder,
        gateway_id,
        amount: amount.0,
        max: max.map(|max| max.0),
    })
}

/// Bids over HTTP/1.1 with keep-alive; reqwest pools the connections (one per bid in
/// flight at most).
#[derive(Debug)]
pub struct HttpTarget {
    pub session: Arc<GatewaySession>,
}

impl Target for HttpTarget {
    async fn propose(&self, request: Request) -> Decision {
        let session = &self.session;
        let bid = match route_bid(session, session.bidder_tokens.len(), &request).await {
            Ok(bid) => bid,
            Err(decision) => return decision,
        };
        let body = match bid.max {
            Some(max) => json!({"amount": bid.amount, "max": max}),
            None => json!({"amount": bid.amount}),
        };
        let sent = session
            .http
            .post(format!(
                "{}/v1/auctions/{}/bids",
                session.base, bid.gateway_id
            ))
            .bearer_auth(&session.bidder_tokens[bid.bidder])
            .header("idempotency-key", request.request_id.as_str())
            .json(&body)
            .send()
            .await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(error) => {
                return Decision::Unknown {
                    code: transport_code(&error),
                };
            }
        };
        let status = answer.status().as_u16();
        match answer.bytes().await {
            Ok(bytes) => wire::http_decision(bid.auction_id, status, &bytes),
            Err(error) => Decision::Unknown {
                code: transport_code(&error),
            },
        }
    }
}

/// Requests sent on one socket and not yet answered: request id to (the workload's auction
/// id, where the decision goes).
type Pending = Arc<Mutex<HashMap<String, (AuctionId, oneshot::Sender<Decision>)>>>;

/// One bidder's socket: a writer task fed by `outgoing`, a reader task that answers
/// `pending`, and at most [`WS_BIDS_IN_FLIGHT_MAX`] bids waiting (`slots`).
#[derive(Debug)]
struct WsBidder {
    outgoing: mpsc::Sender<Message>,
    pending: Pending,
    slots: Semaphore,
}

/// Bids as WebSocket `bid` messages, one socket per bidder.
#[derive(Debug)]
pub struct WsTarget {
    session: Arc<GatewaySession>,
    bidders: Vec<WsBidder>,
    request_timeout: Duration,
    tasks: Mutex<JoinSet<()>>,
}

impl WsTarget {
    /// Opens one socket per bidder of `session`, signed in with its token.
    pub async fn connect(
        session: Arc<GatewaySession>,
        ws_url: &str,
        request_timeout: Duration,
    ) -> anyhow::Result<WsTarget> {
        let count = session.bidder_tokens.len();
        let mut opened: Vec<Option<WsBidder>> = (0..count).map(|_| None).collect();
        let mut tasks = JoinSet::new();
        let mut connecting = JoinSet::new();
        let mut next = 0;
        loop {
            while connecting.len() < WS_CONNECT_CONCURRENCY && next < count {
                let token = session.bidder_tokens[next].clone();
                let url = ws_url.to_owned();
                let index = next;
                connecting.spawn(async move { (index, open_socket(&url, &token).await) });
                next += 1;
            }
            let Some(joined) = connecting.join_next().await else {
                break;
            };
            let (index, socket) = joined.context("a socket task failed")?;
            let socket = socket.with_context(|| format!("opening bidder {index}'s WebSocket"))?;
            opened[index] = Some(spawn_bidder(socket, &mut tasks));
        }
        let bidders = opened
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow!("a bidder socket was not opened"))?;
        Ok(WsTarget {
            session,
            bidders,
            request_timeout,
            tasks: Mutex::new(tasks),
        })
    }
}

impl Drop for WsTarget {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.abort_all();
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(url: &str, token: &str) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))?;
    request.headers_mut().insert("authorization", bearer);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(
        request,
        Some(crate::watchers::client_config()),
        true,
    )
    .await?;
    Ok(socket)
}

/// What the reader needs of a server message.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    request_id: Option<std::borrow::Cow<'a, str>>,
    ok: Option<wire::BidAccepted>,
    error: Option<wire::Problem>,
    #[serde(borrow)]
    code: Option<std::borrow::Cow<'a, str>>,
}

fn spawn_bidder(socket: Socket, tasks: &mut JoinSet<()>) -> WsBidder {
    let (mut sink, mut stream) = socket.split();
    let (outgoing, mut queue) = mpsc::channel::<Message>(WS_SEND_QUEUE);
    let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
    tasks.spawn(async move {
        while let Some(message) = queue.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    let answers = Arc::clone(&pending);
    tasks.spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(incoming) = serde_json::from_str::<Incoming>(text.as_str()) else {
                continue;
            };
            let decision = match (incoming.kind, &incoming.ok, &incoming.error) {
                ("bid_result", Some(ok), _) => Some(Ok(ok)),
                ("bid_result", None, Some(problem)) => Some(Err(problem.code.as_str())),
                ("error", ..) => incoming.code.as_deref().map(Err),
                _ => None,
            };
            let (Some(decision), Some(request_id)) = (decision, incoming.request_id.as_deref())
            else {
                continue;
            };
            let waiting = answers
                .lock()
                .ok()
                .and_then(|mut pending| pending.remove(request_id));
            if let Some((auction, reply_to)) = waiting {
                let decision = match decision {
                    Ok(ok) => wire::accepted(auction, ok),
                    Err(code) => wire::refused(code),
                };
                let _ = reply_to.send(decision);
            }
        }
        // The socket is gone: whatever was in flight may or may not have been applied.
        if let Ok(mut pending) = answers.lock() {
            for (_, (_, reply_to)) in pending.drain() {
                let _ = reply_to.send(Decision::Unknown {
                    code: "connection_closed".to_owned(),
                });
            }
        }
    });
    WsBidder {
        outgoing,
        pending,
        slots: Semaphore::new(WS_BIDS_IN_FLIGHT_MAX),
    }
}

impl Target for WsTarget {
    async fn propose(&self, request: Request) -> Decision {
        let bid = match route_bid(&self.session, self.bidders.len(), &request).await {
            Ok(bid) => bid,
            Err(decision) => return decision,
        };
        let socket = &self.bidders[bid.bidder];
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let _slot = match tokio::time::timeout_at(deadline, socket.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            // Closed never happens (the semaphore is never closed); a timeout means the bid
            // was never sent.
            Ok(Err(_)) | Err(_) => {
                return Decision::Failed {
                    code: "client_queue_timeout".to_owned(),
                };
            }
        };
        let request_id = request.request_id.as_str().to_owned();
        let mut message = json!({
            "type": "bid", "auction": bid.gateway_id, "request_id": request_id,
            "amount": bid.amount,
        });
        if let Some(max) = bid.max {
            message["max"] = json!(max);
        }
        let (reply_to, answer) = oneshot::channel();
        match socket.pending.lock() {
            Ok(mut pending) => {
                pending.insert(request_id.clone(), (bid.auction_id, reply_to));
            }
            Err(_) => return unsupported(),
        }
        if socket
            .outgoing
            .send(Message::text(message.to_string()))
            .await
            .is_err()
        {
            forget(&socket.pending, &request_id);
            return Decision::Failed {
                code: "connection_closed".to_owned(),
            };
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(_)) => Decision::Unknown {
                code: "connection_closed".to_owned(),
            },
            Err(_) => {
                forget(&socket.pending, &request_id);
                Decision::Unknown {
                    code: "deadline_exceeded".to_owned(),
                }
            }
        }
    }
}

fn forget(pending: &Pending, request_id: &str) {
    if let Ok(mut pending) = pending.lock() {
        pending.remove(request_id);
    }
}

/// What the bids are sent to.
#[derive(Debug)]
pub enum AnyTarget {
    Grpc(ClusterTarget),
    Http(HttpTarget),
    Ws(WsTarget),
}

impl Target for AnyTarget {
    async fn propose(&self, request: Request) -> Decision {
        match self {
            AnyTarget::Grpc(target) => target.propose(request).await,
            AnyTarget::Http(target) => target.propose(request).await,
            AnyTarget::Ws(target) => target.propose(request).await,
        }
    }
}

/// Connects to what `plan.target` names; through a gateway, signs the bidders and the
/// seller up and in first.
pub async fn connect_target(
    plan: &Plan,
    addresses: &[String],
    gateway: Option<&str>,
    nonce: u64,
) -> anyhow::Result<(AnyTarget, Option<Arc<GatewaySession>>)> {
    if plan.target == TargetKind::Grpc {
        if addresses.is_empty() {
            bail!("no cluster address to connect to");
        }
        let target = ClusterTarget::connect(addresses, plan.request_timeout).await?;
        return Ok((AnyTarget::Grpc(target), None));
    }
    let base = gateway.ok_or_else(|| anyhow!("no gateway to send bids to"))?;
    println!(
        "signing up and in {} bidders and a seller at {base} (argon2: a while)",
        plan.bidders
    );
    let in_flight = match plan.mode {
        LoadMode::Closed { concurrency } => concurrency,
        LoadMode::Open { in_flight_max, .. } => in_flight_max,
    };
    let session = Arc::new(
        GatewaySession::sign_in(base, plan.bidders, nonce, plan.request_timeout, in_flight).await?,
    );
    let target = match plan.target {
        TargetKind::Http => AnyTarget::Http(HttpTarget {
            session: Arc::clone(&session),
        }),
        TargetKind::Ws | TargetKind::Grpc => {
            raise_open_files_limit()?;
            AnyTarget::Ws(
                WsTarget::connect(
                    Arc::clone(&session),
                    &gateway::ws_url(base),
                    plan.request_timeout,
                )
                .await?,
            )
        }
    };
    Ok((target, Some(session)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Workload;

    #[test]
    fn only_the_bench_bidders_have_sockets_and_tokens() {
        assert_eq!(bidder_index(Workload::bidder(0), 4), Some(0));
        assert_eq!(bidder_index(Workload::bidder(3), 4), Some(3));
        assert_eq!(bidder_index(Workload::bidder(4), 4), None);
        assert_eq!(bidder_index(Workload::seller(), 4), None);
        assert_eq!(bidder_index(UserId(1), 4), None);
    }

    #[test]
    fn server_messages_are_read_for_their_request_and_outcome() {
        let ok = r#"{"type":"bid_result","request_id":"r-1","ok":{"auction":3,"seq":9,
            "price":1500,"leading":true,"reserve_met":true,"bid_id":3,"end_us":1,
            "replayed":false,"log_index":4,"timestamp_us":2,"kind":"bid"}}"#;
        let incoming: Incoming = serde_json::from_str(ok).expect("parses");
        assert_eq!(incoming.kind, "bid_result");
        assert_eq!(incoming.request_id.as_deref(), Some("r-1"));
        assert_eq!(incoming.ok.map(|ok| ok.price), Some(1500));
        let refused = r#"{"type":"bid_result","request_id":"r-2",
            "error":{"code":"bid_too_low","status":409,"title":"Conflict"}}"#;
        let incoming: Incoming = serde_json::from_str(refused).expect("parses");
        assert_eq!(
            incoming.error.map(|e| e.code),
            Some("bid_too_low".to_owned())
        );
        let time = r#"{"type":"time","server_time_us":5}"#;
        let incoming: Incoming = serde_json::from_str(time).expect("parses");
        assert!(incoming.request_id.is_none());
    }
}
