//! Seeded generator of histories that are correct by construction, for property tests and
//! the checker benchmark.
//!
//! It simulates C clients against the sequential model: a client invokes an operation, the
//! operation takes effect atomically some time later (that instant is its linearization
//! point), and the client hears about it later still. Clients sometimes get `fail` (nothing
//! applied) or `info` (applied or not, the client cannot tell, and moves to a fresh process
//! id). The replicas' final state is built from the same applied operations, so every
//! checker must pass on the output. It uses its own small PRNG so that the same seed gives
//! the same history everywhere, with no dependency.

use std::collections::{BTreeMap, HashSet};

use crate::history::{BidRequest, Call, EventType, Output, Record, Terms, Value};
use crate::model::AuctionState;
use crate::replicas::{FinalState, LogEntry, ReplicaState};

/// SplitMix64: tiny, fast and good enough for test workloads.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (slightly biased; irrelevant for workloads). `bound` 0 gives 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    pub fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub auctions: u64,
    /// Concurrency: how many clients have an operation in flight at once, at most.
    pub clients: u64,
    /// Total operations, including one `create_auction` per auction.
    pub operations: usize,
    pub read_percent: u32,
    /// Chance per operation, in thousandths, that it is a close.
    pub close_per_mille: u32,
    pub fail_percent: u32,
    pub info_percent: u32,
    pub replicas: usize,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 1,
            auctions: 5,
            clients: 4,
            operations: 200,
            read_percent: 30,
            close_per_mille: 5,
            fail_percent: 3,
            info_percent: 3,
            replicas: 3,
        }
    }
}

impl GeneratorConfig {
    /// The history of the checker's performance requirement (checked in under a minute) and
    /// of its benchmark: 100,000 operations over 100 auctions and 10 clients, seed 7.
    pub fn hundred_thousand_operations() -> Self {
        GeneratorConfig {
            seed: 7,
            auctions: 100,
            clients: 10,
            operations: 100_000,
            close_per_mille: 1,
            ..GeneratorConfig::default()
        }
    }
}

/// A generated run: the history and the replicas' final state.
#[derive(Clone, Debug)]
pub struct Generated {
    pub records: Vec<Record>,
    pub final_state: FinalState,
}

/// An operation a client has sent. `applied` is set once it took effect: a retry of an
/// applied request is answered from the dedupe table and applies nothing again.
#[derive(Clone, Debug)]
struct Pending {
    auction: u64,
    call: Call,
    request: String,
    applied: Option<Output>,
}

#[derive(Clone, Debug)]
struct Client {
    process: u64,
    bidder: u64,
    in_flight: Option<Pending>,
    /// An operation whose outcome was unknown, to be sent again with the same request id.
    retry: Option<Pending>,
}

struct Simulation {
    rng: Rng,
    time_ns: u64,
    records: Vec<Record>,
    states: BTreeMap<u64, AuctionState>,
    logs: BTreeMap<u64, Vec<LogEntry>>,
    amounts: BTreeMap<u64, HashSet<u64>>,
    next_request: u64,
    next_process: u64,
}

fn value_of_call(call: &Call) -> Option<Value> {
    match *call {
        Call::CreateAuction(terms) => Some(Value::Terms(terms)),
        Call::Bid(bid) => Some(Value::Bid(bid)),
        Call::Read | Call::Close => None,
    }
}

fn value_of_output(output: Output) -> Option<Value> {
    match output {
        Output::Created => None,
        Output::AlreadyExists => Some(Value::AlreadyExists),
        Output::Bid { accepted } => Some(Value::BidReply { accepted }),
        Output::State(view) => Some(Value::State(view)),
        Output::Closed { outcome } => Some(Value::Closed { outcome }),
        Output::NotFound => Some(Value::NotFound),
    }
}

impl Simulation {
    fn record(
        &mut self,
        process: u64,
        event: EventType,
        auction: u64,
        call: &Call,
        request: &str,
        value: Option<Value>,
    ) {
        self.time_ns += 1 + self.rng.below(50);
        self.records.push(Record {
            index: self.records.len() as u64,
            process,
            event,
            f: call.function(),
            auction,
            request: request.to_owned(),
            value,
            time_ns: self.time_ns,
            error: None,
        });
    }

    fn invoke(&mut self, process: u64, pending: &Pending) {
        let value = value_of_call(&pending.call);
        let (auction, call) = (pending.auction, pending.call);
        self.record(
            process,
            EventType::Invoke,
            auction,
            &call,
            &pending.request,
            value,
        );
    }

    fn complete(&mut self, process: u64, pending: &Pending, event: EventType) {
        let value = match (event, pending.applied) {
            (EventType::Ok, Some(output)) => value_of_output(output),
            _ => None,
        };
        let (auction, call) = (pending.auction, pending.call);
        self.record(process, event, auction, &call, &pending.request, value);
    }

    /// The linearization point: the model and the replicas' logs move together.
    fn apply(&mut self, pending: &Pending) -> Output {
        let (auction, call, request) = (pending.auction, &pending.call, &pending.request);
        let state = self.states.entry(auction).or_default();
        let (next, output) = state.step(call);
        let was_closed = state.closed;
        *state = next;
        let log = self.logs.entry(auction).or_default();
        match (*call, output) {
            (Call::Bid(bid), Output::Bid { accepted }) => log.push(LogEntry::Bid {
                request: request.to_owned(),
                bidder: bid.bidder,
                amount: bid.amount,
                accepted,
            }),
            (Call::Close, Output::Closed { outcome }) if !was_closed => {
                log.push(LogEntry::Close { outcome });
            }
            _ => {}
        }
        output
    }

    fn next_request(&mut self) -> String {
        self.next_request += 1;
        format!("r{}", self.next_request)
    }

    fn choose_call(&mut self, config: &GeneratorConfig, auction: u64, bidder: u64) -> Call {
        if self.rng.below(1000) < u64::from(config.close_per_mille) {
            return Call::Close;
        }
        if self.rng.percent(config.read_percent) {
            return Call::Read;
        }
        let state = self.states.get(&auction).copied().unwrap_or_default();
        let terms = state.terms.unwrap_or(Terms {
            starting_price: 100,
            increment: 1,
        });
        let base = match state.top {
            Some(top) => top.amount + terms.increment,
            None => terms.starting_price,
        };
        // Some bids are too low on purpose, so rejections are exercised too.
        let mut amount = if self.rng.percent(15) {
            self.rng.below(base)
        } else {
            base + self.rng.below(3 * terms.increment + 1)
        };
        let used = self.amounts.entry(auction).or_default();
        while !used.insert(amount) {
            amount += 1;
        }
        Call::Bid(BidRequest { amount, bidder })
    }
}

/// Generates a linearizable history and a consistent final state.
pub fn generate(config: &GeneratorConfig) -> Generated {
    let mut simulation = Simulation {
        rng: Rng::new(config.seed),
        time_ns: 0,
        records: Vec::with_capacity(config.operations * 2),
        states: BTreeMap::new(),
        logs: BTreeMap::new(),
        amounts: BTreeMap::new(),
        next_request: 0,
        next_process: config.clients + 1,
    };
    // Process 0 creates every auction before the clients start.
    for auction in 1..=config.auctions {
        let terms = Terms {
            starting_price: 50 + simulation.rng.below(100),
            increment: 1 + simulation.rng.below(20),
        };
        let request = simulation.next_request();
        let mut pending = Pending {
            auction,
            call: Call::CreateAuction(terms),
            request,
            applied: None,
        };
        simulation.invoke(0, &pending);
        pending.applied = Some(simulation.apply(&pending));
        simulation.complete(0, &pending, EventType::Ok);
    }
    let mut clients: Vec<Client> = (1..=config.clients)
        .map(|process| Client {
            process,
            bidder: process,
            in_flight: None,
            retry: None,
        })
        .collect();
    let mut started = config.auctions as usize;
    while started < config.operations && !clients.is_empty() {
        let index = simulation.rng.below(clients.len() as u64) as usize;
        let client = &mut clients[index];
        let Some(mut pending) = client.in_flight.take() else {
            started += 1;
            let pending = match client.retry.take() {
                Some(retry) => retry,
                None => {
                    let auction = 1 + simulation.rng.below(config.auctions.max(1));
                    let call = simulation.choose_call(config, auction, client.bidder);
                    let request = simulation.next_request();
                    Pending {
                        auction,
                        call,
                        request,
                        applied: None,
                    }
                }
            };
            simulation.invoke(client.process, &pending);
            client.in_flight = Some(pending);
            continue;
        };
        if pending.applied.is_none() {
            let roll = simulation.rng.below(100) as u32;
            if roll < config.fail_percent {
                simulation.complete(client.process, &pending, EventType::Fail);
                continue;
            }
            if roll >= config.fail_percent + config.info_percent / 2 {
                pending.applied = Some(simulation.apply(&pending));
                client.in_flight = Some(pending);
                continue;
            }
            // Otherwise it timed out before it was applied (though a retry may apply it).
        } else if !simulation.rng.percent(config.info_percent.div_ceil(2)) {
            simulation.complete(client.process, &pending, EventType::Ok);
            continue;
        }
        // Outcome unknown: move to a fresh process, and usually retry with the same id.
        simulation.complete(client.process, &pending, EventType::Info);
        client.process = simulation.next_process;
        simulation.next_process += 1;
        if simulation.rng.percent(70) {
            client.retry = Some(pending);
        }
    }
    // Operations still in flight: complete them, or (when info is allowed) leave some without
    // a completion, which the checkers must treat as info.
    for client in &mut clients {
        let Some(mut pending) = client.in_flight.take() else {
            continue;
        };
        if config.info_percent > 0 && simulation.rng.percent(50) {
            continue;
        }
        if pending.applied.is_none() {
            pending.applied = Some(simulation.apply(&pending));
        }
        simulation.complete(client.process, &pending, EventType::Ok);
    }
    let replica = ReplicaState {
        group: None,
        digest: "generated".into(),
        auctions: simulation.logs,
    };
    let replicas = (1..=config.replicas)
        .map(|node| (format!("n{node}"), replica.clone()))
        .collect();
    Generated {
        records: simulation.records,
        final_state: FinalState { replicas },
    }
}
