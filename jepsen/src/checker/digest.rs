//! Replica digest agreement (I5): after healing, every replica has applied the same log, so
//! every state digest must be equal.

use std::collections::BTreeMap;

use crate::checker::{Anomaly, Verdict};
use crate::replicas::FinalState;

/// `digests` maps node name to its state digest. No replicas at all is a failure: a run
/// that collected nothing has shown nothing.
pub fn check(digests: &BTreeMap<String, String>) -> Verdict {
    let mut verdict = Verdict::new("digest");
    check_into(digests, &mut verdict);
    verdict
}

/// Compares digests within each group of replicas ([`FinalState::digests_by_group`]):
/// replicas of different Raft groups hold different state, so only a group's replicas must
/// agree.
pub fn check_groups(final_state: &FinalState) -> Verdict {
    let mut verdict = Verdict::new("digest");
    if final_state.replicas.is_empty() {
        verdict.report(Anomaly::NoReplicas);
        return verdict;
    }
    for digests in final_state.digests_by_group().values() {
        check_into(digests, &mut verdict);
    }
    verdict
}

fn check_into(digests: &BTreeMap<String, String>, verdict: &mut Verdict) {
    verdict.checked += digests.len();
    if digests.is_empty() {
        verdict.report(Anomaly::NoReplicas);
        return;
    }
    let missing: Vec<String> = digests
        .iter()
        .filter(|(_, digest)| digest.is_empty())
        .map(|(replica, _)| replica.clone())
        .collect();
    if !missing.is_empty() {
        // Nothing to compare is not agreement: the verdict becomes unknown.
        verdict.report(Anomaly::DigestUnavailable { replicas: missing });
        return;
    }
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (node, digest) in digests {
        groups.entry(digest).or_default().push(node.clone());
    }
    if groups.len() > 1 {
        let groups = groups
            .into_iter()
            .map(|(digest, nodes)| (digest.to_owned(), nodes))
            .collect();
        verdict.report(Anomaly::DigestMismatch { groups });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Validity;

    fn digests(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|&(node, digest)| (node.to_owned(), digest.to_owned()))
            .collect()
    }

    #[test]
    fn equal_digests_pass() {
        let verdict = check(&digests(&[("n1", "aa"), ("n2", "aa"), ("n3", "aa")]));
        assert_eq!(verdict.validity, Validity::Valid);
        assert_eq!(verdict.checked, 3);
    }

    #[test]
    fn one_diverged_replica_fails_and_is_named() {
        let verdict = check(&digests(&[("n1", "aa"), ("n2", "bb"), ("n3", "aa")]));
        assert_eq!(verdict.validity, Validity::Invalid);
        let expected = vec![
            ("aa".to_owned(), vec!["n1".to_owned(), "n3".to_owned()]),
            ("bb".to_owned(), vec!["n2".to_owned()]),
        ];
        assert_eq!(
            verdict.anomalies,
            vec![Anomaly::DigestMismatch { groups: expected }]
        );
    }

    #[test]
    fn no_replicas_is_not_a_pass() {
        assert_eq!(check(&BTreeMap::new()).anomalies, vec![Anomaly::NoReplicas]);
    }

    #[test]
    fn only_replicas_of_one_group_are_compared_and_missing_digests_are_unknown() {
        use crate::replicas::ReplicaState;

        let replica = |group, digest: &str| ReplicaState {
            group: Some(group),
            digest: digest.into(),
            auctions: Default::default(),
        };
        let mut state = FinalState::default();
        state.replicas.insert("g1/n1".into(), replica(1, "aa"));
        state.replicas.insert("g1/n2".into(), replica(1, "aa"));
        state.replicas.insert("g2/n1".into(), replica(2, "bb"));
        assert_eq!(check_groups(&state).validity, Validity::Valid);
        state.replicas.insert("g2/n3".into(), replica(2, "cc"));
        assert_eq!(check_groups(&state).validity, Validity::Invalid);
        state.replicas.insert("g2/n3".into(), replica(2, ""));
        assert_eq!(check_groups(&state).validity, Validity::Unknown);
    }
}
