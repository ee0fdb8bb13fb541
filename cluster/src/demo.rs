//! `martelo demo`: a scripted auction replayed through the engine, as a cluster would apply
//! it, with timestamps and log indices supplied from outside exactly as Raft entries carry
//! them. It shows proxy bidding, a tie decided by log order, a soft-close extension, a
//! duplicate retry and the close.

use martelo_engine::{
    Action, Actor, Amount, ApplyCtx, AuctionId, AuctionSpec, Command, Currency, Description,
    IncrementPolicy, Micros, Request, RequestId, Role, SoftClose, SoftCloseMode, State, Timestamp,
    Title, UserId,
};
use serde_json::json;

const SELLER: Actor = Actor {
    user: UserId(1),
    role: Role::Seller,
};
/// The bidders: every bid of the script is made as [`Role::Bidder`].
const ALICE: UserId = UserId(10);
const BOB: UserId = UserId(11);
const CAROL: UserId = UserId(12);

/// 2026-01-01T00:00:00Z in microseconds.
const T0: u64 = 1_767_225_600_000_000;

fn at(seconds: u64) -> Timestamp {
    Timestamp(T0 + seconds * 1_000_000)
}

fn request(actor: Actor, id: &str, action: Action) -> anyhow::Result<Command> {
    Ok(Command::Request(Request {
        actor,
        request_id: RequestId::try_from(id)?,
        action,
    }))
}

fn bid(bidder: UserId, id: &str, amount: u64, max: Option<u64>) -> anyhow::Result<Command> {
    let action = Action::PlaceBid {
        auction_id: AUCTION,
        amount: Amount(amount),
        max: max.map(Amount),
    };
    let actor = Actor {
        user: bidder,
        role: Role::Bidder,
    };
    request(actor, id, action)
}

const AUCTION: AuctionId = AuctionId(7);

/// The scripted log: `(seconds after T0, command)`.
fn script() -> anyhow::Result<Vec<(u64, Command)>> {
    let spec = AuctionSpec {
        title: Title::try_from("Hand-forged carpenter's hammer")?,
        description: Description::try_from("Ash handle, 1920s.")?,
        currency: Currency::try_from("EUR")?,
        starting_price: Amount(1_000),
        reserve_price: Some(Amount(2_000)),
        buy_now_price: None,
        increment: IncrementPolicy::Ebay,
        start: at(0),
        end: at(600),
        soft_close: Some(SoftClose {
            window: Micros::from_secs(120),
            mode: SoftCloseMode::ResetRemaining(Micros::from_secs(120)),
            total_extension_max: Some(Micros::from_secs(600)),
        }),
    };
    Ok(vec![
        (
            0,
            request(
                SELLER,
                "create-1",
                Action::CreateAuction {
                    auction_id: AUCTION,
                    spec,
                },
            )?,
        ),
        (10, bid(ALICE, "a-1", 1_000, Some(2_500))?),
        (20, bid(BOB, "b-1", 2_100, None)?),
        (30, bid(BOB, "b-1", 2_100, None)?),
        (40, bid(CAROL, "c-1", 2_550, Some(2_550))?),
        (550, bid(ALICE, "a-2", 2_650, Some(3_000))?),
        (560, bid(BOB, "b-2", 2_800, None)?),
        (
            605,
            Command::Close {
                auction_id: AUCTION,
            },
        ),
        (
            680,
            Command::Close {
                auction_id: AUCTION,
            },
        ),
        (
            700,
            Command::Close {
                auction_id: AUCTION,
            },
        ),
    ])
}

/// Replays the script and returns one JSON line per applied command, then the digest.
pub fn run() -> anyhow::Result<Vec<String>> {
    let mut state = State::new();
    let mut lines = Vec::new();
    for (index, (seconds, command)) in script()?.into_iter().enumerate() {
        let ctx = ApplyCtx {
            log_index: index as u64 + 1,
            timestamp: at(seconds),
        };
        let outcome = state.apply(ctx, &command);
        let line = json!({
            "log_index": ctx.log_index,
            "timestamp_us": ctx.timestamp.0,
            "command": command,
            "reply": outcome.reply,
            "replayed": outcome.replayed,
            "events": outcome.events,
        });
        lines.push(line.to_string());
    }
    state.validate()?;
    lines.push(json!({ "state_digest": state.digest().to_string() }).to_string());
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_sells_to_the_highest_maximum_after_a_soft_close_extension() {
        let lines = run().expect("demo runs");
        let parsed: Vec<serde_json::Value> = lines
            .iter()
            .map(|line| serde_json::from_str(line).expect("json"))
            .collect();
        // Bob's retry of b-1 is a replay, not a second bid.
        assert_eq!(parsed[3]["replayed"], json!(true));
        // Alice's bid at 550 s falls in the last 120 s and resets the end to 670 s; Bob's at
        // 560 s resets it again, to 680 s, so a Close at 605 s is refused.
        let extended = parsed[5]["events"].to_string();
        assert!(extended.contains("EndExtended"), "{extended}");
        assert_eq!(
            parsed[7]["reply"],
            json!({ "Rejected": "auction_not_ended" })
        );
        // Bob's 2,800 loses to Alice's standing 3,000 maximum; at 680 s the auction closes
        // with Alice the winner at Bob's bid plus one increment.
        let close = &parsed[8]["reply"]["Accepted"]["Closed"]["result"]["Sold"];
        assert_eq!(close["winner"], json!(10));
        assert_eq!(close["price"], json!(2_900));
        // The leader may repeat Close; the second is rejected and changes nothing.
        assert_eq!(parsed[9]["reply"], json!({ "Rejected": "auction_closed" }));
        assert!(parsed.last().expect("digest")["state_digest"].is_string());
    }
}
