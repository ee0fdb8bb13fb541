//! The client API: `Propose`, `ReadAuction`, `ListAuctions` and `Subscribe`, and the meta
//! group's `ReadUser` and `ListUsers`, as the gateway, the fault suite, the load generator and
//! the CLI call them.
//!
//! - this file: the service, the propose path (auction requests and meta commands alike,
//!   through the group's proposer; [`propose_command`] is shared with the admin API's
//!   `ProposeMeta`), auction reads and listings, and the read-consistency wait every read
//!   goes through;
//! - [`checks`]: the pure checks of every request;
//! - `users`: `ReadUser` and `ListUsers` on the meta group;
//! - `subscribe`: the committed event streams.
//!
//! Engine payloads cross this boundary in the codec's wire format, and only the client-visible
//! types (`martelo_engine::codec::wire::ClientPayload`). A proposal in any wire version this
//! node reads is accepted and its reply encoded in that version; reads, listings and events go
//! out in the version this node sends (their requests name none).

use std::sync::Arc;
use std::time::Duration;

use martelo_engine::codec::wire::{self, WireVersion};
use martelo_engine::{AuctionId, Command, Event, GroupId, Reply, Request};
use martelo_proto::{
    ApiError, Applied, AuctionPage, AuctionView, ErrorCode, ListAuctionsRequest,
    ListAuctionsResponse, ListUsersRequest, ListUsersResponse, ProposeRequest, ProposeResponse,
    ReadAuctionRequest, ReadAuctionResponse, ReadConsistency, ReadUserRequest, ReadUserResponse,
    SubscribeRequest, SubscribeResponse, list_auctions_response, list_users_response,
    propose_response, read_auction_response, read_user_response, subscribe_response,
};
use martelo_types::ShardCount;
use openraft::ReadPolicy;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request as GrpcRequest, Response, Status};
use tracing::Instrument as _;

use super::group::Group;
use super::metric_names::{CLIENT_API_REQUESTS_TOTAL, PROPOSE_DECIDED_WITHOUT_LOG_TOTAL};
use super::propose::{ProposeFailure, Proposed};
use super::registry::Registry;

pub mod checks;
mod subscribe;
mod users;

use checks::{check_list, check_propose, grpc_timeout, trace_id};
use subscribe::{SUBSCRIBE_BUFFER, stream_events};

/// Longest a proposal waits for its outcome when the caller set no deadline.
const PROPOSE_WAIT_DEFAULT: Duration = Duration::from_secs(10);
/// Most auctions one `ListAuctions` page examines, matching its filter or not. The page is
/// read under the state's read lock, which apply waits for: this bounds that wait to a few
/// thousand ordered-map steps (plus at most `LIST_AUCTIONS_LIMIT_MAX` summaries), however
/// many auctions a group holds (up to a million) or the filter skips.
const LIST_SCANNED_AUCTIONS_MAX: usize = 4096;

/// The wire version this node sends its reads, listings and events in.
pub fn codec_version() -> u32 {
    WireVersion::CURRENT.codec_version()
}

#[derive(Debug, Clone)]
pub struct ClientApiService {
    registry: Arc<Registry>,
}

impl ClientApiService {
    pub fn new(registry: Arc<Registry>) -> ClientApiService {
        ClientApiService { registry }
    }

    fn group(&self, group_id: u64) -> Result<Arc<Group>, ApiError> {
        find_group(&self.registry, group_id)
    }

    async fn propose_checked(
        &self,
        request: ProposeRequest,
        wait: Duration,
    ) -> Result<Applied, ApiError> {
        let group = self.group(request.group_id)?;
        let shards = self
            .registry
            .shard_count()
            .and_then(|count| ShardCount::try_from(count).ok());
        let (version, command) = check_propose(&request, shards)?;
        // Checked (a malformed one is refused); the span joins the caller's trace.
        trace_id(&request.traceparent)?;
        let span = tracing::info_span!(
            "node.propose",
            group = request.group_id,
            request_id = %request.request_id,
            auction = request.auction_id,
            attempt = request.attempt,
            meta = command.is_meta(),
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        martelo_trace::adopt(
            &span,
            (!request.traceparent.is_empty()).then_some(request.traceparent.as_str()),
        );
        self.propose_decoded(request, version, command, &group, wait)
            .instrument(span)
            .await
    }

    async fn propose_decoded(
        &self,
        request: ProposeRequest,
        version: WireVersion,
        command: Command,
        group: &Group,
        wait: Duration,
    ) -> Result<Applied, ApiError> {
        if !group.raft.is_leader() {
            return Err(ApiError::not_leader(group.leader_hint()));
        }
        // Only auction requests may be decided without the log; meta commands never are.
        if request.attempt == 1
            && let Command::Request(decoded) = &command
            && let Some(rejected) = early_rejection(&self.registry, group, decoded, version).await
        {
            return Ok(rejected);
        }
        // Checked in `propose_checked`; carried in the entry so every replica's apply sees it
        // (this span's own context when spans are exported, so applies are its children).
        let received = (!request.traceparent.is_empty()).then_some(request.traceparent.as_str());
        let traceparent = martelo_trace::outgoing(&tracing::Span::current(), received);
        propose_command(&self.registry, group, command, traceparent, version, wait).await
    }

    async fn read_checked(&self, request: &ReadAuctionRequest) -> Result<AuctionView, ApiError> {
        let group = self.group(request.group_id)?;
        trace_id(&request.traceparent)?;
        read_view(
            &self.registry,
            &group,
            AuctionId(request.auction_id),
            request.consistency(),
        )
        .await
    }

    async fn list_checked(&self, request: &ListAuctionsRequest) -> Result<AuctionPage, ApiError> {
        let query = check_list(request)?;
        let group = self.group(request.group_id)?;
        trace_id(&request.traceparent)?;
        list_page(&self.registry, &group, query, request.consistency()).await
    }
}

/// This node's replica of `group_id`, or the error that says why there is none.
fn find_group(registry: &Registry, group_id: u64) -> Result<Arc<Group>, ApiError> {
    if registry.shard_count().is_none() && registry.groups().is_empty() {
        return Err(ApiError::new(
            ErrorCode::ClusterNotInitialized,
            "this node has not joined a cluster yet: run `martelo cluster init`",
        ));
    }
    registry.group(GroupId(group_id)).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownGroup,
            format!("this node holds no replica of group {group_id}; refresh the routing table"),
        )
        .with_group(group_id)
    })
}

/// Proposes `command` (checked: it belongs to `group`) through the group's proposer, the one
/// batching path of every write, and answers with what the engine applied, its reply encoded
/// in `version`. Shared by the client API's `Propose` and the admin API's `ProposeMeta`.
///
/// A new leader whose lease is not yet acknowledged refuses writes for a moment: that is
/// waited out here rather than sending the caller back to this same node. `wait` bounds the
/// whole call; when it passes after the command was queued, the answer is `unknown_outcome`.
pub async fn propose_command(
    registry: &Registry,
    group: &Group,
    command: Command,
    traceparent: Option<String>,
    version: WireVersion,
    wait: Duration,
) -> Result<Applied, ApiError> {
    debug_assert!(command.belongs_to(group.id), "checked before proposing");
    let self_id = registry.node_id();
    let group_id = group.id.0;
    let propose = async {
        loop {
            match group
                .proposer
                .propose(command.clone(), traceparent.clone())
                .await
            {
                Err(ProposeFailure::NotLeader(hint)) if hint.leader_id == Some(self_id) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                answer => return answer,
            }
        }
    };
    let answer = tokio::time::timeout(wait, propose).await.map_err(|_| {
        ApiError::new(
            ErrorCode::UnknownOutcome,
            "the deadline passed after the command was queued; it may still commit: retry \
             with the same request id",
        )
        .with_group(group_id)
    })?;
    match answer {
        Ok(proposed) => {
            tracing::debug!(log_index = proposed.log_index, "applied");
            applied(&proposed, version)
        }
        Err(ProposeFailure::NotLeader(hint)) => Err(ApiError::not_leader(hint)),
        Err(ProposeFailure::NotProposed { code, message }) => {
            Err(ApiError::new(code, message).with_group(group_id))
        }
        Err(ProposeFailure::Unknown(message)) => {
            Err(ApiError::new(ErrorCode::UnknownOutcome, message).with_group(group_id))
        }
    }
}

/// The throughput shortcut for hot auctions (issue 6): a first attempt of a bid that cannot
/// win is rejected from a lease read, without a log entry. Safe because
/// - the lease read waits until every entry committed before it is applied here, so the
///   rejection is what the engine would answer at that point of the log (I8);
/// - only a first attempt qualifies: a retry may have an earlier attempt in flight, and it
///   goes through the log to get that attempt's outcome (I9); and a request the state has a
///   record of always goes through the log, which replays the record (I2);
/// - only `bid_too_low` and `max_not_raised` qualify, and the engine decides them with the
///   same function either way (`State::early_bid_rejection`).
///
/// Returns `None` (use the log) whenever any of this cannot be established.
async fn early_rejection(
    registry: &Registry,
    group: &Group,
    request: &Request,
    version: WireVersion,
) -> Option<Applied> {
    if !matches!(request.action, martelo_engine::Action::PlaceBid { .. }) || !registry.clock_ok() {
        return None;
    }
    group
        .raft
        .ensure_linearizable(ReadPolicy::LeaseRead)
        .await
        .ok()?;
    let now = registry.wall_now();
    let (code, applied_index) = group
        .reader
        .read(|state, applied| {
            state
                .early_bid_rejection(now, request)
                .map(|code| (code, applied.map_or(0, |id| id.index())))
        })
        .ok()??;
    let reply = wire::encode("reply", &Reply::Rejected(code), version).ok()?;
    metrics::counter!(PROPOSE_DECIDED_WITHOUT_LOG_TOTAL, "group" => group.id.0.to_string())
        .increment(1);
    Some(Applied {
        log_index: applied_index,
        log_term: 0,
        timestamp_us: now.0,
        reply: reply.into(),
        replayed: false,
        accepted: false,
        reject_code: code.as_str().to_string(),
        auction_seq: 0,
        decided_without_log: true,
    })
}

/// Reads one auction's public view with the requested consistency.
pub async fn read_view(
    registry: &Registry,
    group: &Group,
    auction: AuctionId,
    consistency: ReadConsistency,
) -> Result<AuctionView, ApiError> {
    ensure_consistency(registry, group, consistency).await?;
    let view = group
        .reader
        .read(|state, applied| {
            let applied_index = applied.map_or(0, |id| id.index());
            state
                .auction(auction)
                .map(|found| (found.view(), applied_index))
        })
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
    let Some((view, applied_index)) = view else {
        return Err(ApiError::new(
            ErrorCode::AuctionNotFound,
            format!("group {} holds no auction {}", group.id.0, auction.0),
        )
        .with_group(group.id.0));
    };
    let state = wire::encode("auction view", &view, WireVersion::CURRENT)
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
    Ok(AuctionView {
        group_id: group.id.0,
        auction_id: auction.0,
        seq: view.seq,
        applied_index,
        codec_version: codec_version(),
        state: state.into(),
    })
}

/// Reads one page of a group's auctions with the requested consistency.
pub async fn list_page(
    registry: &Registry,
    group: &Group,
    mut query: martelo_engine::AuctionQuery,
    consistency: ReadConsistency,
) -> Result<AuctionPage, ApiError> {
    ensure_consistency(registry, group, consistency).await?;
    // Judged at this node's cluster clock; the engine clamps it to the last applied entry.
    query.now = registry.wall_now();
    let (page, applied_index) = group
        .reader
        .read(|state, applied| {
            let applied_index = applied.map_or(0, |id| id.index());
            (state.list_auctions(&query), applied_index)
        })
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
    encode_page(group.id, &page, applied_index)
}

/// The wire form of an engine page: each summary engine-codec-encoded beside its id and seq.
fn encode_page(
    group: GroupId,
    page: &martelo_engine::AuctionPage,
    applied_index: u64,
) -> Result<AuctionPage, ApiError> {
    let auctions = page
        .auctions
        .iter()
        .map(|summary| {
            let encoded = wire::encode("auction summary", summary, WireVersion::CURRENT)
                .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
            Ok(martelo_proto::AuctionSummary {
                auction_id: summary.id.0,
                seq: summary.seq,
                summary: encoded.into(),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(AuctionPage {
        group_id: group.0,
        auctions,
        next_after_auction_id: page.next_after.map(|auction| auction.0),
        applied_index,
        now_us: page.now.0,
        codec_version: codec_version(),
    })
}

/// Waits until a read on `group` may be served with `consistency`: for `LINEARIZABLE` and
/// `LEASE`, until this node has confirmed it leads and applied everything committed before
/// the read began (I8); `LOCAL` needs nothing.
pub(super) async fn ensure_consistency(
    registry: &Registry,
    group: &Group,
    consistency: ReadConsistency,
) -> Result<(), ApiError> {
    let policy = match consistency {
        ReadConsistency::Unspecified | ReadConsistency::Linearizable => Some(ReadPolicy::ReadIndex),
        ReadConsistency::Lease => Some(ReadPolicy::LeaseRead),
        ReadConsistency::Local => None,
    };
    // Planted bug (test builds only): a node that believes it leads skips confirming it.
    let policy = policy.filter(|_| {
        !(martelo_engine::planted::active(martelo_engine::planted::Bug::StaleRead)
            && group.raft.is_leader())
    });
    if let Some(policy) = policy {
        if !registry.clock_ok() {
            return Err(ApiError::new(
                ErrorCode::ClockSkew,
                "this node's clock is off from its peers; it serves no linearizable reads",
            ));
        }
        // Waits for the read index to be confirmed by a quorum (or the lease) and applied
        // here, so the state below reflects every acknowledged write (I8).
        group
            .raft
            .ensure_linearizable(policy)
            .await
            .map_err(|error| match error.forward_to_leader() {
                Some(_) => ApiError::not_leader(group.leader_hint()),
                None => ApiError::new(
                    ErrorCode::Unavailable,
                    format!("cannot confirm leadership for a linearizable read: {error}"),
                )
                .with_group(group.id.0),
            })?;
    }
    Ok(())
}

fn applied(proposed: &Proposed, version: WireVersion) -> Result<Applied, ApiError> {
    let reply = &proposed.outcome.reply;
    let encoded = wire::encode("reply", reply, version)
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
    let auction_seq = proposed
        .outcome
        .events
        .iter()
        .filter_map(|event| match event {
            Event::Auction(event) => Some(event.seq),
            Event::Meta(event) => Some(event.seq),
            Event::BidderSuspended { .. } | Event::BidderReinstated { .. } => None,
        })
        .next_back()
        .unwrap_or(0);
    Ok(Applied {
        log_index: proposed.log_index,
        log_term: proposed.log_term,
        timestamp_us: proposed.timestamp.0,
        reply: encoded.into(),
        replayed: proposed.outcome.replayed,
        accepted: reply.is_accepted(),
        reject_code: match reply {
            Reply::Rejected(code) => code.as_str().to_string(),
            _ => String::new(),
        },
        auction_seq,
        decided_without_log: false,
    })
}

/// How long a proposal may wait: a little less than the caller's deadline, so the caller
/// hears `unknown_outcome` rather than a bare deadline error.
pub fn propose_wait(metadata: &tonic::metadata::MetadataMap) -> Duration {
    match grpc_timeout(metadata) {
        Some(deadline) => deadline.mul_f64(0.9).min(PROPOSE_WAIT_DEFAULT),
        None => PROPOSE_WAIT_DEFAULT,
    }
}

#[tonic::async_trait]
impl martelo_proto::client_api_server::ClientApi for ClientApiService {
    async fn propose(
        &self,
        request: GrpcRequest<ProposeRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        let wait = propose_wait(request.metadata());
        let request = request.into_inner();
        let group = request.group_id;
        let result = match self.propose_checked(request, wait).await {
            Ok(applied) => {
                metrics::counter!(CLIENT_API_REQUESTS_TOTAL, "rpc" => "propose", "result" => "applied").increment(1);
                propose_response::Result::Applied(applied)
            }
            Err(error) => {
                metrics::counter!(CLIENT_API_REQUESTS_TOTAL, "rpc" => "propose", "result" => error.code().as_code_str()).increment(1);
                tracing::debug!(
                    group,
                    code = error.code().as_code_str(),
                    "propose refused: {}",
                    error.message
                );
                propose_response::Result::Error(error)
            }
        };
        Ok(Response::new(ProposeResponse {
            result: Some(result),
        }))
    }

    async fn read_auction(
        &self,
        request: GrpcRequest<ReadAuctionRequest>,
    ) -> Result<Response<ReadAuctionResponse>, Status> {
        let request = request.into_inner();
        let result = match self.read_checked(&request).await {
            Ok(view) => read_auction_response::Result::Auction(view),
            Err(error) => read_auction_response::Result::Error(error),
        };
        Ok(Response::new(ReadAuctionResponse {
            result: Some(result),
        }))
    }

    async fn list_auctions(
        &self,
        request: GrpcRequest<ListAuctionsRequest>,
    ) -> Result<Response<ListAuctionsResponse>, Status> {
        let request = request.into_inner();
        let result = match self.list_checked(&request).await {
            Ok(page) => list_auctions_response::Result::Page(page),
            Err(error) => list_auctions_response::Result::Error(error),
        };
        Ok(Response::new(ListAuctionsResponse {
            result: Some(result),
        }))
    }

    async fn read_user(
        &self,
        request: GrpcRequest<ReadUserRequest>,
    ) -> Result<Response<ReadUserResponse>, Status> {
        let request = request.into_inner();
        let result = match users::read_user(&self.registry, &request).await {
            Ok(record) => read_user_response::Result::User(record),
            Err(error) => read_user_response::Result::Error(error),
        };
        count("read_user", &result_code(&result));
        Ok(Response::new(ReadUserResponse {
            result: Some(result),
        }))
    }

    async fn list_users(
        &self,
        request: GrpcRequest<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let request = request.into_inner();
        let result = match users::list_users(&self.registry, &request).await {
            Ok(page) => list_users_response::Result::Page(page),
            Err(error) => list_users_response::Result::Error(error),
        };
        let code = match &result {
            list_users_response::Result::Page(_) => None,
            list_users_response::Result::Error(error) => Some(error.code()),
        };
        count("list_users", &code);
        Ok(Response::new(ListUsersResponse {
            result: Some(result),
        }))
    }

    type SubscribeStream = ReceiverStream<Result<SubscribeResponse, Status>>;

    async fn subscribe(
        &self,
        request: GrpcRequest<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        let (sender, receiver) = tokio::sync::mpsc::channel(SUBSCRIBE_BUFFER);
        let first = match self.group(request.group_id) {
            Err(error) => Some(error),
            Ok(_) if request.auction_ids.len() > martelo_proto::SUBSCRIBE_AUCTIONS_MAX => {
                Some(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "{} auction ids; the limit is {}",
                        request.auction_ids.len(),
                        martelo_proto::SUBSCRIBE_AUCTIONS_MAX
                    ),
                ))
            }
            Ok(group) => {
                tokio::spawn(stream_events(group, request, sender.clone()));
                None
            }
        };
        if let Some(error) = first {
            let _ = sender
                .send(Ok(SubscribeResponse {
                    kind: Some(subscribe_response::Kind::Error(error)),
                }))
                .await;
        }
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// The error code of a `ReadUser` answer, `None` when it read the state.
fn result_code(result: &read_user_response::Result) -> Option<ErrorCode> {
    match result {
        read_user_response::Result::User(_) => None,
        read_user_response::Result::Error(error) => Some(error.code()),
    }
}

/// Counts one call of a read-only RPC: `ok`, or the error code it answered.
fn count(rpc: &'static str, code: &Option<ErrorCode>) {
    let result = code.map_or("ok", ErrorCode::as_code_str);
    metrics::counter!(CLIENT_API_REQUESTS_TOTAL, "rpc" => rpc, "result" => result).increment(1);
}

#[cfg(test)]
mod tests;
