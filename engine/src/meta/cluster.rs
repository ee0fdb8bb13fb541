//! Rules about the cluster's facts: the shard count and retired node ids.
//!
//! Only the operator (the admin API) sets them. The node reads them back through
//! [`MetaState::shard_count`] and [`MetaState::is_retired`], and refuses to re-add a retired id.

use crate::limits;
use crate::meta::types::NodeId;
use crate::meta::users::Acting;
use crate::meta::{MetaAccepted, MetaActor, MetaEventKind, MetaRejectCode, MetaState, Rule, emit};
use crate::outcome::Event;
use crate::types::Timestamp;

impl MetaState {
    /// Records the shard count once. The same value again is accepted (a retried or repeated
    /// `cluster init`) without an event; another value is `shard_count_conflict`, because
    /// auctions are routed by it and changing it would strand them.
    pub(super) fn set_cluster_facts(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        shard_count: u32,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        if !(1..=limits::SHARD_COUNT_MAX).contains(&shard_count) {
            return Err(MetaRejectCode::InvalidShardCount);
        }
        if self.acting(actor)? != Acting::Operator {
            return Err(MetaRejectCode::PermissionDenied);
        }
        match self.shard_count {
            Some(current) if current == shard_count => {}
            Some(_) => return Err(MetaRejectCode::ShardCountConflict),
            None => {
                self.shard_count = Some(shard_count);
                let kind = MetaEventKind::ClusterFactsSet { shard_count };
                emit(&mut self.seq, now, kind, events);
            }
        }
        Ok(MetaAccepted::ClusterFactsSet { shard_count })
    }

    /// Remembers a node id as retired, for good. Idempotent: retiring it again is accepted
    /// without an event.
    pub(super) fn retire_node(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        node_id: NodeId,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        if self.acting(actor)? != Acting::Operator {
            return Err(MetaRejectCode::PermissionDenied);
        }
        if !self.retired.contains(&node_id) {
            if self.retired.len() >= self.capacity.retired_nodes_max {
                return Err(MetaRejectCode::RetiredNodeLimitReached);
            }
            self.retired.insert(node_id);
            emit(
                &mut self.seq,
                now,
                MetaEventKind::NodeRetired { node_id },
                events,
            );
        }
        Ok(MetaAccepted::NodeRetired { node_id })
    }
}
