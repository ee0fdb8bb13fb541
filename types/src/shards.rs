//! Which Raft group owns an auction.
//!
//! The rule is part of the cluster's contract: the gateway, the client library, the fault
//! suite and every node must agree on it, and it must never change for a running cluster.
//!
//! ```text
//!   group(auction) = 1 + XXH3-64(auction id as 8 little-endian bytes) mod shard_count
//! ```
//!
//! Group 0 is the meta group (cluster configuration); auction shards are groups
//! `1..=shard_count`. The shard count is fixed when the cluster is initialised. XXH3 is a
//! specified, platform-independent hash, so the mapping is the same on every machine and in
//! every language that implements XXH3.

use crate::ids::{AuctionId, GroupId};

/// Most auction shards a cluster may have. The meta group's cluster facts and every node
/// enforce it.
pub const SHARD_COUNT_MAX: u32 = 1024;

/// Why a shard count was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("shard count must be between 1 and {SHARD_COUNT_MAX}, got {0}")]
pub struct InvalidShardCount(pub u32);

/// The number of auction shards, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardCount(u32);

impl TryFrom<u32> for ShardCount {
    type Error = InvalidShardCount;

    fn try_from(count: u32) -> Result<ShardCount, InvalidShardCount> {
        if (1..=SHARD_COUNT_MAX).contains(&count) {
            Ok(ShardCount(count))
        } else {
            Err(InvalidShardCount(count))
        }
    }
}

impl ShardCount {
    pub fn get(self) -> u32 {
        self.0
    }

    /// The auction shards, in order.
    pub fn groups(self) -> impl Iterator<Item = GroupId> {
        (1..=u64::from(self.0)).map(GroupId)
    }
}

/// The auction shard that owns `auction`.
pub fn group_of(auction: AuctionId, shards: ShardCount) -> GroupId {
    let hash = xxhash_rust::xxh3::xxh3_64(&auction.0.to_le_bytes());
    let index = hash % u64::from(shards.get());
    GroupId(1 + index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(count: u32) -> ShardCount {
        ShardCount::try_from(count).expect("valid shard count")
    }

    #[test]
    fn the_mapping_is_pinned_so_it_never_changes_under_a_running_cluster() {
        // If this test fails, the routing rule changed: every existing cluster would look for
        // its auctions in the wrong groups. These values are golden, not recomputed.
        let eight = shards(8);
        let groups: Vec<u64> = (0..16).map(|id| group_of(AuctionId(id), eight).0).collect();
        assert_eq!(groups, vec![2, 7, 4, 6, 1, 5, 4, 8, 7, 8, 6, 5, 8, 2, 7, 4]);
    }

    #[test]
    fn auctions_spread_evenly_over_shards_and_never_reach_the_meta_group() {
        let eight = shards(8);
        let mut counts = [0u32; 9];
        for id in 0..80_000 {
            counts[group_of(AuctionId(id), eight).0 as usize] += 1;
        }
        assert_eq!(counts[0], 0, "group 0 is the meta group");
        for count in &counts[1..] {
            assert!((9_000..11_000).contains(count), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn shard_counts_outside_the_limits_are_refused() {
        assert_eq!(ShardCount::try_from(0), Err(InvalidShardCount(0)));
        assert_eq!(
            ShardCount::try_from(SHARD_COUNT_MAX + 1),
            Err(InvalidShardCount(1025))
        );
        assert_eq!(
            shards(3).groups().collect::<Vec<_>>(),
            vec![GroupId(1), GroupId(2), GroupId(3)]
        );
    }
}
