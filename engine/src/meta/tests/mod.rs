//! One test per meta rule and per rejection code. Names state the rule.
//!
//! Tests drive a bare [`MetaState`] (so capacities can be small) through [`Meta`], except
//! `state.rs`, which goes through [`crate::State::apply`] like the raft-store does.

mod cluster;
mod dedup;
mod queries;
mod sessions;
mod state;
mod users;

use std::collections::BTreeSet;

use crate::command::Role;
use crate::meta::*;
use crate::outcome::{Accepted, Event, Outcome, RejectCode, Reply};
use crate::types::{Reason, RequestId, Timestamp, UserId};

/// Seconds after the harness's epoch.
fn at(seconds: u64) -> Timestamp {
    Timestamp(1_000_000_000_000 + seconds * 1_000_000)
}

fn roles(list: &[Role]) -> BTreeSet<Role> {
    list.iter().copied().collect()
}

fn phc(n: u32) -> PasswordHash {
    PasswordHash::try_from(format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${n}")).unwrap()
}

fn token(n: u8) -> TokenHash {
    TokenHash([n; 32])
}

fn reason(text: &str) -> Reason {
    Reason::try_from(text).unwrap()
}

fn user(id: UserId) -> MetaActor {
    MetaActor::User(id)
}

fn register_action(name: &str, role_list: &[Role]) -> MetaAction {
    MetaAction::RegisterUser {
        username: Username::fold(name).unwrap(),
        display_name: DisplayName::try_from(name).unwrap(),
        password_hash: phc(0),
        roles: roles(role_list),
    }
}

/// The meta rejection of an outcome, if it is one.
fn rejection(outcome: &Outcome) -> Option<MetaRejectCode> {
    match outcome.reply {
        Reply::Rejected(RejectCode::Meta(code)) => Some(code),
        Reply::Rejected(other) => panic!("an auction code from a meta command: {other:?}"),
        Reply::Accepted(_) => None,
    }
}

/// The kinds of an outcome's meta events, checking their shape on the way.
fn kinds(outcome: &Outcome) -> Vec<MetaEventKind> {
    outcome
        .events
        .iter()
        .map(|event| match event {
            Event::Meta(event) => event.kind.clone(),
            other => panic!("a non-meta event from a meta command: {other:?}"),
        })
        .collect()
}

/// A meta state fed commands at times the test chooses (never backwards, as `State::apply`
/// guarantees), checked after every command.
struct Meta {
    state: MetaState,
    next_request: u64,
    now: Timestamp,
}

impl Meta {
    fn new() -> Meta {
        Meta::with_capacity(MetaCapacity::default())
    }

    fn with_capacity(capacity: MetaCapacity) -> Meta {
        Meta {
            state: MetaState::with_capacity(capacity),
            next_request: 0,
            now: at(0),
        }
    }

    /// A fresh cluster with an admin (who may also bid) bootstrapped by the operator.
    fn with_admin() -> (Meta, UserId) {
        let mut meta = Meta::new();
        let admin = meta.register(MetaActor::Operator, "root", &[Role::Bidder, Role::Admin]);
        (meta, admin)
    }

    fn request(&mut self, seconds: u64, actor: MetaActor, id: &str, action: MetaAction) -> Outcome {
        self.now = self.now.max(at(seconds));
        let command = MetaCommand {
            actor,
            request_id: RequestId::try_from(id).unwrap(),
            action,
        };
        let outcome = self.state.apply(self.now, &command);
        self.state
            .validate()
            .expect("the meta state stays valid after every command");
        for event in &outcome.events {
            let Event::Meta(event) = event else {
                panic!("a non-meta event: {event:?}");
            };
            assert_eq!(event.at, self.now, "events carry the entry's time");
        }
        outcome
    }

    /// A command with a fresh request id, at the current time.
    fn act(&mut self, actor: MetaActor, action: MetaAction) -> Outcome {
        self.act_at(0, actor, action)
    }

    fn act_at(&mut self, seconds: u64, actor: MetaActor, action: MetaAction) -> Outcome {
        self.next_request += 1;
        let id = format!("m{}", self.next_request);
        self.request(seconds, actor, &id, action)
    }

    /// Applies a command that must be accepted; returns the reply.
    fn accept(&mut self, actor: MetaActor, action: MetaAction) -> MetaAccepted {
        let outcome = self.act(actor, action);
        match outcome.reply {
            Reply::Accepted(Accepted::Meta(accepted)) => accepted,
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    /// Applies a command that must be rejected, and checks that the rejection changed
    /// nothing but the request records.
    fn reject(&mut self, actor: MetaActor, action: MetaAction) -> MetaRejectCode {
        let before = self.state.clone();
        let outcome = self.act(actor, action);
        let code = rejection(&outcome).expect("expected a rejection");
        if code != MetaRejectCode::RefreshTokenReused {
            assert!(outcome.events.is_empty(), "{code}: {:?}", outcome.events);
            let mut after = self.state.clone();
            after.requests = before.requests.clone();
            assert_eq!(after, before, "{code} changed the state");
        }
        code
    }

    fn register(&mut self, actor: MetaActor, name: &str, role_list: &[Role]) -> UserId {
        match self.accept(actor, register_action(name, role_list)) {
            MetaAccepted::UserRegistered { user, .. } => user,
            other => panic!("{other:?}"),
        }
    }

    fn bidder(&mut self, name: &str) -> UserId {
        self.register(MetaActor::Anonymous, name, &[Role::Bidder])
    }

    /// Signs `who` in with `family`, token `token(family)`, expiring in an hour.
    fn sign_in(&mut self, who: UserId, family: u128) -> Outcome {
        let action = MetaAction::CreateSession {
            user: who,
            family: FamilyId(family),
            token_hash: token(family as u8),
            expires_at: self.now.plus(crate::Micros::from_secs(3600)),
        };
        self.act(user(who), action)
    }

    fn account(&self, id: UserId) -> &Account {
        self.state.user(id).expect("account exists")
    }

    fn session(&self, id: UserId, family: u128) -> Session {
        self.state
            .sessions_of(id)
            .into_iter()
            .find(|session| session.family() == FamilyId(family))
            .expect("session exists")
    }
}
