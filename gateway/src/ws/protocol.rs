//! The `/v1/ws` messages: what clients send ([`ClientMessage`], parsed strictly) and the
//! server's frames (built here, one function each), all JSON objects tagged by `"type"`.
//! docs/API.md's WebSocket section is the reference for clients.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use martelo_client::AuctionRead;
use martelo_engine::UserId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Problem;

/// Longest client `request_id`, bytes.
pub const REQUEST_ID_BYTES_MAX: usize = 64;
/// Longest `ping` nonce, bytes.
pub const NONCE_BYTES_MAX: usize = 64;

/// Close codes the server uses (4000-4999 are the application's).
pub mod close {
    /// The user was suspended.
    pub const SUSPENDED: u16 = 4001;
    /// The user signed out (all sessions, or this one, revoked).
    pub const SIGNED_OUT: u16 = 4002;
    /// The access token expired: reconnect with a fresh one.
    pub const TOKEN_EXPIRED: u16 = 4003;
    /// The client sent more than the server would queue for it without reading.
    pub const TOO_SLOW: u16 = 4008;
    /// A message over the size limit (the standard "message too big").
    pub const TOO_BIG: u16 = 1009;
    /// The server is shutting down or the client sent a frame it cannot use.
    pub const POLICY: u16 = 1008;
}

/// A message from the client.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Watch an auction; with `after_seq`, resume after that seq.
    Subscribe {
        auction: u64,
        #[serde(default)]
        after_seq: Option<u64>,
    },
    /// Stop watching an auction.
    Unsubscribe { auction: u64 },
    /// Place a bid (as HTTP's `POST /v1/auctions/{id}/bids`, `request_id` being the
    /// idempotency key).
    Bid {
        auction: u64,
        request_id: String,
        amount: u64,
        #[serde(default)]
        max: Option<u64>,
        /// W3C trace context, carried into the node's log entry (ignored when malformed).
        #[serde(default)]
        traceparent: Option<String>,
    },
    /// Buy it now.
    Buy {
        auction: u64,
        request_id: String,
        #[serde(default)]
        traceparent: Option<String>,
    },
    /// Asks for a `pong` with the same nonce.
    Ping {
        #[serde(default)]
        nonce: Option<String>,
    },
}

impl ClientMessage {
    /// Parses a text frame; the error is a `detail` for an `error` frame.
    pub fn parse(text: &str) -> Result<ClientMessage, String> {
        let message: ClientMessage =
            serde_json::from_str(text).map_err(|error| format!("not a client message: {error}"))?;
        match &message {
            ClientMessage::Bid { request_id, .. } | ClientMessage::Buy { request_id, .. }
                if request_id.is_empty() || request_id.len() > REQUEST_ID_BYTES_MAX =>
            {
                Err(format!(
                    "request_id must be 1 to {REQUEST_ID_BYTES_MAX} bytes"
                ))
            }
            ClientMessage::Ping { nonce: Some(nonce) } if nonce.len() > NONCE_BYTES_MAX => {
                Err(format!("nonce must be at most {NONCE_BYTES_MAX} bytes"))
            }
            _ => Ok(message),
        }
    }
}

/// Why a snapshot was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotReason {
    /// A new subscription.
    New,
    /// The hub's subscription had to start over (log trimmed).
    Resync,
    /// The client was too slow: its backlog was replaced by this snapshot.
    Conflated,
    /// Events were missing (a resume whose events are gone, or a gap in the stream).
    Gap,
}

impl SnapshotReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotReason::New => "new",
            SnapshotReason::Resync => "resync",
            SnapshotReason::Conflated => "conflated",
            SnapshotReason::Gap => "gap",
        }
    }
}

/// The server's time now, µs since the Unix epoch.
pub fn server_time_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
        })
}

fn frame(value: Value) -> Utf8Bytes {
    Utf8Bytes::from(value.to_string())
}

/// `snapshot`: the auction's public state at `seq`, with `names`: the display names of
/// the seller and bidders that the gateway knows (`{"<user id>": "<display name>"}`).
pub fn snapshot(
    read: &AuctionRead,
    reason: SnapshotReason,
    names: &[(UserId, Arc<str>)],
) -> Utf8Bytes {
    let names: serde_json::Map<String, Value> = names
        .iter()
        .map(|(user, name)| (user.0.to_string(), json!(&**name)))
        .collect();
    frame(json!({
        "type": "snapshot",
        "auction": read.view.id.0,
        "seq": read.seq,
        "state": super::json::view_json(&read.view),
        "server_time_us": server_time_us(),
        "effective_end_us": read.view.end.0,
        "resumed": false,
        "reason": reason.as_str(),
        "names": names,
    }))
}

/// `resumed`: a resume succeeded; the `replayed` events after `after_seq` follow.
pub fn resumed(auction: u64, after_seq: u64, replayed: usize) -> Utf8Bytes {
    frame(json!({
        "type": "resumed",
        "auction": auction,
        "after_seq": after_seq,
        "replayed": replayed,
        "server_time_us": server_time_us(),
    }))
}

/// `unsubscribed`: the auction is no longer watched.
pub fn unsubscribed(auction: u64) -> Utf8Bytes {
    frame(json!({ "type": "unsubscribed", "auction": auction }))
}

/// `bid_result` with `ok` (the HTTP API's 201 body) or `error` (a problem).
pub fn bid_result(request_id: &str, result: Result<Value, &Problem>) -> Utf8Bytes {
    match result {
        Ok(accepted) => frame(json!({
            "type": "bid_result",
            "request_id": request_id,
            "ok": accepted,
        })),
        Err(problem) => frame(json!({
            "type": "bid_result",
            "request_id": request_id,
            "error": problem,
        })),
    }
}

/// `notice`: something that concerns the signed-in user personally.
pub fn notice(kind: &str, auction: u64, seq: u64) -> Utf8Bytes {
    frame(json!({ "type": "notice", "kind": kind, "auction": auction, "seq": seq }))
}

/// `time`: the server's clock for countdowns (when it is sent: `session::TimeFrames`).
pub fn time() -> Utf8Bytes {
    frame(json!({ "type": "time", "server_time_us": server_time_us() }))
}

/// `pong`, echoing the ping's nonce.
pub fn pong(nonce: Option<&str>) -> Utf8Bytes {
    frame(json!({ "type": "pong", "nonce": nonce, "server_time_us": server_time_us() }))
}

/// `error`: a stable `code`, a `detail` for people, and what it is about when known.
pub fn error(
    code: &str,
    detail: &str,
    request_id: Option<&str>,
    auction: Option<u64>,
) -> Utf8Bytes {
    let mut value = json!({ "type": "error", "code": code, "detail": detail });
    if let Some(request_id) = request_id {
        value["request_id"] = json!(request_id);
    }
    if let Some(auction) = auction {
        value["auction"] = json!(auction);
    }
    frame(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_strictly() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"subscribe","auction":5,"after_seq":3}"#),
            Ok(ClientMessage::Subscribe {
                auction: 5,
                after_seq: Some(3)
            })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"bid","auction":5,"request_id":"r1","amount":100}"#),
            Ok(ClientMessage::Bid {
                auction: 5,
                request_id: "r1".into(),
                amount: 100,
                max: None,
                traceparent: None,
            })
        );
        for bad in [
            r#"{"type":"bid","auction":5,"request_id":"r1","amount":-1}"#,
            r#"{"type":"bid","auction":5,"request_id":"r1","amount":18446744073709551616}"#,
            r#"{"type":"bid","auction":5,"request_id":"","amount":1}"#,
            r#"{"type":"launch","auction":5}"#,
            r#"{"auction":5}"#,
            "not json",
        ] {
            assert!(ClientMessage::parse(bad).is_err(), "{bad}");
        }
    }
}
