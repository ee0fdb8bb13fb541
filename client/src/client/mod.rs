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
//!
//! Where things are:
//! - this file: [`Client`] and its public methods (connect, propose, propose_meta, read,
//!   list, subscribe), each a thin shell that builds a message and hands it to the attempt
//!   loop;
//! - [`users`]: the meta group's reads ([`Client::read_user`], [`Client::list_users`]) and
//!   what they return ([`UserKey`], [`UserRead`]);
//! - [`options`]: [`ClientOptions`] and [`ReadConsistency`];
//! - [`answers`]: what the methods return ([`Proposed`], [`AuctionRead`],
//!   [`SubscribeItem`], [`ResyncReason`]) and the decoding of wire answers into them;
//! - `attempts` (crate-private): the attempt loop shared with `admin` (`drive`,
//!   `next_attempt`), the checked `ProposeRequest`, how an exhausted proposal is reported,
//!   and the `Status` probes of seeds.
//!
//! What does not live here: the retry rule ([`crate::retry`]), what an answer means
//! ([`crate::decide`]), the leader cache ([`crate::topology`]), listing pages
//! ([`crate::listing`]) and admin operations ([`crate::admin`]).

pub(crate) mod answers;
pub(crate) mod attempts;
mod options;
mod users;

pub use answers::{AuctionRead, Proposed, ResyncReason, SubscribeItem, decode_subscribe};
pub use options::{ClientOptions, ReadConsistency};
pub use users::{UserKey, UserRead};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracing::Instrument as _;

use futures::{Stream, StreamExt};
use martelo_engine::{AuctionId, GroupId, MetaCommand, Request};
use martelo_proto::client_api_client::ClientApiClient;
use martelo_proto::{
    ErrorCode, LIST_AUCTIONS_LIMIT_MAX, ListAuctionsRequest, ProposeRequest, ReadAuctionRequest,
    SUBSCRIBE_AUCTIONS_MAX, SubscribeRequest, Traceparent,
};
use martelo_types::{self as routing, ShardCount};
use tonic::transport::Channel;

use self::answers::decode_view;
use self::attempts::{
    Exhausted, Served, drive, first_initialized_status, lock, meta_proposal_message, no_node_known,
    proposal_message, propose_error, proposed,
};
use crate::channels::{Channels, bounded, request_with_timeout};
use crate::decide::{self, CallError, Verdict};
use crate::error::{ClientError, ProposeError};
use crate::listing::{
    self, AuctionList, GroupPage, LIST_CALLS_PER_PAGE_MAX, ListCursor, ListFilter,
};
use crate::telemetry;
use crate::topology::{Target, Topology};

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
        let message = proposal_message(self.inner.shards, group, &request, traceparent);
        self.propose_message("propose", group, message, traceparent)
            .await
    }

    /// Proposes a meta command to the meta group (group 0): the gateway's sign-up, sessions,
    /// suspensions and role changes. Retried like [`Client::propose_with`]: every attempt
    /// carries the same request id, and an outcome that may have been applied is
    /// [`ProposeError::Unknown`], never a failure. The reply is `Accepted::Meta` or
    /// `RejectCode::Meta`. The actor must not be `MetaActor::Operator`
    /// (`permission_denied`): the operator acts through `Admin::propose_meta`.
    pub async fn propose_meta(
        &self,
        command: MetaCommand,
        traceparent: Option<&Traceparent>,
    ) -> Result<Proposed, ProposeError> {
        let message = meta_proposal_message(&command, traceparent);
        self.propose_message("propose_meta", GroupId::META, message, traceparent)
            .await
    }

    /// Sends a checked proposal (or reports why it could not be built) and records its
    /// outcome: what [`Client::propose_with`] and [`Client::propose_meta`] share.
    async fn propose_message(
        &self,
        op: &'static str,
        group: GroupId,
        message: Result<ProposeRequest, ProposeError>,
        traceparent: Option<&Traceparent>,
    ) -> Result<Proposed, ProposeError> {
        // One span for the proposal, one per attempt inside it (retries visible in a trace).
        let span = tracing::info_span!(
            "client.propose",
            op,
            group = group.0,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        martelo_trace::adopt(&span, traceparent.map(Traceparent::as_str));
        let result = match message {
            Ok(message) => {
                self.propose_attempts(op, group, message, traceparent)
                    .instrument(span)
                    .await
            }
            Err(error) => Err(error),
        };
        let label = match &result {
            Ok(proposed) if proposed.reply.is_accepted() => "accepted",
            Ok(_) => "rejected",
            Err(ProposeError::Unknown { .. }) => "unknown",
            Err(ProposeError::NotApplied { .. }) => "not_applied",
        };
        telemetry::outcome(op, label);
        if let Err(error) = &result {
            let code = error.code();
            tracing::debug!(group = group.0, %code, %error, "proposal without reply");
        }
        result
    }

    /// The attempt loop of one proposal, whatever its payload: the same message (so the same
    /// request id) every time, numbered per attempt.
    async fn propose_attempts(
        &self,
        op: &'static str,
        group: GroupId,
        message: ProposeRequest,
        traceparent: Option<&Traceparent>,
    ) -> Result<Proposed, ProposeError> {
        let channels = self.inner.channels.clone();
        // Numbered as they are made, sent or not: only the first may be decided without the
        // log, so counting one too many is the safe mistake.
        let attempt = std::sync::atomic::AtomicU32::new(0);
        let served = self
            .drive(op, group, |target, remaining| {
                let mut message = message.clone();
                message.attempt = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let span = tracing::info_span!(
                    "client.attempt",
                    attempt = message.attempt,
                    node = target.node_id.0,
                    address = %target.address,
                    span_id = tracing::field::Empty,
                );
                martelo_trace::adopt(&span, None);
                // The node's spans become this attempt's children when spans are exported.
                if let Some(outgoing) =
                    martelo_trace::outgoing(&span, traceparent.map(Traceparent::as_str))
                {
                    message.traceparent = outgoing;
                }
                let channels = channels.clone();
                async move {
                    let result = match channels.client_api(&target.address) {
                        Ok(mut client) => {
                            let traceparent = (!message.traceparent.is_empty())
                                .then(|| message.traceparent.parse().ok())
                                .flatten();
                            let mut request = request_with_timeout(message, remaining);
                            if let Some(value) = traceparent {
                                request.metadata_mut().insert("traceparent", value);
                            }
                            bounded(remaining, client.propose(request)).await
                        }
                        Err(error) => Err(error),
                    };
                    decide::classify_propose(&target.address, result)
                }
                .instrument(span)
            })
            .await;
        let served = served.map_err(propose_error)?;
        self.topology()
            .observe_success(group, served.target.node_id, served.value.log_term);
        proposed(served)
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
    /// only those of `auctions` (plus group-wide events) unless it is empty. On
    /// [`GroupId::META`] the stream carries the meta group's events (`Event::Meta`, with
    /// auction 0 and the meta `seq`), and `auctions` is ignored by the node.
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
