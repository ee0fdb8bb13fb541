//! Registration, passwords, roles, suspension.

use super::*;
use MetaRejectCode as Code;

#[test]
fn user_ids_are_assigned_from_one_in_log_order() {
    let mut meta = Meta::new();
    assert_eq!(meta.bidder("alice"), UserId(1));
    assert_eq!(meta.bidder("bob"), UserId(2));
    meta.reject(
        MetaActor::Anonymous,
        register_action("alice", &[Role::Bidder]),
    );
    assert_eq!(meta.bidder("carol"), UserId(3), "a rejection assigns no id");
}

#[test]
fn usernames_are_unique_after_folding() {
    let mut meta = Meta::new();
    meta.bidder("Alice");
    let again = register_action("ALICE", &[Role::Seller]);
    assert_eq!(
        meta.reject(MetaActor::Anonymous, again),
        Code::UsernameTaken
    );
    assert_eq!(
        meta.state.user_by_username("aLiCe").unwrap().id(),
        UserId(1)
    );
}

#[test]
fn a_registration_needs_at_least_one_role() {
    let mut meta = Meta::new();
    let action = register_action("alice", &[]);
    assert_eq!(
        meta.reject(MetaActor::Anonymous, action),
        Code::InvalidRoles
    );
}

#[test]
fn registration_records_the_entry_time_and_announces_the_account_without_its_hash() {
    let mut meta = Meta::new();
    let outcome = meta.act_at(
        5,
        MetaActor::Anonymous,
        register_action("alice", &[Role::Seller]),
    );
    assert!(outcome.reply.is_accepted());
    let account = meta.account(UserId(1));
    assert_eq!(account.created_at(), at(5));
    assert_eq!(account.status(), &AccountStatus::Active);
    assert_eq!(account.password_hash(), &phc(0));
    assert_eq!(account.top_role(), Role::Seller);
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::UserRegistered {
            user: UserId(1),
            username: Username::fold("alice").unwrap(),
            display_name: DisplayName::try_from("alice").unwrap(),
            roles: roles(&[Role::Seller]),
        }]
    );
}

#[test]
fn anonymous_sign_up_cannot_claim_admin_even_on_a_fresh_cluster() {
    let mut meta = Meta::new();
    let action = register_action("mallory", &[Role::Bidder, Role::Admin]);
    assert_eq!(
        meta.reject(MetaActor::Anonymous, action),
        Code::PermissionDenied
    );
    assert!(!meta.state.admin_exists());
}

#[test]
fn the_operator_bootstraps_the_first_admin_only_while_no_active_admin_exists() {
    let mut meta = Meta::new();
    let root = meta.register(MetaActor::Operator, "root", &[Role::Admin]);
    assert!(meta.state.admin_exists());
    let second = register_action("root2", &[Role::Admin]);
    assert_eq!(meta.reject(MetaActor::Operator, second), Code::AdminExists);
    // The operator may still create ordinary accounts, and the admin may create admins.
    meta.register(MetaActor::Operator, "ops-bidder", &[Role::Bidder]);
    meta.register(user(root), "root2", &[Role::Admin]);
}

#[test]
fn an_admin_may_register_any_account_and_a_signed_in_non_admin_none() {
    let (mut meta, admin) = Meta::with_admin();
    let seller = meta.register(user(admin), "seller", &[Role::Seller]);
    let action = register_action("friend", &[Role::Bidder]);
    assert_eq!(meta.reject(user(seller), action), Code::PermissionDenied);
}

#[test]
fn an_unknown_user_has_no_rights() {
    let (mut meta, _) = Meta::with_admin();
    let action = register_action("ghosted", &[Role::Bidder]);
    assert_eq!(
        meta.reject(user(UserId(77)), action),
        Code::PermissionDenied
    );
}

#[test]
fn a_suspended_actor_is_rejected_before_their_rights_are_checked() {
    let (mut meta, root) = Meta::with_admin();
    let other = meta.register(user(root), "other-admin", &[Role::Admin]);
    let suspend = MetaAction::SuspendUser {
        user: other,
        reason: reason("compromised"),
    };
    meta.accept(user(root), suspend);
    let action = register_action("newbie", &[Role::Bidder]);
    assert_eq!(meta.reject(user(other), action), Code::ActorSuspended);
}

#[test]
fn registrations_beyond_the_user_capacity_are_rejected() {
    let mut meta = Meta::with_capacity(MetaCapacity {
        users_max: 2,
        ..MetaCapacity::default()
    });
    meta.bidder("alice");
    meta.bidder("bob");
    let action = register_action("carol", &[Role::Bidder]);
    assert_eq!(
        meta.reject(MetaActor::Anonymous, action),
        Code::UserLimitReached
    );
}

#[test]
fn the_user_or_an_admin_changes_a_password_and_every_session_ends() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    meta.sign_in(alice, 1);
    meta.sign_in(alice, 2);
    let change = |hash| MetaAction::ChangePassword {
        user: alice,
        password_hash: phc(hash),
    };
    let outcome = meta.act(user(alice), change(1));
    assert_eq!(meta.account(alice).password_hash(), &phc(1));
    assert_eq!(
        kinds(&outcome),
        vec![
            MetaEventKind::PasswordChanged {
                user: alice,
                by: alice
            },
            MetaEventKind::AllSessionsRevoked { user: alice },
        ]
    );
    assert!(
        meta.state
            .sessions_of(alice)
            .iter()
            .all(Session::is_revoked)
    );
    // No live session left: no second revocation event.
    let outcome = meta.act(user(admin), change(2));
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::PasswordChanged {
            user: alice,
            by: admin
        }]
    );
    assert_eq!(meta.account(alice).password_hash(), &phc(2));
}

#[test]
fn nobody_else_changes_a_password() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    let bob = meta.bidder("bob");
    let change = |who| MetaAction::ChangePassword {
        user: who,
        password_hash: phc(9),
    };
    assert_eq!(
        meta.reject(user(bob), change(alice)),
        Code::PermissionDenied
    );
    assert_eq!(
        meta.reject(MetaActor::Anonymous, change(alice)),
        Code::PermissionDenied
    );
    assert_eq!(
        meta.reject(MetaActor::Operator, change(alice)),
        Code::PermissionDenied
    );
    assert_eq!(
        meta.reject(user(admin), change(UserId(404))),
        Code::UserNotFound
    );
}

#[test]
fn only_admins_change_roles() {
    let (mut meta, _) = Meta::with_admin();
    let alice = meta.bidder("alice");
    let grant = MetaAction::GrantRole {
        user: alice,
        role: Role::Seller,
    };
    assert_eq!(
        meta.reject(user(alice), grant.clone()),
        Code::PermissionDenied
    );
    assert_eq!(
        meta.reject(MetaActor::Operator, grant.clone()),
        Code::PermissionDenied
    );
    assert_eq!(
        meta.reject(MetaActor::Anonymous, grant),
        Code::PermissionDenied
    );
}

#[test]
fn set_grant_and_revoke_change_roles_and_announce_them() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    let grant = MetaAction::GrantRole {
        user: alice,
        role: Role::Seller,
    };
    let outcome = meta.act(user(admin), grant);
    let both = roles(&[Role::Bidder, Role::Seller]);
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::RolesChanged {
            user: alice,
            roles: both.clone(),
            by: admin
        }]
    );
    let revoke = MetaAction::RevokeRole {
        user: alice,
        role: Role::Bidder,
    };
    let reply = meta.accept(user(admin), revoke);
    let seller = roles(&[Role::Seller]);
    assert_eq!(
        reply,
        MetaAccepted::RolesChanged {
            user: alice,
            roles: seller.clone()
        }
    );
    let set = MetaAction::SetRoles {
        user: alice,
        roles: roles(&[Role::Admin]),
    };
    meta.accept(user(admin), set);
    assert_eq!(meta.account(alice).roles(), &roles(&[Role::Admin]));
    assert!(meta.state.admin_exists());
}

#[test]
fn a_role_change_that_changes_nothing_is_roles_unchanged() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    let cases = [
        MetaAction::GrantRole {
            user: alice,
            role: Role::Bidder,
        },
        MetaAction::RevokeRole {
            user: alice,
            role: Role::Seller,
        },
        MetaAction::SetRoles {
            user: alice,
            roles: roles(&[Role::Bidder]),
        },
    ];
    for action in cases {
        assert_eq!(meta.reject(user(admin), action), Code::RolesUnchanged);
    }
    let unknown = MetaAction::GrantRole {
        user: UserId(404),
        role: Role::Seller,
    };
    assert_eq!(meta.reject(user(admin), unknown), Code::UserNotFound);
}

#[test]
fn an_account_keeps_at_least_one_role() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    let set = MetaAction::SetRoles {
        user: alice,
        roles: roles(&[]),
    };
    assert_eq!(meta.reject(user(admin), set), Code::InvalidRoles);
    let revoke = MetaAction::RevokeRole {
        user: alice,
        role: Role::Bidder,
    };
    assert_eq!(meta.reject(user(admin), revoke), Code::LastRole);
}

#[test]
fn the_last_active_admin_can_neither_lose_the_role_nor_be_suspended() {
    let (mut meta, root) = Meta::with_admin();
    let demote = MetaAction::RevokeRole {
        user: root,
        role: Role::Admin,
    };
    assert_eq!(meta.reject(user(root), demote.clone()), Code::LastAdmin);
    let set = MetaAction::SetRoles {
        user: root,
        roles: roles(&[Role::Seller]),
    };
    assert_eq!(meta.reject(user(root), set), Code::LastAdmin);
    let suspend = MetaAction::SuspendUser {
        user: root,
        reason: reason("leaving"),
    };
    assert_eq!(meta.reject(user(root), suspend), Code::LastAdmin);
    // With a second admin, the first may step down.
    meta.register(user(root), "deputy", &[Role::Admin]);
    meta.accept(user(root), demote);
    assert!(!meta.account(root).is_admin());
}

#[test]
fn authorization_reads_current_roles_so_a_demoted_admin_loses_rights_at_once() {
    let (mut meta, root) = Meta::with_admin();
    let deputy = meta.register(user(root), "deputy", &[Role::Admin]);
    let demote = MetaAction::SetRoles {
        user: deputy,
        roles: roles(&[Role::Bidder]),
    };
    meta.accept(user(root), demote);
    let suspend = MetaAction::SuspendUser {
        user: root,
        reason: reason("coup"),
    };
    assert_eq!(meta.reject(user(deputy), suspend), Code::PermissionDenied);
}

#[test]
fn suspension_ends_every_session_and_admin_rights_and_records_who_and_why() {
    let (mut meta, root) = Meta::with_admin();
    let deputy = meta.register(user(root), "deputy", &[Role::Admin]);
    meta.sign_in(deputy, 1);
    meta.sign_in(deputy, 2);
    let suspend = MetaAction::SuspendUser {
        user: deputy,
        reason: reason("compromised"),
    };
    let outcome = meta.act_at(9, user(root), suspend);
    assert_eq!(
        outcome.reply,
        Reply::Accepted(Accepted::Meta(MetaAccepted::UserSuspended {
            user: deputy,
            sessions_revoked: 2
        }))
    );
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::UserSuspended {
            user: deputy,
            reason: reason("compromised"),
            by: root
        }]
    );
    assert_eq!(
        meta.account(deputy).status(),
        &AccountStatus::Suspended {
            reason: reason("compromised"),
            by: root,
            at: at(9)
        }
    );
    assert!(
        meta.state
            .sessions_of(deputy)
            .iter()
            .all(Session::is_revoked)
    );
    // Their rights are gone; so is their place among admins, so root is the last again.
    let demote_root = MetaAction::RevokeRole {
        user: root,
        role: Role::Admin,
    };
    assert_eq!(meta.reject(user(root), demote_root), Code::LastAdmin);
}

#[test]
fn suspending_a_suspended_user_or_reinstating_an_active_one_is_rejected() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    let suspend = MetaAction::SuspendUser {
        user: alice,
        reason: reason("spam"),
    };
    let reinstate = MetaAction::ReinstateUser { user: alice };
    assert_eq!(
        meta.reject(user(admin), reinstate.clone()),
        Code::UserNotSuspended
    );
    meta.accept(user(admin), suspend.clone());
    assert_eq!(
        meta.reject(user(admin), suspend),
        Code::UserAlreadySuspended
    );
    assert_eq!(
        meta.reject(user(alice), reinstate.clone()),
        Code::ActorSuspended
    );
    let unknown = MetaAction::ReinstateUser { user: UserId(404) };
    assert_eq!(meta.reject(user(admin), unknown), Code::UserNotFound);
}

#[test]
fn reinstating_restores_admin_rights_but_not_sessions() {
    let (mut meta, root) = Meta::with_admin();
    let deputy = meta.register(user(root), "deputy", &[Role::Admin]);
    meta.sign_in(deputy, 1);
    let suspend = MetaAction::SuspendUser {
        user: deputy,
        reason: reason("audit"),
    };
    meta.accept(user(root), suspend);
    let outcome = meta.act(user(root), MetaAction::ReinstateUser { user: deputy });
    assert_eq!(
        kinds(&outcome),
        vec![MetaEventKind::UserReinstated {
            user: deputy,
            by: root
        }]
    );
    assert!(meta.account(deputy).is_active());
    assert!(meta.session(deputy, 1).is_revoked());
    // Two active admins again: root may step down.
    let demote = MetaAction::RevokeRole {
        user: root,
        role: Role::Admin,
    };
    meta.accept(user(deputy), demote);
}
