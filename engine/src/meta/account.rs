//! An account and its refresh-token families, as the meta group stores them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::command::Role;
use crate::meta::types::{DisplayName, FamilyId, PasswordHash, TokenHash, Username};
use crate::types::{Reason, Timestamp, UserId};

/// One user account. Accounts are never deleted: a user who must go is suspended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub(super) id: UserId,
    pub(super) username: Username,
    pub(super) display_name: DisplayName,
    /// Never empty.
    pub(super) roles: BTreeSet<Role>,
    pub(super) status: AccountStatus,
    pub(super) password_hash: PasswordHash,
    pub(super) created_at: Timestamp,
    /// At most `SESSIONS_PER_USER_MAX`, revoked ones included; a family leaves when it
    /// expires.
    pub(super) sessions: BTreeMap<FamilyId, Session>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccountStatus {
    Active,
    Suspended {
        reason: Reason,
        by: UserId,
        at: Timestamp,
    },
}

/// A refresh-token family: one sign-in and the tokens rotated from it. Only the current
/// token's hash is kept; presenting any other token of the family revokes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Session {
    pub(super) family: FamilyId,
    pub(super) created_at: Timestamp,
    /// Rotations so far: 0 for the token issued at sign-in.
    pub(super) generation: u64,
    pub(super) token_hash: TokenHash,
    pub(super) expires_at: Timestamp,
    pub(super) revoked: bool,
}

impl Account {
    pub fn id(&self) -> UserId {
        self.id
    }

    pub fn username(&self) -> &Username {
        &self.username
    }

    pub fn display_name(&self) -> &DisplayName {
        &self.display_name
    }

    pub fn roles(&self) -> &BTreeSet<Role> {
        &self.roles
    }

    /// The highest role, which access tokens carry as the auction engine's [`crate::Actor`]
    /// role (roles are ordered: each includes the rights of the ones before it).
    pub fn top_role(&self) -> Role {
        *self.roles.last().expect("an account has at least one role")
    }

    pub fn status(&self) -> &AccountStatus {
        &self.status
    }

    pub fn is_active(&self) -> bool {
        self.status == AccountStatus::Active
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// The PHC string the gateway verifies a sign-in against. Never send it to clients.
    pub fn password_hash(&self) -> &PasswordHash {
        &self.password_hash
    }

    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// Every family the account holds, revoked ones included, in family id order.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Revokes every live family; returns how many.
    pub(super) fn revoke_all(&mut self) -> u32 {
        let mut revoked = 0;
        for session in self
            .sessions
            .values_mut()
            .filter(|session| !session.revoked)
        {
            session.revoked = true;
            revoked += 1;
        }
        revoked
    }

    /// The family to drop when the account is full: the oldest revoked one, else the oldest.
    pub(super) fn eviction_candidate(&self) -> Option<FamilyId> {
        self.sessions
            .values()
            .min_by_key(|session| (!session.revoked, session.created_at, session.family))
            .map(|session| session.family)
    }
}

impl Session {
    pub fn family(&self) -> FamilyId {
        self.family
    }

    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The hash of the family's current refresh token.
    pub fn token_hash(&self) -> TokenHash {
        self.token_hash
    }

    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked
    }

    /// Whether the family's current token may still be rotated at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        !self.revoked && now < self.expires_at
    }
}
