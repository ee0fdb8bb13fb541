//! Deterministic command streams shared by the engine's benchmarks.

use martelo_engine::*;

pub const SELLER: Actor = Actor {
    user: UserId(1),
    role: Role::Seller,
};
pub const T0: u64 = 1_800_000_000_000_000;

pub fn spec(increment: IncrementPolicy) -> AuctionSpec {
    AuctionSpec {
        title: Title::try_from("Benchmark lot").expect("valid"),
        description: Description::try_from("A lot used by the benchmarks.").expect("valid"),
        currency: Currency::try_from("USD").expect("valid"),
        starting_price: Amount(100),
        reserve_price: None,
        buy_now_price: None,
        increment,
        start: Timestamp(T0),
        end: Timestamp(T0 + 24 * 3600 * 1_000_000),
        soft_close: None,
    }
}

/// A state holding `count` open auctions, ids `0..count`, and the next free log index.
pub fn state_with_auctions(count: u64) -> (State, u64) {
    let mut state = State::new();
    for id in 0..count {
        let command = Command::Request(Request {
            actor: SELLER,
            request_id: RequestId::try_from(format!("create-{id}")).expect("valid"),
            action: Action::CreateAuction {
                auction_id: AuctionId(id),
                spec: spec(IncrementPolicy::Fixed(Amount(10))),
            },
        });
        let reply = state.apply(
            ApplyCtx {
                log_index: id + 1,
                timestamp: Timestamp(T0),
            },
            &command,
        );
        assert!(reply.reply.is_accepted());
    }
    (state, count + 1)
}

/// `count` bids spread over `auctions` auctions by `bidders` distinct bidders. Amounts rise
/// by 1,000 per bid within an auction so nearly every bid is accepted and takes the lead;
/// every second bid carries a proxy maximum 500 above its amount, and every tenth bid is too
/// low and is rejected, as happens under contention.
pub fn bids(count: u64, auctions: u64, bidders: u64) -> Vec<Command> {
    let mut next_amount = vec![1_000u64; auctions as usize];
    (0..count)
        .map(|index| {
            // A multiplicative hash spreads consecutive bids over auctions and bidders.
            let mixed = index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let auction = (mixed >> 32) % auctions;
            let bidder = 100 + index % bidders;
            let slot = &mut next_amount[auction as usize];
            let (amount, max) = if index % 10 == 9 {
                (*slot / 2, None)
            } else {
                *slot += 1_000;
                (*slot, (index % 2 == 0).then_some(Amount(*slot + 500)))
            };
            Command::Request(Request {
                actor: Actor {
                    user: UserId(bidder),
                    role: Role::Bidder,
                },
                request_id: RequestId::try_from(format!("bid-{index}")).expect("valid"),
                action: Action::PlaceBid {
                    auction_id: AuctionId(auction),
                    amount: Amount(amount),
                    max,
                },
            })
        })
        .collect()
}

/// Applies `commands` from `first_index` on, one microsecond apart.
pub fn apply_all(state: &mut State, first_index: u64, commands: &[Command]) -> usize {
    let mut accepted = 0;
    for (offset, command) in commands.iter().enumerate() {
        let offset = offset as u64;
        let ctx = ApplyCtx {
            log_index: first_index + offset,
            timestamp: Timestamp(T0 + offset),
        };
        accepted += usize::from(state.apply(ctx, command).reply.is_accepted());
    }
    accepted
}
