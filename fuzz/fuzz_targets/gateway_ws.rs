//! The WebSocket client messages (`ws::protocol::ClientMessage::parse`: every text frame a
//! client sends on `/v1/ws`), then what the session makes of a bid or a purchase before it
//! proposes it: the request id, the amounts (`http::bids::check_amount`) and the trace
//! context (`Traceparent`), as `http::bids::place_bid` checks them.
//!
//! Contract: a parsed message keeps the protocol's limits (request id 1 to 64 bytes, nonce
//! at most 64); a refusal is a detail of bounded size for an `error` frame, which builds
//! into one JSON object; a bid that passes the checks is an engine request the node takes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use martelo_engine::codec::wire::{self, WireVersion};
use martelo_engine::{Action, Actor, AuctionId, Request, RequestId, Role, UserId};
use martelo_fuzz::assert_bounded_message;
use martelo_gateway::http::bids::check_amount;
use martelo_gateway::ws::protocol::{self, ClientMessage, NONCE_BYTES_MAX, REQUEST_ID_BYTES_MAX};
use martelo_proto::{PROPOSAL_COMMAND_BYTES_MAX, Traceparent};

/// What `place_bid` proposes for a WebSocket bid (`amount` `None`: buy it now), if its
/// checks pass.
fn proposed(auction: u64, request_id: &str, amount: Option<u64>, max: Option<u64>) {
    let Ok(request_id) = RequestId::try_from(request_id) else {
        return;
    };
    let action = match amount {
        Some(amount) => {
            let (Ok(amount), Ok(max)) = (
                check_amount("amount", amount),
                max.map(|max| check_amount("max", max)).transpose(),
            ) else {
                return;
            };
            Action::PlaceBid {
                auction_id: AuctionId(auction),
                amount,
                max,
            }
        }
        None => Action::BuyNow {
            auction_id: AuctionId(auction),
        },
    };
    let request = Request {
        actor: Actor {
            user: UserId(7),
            role: Role::Bidder,
        },
        request_id,
        action,
    };
    let bytes = wire::encode("command", &request, WireVersion::CURRENT).expect("encodes");
    assert!(bytes.len() <= PROPOSAL_COMMAND_BYTES_MAX);
    let back = wire::decode::<Request, PROPOSAL_COMMAND_BYTES_MAX>("command", &bytes)
        .expect("an accepted bid decodes");
    assert_eq!(back, request);
}

fn traceparent(text: Option<&str>) {
    if let Some(Ok(parsed)) = text.map(Traceparent::try_from) {
        assert_eq!(parsed.as_str(), text.unwrap_or_default());
        assert_eq!(parsed.trace_id().len(), 32);
    }
}

fuzz_target!(|data: &[u8]| {
    // The socket hands the session only valid UTF-8 text frames.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Bid {
            auction,
            request_id,
            amount,
            max,
            traceparent: trace,
        }) => {
            assert!((1..=REQUEST_ID_BYTES_MAX).contains(&request_id.len()));
            traceparent(trace.as_deref());
            proposed(auction, &request_id, Some(amount), max);
        }
        Ok(ClientMessage::Buy {
            auction,
            request_id,
            traceparent: trace,
        }) => {
            assert!((1..=REQUEST_ID_BYTES_MAX).contains(&request_id.len()));
            traceparent(trace.as_deref());
            proposed(auction, &request_id, None, None);
        }
        Ok(ClientMessage::Ping { nonce }) => {
            assert!(nonce.as_ref().is_none_or(|nonce| nonce.len() <= NONCE_BYTES_MAX));
            let frame = protocol::pong(nonce.as_deref());
            let json: serde_json::Value = serde_json::from_str(&frame).expect("pong is JSON");
            assert_eq!(json["nonce"].as_str(), nonce.as_deref());
        }
        Ok(ClientMessage::Subscribe { .. } | ClientMessage::Unsubscribe { .. }) => {}
        Err(detail) => {
            assert_bounded_message("ws message", &detail, data.len());
            let frame = protocol::error("malformed_json", &detail, None, None);
            let json: serde_json::Value = serde_json::from_str(&frame).expect("error is JSON");
            assert_eq!(json["detail"].as_str(), Some(detail.as_str()));
        }
    }
});
