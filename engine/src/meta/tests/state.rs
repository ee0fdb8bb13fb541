//! The meta state inside the engine's `State`: dispatch, group check, digest, validation.

use super::*;
use crate::command::{Action, Actor, ApplyCtx, Command, Request};
use crate::types::{AuctionId, GroupId};

fn meta_command(actor: MetaActor, id: &str, action: MetaAction) -> Command {
    Command::Meta(MetaCommand {
        actor,
        request_id: RequestId::try_from(id).unwrap(),
        action,
    })
}

fn ctx(log_index: u64, seconds: u64) -> ApplyCtx {
    ApplyCtx {
        log_index,
        timestamp: at(seconds),
    }
}

#[test]
fn state_apply_dispatches_meta_commands_under_the_same_clock_as_auctions() {
    let mut state = crate::State::new();
    let register = meta_command(
        MetaActor::Anonymous,
        "r1",
        register_action("alice", &[Role::Bidder]),
    );
    let outcome = state.apply(ctx(1, 50), &register);
    assert!(outcome.reply.is_accepted());
    // An entry stamped earlier still happens at the group's latest time.
    let session = meta_command(
        MetaActor::User(UserId(1)),
        "r2",
        MetaAction::CreateSession {
            user: UserId(1),
            family: FamilyId(1),
            token_hash: token(1),
            expires_at: at(100),
        },
    );
    let outcome = state.apply(ctx(2, 10), &session);
    let Event::Meta(event) = &outcome.events[0] else {
        panic!("{outcome:?}");
    };
    assert_eq!(event.at, at(50));
    assert_eq!(state.last_applied(), (2, at(50)));
    assert_eq!(state.meta().user(UserId(1)).unwrap().created_at(), at(50));
    state.validate().unwrap();
}

#[test]
#[should_panic(expected = "log index")]
fn a_meta_command_cannot_reapply_a_log_index() {
    let mut state = crate::State::new();
    let command = meta_command(
        MetaActor::Operator,
        "r1",
        MetaAction::RetireNode { node_id: NodeId(1) },
    );
    state.apply(ctx(1, 0), &command);
    state.apply(ctx(1, 0), &command);
}

#[test]
fn meta_commands_belong_to_group_0_and_auction_commands_to_shards() {
    let meta = meta_command(
        MetaActor::Operator,
        "r",
        MetaAction::RetireNode { node_id: NodeId(1) },
    );
    let close = Command::Close {
        auction_id: AuctionId(1),
    };
    let request = Command::Request(Request {
        actor: Actor {
            user: UserId(1),
            role: Role::Bidder,
        },
        request_id: RequestId::try_from("r").unwrap(),
        action: Action::BuyNow {
            auction_id: AuctionId(1),
        },
    });
    assert!(meta.is_meta() && !close.is_meta() && !request.is_meta());
    assert!(meta.belongs_to(GroupId::META));
    assert!(!meta.belongs_to(GroupId(1)));
    for auction in [&close, &request] {
        assert!(auction.belongs_to(GroupId(3)));
        assert!(!auction.belongs_to(GroupId::META));
    }
    assert_eq!(meta.auction_id(), None);
}

#[test]
fn the_state_digest_covers_the_meta_state() {
    let mut state = crate::State::new();
    let empty = state.digest();
    let empty_meta = state.meta().digest();
    let command = meta_command(
        MetaActor::Operator,
        "r1",
        MetaAction::SetClusterFacts { shard_count: 4 },
    );
    state.apply(ctx(1, 0), &command);
    let mut other = crate::State::new();
    let command = meta_command(
        MetaActor::Operator,
        "r1",
        MetaAction::SetClusterFacts { shard_count: 5 },
    );
    other.apply(ctx(1, 0), &command);
    assert_ne!(state.digest(), empty);
    assert_ne!(state.meta().digest(), empty_meta);
    assert_ne!(
        state.digest(),
        other.digest(),
        "same clock, different meta state"
    );
}

#[test]
fn meta_event_seq_increases_by_one_per_event_across_users_and_commands() {
    let (mut meta, admin) = Meta::with_admin();
    let alice = meta.bidder("alice");
    meta.sign_in(alice, 1);
    meta.sign_in(alice, 2);
    let mut seqs = vec![meta.state.seq()];
    let change = MetaAction::ChangePassword {
        user: alice,
        password_hash: phc(3),
    };
    for outcome in [
        meta.act(user(admin), change),
        meta.act(
            MetaActor::Operator,
            MetaAction::RetireNode { node_id: NodeId(1) },
        ),
    ] {
        for event in &outcome.events {
            let Event::Meta(event) = event else {
                unreachable!()
            };
            seqs.push(event.seq);
        }
    }
    assert_eq!(
        seqs,
        vec![4, 5, 6, 7],
        "two per password change with sessions, one retire"
    );
    assert_eq!(meta.state.seq(), 7);
}

#[test]
fn validate_catches_an_index_that_disagrees_with_the_accounts() {
    let (mut meta, _) = Meta::with_admin();
    let alice = meta.bidder("alice");
    meta.sign_in(alice, 1);
    let mut broken = meta.state.clone();
    broken.admins.insert(alice);
    assert!(broken.validate().is_err());
    let mut broken = meta.state.clone();
    broken.families.remove(&FamilyId(1));
    assert!(broken.validate().is_err());
    let mut broken = meta.state.clone();
    broken.next_user = alice.0;
    assert!(broken.validate().is_err());
}
