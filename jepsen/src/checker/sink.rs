//! The sink checker (I6): the Postgres read model converges to the Raft state, with no row
//! Raft lacks, no duplicate, no missing row and no wrong value.
//!
//! Its input is `sink.json` ([`SinkState`]), which the runner fills after the run
//! ([`crate::sink::check_sink`]): every group's `sink_cursor` against its leader's commit
//! index, and the differences `martelo_sink::verify` found between Postgres and the engine's
//! view of every auction. This checker turns that into a verdict, and never into a silent
//! pass: a sink that did not catch up, a comparison that could not run and a database with
//! nothing compared are failures, like every difference.

use crate::checker::{Anomaly, Verdict};
use crate::sink::SinkState;

/// The verdict of the `sink` checker on one run's [`SinkState`].
pub fn check(state: &SinkState) -> Verdict {
    let mut verdict = Verdict::new("sink");
    verdict.checked = usize::try_from(state.rows_compared).unwrap_or(usize::MAX);
    if let Some(reason) = &state.not_caught_up {
        verdict.report(Anomaly::SinkNotCaughtUp {
            reason: reason.clone(),
            groups: state
                .groups
                .iter()
                .filter(|cursor| cursor.cursor.is_none_or(|at| at < cursor.target))
                .map(|cursor| (cursor.group, cursor.target, cursor.cursor))
                .collect(),
        });
    }
    if let Some(reason) = &state.unchecked {
        verdict.report(Anomaly::SinkUnchecked {
            reason: reason.clone(),
        });
    } else if state.rows_compared == 0 {
        verdict.report(Anomaly::SinkEmpty {
            auctions: state.auctions_compared,
        });
    }
    for difference in &state.violations {
        verdict.report(Anomaly::SinkDiffers {
            difference: difference.clone(),
        });
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Validity;
    use crate::sink::GroupCursor;

    fn caught_up() -> SinkState {
        SinkState {
            database: "private".into(),
            groups: vec![GroupCursor {
                group: 1,
                target: 40,
                cursor: Some(40),
            }],
            auctions_compared: 3,
            rows_compared: 25,
            ..SinkState::default()
        }
    }

    #[test]
    fn a_caught_up_sink_without_differences_passes_and_counts_rows() {
        let verdict = check(&caught_up());
        assert_eq!(verdict.validity, Validity::Valid, "{verdict:?}");
        assert_eq!(verdict.checked, 25);
    }

    #[test]
    fn every_difference_is_a_failure() {
        let mut state = caught_up();
        state.violations = vec![
            "auction 7: missing in Postgres".into(),
            "auction 9: bids differ".into(),
        ];
        let verdict = check(&state);
        assert_eq!(verdict.validity, Validity::Invalid);
        assert_eq!(verdict.anomalies_total, 2);
    }

    #[test]
    fn a_sink_that_did_not_catch_up_fails_and_names_the_group() {
        let mut state = caught_up();
        state.groups[0].cursor = Some(12);
        state.not_caught_up = Some("timeout".into());
        let verdict = check(&state);
        assert_eq!(verdict.validity, Validity::Invalid);
        assert_eq!(
            verdict.anomalies,
            vec![Anomaly::SinkNotCaughtUp {
                reason: "timeout".into(),
                groups: vec![(1, 40, Some(12))],
            }]
        );
    }

    #[test]
    fn nothing_compared_or_no_comparison_is_not_a_pass() {
        let mut empty = caught_up();
        empty.rows_compared = 0;
        assert_eq!(check(&empty).validity, Validity::Invalid);
        let mut unchecked = caught_up();
        unchecked.unchecked = Some("connection refused".into());
        assert_eq!(check(&unchecked).validity, Validity::Invalid);
    }
}
