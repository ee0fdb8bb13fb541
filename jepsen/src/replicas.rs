//! What the harness collects from every replica after the nemeses are healed (`final.json`):
//! each node's state digest and, per auction, the applied entries in log order.
//!
//! The harness collects it only after every replica has applied up to the leader's commit
//! index, so a replica that lacks a committed entry at that point is a real loss, not lag.
//!
//! An entry is a bid the engine *applied* (accepted or rejected, recorded under its request
//! id) or the auction's close. A retry that the engine answered from its dedupe table is not
//! an entry: it applied nothing. So a request id that shows up twice is a double apply (I2).
//!
//! What the runner can collect from a real cluster: the engine emits an event for an
//! *accepted* bid (`BidAccepted`) and for a close (`Closed`), but nothing for a rejected bid,
//! so logs collected from a cluster hold accepted bids and closes only. The checkers never
//! need a rejected entry: "acknowledged but lost" and "applied twice" are about accepted bids,
//! and a retry answered differently from its first attempt is caught in the history.
//!
//! A replica is either a whole node (`group` absent: it holds every auction, as the generator
//! writes it) or one Raft group's replica on one node (`group` set, named `g<group>/n<node>`),
//! as the runner writes it: then `auctions` lists *every* auction of that group, with an empty
//! log for one without entries, and the checkers judge the replica only on those auctions.
//! Digests are compared between replicas of the same group.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::history::{Amount, AuctionId, BidderId, CloseOutcome};

/// The largest `final.json` accepted.
pub const FINAL_STATE_BYTES_MAX: u64 = 1 << 30;

/// One applied entry of an auction, in log order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LogEntry {
    Bid {
        request: String,
        bidder: BidderId,
        amount: Amount,
        accepted: bool,
    },
    Close {
        outcome: CloseOutcome,
    },
}

/// One replica's view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaState {
    /// The Raft group this replica belongs to; absent for a whole-node replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u64>,
    /// The replica's state digest at its applied index; empty when the node did not report
    /// one (the digest checker then says "unknown", never "valid").
    pub digest: String,
    pub auctions: BTreeMap<AuctionId, Vec<LogEntry>>,
}

/// Every replica's view, by node name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalState {
    pub replicas: BTreeMap<String, ReplicaState>,
}

#[derive(Debug, thiserror::Error)]
pub enum FinalStateError {
    #[error("final state is larger than {max} bytes")]
    TooLarge { max: u64 },
    #[error("final state is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("reading the final state: {0}")]
    Io(#[from] std::io::Error),
}

impl FinalState {
    /// Reads `final.json`, refusing more than `bytes_max` bytes.
    pub fn read(input: impl Read, bytes_max: u64) -> Result<FinalState, FinalStateError> {
        let mut bytes = Vec::new();
        input
            .take(bytes_max.saturating_add(1))
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > bytes_max {
            return Err(FinalStateError::TooLarge { max: bytes_max });
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// node -> digest, the input of the digest checker.
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.replicas
            .iter()
            .map(|(node, state)| (node.clone(), state.digest.clone()))
            .collect()
    }

    /// group -> (replica -> digest): only replicas of one group must agree. Whole-node
    /// replicas (no group) form one set.
    pub fn digests_by_group(&self) -> BTreeMap<Option<u64>, BTreeMap<String, String>> {
        let mut groups: BTreeMap<Option<u64>, BTreeMap<String, String>> = BTreeMap::new();
        for (replica, state) in &self.replicas {
            groups
                .entry(state.group)
                .or_default()
                .insert(replica.clone(), state.digest.clone());
        }
        groups
    }
}

impl ReplicaState {
    /// Whether this replica is expected to hold `auction`: a whole-node replica holds every
    /// auction, a group replica only those the runner listed for its group.
    pub fn holds(&self, auction: u64) -> bool {
        self.group.is_none() || self.auctions.contains_key(&auction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_state_round_trips_and_is_bounded() {
        let mut state = FinalState::default();
        let entries = vec![
            LogEntry::Bid {
                request: "r1".into(),
                bidder: 1,
                amount: 100,
                accepted: true,
            },
            LogEntry::Close {
                outcome: CloseOutcome::Unsold,
            },
        ];
        let replica = ReplicaState {
            group: Some(1),
            digest: "abc".into(),
            auctions: [(7, entries)].into(),
        };
        state.replicas.insert("n1".into(), replica);
        let bytes = serde_json::to_vec(&state).expect("serializes");
        assert_eq!(FinalState::read(&bytes[..], 1 << 20).expect("reads"), state);
        assert!(matches!(
            FinalState::read(&bytes[..], 10),
            Err(FinalStateError::TooLarge { .. })
        ));
        assert!(matches!(
            FinalState::read(&b"{\"x\":1}"[..], 100),
            Err(FinalStateError::Json(_))
        ));
    }
}
