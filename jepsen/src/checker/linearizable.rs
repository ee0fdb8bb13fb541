//! Per-auction linearizability of creates, bids, reads and close observations against the
//! sequential [`model`](crate::model).
//!
//! Auctions share no state, so the history is partitioned by auction and each part is
//! checked alone (linearizability is compositional); this is what keeps 100,000-operation
//! histories cheap. Each part is searched with the Wing-Gong algorithm as improved by Lowe
//! and implemented by porcupine:
//!
//! ```text
//!   events sorted by time:  call A   call B   ret A   call C   ret B   ret C
//!                             │
//!   try to linearize the first call whose op the model accepts here, lift it (and its
//!   return) out of the list, restart from the head; on reaching a return event (an op that
//!   had to come before this point but did not fit) pop the last choice and try the next.
//! ```
//!
//! Every (set of linearized operations, model state) pair is remembered, so a sub-search is
//! never repeated: two orders of the same operations that reach the same state are
//! interchangeable.
//!
//! Operation kinds:
//! - `ok`: must be linearized between its invoke and its completion, returning what it did;
//! - `fail`: definitely had no effect, so it is left out;
//! - `info`: may take effect at any time after its invoke, or never. It has no return event,
//!   so the search succeeds once every `ok` operation is placed. An `info` operation is only
//!   placed where it changes the state: placing a no-op constrains nothing, and skipping it
//!   keeps the search small. For the same reason the memo key ignores `info` operations that
//!   can never change the state again ([`AuctionState::never_changes`]).
//!
//! Events at equal times count as concurrent (calls sort before returns).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::checker::{Anomaly, StuckOperation, Verdict};
use crate::history::{Completion, Operation, Output};
use crate::model::AuctionState;

/// How many memoized states one auction's search may hold before giving up with an
/// `unknown` verdict. Each is a bitset of the auction's operations plus a model state, so
/// this bounds memory too (about 100 bytes each for a 1,000-operation auction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchLimits {
    pub states_max: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            states_max: 2_000_000,
        }
    }
}

/// How many of the last linearized operations a counterexample shows.
const PREFIX_TAIL_LEN: usize = 16;

/// Checks every auction's operations. `checked` counts the operations searched (`fail`
/// operations are excluded: they had no effect).
pub fn check(operations: &[Operation], limits: SearchLimits) -> Verdict {
    let mut verdict = Verdict::new("linearizable");
    for (auction, part) in merge_retries(operations) {
        let part: Vec<&Operation> = part.iter().collect();
        verdict.checked += part.len();
        if let Err(anomaly) = check_auction(auction, &part, limits) {
            verdict.report(*anomaly);
        }
    }
    verdict
}

/// Partitions by auction and turns every set of attempts sharing a request id into one
/// logical operation, dropping those that definitely had no effect.
///
/// Clients retry with the same request id (I9), and the system applies the request at most
/// once and answers every attempt with the first outcome (I2). So the request took effect
/// once, after the first attempt was invoked and before the first `ok` answer: the logical
/// operation spans that interval and returns that answer. With no `ok` attempt it is `info`
/// if any attempt was, and `fail` (left out) only if every attempt failed. Treating the
/// attempts as separate bids would make a correct retry look like a second, too-low bid.
/// Whether all answers agree is the `duplicate` checker's business.
fn merge_retries(operations: &[Operation]) -> BTreeMap<u64, Vec<Operation>> {
    let mut by_auction: BTreeMap<u64, Vec<Operation>> = BTreeMap::new();
    let mut position: HashMap<(u64, &str), usize> = HashMap::new();
    for operation in operations {
        let part = by_auction.entry(operation.auction).or_default();
        let key = (operation.auction, operation.request.as_str());
        let Some(&index) = position.get(&key) else {
            position.insert(key, part.len());
            part.push(operation.clone());
            continue;
        };
        let merged = &mut part[index];
        merged.invoke_ns = merged.invoke_ns.min(operation.invoke_ns);
        let earlier_ok = match (merged.completion, operation.completion) {
            (Completion::Ok(_), Completion::Ok(_)) => operation.complete_ns < merged.complete_ns,
            (_, Completion::Ok(_)) => true,
            (Completion::Fail, Completion::Info) => {
                merged.completion = Completion::Info;
                merged.complete_ns = None;
                false
            }
            _ => false,
        };
        if earlier_ok {
            merged.completion = operation.completion;
            merged.complete_ns = operation.complete_ns;
            merged.completion_index = operation.completion_index;
        }
    }
    for part in by_auction.values_mut() {
        part.retain(|operation| operation.completion != Completion::Fail);
    }
    by_auction
}

/// A doubly linked list node: one call or return event.
#[derive(Clone, Copy, Debug)]
struct Node {
    operation: usize,
    is_call: bool,
    previous: usize,
    next: usize,
    /// For a call, its return event (`END` for `info`); unused for returns.
    partner: usize,
}

const HEAD: usize = 0;
const END: usize = usize::MAX;

#[derive(Debug)]
struct EventList {
    nodes: Vec<Node>,
}

impl EventList {
    fn new(operations: &[&Operation]) -> Self {
        // (time, 0 = call / 1 = return, operation)
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(operations.len() * 2);
        for (index, operation) in operations.iter().enumerate() {
            events.push((operation.invoke_ns, 0, index));
            if operation.is_ok() {
                // `pair` guarantees an `ok` operation has a completion time.
                events.push((operation.complete_ns.unwrap_or(u64::MAX), 1, index));
            }
        }
        events.sort_unstable();
        let head = Node {
            operation: 0,
            is_call: false,
            previous: END,
            next: END,
            partner: END,
        };
        let mut nodes = vec![head];
        let mut call_node = vec![END; operations.len()];
        for (position, &(_, kind, operation)) in events.iter().enumerate() {
            let node = position + 1;
            let next = if node < events.len() { node + 1 } else { END };
            let is_call = kind == 0;
            nodes.push(Node {
                operation,
                is_call,
                previous: node - 1,
                next,
                partner: END,
            });
            if is_call {
                call_node[operation] = node;
            } else {
                nodes[call_node[operation]].partner = node;
            }
        }
        nodes[HEAD].next = if events.is_empty() { END } else { 1 };
        EventList { nodes }
    }

    fn unlink(&mut self, node: usize) {
        let Node { previous, next, .. } = self.nodes[node];
        self.nodes[previous].next = next;
        if next != END {
            self.nodes[next].previous = previous;
        }
    }

    fn relink(&mut self, node: usize) {
        let Node { previous, next, .. } = self.nodes[node];
        self.nodes[previous].next = node;
        if next != END {
            self.nodes[next].previous = node;
        }
    }

    /// Removes a call and its return. [`Self::unlift`] must undo lifts in reverse order.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let partner = self.nodes[call].partner;
        if partner != END {
            self.unlink(partner);
        }
    }

    fn unlift(&mut self, call: usize) {
        let partner = self.nodes[call].partner;
        if partner != END {
            self.relink(partner);
        }
        self.relink(call);
    }
}

/// The set of linearized operations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(bits: usize) -> Self {
        Bitset(vec![0; bits.div_ceil(64)])
    }
    fn set(&mut self, bit: usize) {
        self.0[bit / 64] |= 1 << (bit % 64);
    }
    fn clear(&mut self, bit: usize) {
        self.0[bit / 64] &= !(1 << (bit % 64));
    }
}

/// The deepest point the search reached, kept for the counterexample.
#[derive(Debug, Default)]
struct Deepest {
    depth: usize,
    tail: Vec<usize>,
    state: AuctionState,
    frontier: Vec<usize>,
}

fn check_auction(
    auction: u64,
    operations: &[&Operation],
    limits: SearchLimits,
) -> Result<(), Box<Anomaly>> {
    let expected = expected_of(operations);
    let info: Vec<usize> = (0..operations.len())
        .filter(|&i| expected[i].is_none())
        .collect();
    let mut list = EventList::new(operations);
    let mut remaining_ok = operations.len() - info.len();
    let mut state = AuctionState::default();
    let mut linearized = Bitset::new(operations.len());
    let mut cache: HashSet<(Bitset, AuctionState)> = HashSet::new();
    // (call node linearized, state before it)
    let mut stack: Vec<(usize, AuctionState)> = Vec::new();
    let mut deepest = Deepest::default();
    let mut entry = list.nodes[HEAD].next;

    loop {
        if remaining_ok == 0 {
            return Ok(());
        }
        if entry != END && list.nodes[entry].is_call {
            let index = list.nodes[entry].operation;
            let (next, output) = state.step(&operations[index].call);
            let fits = match expected[index] {
                Some(expected) => expected == output,
                None => next != state,
            };
            if fits {
                linearized.set(index);
                if cache.insert(memo_key(&linearized, next, &info, operations)) {
                    if cache.len() > limits.states_max {
                        return Err(Box::new(Anomaly::SearchBudgetExceeded {
                            auction,
                            operations: operations.len(),
                            states_max: limits.states_max,
                        }));
                    }
                    stack.push((entry, state));
                    state = next;
                    list.lift(entry);
                    if expected[index].is_some() {
                        remaining_ok -= 1;
                    }
                    if stack.len() > deepest.depth {
                        deepest = record_deepest(&list, &stack, state, &expected);
                    }
                    entry = list.nodes[HEAD].next;
                    continue;
                }
                linearized.clear(index);
            }
            entry = list.nodes[entry].next;
        } else {
            // A return event: its operation should have been linearized by now and was not;
            // or the end of the list: nothing left to try here. Undo the last choice.
            let Some((call, previous)) = stack.pop() else {
                return Err(Box::new(counterexample(
                    auction, operations, &list, &deepest,
                )));
            };
            let index = list.nodes[call].operation;
            list.unlift(call);
            linearized.clear(index);
            if expected[index].is_some() {
                remaining_ok += 1;
            }
            state = previous;
            entry = list.nodes[call].next;
        }
    }
}

/// The memo key. `info` operations that can never change the state again are dropped from
/// the set: whether one of them was placed earlier makes no difference to what can follow.
fn memo_key(
    linearized: &Bitset,
    state: AuctionState,
    info: &[usize],
    operations: &[&Operation],
) -> (Bitset, AuctionState) {
    let mut key = linearized.clone();
    for &index in info {
        if state.never_changes(&operations[index].call) {
            key.clear(index);
        }
    }
    (key, state)
}

fn record_deepest(
    list: &EventList,
    stack: &[(usize, AuctionState)],
    state: AuctionState,
    expected: &[Option<Output>],
) -> Deepest {
    let start = stack.len().saturating_sub(PREFIX_TAIL_LEN);
    let tail = stack[start..]
        .iter()
        .map(|&(node, _)| list.nodes[node].operation)
        .collect();
    // The completed operations invoked before the earliest pending completion: one of them
    // had to come next.
    let mut frontier = Vec::new();
    let mut node = list.nodes[HEAD].next;
    while node != END && list.nodes[node].is_call {
        let index = list.nodes[node].operation;
        if expected[index].is_some() {
            frontier.push(index);
        }
        node = list.nodes[node].next;
    }
    frontier.sort_unstable();
    Deepest {
        depth: stack.len(),
        tail,
        state,
        frontier,
    }
}

fn counterexample(
    auction: u64,
    operations: &[&Operation],
    list: &EventList,
    deepest: &Deepest,
) -> Anomaly {
    let start;
    let deepest = if deepest.depth == 0 {
        // Not even the first operation fit: the frontier is the start of the history (the
        // search has undone every choice, so the list is whole again).
        let expected = expected_of(operations);
        start = record_deepest(list, &[], AuctionState::default(), &expected);
        &start
    } else {
        deepest
    };
    let stuck = deepest
        .frontier
        .iter()
        .map(|&index| StuckOperation {
            operation: operations[index].clone(),
            model_returns: deepest.state.step(&operations[index].call).1,
        })
        .collect();
    Anomaly::NotLinearizable {
        auction,
        operations: operations.len(),
        longest_prefix: deepest.depth,
        prefix_tail: deepest
            .tail
            .iter()
            .map(|&index| operations[index].clone())
            .collect(),
        state_after_prefix: deepest.state,
        stuck,
    }
}

fn expected_of(operations: &[&Operation]) -> Vec<Option<Output>> {
    operations
        .iter()
        .map(|operation| match operation.completion {
            Completion::Ok(output) => Some(output),
            Completion::Fail | Completion::Info => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Validity;
    use crate::checker::test_support::{TERMS, bid, create, op};
    use crate::generate::{GeneratorConfig, Rng, generate};
    use crate::history::{AuctionView, BidRequest, Call, CloseOutcome, TopBid, pair};

    fn read(
        process: u64,
        price: Option<u64>,
        leader: Option<u64>,
        invoke: u64,
        complete: u64,
    ) -> Operation {
        let view = AuctionView {
            price,
            leader,
            closed: false,
            outcome: None,
        };
        op(
            process,
            Call::Read,
            Completion::Ok(Output::State(view)),
            invoke,
            Some(complete),
        )
    }

    fn info_bid(process: u64, amount: u64, invoke: u64) -> Operation {
        let call = Call::Bid(BidRequest {
            amount,
            bidder: process,
        });
        op(process, call, Completion::Info, invoke, None)
    }

    fn verdict(history: &[Operation]) -> Verdict {
        check(history, SearchLimits::default())
    }

    #[test]
    fn sequential_bids_and_reads_are_linearizable() {
        let history = [
            create(0, 1),
            bid(1, 100, true, 2, 3),
            read(2, Some(100), Some(1), 4, 5),
            bid(2, 105, false, 6, 7),
            bid(2, 110, true, 8, 9),
            read(1, Some(110), Some(2), 10, 11),
        ];
        let verdict = verdict(&history);
        assert_eq!(verdict.validity, Validity::Valid, "{verdict:?}");
        assert_eq!(verdict.checked, 6);
    }

    #[test]
    fn stale_read_after_an_acknowledged_bid_is_not_linearizable() {
        // The read starts after the bid was acknowledged but does not see it (I8).
        let history = [
            create(0, 1),
            bid(1, 100, true, 2, 3),
            read(2, None, None, 4, 5),
        ];
        let verdict = verdict(&history);
        assert_eq!(verdict.validity, Validity::Invalid);
        let [
            Anomaly::NotLinearizable {
                longest_prefix,
                stuck,
                ..
            },
        ] = &verdict.anomalies[..]
        else {
            panic!("{verdict:?}");
        };
        assert_eq!(*longest_prefix, 2);
        assert_eq!(stuck.len(), 1);
        let expected = AuctionView {
            price: Some(100),
            leader: Some(1),
            closed: false,
            outcome: None,
        };
        assert_eq!(stuck[0].model_returns, Output::State(expected));
    }

    #[test]
    fn read_concurrent_with_a_bid_may_see_either_state() {
        for seen in [None, Some(100)] {
            let history = [
                create(0, 1),
                bid(1, 100, true, 2, 6),
                read(2, seen, seen.map(|_| 1), 3, 5),
            ];
            assert!(verdict(&history).is_valid(), "read saw {seen:?}");
        }
    }

    #[test]
    fn concurrent_pair_is_linearizable_only_in_the_order_that_fits() {
        // 100 then 120 both accepted: only "100 first" works (120 first would make 100 too
        // low). Both orders are allowed by real time since the bids overlap.
        let valid = [
            create(0, 1),
            bid(1, 120, true, 2, 5),
            bid(2, 100, true, 3, 4),
        ];
        assert!(verdict(&valid).is_valid());
        // If 120 completed before 100 was invoked, the only order left is wrong.
        let invalid = [
            create(0, 1),
            bid(1, 120, true, 2, 3),
            bid(2, 100, true, 4, 5),
        ];
        assert_eq!(verdict(&invalid).validity, Validity::Invalid);
    }

    #[test]
    fn acknowledged_bid_below_the_increment_is_not_linearizable() {
        let history = [
            create(0, 1),
            bid(1, 100, true, 2, 3),
            bid(2, 105, true, 4, 5),
        ];
        assert_eq!(verdict(&history).validity, Validity::Invalid);
        assert_eq!(TERMS.increment, 10);
    }

    #[test]
    fn info_bid_that_must_have_happened_explains_a_later_read() {
        // The client timed out, but a later read shows its bid: valid only because an info
        // operation may have taken effect.
        let history = [
            create(0, 1),
            info_bid(1, 150, 2),
            read(2, Some(150), Some(1), 10, 11),
        ];
        assert!(verdict(&history).is_valid());
        // The same read with the bid marked failed cannot be explained.
        let mut failed = info_bid(1, 150, 2);
        failed.completion = Completion::Fail;
        failed.complete_ns = Some(3);
        let history = [create(0, 1), failed, read(2, Some(150), Some(1), 10, 11)];
        assert_eq!(verdict(&history).validity, Validity::Invalid);
    }

    #[test]
    fn retry_with_the_same_request_id_is_one_bid() {
        // The first attempt timed out but was applied; the retry gets the stored answer.
        // As two separate bids of 150 the second would be too low and rejected.
        let mut retry = bid(5, 150, true, 4, 6);
        let first = info_bid(1, 150, 2);
        retry.request = first.request.clone();
        let history = [
            create(0, 1),
            first,
            retry,
            read(2, Some(150), Some(1), 7, 8),
        ];
        assert!(verdict(&history).is_valid(), "{:?}", verdict(&history));
        // A failed attempt followed by an acknowledged one: effective within the retry.
        let mut failed = info_bid(1, 150, 2);
        failed.completion = Completion::Fail;
        failed.complete_ns = Some(3);
        let mut retry = bid(5, 150, true, 4, 6);
        retry.request = failed.request.clone();
        let history = [create(0, 1), failed, retry];
        assert!(verdict(&history).is_valid());
    }

    #[test]
    fn info_bid_may_also_never_happen() {
        let history = [
            create(0, 1),
            info_bid(1, 150, 2),
            read(2, None, None, 10, 11),
        ];
        assert!(verdict(&history).is_valid());
    }

    #[test]
    fn info_bid_cannot_take_effect_before_its_invoke() {
        let history = [
            create(0, 1),
            read(2, Some(150), Some(1), 2, 3),
            info_bid(1, 150, 4),
        ];
        assert_eq!(verdict(&history).validity, Validity::Invalid);
    }

    #[test]
    fn bid_accepted_after_an_observed_close_is_not_linearizable() {
        let closed = Output::Closed {
            outcome: CloseOutcome::Sold(TopBid {
                amount: 100,
                bidder: 1,
            }),
        };
        let history = [
            create(0, 1),
            bid(1, 100, true, 2, 3),
            op(9, Call::Close, Completion::Ok(closed), 4, Some(5)),
            bid(2, 200, true, 6, 7),
        ];
        assert_eq!(verdict(&history).validity, Validity::Invalid);
    }

    #[test]
    fn bids_before_creation_are_rejected_by_the_model() {
        let history = [bid(1, 100, true, 0, 1), create(2, 3)];
        assert_eq!(verdict(&history).validity, Validity::Invalid);
        let history = [bid(1, 100, false, 0, 1), create(2, 3)];
        assert!(verdict(&history).is_valid());
    }

    #[test]
    fn auctions_are_checked_independently() {
        let mut other = bid(1, 100, true, 2, 3);
        other.auction = 2;
        let mut other_create = create(0, 1);
        other_create.auction = 2;
        let mut broken = read(2, Some(999), Some(1), 4, 5);
        broken.auction = 2;
        let history = [
            create(0, 1),
            other_create,
            other,
            broken,
            bid(3, 100, true, 2, 3),
        ];
        let verdict = verdict(&history);
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::NotLinearizable { auction: 2, .. }]
        ));
    }

    #[test]
    fn exhausted_budget_is_unknown_not_invalid() {
        let history = [
            create(0, 1),
            bid(1, 100, true, 2, 3),
            bid(2, 110, true, 4, 5),
        ];
        let verdict = check(&history, SearchLimits { states_max: 1 });
        assert_eq!(verdict.validity, Validity::Unknown);
    }

    fn generated(seed: u64, clients: u64, fail_percent: u32, info_percent: u32) -> Vec<Operation> {
        let config = GeneratorConfig {
            seed,
            clients,
            fail_percent,
            info_percent,
            operations: 150,
            auctions: 3,
            ..GeneratorConfig::default()
        };
        pair(&generate(&config).records).expect("generated histories pair")
    }

    #[test]
    fn generated_sequential_histories_are_linearizable() {
        for seed in 0..100 {
            let verdict = verdict(&generated(seed, 1, 5, 0));
            assert!(verdict.is_valid(), "seed {seed}: {verdict:?}");
        }
    }

    #[test]
    fn generated_concurrent_histories_with_info_are_linearizable() {
        for seed in 0..100 {
            let verdict = verdict(&generated(seed, 6, 5, 10));
            assert!(verdict.is_valid(), "seed {seed}: {verdict:?}");
        }
    }

    /// Changes one acknowledged result to something the system could not have returned.
    fn mutate(operation: &mut Operation, rng: &mut Rng) -> bool {
        let Completion::Ok(output) = &mut operation.completion else {
            return false;
        };
        match output {
            Output::Bid { accepted } => *accepted = !*accepted,
            Output::State(view) => match rng.below(3) {
                0 => view.price = Some(view.price.map_or(1, |price| price + 1)),
                1 => view.closed = !view.closed,
                _ => view.leader = Some(view.leader.map_or(1, |leader| leader + 1_000)),
            },
            Output::Closed { outcome } => {
                *outcome = match outcome {
                    CloseOutcome::Unsold => CloseOutcome::Sold(TopBid {
                        amount: 1,
                        bidder: 1,
                    }),
                    CloseOutcome::Sold(_) => CloseOutcome::Unsold,
                }
            }
            Output::Created | Output::AlreadyExists | Output::NotFound => return false,
        }
        true
    }

    #[test]
    fn mutating_one_acknowledged_result_of_a_sequential_history_fails() {
        // In a sequential history without info operations there is exactly one order, and
        // the model is deterministic, so any other answer must be caught.
        let mut rng = Rng::new(99);
        let mut mutated = 0;
        for seed in 0..100 {
            let mut history = generated(seed, 1, 5, 0);
            let target = rng.below(history.len() as u64) as usize;
            if !mutate(&mut history[target], &mut rng) {
                continue;
            }
            mutated += 1;
            let verdict = verdict(&history);
            assert_eq!(
                verdict.validity,
                Validity::Invalid,
                "seed {seed}, op {target}"
            );
        }
        assert!(mutated > 50, "too few mutations exercised: {mutated}");
    }
}
