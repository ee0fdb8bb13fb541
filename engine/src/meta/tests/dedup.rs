//! Idempotency of meta commands (I2).

use super::*;
use crate::limits::REQUEST_RETENTION;
use MetaRejectCode as Code;

#[test]
fn a_retried_registration_returns_the_first_outcome_without_events_or_change() {
    let mut meta = Meta::new();
    let action = register_action("alice", &[Role::Bidder]);
    let first = meta.request(0, MetaActor::Anonymous, "signup-1", action.clone());
    let before = meta.state.clone();
    let retry = meta.request(1, MetaActor::Anonymous, "signup-1", action);
    assert_eq!(retry.reply, first.reply);
    assert!(retry.replayed && retry.events.is_empty());
    assert_eq!(meta.state, before);
    assert_eq!(meta.state.user_count(), 1);
}

#[test]
fn the_same_request_id_with_another_payload_is_request_id_reused_and_not_recorded() {
    let mut meta = Meta::new();
    let alice = register_action("alice", &[Role::Bidder]);
    let bob = register_action("bob", &[Role::Bidder]);
    meta.request(0, MetaActor::Anonymous, "signup-1", alice.clone());
    let reused = meta.request(0, MetaActor::Anonymous, "signup-1", bob);
    assert_eq!(rejection(&reused), Some(Code::RequestIdReused));
    assert!(!reused.replayed);
    // The record still holds the first payload.
    let retry = meta.request(0, MetaActor::Anonymous, "signup-1", alice);
    assert!(retry.replayed && retry.reply.is_accepted());
}

#[test]
fn rejections_are_recorded_so_a_retry_gets_them_even_when_it_would_now_pass() {
    let mut meta = Meta::new();
    let action = MetaAction::RetireNode { node_id: NodeId(1) };
    let denied = meta.request(0, MetaActor::Anonymous, "r", action.clone());
    assert_eq!(rejection(&denied), Some(Code::PermissionDenied));
    let retry = meta.request(0, MetaActor::Anonymous, "r", action);
    assert_eq!(
        (rejection(&retry), retry.replayed),
        (Some(Code::PermissionDenied), true)
    );
}

#[test]
fn request_ids_are_scoped_by_actor() {
    let mut meta = Meta::new();
    let retire = |node| MetaAction::RetireNode {
        node_id: NodeId(node),
    };
    let by_operator = meta.request(0, MetaActor::Operator, "same", retire(1));
    let by_anonymous = meta.request(0, MetaActor::Anonymous, "same", retire(2));
    assert!(by_operator.reply.is_accepted());
    assert_eq!(rejection(&by_anonymous), Some(Code::PermissionDenied));
    assert!(!by_anonymous.replayed);
}

#[test]
fn records_are_kept_24_hours_of_cluster_time_then_a_retry_is_judged_afresh() {
    let mut meta = Meta::new();
    let action = register_action("alice", &[Role::Bidder]);
    meta.request(0, MetaActor::Anonymous, "signup-1", action.clone());
    let day = REQUEST_RETENTION.0 / 1_000_000;
    let within = meta.request(day - 1, MetaActor::Anonymous, "signup-1", action.clone());
    assert!(within.replayed);
    let after = meta.request(day, MetaActor::Anonymous, "signup-1", action);
    assert_eq!(
        (rejection(&after), after.replayed),
        (Some(Code::UsernameTaken), false)
    );
}

#[test]
fn the_request_limit_rejects_new_requests_without_recording_them() {
    let mut meta = Meta::with_capacity(MetaCapacity {
        requests_max: 2,
        ..MetaCapacity::default()
    });
    meta.bidder("alice");
    meta.bidder("bob");
    let action = register_action("carol", &[Role::Bidder]);
    let full = meta.request(1, MetaActor::Anonymous, "signup-3", action.clone());
    assert_eq!(rejection(&full), Some(Code::RequestLimitReached));
    assert_eq!(meta.state.user_count(), 2);
    // Retries of recorded requests are still answered.
    let retry = meta.request(
        1,
        MetaActor::Anonymous,
        "m1",
        register_action("alice", &[Role::Bidder]),
    );
    assert!(retry.replayed);
    // Once the records expire, the same request is judged afresh.
    let day = REQUEST_RETENTION.0 / 1_000_000;
    let later = meta.request(day, MetaActor::Anonymous, "signup-3", action);
    assert!(later.reply.is_accepted() && !later.replayed);
}
