//! The clock-skew guard (I7): a node whose clock is off from its peers by more than the bound
//! refuses to lead.
//!
//! Every [`SAMPLE_EVERY`] the node asks each peer for its wall clock (the admin `Status` call
//! carries it) and measures the offset, NTP style, with the round trip as uncertainty
//! ([`crate::clock::skew_verdict`]). When a majority of peers disagree by more than the bound,
//! the node stops campaigning in every group, hands leadership of the groups it leads to
//! another voter, refuses to stamp proposals (`clock_skew`), and logs and exports why. When
//! its clock agrees again, it may lead again. The verdict goes into the node's
//! [`crate::clock::ClockGuard`], which every group's proposer reads.
//!
//! Also here, for tests: the task that follows `--clock-offset-file` (the file itself and the
//! wall clock it shifts are in [`crate::clock::wall`]).

use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Duration;

use martelo_proto::StatusRequest;

use super::metric_names::{CLOCK_OFFSET_SECONDS, CLOCK_REFUSING_TO_LEAD};
use super::registry::{Registry, Ticker};
use crate::clock::wall::OFFSET_FILE_EVERY;
use crate::clock::{ClockSample, OffsetFile, SkewVerdict, skew_verdict};

pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const SAMPLE_TIMEOUT: Duration = Duration::from_millis(500);

pub async fn run(registry: Weak<Registry>) {
    let mut ticker = Ticker::new(registry, SAMPLE_EVERY);
    while let Some(registry) = ticker.next().await {
        let peers: Vec<(u64, String)> = registry
            .address_book()
            .into_iter()
            .filter(|(id, _)| *id != registry.node_id())
            .collect();
        let mut samples = Vec::with_capacity(peers.len());
        let mut disagreeing = BTreeSet::new();
        for (peer, address) in peers {
            if let Some(sample) = sample(&registry, peer, &address).await {
                let (offset, _) = sample.offset();
                metrics::gauge!(CLOCK_OFFSET_SECONDS, "peer" => peer.to_string())
                    .set(offset as f64 / 1e6);
                // The verdict on this one sample is the same rule as for the node: a peer
                // whose clock is certainly off by more than the bound must not be handed
                // leadership (by the balancer or a hand-off), whichever clock is wrong.
                if skew_verdict(std::slice::from_ref(&sample), registry.skew_bound())
                    != SkewVerdict::MayLead
                {
                    disagreeing.insert(peer);
                }
                samples.push(sample);
            }
        }
        registry.set_clock_disagreeing(disagreeing);
        let verdict = skew_verdict(&samples, registry.skew_bound());
        let ok = verdict == SkewVerdict::MayLead;
        let was_ok = registry.clock_guard().set(ok);
        metrics::gauge!(CLOCK_REFUSING_TO_LEAD).set(if ok { 0.0 } else { 1.0 });
        if let SkewVerdict::RefuseToLead {
            skew,
            peers_disagreeing,
            peers_sampled,
        } = verdict
        {
            if was_ok {
                tracing::error!(
                    skew_us = skew.0,
                    bound_us = registry.skew_bound().0,
                    peers_disagreeing,
                    peers_sampled,
                    "this node's clock is off from its peers by more than the bound: it refuses to lead until it agrees again; fix its time source (NTP)"
                );
            }
            // This node's clock is the odd one out, so the peers it disagrees with are the
            // ones to lead: leave out only itself.
            let excluded = BTreeSet::from([registry.node_id()]);
            for group in registry.groups() {
                group.raft.runtime_config().elect(false);
                if group.raft.is_leader()
                    && let Some(target) = group.handoff_target(&excluded)
                {
                    let _ = group.raft.trigger().transfer_leader(target).await;
                }
            }
        } else if !was_ok {
            tracing::warn!("this node's clock agrees with its peers again: it may lead");
            for group in registry.groups() {
                group.raft.runtime_config().elect(true);
            }
        }
    }
}

async fn sample(registry: &Registry, peer: u64, address: &str) -> Option<ClockSample> {
    let channel = registry.peers().channel(peer, address).ok()?;
    let mut client = martelo_proto::services::admin_api_client(channel);
    let mut request = tonic::Request::new(StatusRequest {
        group_ids: vec![u64::MAX],
        ..StatusRequest::default()
    });
    request.set_timeout(SAMPLE_TIMEOUT);
    let sent = registry.wall_now();
    let response = client.status(request).await.ok()?.into_inner();
    let received = registry.wall_now();
    Some(ClockSample {
        sent,
        peer: martelo_engine::Timestamp(response.wall_clock_us),
        received,
    })
}

/// Testing only: keeps the node's clock offset equal to the integer (milliseconds) in `path`,
/// read every [`OFFSET_FILE_EVERY`] until the node stops (see [`OffsetFile`]).
pub async fn follow_offset_file(registry: Weak<Registry>, path: std::path::PathBuf) {
    let mut file = OffsetFile::new(path);
    let mut ticker = Ticker::new(registry, OFFSET_FILE_EVERY);
    while let Some(registry) = ticker.next().await {
        file.apply_to(registry.clock()).await;
    }
}
