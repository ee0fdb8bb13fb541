//! The checkers. Each takes the paired history and/or the replicas' final state and returns a
//! [`Verdict`]: valid, invalid (with the anomalies found, each a counterexample) or unknown
//! (the checker ran out of budget).
//!
//! | checker          | invariant | input                          |
//! |------------------|-----------|--------------------------------|
//! | [`linearizable`] | I3, I4, I8 | history                       |
//! | [`lost`]         | I1        | history + final state          |
//! | [`duplicate`]    | I2        | history + final state          |
//! | [`close`]        | I4        | history + final state          |
//! | [`digest`]       | I5        | node -> digest                 |
//! | [`sink`]         | I6        | `sink.json` (runs with `--sink`) |
//!
//! A new checker gets its own module here, its anomalies as variants of [`Anomaly`], and a
//! line in [`check_all`]. Every checker has tests showing it fails on a planted anomaly.
//! The sink checker is the exception to the line in [`check_all`]: it judges only runs with
//! a sink, so the runner adds its verdict ([`Report::push`]) when `sink.json` exists.

pub mod close;
pub mod digest;
pub mod duplicate;
pub mod linearizable;
pub mod lost;
pub mod sink;

use serde::Serialize;

use crate::history::{Amount, AuctionId, CloseOutcome, Operation, Output};
use crate::model::AuctionState;
use crate::replicas::FinalState;

/// At most this many anomalies are kept per verdict; the rest are only counted, so a badly
/// broken run still produces a readable summary.
pub const ANOMALIES_MAX: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    Valid,
    Invalid,
    /// The checker gave up (search budget exhausted); neither a pass nor a failure.
    Unknown,
}

/// One checker's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub checker: &'static str,
    pub validity: Validity,
    /// How many items (operations, auctions, replicas) the checker examined.
    pub checked: usize,
    pub anomalies: Vec<Anomaly>,
    /// Including those beyond [`ANOMALIES_MAX`] that were not kept.
    pub anomalies_total: usize,
}

impl Verdict {
    pub(crate) fn new(checker: &'static str) -> Self {
        Verdict {
            checker,
            validity: Validity::Valid,
            checked: 0,
            anomalies: vec![],
            anomalies_total: 0,
        }
    }

    pub(crate) fn report(&mut self, anomaly: Anomaly) {
        if anomaly.is_failure() {
            self.validity = Validity::Invalid;
        } else if self.validity == Validity::Valid {
            self.validity = Validity::Unknown;
        }
        self.anomalies_total += 1;
        if self.anomalies.len() < ANOMALIES_MAX {
            self.anomalies.push(anomaly);
        }
    }

    pub fn is_valid(&self) -> bool {
        self.validity == Validity::Valid
    }
}

/// An operation the linearizability search could not place next, with what the model would
/// have returned at that point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StuckOperation {
    pub operation: Operation,
    pub model_returns: Output,
}

/// Everything a checker can find wrong. Each variant is a self-contained counterexample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Anomaly {
    /// No order of the auction's operations agrees with the model and with real time.
    NotLinearizable {
        auction: AuctionId,
        operations: usize,
        /// The most operations any attempted order managed to explain.
        longest_prefix: usize,
        /// The last operations of that order (up to 16), oldest first.
        prefix_tail: Vec<Operation>,
        state_after_prefix: AuctionState,
        /// The completed operations that had to come next (they were invoked before the
        /// earliest pending completion), none of which the model could explain.
        stuck: Vec<StuckOperation>,
    },
    /// The search hit its budget before deciding: the verdict is unknown, not a failure.
    SearchBudgetExceeded {
        auction: AuctionId,
        operations: usize,
        states_max: usize,
    },
    /// A bid acknowledged as accepted is missing from (or rejected in) a replica's log.
    LostBid {
        replica: String,
        auction: AuctionId,
        request: String,
        amount: Amount,
        /// What the replica has under that request id, if anything.
        found: Option<crate::replicas::LogEntry>,
    },
    /// A request id applied more than once in one replica's log.
    DoubleApply {
        replica: String,
        auction: AuctionId,
        request: String,
        count: usize,
    },
    /// The same request id was answered with different outcomes (history line numbers).
    ConflictingOutcomes {
        request: String,
        lines: Vec<u64>,
        outcomes: Vec<Output>,
    },
    /// The client was told one thing, the log says another.
    AckDisagreesWithLog {
        replica: String,
        auction: AuctionId,
        request: String,
        acknowledged_accepted: bool,
        logged_accepted: bool,
    },
    /// A request id whose bid payload differs between the history and a replica's log.
    LogPayloadDiffers {
        replica: String,
        auction: AuctionId,
        request: String,
    },
    /// A closed auction with more than one close entry.
    MultipleCloses {
        replica: String,
        auction: AuctionId,
        count: usize,
    },
    /// A bid accepted after the auction's close, in log order.
    BidAcceptedAfterClose {
        replica: String,
        auction: AuctionId,
        request: String,
        amount: Amount,
    },
    /// A bid acknowledged as accepted that was invoked after a client had already seen the
    /// auction closed.
    BidAcknowledgedAfterObservedClose {
        auction: AuctionId,
        bid_line: u64,
        close_line: u64,
    },
    /// The recorded outcome is not the highest accepted bid before the close.
    WrongOutcome {
        replica: String,
        auction: AuctionId,
        recorded: CloseOutcome,
        expected: CloseOutcome,
    },
    /// Replicas disagree on an auction's outcome (or on whether it closed).
    OutcomeDisagreement {
        auction: AuctionId,
        outcomes: Vec<(String, Option<CloseOutcome>)>,
    },
    /// A client observed an outcome that differs from the replicas' agreed one.
    ObservedOutcomeDiffers {
        auction: AuctionId,
        line: u64,
        observed: CloseOutcome,
        logged: Option<CloseOutcome>,
    },
    /// Replicas' digests differ: (digest, nodes holding it).
    DigestMismatch { groups: Vec<(String, Vec<String>)> },
    /// There is nothing to compare (no replicas were collected).
    NoReplicas,
    /// These replicas reported no digest (a node without digest support): the digest
    /// verdict is unknown, not valid.
    DigestUnavailable { replicas: Vec<String> },
    /// The sink did not copy everything committed in time: (group, commit index to reach,
    /// cursor found) for each group behind.
    SinkNotCaughtUp {
        reason: String,
        groups: Vec<(u64, u64, Option<u64>)>,
    },
    /// Postgres and the Raft state could not be compared.
    SinkUnchecked { reason: String },
    /// The sink was on, but there was no row to compare: nothing was written.
    SinkEmpty { auctions: usize },
    /// Postgres differs from the Raft state: a row Raft lacks, a duplicate, a missing row
    /// or a wrong value.
    SinkDiffers { difference: String },
}

impl Anomaly {
    /// Whether this anomaly breaks an invariant (as opposed to "could not decide").
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            Anomaly::SearchBudgetExceeded { .. } | Anomaly::DigestUnavailable { .. }
        )
    }
}

/// All verdicts of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub verdicts: Vec<Verdict>,
}

impl Report {
    /// Adds the verdict of a checker that only some runs have (the sink checker).
    pub fn push(&mut self, verdict: Verdict) {
        self.verdicts.push(verdict);
    }

    /// True when every checker passed; an unknown verdict is not a pass.
    pub fn is_valid(&self) -> bool {
        self.verdicts.iter().all(Verdict::is_valid)
    }
}

/// Runs every checker.
pub fn check_all(
    operations: &[Operation],
    final_state: &FinalState,
    limits: linearizable::SearchLimits,
) -> Report {
    Report {
        verdicts: vec![
            linearizable::check(operations, limits),
            lost::check(operations, final_state),
            duplicate::check(operations, final_state),
            close::check(operations, final_state),
            digest::check_groups(final_state),
        ],
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders for small hand-written histories.

    use crate::history::{BidRequest, Call, Completion, Operation, Output, Terms};
    use crate::replicas::{FinalState, LogEntry, ReplicaState};

    pub const TERMS: Terms = Terms {
        starting_price: 100,
        increment: 10,
    };

    /// An operation on auction 1 by `process`, over `[invoke, complete]` (`None`: info).
    pub fn op(
        process: u64,
        call: Call,
        completion: Completion,
        invoke: u64,
        complete: Option<u64>,
    ) -> Operation {
        Operation {
            process,
            auction: 1,
            request: format!("p{process}-t{invoke}"),
            call,
            completion,
            invoke_index: invoke,
            completion_index: complete,
            invoke_ns: invoke,
            complete_ns: complete,
        }
    }

    pub fn create(invoke: u64, complete: u64) -> Operation {
        op(
            0,
            Call::CreateAuction(TERMS),
            Completion::Ok(Output::Created),
            invoke,
            Some(complete),
        )
    }

    pub fn bid(process: u64, amount: u64, accepted: bool, invoke: u64, complete: u64) -> Operation {
        let call = Call::Bid(BidRequest {
            amount,
            bidder: process,
        });
        op(
            process,
            call,
            Completion::Ok(Output::Bid { accepted }),
            invoke,
            Some(complete),
        )
    }

    /// A bid as a replica logged it.
    pub fn logged(request: &str, bidder: u64, amount: u64, accepted: bool) -> LogEntry {
        LogEntry::Bid {
            request: request.into(),
            bidder,
            amount,
            accepted,
        }
    }

    /// The final state of whole-node replicas, named by `logs`, each holding its entries
    /// for auction 1.
    pub fn replicas(logs: &[(&str, Vec<LogEntry>)]) -> FinalState {
        let replicas = logs
            .iter()
            .map(|(node, entries)| {
                let state = ReplicaState {
                    group: None,
                    digest: "d".into(),
                    auctions: [(1, entries.clone())].into(),
                };
                ((*node).to_owned(), state)
            })
            .collect();
        FinalState { replicas }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{GeneratorConfig, generate};
    use crate::history::{Completion, Operation, pair};
    use crate::replicas::LogEntry;

    fn run(seed: u64) -> (Vec<Operation>, FinalState) {
        let config = GeneratorConfig {
            seed,
            operations: 300,
            ..GeneratorConfig::default()
        };
        let generated = generate(&config);
        let operations = pair(&generated.records).expect("generated histories pair");
        (operations, generated.final_state)
    }

    fn failing(operations: &[Operation], final_state: &FinalState) -> Vec<&'static str> {
        let report = check_all(
            operations,
            final_state,
            linearizable::SearchLimits::default(),
        );
        report
            .verdicts
            .iter()
            .filter(|verdict| !verdict.is_valid())
            .map(|v| v.checker)
            .collect()
    }

    fn is_request(entry: &LogEntry, wanted: &str) -> bool {
        matches!(entry, LogEntry::Bid { request, .. } if request == wanted)
    }

    fn first_acknowledged_bid(operations: &[Operation]) -> &Operation {
        operations
            .iter()
            .find(|operation| operation.bid_accepted() == Some(true))
            .expect("some")
    }

    #[test]
    fn generated_runs_pass_every_checker() {
        for seed in 0..20 {
            let (operations, final_state) = run(seed);
            assert_eq!(
                failing(&operations, &final_state),
                Vec::<&str>::new(),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn planted_lost_write_is_caught() {
        let (operations, mut final_state) = run(1);
        let acknowledged = first_acknowledged_bid(&operations);
        let replica = final_state.replicas.values_mut().next().expect("replicas");
        let log = replica
            .auctions
            .get_mut(&acknowledged.auction)
            .expect("auction");
        log.retain(|entry| !is_request(entry, &acknowledged.request));
        assert_eq!(failing(&operations, &final_state), vec!["lost"]);
    }

    #[test]
    fn planted_double_apply_is_caught() {
        let (operations, mut final_state) = run(2);
        let acknowledged = first_acknowledged_bid(&operations);
        for replica in final_state.replicas.values_mut() {
            let log = replica
                .auctions
                .get_mut(&acknowledged.auction)
                .expect("auction");
            let position = log
                .iter()
                .position(|entry| is_request(entry, &acknowledged.request))
                .expect("logged");
            let entry = log[position].clone();
            log.insert(position + 1, entry);
        }
        assert_eq!(failing(&operations, &final_state), vec!["duplicate"]);
    }

    #[test]
    fn planted_bid_after_close_is_caught() {
        let (operations, mut final_state) = run(3);
        for replica in final_state.replicas.values_mut() {
            let log = replica.auctions.values_mut().next().expect("auction");
            log.push(LogEntry::Close {
                outcome: crate::history::CloseOutcome::Unsold,
            });
            log.push(LogEntry::Bid {
                request: "planted".into(),
                bidder: 1,
                amount: u64::MAX,
                accepted: true,
            });
        }
        assert!(failing(&operations, &final_state).contains(&"close"));
    }

    #[test]
    fn planted_stale_read_is_caught_only_by_linearizability() {
        let (mut operations, final_state) = run(4);
        let read = operations
            .iter_mut()
            .rev()
            .find(|operation| {
                matches!(operation.completion, Completion::Ok(Output::State(view))
                    if view.price.is_some() && !view.closed)
            })
            .expect("a read that saw a price");
        if let Completion::Ok(Output::State(view)) = &mut read.completion {
            view.price = None;
            view.leader = None;
        }
        assert_eq!(failing(&operations, &final_state), vec!["linearizable"]);
    }

    #[test]
    fn planted_diverged_replica_is_caught() {
        let (operations, mut final_state) = run(5);
        let replica = final_state.replicas.values_mut().next().expect("replicas");
        replica.digest = "diverged".into();
        assert_eq!(failing(&operations, &final_state), vec!["digest"]);
    }
}

#[cfg(test)]
mod readme_example {
    use super::*;
    use crate::history::{ReadLimits, pair, read_history};

    #[test]
    fn readme_example_history_reads_pairs_and_is_linearizable() {
        // Keeps the documented format honest: the README's example must parse and pass.
        let readme = include_str!("../../README.md");
        let lines: Vec<&str> = readme
            .lines()
            .filter(|line| line.starts_with("{\"index\""))
            .collect();
        assert_eq!(lines.len(), 8);
        let text = lines.join("\n");
        let records = read_history(text.as_bytes(), ReadLimits::default()).expect("reads");
        let operations = pair(&records).expect("pairs");
        let verdict = linearizable::check(&operations, linearizable::SearchLimits::default());
        assert!(verdict.is_valid(), "{verdict:?}");
    }
}

#[cfg(test)]
mod corrupted_input {
    use super::*;
    use crate::generate::{GeneratorConfig, Rng, generate};
    use crate::history::{HistoryWriter, ReadLimits, pair, read_history};

    #[test]
    fn corrupted_histories_give_errors_or_verdicts_never_panics() {
        let generated = generate(&GeneratorConfig {
            operations: 60,
            ..GeneratorConfig::default()
        });
        let mut writer = HistoryWriter::new(Vec::new(), ReadLimits::default());
        for record in generated.records {
            writer.append(record).expect("fits");
        }
        let clean = writer.into_inner();
        let mut rng = Rng::new(5);
        for _ in 0..300 {
            let mut bytes = clean.clone();
            for _ in 0..1 + rng.below(3) {
                let position = rng.below(bytes.len() as u64) as usize;
                bytes[position] = b"0123456789{}\":,\nx-"[rng.below(18) as usize];
            }
            let Ok(records) = read_history(&bytes[..], ReadLimits::default()) else {
                continue;
            };
            let Ok(operations) = pair(&records) else {
                continue;
            };
            let limits = linearizable::SearchLimits {
                states_max: 100_000,
            };
            let _report = check_all(&operations, &generated.final_state, limits);
        }
    }
}
