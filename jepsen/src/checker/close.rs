//! Closed auctions (I4): each has exactly one outcome, that outcome is the highest accepted
//! bid before the close in log order (on equal amounts the earlier bid wins), no bid is
//! accepted after it, every replica agrees on it, and every outcome a client observed is it.
//! In real time, a bid invoked after a client already saw the auction closed must not be
//! acknowledged as accepted.

use std::collections::{BTreeMap, BTreeSet};

use crate::checker::{Anomaly, Verdict};
use crate::history::{AuctionId, CloseOutcome, Completion, Operation, Output, TopBid};
use crate::replicas::{FinalState, LogEntry};

pub fn check(operations: &[Operation], final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("close");
    if final_state.replicas.is_empty() {
        verdict.report(Anomaly::NoReplicas);
        return verdict;
    }
    // auction -> replica -> recorded outcome (None: not closed there).
    let mut outcomes: BTreeMap<AuctionId, Vec<(String, Option<CloseOutcome>)>> = BTreeMap::new();
    for auction in final_state
        .replicas
        .values()
        .flat_map(|state| state.auctions.keys())
    {
        outcomes.entry(*auction).or_default();
    }
    for (replica, state) in &final_state.replicas {
        for (&auction, recorded) in outcomes.iter_mut() {
            if !state.holds(auction) {
                continue;
            }
            let entries = state
                .auctions
                .get(&auction)
                .map(Vec::as_slice)
                .unwrap_or_default();
            recorded.push((
                replica.clone(),
                check_log(replica, auction, entries, &mut verdict),
            ));
        }
    }
    verdict.checked = outcomes.len();
    let mut agreed: BTreeMap<AuctionId, Option<CloseOutcome>> = BTreeMap::new();
    let mut disagreed: BTreeSet<AuctionId> = BTreeSet::new();
    for (auction, recorded) in outcomes {
        if recorded
            .iter()
            .all(|(_, outcome)| *outcome == recorded[0].1)
        {
            agreed.insert(auction, recorded[0].1);
        } else {
            disagreed.insert(auction);
            verdict.report(Anomaly::OutcomeDisagreement {
                auction,
                outcomes: recorded,
            });
        }
    }
    check_observations(operations, &agreed, &disagreed, &mut verdict);
    verdict
}

/// Checks one replica's log of one auction and returns its outcome, if it closed.
fn check_log(
    replica: &str,
    auction: AuctionId,
    entries: &[LogEntry],
    verdict: &mut Verdict,
) -> Option<CloseOutcome> {
    let mut top: Option<TopBid> = None;
    let mut outcome: Option<CloseOutcome> = None;
    let mut closes = 0;
    for entry in entries {
        match entry {
            LogEntry::Bid {
                request,
                bidder,
                amount,
                accepted: true,
            } => {
                if outcome.is_some() {
                    verdict.report(Anomaly::BidAcceptedAfterClose {
                        replica: replica.to_owned(),
                        auction,
                        request: request.clone(),
                        amount: *amount,
                    });
                } else if top.is_none_or(|top| *amount > top.amount) {
                    // Strictly greater: on equal amounts the earlier bid keeps the lead.
                    top = Some(TopBid {
                        amount: *amount,
                        bidder: *bidder,
                    });
                }
            }
            LogEntry::Bid {
                accepted: false, ..
            } => {}
            LogEntry::Close { outcome: recorded } => {
                closes += 1;
                if outcome.is_none() {
                    outcome = Some(*recorded);
                    let expected = top.map_or(CloseOutcome::Unsold, CloseOutcome::Sold);
                    if *recorded != expected {
                        verdict.report(Anomaly::WrongOutcome {
                            replica: replica.to_owned(),
                            auction,
                            recorded: *recorded,
                            expected,
                        });
                    }
                }
            }
        }
    }
    if closes > 1 {
        verdict.report(Anomaly::MultipleCloses {
            replica: replica.to_owned(),
            auction,
            count: closes,
        });
    }
    outcome
}

/// Compares what clients saw with the replicas' agreed outcomes.
fn check_observations(
    operations: &[Operation],
    agreed: &BTreeMap<AuctionId, Option<CloseOutcome>>,
    disagreed: &BTreeSet<AuctionId>,
    verdict: &mut Verdict,
) {
    // auction -> (completion time, line) of the earliest observation of it being closed.
    let mut first_seen_closed: BTreeMap<AuctionId, (u64, u64)> = BTreeMap::new();
    for operation in operations {
        let observed = match operation.completion {
            Completion::Ok(Output::Closed { outcome }) => outcome,
            Completion::Ok(Output::State(view)) => match view.outcome {
                Some(outcome) => outcome,
                None => continue,
            },
            _ => continue,
        };
        let line = operation.completion_index.unwrap_or(operation.invoke_index) + 1;
        let time = operation.complete_ns.unwrap_or(u64::MAX);
        let earliest = first_seen_closed
            .entry(operation.auction)
            .or_insert((time, line));
        if time < earliest.0 {
            *earliest = (time, line);
        }
        // Auctions the replicas disagree on are already reported.
        if disagreed.contains(&operation.auction) {
            continue;
        }
        // An auction no replica knows counts as "not closed".
        let logged = agreed.get(&operation.auction).copied().flatten();
        if logged != Some(observed) {
            verdict.report(Anomaly::ObservedOutcomeDiffers {
                auction: operation.auction,
                line,
                observed,
                logged,
            });
        }
    }
    // A request id sent again (at-least-once delivery) is answered from the engine's dedupe
    // table: it may have been applied at its first attempt, so its earliest invoke counts.
    let mut first_invoke: BTreeMap<&str, u64> = BTreeMap::new();
    for operation in operations {
        let earliest = first_invoke
            .entry(operation.request.as_str())
            .or_insert(operation.invoke_ns);
        *earliest = (*earliest).min(operation.invoke_ns);
    }
    for operation in operations {
        let (Some(true), Some(&(closed_at, close_line))) = (
            operation.bid_accepted(),
            first_seen_closed.get(&operation.auction),
        ) else {
            continue;
        };
        let invoked = first_invoke
            .get(operation.request.as_str())
            .copied()
            .unwrap_or(operation.invoke_ns);
        if invoked > closed_at {
            verdict.report(Anomaly::BidAcknowledgedAfterObservedClose {
                auction: operation.auction,
                bid_line: operation.invoke_index + 1,
                close_line,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Validity;
    use crate::checker::test_support::{bid, create, logged, op, replicas};
    use crate::history::Call;

    fn sold(bidder: u64, amount: u64) -> CloseOutcome {
        CloseOutcome::Sold(TopBid { amount, bidder })
    }

    fn closed(outcome: CloseOutcome) -> LogEntry {
        LogEntry::Close { outcome }
    }

    fn close_observed(outcome: CloseOutcome, invoke: u64, complete: u64) -> Operation {
        let completion = Completion::Ok(Output::Closed { outcome });
        op(9, Call::Close, completion, invoke, Some(complete))
    }

    fn good_log() -> Vec<LogEntry> {
        vec![
            logged("a", 1, 100, true),
            logged("b", 2, 105, false),
            logged("c", 2, 120, true),
            closed(sold(2, 120)),
            logged("d", 1, 200, false),
        ]
    }

    #[test]
    fn single_close_with_highest_bid_passes() {
        let history = [create(0, 1), close_observed(sold(2, 120), 5, 6)];
        let verdict = check(
            &history,
            &replicas(&[("n1", good_log()), ("n2", good_log())]),
        );
        assert_eq!(verdict.validity, Validity::Valid, "{verdict:?}");
    }

    #[test]
    fn bid_accepted_after_close_fails() {
        let mut log = good_log();
        log.push(logged("e", 1, 300, true));
        let verdict = check(&[], &replicas(&[("n1", log)]));
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::BidAcceptedAfterClose { amount: 300, .. }]
        ));
    }

    #[test]
    fn outcome_other_than_the_highest_bid_fails() {
        let log = vec![
            logged("a", 1, 100, true),
            logged("c", 2, 120, true),
            closed(sold(1, 100)),
        ];
        let verdict = check(&[], &replicas(&[("n1", log)]));
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::WrongOutcome { expected, .. }] if *expected == sold(2, 120)
        ));
    }

    #[test]
    fn two_closes_fail() {
        let mut log = good_log();
        log.push(closed(sold(2, 120)));
        let verdict = check(&[], &replicas(&[("n1", log)]));
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::MultipleCloses { count: 2, .. }]
        ));
    }

    #[test]
    fn replicas_with_different_outcomes_fail() {
        let other = vec![logged("a", 1, 100, true), closed(sold(1, 100))];
        let verdict = check(&[], &replicas(&[("n1", good_log()), ("n2", other)]));
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::OutcomeDisagreement { .. }]
        ));
    }

    #[test]
    fn observed_outcome_must_match_the_log() {
        let history = [close_observed(sold(1, 100), 5, 6)];
        let verdict = check(&history, &replicas(&[("n1", good_log())]));
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::ObservedOutcomeDiffers { .. }]
        ));
    }

    #[test]
    fn a_resend_answered_after_the_close_is_fine_when_its_first_attempt_came_before() {
        let first = bid(1, 130, true, 3, 4);
        let mut resend = first.clone();
        (resend.invoke_index, resend.invoke_ns) = (7, 7);
        (resend.completion_index, resend.complete_ns) = (Some(8), Some(8));
        let log = vec![logged(&first.request, 1, 130, true), closed(sold(1, 130))];
        let history = [
            create(0, 1),
            first,
            close_observed(sold(1, 130), 5, 6),
            resend,
        ];
        let verdict = check(&history, &replicas(&[("n1", log)]));
        assert_eq!(verdict.validity, Validity::Valid, "{verdict:?}");
    }

    #[test]
    fn bid_acknowledged_after_a_client_saw_the_close_fails() {
        let history = [
            create(0, 1),
            close_observed(sold(2, 120), 5, 6),
            bid(1, 130, true, 7, 8),
        ];
        let verdict = check(&history, &replicas(&[("n1", good_log())]));
        assert!(matches!(
            &verdict.anomalies[..],
            [Anomaly::BidAcknowledgedAfterObservedClose {
                bid_line: 8,
                close_line: 7,
                ..
            }]
        ));
    }
}
