//! The commands that change who serves a group: `node add`, `node remove` and
//! `leader transfer`, and the exit status of a membership change (done, failed, or done in
//! part) judged from its per-group report.
//!
//! Node ids arrive as [`NodeId`]s, checked by `martelo_types`, and go to the client's admin
//! calls as they are.
//!
//! What does not live here: the steps of a change (learner, catch-up, promotion) and their
//! retries (`martelo_client::admin`); the report as text ([`super::render`]).

use std::io::Write;

use clap::{Args, Subcommand};
use martelo_client::admin::{Admin, ErrorReport, MembershipReport};
use martelo_engine::GroupId;
use martelo_types::{NodeAddress, NodeId};

use super::args::{Connection, address_arg, node_id_arg};
use super::error::CliError;
use super::render::render_membership;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Add a running, empty node to groups.
    ///
    /// For each group: open an empty replica on the new node, add it as a learner at the
    /// group's leader, wait until it has caught up, then make it a voter. Groups are done one
    /// by one; if one fails, the others still run, and running the same command again
    /// finishes the job.
    Add(NodeAddArgs),
    /// Remove a node from groups.
    ///
    /// Each group's leader refuses when the remaining voters could not form a healthy
    /// majority, unless --force.
    Remove(NodeRemoveArgs),
}

#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Ask a group's leader to hand leadership to another voter.
    Transfer(LeaderTransferArgs),
}

#[derive(Debug, Args)]
pub struct NodeAddArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The new node's id: positive, never used before in this cluster.
    #[arg(long, value_name = "ID", value_parser = node_id_arg)]
    pub id: NodeId,
    /// The new node's address (HOST:PORT), where it serves the client, admin and Raft APIs.
    /// The node must be running.
    #[arg(long, value_name = "HOST:PORT", value_parser = address_arg)]
    pub address: String,
    /// A group to add the node to; repeat for several. [default: every group, the meta
    /// group 0 included]
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<u64>,
    /// Stop once the node is a caught-up learner: do not make it a voter.
    #[arg(long)]
    pub learner_only: bool,
}

#[derive(Debug, Args)]
pub struct NodeRemoveArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The id of the node to remove.
    #[arg(long, value_name = "ID", value_parser = node_id_arg)]
    pub id: NodeId,
    /// A group to remove the node from; repeat for several. [default: every group the node
    /// is a voter or learner of]
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<u64>,
    /// Remove even when the remaining voters could not form a healthy majority. The group
    /// may then be unable to commit anything (no bid is accepted) until enough voters
    /// return.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LeaderTransferArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The group whose leadership moves (0 is the meta group).
    #[arg(long, value_name = "G")]
    pub group: u64,
    /// The voter that should lead.
    #[arg(long, value_name = "ID", value_parser = node_id_arg)]
    pub to: NodeId,
}

impl NodeAddArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let node = NodeAddress {
            id: self.id,
            address: self.address,
        };
        let groups = optional_groups(self.groups);
        let promote = !self.learner_only;
        let report = admin
            .add_node(&self.connection.addr, node, groups, promote)
            .await?;
        write!(out, "{}", render_membership(&report))?;
        incomplete(&report)
    }
}

impl NodeRemoveArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let groups = optional_groups(self.groups);
        let report = admin
            .remove_node(&self.connection.addr, self.id, groups, self.force)
            .await?;
        write!(out, "{}", render_membership(&report))?;
        incomplete(&report)
    }
}

impl LeaderTransferArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let leader = admin
            .transfer_leader(&self.connection.addr, GroupId(self.group), self.to)
            .await?;
        if leader == self.to {
            writeln!(out, "node {leader} now leads group {}", self.group)?;
            Ok(())
        } else {
            Err(CliError::Incomplete(format!(
                "the transfer did not take: node {leader} leads group {} (node {} may have lost \
                 the election or be behind; check `martelo status` and try again)",
                self.group, self.to
            )))
        }
    }
}

fn optional_groups(groups: Vec<u64>) -> Option<Vec<GroupId>> {
    (!groups.is_empty()).then(|| groups.into_iter().map(GroupId).collect())
}

/// The exit status of a membership command: done (also when every group was already as
/// asked), failed (no group done: 1), or done in part (5). "Run it again" is said only when
/// every failure can pass by itself; a permanent refusal says to fix the cause.
fn incomplete(report: &MembershipReport) -> Result<(), CliError> {
    let failures: Vec<&ErrorReport> = report
        .groups
        .iter()
        .filter_map(|group| group.error.as_ref())
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    let advice = if failures.iter().all(|error| error.retryable) {
        "run the same command again when the cause has passed: groups that are done are left \
         as they are"
    } else {
        "the cause is not one that passes by itself: fix it (see the messages above) before \
         running the command again"
    };
    let total = report.groups.len();
    let message = format!("{} of {total} groups failed; {advice}", failures.len());
    if failures.len() == total {
        Err(CliError::Failed(message))
    } else {
        Err(CliError::Incomplete(message))
    }
}

#[cfg(test)]
mod tests {
    use martelo_client::admin::GroupChange;

    use super::*;
    use crate::cli::tests::parse;
    use crate::cli::{Command, NodeCli};

    #[test]
    fn node_add_and_remove_parse_their_flags() {
        let Command::Node(NodeCli {
            membership: Some(NodeCommand::Add(add)),
            ..
        }) = parse(&[
            "node",
            "add",
            "--id",
            "4",
            "--address",
            "127.0.0.1:7004",
            "--group",
            "0",
            "--group",
            "3",
            "--learner-only",
        ])
        else {
            panic!("node add");
        };
        assert_eq!(
            (add.id, add.groups.clone(), add.learner_only),
            (NodeId(4), vec![0, 3], true)
        );
        let Command::Node(NodeCli {
            membership: Some(NodeCommand::Remove(remove)),
            ..
        }) = parse(&["node", "remove", "--id", "2", "--force"])
        else {
            panic!("node remove");
        };
        assert!(remove.force && remove.groups.is_empty());
        assert_eq!(remove.id, NodeId(2));
    }

    #[test]
    fn membership_reports_print_one_line_per_group_with_failures_named() {
        let report = MembershipReport {
            node_id: NodeId(4),
            groups: vec![
                GroupChange {
                    group_id: 0,
                    step: "promote_voter",
                    log_index: Some(57),
                    voters: [1, 2, 3, 4].map(NodeId).to_vec(),
                    learners: Vec::new(),
                    error: None,
                    unchanged: false,
                },
                GroupChange {
                    group_id: 1,
                    step: "add_learner",
                    log_index: None,
                    voters: Vec::new(),
                    learners: Vec::new(),
                    error: Some(ErrorReport {
                        code: "change_in_progress".into(),
                        message: "node 127.0.0.1:7001 answered change_in_progress: busy".into(),
                        retryable: true,
                    }),
                    unchanged: false,
                },
                GroupChange {
                    group_id: 2,
                    step: "promote_voter",
                    log_index: None,
                    voters: vec![NodeId(1), NodeId(4)],
                    learners: Vec::new(),
                    error: None,
                    unchanged: true,
                },
            ],
        };
        assert_eq!(
            render_membership(&report),
            "group 0: node 4 is a voter (voters: 1, 2, 3, 4; learners: none; log index 57)\n\
             group 1: FAILED at add_learner: node 127.0.0.1:7001 answered change_in_progress: \
             busy\n\
             group 2: node 4 is already a voter: nothing to do\n"
        );
        let error = incomplete(&report).unwrap_err();
        assert_eq!(error.exit_code(), 5, "done in part");
        assert!(
            error.to_string().starts_with("1 of 3 groups failed")
                && error.to_string().contains("run the same command again"),
            "{error}"
        );
    }

    #[test]
    fn a_membership_command_that_did_nothing_fails_and_a_permanent_cause_is_not_retried() {
        let failed = |retryable: bool| MembershipReport {
            node_id: NodeId(1),
            groups: vec![GroupChange {
                group_id: 2,
                step: "remove_node",
                log_index: None,
                voters: Vec::new(),
                learners: Vec::new(),
                error: Some(ErrorReport {
                    code: "invalid_argument".into(),
                    message: "only voter".into(),
                    retryable,
                }),
                unchanged: false,
            }],
        };
        let error = incomplete(&failed(false)).unwrap_err();
        assert_eq!(error.exit_code(), 1, "nothing was done");
        assert!(
            !error.to_string().contains("run the same command again"),
            "{error}"
        );
        assert!(
            incomplete(&failed(true))
                .unwrap_err()
                .to_string()
                .contains("again")
        );
        let nothing = MembershipReport {
            node_id: NodeId(4),
            groups: Vec::new(),
        };
        assert!(incomplete(&nothing).is_ok());
        assert_eq!(
            render_membership(&nothing),
            "node 4 is in no group: nothing to do\n"
        );
    }
}
