//! The table `martelo status` prints from a [`ClusterStatus`]: one row per node and group, a
//! row per group with its voters and spare capacity, then the health verdict. Pure.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use martelo_client::admin::status::{ClusterStatus, Health, Role};
use martelo_types::NodeId;

/// The table `martelo status` prints: one row per node and group, then the health verdict.
pub fn render_table(status: &ClusterStatus) -> String {
    let mut rows: Vec<Vec<String>> = vec![
        [
            "NODE",
            "ADDRESS",
            "GROUP",
            "ROLE",
            "TERM",
            "LEADER",
            "LAST LOG",
            "COMMITTED",
            "APPLIED",
            "LAG",
            "SNAPSHOT",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for node in &status.nodes {
        let id = optional(node.node_id);
        let Some(node_status) = &node.status else {
            rows.push(vec![
                id,
                node.address.clone(),
                "-".into(),
                "UNREACHABLE".into(),
            ]);
            continue;
        };
        if !node_status.initialized {
            rows.push(vec![
                id,
                node.address.clone(),
                "-".into(),
                "not initialized".into(),
            ]);
            continue;
        }
        for group in &node_status.groups {
            // A replica its group's leader no longer lists was removed from the group: it
            // lingers until its node deletes it, and takes no part in the group.
            let removed = status
                .leader_report(group.group_id)
                .is_some_and(|(_, leader)| {
                    !leader.voters.contains(&node_status.node_id)
                        && !leader.learners.contains(&node_status.node_id)
                });
            let role = if removed {
                "removed"
            } else {
                group.role.as_str()
            };
            let lag = if group.role == Role::Leader || removed {
                "-".to_owned()
            } else {
                status
                    .leader_report(group.group_id)
                    .and_then(|(_, leader)| {
                        leader
                            .replication
                            .iter()
                            .find(|replication| replication.node_id == node_status.node_id)
                    })
                    .map_or_else(|| "?".to_owned(), |r| r.lag_entries.to_string())
            };
            rows.push(vec![
                id.clone(),
                node.address.clone(),
                group.group_id.to_string(),
                role.to_owned(),
                group.term.to_string(),
                optional(group.leader_id),
                optional(group.last_log_index),
                optional(group.committed_index),
                optional(group.applied_index),
                lag,
                optional(group.snapshot_index),
            ]);
        }
    }
    let mut out = format_rows(&rows);
    if !status.health.groups.is_empty() {
        out.push('\n');
        out.push_str(&render_groups(&status.health));
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "health: {}: {}",
        status.health.state.as_str(),
        status.health.summary
    );
    for group in &status.health.groups {
        if let Some(problem) = &group.problem {
            let _ = writeln!(out, "  group {}: {problem}", group.group_id);
        }
        for risk in &group.risks {
            let _ = writeln!(out, "  group {}: {risk}", group.group_id);
        }
    }
    for node in status.nodes.iter().filter(|node| !node.reachable) {
        if let Some(error) = &node.error {
            let _ = writeln!(out, "  unreachable: {}", error.message);
        }
    }
    let versions: BTreeSet<&str> = status
        .nodes
        .iter()
        .filter_map(|node| node.status.as_ref())
        .map(|status| status.version.as_str())
        .collect();
    if versions.len() > 1 {
        let list: Vec<&str> = versions.into_iter().collect();
        let _ = writeln!(
            out,
            "  warning: nodes run different versions: {}",
            list.join(", ")
        );
    }
    out
}

/// One row per group: its leader, members and state.
fn render_groups(health: &Health) -> String {
    let ids = |ids: &[NodeId]| {
        if ids.is_empty() {
            "-".to_owned()
        } else {
            ids.iter()
                .map(NodeId::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let mut rows: Vec<Vec<String>> = vec![
        [
            "GROUP", "LEADER", "TERM", "VOTERS", "LEARNERS", "SPARE", "STATE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for group in &health.groups {
        rows.push(vec![
            group.group_id.to_string(),
            optional(group.leader_id),
            optional(group.term),
            ids(&group.voters),
            ids(&group.learners),
            group.failures_tolerated.to_string(),
            group.state.as_str().to_lowercase(),
        ]);
    }
    format_rows(&rows)
}

/// A cell for a value that may be absent: the value, or `-`.
fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

/// Left-aligned columns, two spaces apart, without trailing blanks.
fn format_rows(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter(|row| row.len() > column + 1)
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[column]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use martelo_client::admin::fixtures::*;
    use martelo_client::admin::{ClusterStatus, HealthState};

    use super::*;

    #[test]
    fn an_uninitialized_cluster_renders_as_such() {
        let status = uninitialized_cluster();
        assert_eq!(status.health.state, HealthState::NotInitialized);
        assert!(render_table(&status).contains("not initialized"));
    }

    #[test]
    fn the_table_shows_roles_indexes_lag_and_the_health_verdict() {
        let status = ClusterStatus::from_answers(
            vec![
                answer(1, leader_of_both(1)),
                answer(2, follower_of_both(1)),
                unreachable(3),
            ],
            &known_ids(),
        );
        let expected = "\
NODE  ADDRESS         GROUP  ROLE      TERM  LEADER  LAST LOG  COMMITTED  APPLIED  LAG  SNAPSHOT
1     127.0.0.1:7001  0      leader    2     1       120       120        119      -    -
1     127.0.0.1:7001  1      leader    3     1       120       120        119      -    -
2     127.0.0.1:7002  0      follower  2     1       120       120        119      2    -
2     127.0.0.1:7002  1      follower  3     1       120       120        119      2    -
3     127.0.0.1:7003  -      UNREACHABLE

GROUP  LEADER  TERM  VOTERS  LEARNERS  SPARE  STATE
0      1       2     1,2,3   -         0      degraded
1      1       3     1,2,3   -         0      degraded

health: DEGRADED: every group has a leader, but 2 of 2 groups have less redundancy than the replication factor (3) gives; 1 node(s) unreachable: 3
  group 0: voter 3 is unreachable
  group 0: it can lose no more voters: one more failure stops its writes
  group 1: voter 3 is unreachable
  group 1: it can lose no more voters: one more failure stops its writes
  unreachable: cannot reach a martelo node at 127.0.0.1:7003 (connection refused); is the node running, and is the address right?
";
        assert_eq!(render_table(&status), expected);
    }

    #[test]
    fn a_replica_its_leader_no_longer_lists_shows_as_removed() {
        let mut groups = caught_up_leader(1);
        for group in &mut groups {
            group.voters = vec![1, 2, 4];
        }
        let status = ClusterStatus::from_answers(
            vec![
                answer(1, groups),
                answer(2, follower_of_both(1)),
                answer(3, follower_of_both(1)),
            ],
            &known_ids(),
        );
        let table = render_table(&status);
        let third: Vec<&str> = table
            .lines()
            .filter(|line| line.starts_with("3 "))
            .collect();
        assert_eq!(third.len(), 2, "{table}");
        assert!(third.iter().all(|line| line.contains("removed")), "{table}");
    }
}
