//! What [`super::Client`]'s methods return: [`Proposed`], [`AuctionRead`] and the items of
//! a subscription ([`SubscribeItem`], [`ResyncReason`]), and the decoding of the nodes'
//! wire answers into them ([`decode_subscribe`], `decode_view`). Pure.
//!
//! What does not live here: listing pages ([`crate::listing`]), the calls that produce
//! these answers ([`super`]).

use martelo_engine::codec::wire::{self, WIRE_VERSION, WIRE_VERSION_OLDEST};
use martelo_engine::{AuctionId, Event, GroupId, Reply, Timestamp};
use martelo_proto::{SubscribeResponse, Traceparent, resync, subscribe_response};
use martelo_types::NodeId;

use crate::error::ClientError;
use crate::topology::Target;

/// A committed and applied proposal: the engine's reply and where it sits in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposed {
    /// Accepted or rejected by the engine; a rejection is an answer, not an error.
    pub reply: Reply,
    pub log_index: u64,
    pub log_term: u64,
    /// The cluster timestamp the leader stamped on the command.
    pub timestamp: Timestamp,
    /// True when the request id had been applied before and `reply` is the first reply.
    pub replayed: bool,
    /// True for a first attempt the leader rejected from a lease read, without a log entry
    /// (a bid too low to win): `log_index` is the applied index it read, `log_term` is 0.
    pub decided_without_log: bool,
    /// Attempts it took, the first included.
    pub attempts: u32,
    /// The node that answered (the group's leader then).
    pub node: NodeId,
}

/// One auction's state as a node served it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuctionRead {
    pub view: martelo_engine::AuctionView,
    pub group: GroupId,
    /// The auction's sequence number: subscribe and skip events up to it.
    pub seq: u64,
    /// The replica's applied index; subscribing from `applied_index + 1` leaves no gap.
    pub applied_index: u64,
    /// The node that served the read.
    pub node: NodeId,
}

/// One decoded message of a group's committed event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscribeItem {
    /// The events of one applied entry, as `(auction, seq, event)`; group-wide events
    /// (suspensions) have auction 0 and seq 0. On the meta group (group 0) every event is an
    /// `Event::Meta` with auction 0 and `seq` the meta group's own (`MetaEvent::seq`).
    Entry {
        log_index: u64,
        log_term: u64,
        timestamp: Timestamp,
        events: Vec<(AuctionId, u64, Event)>,
        /// The trace of the proposal that wrote the entry, when it carried a valid one.
        traceparent: Option<Traceparent>,
    },
    /// Nothing matched the filter up to `applied_index`: move the cursor on.
    Progress { applied_index: u64 },
    /// The stream cannot continue from where it is (always its last item). Read the state
    /// you need, then subscribe again from its `applied_index + 1`, never from before
    /// `first_available`.
    Resync {
        reason: ResyncReason,
        first_available: u64,
    },
}

/// Why a subscription must start over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResyncReason {
    /// The log before `first_available` was purged after a snapshot.
    Trimmed,
    /// The subscriber fell too far behind and was dropped.
    Lagged,
    /// A reason this client does not know (a newer node).
    Unspecified,
}

pub(crate) fn decode_view(
    target: &Target,
    view: martelo_proto::AuctionView,
) -> Result<AuctionRead, ClientError> {
    let decode_error = |reason: String| ClientError::Decode {
        address: target.address.clone(),
        what: "auction view",
        reason,
    };
    if !wire::can_read(view.codec_version) {
        return Err(decode_error(format!(
            "codec version {} (this client reads {WIRE_VERSION_OLDEST} to {WIRE_VERSION})",
            view.codec_version
        )));
    }
    let state: martelo_engine::AuctionView =
        wire::decode::<_, { martelo_proto::AUCTION_VIEW_BYTES_MAX }>("auction view", &view.state)
            .map_err(|error| decode_error(error.to_string()))?;
    Ok(AuctionRead {
        view: state,
        group: GroupId(view.group_id),
        seq: view.seq,
        applied_index: view.applied_index,
        node: target.node_id,
    })
}

/// Decodes one message of a subscription stream. An `error` message becomes `Err`.
pub fn decode_subscribe(
    address: &str,
    message: SubscribeResponse,
) -> Result<SubscribeItem, ClientError> {
    let decode_error = |reason: String| ClientError::Decode {
        address: address.to_owned(),
        what: "subscription message",
        reason,
    };
    match message.kind {
        Some(subscribe_response::Kind::Entry(entry)) => {
            if !wire::can_read(entry.codec_version) {
                return Err(decode_error(format!(
                    "codec version {} (this client reads {WIRE_VERSION_OLDEST} to {WIRE_VERSION})",
                    entry.codec_version
                )));
            }
            let events = entry
                .events
                .iter()
                .map(|envelope| {
                    wire::decode::<Event, { martelo_proto::EVENT_BYTES_MAX }>(
                        "event",
                        &envelope.event,
                    )
                    .map(|event| (AuctionId(envelope.auction_id), envelope.seq, event))
                    .map_err(|error| decode_error(error.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(SubscribeItem::Entry {
                log_index: entry.log_index,
                log_term: entry.log_term,
                timestamp: Timestamp(entry.timestamp_us),
                events,
                // Ignored when malformed: a trace is a hint, never a reason to drop events.
                traceparent: Traceparent::try_from(entry.traceparent.as_str()).ok(),
            })
        }
        Some(subscribe_response::Kind::Progress(progress)) => Ok(SubscribeItem::Progress {
            applied_index: progress.applied_index,
        }),
        Some(subscribe_response::Kind::Resync(resync)) => Ok(SubscribeItem::Resync {
            reason: match resync.reason() {
                resync::Reason::Trimmed => ResyncReason::Trimmed,
                resync::Reason::Lagged => ResyncReason::Lagged,
                resync::Reason::Unspecified => ResyncReason::Unspecified,
            },
            first_available: resync.first_available,
        }),
        Some(subscribe_response::Kind::Error(error)) => Err(ClientError::from_api(address, error)),
        None => Err(decode_error("the message is empty".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use martelo_engine::UserId;
    use martelo_proto::{CommittedEntry, EventEnvelope, Resync};
    use prost::bytes::Bytes;

    use super::*;

    #[test]
    fn subscription_messages_decode_into_events_progress_and_resync() {
        let event = Event::BidderReinstated {
            user: UserId(4),
            at: Timestamp(10),
        };
        let entry = SubscribeResponse {
            kind: Some(subscribe_response::Kind::Entry(CommittedEntry {
                log_index: 12,
                log_term: 2,
                timestamp_us: 99,
                codec_version: wire::WireVersion::CURRENT.codec_version(),
                traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
                events: vec![EventEnvelope {
                    auction_id: 0,
                    seq: 0,
                    event: Bytes::from(
                        wire::encode("event", &event, wire::WireVersion::CURRENT).unwrap(),
                    ),
                }],
            })),
        };
        assert_eq!(
            decode_subscribe("a", entry).unwrap(),
            SubscribeItem::Entry {
                log_index: 12,
                log_term: 2,
                timestamp: Timestamp(99),
                events: vec![(AuctionId(0), 0, event)],
                traceparent: Traceparent::try_from(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                )
                .ok(),
            }
        );
        let resync = SubscribeResponse {
            kind: Some(subscribe_response::Kind::Resync(Resync {
                reason: resync::Reason::Lagged.into(),
                first_available: 40,
            })),
        };
        assert_eq!(
            decode_subscribe("a", resync).unwrap(),
            SubscribeItem::Resync {
                reason: ResyncReason::Lagged,
                first_available: 40
            }
        );
        let error = decode_subscribe("a", SubscribeResponse { kind: None }).unwrap_err();
        assert_eq!(error.code().as_str(), "decode");
    }
}
