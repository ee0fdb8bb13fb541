//! The clock-skew verdict (I7): from round-trip samples of the peers' clocks, whether this
//! node's clock is close enough to theirs to lead.
//!
//! Pure: the node's skew guard (`node/skew.rs`) takes the samples and acts on the verdict.

use martelo_engine::{Micros, Timestamp};

/// One peer's clock reading, taken as a round trip: `sent` and `received` are local wall
/// times, `peer` is the peer's wall time when it answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    pub sent: Timestamp,
    pub peer: Timestamp,
    pub received: Timestamp,
}

impl ClockSample {
    /// The peer's clock minus ours, in microseconds, bounded by the round trip's uncertainty:
    /// the true offset lies within `offset ± round_trip / 2`.
    pub fn offset(&self) -> (i64, Micros) {
        let round_trip = self.received.since(self.sent);
        let midpoint = self.sent.0 as i128 + (round_trip.0 / 2) as i128;
        let offset = (self.peer.0 as i128 - midpoint).clamp(i64::MIN as i128, i64::MAX as i128);
        (offset as i64, Micros(round_trip.0 / 2))
    }
}

/// Whether this node's clock is close enough to its peers' to lead.
///
/// A node refuses to lead when its clock is off from a majority of the peers it sampled by
/// more than `bound`, counting the measurement uncertainty in its favour (so a slow network
/// alone never disqualifies a node). With no samples it may lead: a single-node group has no
/// peers to disagree with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkewVerdict {
    MayLead,
    /// The largest certain skew among the peers it disagrees with, in microseconds.
    RefuseToLead {
        skew: Micros,
        peers_disagreeing: usize,
        peers_sampled: usize,
    },
}

pub fn skew_verdict(samples: &[ClockSample], bound: Micros) -> SkewVerdict {
    let mut disagreeing = 0;
    let mut worst = Micros(0);
    for sample in samples {
        let (offset, uncertainty) = sample.offset();
        let certain = Micros(offset.unsigned_abs().saturating_sub(uncertainty.0));
        if certain > bound {
            disagreeing += 1;
            worst = worst.max(certain);
        }
    }
    if disagreeing * 2 > samples.len() {
        SkewVerdict::RefuseToLead {
            skew: worst,
            peers_disagreeing: disagreeing,
            peers_sampled: samples.len(),
        }
    } else {
        SkewVerdict::MayLead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;

    fn sample(sent_ms: u64, peer_ms: u64, received_ms: u64) -> ClockSample {
        ClockSample {
            sent: Timestamp(sent_ms * MS),
            peer: Timestamp(peer_ms * MS),
            received: Timestamp(received_ms * MS),
        }
    }

    #[test]
    fn offset_is_measured_from_the_round_trip_midpoint() {
        assert_eq!(
            sample(1_000, 1_105, 1_010).offset(),
            (100 * MS as i64, Micros(5 * MS))
        );
        assert_eq!(
            sample(1_000, 905, 1_010).offset(),
            (-100 * MS as i64, Micros(5 * MS))
        );
    }

    #[test]
    fn a_node_off_from_most_peers_by_more_than_the_bound_refuses_to_lead() {
        let bound = Micros(500 * MS);
        let fine = [sample(0, 100, 10), sample(0, 5, 10)];
        assert_eq!(skew_verdict(&fine, bound), SkewVerdict::MayLead);
        let off = [sample(0, 900, 10), sample(0, 1_200, 10)];
        assert_eq!(
            skew_verdict(&off, bound),
            SkewVerdict::RefuseToLead {
                skew: Micros(1_190 * MS),
                peers_disagreeing: 2,
                peers_sampled: 2
            }
        );
    }

    #[test]
    fn one_bad_peer_or_a_slow_network_does_not_disqualify_a_node() {
        let bound = Micros(500 * MS);
        let one_bad_peer = [sample(0, 900, 10), sample(0, 5, 10), sample(0, 0, 10)];
        assert_eq!(skew_verdict(&one_bad_peer, bound), SkewVerdict::MayLead);
        // 1.2 s round trip: a 600 ms apparent offset is within the uncertainty.
        let slow = [sample(0, 1_200, 1_200)];
        assert_eq!(skew_verdict(&slow, bound), SkewVerdict::MayLead);
        assert_eq!(skew_verdict(&[], bound), SkewVerdict::MayLead);
    }
}
