//! Stable strings and retry semantics of [`ErrorCode`], and [`ApiError`] constructors.
//!
//! [`ErrorCode::retry_class`] is the one place that says how each code may be retried;
//! everything else (the client's decision function, `may_have_been_applied`,
//! `is_retryable`) derives from it rather than matching on codes again.
//!
//! The wire carries the enum's number; people, logs, metric labels and JSON carry the
//! snake_case string from [`ErrorCode::as_code_str`]. Both are append-only (README.md).

use std::fmt;

use crate::v1::{ApiError, ErrorCode, NotLeader};

impl ErrorCode {
    /// Every code, in wire order. A unit test checks that no generated variant is missing.
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::Unspecified,
        ErrorCode::Internal,
        ErrorCode::InvalidArgument,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnknownGroup,
        ErrorCode::NotLeader,
        ErrorCode::UnknownOutcome,
        ErrorCode::Timeout,
        ErrorCode::ClusterNotInitialized,
        ErrorCode::ClusterAlreadyInitialized,
        ErrorCode::QuorumAtRisk,
        ErrorCode::Unavailable,
        ErrorCode::Overloaded,
        ErrorCode::UnknownNode,
        ErrorCode::AuctionNotFound,
        ErrorCode::WrongGroup,
        ErrorCode::WrongNode,
        ErrorCode::UnsupportedCodec,
        ErrorCode::ChangeInProgress,
        ErrorCode::ClockSkew,
        ErrorCode::PermissionDenied,
    ];

    /// The stable, machine-readable name: snake_case, without the `ERROR_CODE_` prefix.
    pub const fn as_code_str(self) -> &'static str {
        match self {
            ErrorCode::Unspecified => "unspecified",
            ErrorCode::Internal => "internal",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnknownGroup => "unknown_group",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::UnknownOutcome => "unknown_outcome",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ClusterNotInitialized => "cluster_not_initialized",
            ErrorCode::ClusterAlreadyInitialized => "cluster_already_initialized",
            ErrorCode::QuorumAtRisk => "quorum_at_risk",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::UnknownNode => "unknown_node",
            ErrorCode::AuctionNotFound => "auction_not_found",
            ErrorCode::WrongGroup => "wrong_group",
            ErrorCode::WrongNode => "wrong_node",
            ErrorCode::UnsupportedCodec => "unsupported_codec",
            ErrorCode::ChangeInProgress => "change_in_progress",
            ErrorCode::ClockSkew => "clock_skew",
            ErrorCode::PermissionDenied => "permission_denied",
        }
    }

    /// The inverse of [`ErrorCode::as_code_str`]; `None` for any other string.
    pub fn from_code_str(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|candidate| candidate.as_code_str() == code)
    }

    /// How a caller may retry after a node answered with this code: the one classification
    /// of every code, from which [`ErrorCode::may_have_been_applied`],
    /// [`ErrorCode::is_retryable`] and the client library's decision function
    /// (`martelo_client::decide`) all follow. See [`RetryClass`] for what each class means
    /// and why the codes that are easy to misplace sit where they do.
    pub const fn retry_class(self) -> RetryClass {
        match self {
            // A leader that proposed and then lost leadership answers `not_leader`, and its
            // entry may still commit under the next leader.
            ErrorCode::NotLeader => RetryClass::FollowLeader,
            // `internal` and `unspecified`: see `RetryClass::SameRequestId`.
            ErrorCode::UnknownOutcome
            | ErrorCode::Timeout
            | ErrorCode::Internal
            | ErrorCode::Unspecified => RetryClass::SameRequestId,
            // The node is the right one: its queue is full, or a membership change of the
            // group has not finished.
            ErrorCode::Overloaded | ErrorCode::ChangeInProgress => RetryClass::Busy,
            // The node cannot serve now; another member can (a replica without skew can win
            // the next election), or this one later.
            ErrorCode::Unavailable | ErrorCode::ClockSkew => RetryClass::Safe,
            // See `RetryClass::AfterTopologyRefresh`.
            ErrorCode::UnknownGroup | ErrorCode::WrongNode | ErrorCode::ClusterNotInitialized => {
                RetryClass::AfterTopologyRefresh
            }
            // Decided before the log, and the same bytes get the same answer anywhere.
            ErrorCode::InvalidArgument
            | ErrorCode::PayloadTooLarge
            | ErrorCode::WrongGroup
            | ErrorCode::UnsupportedCodec
            | ErrorCode::ClusterAlreadyInitialized
            | ErrorCode::QuorumAtRisk
            | ErrorCode::UnknownNode
            | ErrorCode::AuctionNotFound
            | ErrorCode::PermissionDenied => RetryClass::Never,
        }
    }

    /// Whether the command of a `Propose` that got this error might still be (or become)
    /// applied. When true, the caller must not report failure: it retries with the same
    /// request id, or reports the outcome as unknown (I9). Unknown codes count as true
    /// (they decode as `Unspecified`), because assuming "not applied" is the unsafe guess.
    pub const fn may_have_been_applied(self) -> bool {
        self.retry_class().may_have_been_applied()
    }

    /// Whether sending the same request again (same bytes, same request id) can succeed:
    /// true for every class but [`RetryClass::Never`]. The retry may have to wait, go to
    /// another member or follow a leader hint first; [`ErrorCode::retry_class`] says which.
    pub const fn is_retryable(self) -> bool {
        self.retry_class().is_retryable()
    }

    /// The gRPC status code for the rare cases where a server must fail the call itself
    /// instead of answering with an [`ApiError`] (an interceptor, a stream that has not
    /// started). `PayloadTooLarge` maps to `OutOfRange`, which is what tonic itself answers
    /// when a message exceeds the configured limit.
    pub const fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::Unspecified | ErrorCode::Internal => tonic::Code::Internal,
            ErrorCode::InvalidArgument | ErrorCode::WrongGroup => tonic::Code::InvalidArgument,
            ErrorCode::PayloadTooLarge => tonic::Code::OutOfRange,
            ErrorCode::UnknownGroup | ErrorCode::UnknownNode | ErrorCode::AuctionNotFound => {
                tonic::Code::NotFound
            }
            ErrorCode::UnknownOutcome | ErrorCode::Timeout => tonic::Code::DeadlineExceeded,
            ErrorCode::NotLeader
            | ErrorCode::ClusterNotInitialized
            | ErrorCode::QuorumAtRisk
            | ErrorCode::WrongNode
            | ErrorCode::ChangeInProgress
            | ErrorCode::ClockSkew => tonic::Code::FailedPrecondition,
            ErrorCode::ClusterAlreadyInitialized => tonic::Code::AlreadyExists,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Overloaded => tonic::Code::ResourceExhausted,
            ErrorCode::UnsupportedCodec => tonic::Code::Unimplemented,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
        }
    }
}

/// What a caller may do after a node answered with an error code; see
/// [`ErrorCode::retry_class`] for which code is in which class.
///
/// Two questions decide the class: may the command have been applied (only
/// [`RetryClass::FollowLeader`] and [`RetryClass::SameRequestId`]: retry with the same
/// request id, and never report the command as failed, I9), and where may the retry go.
/// A read changes nothing, so for reads only the second question matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryClass {
    /// Permanent: the request was refused before it reached any log, and sending it again
    /// unchanged cannot help: the request, the caller's input or the cluster (`force` for
    /// `quorum_at_risk`) must change first. Not applied.
    Never,
    /// Not applied; the node is the right one but busy (`overloaded`,
    /// `change_in_progress`): ask it again after a back-off.
    Busy,
    /// Not applied; this node cannot serve the request now (`unavailable`, `clock_skew`):
    /// safe to send anywhere, to another member or to this one later.
    Safe,
    /// Not applied, and the caller's picture of the cluster is wrong about this node:
    /// refresh the topology and send to a member that holds the group.
    /// - `unknown_group`: the node holds no replica of the group (never had one, or it was
    ///   removed). It is checked before anything is proposed.
    /// - `wrong_node`: another node answers at the address than the one the caller meant
    ///   (an address reused); the request was refused unread.
    /// - `cluster_not_initialized`: the node has no cluster state, so it has no group to
    ///   propose into. Another member may have joined already (a node just added, or one
    ///   whose data was wiped); when none has, retries run into the deadline and the error
    ///   says to run `martelo cluster init`.
    AfterTopologyRefresh,
    /// `not_leader`: send to the leader the node names (or another member), with the same
    /// request id. May have been applied: openraft also answers "not leader" to a write
    /// whose leader stepped down after appending it, and the entry may still commit.
    FollowLeader,
    /// May have been applied: retry only with the same request id (the engine answers a
    /// repeat with the first outcome, I2), and report "unknown" if no answer comes.
    /// - `unknown_outcome`, `timeout`: the command was (or may have been) proposed.
    /// - `internal`: a bug or a broken invariant on the node, which can strike after the
    ///   command was applied (encoding the answer, reading the state back). Calling it
    ///   "not applied" could report an applied bid as failed, so it counts as applied-maybe;
    ///   a bug that is not transient runs into the deadline and is reported as unknown.
    /// - `unspecified`: never sent; it is what an old peer decodes a newer code as, and is
    ///   treated like `internal`.
    SameRequestId,
}

impl RetryClass {
    /// True for [`RetryClass::FollowLeader`] and [`RetryClass::SameRequestId`].
    pub const fn may_have_been_applied(self) -> bool {
        matches!(self, RetryClass::FollowLeader | RetryClass::SameRequestId)
    }

    /// True for every class but [`RetryClass::Never`].
    pub const fn is_retryable(self) -> bool {
        !matches!(self, RetryClass::Never)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_code_str())
    }
}

impl ApiError {
    /// An error with `code` and a message for people. Use [`ApiError::not_leader`] for
    /// `NotLeader`, which must carry the leader hint.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        debug_assert!(code != ErrorCode::NotLeader, "use ApiError::not_leader");
        ApiError {
            code: code.into(),
            message: message.into(),
            not_leader: None,
            group_id: 0,
        }
    }

    /// Sets the group the error is about.
    #[must_use]
    pub fn with_group(mut self, group_id: u64) -> ApiError {
        self.group_id = group_id;
        self
    }

    /// The structured "not the leader" answer, with a message that says who is.
    pub fn not_leader(hint: NotLeader) -> ApiError {
        let message = match hint.leader_id {
            Some(leader_id) if hint.leader_address.is_empty() => format!(
                "not the leader of group {}; node {leader_id} leads (address unknown)",
                hint.group_id
            ),
            Some(leader_id) => format!(
                "not the leader of group {}; node {leader_id} at {} leads",
                hint.group_id, hint.leader_address
            ),
            None => format!(
                "not the leader of group {}; no leader is known",
                hint.group_id
            ),
        };
        ApiError {
            code: ErrorCode::NotLeader.into(),
            message,
            group_id: hint.group_id,
            not_leader: Some(hint),
        }
    }

    /// The leader hint, when this is a `NotLeader` answer.
    pub fn leader_hint(&self) -> Option<&NotLeader> {
        if self.code() == ErrorCode::NotLeader {
            self.not_leader.as_ref()
        } else {
            None
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.code(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_code_is_listed_in_all_in_wire_order() {
        // prost only converts known numbers, so scanning a range past the last code finds
        // every generated variant; a new one missing from ALL fails here.
        let generated: Vec<ErrorCode> = (0..256)
            .filter_map(|number| ErrorCode::try_from(number).ok())
            .collect();
        assert_eq!(generated, ErrorCode::ALL.to_vec());
    }

    #[test]
    fn code_strings_round_trip_and_are_unique_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_code_str();
            assert!(seen.insert(text), "duplicate code string {text}");
            assert!(
                text.bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte == b'_')
            );
            assert_eq!(ErrorCode::from_code_str(text), Some(code));
            assert_eq!(code.to_string(), text);
        }
        assert_eq!(ErrorCode::from_code_str("NOT_LEADER"), None);
        assert_eq!(ErrorCode::from_code_str(""), None);
    }

    #[test]
    fn code_string_is_the_proto_name_without_prefix() {
        // Ties the stable strings to the .proto names, so a rename in one shows in the other.
        for code in ErrorCode::ALL {
            let proto_name = code.as_str_name();
            let expected = proto_name
                .strip_prefix("ERROR_CODE_")
                .unwrap()
                .to_ascii_lowercase();
            assert_eq!(code.as_code_str(), expected);
        }
    }

    #[test]
    fn stable_numbers_never_change() {
        // The wire format. Changing any of these breaks every peer and stored client.
        assert_eq!(ErrorCode::Unspecified as i32, 0);
        assert_eq!(ErrorCode::NotLeader as i32, 5);
        assert_eq!(ErrorCode::UnknownOutcome as i32, 6);
        assert_eq!(ErrorCode::QuorumAtRisk as i32, 10);
        assert_eq!(ErrorCode::ClockSkew as i32, 19);
        assert_eq!(ErrorCode::PermissionDenied as i32, 20);
    }

    #[test]
    fn timeout_and_not_leader_do_not_prove_the_command_was_not_applied() {
        for code in [
            ErrorCode::NotLeader,
            ErrorCode::UnknownOutcome,
            ErrorCode::Timeout,
        ] {
            assert!(code.may_have_been_applied(), "{code}");
            assert!(code.is_retryable(), "{code}");
        }
        assert!(ErrorCode::Unspecified.may_have_been_applied());
        for code in [ErrorCode::InvalidArgument, ErrorCode::PayloadTooLarge] {
            assert!(!code.may_have_been_applied(), "{code}");
            assert!(!code.is_retryable(), "{code}");
        }
    }

    /// Every code's class, written out, in wire order: moving a code to another class is a
    /// decision that shows in the diff of this table.
    const CLASSES: [(ErrorCode, RetryClass); 21] = [
        (ErrorCode::Unspecified, RetryClass::SameRequestId),
        (ErrorCode::Internal, RetryClass::SameRequestId),
        (ErrorCode::InvalidArgument, RetryClass::Never),
        (ErrorCode::PayloadTooLarge, RetryClass::Never),
        (ErrorCode::UnknownGroup, RetryClass::AfterTopologyRefresh),
        (ErrorCode::NotLeader, RetryClass::FollowLeader),
        (ErrorCode::UnknownOutcome, RetryClass::SameRequestId),
        (ErrorCode::Timeout, RetryClass::SameRequestId),
        (
            ErrorCode::ClusterNotInitialized,
            RetryClass::AfterTopologyRefresh,
        ),
        (ErrorCode::ClusterAlreadyInitialized, RetryClass::Never),
        (ErrorCode::QuorumAtRisk, RetryClass::Never),
        (ErrorCode::Unavailable, RetryClass::Safe),
        (ErrorCode::Overloaded, RetryClass::Busy),
        (ErrorCode::UnknownNode, RetryClass::Never),
        (ErrorCode::AuctionNotFound, RetryClass::Never),
        (ErrorCode::WrongGroup, RetryClass::Never),
        (ErrorCode::WrongNode, RetryClass::AfterTopologyRefresh),
        (ErrorCode::UnsupportedCodec, RetryClass::Never),
        (ErrorCode::ChangeInProgress, RetryClass::Busy),
        (ErrorCode::ClockSkew, RetryClass::Safe),
        (ErrorCode::PermissionDenied, RetryClass::Never),
    ];

    #[test]
    fn every_generated_code_has_the_retry_class_in_the_table() {
        // The same range scan as above: a code added to the .proto without a row here fails.
        let generated: Vec<ErrorCode> = (0..256)
            .filter_map(|number| ErrorCode::try_from(number).ok())
            .collect();
        let listed: Vec<ErrorCode> = CLASSES.iter().map(|(code, _)| *code).collect();
        assert_eq!(listed, generated);
        for (code, class) in CLASSES {
            assert_eq!(code.retry_class(), class, "{code}");
        }
    }

    #[test]
    fn applied_maybe_and_retryable_follow_the_retry_class() {
        for (code, class) in CLASSES {
            let maybe_applied =
                matches!(class, RetryClass::FollowLeader | RetryClass::SameRequestId);
            assert_eq!(code.may_have_been_applied(), maybe_applied, "{code}");
            assert_eq!(code.is_retryable(), class != RetryClass::Never, "{code}");
        }
    }

    #[test]
    fn internal_may_have_been_applied_and_is_retried_with_the_same_request_id() {
        // A bug can strike after the apply (encoding the answer): "not applied" would be the
        // unsafe guess, and giving up at once would turn "unknown" into "failed".
        assert_eq!(ErrorCode::Internal.retry_class(), RetryClass::SameRequestId);
        assert!(ErrorCode::Internal.may_have_been_applied());
        assert!(ErrorCode::Internal.is_retryable());
    }

    #[test]
    fn a_stale_picture_of_the_cluster_proves_nothing_was_applied_and_is_retryable() {
        for code in [
            ErrorCode::UnknownGroup,
            ErrorCode::WrongNode,
            ErrorCode::ClusterNotInitialized,
        ] {
            assert_eq!(
                code.retry_class(),
                RetryClass::AfterTopologyRefresh,
                "{code}"
            );
            assert!(!code.may_have_been_applied(), "{code}");
            assert!(code.is_retryable(), "{code}");
        }
    }

    #[test]
    fn payload_too_large_matches_tonics_own_limit_status() {
        assert_eq!(
            ErrorCode::PayloadTooLarge.grpc_code(),
            tonic::Code::OutOfRange
        );
        assert_eq!(ErrorCode::Unavailable.grpc_code(), tonic::Code::Unavailable);
    }

    #[test]
    fn not_leader_error_carries_the_hint_and_names_the_leader() {
        let error = ApiError::not_leader(NotLeader {
            group_id: 3,
            leader_id: Some(2),
            leader_address: "127.0.0.1:7002".to_owned(),
            term: 9,
        });
        assert_eq!(error.code(), ErrorCode::NotLeader);
        assert_eq!(error.group_id, 3);
        assert_eq!(error.leader_hint().and_then(|hint| hint.leader_id), Some(2));
        assert_eq!(
            error.to_string(),
            "not_leader: not the leader of group 3; node 2 at 127.0.0.1:7002 leads"
        );

        let unknown = ApiError::not_leader(NotLeader {
            group_id: 1,
            ..NotLeader::default()
        });
        assert!(unknown.message.contains("no leader is known"));
    }

    #[test]
    fn leader_hint_is_ignored_on_other_codes() {
        let mut error = ApiError::new(ErrorCode::Timeout, "read timed out").with_group(4);
        error.not_leader = Some(NotLeader::default());
        assert_eq!(error.leader_hint(), None);
        assert_eq!(error.to_string(), "timeout: read timed out");
    }
}
