//! `Subscribe`: a group's committed events streamed from its event log, auction groups and
//! the meta group alike.
//!
//! A meta event (group 0) goes out with auction id 0 and the meta group's own `seq`; the
//! auction filter applies to auction events only, so a subscriber of group 0 gets the whole
//! meta stream whatever ids it names.

use std::sync::Arc;
use std::time::Duration;

use martelo_engine::Event;
use martelo_engine::codec::wire::{self, WireVersion};
use martelo_proto::{
    ApiError, CommittedEntry, ErrorCode, EventEnvelope, SubscribeRequest, SubscribeResponse,
    subscribe_response,
};
use martelo_raft_store::EventLogError;
use tonic::Status;

use super::codec_version;
use crate::node::group::Group;
use crate::node::metric_names::SUBSCRIPTIONS;

/// Most records a subscription reads from the event log at once.
const SUBSCRIBE_READ_RECORDS: usize = 256;
/// How often an idle subscription sends `Progress`.
const SUBSCRIBE_HEARTBEAT: Duration = Duration::from_secs(1);
/// Messages buffered per subscriber before its reader waits for it.
pub(super) const SUBSCRIBE_BUFFER: usize = 256;

/// Streams a group's committed events from the event log until the subscriber leaves.
pub(super) async fn stream_events(
    group: Arc<Group>,
    request: SubscribeRequest,
    sender: tokio::sync::mpsc::Sender<Result<SubscribeResponse, Status>>,
) {
    // Only auction events are filtered: group-wide and meta events always pass, so on the
    // meta group (whose events name no auction) the whole stream is returned.
    let filter: std::collections::BTreeSet<u64> = request.auction_ids.iter().copied().collect();
    let mut applied = group.events.subscribe();
    let mut next = if request.from_log_index == 0 {
        group.events.first_available().max(1)
    } else {
        request.from_log_index
    };
    let mut last_progress = tokio::time::Instant::now();
    metrics::gauge!(SUBSCRIPTIONS).increment(1.0);
    loop {
        let message = match group.events.read_from(next, SUBSCRIBE_READ_RECORDS) {
            Err(EventLogError::Trimmed {
                first_available, ..
            }) => {
                let _ = sender
                    .send(Ok(SubscribeResponse {
                        kind: Some(subscribe_response::Kind::Resync(martelo_proto::Resync {
                            reason: martelo_proto::resync::Reason::Trimmed.into(),
                            first_available,
                        })),
                    }))
                    .await;
                break;
            }
            Err(EventLogError::Store(error)) => {
                let _ = sender
                    .send(Ok(SubscribeResponse {
                        kind: Some(subscribe_response::Kind::Error(ApiError::new(
                            ErrorCode::Internal,
                            error.to_string(),
                        ))),
                    }))
                    .await;
                break;
            }
            Ok(records) => records,
        };
        let read_any = !message.is_empty();
        let mut sent_any = false;
        for record in message {
            next = record.log_index + 1;
            let events: Vec<EventEnvelope> = record
                .events
                .iter()
                .filter(|event| match event {
                    Event::Auction(event) => {
                        filter.is_empty() || filter.contains(&event.auction_id.0)
                    }
                    _ => true,
                })
                .filter_map(|event| envelope(event).ok())
                .collect();
            if events.is_empty() {
                continue;
            }
            let entry = CommittedEntry {
                log_index: record.log_index,
                log_term: 0,
                timestamp_us: timestamp_of(&record.events),
                events,
                codec_version: codec_version(),
                traceparent: record.traceparent.unwrap_or_default(),
            };
            if sender
                .send(Ok(SubscribeResponse {
                    kind: Some(subscribe_response::Kind::Entry(entry)),
                }))
                .await
                .is_err()
            {
                metrics::gauge!(SUBSCRIPTIONS).decrement(1.0);
                return;
            }
            sent_any = true;
        }
        if read_any {
            if sent_any {
                last_progress = tokio::time::Instant::now();
            }
            continue;
        }
        // Caught up: everything applied so far has been read.
        let applied_index = *applied.borrow_and_update();
        next = next.max(applied_index.saturating_add(1).min(next.max(1)));
        if last_progress.elapsed() >= SUBSCRIBE_HEARTBEAT {
            let progress = SubscribeResponse {
                kind: Some(subscribe_response::Kind::Progress(
                    martelo_proto::Progress { applied_index },
                )),
            };
            if sender.send(Ok(progress)).await.is_err() {
                break;
            }
            last_progress = tokio::time::Instant::now();
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { break },
            () = tokio::time::sleep(SUBSCRIBE_HEARTBEAT) => {}
            () = sender.closed() => break,
        }
    }
    metrics::gauge!(SUBSCRIPTIONS).decrement(1.0);
}

/// The cluster timestamp of an entry, from its events (every event carries it).
fn timestamp_of(events: &[Event]) -> u64 {
    events
        .iter()
        .map(|event| match event {
            Event::Auction(event) => event.at.0,
            Event::BidderSuspended { at, .. } | Event::BidderReinstated { at, .. } => at.0,
            Event::Meta(event) => event.at.0,
        })
        .next()
        .unwrap_or(0)
}

/// One event as it goes out: its auction and seq beside the wire-encoded event.
pub(super) fn envelope(event: &Event) -> Result<EventEnvelope, ApiError> {
    let (auction_id, seq) = match event {
        Event::Auction(event) => (event.auction_id.0, event.seq),
        // The meta group's events name no auction; their seq is the meta group's own.
        Event::Meta(event) => (0, event.seq),
        Event::BidderSuspended { .. } | Event::BidderReinstated { .. } => (0, 0),
    };
    Ok(EventEnvelope {
        auction_id,
        seq,
        event: wire::encode("event", event, WireVersion::CURRENT)
            .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?
            .into(),
    })
}
