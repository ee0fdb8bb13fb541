//! Identifiers shared by every crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An auction. Chosen by the cluster side (gateway or client library) before routing, because
/// the shard is a hash of it; the engine rejects an id that already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuctionId(pub u64);

/// A Raft group's id: the meta group (0) or an auction shard (`1..=shard_count`). The engine
/// runs inside one group and never reads it; storage keys, the node and the client library
/// share it. Every storage key starts with it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct GroupId(pub u64);

impl GroupId {
    /// The group that holds accounts and cluster facts, not auctions.
    pub const META: GroupId = GroupId(0);
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group-{}", self.0)
    }
}

/// A node of the cluster: a number from 1 up, chosen by the operator and never reused (the
/// meta group remembers retired ids). Raft's own node id is this number.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The number, as Raft and the wire types carry it.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Whether this is a usable id: 0 is reserved (it means "none" on the wire).
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }
}

impl From<u64> for NodeId {
    fn from(id: u64) -> NodeId {
        NodeId(id)
    }
}

impl From<NodeId> for u64 {
    fn from(id: NodeId) -> u64 {
        id.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a node id was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidNodeId {
    #[error("node id {0:?} is not a positive integer")]
    NotANumber(String),
    #[error("node id 0 is reserved: node ids start at 1")]
    Zero,
}

impl FromStr for NodeId {
    type Err = InvalidNodeId;

    fn from_str(text: &str) -> Result<NodeId, InvalidNodeId> {
        let id: u64 = text
            .trim()
            .parse()
            .map_err(|_| InvalidNodeId::NotANumber(text.to_owned()))?;
        if id == 0 {
            return Err(InvalidNodeId::Zero);
        }
        Ok(NodeId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_parse_from_one_up_and_serialize_as_bare_numbers() {
        assert_eq!("7".parse(), Ok(NodeId(7)));
        assert_eq!(" 7 ".parse(), Ok(NodeId(7)));
        assert_eq!("0".parse::<NodeId>(), Err(InvalidNodeId::Zero));
        assert!(matches!(
            "x".parse::<NodeId>(),
            Err(InvalidNodeId::NotANumber(_))
        ));
        assert!(matches!(
            "-1".parse::<NodeId>(),
            Err(InvalidNodeId::NotANumber(_))
        ));
        assert_eq!(serde_json::to_string(&NodeId(3)).expect("json"), "3");
        assert_eq!(NodeId(3).to_string(), "3");
        assert_eq!(GroupId(2).to_string(), "group-2");
    }
}
