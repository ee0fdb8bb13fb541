//! Refresh-token families: sign-in, rotation, reuse detection, logout, expiry.

use super::*;
use crate::Micros;
use crate::limits::{REFRESH_LIFETIME_MAX, SESSIONS_PER_USER_MAX};
use MetaRejectCode as Code;

fn rotate(family: u128, presented: u8, new: u8, expires_at: Timestamp) -> MetaAction {
    MetaAction::RotateRefresh {
        family: FamilyId(family),
        presented_token_hash: token(presented),
        new_token_hash: token(new),
        new_expires_at: expires_at,
    }
}

fn create(who: UserId, family: u128, expires_at: Timestamp) -> MetaAction {
    MetaAction::CreateSession {
        user: who,
        family: FamilyId(family),
        token_hash: token(family as u8),
        expires_at,
    }
}

#[test]
fn a_user_signs_themself_in_until_a_future_expiry_within_the_refresh_lifetime() {
    let mut meta = Meta::new();
    let alice = meta.bidder("alice");
    let now = meta.now;
    for expires_at in [
        now,
        Timestamp(now.0 - 1),
        now.plus(Micros(REFRESH_LIFETIME_MAX.0 + 1)),
    ] {
        let action = create(alice, 1, expires_at);
        assert_eq!(meta.reject(user(alice), action), Code::InvalidExpiry);
    }
    let expires_at = now.plus(REFRESH_LIFETIME_MAX);
    let outcome = meta.act(user(alice), create(alice, 1, expires_at));
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::SessionCreated {
            user: alice,
            family: FamilyId(1),
            expires_at
        }]
    );
    let session = meta.session(alice, 1);
    assert_eq!((session.generation(), session.token_hash()), (0, token(1)));
    assert_eq!(
        (session.created_at(), session.expires_at()),
        (now, expires_at)
    );
    assert!(session.is_live(now));
    assert_eq!(meta.state.family_owner(FamilyId(1)), Some(alice));
}

#[test]
fn nobody_opens_a_session_for_someone_else() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    let expires_at = meta.now.plus(Micros::SECOND);
    for actor in [user(admin), MetaActor::Anonymous, MetaActor::Operator] {
        let action = create(alice, 1, expires_at);
        assert_eq!(meta.reject(actor, action), Code::PermissionDenied);
    }
}

#[test]
fn a_suspended_user_cannot_sign_in() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    let suspend = MetaAction::SuspendUser {
        user: alice,
        reason: reason("spam"),
    };
    meta.accept(user(admin), suspend);
    let action = create(alice, 1, meta.now.plus(Micros::SECOND));
    assert_eq!(meta.reject(user(alice), action), Code::ActorSuspended);
}

#[test]
fn a_family_id_is_used_once_across_all_users() {
    let mut meta = Meta::new();
    let alice = meta.bidder("alice");
    let bob = meta.bidder("bob");
    meta.sign_in(alice, 7);
    let action = create(bob, 7, meta.now.plus(Micros::SECOND));
    assert_eq!(meta.reject(user(bob), action), Code::SessionExists);
}

#[test]
fn a_full_account_evicts_its_oldest_revoked_family_first_then_its_oldest_live_one() {
    let mut meta = Meta::new();
    let alice = meta.bidder("alice");
    let full = SESSIONS_PER_USER_MAX as u128;
    for family in 1..=full {
        meta.act_at(
            family as u64,
            user(alice),
            create(alice, family, at(10_000)),
        );
    }
    meta.accept(
        user(alice),
        MetaAction::RevokeFamily {
            family: FamilyId(5),
        },
    );
    let outcome = meta.act_at(100, user(alice), create(alice, 100, at(10_000)));
    let Reply::Accepted(Accepted::Meta(MetaAccepted::SessionCreated { evicted, .. })) =
        outcome.reply
    else {
        panic!("{:?}", outcome.reply);
    };
    assert_eq!(evicted, Some(FamilyId(5)), "the revoked family goes first");
    assert_eq!(
        kinds(&outcome).len(),
        1,
        "evicting a revoked family says nothing"
    );
    // Full again, nothing revoked: the oldest live family goes, and gateways hear of it.
    let outcome = meta.act_at(101, user(alice), create(alice, 101, at(10_000)));
    assert_eq!(
        kinds(&outcome)[0],
        MetaEventKind::SessionRevoked {
            user: alice,
            family: FamilyId(1)
        }
    );
    assert_eq!(meta.state.sessions_of(alice).len(), SESSIONS_PER_USER_MAX);
    assert_eq!(meta.state.family_owner(FamilyId(1)), None);
}

#[test]
fn rotating_with_the_current_token_advances_the_generation_and_the_expiry() {
    let mut meta = Meta::new();
    let alice = meta.bidder("alice");
    meta.sign_in(alice, 1);
    let later = at(7_200);
    let reply = meta.accept(MetaActor::Anonymous, rotate(1, 1, 2, later));
    assert_eq!(
        reply,
        MetaAccepted::RefreshRotated {
            user: alice,
            family: FamilyId(1),
            generation: 1,
            expires_at: later
        }
    );
    let outcome = meta.act(user(alice), rotate(1, 2, 3, later));
    assert!(outcome.events.is_empty(), "rotations emit nothing");
    let session = meta.session(alice, 1);
    assert_eq!((session.generation(), session.token_hash()), (2, token(3)));
    assert_eq!(session.expires_at(), later);
}

#[test]
fn presenting_a_token_that_is_not_current_revokes_the_family_as_refresh_token_reused() {
    let mut meta = Meta::new();
    let alice = meta.bidder("alice");
    meta.sign_in(alice, 1);
    meta.sign_in(alice, 2);
    let later = at(7_200);
    meta.accept(MetaActor::Anonymous, rotate(1, 1, 11, later));
    // The old token again: a copy is in someone else's hands.
    let outcome = meta.act(MetaActor::Anonymous, rotate(1, 1, 12, later));
    assert_eq!(rejection(&outcome), Some(Code::RefreshTokenReused));
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::SessionRevoked {
            user: alice,
            family: FamilyId(1)
        }]
    );
    assert!(meta.session(alice, 1).is_revoked());
    assert!(!meta.session(alice, 2).is_revoked(), "only that family");
    // Now even the current token is refused.
    let current = rotate(1, 11, 13, later);
    assert_eq!(
        meta.reject(MetaActor::Anonymous, current),
        Code::SessionRevoked
    );
    // A token that never belonged to the family counts as reuse too.
    let outcome = meta.act(MetaActor::Anonymous, rotate(2, 99, 14, later));
    assert_eq!(rejection(&outcome), Some(Code::RefreshTokenReused));
}

#[test]
fn a_retried_rotation_gets_its_first_outcome_instead_of_tripping_reuse_detection() {
    let mut meta = Meta::new();
    let alice = meta.bidder("alice");
    meta.sign_in(alice, 1);
    let action = rotate(1, 1, 2, at(7_200));
    let first = meta.request(1, MetaActor::Anonymous, "refresh-1", action.clone());
    let retry = meta.request(2, MetaActor::Anonymous, "refresh-1", action);
    assert!(first.reply.is_accepted());
    assert_eq!((retry.reply, retry.replayed), (first.reply, true));
    assert!(!meta.session(alice, 1).is_revoked());
}

#[test]
fn rotation_is_for_the_owner_or_an_anonymous_token_holder_only() {
    let mut meta = Meta::new();
    let alice = meta.bidder("alice");
    let bob = meta.bidder("bob");
    meta.sign_in(alice, 1);
    let action = rotate(1, 1, 2, at(7_200));
    assert_eq!(meta.reject(user(bob), action.clone()), Code::NotOwner);
    assert_eq!(
        meta.reject(MetaActor::Operator, action),
        Code::PermissionDenied
    );
    let unknown = rotate(404, 1, 2, at(7_200));
    assert_eq!(
        meta.reject(MetaActor::Anonymous, unknown),
        Code::SessionNotFound
    );
    let past = rotate(1, 1, 2, meta.now);
    assert_eq!(meta.reject(MetaActor::Anonymous, past), Code::InvalidExpiry);
}

#[test]
fn a_suspended_users_family_cannot_be_rotated() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    meta.sign_in(alice, 1);
    let suspend = MetaAction::SuspendUser {
        user: alice,
        reason: reason("fraud"),
    };
    meta.accept(user(admin), suspend);
    let action = rotate(1, 1, 2, at(7_200));
    assert_eq!(
        meta.reject(MetaActor::Anonymous, action),
        Code::UserSuspended
    );
}

#[test]
fn expired_families_leave_the_state_at_the_next_entry() {
    let mut meta = Meta::new();
    let alice = meta.bidder("alice");
    meta.sign_in(alice, 1); // expires at 3600 s
    meta.sign_in(alice, 2);
    let keep = rotate(2, 2, 3, at(3_600 + 86_400));
    meta.act_at(3_599, MetaActor::Anonymous, keep);
    let late = rotate(1, 1, 2, at(9_000));
    let outcome = meta.act_at(3_600, MetaActor::Anonymous, late);
    assert_eq!(rejection(&outcome), Some(Code::SessionNotFound));
    assert_eq!(meta.state.family_owner(FamilyId(1)), None);
    let families: Vec<FamilyId> = meta
        .state
        .sessions_of(alice)
        .iter()
        .map(Session::family)
        .collect();
    assert_eq!(families, vec![FamilyId(2)], "the rotated family lives on");
}

#[test]
fn logout_revokes_one_family_by_its_owner_or_an_admin() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    let bob = meta.bidder("bob");
    meta.sign_in(alice, 1);
    meta.sign_in(alice, 2);
    let revoke = |family| MetaAction::RevokeFamily {
        family: FamilyId(family),
    };
    assert_eq!(meta.reject(user(bob), revoke(1)), Code::NotOwner);
    assert_eq!(
        meta.reject(MetaActor::Anonymous, revoke(1)),
        Code::PermissionDenied
    );
    assert_eq!(meta.reject(user(alice), revoke(404)), Code::SessionNotFound);
    let outcome = meta.act(user(alice), revoke(1));
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::SessionRevoked {
            user: alice,
            family: FamilyId(1)
        }]
    );
    assert_eq!(meta.reject(user(alice), revoke(1)), Code::SessionRevoked);
    meta.accept(user(admin), revoke(2));
    assert!(
        meta.state
            .sessions_of(alice)
            .iter()
            .all(Session::is_revoked)
    );
}

#[test]
fn revoking_all_sessions_revokes_every_live_family_and_says_so_once() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    let bob = meta.bidder("bob");
    meta.sign_in(alice, 1);
    meta.sign_in(alice, 2);
    let all = MetaAction::RevokeAllSessions { user: alice };
    assert_eq!(meta.reject(user(bob), all.clone()), Code::PermissionDenied);
    let outcome = meta.act(user(alice), all.clone());
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::AllSessionsRevoked { user: alice }]
    );
    let again = meta.act(user(admin), all);
    assert_eq!(
        again.reply,
        Reply::Accepted(Accepted::Meta(MetaAccepted::AllSessionsRevoked {
            user: alice,
            sessions_revoked: 0
        }))
    );
    assert!(
        again.events.is_empty(),
        "nothing changed, nothing to announce"
    );
    let unknown = MetaAction::RevokeAllSessions { user: UserId(404) };
    assert_eq!(meta.reject(user(admin), unknown), Code::UserNotFound);
}
