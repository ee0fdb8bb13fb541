//! Reading through the admin API: [`Admin::trigger_snapshot`] (one replica builds a
//! snapshot), [`Admin::show_auction`] (an auction's state at the leader, or at a chosen
//! replica) and [`Admin::list_auctions`] (a page of the cluster's auctions, through a
//! [`Client`]).
//!
//! What does not live here: changes (`super::membership`), the client's own reads
//! ([`Client::read_auction`], [`Client::list_auctions`]).

use std::sync::Mutex;

use martelo_engine::{AuctionId, GroupId};
use martelo_proto::{ShowAuctionRequest, TriggerSnapshotRequest, trigger_snapshot_response};
use martelo_types::{self as routing, NodeId};

use super::{Admin, empty_answer};
use crate::channels::{bounded, request_with_timeout};
use crate::client::answers::decode_view;
use crate::client::attempts::{drive, first_initialized_status};
use crate::client::{AuctionRead, Client, ClientOptions, ReadConsistency};
use crate::decide;
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
        let timeout = self.options.change_timeout;
        let message = TriggerSnapshotRequest { group_id: group.0 };
        let answer = match self.channels.admin_api(address) {
            Ok(mut admin) => {
                bounded(
                    timeout,
                    admin.trigger_snapshot(request_with_timeout(message, timeout)),
                )
                .await
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok(response) => match response.result {
                Some(trigger_snapshot_response::Result::SnapshotIndex(index)) => Ok(index),
                Some(trigger_snapshot_response::Result::Error(error)) => {
                    Err(ClientError::from_api(address, error))
                }
                None => Err(empty_answer(address, "trigger snapshot response")),
            },
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
        let policy = self.policy(self.options.change_timeout);
        let served = drive(&topology, policy, "admin", group, |target, timeout| {
            let channels = self.channels.clone();
            async move {
                let answer = match channels.admin_api(&target.address) {
                    Ok(mut admin) => {
                        bounded(
                            timeout,
                            admin.show_auction(request_with_timeout(message, timeout)),
                        )
                        .await
                    }
                    Err(error) => Err(error),
                };
                decide::classify_show(&target.address, answer)
            }
        })
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
