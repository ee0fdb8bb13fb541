//! The attempt loop every operation shares, and what feeds and reports it.
//!
//! - [`drive`]: runs attempts of one operation on a group until one is done, one must
//!   stop, or the retry rule gives up; used by the client's proposals and reads and by
//!   `admin`'s changes. [`next_attempt`] turns a classified failure into the retry rule's
//!   input while updating the leader cache.
//! - [`proposal_message`], [`meta_proposal_message`]: the `ProposeRequest` of an auction
//!   request or a meta command, checked before anything is sent; [`proposed`]: a served
//!   answer decoded; [`propose_error`]: how a proposal that got no answer is reported (never
//!   failed when it may have been applied).
//! - [`node_status`], [`first_initialized_status`], [`combine_errors`]: the `Status` probes
//!   of seed addresses, shared with `admin`.
//!
//! What does not live here: the retry rule itself ([`crate::retry`]), the judgement of one
//! answer ([`crate::decide`]), the public methods ([`super::Client`]).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use martelo_engine::codec::wire::{self, WireVersion};
use martelo_engine::{GroupId, MetaActor, MetaCommand, Reply, Request, Timestamp};
use martelo_proto::{
    Applied, CLIENT_REQUEST_BYTES_MAX, ErrorCode, META_COMMAND_BYTES_MAX,
    PROPOSAL_COMMAND_BYTES_MAX, ProposeRequest, StatusRequest, StatusResponse, Traceparent,
    check_encoded_len, propose_request,
};
use martelo_types::{self as routing, ShardCount};
use prost::bytes::Bytes;

use super::answers::Proposed;
use crate::channels::{Channels, bounded, request_with_timeout};
use crate::decide::{self, Retry, Verdict};
use crate::error::{ClientError, ProposeError};
use crate::retry::{Attempt, Proposal, RetryPolicy, Step};
use crate::telemetry;
use crate::topology::{Target, Topology};

/// An operation that ended without an answer.
pub(crate) struct Exhausted {
    pub(crate) last_error: ClientError,
    /// Whether any attempt may have reached a node that proposed the command.
    pub(crate) maybe_applied: bool,
    /// True when a node's answer ended it (retrying cannot help), false when the retry rule
    /// gave up.
    pub(crate) stopped: bool,
    pub(crate) attempts: u32,
}

/// What a successful attempt produced, and where.
pub(crate) struct Served<T> {
    pub(crate) value: T,
    pub(crate) target: Target,
    pub(crate) attempts: u32,
}

/// Runs attempts of one operation on `group` until one is done, one must stop, or the
/// retry rule gives up: the shared driver of proposals, reads and admin changes. `send`
/// makes one attempt at a node within the remaining time.
pub(crate) async fn drive<T, F, Fut>(
    topology: &Mutex<Topology>,
    policy: RetryPolicy,
    op: &'static str,
    group: GroupId,
    mut send: F,
) -> Result<Served<T>, Exhausted>
where
    F: FnMut(Target, Duration) -> Fut,
    Fut: Future<Output = Verdict<T>>,
{
    let started = Instant::now();
    let Some(route) = lock(topology).route(group) else {
        return Err(Exhausted {
            last_error: no_node_known(group),
            maybe_applied: false,
            stopped: false,
            attempts: 0,
        });
    };
    let mut proposal = Proposal::new(policy, route.rotation);
    let mut target = route.first;
    loop {
        let remaining = policy.deadline.saturating_sub(started.elapsed());
        telemetry::attempt(op);
        let (retry, error) = match send(target.clone(), remaining).await {
            Verdict::Done(value) => {
                return Ok(Served {
                    value,
                    target,
                    attempts: proposal.attempts(),
                });
            }
            Verdict::Stop(error) => {
                return Err(Exhausted {
                    last_error: error,
                    maybe_applied: proposal.maybe_applied(),
                    stopped: true,
                    attempts: proposal.attempts(),
                });
            }
            Verdict::Retry { retry, error } => (retry, error),
        };
        let attempt = next_attempt(&mut lock(topology), group, &target, &retry);
        let redirected = matches!(attempt, Attempt::NotLeader { leader: Some(_) });
        tracing::debug!(op, group = group.0, node = target.node_id.get(), %error, "attempt failed");
        match proposal.next(attempt, started.elapsed()) {
            Step::Retry { node, after } => {
                telemetry::retry(op, &retry, redirected);
                if !after.is_zero() {
                    tokio::time::sleep(after).await;
                }
                target = node;
            }
            Step::GiveUp { maybe_applied } => {
                let attempts = proposal.attempts();
                let last_error = if attempts >= policy.attempts_max {
                    error
                } else {
                    ClientError::Deadline {
                        deadline: policy.deadline,
                        attempts,
                        last: error.to_string(),
                    }
                };
                return Err(Exhausted {
                    last_error,
                    maybe_applied,
                    stopped: false,
                    attempts,
                });
            }
            // The rule answers `Done` only to `Attempt::Decided`, which is never fed.
            Step::Done => {
                return Err(Exhausted {
                    last_error: error,
                    maybe_applied: true,
                    stopped: false,
                    attempts: proposal.attempts(),
                });
            }
        }
    }
}

/// Turns a classified failure into the retry rule's input, updating the leader cache: a
/// hint teaches the leader; a node that failed or knows no leader stops being the cached one.
pub(crate) fn next_attempt(
    topology: &mut Topology,
    group: GroupId,
    from: &Target,
    retry: &Retry,
) -> Attempt<Target> {
    match retry {
        Retry::NotLeader(hint) => {
            // A node is the authority on whether it leads itself; its hint about who does is
            // weighed by term against what the client already knows.
            topology.forget_leader(group, from.node_id);
            if let Some(hint) = hint {
                topology.observe_hint(group, hint);
            }
            Attempt::NotLeader {
                leader: topology.redirect(group, from),
            }
        }
        Retry::NotSent => {
            topology.forget_leader(group, from.node_id);
            Attempt::NotSent
        }
        Retry::Busy => Attempt::Busy { node: from.clone() },
        Retry::Indeterminate => {
            topology.forget_leader(group, from.node_id);
            Attempt::Indeterminate
        }
    }
}

pub(crate) fn lock(topology: &Mutex<Topology>) -> MutexGuard<'_, Topology> {
    topology
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn propose_error(exhausted: Exhausted) -> ProposeError {
    let Exhausted {
        last_error,
        maybe_applied,
        stopped,
        attempts,
    } = exhausted;
    if maybe_applied {
        return ProposeError::Unknown {
            attempts,
            last_error,
        };
    }
    let message = if stopped {
        last_error.to_string()
    } else {
        format!(
            "no attempt reached a node that could propose the command ({attempts} attempt(s)), \
             so nothing was applied and it is safe to retry. Last error: {last_error}"
        )
    };
    ProposeError::NotApplied {
        code: last_error.server_code(),
        message,
    }
}

/// The `ProposeRequest` for `request`, checked before anything is sent: the group must own
/// the auction, and the message must fit the limits (tonic would otherwise fail it with an
/// error that cannot be told apart from a failure after sending).
pub(crate) fn proposal_message(
    shards: ShardCount,
    group: GroupId,
    request: &Request,
    traceparent: Option<&Traceparent>,
) -> Result<ProposeRequest, ProposeError> {
    if group.0 == 0 || group.0 > u64::from(shards.get()) {
        return Err(not_applied(
            ErrorCode::InvalidArgument,
            format!(
                "{group} is not an auction shard: the cluster has groups 1..={} (meta commands \
                 go to group 0 with propose_meta)",
                shards.get()
            ),
        ));
    }
    let auction = request.action.auction_id();
    if let Some(auction) = auction {
        let owner = routing::group_of(auction, shards);
        if owner != group {
            return Err(not_applied(
                ErrorCode::WrongGroup,
                format!("auction {} belongs to {owner}, not {group}", auction.0),
            ));
        }
    }
    let encoded = encode_command::<_, PROPOSAL_COMMAND_BYTES_MAX>("request", request)?;
    checked_message(
        group,
        request.request_id.as_str(),
        auction.map_or(0, |auction| auction.0),
        propose_request::Command::EncodedRequest(encoded),
        traceparent,
    )
}

/// The `ProposeRequest` for a meta command (group 0), checked before anything is sent: the
/// client API refuses the operator as actor (`permission_denied`; the operator acts through
/// `Admin::propose_meta`), and the message must fit the limits.
pub(crate) fn meta_proposal_message(
    command: &MetaCommand,
    traceparent: Option<&Traceparent>,
) -> Result<ProposeRequest, ProposeError> {
    if command.actor == MetaActor::Operator {
        return Err(not_applied(
            ErrorCode::PermissionDenied,
            "the operator acts only through the admin API (Admin::propose_meta, `martelo \
             user`), never through the client API"
                .to_owned(),
        ));
    }
    let encoded = encode_command::<_, META_COMMAND_BYTES_MAX>("meta command", command)?;
    checked_message(
        GroupId::META,
        command.request_id.as_str(),
        0,
        propose_request::Command::EncodedMetaCommand(encoded),
        traceparent,
    )
}

fn not_applied(code: ErrorCode, message: String) -> ProposeError {
    ProposeError::NotApplied { code, message }
}

/// Encodes a proposal's payload in the current wire version (which carries meta types),
/// refusing one over `BYTES_MAX` before anything is sent.
fn encode_command<T: wire::ClientPayload, const BYTES_MAX: usize>(
    what: &'static str,
    payload: &T,
) -> Result<Bytes, ProposeError> {
    let encoded = wire::encode(what, payload, WireVersion::CURRENT)
        .map_err(|error| not_applied(ErrorCode::InvalidArgument, error.to_string()))?;
    if encoded.len() > BYTES_MAX {
        return Err(not_applied(
            ErrorCode::PayloadTooLarge,
            format!(
                "the encoded command is {} bytes, the limit is {BYTES_MAX}",
                encoded.len()
            ),
        ));
    }
    Ok(Bytes::from(encoded))
}

/// The envelope around an encoded payload, checked against the request size limit.
fn checked_message(
    group: GroupId,
    request_id: &str,
    auction_id: u64,
    command: propose_request::Command,
    traceparent: Option<&Traceparent>,
) -> Result<ProposeRequest, ProposeError> {
    let message = ProposeRequest {
        group_id: group.0,
        request_id: request_id.to_owned(),
        auction_id,
        traceparent: traceparent.map_or_else(String::new, ToString::to_string),
        codec_version: WireVersion::CURRENT.codec_version(),
        attempt: 0, // set per attempt
        command: Some(command),
    };
    check_encoded_len(&message, CLIENT_REQUEST_BYTES_MAX)
        .map_err(|error| not_applied(ErrorCode::PayloadTooLarge, error.message))?;
    Ok(message)
}

/// What a served proposal answered, decoded: the engine's reply and where it sits in the
/// log. A reply that cannot be decoded is reported as unknown: the cluster knows the
/// outcome, the caller does not, and that must never read as a failure.
pub(crate) fn proposed(served: Served<Applied>) -> Result<Proposed, ProposeError> {
    let applied = served.value;
    let reply =
        wire::decode::<Reply, { martelo_proto::PROPOSAL_REPLY_BYTES_MAX }>("reply", &applied.reply)
            .map_err(|error| ProposeError::Unknown {
                attempts: served.attempts,
                last_error: ClientError::Decode {
                    address: served.target.address.clone(),
                    what: "reply",
                    reason: error.to_string(),
                },
            })?;
    Ok(Proposed {
        reply,
        log_index: applied.log_index,
        log_term: applied.log_term,
        timestamp: Timestamp(applied.timestamp_us),
        replayed: applied.replayed,
        decided_without_log: applied.decided_without_log,
        attempts: served.attempts,
        node: served.target.node_id,
    })
}

pub(crate) fn no_node_known(group: GroupId) -> ClientError {
    ClientError::InvalidInput(format!(
        "no node is known for {group}: the client's address book is empty"
    ))
}

/// The `Status` of the first of `addresses` that answers and belongs to an initialized
/// cluster. Uninitialized nodes are skipped; when every node that answered is
/// uninitialized, the error says to run `martelo cluster init`.
pub(crate) async fn first_initialized_status(
    channels: &Channels,
    addresses: &[String],
    timeout: Duration,
) -> Result<(String, StatusResponse), ClientError> {
    if addresses.is_empty() {
        return Err(ClientError::InvalidInput(
            "no node address given: pass at least one host:port (--addr or MARTELO_ADDR)"
                .to_owned(),
        ));
    }
    let mut uninitialized = None;
    let mut errors = Vec::new();
    for address in addresses {
        match node_status(channels, address, timeout).await {
            Ok(status) if status.initialized && status.shard_count > 0 => {
                return Ok((address.clone(), status));
            }
            Ok(_) => uninitialized = uninitialized.or(Some(address.clone())),
            Err(error) => errors.push(error),
        }
    }
    if let Some(address) = uninitialized {
        return Err(ClientError::ClusterNotInitialized { address });
    }
    Err(combine_errors(errors))
}

/// One node's `Status`.
pub(crate) async fn node_status(
    channels: &Channels,
    address: &str,
    timeout: Duration,
) -> Result<StatusResponse, ClientError> {
    let result = match channels.admin_api(address) {
        Ok(mut admin) => {
            let request = request_with_timeout(StatusRequest::default(), timeout);
            bounded(timeout, admin.status(request)).await
        }
        Err(error) => Err(error),
    };
    result.map_err(|error| decide::classify_call_error(address, error).1)
}

/// One error for several failed seeds: the error itself when there is one, one
/// `Unreachable` naming every address when none could be reached, else the last.
pub(crate) fn combine_errors(mut errors: Vec<ClientError>) -> ClientError {
    let all_unreachable = errors
        .iter()
        .all(|error| matches!(error, ClientError::Unreachable { .. }));
    if errors.len() > 1 && all_unreachable {
        let mut addresses = Vec::new();
        let mut reasons = Vec::new();
        for error in &errors {
            if let ClientError::Unreachable { address, reason } = error {
                addresses.push(address.clone());
                reasons.push(format!("{address}: {reason}"));
            }
        }
        return ClientError::Unreachable {
            address: addresses.join(", "),
            reason: reasons.join("; "),
        };
    }
    errors
        .pop()
        .unwrap_or_else(|| ClientError::InvalidInput("no node address given".to_owned()))
}

#[cfg(test)]
mod tests {
    use martelo_engine::{Action, Actor, Amount, AuctionId, RequestId, Role, UserId};
    use martelo_proto::NotLeader;
    use martelo_types::NodeId;

    use super::*;

    fn shards() -> ShardCount {
        ShardCount::try_from(8).unwrap()
    }

    fn bid(auction: u64) -> Request {
        Request {
            actor: Actor {
                user: UserId(7),
                role: Role::Bidder,
            },
            request_id: RequestId::try_from("req-1").unwrap(),
            action: Action::PlaceBid {
                auction_id: AuctionId(auction),
                amount: Amount(500),
                max: None,
            },
        }
    }

    fn target(id: u64) -> Target {
        Target {
            node_id: NodeId(id),
            address: format!("127.0.0.1:{}", 7000 + id),
        }
    }

    /// A `NotLeader` answer from group 1 naming node `leader` in `term`.
    fn hint(leader: u64, term: u64) -> NotLeader {
        NotLeader {
            group_id: 1,
            leader_id: Some(leader),
            leader_address: target(leader).address,
            term,
        }
    }

    /// The attempt after node 2 answered `NotLeader` for group 1 with `hint`.
    fn after_not_leader_from_node_2(
        topology: &mut Topology,
        hint: Option<NotLeader>,
    ) -> Attempt<Target> {
        next_attempt(topology, GroupId(1), &target(2), &Retry::NotLeader(hint))
    }

    #[test]
    fn a_proposal_carries_request_id_auction_and_codec_version_next_to_the_command() {
        let group = routing::group_of(AuctionId(3), shards());
        let message = proposal_message(shards(), group, &bid(3), None).unwrap();
        assert_eq!(message.group_id, group.0);
        assert_eq!(message.request_id, "req-1");
        assert_eq!(message.auction_id, 3);
        assert_eq!(message.codec_version, WireVersion::CURRENT.codec_version());
        let Some(propose_request::Command::EncodedRequest(bytes)) = message.command else {
            panic!("command missing");
        };
        assert_eq!(
            wire::decode::<Request, { martelo_proto::PROPOSAL_COMMAND_BYTES_MAX }>(
                "request", &bytes
            )
            .unwrap(),
            bid(3)
        );
    }

    #[test]
    fn a_proposal_to_a_group_that_does_not_own_the_auction_is_refused_before_sending() {
        let owner = routing::group_of(AuctionId(3), shards());
        let other = GroupId(owner.0 % 8 + 1);
        let error = proposal_message(shards(), other, &bid(3), None).unwrap_err();
        assert_eq!(error.code(), ErrorCode::WrongGroup);
        assert!(!error.may_have_been_applied());
        let error = proposal_message(shards(), GroupId::META, &bid(3), None).unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidArgument);
    }

    #[test]
    fn a_meta_command_goes_to_group_0_and_the_operator_is_refused_before_sending() {
        let mut command = MetaCommand {
            actor: MetaActor::Anonymous,
            request_id: RequestId::try_from("meta-1").unwrap(),
            action: martelo_engine::MetaAction::SetClusterFacts { shard_count: 8 },
        };
        let message = meta_proposal_message(&command, None).unwrap();
        assert_eq!(message.group_id, 0);
        assert_eq!(message.auction_id, 0);
        assert_eq!(message.request_id, "meta-1");
        let Some(propose_request::Command::EncodedMetaCommand(bytes)) = message.command else {
            panic!("meta command missing");
        };
        let decoded = wire::decode::<MetaCommand, META_COMMAND_BYTES_MAX>("meta", &bytes);
        assert_eq!(decoded.unwrap(), command);
        command.actor = MetaActor::Operator;
        let error = meta_proposal_message(&command, None).unwrap_err();
        assert_eq!(error.code(), ErrorCode::PermissionDenied);
        assert!(!error.may_have_been_applied());
    }

    #[test]
    fn a_not_leader_hint_redirects_and_updates_the_cache() {
        let mut topology = Topology::default();
        topology.observe_hint(GroupId(1), &hint(2, 3));
        let attempt = after_not_leader_from_node_2(&mut topology, Some(hint(3, 4)));
        assert_eq!(
            attempt,
            Attempt::NotLeader {
                leader: Some(target(3))
            }
        );
        assert_eq!(topology.leader(GroupId(1)).unwrap().node_id, NodeId(3));
    }

    #[test]
    fn a_cached_leader_that_says_it_does_not_lead_is_replaced_even_by_a_hint_without_term() {
        let mut topology = Topology::default();
        topology.observe_success(GroupId(1), NodeId(2), 5);
        let attempt = after_not_leader_from_node_2(&mut topology, Some(hint(3, 0)));
        assert_eq!(
            attempt,
            Attempt::NotLeader {
                leader: Some(target(3))
            }
        );
    }

    #[test]
    fn a_not_leader_without_hint_forgets_the_leader_and_falls_back_to_the_rotation() {
        let mut topology = Topology::default();
        topology.observe_hint(GroupId(1), &hint(2, 3));
        let attempt = after_not_leader_from_node_2(&mut topology, None);
        assert_eq!(attempt, Attempt::NotLeader { leader: None });
        assert_eq!(topology.leader(GroupId(1)), None);
    }

    #[test]
    fn a_busy_node_is_asked_again_and_a_failed_one_stops_being_the_leader() {
        let mut topology = Topology::default();
        topology.observe_success(GroupId(1), NodeId(2), 3);
        let attempt = next_attempt(&mut topology, GroupId(1), &target(2), &Retry::Busy);
        assert_eq!(attempt, Attempt::Busy { node: target(2) });
        assert_eq!(topology.leader(GroupId(1)).unwrap().node_id, NodeId(2));
        let attempt = next_attempt(&mut topology, GroupId(1), &target(2), &Retry::Indeterminate);
        assert_eq!(attempt, Attempt::Indeterminate);
        assert_eq!(topology.leader(GroupId(1)), None);
    }

    #[test]
    fn a_proposal_that_never_reached_a_node_is_not_applied_and_says_retry_is_safe() {
        let error = propose_error(Exhausted {
            last_error: ClientError::Unreachable {
                address: "127.0.0.1:7001".into(),
                reason: "connection refused".into(),
            },
            maybe_applied: false,
            stopped: false,
            attempts: 3,
        });
        assert_eq!(error.code(), ErrorCode::Unavailable);
        assert!(error.to_string().contains("safe to retry"), "{error}");
    }

    #[test]
    fn a_stop_after_an_indeterminate_attempt_is_still_unknown() {
        let error = propose_error(Exhausted {
            last_error: ClientError::from_api(
                "127.0.0.1:7001",
                martelo_proto::ApiError::new(ErrorCode::UnsupportedCodec, "codec 2"),
            ),
            maybe_applied: true,
            stopped: true,
            attempts: 2,
        });
        assert!(error.may_have_been_applied());
    }

    #[test]
    fn several_unreachable_seeds_are_named_in_one_error() {
        let unreachable = |address: &str| ClientError::Unreachable {
            address: address.into(),
            reason: "connection refused".into(),
        };
        let error = combine_errors(vec![unreachable("a:1"), unreachable("b:2")]);
        assert!(
            error
                .to_string()
                .starts_with("cannot reach a martelo node at a:1, b:2")
        );
    }
}
