//! The client's metrics, through the `metrics` facade (the process installs the exporter).
//!
//! Every metric the client library exports is named here, once: the constants below, each
//! with its type, labels and meaning. The names are a contract with dashboards: never rename
//! one.
//!
//! `op` is `propose`, `propose_meta`, `read`, `read_user`, `list`, `list_users`, `subscribe`
//! or `admin_propose_meta`. A proposal's `result` is `accepted`,
//! `rejected`, `unknown` or `not_applied`; a read's or a list's is `ok` or the error code; a
//! subscription's is `opened`.

use crate::decide::Retry;

/// Counter `martelo_client_attempts_total{op}`: calls sent to a node, first tries and
/// retries alike.
pub(crate) const ATTEMPTS: &str = "martelo_client_attempts_total";
/// Counter `martelo_client_redirects_total{op}`: retries sent to the leader a node named in
/// its answer.
pub(crate) const REDIRECTS: &str = "martelo_client_redirects_total";
/// Counter `martelo_client_retries_total{op, reason}`: retries, by what the previous attempt
/// got (`not_leader`, `not_sent`, `busy`, `indeterminate`).
pub(crate) const RETRIES: &str = "martelo_client_retries_total";
/// Counter `martelo_client_outcomes_total{op, result}`: finished operations, by result.
pub(crate) const OUTCOMES: &str = "martelo_client_outcomes_total";

/// Registers descriptions once per process; calling it again is harmless.
pub(crate) fn describe() {
    metrics::describe_counter!(ATTEMPTS, "Calls the client library sent to a node.");
    metrics::describe_counter!(REDIRECTS, "Retries sent to the leader a node named.");
    metrics::describe_counter!(RETRIES, "Retries, by what the previous attempt got.");
    metrics::describe_counter!(OUTCOMES, "Finished client operations, by result.");
}

pub(crate) fn attempt(op: &'static str) {
    metrics::counter!(ATTEMPTS, "op" => op).increment(1);
}

pub(crate) fn retry(op: &'static str, why: &Retry, redirected: bool) {
    if redirected {
        metrics::counter!(REDIRECTS, "op" => op).increment(1);
    }
    let reason = match why {
        Retry::NotLeader(_) => "not_leader",
        Retry::NotSent => "not_sent",
        Retry::Busy => "busy",
        Retry::Indeterminate => "indeterminate",
    };
    metrics::counter!(RETRIES, "op" => op, "reason" => reason).increment(1);
}

pub(crate) fn outcome(op: &'static str, result: &'static str) {
    metrics::counter!(OUTCOMES, "op" => op, "result" => result).increment(1);
}
