//! No acknowledged bid is lost (I1): every bid a client saw accepted must be in every
//! replica's log, accepted, after healing. Checking every replica (not just a quorum) is
//! deliberate: after healing, a replica missing a committed entry is itself a bug.

use std::collections::HashMap;

use crate::checker::{Anomaly, Verdict};
use crate::history::Operation;
use crate::replicas::{FinalState, LogEntry};

pub fn check(operations: &[Operation], final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("lost");
    if final_state.replicas.is_empty() {
        verdict.report(Anomaly::NoReplicas);
        return verdict;
    }
    for (replica, state) in &final_state.replicas {
        // (auction, request) -> first entry under that request.
        let mut logged: HashMap<(u64, &str), &LogEntry> = HashMap::new();
        for (&auction, entries) in &state.auctions {
            for entry in entries {
                if let LogEntry::Bid {
                    request, accepted, ..
                } = entry
                {
                    // Prefer an accepted entry, so a double apply is reported by its own
                    // checker rather than as a loss here.
                    let slot = logged.entry((auction, request.as_str())).or_insert(entry);
                    if *accepted {
                        *slot = entry;
                    }
                }
            }
        }
        for operation in operations {
            let (Some(true), Some(bid)) = (operation.bid_accepted(), operation.bid()) else {
                continue;
            };
            if !state.holds(operation.auction) {
                continue;
            }
            verdict.checked += 1;
            let found = logged
                .get(&(operation.auction, operation.request.as_str()))
                .copied();
            let kept = matches!(found, Some(LogEntry::Bid { accepted: true, .. }));
            if !kept {
                verdict.report(Anomaly::LostBid {
                    replica: replica.clone(),
                    auction: operation.auction,
                    request: operation.request.clone(),
                    amount: bid.amount,
                    found: found.cloned(),
                });
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Validity;
    use crate::checker::test_support::{self, bid, create, replicas};

    /// A bid by bidder 1, as a replica logged it.
    fn logged(request: &str, amount: u64, accepted: bool) -> LogEntry {
        test_support::logged(request, 1, amount, accepted)
    }

    #[test]
    fn acknowledged_bids_present_everywhere_pass() {
        let history = [
            create(0, 1),
            bid(1, 100, true, 2, 3),
            bid(2, 105, false, 4, 5),
        ];
        let entry = logged("p1-t2", 100, true);
        let state = replicas(&[("n1", vec![entry.clone()]), ("n2", vec![entry])]);
        let verdict = check(&history, &state);
        assert_eq!(verdict.validity, Validity::Valid, "{verdict:?}");
        assert_eq!(verdict.checked, 2);
    }

    #[test]
    fn acknowledged_bid_missing_on_one_replica_is_lost() {
        let history = [create(0, 1), bid(1, 100, true, 2, 3)];
        let state = replicas(&[("n1", vec![logged("p1-t2", 100, true)]), ("n2", vec![])]);
        let verdict = check(&history, &state);
        assert_eq!(verdict.validity, Validity::Invalid);
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::LostBid { replica, amount: 100, found: None, .. }] if replica == "n2"
        ));
    }

    #[test]
    fn acknowledged_bid_logged_as_rejected_is_lost() {
        let history = [create(0, 1), bid(1, 100, true, 2, 3)];
        let state = replicas(&[("n1", vec![logged("p1-t2", 100, false)])]);
        let verdict = check(&history, &state);
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::LostBid { found: Some(_), .. }]
        ));
    }

    #[test]
    fn no_replicas_is_not_a_pass() {
        let verdict = check(&[], &FinalState::default());
        assert_eq!(verdict.anomalies, vec![Anomaly::NoReplicas]);
    }
}
