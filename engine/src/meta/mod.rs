//! # The meta group's state machine (group 0): accounts, sessions and cluster facts
//!
//! Group 0 holds what is cluster-wide: user accounts (roles, status, password hashes the
//! gateway computed, refresh-token families), the shard count and the retired node ids. Its
//! rules follow the auction engine's: pure, deterministic, time from [`crate::ApplyCtx`],
//! ordered collections only, rejections as stable codes, retries answered from idempotency
//! records.
//!
//! ```text
//!   State::apply(ctx, Command::Meta(command))     (log index and time handled by State)
//!     └─ MetaState::apply(now, command)
//!          ├─ expire: idempotency records past retention, sessions past their expiry
//!          ├─ dedupe by (actor, request id) ── seen ──► stored reply / request_id_reused
//!          └─ execute: users.rs | sessions.rs | cluster.rs ─► record reply ─► events
//! ```
//!
//! Where code goes: value types in `types.rs`, the command in `command.rs`, replies, codes
//! and events in `outcome.rs` (codes append-only), the stored account in `account.rs`, a
//! rule in the file of its subject, reads in `query.rs`.
//!
//! ## Decisions
//!
//! - **The group check is the node's, at propose time.** Auction groups must not apply meta
//!   commands and group 0 must not apply auction commands, but the engine never knows its
//!   group ([`crate::GroupId`] is the cluster's). The node knows the group of every proposal,
//!   so it refuses a mismatch ([`crate::Command::belongs_to`]) before anything reaches a log:
//!   an entry, once committed, is applied forever. It is an infrastructure error with context
//!   (group and command kind), not a domain rejection, so it has no code here. `State::apply`
//!   stays total: a command that slipped through would change only the state of the group
//!   that applied it, identically on every replica (I5 holds either way).
//! - **Authorization reads the meta state, not the token.** A [`MetaActor::User`] carries no
//!   role: the user's account must exist and be active, and admin actions need `Admin` in
//!   its current roles. A demoted or suspended admin loses their rights here at the next
//!   entry, while an access token would still name the old role.
//! - **The first admin is bootstrapped by the operator.** Registering an account with the
//!   `Admin` role needs an active admin as the actor, or the [`MetaActor::Operator`] (the
//!   admin API, `martelo user create --admin`) while no active admin exists. Anonymous
//!   sign-up can never claim `Admin`, even on a fresh cluster, so a public gateway cannot win
//!   a race for the first admin. The last active admin cannot be suspended or lose the role
//!   (`last_admin`), so the cluster never needs a second bootstrap.
//! - **Refresh-token family ids are random, drawn by the gateway.** Reuse detection revokes a
//!   family whenever a token other than its current one is presented for it. With ids from a
//!   counter, anyone could log anyone out by presenting garbage for a guessed id; a random
//!   128-bit id is only known to holders of the family's tokens. The randomness is in the
//!   command, so applying stays deterministic. A collision is rejected (`session_exists`).
//! - **User ids are assigned here**, from a counter starting at 1, in log order.
//! - **`refresh_token_reused` changes the state.** It is the one rejection that does: it
//!   revokes the family and emits `SessionRevoked`, because the reuse itself is the signal
//!   that a token leaked. A retry with the same request id gets the recorded rejection.
//! - **Idempotency mirrors the engine's** (see `dedup.rs`): same key, fingerprint, retention
//!   and unrecorded codes, keyed by [`MetaActor`]. Anonymous requests share one key space,
//!   so the gateway must use unguessable request ids (UUIDv4) for them.
//! - **Rotations emit no event.** They are frequent, no follower acts on them, and the
//!   state they change is a token hash that must not leave the state machine.

mod account;
mod cluster;
mod command;
pub(crate) mod compat;
mod dedup;
mod outcome;
mod query;
mod sessions;
mod types;
mod users;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use account::{Account, AccountStatus, Session};
pub use command::{MetaAction, MetaActor, MetaCommand};
pub use outcome::{MetaAccepted, MetaEvent, MetaEventKind, MetaRejectCode};
pub use query::{Credentials, UserPage, UserQuery, UserSummary};
pub use types::{DisplayName, FamilyId, NodeId, PasswordHash, TokenHash, Username};

use crate::limits;
use crate::outcome::{Accepted, Event, Outcome, RejectCode, Reply};
use crate::state::InvariantViolation;
use crate::types::{Timestamp, UserId};
use dedup::{Fingerprint, RequestKey, Requests};

type Rule<T> = Result<T, MetaRejectCode>;

/// The meta group's replicated state. In every group's [`crate::State`]; only group 0's is
/// ever non-empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    capacity: MetaCapacity,
    /// The `seq` of the last meta event.
    seq: u64,
    /// The id the next registered user gets.
    next_user: u64,
    accounts: BTreeMap<UserId, Account>,
    usernames: BTreeMap<Username, UserId>,
    /// Active accounts holding `Admin`.
    admins: BTreeSet<UserId>,
    /// Every family held by an account, to its owner.
    families: BTreeMap<FamilyId, UserId>,
    /// Families by expiry: they leave the state then.
    session_expiry: BTreeSet<(Timestamp, FamilyId)>,
    shard_count: Option<u32>,
    retired: BTreeSet<NodeId>,
    requests: Requests,
}

/// How much the meta state may hold. Replicated, like the engine's [`crate::Capacity`]; the
/// defaults are the `limits` constants, and tests use small ones to reach each limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetaCapacity {
    pub users_max: usize,
    pub requests_max: usize,
    pub retired_nodes_max: usize,
}

impl Default for MetaCapacity {
    fn default() -> MetaCapacity {
        MetaCapacity {
            users_max: limits::USERS_MAX,
            requests_max: limits::META_REQUESTS_MAX,
            retired_nodes_max: limits::RETIRED_NODES_MAX,
        }
    }
}

impl Default for MetaState {
    fn default() -> MetaState {
        MetaState::with_capacity(MetaCapacity::default())
    }
}

impl MetaState {
    pub fn with_capacity(capacity: MetaCapacity) -> MetaState {
        MetaState {
            capacity,
            seq: 0,
            next_user: 1,
            accounts: BTreeMap::new(),
            usernames: BTreeMap::new(),
            admins: BTreeSet::new(),
            families: BTreeMap::new(),
            session_expiry: BTreeSet::new(),
            shard_count: None,
            retired: BTreeSet::new(),
            requests: Requests::default(),
        }
    }

    pub fn capacity(&self) -> MetaCapacity {
        self.capacity
    }

    /// Applies one meta command at cluster time `now` (already clamped by
    /// [`crate::State::apply`], which also checks the log index).
    pub(crate) fn apply(&mut self, now: Timestamp, command: &MetaCommand) -> Outcome {
        self.expire(now);
        let key = RequestKey::of(command.actor, &command.request_id);
        let print = Fingerprint::of(&command.action);
        if let Some(outcome) = self.requests.answer_repeat(&key, print) {
            return outcome;
        }
        if self.requests.len() >= self.capacity.requests_max {
            return dedup::unrecorded(MetaRejectCode::RequestLimitReached);
        }
        let mut events = Vec::new();
        let reply = match self.execute(now, command.actor, &command.action, &mut events) {
            Ok(accepted) => Reply::Accepted(Accepted::Meta(accepted)),
            Err(code) => Reply::Rejected(RejectCode::Meta(code)),
        };
        debug_assert!(
            reply.is_accepted()
                || events.is_empty()
                || reply.rejection() == Some(RejectCode::Meta(MetaRejectCode::RefreshTokenReused)),
            "only refresh_token_reused rejects with events: {reply:?}"
        );
        self.requests.record(now, key, print, reply.clone());
        Outcome {
            reply,
            events,
            replayed: false,
        }
    }

    fn execute(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        action: &MetaAction,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        match action {
            MetaAction::RegisterUser {
                username,
                display_name,
                password_hash,
                roles,
            } => {
                let account = users::NewAccount {
                    username,
                    display_name,
                    password_hash,
                    roles,
                };
                self.register_user(now, actor, account, events)
            }
            MetaAction::ChangePassword {
                user,
                password_hash,
            } => self.change_password(now, actor, *user, password_hash, events),
            MetaAction::SetRoles { user, roles } => {
                if roles.is_empty() {
                    return Err(MetaRejectCode::InvalidRoles);
                }
                let by = self.require_admin(actor)?;
                self.change_roles(now, by, *user, |_| roles.clone(), events)
            }
            MetaAction::GrantRole { user, role } => {
                let by = self.require_admin(actor)?;
                let grant = |current: &BTreeSet<_>| {
                    let mut roles = current.clone();
                    roles.insert(*role);
                    roles
                };
                self.change_roles(now, by, *user, grant, events)
            }
            MetaAction::RevokeRole { user, role } => {
                let by = self.require_admin(actor)?;
                let revoke = |current: &BTreeSet<_>| {
                    let mut roles = current.clone();
                    roles.remove(role);
                    roles
                };
                self.change_roles(now, by, *user, revoke, events)
            }
            MetaAction::SuspendUser { user, reason } => {
                self.suspend_user(now, actor, *user, reason, events)
            }
            MetaAction::ReinstateUser { user } => self.reinstate_user(now, actor, *user, events),
            MetaAction::CreateSession {
                user,
                family,
                token_hash,
                expires_at,
            } => {
                let session = sessions::NewSession {
                    user: *user,
                    family: *family,
                    token_hash: *token_hash,
                    expires_at: *expires_at,
                };
                self.create_session(now, actor, session, events)
            }
            MetaAction::RotateRefresh {
                family,
                presented_token_hash,
                new_token_hash,
                new_expires_at,
            } => {
                let rotation = sessions::Rotation {
                    family: *family,
                    presented: *presented_token_hash,
                    new_token_hash: *new_token_hash,
                    new_expires_at: *new_expires_at,
                };
                self.rotate_refresh(now, actor, rotation, events)
            }
            MetaAction::RevokeFamily { family } => self.revoke_family(now, actor, *family, events),
            MetaAction::RevokeAllSessions { user } => {
                self.revoke_all_sessions(now, actor, *user, events)
            }
            MetaAction::SetClusterFacts { shard_count } => {
                self.set_cluster_facts(now, actor, *shard_count, events)
            }
            MetaAction::RetireNode { node_id } => self.retire_node(now, actor, *node_id, events),
        }
    }

    /// Drops idempotency records and refresh-token families whose time has run out.
    fn expire(&mut self, now: Timestamp) {
        self.requests.expire(now);
        while let Some(&(at, family)) = self.session_expiry.first() {
            if at > now {
                break;
            }
            self.session_expiry.pop_first();
            let owner = self
                .families
                .remove(&family)
                .expect("every expiring family has an owner");
            let account = self.accounts.get_mut(&owner).expect("owners exist");
            account.sessions.remove(&family);
        }
    }

    /// A digest of the meta state alone (the whole [`crate::State::digest`] covers it too).
    pub fn digest(&self) -> [u8; 32] {
        crate::digest::of(self)
    }

    /// Checks every internal invariant. Linear in the state: for tests, snapshot install and
    /// debugging.
    pub fn validate(&self) -> Result<(), InvariantViolation> {
        let fail = |message: String| Err(InvariantViolation(format!("meta: {message}")));
        let mut admins = BTreeSet::new();
        let mut families = BTreeMap::new();
        let mut expiry = BTreeSet::new();
        for (id, account) in &self.accounts {
            if *id != account.id || id.0 == 0 || id.0 >= self.next_user {
                return fail(format!(
                    "account {id:?} stored under another or unassigned id"
                ));
            }
            if self.usernames.get(&account.username) != Some(id) {
                return fail(format!("account {id:?} missing from the username index"));
            }
            if account.roles.is_empty() {
                return fail(format!("account {id:?} has no role"));
            }
            if account.sessions.len() > limits::SESSIONS_PER_USER_MAX {
                return fail(format!("account {id:?} holds too many sessions"));
            }
            if account.is_active() && account.is_admin() {
                admins.insert(*id);
            }
            for (family, session) in &account.sessions {
                if *family != session.family || families.insert(*family, *id).is_some() {
                    return fail(format!("family {family} stored twice or under another id"));
                }
                expiry.insert((session.expires_at, *family));
            }
        }
        if self.usernames.len() != self.accounts.len() {
            return fail("username index names accounts that do not exist".into());
        }
        if admins != self.admins {
            return fail("admin index does not match the accounts".into());
        }
        if families != self.families || expiry != self.session_expiry {
            return fail("session indexes do not match the accounts".into());
        }
        if self.accounts.len() > self.capacity.users_max
            || self.retired.len() > self.capacity.retired_nodes_max
            || self.requests.len() > self.capacity.requests_max
        {
            return fail("over capacity".into());
        }
        if self
            .shard_count
            .is_some_and(|count| !(1..=limits::SHARD_COUNT_MAX).contains(&count))
        {
            return fail("shard count out of range".into());
        }
        self.requests.validate()
    }
}

/// Appends a meta event with the next meta `seq`.
fn emit(seq: &mut u64, at: Timestamp, kind: MetaEventKind, events: &mut Vec<Event>) {
    *seq += 1;
    events.push(Event::Meta(MetaEvent {
        seq: *seq,
        at,
        kind,
    }));
}
