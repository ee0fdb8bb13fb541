//! What the harness collects from every replica after the nemeses are healed (`final.json`):
//! each node's state digest and, per auction, the applied entries in log order.
//!
//! The harness collects it only after every replica has applied up to the leader's commit
//! index, so a replica that lacks a committed entry at that point is a real loss, not lag.
//!
//! An entry is a bid the engine *applied* (accepted or rejected, recorded under its request
//! id) or the auction's close. A retry that the engine answered from its dedupe table is not
//! an entry: it applied nothing. So a request id that shows up twice is a double apply (I2).

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
