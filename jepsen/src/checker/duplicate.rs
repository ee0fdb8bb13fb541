//! No request is applied twice (I2), and one request id has one outcome.
//!
//! Three views are compared: each replica's log (a request id may appear once), the
//! completions in the history (every `ok` answer for one request id must agree, since a retry
//! returns the stored first outcome), and the two against each other (a bid the client was
//! told was rejected must not be accepted in the log, and the log's payload under a request
//! id must be the bid the client sent). A bid acknowledged as accepted but missing from the
//! log is the `lost` checker's business.

use std::collections::{BTreeMap, HashMap};

use crate::checker::{Anomaly, Verdict};
use crate::history::{Operation, Output};
use crate::replicas::{FinalState, LogEntry};

pub fn check(operations: &[Operation], final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("duplicate");
    if final_state.replicas.is_empty() {
        verdict.report(Anomaly::NoReplicas);
        return verdict;
    }
    check_history(operations, &mut verdict);
    for (replica, state) in &final_state.replicas {
        // (auction, request) -> entries under it, in log order.
        let mut logged: BTreeMap<(u64, &str), Vec<&LogEntry>> = BTreeMap::new();
        for (&auction, entries) in &state.auctions {
            for entry in entries {
                if let LogEntry::Bid { request, .. } = entry {
                    logged
                        .entry((auction, request.as_str()))
                        .or_default()
                        .push(entry);
                }
            }
        }
        for (&(auction, request), entries) in &logged {
            verdict.checked += 1;
            if entries.len() > 1 {
                verdict.report(Anomaly::DoubleApply {
                    replica: replica.clone(),
                    auction,
                    request: request.to_owned(),
                    count: entries.len(),
                });
            }
        }
        for operation in operations {
            let (Some(acknowledged), Some(bid)) = (operation.bid_accepted(), operation.bid())
            else {
                continue;
            };
            let key = (operation.auction, operation.request.as_str());
            let Some(entries) = logged.get(&key) else {
                continue;
            };
            for entry in entries {
                let LogEntry::Bid {
                    bidder,
                    amount,
                    accepted,
                    ..
                } = **entry
                else {
                    continue;
                };
                if bidder != bid.bidder || amount != bid.amount {
                    verdict.report(Anomaly::LogPayloadDiffers {
                        replica: replica.clone(),
                        auction: operation.auction,
                        request: operation.request.clone(),
                    });
                } else if !acknowledged && accepted {
                    verdict.report(Anomaly::AckDisagreesWithLog {
                        replica: replica.clone(),
                        auction: operation.auction,
                        request: operation.request.clone(),
                        acknowledged_accepted: acknowledged,
                        logged_accepted: accepted,
                    });
                }
            }
        }
    }
    verdict
}

/// Every `ok` answer for one (auction, request id) must be the same.
fn check_history(operations: &[Operation], verdict: &mut Verdict) {
    let mut answers: HashMap<(u64, &str), Vec<(u64, Output)>> = HashMap::new();
    for operation in operations {
        let answer = (operation.completion_index, operation.bid_accepted());
        if let (Some(line), Some(accepted)) = answer {
            let key = (operation.auction, operation.request.as_str());
            answers
                .entry(key)
                .or_default()
                .push((line + 1, Output::Bid { accepted }));
        }
    }
    let mut conflicts: Vec<_> = answers
        .into_iter()
        .filter(|(_, seen)| seen.iter().any(|&(_, output)| output != seen[0].1))
        .collect();
    // HashMap order is arbitrary; sort so the report is the same on every run.
    conflicts.sort_unstable_by_key(|(_, seen)| seen[0].0);
    for ((_, request), seen) in conflicts {
        verdict.report(Anomaly::ConflictingOutcomes {
            request: request.to_owned(),
            lines: seen.iter().map(|&(line, _)| line).collect(),
            outcomes: seen.iter().map(|&(_, output)| output).collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Validity;
    use crate::checker::test_support::{bid, create, logged, replicas};

    fn one_replica(entries: Vec<LogEntry>) -> FinalState {
        replicas(&[("n1", entries)])
    }

    #[test]
    fn each_request_applied_once_passes() {
        let history = [
            create(0, 1),
            bid(1, 100, true, 2, 3),
            bid(2, 105, false, 4, 5),
        ];
        let log = vec![
            logged("p1-t2", 1, 100, true),
            logged("p2-t4", 2, 105, false),
        ];
        let verdict = check(&history, &one_replica(log));
        assert_eq!(verdict.validity, Validity::Valid, "{verdict:?}");
    }

    #[test]
    fn request_applied_twice_is_a_double_apply() {
        let history = [create(0, 1), bid(1, 100, true, 2, 3)];
        let log = vec![logged("p1-t2", 1, 100, true), logged("p1-t2", 1, 100, true)];
        let verdict = check(&history, &one_replica(log));
        assert_eq!(verdict.validity, Validity::Invalid);
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::DoubleApply { count: 2, .. }]
        ));
    }

    #[test]
    fn retry_answered_differently_is_a_conflict() {
        let first = bid(1, 100, true, 2, 3);
        let mut retry = bid(1, 100, false, 6, 7);
        retry.request = first.request.clone();
        let history = [create(0, 1), first, retry];
        let verdict = check(&history, &one_replica(vec![logged("p1-t2", 1, 100, true)]));
        // The retry's "rejected" also contradicts the log.
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::ConflictingOutcomes { lines, .. }, Anomaly::AckDisagreesWithLog { .. }]
                if lines == &[4, 8]
        ));
    }

    #[test]
    fn bid_rejected_to_the_client_but_accepted_in_the_log_fails() {
        let history = [create(0, 1), bid(1, 100, false, 2, 3)];
        let verdict = check(&history, &one_replica(vec![logged("p1-t2", 1, 100, true)]));
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::AckDisagreesWithLog { .. }]
        ));
    }

    #[test]
    fn same_request_id_with_another_payload_fails() {
        let history = [create(0, 1), bid(1, 100, true, 2, 3)];
        let verdict = check(&history, &one_replica(vec![logged("p1-t2", 1, 999, true)]));
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::LogPayloadDiffers { .. }]
        ));
    }
}
