//! Helpers shared by the integration tests and the benchmark: a seeded auction workload and
//! action-shaped store helpers (`must_*` fail with context).
#![allow(dead_code)]

use std::path::Path;

use martelo_engine::{
    Action, Actor, Amount, AuctionId, AuctionSpec, Command, Currency, Description, IncrementPolicy,
    Request, RequestId, Role, Timestamp, Title, UserId,
};
use martelo_raft_store::types::Entry;
use martelo_raft_store::{GroupId, LogStore, RaftStore, Stamped, StateMachine, StoreConfig};
use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogStorageExt, RaftStateMachine};

/// A deterministic stream of auction commands: a few auctions, then bids (some too low, some
/// retried with the same request id) and early close attempts.
#[derive(Debug)]
pub struct Workload {
    rng: u64,
    auctions: u64,
    created: u64,
    next_request: u64,
    timestamp: u64,
    prices: Vec<u64>,
}

impl Workload {
    pub fn new(seed: u64, auctions: u64) -> Workload {
        Workload {
            rng: seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
            auctions,
            created: 0,
            next_request: 0,
            timestamp: 1_000_000,
            prices: vec![100; auctions as usize],
        }
    }

    fn random(&mut self) -> u64 {
        // SplitMix64: small, seeded and good enough to vary the workload.
        self.rng = self.rng.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    fn request(&mut self, user: u64, role: Role, action: Action) -> Command {
        self.next_request += 1;
        let request_id = RequestId::try_from(format!("req-{}", self.next_request))
            .expect("generated request ids are valid");
        Command::Request(Request {
            actor: Actor {
                user: UserId(user),
                role,
            },
            request_id,
            action,
        })
    }

    pub fn next_command(&mut self) -> Stamped {
        self.timestamp += 1_000;
        let command = if self.created < self.auctions {
            self.created += 1;
            let spec = AuctionSpec {
                title: Title::try_from(format!("lot {}", self.created)).expect("valid title"),
                description: Description::try_from("").expect("valid description"),
                currency: Currency::try_from("EUR").expect("valid currency"),
                starting_price: Amount(100),
                reserve_price: None,
                buy_now_price: None,
                increment: IncrementPolicy::Fixed(Amount(1)),
                start: Timestamp(self.timestamp),
                end: Timestamp(self.timestamp + 1_000_000_000_000),
                soft_close: None,
            };
            let action = Action::CreateAuction {
                auction_id: AuctionId(self.created),
                spec,
            };
            self.request(1, Role::Seller, action)
        } else {
            let roll = self.random();
            let auction = roll % self.auctions;
            let user = 2 + (roll >> 8) % 50;
            match (roll >> 16) % 64 {
                0 => Command::Close {
                    auction_id: AuctionId(auction + 1),
                },
                1..=6 if self.next_request > 1 => {
                    // A retry: same request id as an earlier request of someone.
                    let earlier = 1 + (roll >> 24) % self.next_request;
                    Command::Request(Request {
                        actor: Actor {
                            user: UserId(user),
                            role: Role::Bidder,
                        },
                        request_id: RequestId::try_from(format!("req-{earlier}"))
                            .expect("valid request id"),
                        action: Action::PlaceBid {
                            auction_id: AuctionId(auction + 1),
                            amount: Amount(self.prices[auction as usize]),
                            max: None,
                        },
                    })
                }
                step => {
                    let price = &mut self.prices[auction as usize];
                    // Mostly above the current price, sometimes below it (a rejection).
                    let amount = if step % 7 == 0 {
                        *price / 2 + 1
                    } else {
                        *price + 1 + step
                    };
                    *price = (*price).max(amount);
                    let action = Action::PlaceBid {
                        auction_id: AuctionId(auction + 1),
                        amount: Amount(amount),
                        max: None,
                    };
                    self.request(user, Role::Bidder, action)
                }
            }
        };
        Stamped {
            timestamp: Timestamp(self.timestamp),
            command,
            traceparent: None,
        }
    }

    /// Normal entries for indices `from..from + count` in `term`.
    pub fn entries(&mut self, term: u64, from: u64, count: u64) -> Vec<Entry> {
        (from..from + count)
            .map(|index| {
                let log_id =
                    openraft::testing::log_id::<martelo_raft_store::TypeConfig>(term, 1, index);
                Entry::new_normal(log_id, self.next_command())
            })
            .collect()
    }
}

pub fn test_config() -> StoreConfig {
    StoreConfig {
        snapshot_chunk_bytes: 4096,
        ..StoreConfig::default()
    }
}

pub fn must_open(path: &Path, config: StoreConfig) -> RaftStore {
    RaftStore::open(path, config).unwrap_or_else(|error| panic!("open {}: {error}", path.display()))
}

pub async fn must_group(store: &RaftStore, group: u64) -> (LogStore, StateMachine) {
    store
        .group(GroupId(group))
        .await
        .unwrap_or_else(|error| panic!("open group {group}: {error}"))
}

/// Appends and waits until the store reports the entries durable.
pub async fn must_append_durable(log: &mut LogStore, entries: Vec<Entry>) {
    let range = entries.first().map(|e| e.index())..entries.last().map(|e| e.index());
    log.blocking_append(entries)
        .await
        .unwrap_or_else(|error| panic!("append {range:?} to {}: {error}", log.group()));
}

pub async fn must_apply(state_machine: &mut StateMachine, entries: Vec<Entry>) {
    let items = entries.into_iter().map(|entry| Ok((entry, None)));
    state_machine
        .apply(futures::stream::iter(items))
        .await
        .unwrap_or_else(|error| panic!("apply to {}: {error}", state_machine.group()));
}

pub fn digest(state_machine: &StateMachine) -> martelo_engine::StateDigest {
    state_machine
        .reader()
        .read(|state, _| state.digest())
        .expect("state lock")
}
