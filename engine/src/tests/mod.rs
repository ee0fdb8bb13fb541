//! One test per rule and per rejection code. Names state the rule.

use crate::*;

/// User `user` acting as `role`.
const fn actor(user: u64, role: Role) -> Actor {
    Actor {
        user: UserId(user),
        role,
    }
}

const SELLER: Actor = actor(1, Role::Seller);
const ALICE: Actor = actor(10, Role::Bidder);
const BOB: Actor = actor(11, Role::Bidder);
const CAROL: Actor = actor(12, Role::Bidder);
const ADMIN: Actor = actor(99, Role::Admin);
const A1: AuctionId = AuctionId(1);

/// Seconds after the harness's epoch.
fn at(seconds: u64) -> Timestamp {
    Timestamp(1_000_000_000_000 + seconds * 1_000_000)
}

fn spec() -> AuctionSpec {
    AuctionSpec {
        title: Title::try_from("Lot").unwrap(),
        description: Description::try_from("").unwrap(),
        currency: Currency::try_from("USD").unwrap(),
        starting_price: Amount(1_000),
        reserve_price: None,
        buy_now_price: None,
        increment: IncrementPolicy::Fixed(Amount(100)),
        start: at(0),
        end: at(1_000),
        soft_close: None,
    }
}

fn reason(text: &str) -> Reason {
    Reason::try_from(text).unwrap()
}

/// Applies commands with increasing log indices at times the test chooses.
struct Harness {
    state: State,
    log_index: u64,
    next_request: u64,
}

impl Harness {
    /// An empty group at the current rules version (adopted by the first entry, as a
    /// group's leader does).
    fn new() -> Harness {
        Harness::at_rules(State::new(), RulesVersion::CURRENT)
    }

    /// `state` at rules `version`: the rules a group starts with (1), or a later version
    /// adopted by the first entry.
    fn at_rules(state: State, version: RulesVersion) -> Harness {
        let mut harness = Harness {
            state,
            log_index: 0,
            next_request: 0,
        };
        if version != RulesVersion::FIRST {
            let reply = harness.apply(0, Command::AdoptRules { version }).reply;
            assert_eq!(reply, Reply::Accepted(Accepted::RulesAdopted { version }));
        }
        assert_eq!(harness.state.rules(), version);
        harness
    }

    /// A group that never adopted later rules, holding `A1` created from `spec` at time 0.
    fn with_rules_1(spec: AuctionSpec) -> Harness {
        let mut harness = Harness::at_rules(State::new(), RulesVersion::FIRST);
        harness.create(spec);
        harness
    }

    fn create(&mut self, spec: AuctionSpec) {
        let reply = self.act(
            0,
            SELLER,
            Action::CreateAuction {
                auction_id: A1,
                spec,
            },
        );
        assert!(reply.is_accepted(), "{reply:?}");
    }

    /// A harness holding auction `A1` created from `spec` at time 0.
    fn with(spec: AuctionSpec) -> Harness {
        let mut harness = Harness::new();
        harness.create(spec);
        harness
    }

    fn apply(&mut self, seconds: u64, command: Command) -> Outcome {
        self.log_index += 1;
        let ctx = ApplyCtx {
            log_index: self.log_index,
            timestamp: at(seconds),
        };
        let outcome = self.state.apply(ctx, &command);
        self.state
            .validate()
            .expect("state stays valid after every command");
        outcome
    }

    fn request(&mut self, seconds: u64, actor: Actor, id: &str, action: Action) -> Outcome {
        let request_id = RequestId::try_from(id).unwrap();
        self.apply(
            seconds,
            Command::Request(Request {
                actor,
                request_id,
                action,
            }),
        )
    }

    /// A request with a fresh request id; returns only the reply.
    fn act(&mut self, seconds: u64, actor: Actor, action: Action) -> Reply {
        self.next_request += 1;
        let id = format!("r{}", self.next_request);
        self.request(seconds, actor, &id, action).reply
    }

    fn bid(&mut self, seconds: u64, actor: Actor, amount: u64, max: Option<u64>) -> Reply {
        let action = Action::PlaceBid {
            auction_id: A1,
            amount: Amount(amount),
            max: max.map(Amount),
        };
        self.act(seconds, actor, action)
    }

    fn close(&mut self, seconds: u64) -> Reply {
        self.apply(seconds, Command::Close { auction_id: A1 }).reply
    }

    fn auction(&self) -> &Auction {
        self.state.auction(A1).expect("auction exists")
    }

    fn price(&self) -> Option<u64> {
        self.auction().price().map(|price| price.0)
    }

    fn leader(&self) -> Option<UserId> {
        self.auction().leader().map(|leader| leader.bidder)
    }

    fn result(&self) -> AuctionResult {
        self.auction()
            .closed()
            .expect("auction closed")
            .result
            .clone()
    }
}

fn rejected(reply: &Reply) -> RejectCode {
    reply
        .rejection()
        .unwrap_or_else(|| panic!("expected a rejection, got {reply:?}"))
}

fn sold(winner: Actor, price: u64) -> AuctionResult {
    AuctionResult::Sold {
        winner: winner.user,
        price: Amount(price),
        via: SaleKind::Bidding,
    }
}

mod bidding;
mod closing;
mod listing;
mod records;
mod rules_v2;
mod terms;
