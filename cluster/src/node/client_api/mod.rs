//! The client API: `Propose`, `ReadAuction`, `ListAuctions` and `Subscribe`, as the gateway,
//! the fault suite, the load generator and the CLI call them.
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
    ApiError, Applied, AuctionPage, AuctionView, CommittedEntry, ErrorCode, EventEnvelope,
    ListAuctionsRequest, ListAuctionsResponse, ProposeRequest, ProposeResponse, ReadAuctionRequest,
    ReadAuctionResponse, ReadConsistency, SubscribeRequest, SubscribeResponse, Traceparent,
    list_auctions_response, propose_response, read_auction_response, subscribe_response,
};
use martelo_raft_store::EventLogError;
use martelo_types::{ShardCount, group_of};
use openraft::ReadPolicy;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request as GrpcRequest, Response, Status};
use tracing::Instrument as _;

use super::group::Group;
use super::metric_names::{
    CLIENT_API_REQUESTS_TOTAL, PROPOSE_DECIDED_WITHOUT_LOG_TOTAL, SUBSCRIPTIONS,
};
use super::propose::{ProposeFailure, Proposed};
use super::registry::Registry;

/// Longest a proposal waits for its outcome when the caller set no deadline.
const PROPOSE_WAIT_DEFAULT: Duration = Duration::from_secs(10);
/// Most records a subscription reads from the event log at once.
const SUBSCRIBE_READ_RECORDS: usize = 256;
/// How often an idle subscription sends `Progress`.
const SUBSCRIBE_HEARTBEAT: Duration = Duration::from_secs(1);
/// Messages buffered per subscriber before its reader waits for it.
const SUBSCRIBE_BUFFER: usize = 256;
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
        if self.registry.shard_count().is_none() && self.registry.groups().is_empty() {
            return Err(ApiError::new(
                ErrorCode::ClusterNotInitialized,
                "this node has not joined a cluster yet: run `martelo cluster init`",
            ));
        }
        self.registry.group(GroupId(group_id)).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownGroup,
                format!(
                    "this node holds no replica of group {group_id}; refresh the routing table"
                ),
            )
            .with_group(group_id)
        })
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
        let (version, decoded) = check_propose(&request, shards)?;
        let trace_id = trace_id(&request.traceparent)?;
        let span = tracing::info_span!(
            "propose",
            group = request.group_id,
            request_id = %request.request_id,
            auction = request.auction_id,
            trace_id = trace_id.as_deref().unwrap_or(""),
        );
        self.propose_decoded(request, version, decoded, &group, wait)
            .instrument(span)
            .await
    }

    async fn propose_decoded(
        &self,
        request: ProposeRequest,
        version: WireVersion,
        decoded: Request,
        group: &Group,
        wait: Duration,
    ) -> Result<Applied, ApiError> {
        if !group.raft.is_leader() {
            return Err(ApiError::not_leader(group.leader_hint()));
        }
        if request.attempt == 1
            && let Some(rejected) = early_rejection(&self.registry, group, &decoded, version).await
        {
            return Ok(rejected);
        }
        let self_id = self.registry.node_id();
        // Checked in `propose_checked`; carried in the entry so every replica's apply sees it.
        let traceparent = (!request.traceparent.is_empty()).then(|| request.traceparent.clone());
        let command = Command::Request(decoded);
        let propose = async {
            loop {
                match group
                    .proposer
                    .propose(command.clone(), traceparent.clone())
                    .await
                {
                    // openraft refuses writes (before appending them) while a new leader has
                    // no quorum-acknowledged lease yet: wait a moment here rather than send
                    // the client back to this same node.
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
                "the deadline passed after the command was queued; it may still commit: \
                     retry with the same request id",
            )
            .with_group(request.group_id)
        })?;
        match answer {
            Ok(proposed) => {
                tracing::debug!(log_index = proposed.log_index, "applied");
                applied(&proposed, version)
            }
            Err(ProposeFailure::NotLeader(hint)) => Err(ApiError::not_leader(hint)),
            Err(ProposeFailure::NotProposed { code, message }) => {
                Err(ApiError::new(code, message).with_group(request.group_id))
            }
            Err(ProposeFailure::Unknown(message)) => {
                Err(ApiError::new(ErrorCode::UnknownOutcome, message).with_group(request.group_id))
            }
        }
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

/// Checks a `ListAuctions` request and turns it into the engine's query (its `now` is set
/// when the page is read).
pub fn check_list(request: &ListAuctionsRequest) -> Result<martelo_engine::AuctionQuery, ApiError> {
    use martelo_engine::AuctionFilter;
    use martelo_proto::AuctionFilter as WireFilter;
    let invalid = |message: String| {
        ApiError::new(ErrorCode::InvalidArgument, message).with_group(request.group_id)
    };
    if request.group_id == GroupId::META.0 {
        return Err(invalid(
            "group 0 is the meta group; it holds no auctions: list groups 1..=shard_count".into(),
        ));
    }
    let limit = match usize::try_from(request.limit).unwrap_or(usize::MAX) {
        0 => martelo_proto::LIST_AUCTIONS_LIMIT_DEFAULT,
        limit if limit > martelo_proto::LIST_AUCTIONS_LIMIT_MAX => {
            return Err(invalid(format!(
                "limit {limit} is above the most auctions a page may hold ({})",
                martelo_proto::LIST_AUCTIONS_LIMIT_MAX
            )));
        }
        limit => limit,
    };
    let filter = match request.filter() {
        WireFilter::Unspecified | WireFilter::All => AuctionFilter::All,
        WireFilter::Open => AuctionFilter::Open,
        WireFilter::Closed => AuctionFilter::Closed,
        WireFilter::ClosingSoon if request.closing_within_us == 0 => {
            return Err(invalid(
                "the closing-soon filter needs a positive closing_within_us".into(),
            ));
        }
        WireFilter::ClosingSoon => AuctionFilter::ClosingSoon {
            within: martelo_engine::Micros(request.closing_within_us),
        },
    };
    Ok(martelo_engine::AuctionQuery {
        filter,
        after: request.after_auction_id.map(AuctionId),
        limit,
        scan_max: LIST_SCANNED_AUCTIONS_MAX,
        now: martelo_engine::Timestamp(0),
    })
}

/// Waits until a read on `group` may be served with `consistency`: for `LINEARIZABLE` and
/// `LEASE`, until this node has confirmed it leads and applied everything committed before
/// the read began (I8); `LOCAL` needs nothing.
async fn ensure_consistency(
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

/// Checks a proposal's envelope against its payload and decodes the engine request; returns
/// it with the wire version it came in, which its reply is encoded in.
pub fn check_propose(
    request: &ProposeRequest,
    shards: Option<ShardCount>,
) -> Result<(WireVersion, Request), ApiError> {
    let invalid = |message: String| {
        ApiError::new(ErrorCode::InvalidArgument, message).with_group(request.group_id)
    };
    let Some(version) = WireVersion::from_codec_version(request.codec_version) else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedCodec,
            format!(
                "codec version {} is not one this node reads ({} to {})",
                request.codec_version,
                wire::WIRE_VERSION_OLDEST,
                wire::WIRE_VERSION
            ),
        ));
    };
    let Some(martelo_proto::propose_request::Command::EncodedRequest(bytes)) = &request.command
    else {
        return Err(invalid("the proposal carries no command".into()));
    };
    let decoded =
        wire::decode::<Request, { martelo_proto::PROPOSAL_COMMAND_BYTES_MAX }>("request", bytes)
            .map_err(|error| {
                let message = format!("the command cannot be decoded: {error}");
                if error.is_too_large() {
                    ApiError::new(ErrorCode::PayloadTooLarge, message).with_group(request.group_id)
                } else {
                    invalid(message)
                }
            })?;
    if decoded.request_id.as_str() != request.request_id {
        return Err(invalid(
            "request_id differs from the request id inside the command".into(),
        ));
    }
    let auction = decoded.action.auction_id().map_or(0, |auction| auction.0);
    if auction != request.auction_id {
        return Err(invalid(format!(
            "auction_id {} differs from the auction inside the command ({auction})",
            request.auction_id
        )));
    }
    if request.group_id == GroupId::META.0 {
        return Err(invalid(
            "group 0 is the meta group; it takes no auction commands".into(),
        ));
    }
    if let (Some(shards), Some(auction)) = (shards, decoded.action.auction_id()) {
        let owner = group_of(auction, shards);
        if owner.0 != request.group_id {
            return Err(ApiError::new(
                ErrorCode::WrongGroup,
                format!(
                    "auction {} belongs to group {}, not {}",
                    auction.0, owner.0, request.group_id
                ),
            )
            .with_group(request.group_id));
        }
    }
    Ok((version, decoded))
}

fn trace_id(traceparent: &str) -> Result<Option<String>, ApiError> {
    if traceparent.is_empty() {
        return Ok(None);
    }
    let parsed = Traceparent::try_from(traceparent).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidArgument,
            format!("traceparent is malformed: {error}"),
        )
    })?;
    Ok(Some(parsed.trace_id().to_string()))
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
            _ => None,
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

/// The caller's gRPC deadline (`grpc-timeout`), if it sent one.
pub fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok().filter(|_| digits.len() <= 8)?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// How long a proposal may wait: a little less than the caller's deadline, so the caller
/// hears `unknown_outcome` rather than a bare deadline error.
fn propose_wait(metadata: &tonic::metadata::MetadataMap) -> Duration {
    match grpc_timeout(metadata) {
        Some(deadline) => deadline.mul_f64(0.9).min(PROPOSE_WAIT_DEFAULT),
        None => PROPOSE_WAIT_DEFAULT,
    }
}

fn envelope(event: &Event) -> Result<EventEnvelope, ApiError> {
    let (auction_id, seq) = match event {
        Event::Auction(event) => (event.auction_id.0, event.seq),
        _ => (0, 0),
    };
    Ok(EventEnvelope {
        auction_id,
        seq,
        event: wire::encode("event", event, WireVersion::CURRENT)
            .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?
            .into(),
    })
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

/// Streams a group's committed events from the event log until the subscriber leaves.
async fn stream_events(
    group: Arc<Group>,
    request: SubscribeRequest,
    sender: tokio::sync::mpsc::Sender<Result<SubscribeResponse, Status>>,
) {
    let filter: std::collections::BTreeSet<u64> = request.auction_ids.iter().copied().collect();
    let mut applied = group.events.subscribe();
    let mut next = if request.from_log_index == 0 {
        group.events.first_available().max(1)
    } else {
        request.from_log_index
    };
    let mut last_progress = tokio::time::Instant::now();
    metrics::gauge!(SUBSCRIPTIONS).increment(1.0);
    loop {
        let message = match group.events.read_from(next, SUBSCRIBE_READ_RECORDS) {
            Err(EventLogError::Trimmed {
                first_available, ..
            }) => {
                let _ = sender
                    .send(Ok(SubscribeResponse {
                        kind: Some(subscribe_response::Kind::Resync(martelo_proto::Resync {
                            reason: martelo_proto::resync::Reason::Trimmed.into(),
                            first_available,
                        })),
                    }))
                    .await;
                break;
            }
            Err(EventLogError::Store(error)) => {
                let _ = sender
                    .send(Ok(SubscribeResponse {
                        kind: Some(subscribe_response::Kind::Error(ApiError::new(
                            ErrorCode::Internal,
                            error.to_string(),
                        ))),
                    }))
                    .await;
                break;
            }
            Ok(records) => records,
        };
        let read_any = !message.is_empty();
        let mut sent_any = false;
        for record in message {
            next = record.log_index + 1;
            let events: Vec<EventEnvelope> = record
                .events
                .iter()
                .filter(|event| match event {
                    Event::Auction(event) => {
                        filter.is_empty() || filter.contains(&event.auction_id.0)
                    }
                    _ => true,
                })
                .filter_map(|event| envelope(event).ok())
                .collect();
            if events.is_empty() {
                continue;
            }
            let entry = CommittedEntry {
                log_index: record.log_index,
                log_term: 0,
                timestamp_us: timestamp_of(&record.events),
                events,
                codec_version: codec_version(),
            };
            if sender
                .send(Ok(SubscribeResponse {
                    kind: Some(subscribe_response::Kind::Entry(entry)),
                }))
                .await
                .is_err()
            {
                metrics::gauge!(SUBSCRIPTIONS).decrement(1.0);
                return;
            }
            sent_any = true;
        }
        if read_any {
            if sent_any {
                last_progress = tokio::time::Instant::now();
            }
            continue;
        }
        // Caught up: everything applied so far has been read.
        let applied_index = *applied.borrow_and_update();
        next = next.max(applied_index.saturating_add(1).min(next.max(1)));
        if last_progress.elapsed() >= SUBSCRIBE_HEARTBEAT {
            let progress = SubscribeResponse {
                kind: Some(subscribe_response::Kind::Progress(
                    martelo_proto::Progress { applied_index },
                )),
            };
            if sender.send(Ok(progress)).await.is_err() {
                break;
            }
            last_progress = tokio::time::Instant::now();
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { break },
            () = tokio::time::sleep(SUBSCRIBE_HEARTBEAT) => {}
            () = sender.closed() => break,
        }
    }
    metrics::gauge!(SUBSCRIPTIONS).decrement(1.0);
}

/// The cluster timestamp of an entry, from its events (every event carries it).
fn timestamp_of(events: &[Event]) -> u64 {
    events
        .iter()
        .map(|event| match event {
            Event::Auction(event) => event.at.0,
            Event::BidderSuspended { at, .. } | Event::BidderReinstated { at, .. } => at.0,
            Event::Meta(event) => event.at.0,
        })
        .next()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
