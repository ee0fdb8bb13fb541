//! What can go wrong when talking to a cluster, and what to tell the person who asked.
//!
//! Every error has a stable, machine-readable [`ClientErrorCode`] (for logs, metric labels
//! and `--json`) and a message for people that says what happened and what to do. Errors
//! that a node sent keep its [`ErrorCode`]; the client adds its own kinds for what happens
//! before or around a node's answer (unreachable, deadline, undecodable payload).
//!
//! Proposals have their own error, [`ProposeError`], because their failures split in two
//! along I9: "may have been applied" (never report as failed) and "provably not applied".

use std::fmt;
use std::time::Duration;

use martelo_proto::{ApiError, ErrorCode};

/// The stable kind of a [`ClientError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientErrorCode {
    /// A node answered with this error code. `cluster_not_initialized` is reported this way
    /// too, whether a node said so or the client saw it in a node's status.
    Server(ErrorCode),
    /// No connection could be made to a node: nothing was sent to it.
    Unreachable,
    /// The caller's deadline passed before an answer came.
    DeadlineExceeded,
    /// A node's answer could not be decoded (mixed versions, or a bug).
    Decode,
    /// The gRPC call failed after it may have reached the node, without an answer.
    Transport,
    /// The caller's input is wrong before anything is sent (bad address, bad arguments).
    InvalidInput,
    /// Something answered at the address, but not martelo's gRPC API (a metrics port, a web
    /// server): nothing can have been applied.
    NotMartelo,
    /// The server hung up before any answer (see [`ClientError::ConnectionClosed`]).
    ConnectionClosed,
}

impl ClientErrorCode {
    /// The stable string: the node's code string (`not_leader`, ...) or one of
    /// `unreachable`, `deadline_exceeded`, `decode`, `transport`, `invalid_input`,
    /// `not_martelo`, `connection_closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientErrorCode::Server(code) => code.as_code_str(),
            ClientErrorCode::Unreachable => "unreachable",
            ClientErrorCode::DeadlineExceeded => "deadline_exceeded",
            ClientErrorCode::Decode => "decode",
            ClientErrorCode::Transport => "transport",
            ClientErrorCode::InvalidInput => "invalid_input",
            ClientErrorCode::NotMartelo => "not_martelo",
            ClientErrorCode::ConnectionClosed => "connection_closed",
        }
    }
}

impl fmt::Display for ClientErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Why a call to the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A node answered with an error.
    #[error("node {address} answered {}: {} {}", error.code(), error.message, advice(error))]
    Api { address: String, error: ApiError },
    /// The node at `address` could not be reached; nothing was sent to it.
    #[error(
        "cannot reach a martelo node at {address} ({reason}); is the node running, and is \
         the address right?"
    )]
    Unreachable { address: String, reason: String },
    /// The node at `address` (or every node tried) has no cluster state yet.
    #[error(
        "the cluster is not initialized: node {address} has no cluster state yet; run \
         `martelo cluster init` (see `martelo cluster init --help`)"
    )]
    ClusterNotInitialized { address: String },
    /// The deadline passed. `last` says what the last attempt ran into.
    #[error(
        "no answer within the {deadline:?} deadline after {attempts} attempt(s); last: {last}. \
         Check `martelo status` for nodes that are down or groups without a leader"
    )]
    Deadline {
        deadline: Duration,
        attempts: u32,
        last: String,
    },
    /// A payload from `address` could not be decoded.
    #[error(
        "cannot decode the {what} sent by {address}: {reason}; do the client and the node run \
         the same martelo version?"
    )]
    Decode {
        address: String,
        what: &'static str,
        reason: String,
    },
    /// The call failed in transit, after the request may have reached the node.
    #[error(
        "the call to {address} failed in transit ({code:?}: {message}); it may or may not have \
         reached the node"
    )]
    Transport {
        address: String,
        code: tonic::Code,
        message: String,
    },
    /// The caller's input is wrong; nothing was sent.
    #[error("{0}")]
    InvalidInput(String),
    /// The server at `address` does not speak martelo's gRPC API.
    #[error(
        "the server at {address} does not speak martelo's gRPC API ({detail}); is this a node's \
         --listen address (not, say, its metrics port)?"
    )]
    NotMartelo { address: String, detail: String },
    /// The server hung up before any answer: a node that stopped, or a port that is not a
    /// node's gRPC port. A change may have been applied.
    #[error(
        "the connection to {address} closed before any answer: is a martelo node running there, \
         and is it the node's --listen address (not, say, its metrics port)? A change sent this \
         way may or may not have been applied"
    )]
    ConnectionClosed { address: String },
}

impl ClientError {
    /// The error a node sent, with `cluster_not_initialized` turned into its own variant
    /// (whose message says to run `martelo cluster init`).
    pub fn from_api(address: impl Into<String>, error: ApiError) -> ClientError {
        let address = address.into();
        if error.code() == ErrorCode::ClusterNotInitialized {
            ClientError::ClusterNotInitialized { address }
        } else {
            ClientError::Api { address, error }
        }
    }

    /// The stable kind of this error.
    pub fn code(&self) -> ClientErrorCode {
        match self {
            ClientError::Api { error, .. } => ClientErrorCode::Server(error.code()),
            ClientError::Unreachable { .. } => ClientErrorCode::Unreachable,
            ClientError::ClusterNotInitialized { .. } => {
                ClientErrorCode::Server(ErrorCode::ClusterNotInitialized)
            }
            ClientError::Deadline { .. } => ClientErrorCode::DeadlineExceeded,
            ClientError::Decode { .. } => ClientErrorCode::Decode,
            ClientError::Transport { .. } => ClientErrorCode::Transport,
            ClientError::InvalidInput(_) => ClientErrorCode::InvalidInput,
            ClientError::NotMartelo { .. } => ClientErrorCode::NotMartelo,
            ClientError::ConnectionClosed { .. } => ClientErrorCode::ConnectionClosed,
        }
    }

    /// The node's error, when a node answered with one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether the same call may succeed later without any change to it: a node's code
    /// whose [`martelo_proto::error_code::RetryClass`] is not `Never` (a busy or
    /// restarting node, a stale picture of the cluster, an outcome still unknown), or a
    /// transport failure. Input errors, decode errors and permanent refusals
    /// (`quorum_at_risk`, `invalid_argument`, ...) are not.
    pub fn is_retryable(&self) -> bool {
        match self.code() {
            ClientErrorCode::Server(code) => code.is_retryable(),
            ClientErrorCode::Unreachable
            | ClientErrorCode::DeadlineExceeded
            | ClientErrorCode::Transport
            | ClientErrorCode::ConnectionClosed => true,
            ClientErrorCode::Decode
            | ClientErrorCode::InvalidInput
            | ClientErrorCode::NotMartelo => false,
        }
    }

    /// The error code to report where only an [`ErrorCode`] fits (a proposal that was not
    /// applied): the node's code, `unavailable` when no node could be reached.
    pub fn server_code(&self) -> ErrorCode {
        match self.code() {
            ClientErrorCode::Server(code) => code,
            ClientErrorCode::InvalidInput => ErrorCode::InvalidArgument,
            ClientErrorCode::Decode => ErrorCode::Internal,
            ClientErrorCode::DeadlineExceeded => ErrorCode::Timeout,
            ClientErrorCode::Unreachable
            | ClientErrorCode::Transport
            | ClientErrorCode::NotMartelo
            | ClientErrorCode::ConnectionClosed => ErrorCode::Unavailable,
        }
    }
}

/// What a person should do about a node's error code. The node's own message says what
/// happened; this says what to do next.
pub(crate) fn advice(error: &ApiError) -> &'static str {
    match error.code() {
        ErrorCode::NotLeader => {
            "(the client follows leader hints by itself; seeing this means leadership kept \
             moving: retry, or check `martelo status`)"
        }
        ErrorCode::QuorumAtRisk => {
            "(the change would leave the group without a majority of healthy voters: bring the \
             unhealthy voters back first, see `martelo status`, or pass --force to do it anyway; \
             the group may then be unable to commit anything until enough voters return)"
        }
        ErrorCode::ChangeInProgress => {
            "(another membership change of this group has not finished: wait for it, see \
             `martelo status`, then try again)"
        }
        ErrorCode::Unavailable => {
            "(the node is starting or stopping, or the group has no leader right now: try again \
             in a moment)"
        }
        ErrorCode::Overloaded => "(the node is overloaded: try again after a short pause)",
        ErrorCode::UnknownGroup => {
            "(this node holds no replica of the group: `martelo status` shows where each group \
             lives)"
        }
        ErrorCode::UnknownNode => "(no such node id here: `martelo status` lists the node ids)",
        ErrorCode::AuctionNotFound => "(no auction with this id exists: check the id)",
        ErrorCode::ClusterNotInitialized => "(run `martelo cluster init`)",
        ErrorCode::ClusterAlreadyInitialized => {
            "(the node already belongs to a cluster and nothing was changed: `martelo status` \
             shows it)"
        }
        ErrorCode::UnknownOutcome => {
            "(the command may or may not have been applied: retry with the same request id, and \
             never report it as failed)"
        }
        ErrorCode::Timeout => {
            "(the call ran out of time: reads are safe to retry; before retrying a change, check \
             `martelo status` to see whether it happened)"
        }
        ErrorCode::ClockSkew => {
            "(the node's clock is off from its peers by more than the configured bound: fix time \
             synchronisation on that machine)"
        }
        ErrorCode::WrongNode => {
            "(another node answers at this address than the one expected: check the addresses \
             with `martelo status`)"
        }
        ErrorCode::UnsupportedCodec => {
            "(the node runs a martelo version with another codec: run matching versions)"
        }
        ErrorCode::WrongGroup => {
            "(the client's shard map disagrees with the cluster's: reconnect to reload it)"
        }
        ErrorCode::PermissionDenied => {
            "(this API may not make the request: the operator acts only through the admin API, \
             for example `martelo user create`)"
        }
        ErrorCode::InvalidArgument | ErrorCode::PayloadTooLarge => {
            "(fix the request: sending it again unchanged cannot succeed)"
        }
        ErrorCode::Internal | ErrorCode::Unspecified => {
            "(a bug or a broken invariant on the node: check the node's logs)"
        }
    }
}

/// Why a proposal did not produce a reply. Engine rejections (`bid_too_low`, ...) are not
/// errors: they are `Ok` with a rejected reply.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The command may or may not have been applied (I9). Never report this as failed: retry
    /// with the same request id (the engine returns the first outcome) or report "unknown".
    #[error(
        "the outcome is unknown after {attempts} attempt(s): the command may or may not have \
         been applied. Retry with the same request id to learn its outcome, and never report \
         it as failed. Last error: {last_error}"
    )]
    Unknown {
        attempts: u32,
        last_error: ClientError,
    },
    /// The command was provably not applied: it was refused before it reached any log
    /// (invalid, too large, wrong group), or no attempt reached a node that could propose it.
    #[error("not applied ({code}): {message}")]
    NotApplied { code: ErrorCode, message: String },
}

impl ProposeError {
    /// `unknown_outcome` for [`ProposeError::Unknown`], else the code that proved the
    /// command was not applied.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProposeError::Unknown { .. } => ErrorCode::UnknownOutcome,
            ProposeError::NotApplied { code, .. } => *code,
        }
    }

    /// True unless the command was provably not applied.
    pub fn may_have_been_applied(&self) -> bool {
        matches!(self, ProposeError::Unknown { .. })
    }
}

#[cfg(test)]
mod tests {
    use martelo_proto::NotLeader;

    use super::*;

    #[test]
    fn every_node_error_code_has_advice_that_is_a_full_sentence_in_parentheses() {
        for code in ErrorCode::ALL {
            let error = ApiError {
                code: code.into(),
                ..ApiError::default()
            };
            let text = advice(&error);
            assert!(
                text.starts_with('(') && text.ends_with(')'),
                "{code}: {text}"
            );
        }
    }

    #[test]
    fn quorum_at_risk_says_to_use_force_and_what_it_costs() {
        let error = ClientError::from_api(
            "127.0.0.1:7001",
            ApiError::new(
                ErrorCode::QuorumAtRisk,
                "removing node 2 leaves 1 of 3 voters",
            )
            .with_group(3),
        );
        let text = error.to_string();
        assert!(text.starts_with("node 127.0.0.1:7001 answered quorum_at_risk: removing node 2"));
        assert!(text.contains("--force"), "{text}");
        assert!(text.contains("unable to commit"), "{text}");
        assert_eq!(error.code().as_str(), "quorum_at_risk");
    }

    #[test]
    fn not_leader_names_the_leader() {
        let error = ClientError::from_api(
            "127.0.0.1:7001",
            ApiError::not_leader(NotLeader {
                group_id: 2,
                leader_id: Some(3),
                leader_address: "127.0.0.1:7003".into(),
                term: 4,
            }),
        );
        assert!(
            error.to_string().contains("node 3 at 127.0.0.1:7003 leads"),
            "{error}"
        );
        assert_eq!(error.code(), ClientErrorCode::Server(ErrorCode::NotLeader));
    }

    #[test]
    fn cluster_not_initialized_says_to_run_cluster_init() {
        let error = ClientError::from_api(
            "10.0.0.1:7001",
            ApiError::new(ErrorCode::ClusterNotInitialized, "no cluster state"),
        );
        assert!(matches!(error, ClientError::ClusterNotInitialized { .. }));
        assert!(error.to_string().contains("run `martelo cluster init`"));
        assert_eq!(error.code().as_str(), "cluster_not_initialized");
    }

    #[test]
    fn a_node_error_is_retryable_exactly_when_its_code_is() {
        for code in ErrorCode::ALL
            .into_iter()
            .filter(|code| *code != ErrorCode::NotLeader)
        {
            let error = ClientError::from_api("127.0.0.1:7001", ApiError::new(code, "canned"));
            assert_eq!(error.is_retryable(), code.is_retryable(), "{code}");
        }
        let uninitialized = ClientError::ClusterNotInitialized {
            address: "127.0.0.1:7001".into(),
        };
        assert!(uninitialized.is_retryable());
    }

    #[test]
    fn unreachable_names_the_address_and_asks_whether_the_node_runs() {
        let error = ClientError::Unreachable {
            address: "127.0.0.1:7009".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            error.to_string(),
            "cannot reach a martelo node at 127.0.0.1:7009 (connection refused); is the node \
             running, and is the address right?"
        );
        assert_eq!(error.code().as_str(), "unreachable");
        assert_eq!(error.server_code(), ErrorCode::Unavailable);
    }

    #[test]
    fn an_unknown_proposal_outcome_is_never_worded_as_a_failure() {
        let error = ProposeError::Unknown {
            attempts: 3,
            last_error: ClientError::Deadline {
                deadline: Duration::from_secs(5),
                attempts: 3,
                last: "timeout".into(),
            },
        };
        let text = error.to_string();
        assert!(text.contains("may or may not have been applied"), "{text}");
        assert!(text.contains("never report it as failed"), "{text}");
        assert_eq!(error.code(), ErrorCode::UnknownOutcome);
        assert!(error.may_have_been_applied());
    }
}
