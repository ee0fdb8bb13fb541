//! What one attempt's result means, as pure functions over canned answers.
//!
//! The runtime makes a gRPC call and hands the result here; the verdict says whether the
//! request is done, must stop, or goes to the retry rule ([`crate::retry`]) as which kind of
//! attempt. Keeping this apart from the sockets lets tests drive every branch with
//! hand-made `ApiError`s and `tonic::Status`es.
//!
//! A node's error answer is judged by its code's [`RetryClass`]
//! (`martelo_proto::error_code`), the one table of how each code may be retried; the
//! functions here only say what each class means for a proposal, a read or an admin change.
//!
//! The I9 line runs through [`Failure`]: only a connection that was never made proves that
//! a request did not reach a node. Every other transport failure may have happened after
//! the node received the request.

use std::error::Error as _;
use std::time::Duration;

use martelo_proto::error_code::RetryClass;
use martelo_proto::{
    ApiError, Applied, AuctionPage, AuctionView, ListAuctionsResponse, ListUsersResponse,
    NotLeader, ProposeResponse, ReadAuctionResponse, ReadUserResponse, ShowAuctionResponse,
    UserList, UserRecord, list_auctions_response, list_users_response, propose_response,
    read_auction_response, read_user_response, show_auction_response,
};

use crate::error::ClientError;

/// Why a call produced no answer.
#[derive(Debug)]
pub enum CallError {
    /// gRPC failed: connection, transport or a status the server's framework sent.
    Status(tonic::Status),
    /// The attempt's share of the deadline ran out.
    TimedOut(Duration),
    /// The address cannot be turned into an endpoint; nothing was sent.
    BadAddress(String),
}

/// A failed call, split along I9.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: the request was never sent.
    NotSent,
    /// The request may have reached the node.
    Indeterminate,
    /// Something answered, but not martelo's gRPC API (a metrics port, a web server): no
    /// command can have been applied, and asking again cannot help.
    WrongServer,
}

/// Classifies a call that produced no answer, and turns it into the error to report.
pub fn classify_call_error(address: &str, error: CallError) -> (Failure, ClientError) {
    match error {
        CallError::BadAddress(reason) => (
            Failure::NotSent,
            ClientError::InvalidInput(format!("bad node address {address:?}: {reason}")),
        ),
        CallError::TimedOut(after) => (
            Failure::Indeterminate,
            ClientError::Transport {
                address: address.to_owned(),
                code: tonic::Code::DeadlineExceeded,
                message: format!("no answer within {after:?}"),
            },
        ),
        CallError::Status(status) if never_connected(&status) => (
            Failure::NotSent,
            ClientError::Unreachable {
                address: address.to_owned(),
                reason: connect_reason(&status),
            },
        ),
        CallError::Status(status) if speaks_no_grpc(&status) => (
            Failure::WrongServer,
            ClientError::NotMartelo {
                address: address.to_owned(),
                detail: connect_reason(&status),
            },
        ),
        // Indeterminate still: a node that crashed mid-call looks the same. Only the words
        // differ, so that a wrong port (an HTTP/1 metrics endpoint hangs up on the HTTP/2
        // preface) is easy to tell.
        CallError::Status(status) if closed_without_answer(&status) => (
            Failure::Indeterminate,
            ClientError::ConnectionClosed {
                address: address.to_owned(),
            },
        ),
        CallError::Status(status) => (
            Failure::Indeterminate,
            ClientError::Transport {
                address: address.to_owned(),
                code: status.code(),
                message: status.message().to_owned(),
            },
        ),
    }
}

/// True when tonic failed while connecting, so the request was never written.
fn never_connected(status: &tonic::Status) -> bool {
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// True when the peer's answer was not HTTP/2 gRPC at all: an HTTP/1 server (a metrics
/// port) answers the HTTP/2 preface with text, which the HTTP/2 layer rejects as a malformed
/// frame; a web server speaking HTTP/2 answers without gRPC's content type. A martelo node
/// never does either, so this cannot hide a request that reached one.
fn speaks_no_grpc(status: &tonic::Status) -> bool {
    let mut texts = vec![status.message().to_ascii_lowercase()];
    let mut source = status.source();
    while let Some(error) = source {
        texts.push(error.to_string().to_ascii_lowercase());
        source = error.source();
    }
    texts.iter().any(|text| {
        text.contains("frame with invalid size")
            || text.contains("invalid content-type")
            || text.contains("invalid preface")
            || text.contains("http/1")
    })
}

/// True when the server hung up without an answer: hyper's "connection closed", or a reset
/// or broken pipe underneath (an HTTP/1 metrics endpoint hangs up on the HTTP/2 preface in
/// any of these ways, depending on timing; so does a node that dies mid-call).
fn closed_without_answer(status: &tonic::Status) -> bool {
    use std::io::ErrorKind;
    let mut source = status.source();
    while let Some(error) = source {
        if error.to_string() == "connection closed" {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::BrokenPipe
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// The innermost cause of a connect failure ("Connection refused (os error 111)"), which
/// says more than tonic's "tcp connect error".
fn connect_reason(status: &tonic::Status) -> String {
    let mut reason = status.message().to_owned();
    let mut source = status.source();
    while let Some(error) = source {
        reason = error.to_string();
        source = error.source();
    }
    reason
}

/// What the retry rule should hear about an attempt that did not finish the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retry {
    /// `not_leader`, with the node's hint.
    NotLeader(Option<NotLeader>),
    /// Nothing was proposed by this attempt; try another member after a back-off.
    NotSent,
    /// Nothing was proposed; the same node is right but busy: back off and ask it again.
    Busy,
    /// The command may have been proposed.
    Indeterminate,
}

/// The verdict on one attempt of a request whose answer is a `T`.
#[derive(Debug)]
pub enum Verdict<T> {
    /// The node answered; the request is done.
    Done(T),
    /// Feed `retry` to the retry rule; `error` is what to report if it gives up.
    Retry { retry: Retry, error: ClientError },
    /// Retrying the same request cannot help. For a proposal, `error`'s code proves that
    /// this attempt applied nothing.
    Stop(ClientError),
}

/// Classifies one `Propose` attempt at `address`.
pub fn classify_propose(
    address: &str,
    result: Result<ProposeResponse, CallError>,
) -> Verdict<Applied> {
    let response = match result {
        Ok(response) => response,
        Err(error) => return from_call_error(address, error),
    };
    match response.result {
        Some(propose_response::Result::Applied(applied)) => Verdict::Done(applied),
        Some(propose_response::Result::Error(error)) => classify_propose_error(address, error),
        // An empty answer is a broken node; whether it applied the command is unknown.
        None => Verdict::Retry {
            retry: Retry::Indeterminate,
            error: empty_answer(address, "propose response"),
        },
    }
}

/// Classifies a node's error answer to `Propose`, by the code's [`RetryClass`]. A class
/// that may have been applied keeps the proposal open (the retry reuses the request id);
/// only [`RetryClass::Never`] stops, and it proves nothing was applied.
pub fn classify_propose_error(address: &str, error: ApiError) -> Verdict<Applied> {
    let retry = match error.code().retry_class() {
        RetryClass::FollowLeader => Retry::NotLeader(error.not_leader.clone()),
        RetryClass::SameRequestId => Retry::Indeterminate,
        // Nothing was proposed and this node cannot propose it now; another member may.
        RetryClass::Safe | RetryClass::AfterTopologyRefresh => Retry::NotSent,
        RetryClass::Busy => Retry::Busy,
        RetryClass::Never => return Verdict::Stop(ClientError::from_api(address, error)),
    };
    Verdict::Retry {
        retry,
        error: ClientError::from_api(address, error),
    }
}

/// Classifies one `ReadAuction` attempt. A read changes nothing, so "indeterminate" only
/// means "ask again".
pub fn classify_read(
    address: &str,
    result: Result<ReadAuctionResponse, CallError>,
) -> Verdict<AuctionView> {
    let response = match result {
        Ok(response) => response,
        Err(error) => return from_call_error(address, error),
    };
    match response.result {
        Some(read_auction_response::Result::Auction(view)) => Verdict::Done(view),
        Some(read_auction_response::Result::Error(error)) => classify_read_error(address, error),
        None => Verdict::Retry {
            retry: Retry::Indeterminate,
            error: empty_answer(address, "read response"),
        },
    }
}

/// Classifies one admin `ShowAuction` attempt, like a read.
pub fn classify_show(
    address: &str,
    result: Result<ShowAuctionResponse, CallError>,
) -> Verdict<AuctionView> {
    let response = match result {
        Ok(response) => response,
        Err(error) => return from_call_error(address, error),
    };
    match response.result {
        Some(show_auction_response::Result::Auction(view)) => Verdict::Done(view),
        Some(show_auction_response::Result::Error(error)) => classify_read_error(address, error),
        None => Verdict::Retry {
            retry: Retry::Indeterminate,
            error: empty_answer(address, "show auction response"),
        },
    }
}

/// Classifies one `ListAuctions` attempt, like a read.
pub fn classify_list(
    address: &str,
    result: Result<ListAuctionsResponse, CallError>,
) -> Verdict<AuctionPage> {
    let response = match result {
        Ok(response) => response,
        Err(error) => return from_call_error(address, error),
    };
    match response.result {
        Some(list_auctions_response::Result::Page(page)) => Verdict::Done(page),
        Some(list_auctions_response::Result::Error(error)) => classify_read_error(address, error),
        None => Verdict::Retry {
            retry: Retry::Indeterminate,
            error: empty_answer(address, "list auctions response"),
        },
    }
}

/// Classifies one `ReadUser` attempt (group 0), like a read.
pub fn classify_read_user(
    address: &str,
    result: Result<ReadUserResponse, CallError>,
) -> Verdict<UserRecord> {
    let answer = result.map(|response| {
        response.result.map(|result| match result {
            read_user_response::Result::User(record) => Ok(record),
            read_user_response::Result::Error(error) => Err(error),
        })
    });
    read_verdict(address, "read user response", answer)
}

/// Classifies one `ListUsers` attempt (group 0), like a read.
pub fn classify_list_users(
    address: &str,
    result: Result<ListUsersResponse, CallError>,
) -> Verdict<UserList> {
    let answer = result.map(|response| {
        response.result.map(|result| match result {
            list_users_response::Result::Page(page) => Ok(page),
            list_users_response::Result::Error(error) => Err(error),
        })
    });
    read_verdict(address, "list users response", answer)
}

/// A read's answer, once its `oneof` is unpacked: the value, a node's error (judged by
/// [`classify_read_error`]), or nothing (a broken node: ask again).
fn read_verdict<T>(
    address: &str,
    what: &'static str,
    answer: Result<Option<Result<T, ApiError>>, CallError>,
) -> Verdict<T> {
    match answer {
        Err(error) => from_call_error(address, error),
        Ok(Some(Ok(value))) => Verdict::Done(value),
        Ok(Some(Err(error))) => classify_read_error(address, error),
        Ok(None) => Verdict::Retry {
            retry: Retry::Indeterminate,
            error: empty_answer(address, what),
        },
    }
}

/// Classifies a node's error answer to a read, by the code's [`RetryClass`]. A read changes
/// nothing, so a class that may have been applied only means "ask another member".
pub fn classify_read_error<T>(address: &str, error: ApiError) -> Verdict<T> {
    let retry = match error.code().retry_class() {
        RetryClass::FollowLeader => Retry::NotLeader(error.not_leader.clone()),
        RetryClass::Busy => Retry::Busy,
        RetryClass::Safe | RetryClass::AfterTopologyRefresh | RetryClass::SameRequestId => {
            Retry::NotSent
        }
        RetryClass::Never => return Verdict::Stop(ClientError::from_api(address, error)),
    };
    Verdict::Retry {
        retry,
        error: ClientError::from_api(address, error),
    }
}

/// Classifies a node's error answer to an admin change (membership, leadership), by the
/// code's [`RetryClass`]. Changes are retried only where the node proves it did nothing and
/// the caller's picture of the cluster holds: a redirect ([`RetryClass::FollowLeader`]), or
/// a busy or unavailable answer. Anything else is reported:
/// - [`RetryClass::SameRequestId`]: the change may have happened, and a change carries no
///   request id, so a retry could report an error for a change that in fact happened
///   (removing a node twice says `unknown_node`);
/// - [`RetryClass::AfterTopologyRefresh`]: the operator's picture of the cluster is wrong
///   about the node (it lacks the group or the cluster state); a change is not re-aimed
///   behind their back, and the message says what to check.
pub fn classify_admin_error<T>(address: &str, error: ApiError) -> Verdict<T> {
    let retry = match error.code().retry_class() {
        RetryClass::FollowLeader => Retry::NotLeader(error.not_leader.clone()),
        RetryClass::Safe => Retry::NotSent,
        RetryClass::Busy => Retry::Busy,
        RetryClass::SameRequestId | RetryClass::AfterTopologyRefresh | RetryClass::Never => {
            return Verdict::Stop(ClientError::from_api(address, error));
        }
    };
    Verdict::Retry {
        retry,
        error: ClientError::from_api(address, error),
    }
}

fn from_call_error<T>(address: &str, error: CallError) -> Verdict<T> {
    let (failure, error) = classify_call_error(address, error);
    let retry = match failure {
        Failure::NotSent => Retry::NotSent,
        Failure::Indeterminate => Retry::Indeterminate,
        Failure::WrongServer => return Verdict::Stop(error),
    };
    Verdict::Retry { retry, error }
}

fn empty_answer(address: &str, what: &'static str) -> ClientError {
    ClientError::Decode {
        address: address.to_owned(),
        what,
        reason: "the answer holds neither a result nor an error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use martelo_proto::ErrorCode;

    use super::*;

    const ADDRESS: &str = "127.0.0.1:7001";

    fn api(code: ErrorCode) -> ApiError {
        ApiError {
            code: code.into(),
            message: format!("canned {code}"),
            ..ApiError::default()
        }
    }

    fn answer(error: ApiError) -> Result<ProposeResponse, CallError> {
        Ok(ProposeResponse {
            result: Some(propose_response::Result::Error(error)),
        })
    }

    fn retry_of<T: std::fmt::Debug>(verdict: Verdict<T>) -> Retry {
        match verdict {
            Verdict::Retry { retry, .. } => retry,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn an_applied_answer_is_done() {
        let applied = Applied {
            log_index: 9,
            ..Applied::default()
        };
        let result = Ok(ProposeResponse {
            result: Some(propose_response::Result::Applied(applied.clone())),
        });
        assert!(matches!(
            classify_propose(ADDRESS, result),
            Verdict::Done(done) if done == applied
        ));
    }

    #[test]
    fn not_leader_carries_the_hint_to_the_retry_rule() {
        let hint = NotLeader {
            group_id: 1,
            leader_id: Some(2),
            leader_address: "127.0.0.1:7002".into(),
            term: 3,
        };
        let verdict = classify_propose(ADDRESS, answer(ApiError::not_leader(hint.clone())));
        assert_eq!(retry_of(verdict), Retry::NotLeader(Some(hint)));
    }

    #[test]
    fn unknown_outcome_timeout_and_internal_leave_the_proposal_open() {
        for code in [
            ErrorCode::UnknownOutcome,
            ErrorCode::Timeout,
            ErrorCode::Internal,
            ErrorCode::Unspecified,
        ] {
            let verdict = classify_propose(ADDRESS, answer(api(code)));
            assert_eq!(retry_of(verdict), Retry::Indeterminate, "{code}");
        }
    }

    #[test]
    fn unavailable_moves_on_and_overloaded_backs_off_at_the_same_node() {
        let verdict = classify_propose(ADDRESS, answer(api(ErrorCode::Unavailable)));
        assert_eq!(retry_of(verdict), Retry::NotSent);
        let verdict = classify_propose(ADDRESS, answer(api(ErrorCode::UnknownGroup)));
        assert_eq!(retry_of(verdict), Retry::NotSent);
        let verdict = classify_propose(ADDRESS, answer(api(ErrorCode::Overloaded)));
        assert_eq!(retry_of(verdict), Retry::Busy);
    }

    #[test]
    fn invalid_too_large_and_wrong_group_stop_at_once() {
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::PayloadTooLarge,
            ErrorCode::WrongGroup,
        ] {
            let verdict = classify_propose(ADDRESS, answer(api(code)));
            let Verdict::Stop(error) = verdict else {
                panic!("{code} must stop");
            };
            assert_eq!(error.server_code(), code);
        }
    }

    #[test]
    fn every_code_that_stops_a_proposal_proves_nothing_was_applied() {
        for code in ErrorCode::ALL {
            if let Verdict::Stop(_) = classify_propose(ADDRESS, answer(api(code))) {
                assert!(!code.may_have_been_applied(), "{code}");
            }
        }
    }

    /// What a verdict says, without the error: `None` for `Stop`.
    fn decision<T: std::fmt::Debug>(verdict: Verdict<T>) -> Option<Retry> {
        match verdict {
            Verdict::Retry { retry, .. } => Some(retry),
            Verdict::Stop(_) => None,
            Verdict::Done(value) => panic!("an error answer cannot be done: {value:?}"),
        }
    }

    #[test]
    fn every_code_is_decided_by_its_retry_class_alone() {
        for code in ErrorCode::ALL {
            let class = code.retry_class();
            let propose = match class {
                RetryClass::FollowLeader => Some(Retry::NotLeader(None)),
                RetryClass::SameRequestId => Some(Retry::Indeterminate),
                RetryClass::Safe | RetryClass::AfterTopologyRefresh => Some(Retry::NotSent),
                RetryClass::Busy => Some(Retry::Busy),
                RetryClass::Never => None,
            };
            let read = match class {
                RetryClass::SameRequestId => Some(Retry::NotSent),
                _ => propose.clone(),
            };
            let admin = match class {
                RetryClass::SameRequestId | RetryClass::AfterTopologyRefresh => None,
                _ => propose.clone(),
            };
            let error = api(code);
            assert_eq!(
                decision(classify_propose_error(ADDRESS, error.clone())),
                propose,
                "propose {code}"
            );
            let verdict: Verdict<AuctionView> = classify_read_error(ADDRESS, error.clone());
            assert_eq!(decision(verdict), read, "read {code}");
            let verdict: Verdict<()> = classify_admin_error(ADDRESS, error);
            assert_eq!(decision(verdict), admin, "admin {code}");
        }
    }

    #[test]
    fn an_internal_error_leaves_a_proposal_open_and_sends_a_read_elsewhere() {
        // It may have struck after the apply: the proposal keeps its request id and ends as
        // unknown, never as failed; a read just asks another member.
        let verdict = classify_propose(ADDRESS, answer(api(ErrorCode::Internal)));
        assert_eq!(retry_of(verdict), Retry::Indeterminate);
        let verdict: Verdict<AuctionView> = classify_read_error(ADDRESS, api(ErrorCode::Internal));
        assert_eq!(retry_of(verdict), Retry::NotSent);
        let verdict: Verdict<()> = classify_admin_error(ADDRESS, api(ErrorCode::Internal));
        assert!(matches!(verdict, Verdict::Stop(_)));
    }

    #[test]
    fn unknown_group_wrong_node_and_uninitialized_nodes_send_the_request_to_another_member() {
        for code in [
            ErrorCode::UnknownGroup,
            ErrorCode::ClusterNotInitialized,
            ErrorCode::WrongNode,
        ] {
            let verdict = classify_propose(ADDRESS, answer(api(code)));
            assert_eq!(retry_of(verdict), Retry::NotSent, "propose {code}");
            let verdict: Verdict<AuctionView> = classify_read_error(ADDRESS, api(code));
            assert_eq!(retry_of(verdict), Retry::NotSent, "read {code}");
            // An admin change is not re-aimed: the operator sees the stale picture.
            let verdict: Verdict<()> = classify_admin_error(ADDRESS, api(code));
            assert!(matches!(verdict, Verdict::Stop(_)), "admin {code}");
        }
    }

    #[test]
    fn user_reads_are_judged_like_reads_and_permission_denied_stops() {
        let found = ReadUserResponse {
            result: Some(read_user_response::Result::User(UserRecord::default())),
        };
        assert!(matches!(
            classify_read_user(ADDRESS, Ok(found)),
            Verdict::Done(_)
        ));
        let refused = ReadUserResponse {
            result: Some(read_user_response::Result::Error(api(
                ErrorCode::PermissionDenied,
            ))),
        };
        assert!(matches!(
            classify_read_user(ADDRESS, Ok(refused)),
            Verdict::Stop(_)
        ));
        let empty = ListUsersResponse { result: None };
        assert_eq!(
            retry_of(classify_list_users(ADDRESS, Ok(empty))),
            Retry::Indeterminate
        );
        let verdict = classify_propose(ADDRESS, answer(api(ErrorCode::PermissionDenied)));
        assert!(matches!(verdict, Verdict::Stop(_)));
    }

    #[test]
    fn an_empty_answer_may_hide_an_applied_command() {
        let verdict = classify_propose(ADDRESS, Ok(ProposeResponse { result: None }));
        assert_eq!(retry_of(verdict), Retry::Indeterminate);
    }

    #[test]
    fn a_transport_failure_after_connecting_is_indeterminate() {
        let status = tonic::Status::unavailable("connection reset");
        let verdict = classify_propose(ADDRESS, Err(CallError::Status(status)));
        assert_eq!(retry_of(verdict), Retry::Indeterminate);
        let verdict = classify_propose(ADDRESS, Err(CallError::TimedOut(Duration::from_millis(5))));
        assert_eq!(retry_of(verdict), Retry::Indeterminate);
    }

    #[test]
    fn a_connect_failure_proves_the_request_was_never_sent() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        let (failure, error) = classify_call_error(ADDRESS, CallError::Status(status));
        assert_eq!(failure, Failure::NotSent);
        assert!(
            error.to_string().starts_with(
                "cannot reach a martelo node at 127.0.0.1:7001 (refused); is the node running"
            ),
            "{error}"
        );
    }

    #[test]
    fn reads_retry_everything_transient_and_stop_on_a_missing_auction() {
        let read = |code| {
            classify_read(
                ADDRESS,
                Ok(ReadAuctionResponse {
                    result: Some(read_auction_response::Result::Error(api(code))),
                }),
            )
        };
        assert_eq!(retry_of(read(ErrorCode::Timeout)), Retry::NotSent);
        assert_eq!(retry_of(read(ErrorCode::Unavailable)), Retry::NotSent);
        assert!(matches!(
            read(ErrorCode::AuctionNotFound),
            Verdict::Stop(error) if error.code().as_str() == "auction_not_found"
        ));
    }

    #[test]
    fn listings_follow_hints_and_stop_on_an_invalid_request() {
        let list = |error: ApiError| {
            classify_list(
                ADDRESS,
                Ok(ListAuctionsResponse {
                    result: Some(list_auctions_response::Result::Error(error)),
                }),
            )
        };
        let hint = NotLeader {
            group_id: 2,
            leader_id: Some(3),
            leader_address: "127.0.0.1:7003".into(),
            term: 4,
        };
        assert_eq!(
            retry_of(list(ApiError::not_leader(hint.clone()))),
            Retry::NotLeader(Some(hint))
        );
        assert_eq!(retry_of(list(api(ErrorCode::ClockSkew))), Retry::NotSent);
        assert!(matches!(
            list(api(ErrorCode::InvalidArgument)),
            Verdict::Stop(error) if error.code().as_str() == "invalid_argument"
        ));
        let page = AuctionPage {
            group_id: 2,
            ..AuctionPage::default()
        };
        let done = classify_list(
            ADDRESS,
            Ok(ListAuctionsResponse {
                result: Some(list_auctions_response::Result::Page(page.clone())),
            }),
        );
        assert!(matches!(done, Verdict::Done(answer) if answer == page));
    }

    #[test]
    fn admin_changes_retry_only_where_the_node_did_nothing() {
        let verdict: Verdict<()> = classify_admin_error(ADDRESS, api(ErrorCode::ChangeInProgress));
        assert_eq!(retry_of(verdict), Retry::Busy);
        let verdict: Verdict<()> = classify_admin_error(ADDRESS, api(ErrorCode::Timeout));
        assert!(matches!(verdict, Verdict::Stop(_)));
        let verdict: Verdict<()> = classify_admin_error(ADDRESS, api(ErrorCode::QuorumAtRisk));
        assert!(matches!(verdict, Verdict::Stop(_)));
    }
}
