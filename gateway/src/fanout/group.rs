//! One group's committed-event subscription: the task [`run`] that [`super::Hub`] spawns.
//!
//! It learns the group's applied index (a one-auction listing, linearizable), announces it
//! is ready, and subscribes from that index + 1 with no auction filter. When the stream
//! breaks (a node killed, a leader change, a network error) it resubscribes from the last
//! log index it handled + 1, with a backoff, so no entry is skipped or handled twice. After
//! a `Resync` (the log was trimmed past its position) it learns the applied index again,
//! resets the group's watchers (they read snapshots) and starts from there.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use martelo_client::{Client, ClientError, ListFilter, ReadConsistency, SubscribeItem};
use martelo_engine::{Event, GroupId};
use tokio::sync::watch;

use super::outbox::ResetReason;
use super::{Delivered, Inner};
use crate::telemetry;

/// The first and the longest wait between resubscriptions.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often an open subscription checks whether anyone still watches its group.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The group's applied index, as a linearizable read sees it.
async fn applied_index(client: &Client, group: GroupId) -> Result<u64, ClientError> {
    let page = client
        .list_group(
            group,
            ListFilter::All,
            None,
            1,
            ReadConsistency::Linearizable,
        )
        .await?;
    Ok(page.applied_index)
}

/// Follows `group` until nobody watches it (or the hub is gone).
pub(super) async fn run(
    hub: Weak<Inner>,
    client: Client,
    group: GroupId,
    ready: watch::Sender<bool>,
) {
    let group_label = group.0.to_string();
    let mut backoff = BACKOFF_MIN;
    let mut next: Option<u64> = None;
    let mut idle_check = tokio::time::interval(IDLE_CHECK);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        {
            let Some(inner) = hub.upgrade() else { return };
            if inner.close_if_idle(group) {
                tracing::debug!(group = group.0, "nobody watches the group: unsubscribed");
                return;
            }
        }
        let from = match next {
            Some(from) => from,
            None => match applied_index(&client, group).await {
                Ok(applied) => {
                    ready.send_replace(true);
                    next = Some(applied + 1);
                    applied + 1
                }
                Err(error) => {
                    tracing::warn!(group = group.0, %error, "cannot read the group's applied index");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        metrics::counter!(telemetry::FANOUT_RESUBSCRIBES_TOTAL, "group" => group_label.clone())
            .increment(1);
        if let Some(inner) = hub.upgrade() {
            inner
                .subscriptions_opened
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut stream = Box::pin(client.subscribe(group, from, Vec::new()));
        let ended = loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = idle_check.tick() => {
                    match hub.upgrade() {
                        Some(inner) if !inner.close_if_idle(group) => continue,
                        _ => return,
                    }
                }
            };
            let Some(inner) = hub.upgrade() else { return };
            match item {
                Some(Ok(SubscribeItem::Entry {
                    log_index,
                    timestamp,
                    events,
                    traceparent,
                    ..
                })) => {
                    backoff = BACKOFF_MIN;
                    if next.is_some_and(|next| log_index < next) {
                        continue;
                    }
                    next = Some(log_index + 1);
                    let delivered: Vec<Arc<Delivered>> = events
                        .into_iter()
                        .filter_map(|(_, _, event)| match event {
                            Event::Auction(event) => {
                                Some(Arc::new(Delivered::new(event, log_index, timestamp)))
                            }
                            _ => None,
                        })
                        .collect();
                    if !delivered.is_empty() {
                        // The fan-out joins the bid's trace (only when spans are exported:
                        // this runs for every entry of every watched group).
                        let span =
                            traceparent
                                .filter(|_| martelo_trace::exporting())
                                .map(|traceparent| {
                                    let span = tracing::info_span!(
                                        "ws.fanout",
                                        group = group.0,
                                        log_index,
                                        events = delivered.len(),
                                        trace_id = tracing::field::Empty,
                                        span_id = tracing::field::Empty,
                                    );
                                    martelo_trace::adopt(&span, Some(traceparent.as_str()));
                                    span
                                });
                        let _entered = span.as_ref().map(tracing::Span::enter);
                        inner.deliver(delivered);
                    }
                }
                Some(Ok(SubscribeItem::Progress { applied_index })) => {
                    backoff = BACKOFF_MIN;
                    next = Some(next.map_or(applied_index + 1, |next| next.max(applied_index + 1)));
                }
                Some(Ok(SubscribeItem::Resync {
                    reason,
                    first_available,
                })) => {
                    tracing::warn!(
                        group = group.0,
                        ?reason,
                        first_available,
                        "the group's events are gone past the hub's position: watchers resync"
                    );
                    next = None;
                    // New snapshots wait for the new start index.
                    ready.send_replace(false);
                    inner.reset_group(group, ResetReason::Resync);
                    break "resync";
                }
                Some(Err(error)) => {
                    tracing::info!(group = group.0, %error, "the group's subscription broke");
                    break "error";
                }
                None => break "ended",
            }
        };
        tracing::debug!(group = group.0, ended, next, "resubscribing");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
