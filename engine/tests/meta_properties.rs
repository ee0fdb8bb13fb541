//! Properties of the meta group's state machine over random command sequences (seeded
//! proptest, 1,000 cases each).
//!
//! The generator produces a small world: the operator bootstraps an admin and three users
//! sign up, then six user ids (some never registered), six usernames (one in two casings),
//! three family ids and two token hashes, with every meta command, by every kind of actor
//! (mostly the one who would normally send it), retries of earlier requests and reuses of
//! their request ids. Time moves forward by random steps, sometimes past the refresh-token
//! lifetime or the 24-hour retention of idempotency records. Every meta rejection code but
//! the capacity limits comes up (the unit tests reach those).

mod support;

use std::collections::BTreeSet;

use martelo_engine::meta::{
    DisplayName, FamilyId, NodeId, PasswordHash, Session, TokenHash, UserQuery, UserSummary,
    Username,
};
use martelo_engine::*;
use proptest::prelude::*;
use support::config;

const NAMES: [&str; 7] = ["root", "alice", "ALICE", "bob", "carol", "dave", "erin"];
/// Users registered before the ops, after the admin (ids 2 to 4).
const EARLY_USERS: [&str; 3] = ["alice", "bob", "carol"];
const USERS: u64 = 6;
const FAMILIES: u128 = 3;

#[derive(Clone, Debug)]
enum Actor {
    /// Whoever would normally send the op: anonymous sign-up and refresh, the user themself,
    /// the bootstrapped admin for admin actions, the operator for cluster facts.
    Natural,
    Anonymous,
    Operator,
    User(u64),
}

#[derive(Clone, Debug)]
enum Op {
    Register {
        name: usize,
        roles: u8,
    },
    ChangePassword {
        user: u64,
        hash: u8,
    },
    SetRoles {
        user: u64,
        roles: u8,
    },
    Grant {
        user: u64,
        role: u8,
    },
    Revoke {
        user: u64,
        role: u8,
    },
    Suspend {
        user: u64,
    },
    Reinstate {
        user: u64,
    },
    CreateSession {
        user: u64,
        family: u128,
        token: u8,
        lifetime_secs: u64,
    },
    Rotate {
        family: u128,
        presented: u8,
        new: u8,
        lifetime_secs: u64,
    },
    RevokeFamily {
        family: u128,
    },
    RevokeAll {
        user: u64,
    },
    SetFacts {
        shard_count: u32,
    },
    Retire {
        node: u64,
    },
    /// Repeat an earlier command (by position), same request id and payload.
    Retry {
        index: usize,
    },
    /// An earlier command's request id and actor with this op's payload.
    Reuse {
        index: usize,
    },
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        6 => Just(Actor::Natural),
        1 => Just(Actor::Anonymous),
        1 => Just(Actor::Operator),
        2 => (1..=USERS).prop_map(Actor::User),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let user = 1..=USERS;
    let family = 1..=FAMILIES;
    let lifetime = prop_oneof![8 => 1..7_200u64, 1 => Just(0u64), 1 => Just(100 * 24 * 3600)];
    prop_oneof![
        3 => (0..NAMES.len(), 0u8..8).prop_map(|(name, roles)| Op::Register { name, roles }),
        1 => (user.clone(), 0u8..4).prop_map(|(user, hash)| Op::ChangePassword { user, hash }),
        1 => (user.clone(), 0u8..8).prop_map(|(user, roles)| Op::SetRoles { user, roles }),
        1 => (user.clone(), 0u8..3).prop_map(|(user, role)| Op::Grant { user, role }),
        1 => (user.clone(), 0u8..3).prop_map(|(user, role)| Op::Revoke { user, role }),
        1 => user.clone().prop_map(|user| Op::Suspend { user }),
        1 => user.clone().prop_map(|user| Op::Reinstate { user }),
        4 => (user.clone(), family.clone(), 0u8..2, lifetime.clone()).prop_map(
            |(user, family, token, lifetime_secs)| Op::CreateSession {
                user,
                family,
                token,
                lifetime_secs
            }
        ),
        4 => (family.clone(), 0u8..2, 0u8..2, lifetime).prop_map(
            |(family, presented, new, lifetime_secs)| Op::Rotate {
                family,
                presented,
                new,
                lifetime_secs
            }
        ),
        1 => family.prop_map(|family| Op::RevokeFamily { family }),
        1 => user.prop_map(|user| Op::RevokeAll { user }),
        1 => (0u32..4).prop_map(|shard_count| Op::SetFacts { shard_count }),
        1 => (0u64..4).prop_map(|node| Op::Retire { node }),
        2 => any::<usize>().prop_map(|index| Op::Retry { index }),
        1 => any::<usize>().prop_map(|index| Op::Reuse { index }),
    ]
}

/// Seconds to wait before each op, then the actor and the op.
fn ops() -> impl Strategy<Value = Vec<(u64, Actor, Op)>> {
    let step = prop_oneof![19 => 0u64..600, 1 => 0u64..200_000];
    prop::collection::vec((step, actor(), op()), 1..80)
}

fn at(seconds: u64) -> Timestamp {
    Timestamp(1_700_000_000_000_000 + seconds * 1_000_000)
}

fn role(index: u8) -> Role {
    [Role::Bidder, Role::Seller, Role::Admin][usize::from(index % 3)]
}

fn roles(bits: u8) -> BTreeSet<Role> {
    (0..3)
        .filter(|bit| bits & (1 << bit) != 0)
        .map(role)
        .collect()
}

fn hash(n: u8) -> PasswordHash {
    PasswordHash::try_from(format!("$argon2id$v=19$m=19456,t=2,p=1$s${n}")).unwrap()
}

fn token(n: u8) -> TokenHash {
    TokenHash([n; 32])
}

/// The payload of an op at `now`, or `None` for retries and reuses.
fn action(op: &Op, now: Timestamp) -> Option<MetaAction> {
    let user = |id: &u64| UserId(*id);
    let expiry = |secs: &u64| now.plus(Micros::from_secs(*secs));
    Some(match op {
        Op::Register { name, roles: bits } => MetaAction::RegisterUser {
            username: Username::fold(NAMES[*name]).unwrap(),
            display_name: DisplayName::try_from(NAMES[*name]).unwrap(),
            password_hash: hash(0),
            roles: roles(*bits),
        },
        Op::ChangePassword { user: id, hash: n } => MetaAction::ChangePassword {
            user: user(id),
            password_hash: hash(*n),
        },
        Op::SetRoles {
            user: id,
            roles: bits,
        } => MetaAction::SetRoles {
            user: user(id),
            roles: roles(*bits),
        },
        Op::Grant { user: id, role: r } => MetaAction::GrantRole {
            user: user(id),
            role: role(*r),
        },
        Op::Revoke { user: id, role: r } => MetaAction::RevokeRole {
            user: user(id),
            role: role(*r),
        },
        Op::Suspend { user: id } => MetaAction::SuspendUser {
            user: user(id),
            reason: Reason::try_from("property test").unwrap(),
        },
        Op::Reinstate { user: id } => MetaAction::ReinstateUser { user: user(id) },
        Op::CreateSession {
            user: id,
            family,
            token: n,
            lifetime_secs,
        } => MetaAction::CreateSession {
            user: user(id),
            family: FamilyId(*family),
            token_hash: token(*n),
            expires_at: expiry(lifetime_secs),
        },
        Op::Rotate {
            family,
            presented,
            new,
            lifetime_secs,
        } => MetaAction::RotateRefresh {
            family: FamilyId(*family),
            presented_token_hash: token(*presented),
            new_token_hash: token(*new),
            new_expires_at: expiry(lifetime_secs),
        },
        Op::RevokeFamily { family } => MetaAction::RevokeFamily {
            family: FamilyId(*family),
        },
        Op::RevokeAll { user: id } => MetaAction::RevokeAllSessions { user: user(id) },
        Op::SetFacts { shard_count } => MetaAction::SetClusterFacts {
            shard_count: *shard_count,
        },
        Op::Retire { node } => MetaAction::RetireNode {
            node_id: NodeId(*node),
        },
        Op::Retry { .. } | Op::Reuse { .. } => return None,
    })
}

/// Who would normally send `op`; user 1 is the bootstrapped admin.
fn natural_actor(op: &Op) -> MetaActor {
    match op {
        Op::Register { .. } | Op::Rotate { .. } => MetaActor::Anonymous,
        Op::ChangePassword { user, .. }
        | Op::CreateSession { user, .. }
        | Op::RevokeAll { user } => MetaActor::User(UserId(*user)),
        Op::SetRoles { .. }
        | Op::Grant { .. }
        | Op::Revoke { .. }
        | Op::Suspend { .. }
        | Op::Reinstate { .. }
        | Op::RevokeFamily { .. } => MetaActor::User(UserId(1)),
        Op::SetFacts { .. } | Op::Retire { .. } | Op::Retry { .. } | Op::Reuse { .. } => {
            MetaActor::Operator
        }
    }
}

/// The entries of a run: the admin bootstrap and three sign-ups, then one per op.
fn commands(ops: &[(u64, Actor, Op)]) -> Vec<(Timestamp, Command)> {
    let bootstrap = MetaCommand {
        actor: MetaActor::Operator,
        request_id: RequestId::try_from("bootstrap").unwrap(),
        action: MetaAction::RegisterUser {
            username: Username::fold("root").unwrap(),
            display_name: DisplayName::try_from("Root").unwrap(),
            password_hash: hash(0),
            roles: roles(0b100),
        },
    };
    let mut issued = vec![bootstrap];
    for name in EARLY_USERS {
        issued.push(MetaCommand {
            actor: MetaActor::Anonymous,
            request_id: RequestId::try_from(format!("sign-up-{name}")).unwrap(),
            action: MetaAction::RegisterUser {
                username: Username::fold(name).unwrap(),
                display_name: DisplayName::try_from(name).unwrap(),
                password_hash: hash(0),
                roles: roles(0b001),
            },
        });
    }
    let mut commands: Vec<(Timestamp, Command)> = issued
        .iter()
        .map(|command| (at(0), Command::Meta(command.clone())))
        .collect();
    let mut seconds = 0;
    for (position, (step, actor, op)) in ops.iter().enumerate() {
        seconds += step;
        let now = at(seconds);
        let command = match op {
            Op::Retry { index } => issued[index % issued.len()].clone(),
            Op::Reuse { index } => {
                let earlier = &issued[index % issued.len()];
                let action = MetaAction::RetireNode { node_id: NodeId(9) };
                let action = if earlier.action == action {
                    MetaAction::RetireNode { node_id: NodeId(8) }
                } else {
                    action
                };
                MetaCommand {
                    action,
                    ..earlier.clone()
                }
            }
            _ => MetaCommand {
                actor: match actor {
                    Actor::Natural => natural_actor(op),
                    Actor::Anonymous => MetaActor::Anonymous,
                    Actor::Operator => MetaActor::Operator,
                    Actor::User(id) => MetaActor::User(UserId(*id)),
                },
                request_id: RequestId::try_from(format!("op-{position}")).unwrap(),
                action: action(op, now).expect("a fresh op has a payload"),
            },
        };
        issued.push(command.clone());
        commands.push((now, Command::Meta(command)));
    }
    commands
}

/// What readers can see of the meta state, through its public queries.
#[derive(Debug, PartialEq, Eq)]
struct Visible {
    users: Vec<UserSummary>,
    sessions: Vec<Vec<Session>>,
    shard_count: Option<u32>,
    retired: Vec<NodeId>,
    seq: u64,
}

fn visible(state: &State) -> Visible {
    let meta = state.meta();
    let mut users = Vec::new();
    let mut after = None;
    loop {
        let page = meta.list_users(&UserQuery {
            prefix: String::new(),
            after,
            limit: 2,
        });
        users.extend(page.users);
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Visible {
        sessions: users.iter().map(|user| meta.sessions_of(user.id)).collect(),
        users,
        shard_count: meta.shard_count(),
        retired: meta.retired_nodes().collect(),
        seq: meta.seq(),
    }
}

/// Applies the entries to `state` from log index `first`; returns the outcomes.
fn apply(state: &mut State, first: u64, commands: &[(Timestamp, Command)]) -> Vec<Outcome> {
    commands
        .iter()
        .zip(first..)
        .map(|((timestamp, command), log_index)| {
            let ctx = ApplyCtx {
                log_index,
                timestamp: *timestamp,
            };
            state.apply(ctx, command)
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_same_commands_give_the_same_outcomes_states_and_digests(ops in ops()) {
        let commands = commands(&ops);
        let (mut first, mut second) = (State::new(), State::new());
        let first_outcomes = apply(&mut first, 1, &commands);
        let second_outcomes = apply(&mut second, 1, &commands);
        prop_assert_eq!(first_outcomes, second_outcomes);
        prop_assert_eq!(first.digest(), second.digest());
        prop_assert_eq!(first.meta().digest(), second.meta().digest());
        prop_assert_eq!(&first, &second);
    }

    #[test]
    fn the_state_round_trips_through_the_codec_and_goes_on_identically(
        ops in ops(),
        split in any::<prop::sample::Index>(),
    ) {
        let commands = commands(&ops);
        let split = split.index(commands.len() + 1);
        let mut continued = State::new();
        apply(&mut continued, 1, &commands[..split]);
        let bytes = codec::encode("state", &continued).unwrap();
        let mut restored: State = codec::decode("state", &bytes).unwrap();
        prop_assert_eq!(&restored, &continued);
        restored.validate().unwrap();
        let next = split as u64 + 1;
        let expected = apply(&mut continued, next, &commands[split..]);
        let got = apply(&mut restored, next, &commands[split..]);
        prop_assert_eq!(got, expected);
        prop_assert_eq!(restored.digest(), continued.digest());
    }

    #[test]
    fn every_step_keeps_the_invariants_and_only_acceptances_change_what_readers_see(
        ops in ops(),
    ) {
        let commands = commands(&ops);
        let mut state = State::new();
        let mut last_seq = 0;
        for (log_index, (timestamp, command)) in (1..).zip(&commands) {
            let before = visible(&state);
            let ctx = ApplyCtx { log_index, timestamp: *timestamp };
            let outcome = state.apply(ctx, command);
            state.validate().unwrap();
            let after = visible(&state);
            for event in &outcome.events {
                let Event::Meta(event) = event else {
                    panic!("a meta command emitted {event:?}");
                };
                prop_assert_eq!(event.seq, last_seq + 1, "meta seq has no gaps");
                last_seq = event.seq;
            }
            prop_assert_eq!(after.seq, last_seq);
            let reused = Reply::Rejected(RejectCode::Meta(MetaRejectCode::RefreshTokenReused));
            let changes_allowed = !outcome.replayed
                && (outcome.reply.is_accepted() || outcome.reply == reused);
            if !changes_allowed {
                prop_assert!(outcome.events.is_empty(), "{:?}", outcome);
                // Expiry may drop sessions as time passes; nothing else may change.
                let live = |v: &Visible| (v.users.clone(), v.shard_count, v.retired.clone(), v.seq);
                prop_assert_eq!(live(&after), live(&before), "{:?}", outcome.reply);
            }
            prop_assert!(state.meta().admin_exists(), "the bootstrapped admin line never ends");
            let names: BTreeSet<&str> = after.users.iter().map(|u| u.username.as_str()).collect();
            prop_assert_eq!(names.len(), after.users.len(), "usernames are unique");
        }
    }
}
