//! The client library's retry rule for proposals (I9), as a pure state machine.
//!
//! A timeout or "not leader" does not prove that a command was not applied: the entry may
//! have been committed by a leader that then lost contact. So every retry reuses the request
//! id (the engine's idempotency record turns a repeat into the first outcome), and a proposal
//! whose outcome is still unknown when the deadline passes is reported as `Unknown`, never as
//! failed.
//!
//! The runtime feeds each attempt's result to [`Proposal::next`] and does what it says.

use std::time::Duration;

/// What one attempt at a node produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt<Node> {
    /// The node committed and applied the command (or returned its stored first outcome).
    Decided,
    /// The node is not (or no longer) the leader; it may name the one it believes leads.
    NotLeader { leader: Option<Node> },
    /// The request never reached a node that could have proposed it (connection refused,
    /// malformed before sending): definitely not applied by this attempt.
    NotSent,
    /// The request may have been proposed but no answer came (timeout, connection lost).
    Indeterminate,
    /// `node` refused before proposing anything (`overloaded`, `change_in_progress`): it is
    /// still the right node, so the same request goes to it again after a back-off.
    Busy { node: Node },
}

/// What the runtime should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<Node> {
    /// Send the same request (same request id) to `node` after waiting `after`.
    Retry { node: Node, after: Duration },
    /// Stop: the outcome is known.
    Done,
    /// Stop: the deadline or the attempt limit was reached. `maybe_applied` is false only if
    /// every attempt provably never reached a node, so the caller may report "not applied";
    /// otherwise the outcome is unknown and must be reported as such.
    GiveUp { maybe_applied: bool },
}

/// Limits for one proposal's retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub deadline: Duration,
    pub attempts_max: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            deadline: Duration::from_secs(5),
            attempts_max: 16,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(500),
        }
    }
}

/// One proposal's retry state. `Node` is whatever the runtime uses to address a node.
#[derive(Clone, Debug)]
pub struct Proposal<Node> {
    policy: RetryPolicy,
    nodes: Vec<Node>,
    next_node: usize,
    attempts: u32,
    backoff: Duration,
    maybe_applied: bool,
}

impl<Node: Clone + PartialEq> Proposal<Node> {
    /// `nodes` are the group's members, tried in turn when no leader is known.
    pub fn new(policy: RetryPolicy, nodes: Vec<Node>) -> Proposal<Node> {
        Proposal {
            policy,
            nodes,
            next_node: 0,
            attempts: 1,
            backoff: policy.backoff_initial,
            maybe_applied: false,
        }
    }

    /// Decides the next step after an attempt, `elapsed` after the proposal began.
    pub fn next(&mut self, attempt: Attempt<Node>, elapsed: Duration) -> Step<Node> {
        let target = match attempt {
            Attempt::Decided => return Step::Done,
            // openraft answers "not leader" also to a write whose leader stepped down after
            // appending it, so even a redirect leaves the outcome open (I9). A redirect costs
            // no back-off: the named leader is the best next try.
            Attempt::NotLeader { leader } => {
                self.maybe_applied = true;
                leader.map(|leader| (leader, Duration::ZERO))
            }
            Attempt::NotSent => None,
            Attempt::Busy { node } => Some((node, self.grow_backoff())),
            Attempt::Indeterminate => {
                self.maybe_applied = true;
                None
            }
        };
        let (node, after) = match target {
            Some(found) => found,
            None => match self.nodes.get(self.next_node % self.nodes.len().max(1)) {
                Some(node) => {
                    let node = node.clone();
                    self.next_node += 1;
                    (node, self.grow_backoff())
                }
                None => {
                    return Step::GiveUp {
                        maybe_applied: self.maybe_applied,
                    };
                }
            },
        };
        if self.attempts >= self.policy.attempts_max || elapsed + after >= self.policy.deadline {
            return Step::GiveUp {
                maybe_applied: self.maybe_applied,
            };
        }
        self.attempts += 1;
        Step::Retry { node, after }
    }

    /// Whether any attempt so far may have reached a node that proposed the command. While
    /// false, every failure so far proves the command was not applied.
    pub fn maybe_applied(&self) -> bool {
        self.maybe_applied
    }

    /// Attempts made so far, the first one included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The back-off to wait now; doubles the next one, up to the policy's maximum.
    fn grow_backoff(&mut self) -> Duration {
        let after = self.backoff;
        self.backoff = (self.backoff * 2).min(self.policy.backoff_max);
        after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal() -> Proposal<&'static str> {
        Proposal::new(RetryPolicy::default(), vec!["n1", "n2", "n3"])
    }

    #[test]
    fn a_redirect_goes_straight_to_the_named_leader() {
        let mut proposal = proposal();
        let step = proposal.next(Attempt::NotLeader { leader: Some("n2") }, Duration::ZERO);
        assert_eq!(
            step,
            Step::Retry {
                node: "n2",
                after: Duration::ZERO
            }
        );
        assert_eq!(
            proposal.next(Attempt::Decided, Duration::from_millis(3)),
            Step::Done
        );
    }

    #[test]
    fn without_a_leader_hint_it_tries_members_in_turn_with_growing_backoff() {
        let mut proposal = proposal();
        let first = proposal.next(Attempt::NotSent, Duration::ZERO);
        assert_eq!(
            first,
            Step::Retry {
                node: "n1",
                after: Duration::from_millis(10)
            }
        );
        let second = proposal.next(
            Attempt::NotLeader { leader: None },
            Duration::from_millis(10),
        );
        assert_eq!(
            second,
            Step::Retry {
                node: "n2",
                after: Duration::from_millis(20)
            }
        );
    }

    #[test]
    fn a_timeout_makes_the_final_outcome_unknown_never_failed() {
        let policy = RetryPolicy {
            attempts_max: 2,
            ..RetryPolicy::default()
        };
        let mut proposal = Proposal::new(policy, vec!["n1"]);
        assert!(matches!(
            proposal.next(Attempt::Indeterminate, Duration::ZERO),
            Step::Retry { .. }
        ));
        let step = proposal.next(Attempt::NotSent, Duration::from_millis(50));
        assert_eq!(
            step,
            Step::GiveUp {
                maybe_applied: true
            }
        );
    }

    #[test]
    fn a_not_leader_answer_also_leaves_the_outcome_unknown() {
        let policy = RetryPolicy {
            attempts_max: 2,
            ..RetryPolicy::default()
        };
        let mut proposal = Proposal::new(policy, vec!["n1"]);
        proposal.next(Attempt::NotLeader { leader: None }, Duration::ZERO);
        let step = proposal.next(Attempt::NotSent, Duration::from_millis(20));
        assert_eq!(
            step,
            Step::GiveUp {
                maybe_applied: true
            }
        );
    }

    #[test]
    fn only_attempts_that_never_reached_a_node_allow_reporting_not_applied() {
        let policy = RetryPolicy {
            attempts_max: 2,
            ..RetryPolicy::default()
        };
        let mut proposal = Proposal::new(policy, vec!["n1"]);
        proposal.next(Attempt::NotSent, Duration::ZERO);
        assert_eq!(
            proposal.next(Attempt::NotSent, Duration::from_millis(20)),
            Step::GiveUp {
                maybe_applied: false
            }
        );
    }

    #[test]
    fn a_busy_node_is_retried_after_a_growing_backoff_without_making_the_outcome_unknown() {
        let mut proposal = proposal();
        let first = proposal.next(Attempt::Busy { node: "n2" }, Duration::ZERO);
        assert_eq!(
            first,
            Step::Retry {
                node: "n2",
                after: Duration::from_millis(10)
            }
        );
        let second = proposal.next(Attempt::Busy { node: "n2" }, Duration::from_millis(10));
        assert_eq!(
            second,
            Step::Retry {
                node: "n2",
                after: Duration::from_millis(20)
            }
        );
        assert!(!proposal.maybe_applied());
        assert_eq!(proposal.attempts(), 3);
    }

    #[test]
    fn the_deadline_bounds_every_retry() {
        let mut proposal = proposal();
        let late = RetryPolicy::default().deadline - Duration::from_millis(5);
        assert_eq!(
            proposal.next(Attempt::NotSent, late),
            Step::GiveUp {
                maybe_applied: false
            }
        );
    }
}
