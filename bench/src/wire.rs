//! The gateway's JSON, as the bench speaks it: an engine auction spec as a
//! `POST /v1/auctions` body, and a bid's answer (HTTP 201 body or problem, WebSocket
//! `bid_result`) as a [`Decision`]. Pure functions, tested below without a socket.

use martelo_engine::{
    Accepted, Amount, AuctionId, AuctionSpec, BidId, IncrementPolicy, RejectCode, Reply,
    SoftCloseMode, Timestamp,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::target::Decision;

/// Gateway codes after which the bid may or may not have been applied (docs/API.md):
/// counted as unknown, never as failures.
const UNKNOWN_CODES: [&str; 2] = ["outcome_unknown", "timeout"];

/// The body of `POST /v1/auctions` for `spec`. Soft-close windows are whole seconds there
/// (rounded up here); the scenarios that go through a gateway use none below a second.
pub fn auction_body(spec: &AuctionSpec) -> Value {
    let increment = match &spec.increment {
        IncrementPolicy::Ebay => json!("ebay"),
        IncrementPolicy::Fixed(step) => json!({ "fixed": step.0 }),
        IncrementPolicy::Bands(bands) => json!({
            "bands": bands
                .iter()
                .map(|band| json!({"from": band.from.0, "increment": band.increment.0}))
                .collect::<Vec<_>>()
        }),
    };
    let secs = |micros: u64| micros.div_ceil(1_000_000);
    let soft_close = spec.soft_close.as_ref().map(|soft| {
        let (mode, extension) = match soft.mode {
            SoftCloseMode::AddToEnd(extension) => ("add_to_end", extension),
            SoftCloseMode::ResetRemaining(extension) => ("reset_remaining", extension),
        };
        json!({
            "window_secs": secs(soft.window.0),
            "mode": mode,
            "extension_secs": secs(extension.0),
            "total_extension_max_secs": soft.total_extension_max.map(|max| secs(max.0)),
        })
    });
    json!({
        "title": spec.title.as_str(),
        "description": spec.description.as_str(),
        "currency": spec.currency.as_str(),
        "starting_price": spec.starting_price.0,
        "reserve_price": spec.reserve_price.map(|price| price.0),
        "buy_now_price": spec.buy_now_price.map(|price| price.0),
        "increment": increment,
        "start_us": spec.start.0,
        "end_us": spec.end.0,
        "soft_close": soft_close,
    })
}

/// A bid's success, as HTTP 201 and the WebSocket `bid_result.ok` carry it.
#[derive(Debug, Deserialize)]
pub struct BidAccepted {
    pub seq: u64,
    pub price: u64,
    pub leading: bool,
    #[serde(default)]
    pub reserve_met: bool,
    pub bid_id: Option<u32>,
    pub end_us: Option<u64>,
    #[serde(default)]
    pub replayed: bool,
}

/// An RFC 9457 problem: only its stable code matters here.
#[derive(Debug, Deserialize)]
pub struct Problem {
    pub code: String,
}

/// The decision a bid's success means. `auction` is the bench's own id for the auction
/// (the workload's), so the workload learns from the reply as it does over gRPC.
pub fn accepted(auction: AuctionId, body: &BidAccepted) -> Decision {
    Decision::Decided {
        reply: Reply::Accepted(Accepted::Bid {
            auction_id: auction,
            bid_id: BidId(body.bid_id.unwrap_or(0)),
            seq: body.seq,
            price: Amount(body.price),
            leading: body.leading,
            reserve_met: body.reserve_met,
            end: Timestamp(body.end_us.unwrap_or(0)),
        }),
        replayed: body.replayed,
    }
}

/// The decision a refusal with `code` means: an engine rejection is a decided bid; a code
/// that leaves the outcome open is unknown; anything else (rate limits, authentication,
/// the node's `unavailable`) provably did not apply the bid.
pub fn refused(code: &str) -> Decision {
    if let Some(reject) = RejectCode::ALL
        .iter()
        .find(|reject| reject.as_str() == code)
    {
        return Decision::Decided {
            reply: Reply::Rejected(*reject),
            replayed: false,
        };
    }
    if UNKNOWN_CODES.contains(&code) {
        return Decision::Unknown {
            code: code.to_owned(),
        };
    }
    Decision::Failed {
        code: code.to_owned(),
    }
}

/// The decision an HTTP answer to `POST /v1/auctions/{id}/bids` means.
pub fn http_decision(auction: AuctionId, status: u16, body: &[u8]) -> Decision {
    if status == 201 {
        return match serde_json::from_slice::<BidAccepted>(body) {
            Ok(accepted_body) => accepted(auction, &accepted_body),
            Err(_) => Decision::Unknown {
                code: "malformed_answer".to_owned(),
            },
        };
    }
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => refused(&problem.code),
        // A 5xx without a problem body may have applied the bid; a 4xx did not.
        Err(_) if status >= 500 => Decision::Unknown {
            code: format!("http_{status}"),
        },
        Err(_) => Decision::Failed {
            code: format!("http_{status}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use martelo_engine::{Currency, Description, Micros, SoftClose, Title};

    #[test]
    fn answers_map_to_decisions_rejections_failures_and_unknowns() {
        let auction = AuctionId(7);
        let ok = br#"{"auction":99,"seq":4,"price":150,"leading":true,"reserve_met":true,
            "bid_id":2,"end_us":10,"replayed":false,"log_index":12,"timestamp_us":5,
            "kind":"bid"}"#;
        match http_decision(auction, 201, ok) {
            Decision::Decided {
                reply:
                    Reply::Accepted(Accepted::Bid {
                        auction_id, price, ..
                    }),
                replayed: false,
            } => assert_eq!((auction_id, price), (auction, Amount(150))),
            other => panic!("{other:?}"),
        }
        let too_low = br#"{"type":"urn:martelo:problem:bid_too_low","status":409,
            "code":"bid_too_low","title":"Conflict"}"#;
        assert_eq!(
            http_decision(auction, 409, too_low),
            Decision::Decided {
                reply: Reply::Rejected(RejectCode::BidTooLow),
                replayed: false
            }
        );
        assert_eq!(
            http_decision(auction, 503, br#"{"code":"outcome_unknown"}"#),
            Decision::Unknown {
                code: "outcome_unknown".into()
            }
        );
        assert_eq!(
            http_decision(auction, 429, br#"{"code":"rate_limited"}"#),
            Decision::Failed {
                code: "rate_limited".into()
            }
        );
        assert_eq!(
            http_decision(auction, 502, b"bad gateway"),
            Decision::Unknown {
                code: "http_502".into()
            }
        );
        assert_eq!(
            http_decision(auction, 201, b"{}"),
            Decision::Unknown {
                code: "malformed_answer".into()
            }
        );
    }

    #[test]
    fn a_spec_becomes_the_body_the_gateway_takes() {
        let spec = AuctionSpec {
            title: Title::try_from("Lot").expect("title"),
            description: Description::try_from("").expect("description"),
            currency: Currency::try_from("EUR").expect("currency"),
            starting_price: Amount(100),
            reserve_price: Some(Amount(5_000)),
            buy_now_price: None,
            increment: IncrementPolicy::Fixed(Amount(25)),
            start: Timestamp(1_000),
            end: Timestamp(9_000_000),
            soft_close: Some(SoftClose {
                window: Micros(1_500_000),
                mode: SoftCloseMode::AddToEnd(Micros(2_000_000)),
                total_extension_max: None,
            }),
        };
        let body = auction_body(&spec);
        assert_eq!(body["increment"], json!({"fixed": 25}));
        assert_eq!(body["reserve_price"], json!(5_000));
        assert_eq!(body["soft_close"]["window_secs"], json!(2), "rounded up");
        assert_eq!(body["soft_close"]["mode"], json!("add_to_end"));
        assert_eq!(body["currency"], json!("EUR"));
        assert_eq!(body["start_us"], json!(1_000));
    }
}
