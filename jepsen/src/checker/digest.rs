//! Replica digest agreement (I5): after healing, every replica has applied the same log, so
//! every state digest must be equal.

use std::collections::BTreeMap;

use crate::checker::{Anomaly, Verdict};

/// `digests` maps node name to its state digest. No replicas at all is a failure: a run
/// that collected nothing has shown nothing.
pub fn check(digests: &BTreeMap<String, String>) -> Verdict {
    let mut verdict = Verdict::new("digest");
    verdict.checked = digests.len();
    if digests.is_empty() {
        verdict.report(Anomaly::NoReplicas);
        return verdict;
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
    verdict
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
}
