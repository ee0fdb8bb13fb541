//! Messages survive prost encode and decode unchanged, and decoding tolerates what newer
//! peers may send (unknown fields, unknown enum values), which the compatibility rules in
//! README.md rely on.

use martelo_proto::{
    ApiError, Applied, CommittedEntry, ErrorCode, EventEnvelope, GroupStatus, NotLeader,
    ProposeRequest, ProposeResponse, RaftRole, ReplicationStatus, Resync, SnapshotChunk,
    SnapshotHeader, SubscribeResponse, propose_request, propose_response, resync, snapshot_chunk,
    subscribe_response,
};
use prost::Message;
use prost::bytes::Bytes;

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(message: &M) -> M {
    let encoded = message.encode_to_vec();
    let decoded = M::decode(encoded.as_slice()).expect("decodes what it encoded");
    assert_eq!(&decoded, message);
    decoded
}

#[test]
fn propose_request_round_trips_with_opaque_command_bytes() {
    let request = ProposeRequest {
        group_id: 3,
        request_id: "req-7".to_owned(),
        auction_id: 42,
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        codec_version: 1,
        attempt: 1,
        command: Some(propose_request::Command::EncodedRequest(
            Bytes::from_static(&[0, 1, 2, 255]),
        )),
    };
    round_trip(&request);
}

#[test]
fn propose_responses_round_trip_applied_and_not_leader() {
    let applied = ProposeResponse {
        result: Some(propose_response::Result::Applied(Applied {
            log_index: 10,
            log_term: 2,
            timestamp_us: 1_764_000_000_000_000,
            reply: Bytes::from_static(b"reply"),
            replayed: true,
            accepted: false,
            reject_code: "bid_too_low".to_owned(),
            auction_seq: 0,
            decided_without_log: false,
        })),
    };
    round_trip(&applied);

    let not_leader = ProposeResponse {
        result: Some(propose_response::Result::Error(ApiError::not_leader(
            NotLeader {
                group_id: 3,
                leader_id: Some(2),
                leader_address: "10.0.0.2:7001".to_owned(),
                term: 5,
            },
        ))),
    };
    let decoded = round_trip(&not_leader);
    let Some(propose_response::Result::Error(error)) = decoded.result else {
        panic!("expected an error");
    };
    assert_eq!(error.code(), ErrorCode::NotLeader);
    assert_eq!(
        error.leader_hint().map(|hint| hint.leader_address.as_str()),
        Some("10.0.0.2:7001")
    );
}

#[test]
fn subscribe_messages_round_trip() {
    let entry = SubscribeResponse {
        kind: Some(subscribe_response::Kind::Entry(CommittedEntry {
            log_index: 11,
            log_term: 2,
            timestamp_us: 5,
            events: vec![
                EventEnvelope {
                    auction_id: 42,
                    seq: 7,
                    event: Bytes::from_static(b"bid"),
                },
                EventEnvelope {
                    auction_id: 0,
                    seq: 0,
                    event: Bytes::from_static(b"suspend"),
                },
            ],
            codec_version: 1,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        })),
    };
    round_trip(&entry);

    let resync = SubscribeResponse {
        kind: Some(subscribe_response::Kind::Resync(Resync {
            reason: resync::Reason::Trimmed.into(),
            first_available: 1000,
        })),
    };
    round_trip(&resync);
}

#[test]
fn snapshot_header_chunk_round_trips() {
    let chunk = SnapshotChunk {
        kind: Some(snapshot_chunk::Kind::Header(SnapshotHeader {
            group_id: 4,
            from_node_id: 1,
            to_node_id: 2,
            codec_version: 1,
            vote: Bytes::from_static(b"vote"),
            meta: Bytes::from_static(b"meta"),
            total_bytes: 3 * 1024 * 1024,
        })),
    };
    round_trip(&chunk);
}

#[test]
fn optional_log_indexes_distinguish_none_from_index_zero() {
    // openraft's first entry has index 0, so "no entry yet" must not look like index 0.
    let status = GroupStatus {
        group_id: 1,
        role: RaftRole::Leader.into(),
        term: 3,
        leader_id: Some(1),
        last_log_index: Some(0),
        committed_index: Some(0),
        applied_index: None,
        replication: vec![ReplicationStatus {
            node_id: 2,
            matched_index: None,
            lag_entries: 1,
        }],
        clock_ok: true,
        ..GroupStatus::default()
    };
    let decoded = round_trip(&status);
    assert_eq!(decoded.last_log_index, Some(0));
    assert_eq!(decoded.applied_index, None);
}

#[test]
fn unknown_fields_and_enum_values_from_newer_peers_decode() {
    let mut encoded = ApiError::new(ErrorCode::Overloaded, "busy").encode_to_vec();
    // Field 99, varint 1: what a newer peer's added field looks like to this version.
    encoded.extend_from_slice(&[0x98, 0x06, 0x01]);
    let decoded = ApiError::decode(encoded.as_slice()).expect("unknown fields are skipped");
    assert_eq!(decoded.code(), ErrorCode::Overloaded);
    assert_eq!(decoded.message, "busy");

    // A code added after this version: the raw number survives, the getter falls back to
    // Unspecified, which `may_have_been_applied` treats as "maybe applied".
    let future = ApiError {
        code: 1000,
        ..ApiError::default()
    };
    let decoded = round_trip(&future);
    assert_eq!(decoded.code, 1000);
    assert_eq!(decoded.code(), ErrorCode::Unspecified);
    assert!(decoded.code().may_have_been_applied());
}
