//! Reading through the admin API: [`Admin::trigger_snapshot`] (one replica builds a
//! snapshot), [`Admin::show_auction`] (an auction's state at the leader, or at a chosen
//! replica) and [`Admin::list_auctions`] (a page of the cluster's auctions, through a
//! [`Client`]).
//!
//! What does not live here: changes (`super::membership`), the client's own reads
//! ([`Client::read_auction`], [`Client::list_auctions`]).

use std::sync::Mutex;
use std::time::Duration;

use martelo_engine::{AuctionId, GroupId};
use martelo_proto::admin_api_client::AdminApiClient;
use martelo_proto::{
    ApiError, ShowAuctionRequest, TriggerSnapshotRequest, trigger_snapshot_response,
};
use martelo_types::{self as routing, NodeId};
use tonic::transport::Channel;

use super::{Admin, empty_answer};
use crate::channels::{Channels, bounded, request_with_timeout};
use crate::client::answers::decode_view;
use crate::client::attempts::{Exhausted, Served, drive, first_initialized_status};
use crate::client::{AuctionRead, Client, ClientOptions, ReadConsistency};
use crate::decide::{self, CallError, Verdict};
use crate::error::ClientError;
use crate::listing::{AuctionList, ListCursor, ListFilter};
use crate::topology::Topology;

impl Admin {
    /// Builds a snapshot of `group` on the node at `address` (snapshots are per replica);
    /// returns the last log index it covers.
    pub async fn trigger_snapshot(
        &self,
        address: &str,
        group: GroupId,
    ) -> Result<u64, ClientError> {
        let message = TriggerSnapshotRequest { group_id: group.0 };
        self.call_at(
            address,
            self.options.change_timeout,
            "trigger snapshot response",
            message,
            |mut admin, request| async move { admin.trigger_snapshot(request).await },
            |response| {
                response.result.map(|result| match result {
                    trigger_snapshot_response::Result::SnapshotIndex(index) => Ok(index),
                    trigger_snapshot_response::Result::Error(error) => Err(error),
                })
            },
        )
        .await
    }

    /// One admin call at `group`'s leader, following hints and retrying within `timeout`:
    /// each attempt sends (a copy of) `message` with `call`, and `verdict` judges what the
    /// node at that address answered.
    pub(super) async fn at_leader<Req, M, T, Fut>(
        &self,
        topology: &Mutex<Topology>,
        group: GroupId,
        timeout: Duration,
        message: Req,
        call: impl Fn(AdminApiClient<Channel>, tonic::Request<Req>) -> Fut + Copy,
        verdict: impl Fn(&str, Result<M, CallError>) -> Verdict<T> + Copy,
    ) -> Result<Served<T>, Exhausted>
    where
        Req: Clone,
        Fut: Future<Output = Result<tonic::Response<M>, tonic::Status>>,
    {
        let policy = self.policy(timeout);
        drive(topology, policy, "admin", group, |target, remaining| {
            let channels = self.channels.clone();
            let message = message.clone();
            async move {
                let answer = call_admin(&channels, &target.address, remaining, message, call).await;
                verdict(&target.address, answer)
            }
        })
        .await
    }

    /// One admin call to the node at `address` (no leader, no retries), bounded by
    /// `timeout`: `call` sends `message` and `result` splits the answer into a value or
    /// the node's error, `None` when it holds neither (an answer to `what` that is empty).
    /// Connection and call failures are classified like every other call's.
    pub(super) async fn call_at<Req, M, T, Fut>(
        &self,
        address: &str,
        timeout: Duration,
        what: &'static str,
        message: Req,
        call: impl FnOnce(AdminApiClient<Channel>, tonic::Request<Req>) -> Fut,
        result: impl FnOnce(M) -> Option<Result<T, ApiError>>,
    ) -> Result<T, ClientError>
    where
        Fut: Future<Output = Result<tonic::Response<M>, tonic::Status>>,
    {
        let answer = call_admin(&self.channels, address, timeout, message, call).await;
        match answer.map(result) {
            Ok(Some(Ok(value))) => Ok(value),
            Ok(Some(Err(error))) => Err(ClientError::from_api(address, error)),
            Ok(None) => Err(empty_answer(address, what)),
            Err(error) => Err(decide::classify_call_error(address, error).1),
        }
    }

    /// An auction's state through the admin API. `Linearizable` and `Lease` go to the
    /// group's leader (following hints); `Local` shows what the first seed that answers
    /// holds, stale or not.
    pub async fn show_auction(
        &self,
        seeds: &[String],
        auction: AuctionId,
        consistency: ReadConsistency,
    ) -> Result<AuctionRead, ClientError> {
        let (seed, status) =
            first_initialized_status(&self.channels, seeds, self.options.status_timeout).await?;
        let mut topology = Topology::default();
        topology.observe_status(&status);
        let shards = topology
            .shard_count()
            .ok_or_else(|| ClientError::ClusterNotInitialized {
                address: seed.clone(),
            })?;
        let group = routing::group_of(auction, shards);
        if consistency == ReadConsistency::Local {
            // Pin the route to the seed: a local read shows that replica, not the leader's.
            let seed_id = NodeId(status.node.as_ref().map_or(0, |node| node.node_id));
            topology.observe_success(group, seed_id, u64::MAX);
        }
        let topology = Mutex::new(topology);
        let message = ShowAuctionRequest {
            group_id: group.0,
            auction_id: auction.0,
            consistency: consistency.to_proto().into(),
        };
        let served = self
            .at_leader(
                &topology,
                group,
                self.options.change_timeout,
                message,
                |mut admin, request| async move { admin.show_auction(request).await },
                decide::classify_show,
            )
            .await;
        match served {
            Ok(served) => decode_view(&served.target, served.value),
            Err(exhausted) => Err(exhausted.last_error),
        }
    }

    /// One page of the cluster's auctions for `martelo auction list`, through the client
    /// API's `ListAuctions` (see [`crate::Client::list_auctions`]): a client is connected
    /// through `seeds` and follows leader hints group by group. `Local` reads whatever
    /// replica answers first (the cached leader first), not a chosen one.
    pub async fn list_auctions(
        &self,
        seeds: &[String],
        filter: ListFilter,
        from: ListCursor,
        limit: usize,
        consistency: ReadConsistency,
    ) -> Result<AuctionList, ClientError> {
        let policy = self.policy(self.options.change_timeout);
        let options = ClientOptions {
            deadline: policy.deadline,
            attempts_max: policy.attempts_max,
            backoff_initial: policy.backoff_initial,
            backoff_max: policy.backoff_max,
            connect_timeout: self.options.connect_timeout,
        };
        let client = Client::connect(seeds, options).await?;
        client.list_auctions(filter, from, limit, consistency).await
    }
}

/// Sends `message` through the admin client for `address` (`call` names the RPC), bounded by
/// `timeout`, which also travels as the request's `grpc-timeout`.
pub(super) async fn call_admin<Req, M, Fut>(
    channels: &Channels,
    address: &str,
    timeout: Duration,
    message: Req,
    call: impl FnOnce(AdminApiClient<Channel>, tonic::Request<Req>) -> Fut,
) -> Result<M, CallError>
where
    Fut: Future<Output = Result<tonic::Response<M>, tonic::Status>>,
{
    let admin = channels.admin_api(address)?;
    bounded(timeout, call(admin, request_with_timeout(message, timeout))).await
}
