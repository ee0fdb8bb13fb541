//! [`Client`]: proposals, reads and subscriptions against a running cluster.
//!
//! ```text
//!   propose(request) ─► group_of(auction) ─► Topology::route ─► attempt at a node
//!                                               ▲                    │
//!          NotLeader hint / success / failure   │                    ▼
//!                                       Topology ◄── decide::classify_* ── answer
//!                                                                    │
//!                                   retry::Proposal::next ◄──────────┘ (same request id)
//! ```
//!
//! One deadline ([`ClientOptions::deadline`]) bounds a whole operation; each attempt carries
//! the remaining time as its gRPC timeout. Every retry sends the same bytes, so the same
//! request id (I2). A proposal that may have reached a log is never reported as failed
//! ([`ProposeError::Unknown`], I9).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use martelo_engine::codec::{self, FORMAT_VERSION};
use martelo_engine::{AuctionId, Event, GroupId, Reply, Request, Timestamp};
use martelo_proto::{
    CLIENT_REQUEST_BYTES_MAX, ErrorCode, LIST_AUCTIONS_LIMIT_MAX, ListAuctionsRequest,
    PROPOSAL_COMMAND_BYTES_MAX, ProposeRequest, ReadAuctionRequest, SUBSCRIBE_AUCTIONS_MAX,
    StatusRequest, StatusResponse, SubscribeRequest, SubscribeResponse, Traceparent,
    check_encoded_len, propose_request, resync, subscribe_response,
};
use prost::bytes::Bytes;

use crate::channels::{Channels, bounded, request_with_timeout};
use crate::decide::{self, CallError, Retry, Verdict};
use crate::error::{ClientError, ProposeError};
use crate::listing::{
    self, AuctionList, GroupPage, LIST_CALLS_PER_PAGE_MAX, ListCursor, ListFilter,
};
use crate::retry::{Attempt, Proposal, RetryPolicy, Step};
use crate::routing::{self, ShardCount};
use crate::telemetry;
use crate::topology::{Target, Topology};
use martelo_proto::client_api_client::ClientApiClient;
use tonic::transport::Channel;

/// Limits and timeouts of a [`Client`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Bounds one whole operation (a proposal with all its retries, a read, `connect`).
    pub deadline: Duration,
    /// Most attempts one operation makes, the first included.
    pub attempts_max: u32,
    /// The first back-off between attempts; it doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Bounds one TCP connect; a node that is down costs at most this per attempt.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        let retry = RetryPolicy::default();
        ClientOptions {
            deadline: retry.deadline,
            attempts_max: retry.attempts_max,
            backoff_initial: retry.backoff_initial,
            backoff_max: retry.backoff_max,
            connect_timeout: Duration::from_secs(1),
        }
    }
}

impl ClientOptions {
    /// The retry rule's limits.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            deadline: self.deadline,
            attempts_max: self.attempts_max,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
        }
    }
}

/// How fresh a read must be. See `ReadConsistency` in `client.proto`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ReadConsistency {
    /// Reflects every command acknowledged before the read began (I8). Leader only.
    #[default]
    Linearizable,
    /// Leader lease, no quorum round trip; linearizable while clocks stay within the bound.
    Lease,
    /// Whatever the answering replica has applied, possibly stale. For operators only
    /// (`auction show` asks the first --addr node that answers).
    Local,
}

impl ReadConsistency {
    pub fn to_proto(self) -> martelo_proto::ReadConsistency {
        match self {
            ReadConsistency::Linearizable => martelo_proto::ReadConsistency::Linearizable,
            ReadConsistency::Lease => martelo_proto::ReadConsistency::Lease,
            ReadConsistency::Local => martelo_proto::ReadConsistency::Local,
        }
    }
}

/// A committed and applied proposal: the engine's reply and where it sits in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposed {
    /// Accepted or rejected by the engine; a rejection is an answer, not an error.
    pub reply: Reply,
    pub log_index: u64,
    pub log_term: u64,
    /// The cluster timestamp the leader stamped on the command.
    pub timestamp: Timestamp,
    /// True when the request id had been applied before and `reply` is the first reply.
    pub replayed: bool,
    /// True for a first attempt the leader rejected from a lease read, without a log entry
    /// (a bid too low to win): `log_index` is the applied index it read, `log_term` is 0.
    pub decided_without_log: bool,
    /// Attempts it took, the first included.
    pub attempts: u32,
    /// The node that answered (the group's leader then).
    pub node: u64,
}

/// One auction's state as a node served it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuctionRead {
    pub view: martelo_engine::AuctionView,
    pub group: GroupId,
    /// The auction's sequence number: subscribe and skip events up to it.
    pub seq: u64,
    /// The replica's applied index; subscribing from `applied_index + 1` leaves no gap.
    pub applied_index: u64,
    /// The node that served the read.
    pub node: u64,
}

/// One decoded message of a group's committed event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscribeItem {
    /// The events of one applied entry, as `(auction, seq, event)`; group-wide events
    /// (suspensions) have auction 0 and seq 0.
    Entry {
        log_index: u64,
        log_term: u64,
        timestamp: Timestamp,
        events: Vec<(AuctionId, u64, Event)>,
    },
    /// Nothing matched the filter up to `applied_index`: move the cursor on.
    Progress { applied_index: u64 },
    /// The stream cannot continue from where it is (always its last item). Read the state
    /// you need, then subscribe again from its `applied_index + 1`, never from before
    /// `first_available`.
    Resync {
        reason: ResyncReason,
        first_available: u64,
    },
}

/// Why a subscription must start over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResyncReason {
    /// The log before `first_available` was purged after a snapshot.
    Trimmed,
    /// The subscriber fell too far behind and was dropped.
    Lagged,
    /// A reason this client does not know (a newer node).
    Unspecified,
}

/// A decoded subscription stream.
type SubscribeStream = futures::stream::BoxStream<'static, Result<SubscribeItem, ClientError>>;

/// A connection to a martelo cluster. Cheap to clone; clones share channels and the leader
/// cache.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: ClientOptions,
    seeds: Vec<String>,
    shards: ShardCount,
    channels: Channels,
    // A std mutex: held only for pure, short updates of the map, never across an await.
    topology: Mutex<Topology>,
}

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

impl Client {
    /// Connects to the cluster through the first reachable seed (`host:port`) that belongs to
    /// an initialized cluster, and learns the shard count, the address book and the leaders
    /// from its `Status`. Channels connect lazily.
    pub async fn connect(seeds: &[String], options: ClientOptions) -> Result<Client, ClientError> {
        telemetry::describe();
        let channels = Channels::new(options.connect_timeout);
        let (_, status) = first_initialized_status(&channels, seeds, options.deadline).await?;
        let mut topology = Topology::default();
        topology.observe_status(&status);
        let Some(shards) = topology.shard_count() else {
            // first_initialized_status only returns initialized nodes, whose shard count is
            // valid; a node that breaks that is not a cluster we can route for.
            return Err(ClientError::Decode {
                address: seeds.join(", "),
                what: "status",
                reason: format!(
                    "initialized node reports shard count {}",
                    status.shard_count
                ),
            });
        };
        Ok(Client {
            inner: Arc::new(Inner {
                options,
                seeds: seeds.to_vec(),
                shards,
                channels,
                topology: Mutex::new(topology),
            }),
        })
    }

    /// The group that owns `auction`.
    pub fn group_of(&self, auction: AuctionId) -> GroupId {
        routing::group_of(auction, self.inner.shards)
    }

    /// The cluster's number of auction shards (groups `1..=shard_count`).
    pub fn shard_count(&self) -> ShardCount {
        self.inner.shards
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The node the client believes leads `group`, if any.
    pub fn leader_of(&self, group: GroupId) -> Option<Target> {
        let topology = self.topology();
        topology
            .leader(group)
            .and_then(|entry| topology.target(entry.node_id))
    }

    /// Every node in the client's address book.
    pub fn nodes(&self) -> Vec<Target> {
        self.topology().nodes().collect()
    }

    /// Asks a node (known nodes first, then the seeds) for its `Status` and merges what it
    /// says into the address book and leader cache. Proposals and reads keep the cache
    /// fresh by themselves; call this after membership changes.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let mut addresses: Vec<String> = self.nodes().into_iter().map(|t| t.address).collect();
        addresses.extend(self.inner.seeds.iter().cloned());
        addresses.dedup();
        let (_, status) = first_initialized_status(
            &self.inner.channels,
            &addresses,
            self.inner.options.deadline,
        )
        .await?;
        self.topology().observe_status(&status);
        Ok(())
    }

    /// Proposes `request` to the group of its auction. Group-wide actions (suspend,
    /// reinstate) name no auction: send them with [`Client::propose_to`].
    pub async fn propose(&self, request: Request) -> Result<Proposed, ProposeError> {
        let Some(auction) = request.action.auction_id() else {
            telemetry::outcome("propose", "not_applied");
            return Err(ProposeError::NotApplied {
                code: ErrorCode::InvalidArgument,
                message: "the action names no auction (it is group-wide): send it to each group \
                          with propose_to"
                    .to_owned(),
            });
        };
        self.propose_with(self.group_of(auction), request, None)
            .await
    }

    /// Proposes `request` to `group`.
    pub async fn propose_to(
        &self,
        group: GroupId,
        request: Request,
    ) -> Result<Proposed, ProposeError> {
        self.propose_with(group, request, None).await
    }

    /// Proposes `request` to `group`, carrying the caller's W3C trace context.
    pub async fn propose_with(
        &self,
        group: GroupId,
        request: Request,
        traceparent: Option<&Traceparent>,
    ) -> Result<Proposed, ProposeError> {
        let result = self.propose_inner(group, &request, traceparent).await;
        let label = match &result {
            Ok(proposed) if proposed.reply.is_accepted() => "accepted",
            Ok(_) => "rejected",
            Err(ProposeError::Unknown { .. }) => "unknown",
            Err(ProposeError::NotApplied { .. }) => "not_applied",
        };
        telemetry::outcome("propose", label);
        if let Err(error) = &result {
            let code = error.code();
            tracing::debug!(group = group.0, %code, %error, "proposal without reply");
        }
        result
    }

    async fn propose_inner(
        &self,
        group: GroupId,
        request: &Request,
        traceparent: Option<&Traceparent>,
    ) -> Result<Proposed, ProposeError> {
        let message = proposal_message(self.inner.shards, group, request, traceparent)?;
        let channels = self.inner.channels.clone();
        // Numbered as they are made, sent or not: only the first may be decided without the
        // log, so counting one too many is the safe mistake.
        let attempt = std::sync::atomic::AtomicU32::new(0);
        let served = self
            .drive("propose", group, |target, remaining| {
                let mut message = message.clone();
                message.attempt = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let channels = channels.clone();
                let traceparent = traceparent.cloned();
                async move {
                    let result = match channels.client_api(&target.address) {
                        Ok(mut client) => {
                            let mut request = request_with_timeout(message, remaining);
                            if let Some(traceparent) = traceparent
                                && let Ok(value) = traceparent.as_str().parse()
                            {
                                request.metadata_mut().insert("traceparent", value);
                            }
                            bounded(remaining, client.propose(request)).await
                        }
                        Err(error) => Err(error),
                    };
                    decide::classify_propose(&target.address, result)
                }
            })
            .await;
        let served = match served {
            Ok(served) => served,
            Err(exhausted) => return Err(propose_error(exhausted)),
        };
        let applied = served.value;
        self.topology()
            .observe_success(group, served.target.node_id, applied.log_term);
        let reply = codec::decode::<Reply>("reply", &applied.reply).map_err(|error| {
            // Applied, but the reply is unreadable: the outcome is known to the cluster, not
            // to us. Reporting it as unknown never calls an applied command failed.
            ProposeError::Unknown {
                attempts: served.attempts,
                last_error: ClientError::Decode {
                    address: served.target.address.clone(),
                    what: "reply",
                    reason: error.to_string(),
                },
            }
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

    /// Reads one auction's state, following leader hints. Reads change nothing, so every
    /// transient failure is retried until the deadline.
    pub async fn read_auction(
        &self,
        auction: AuctionId,
        consistency: ReadConsistency,
    ) -> Result<AuctionRead, ClientError> {
        let group = self.group_of(auction);
        let message = ReadAuctionRequest {
            group_id: group.0,
            auction_id: auction.0,
            consistency: consistency.to_proto().into(),
            traceparent: String::new(),
        };
        let served = self
            .read_call(
                "read",
                group,
                consistency,
                message,
                |mut client, request| async move { client.read_auction(request).await },
                decide::classify_read,
            )
            .await;
        let result = served.and_then(|served| decode_view(&served.target, served.value));
        telemetry::outcome(
            "read",
            match &result {
                Ok(_) => "ok",
                Err(error) => error.code().as_str(),
            },
        );
        result
    }

    /// One page of `group`'s auctions in id order: those `filter` keeps, after `after`
    /// (exclusive; `None` from the first), at most `limit` (0: the node's default, 50).
    /// Follows leader hints and retries transient failures like [`Client::read_auction`].
    /// A filtered page may be short, even empty, and still have a next page
    /// ([`GroupPage::next_after`]).
    pub async fn list_group(
        &self,
        group: GroupId,
        filter: ListFilter,
        after: Option<AuctionId>,
        limit: u32,
        consistency: ReadConsistency,
    ) -> Result<GroupPage, ClientError> {
        let (wire_filter, closing_within_us) = filter.to_proto();
        let message = ListAuctionsRequest {
            group_id: group.0,
            filter: wire_filter.into(),
            closing_within_us,
            after_auction_id: after.map(|auction| auction.0),
            limit,
            consistency: consistency.to_proto().into(),
            traceparent: String::new(),
        };
        let served = self
            .read_call(
                "list",
                group,
                consistency,
                message,
                |mut client, request| async move { client.list_auctions(request).await },
                decide::classify_list,
            )
            .await;
        let result = served.and_then(|served| {
            listing::decode_page(
                &served.target.address,
                group,
                served.target.node_id,
                served.value,
            )
        });
        telemetry::outcome(
            "list",
            match &result {
                Ok(_) => "ok",
                Err(error) => error.code().as_str(),
            },
        );
        result
    }

    /// One page of the whole cluster's auctions: at most `limit` (1..=500) that `filter`
    /// keeps, by group (1..=shard_count) and then by id, from `from`
    /// ([`ListCursor::START`] for the first page). [`AuctionList::next`] is where the next
    /// page starts, `None` after the last. Asks each group in turn with
    /// [`Client::list_group`], at most [`LIST_CALLS_PER_PAGE_MAX`] times per page; a
    /// sparse filter over many auctions may return a short page with a cursor.
    pub async fn list_auctions(
        &self,
        filter: ListFilter,
        from: ListCursor,
        limit: usize,
        consistency: ReadConsistency,
    ) -> Result<AuctionList, ClientError> {
        if !(1..=LIST_AUCTIONS_LIMIT_MAX).contains(&limit) {
            return Err(ClientError::InvalidInput(format!(
                "a page lists 1 to {LIST_AUCTIONS_LIMIT_MAX} auctions, not {limit}"
            )));
        }
        let shards = self.inner.shards;
        let mut cursor = Some(from.check(shards)?);
        let mut auctions = Vec::new();
        let mut calls = 0;
        while let Some(at) = cursor {
            let room = limit - auctions.len();
            if room == 0 || calls == LIST_CALLS_PER_PAGE_MAX {
                break;
            }
            calls += 1;
            // `room` is at most LIST_AUCTIONS_LIMIT_MAX, far below u32::MAX.
            let room = u32::try_from(room).unwrap_or(u32::MAX);
            let page = self
                .list_group(at.group, filter, at.after, room, consistency)
                .await?;
            auctions.extend(page.auctions);
            cursor = listing::advance(at, page.next_after, shards);
        }
        debug_assert!(auctions.len() <= limit);
        Ok(AuctionList {
            auctions,
            next: cursor,
        })
    }

    /// Streams `group`'s committed events from `from_log_index` (0: the oldest available),
    /// only those of `auctions` (plus group-wide events) unless it is empty.
    ///
    /// The stream is served by one replica (the cached leader, else the first member that
    /// accepts a connection). It ends after a `Resync` or an error; the caller resubscribes
    /// from the last `log_index` it saw plus one. The stream has no deadline of its own.
    pub fn subscribe(
        &self,
        group: GroupId,
        from_log_index: u64,
        auctions: Vec<AuctionId>,
    ) -> impl Stream<Item = Result<SubscribeItem, ClientError>> + Send + 'static {
        let client = self.clone();
        futures::stream::once(async move {
            client
                .open_subscription(group, from_log_index, auctions)
                .await
        })
        .flat_map(|opened| match opened {
            Ok(stream) => stream,
            Err(error) => futures::stream::once(futures::future::ready(Err(error))).boxed(),
        })
    }

    async fn open_subscription(
        &self,
        group: GroupId,
        from_log_index: u64,
        auctions: Vec<AuctionId>,
    ) -> Result<SubscribeStream, ClientError> {
        if auctions.len() > SUBSCRIBE_AUCTIONS_MAX {
            return Err(ClientError::InvalidInput(format!(
                "a subscription filters on at most {SUBSCRIBE_AUCTIONS_MAX} auctions, got {}",
                auctions.len()
            )));
        }
        let message = SubscribeRequest {
            group_id: group.0,
            from_log_index,
            auction_ids: auctions.iter().map(|auction| auction.0).collect(),
        };
        let Some(route) = self.topology().route(group) else {
            return Err(no_node_known(group));
        };
        let deadline = self.inner.options.deadline;
        let mut last_error = no_node_known(group);
        // The rotation ends with `first`; turned once, it starts with it.
        let mut order = route.rotation;
        order.rotate_right(1);
        for target in order {
            telemetry::attempt("subscribe");
            let opened = match self.inner.channels.client_api(&target.address) {
                // The deadline bounds opening the stream only: no `grpc-timeout`, which
                // would make the server end a healthy stream when it passes.
                Ok(mut client) => {
                    let request = tonic::Request::new(message.clone());
                    bounded(deadline, client.subscribe(request)).await
                }
                Err(error) => Err(error),
            };
            match opened {
                Ok(streaming) => {
                    telemetry::outcome("subscribe", "opened");
                    let address = target.address.clone();
                    let stream = streaming.map(move |item| match item {
                        Ok(message) => decode_subscribe(&address, message),
                        Err(status) => {
                            Err(decide::classify_call_error(&address, CallError::Status(status)).1)
                        }
                    });
                    return Ok(stream.boxed());
                }
                Err(error) => {
                    let (failure, error) = decide::classify_call_error(&target.address, error);
                    if failure != decide::Failure::NotSent {
                        return Err(error);
                    }
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    fn topology(&self) -> MutexGuard<'_, Topology> {
        lock(&self.inner.topology)
    }

    /// One read-only call on `group` (a read or a listing), following hints like every
    /// operation: `call` makes the RPC on a node's client API, `classify` judges its answer.
    /// A read that is not local was served by the leader, so the topology learns who leads.
    async fn read_call<M, R, T, C, Fut>(
        &self,
        op: &'static str,
        group: GroupId,
        consistency: ReadConsistency,
        message: M,
        call: C,
        classify: fn(&str, Result<R, CallError>) -> Verdict<T>,
    ) -> Result<Served<T>, ClientError>
    where
        M: Clone,
        C: Fn(ClientApiClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let channels = &self.inner.channels;
        let served = self
            .drive(op, group, |target, remaining| {
                let attempt = channels
                    .client_api(&target.address)
                    .map(|client| call(client, request_with_timeout(message.clone(), remaining)));
                async move {
                    let result = match attempt {
                        Ok(call) => bounded(remaining, call).await,
                        Err(error) => Err(error),
                    };
                    classify(&target.address, result)
                }
            })
            .await
            .map_err(|exhausted| exhausted.last_error)?;
        if consistency != ReadConsistency::Local {
            // Only the leader serves linearizable and lease reads.
            self.topology()
                .observe_success(group, served.target.node_id, 0);
        }
        Ok(served)
    }

    async fn drive<T, F, Fut>(
        &self,
        op: &'static str,
        group: GroupId,
        send: F,
    ) -> Result<Served<T>, Exhausted>
    where
        F: FnMut(Target, Duration) -> Fut,
        Fut: Future<Output = Verdict<T>>,
    {
        let policy = self.inner.options.retry_policy();
        drive(&self.inner.topology, policy, op, group, send).await
    }
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
        tracing::debug!(op, group = group.0, node = target.node_id, %error, "attempt failed");
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

fn lock(topology: &Mutex<Topology>) -> MutexGuard<'_, Topology> {
    topology
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn propose_error(exhausted: Exhausted) -> ProposeError {
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
    let not_applied = |code, message: String| ProposeError::NotApplied { code, message };
    if group.0 == 0 || group.0 > u64::from(shards.get()) {
        return Err(not_applied(
            ErrorCode::InvalidArgument,
            format!(
                "{group} is not an auction shard: the cluster has groups 1..={}",
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
    let encoded = codec::encode("request", request)
        .map_err(|error| not_applied(ErrorCode::InvalidArgument, error.to_string()))?;
    if encoded.len() > PROPOSAL_COMMAND_BYTES_MAX {
        return Err(not_applied(
            ErrorCode::PayloadTooLarge,
            format!(
                "the encoded command is {} bytes, the limit is {PROPOSAL_COMMAND_BYTES_MAX}",
                encoded.len()
            ),
        ));
    }
    let message = ProposeRequest {
        group_id: group.0,
        request_id: request.request_id.as_str().to_owned(),
        auction_id: auction.map_or(0, |auction| auction.0),
        traceparent: traceparent.map_or_else(String::new, ToString::to_string),
        codec_version: u32::from(FORMAT_VERSION),
        attempt: 0, // set per attempt
        command: Some(propose_request::Command::EncodedRequest(Bytes::from(
            encoded,
        ))),
    };
    check_encoded_len(&message, CLIENT_REQUEST_BYTES_MAX)
        .map_err(|error| not_applied(ErrorCode::PayloadTooLarge, error.message))?;
    Ok(message)
}

fn no_node_known(group: GroupId) -> ClientError {
    ClientError::InvalidInput(format!(
        "no node is known for {group}: the client's address book is empty"
    ))
}

pub(crate) fn decode_view(
    target: &Target,
    view: martelo_proto::AuctionView,
) -> Result<AuctionRead, ClientError> {
    let decode_error = |reason: String| ClientError::Decode {
        address: target.address.clone(),
        what: "auction view",
        reason,
    };
    if view.codec_version != u32::from(FORMAT_VERSION) {
        return Err(decode_error(format!(
            "codec version {} (this client reads {FORMAT_VERSION})",
            view.codec_version
        )));
    }
    let state: martelo_engine::AuctionView = codec::decode("auction view", &view.state)
        .map_err(|error| decode_error(error.to_string()))?;
    Ok(AuctionRead {
        view: state,
        group: GroupId(view.group_id),
        seq: view.seq,
        applied_index: view.applied_index,
        node: target.node_id,
    })
}

/// Decodes one message of a subscription stream. An `error` message becomes `Err`.
pub fn decode_subscribe(
    address: &str,
    message: SubscribeResponse,
) -> Result<SubscribeItem, ClientError> {
    let decode_error = |reason: String| ClientError::Decode {
        address: address.to_owned(),
        what: "subscription message",
        reason,
    };
    match message.kind {
        Some(subscribe_response::Kind::Entry(entry)) => {
            if entry.codec_version != u32::from(FORMAT_VERSION) {
                return Err(decode_error(format!(
                    "codec version {} (this client reads {FORMAT_VERSION})",
                    entry.codec_version
                )));
            }
            let events = entry
                .events
                .iter()
                .map(|envelope| {
                    codec::decode::<Event>("event", &envelope.event)
                        .map(|event| (AuctionId(envelope.auction_id), envelope.seq, event))
                        .map_err(|error| decode_error(error.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(SubscribeItem::Entry {
                log_index: entry.log_index,
                log_term: entry.log_term,
                timestamp: Timestamp(entry.timestamp_us),
                events,
            })
        }
        Some(subscribe_response::Kind::Progress(progress)) => Ok(SubscribeItem::Progress {
            applied_index: progress.applied_index,
        }),
        Some(subscribe_response::Kind::Resync(resync)) => Ok(SubscribeItem::Resync {
            reason: match resync.reason() {
                resync::Reason::Trimmed => ResyncReason::Trimmed,
                resync::Reason::Lagged => ResyncReason::Lagged,
                resync::Reason::Unspecified => ResyncReason::Unspecified,
            },
            first_available: resync.first_available,
        }),
        Some(subscribe_response::Kind::Error(error)) => Err(ClientError::from_api(address, error)),
        None => Err(decode_error("the message is empty".to_owned())),
    }
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
    use martelo_engine::{Action, Actor, Amount, RequestId, Role, UserId};
    use martelo_proto::{CommittedEntry, EventEnvelope, NotLeader, Resync};

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
            node_id: id,
            address: format!("127.0.0.1:{}", 7000 + id),
        }
    }

    #[test]
    fn a_proposal_carries_request_id_auction_and_codec_version_next_to_the_command() {
        let group = routing::group_of(AuctionId(3), shards());
        let message = proposal_message(shards(), group, &bid(3), None).unwrap();
        assert_eq!(message.group_id, group.0);
        assert_eq!(message.request_id, "req-1");
        assert_eq!(message.auction_id, 3);
        assert_eq!(message.codec_version, u32::from(FORMAT_VERSION));
        let Some(propose_request::Command::EncodedRequest(bytes)) = message.command else {
            panic!("command missing");
        };
        assert_eq!(codec::decode::<Request>("request", &bytes).unwrap(), bid(3));
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
    fn a_not_leader_hint_redirects_and_updates_the_cache() {
        let mut topology = Topology::default();
        topology.observe_hint(
            GroupId(1),
            &NotLeader {
                group_id: 1,
                leader_id: Some(2),
                leader_address: target(2).address,
                term: 3,
            },
        );
        let hint = NotLeader {
            group_id: 1,
            leader_id: Some(3),
            leader_address: target(3).address,
            term: 4,
        };
        let attempt = next_attempt(
            &mut topology,
            GroupId(1),
            &target(2),
            &Retry::NotLeader(Some(hint)),
        );
        assert_eq!(
            attempt,
            Attempt::NotLeader {
                leader: Some(target(3))
            }
        );
        assert_eq!(topology.leader(GroupId(1)).unwrap().node_id, 3);
    }

    #[test]
    fn a_cached_leader_that_says_it_does_not_lead_is_replaced_even_by_a_hint_without_term() {
        let mut topology = Topology::default();
        topology.observe_success(GroupId(1), 2, 5);
        let hint = NotLeader {
            group_id: 1,
            leader_id: Some(3),
            leader_address: target(3).address,
            term: 0,
        };
        let attempt = next_attempt(
            &mut topology,
            GroupId(1),
            &target(2),
            &Retry::NotLeader(Some(hint)),
        );
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
        topology.observe_hint(
            GroupId(1),
            &NotLeader {
                group_id: 1,
                leader_id: Some(2),
                leader_address: target(2).address,
                term: 3,
            },
        );
        let attempt = next_attempt(
            &mut topology,
            GroupId(1),
            &target(2),
            &Retry::NotLeader(None),
        );
        assert_eq!(attempt, Attempt::NotLeader { leader: None });
        assert_eq!(topology.leader(GroupId(1)), None);
    }

    #[test]
    fn a_busy_node_is_asked_again_and_a_failed_one_stops_being_the_leader() {
        let mut topology = Topology::default();
        topology.observe_success(GroupId(1), 2, 3);
        let attempt = next_attempt(&mut topology, GroupId(1), &target(2), &Retry::Busy);
        assert_eq!(attempt, Attempt::Busy { node: target(2) });
        assert_eq!(topology.leader(GroupId(1)).unwrap().node_id, 2);
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
    fn subscription_messages_decode_into_events_progress_and_resync() {
        let event = Event::BidderReinstated {
            user: UserId(4),
            at: Timestamp(10),
        };
        let entry = SubscribeResponse {
            kind: Some(subscribe_response::Kind::Entry(CommittedEntry {
                log_index: 12,
                log_term: 2,
                timestamp_us: 99,
                codec_version: u32::from(FORMAT_VERSION),
                events: vec![EventEnvelope {
                    auction_id: 0,
                    seq: 0,
                    event: Bytes::from(codec::encode("event", &event).unwrap()),
                }],
            })),
        };
        assert_eq!(
            decode_subscribe("a", entry).unwrap(),
            SubscribeItem::Entry {
                log_index: 12,
                log_term: 2,
                timestamp: Timestamp(99),
                events: vec![(AuctionId(0), 0, event)],
            }
        );
        let resync = SubscribeResponse {
            kind: Some(subscribe_response::Kind::Resync(Resync {
                reason: resync::Reason::Lagged.into(),
                first_available: 40,
            })),
        };
        assert_eq!(
            decode_subscribe("a", resync).unwrap(),
            SubscribeItem::Resync {
                reason: ResyncReason::Lagged,
                first_available: 40
            }
        );
        let error = decode_subscribe("a", SubscribeResponse { kind: None }).unwrap_err();
        assert_eq!(error.code().as_str(), "decode");
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
