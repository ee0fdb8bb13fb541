//! Rules about accounts: registration, passwords, roles, suspension.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::Role;
use crate::meta::account::{Account, AccountStatus};
use crate::meta::types::{DisplayName, PasswordHash, Username};
use crate::meta::{MetaAccepted, MetaActor, MetaEventKind, MetaRejectCode, MetaState, Rule, emit};
use crate::outcome::Event;
use crate::types::{Reason, Timestamp, UserId};

/// The fields of a `RegisterUser`.
pub(super) struct NewAccount<'a> {
    pub(super) username: &'a Username,
    pub(super) display_name: &'a DisplayName,
    pub(super) password_hash: &'a PasswordHash,
    pub(super) roles: &'a BTreeSet<Role>,
}

/// Who is acting, once the meta state has checked them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Acting {
    Anonymous,
    Operator,
    /// An existing, active account.
    User {
        id: UserId,
        admin: bool,
    },
}

impl Acting {
    /// Whether the actor may manage `user`'s own things: the user themself or an admin.
    pub(super) fn is_self_or_admin(self, user: UserId) -> bool {
        matches!(self, Acting::User { id, admin } if id == user || admin)
    }
}

impl MetaState {
    /// Resolves the actor: a user must have an account (else `permission_denied`: an unknown
    /// user has no rights) and it must be active (`actor_suspended`).
    pub(super) fn acting(&self, actor: MetaActor) -> Rule<Acting> {
        match actor {
            MetaActor::Anonymous => Ok(Acting::Anonymous),
            MetaActor::Operator => Ok(Acting::Operator),
            MetaActor::User(id) => {
                let account = self
                    .accounts
                    .get(&id)
                    .ok_or(MetaRejectCode::PermissionDenied)?;
                if !account.is_active() {
                    return Err(MetaRejectCode::ActorSuspended);
                }
                Ok(Acting::User {
                    id,
                    admin: account.is_admin(),
                })
            }
        }
    }

    /// The acting admin's id, or the rejection for anyone else.
    pub(super) fn require_admin(&self, actor: MetaActor) -> Rule<UserId> {
        match self.acting(actor)? {
            Acting::User { id, admin: true } => Ok(id),
            _ => Err(MetaRejectCode::PermissionDenied),
        }
    }

    pub(super) fn register_user(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        new: NewAccount<'_>,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        if new.roles.is_empty() {
            return Err(MetaRejectCode::InvalidRoles);
        }
        let wants_admin = new.roles.contains(&Role::Admin);
        match self.acting(actor)? {
            Acting::User { admin: true, .. } => {}
            Acting::User { admin: false, .. } => return Err(MetaRejectCode::PermissionDenied),
            Acting::Anonymous if wants_admin => return Err(MetaRejectCode::PermissionDenied),
            Acting::Anonymous => {}
            Acting::Operator if wants_admin && !self.admins.is_empty() => {
                return Err(MetaRejectCode::AdminExists);
            }
            Acting::Operator => {}
        }
        if self.usernames.contains_key(new.username) {
            return Err(MetaRejectCode::UsernameTaken);
        }
        if self.accounts.len() >= self.capacity.users_max {
            return Err(MetaRejectCode::UserLimitReached);
        }
        let user = UserId(self.next_user);
        self.next_user += 1;
        let account = Account {
            id: user,
            username: new.username.clone(),
            display_name: new.display_name.clone(),
            roles: new.roles.clone(),
            status: AccountStatus::Active,
            password_hash: new.password_hash.clone(),
            created_at: now,
            sessions: BTreeMap::new(),
        };
        self.accounts.insert(user, account);
        self.usernames.insert(new.username.clone(), user);
        if wants_admin {
            self.admins.insert(user);
        }
        let kind = MetaEventKind::UserRegistered {
            user,
            username: new.username.clone(),
            display_name: new.display_name.clone(),
            roles: new.roles.clone(),
        };
        emit(&mut self.seq, now, kind, events);
        Ok(MetaAccepted::UserRegistered {
            user,
            username: new.username.clone(),
        })
    }

    pub(super) fn change_password(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        user: UserId,
        password_hash: &PasswordHash,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        let acting = self.acting(actor)?;
        let Acting::User { id: by, .. } = acting else {
            return Err(MetaRejectCode::PermissionDenied);
        };
        if !acting.is_self_or_admin(user) {
            return Err(MetaRejectCode::PermissionDenied);
        }
        let account = self
            .accounts
            .get_mut(&user)
            .ok_or(MetaRejectCode::UserNotFound)?;
        account.password_hash = password_hash.clone();
        // A new password must lock out whoever knew the old one: every session ends.
        let sessions_revoked = account.revoke_all();
        emit(
            &mut self.seq,
            now,
            MetaEventKind::PasswordChanged { user, by },
            events,
        );
        if sessions_revoked > 0 {
            let kind = MetaEventKind::AllSessionsRevoked { user };
            emit(&mut self.seq, now, kind, events);
        }
        Ok(MetaAccepted::PasswordChanged {
            user,
            sessions_revoked,
        })
    }

    /// Sets `user`'s roles to `change(current roles)`. The caller checked that `by` is an
    /// active admin.
    pub(super) fn change_roles(
        &mut self,
        now: Timestamp,
        by: UserId,
        user: UserId,
        change: impl FnOnce(&BTreeSet<Role>) -> BTreeSet<Role>,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        let account = self
            .accounts
            .get_mut(&user)
            .ok_or(MetaRejectCode::UserNotFound)?;
        let roles = change(&account.roles);
        let last_admin = self.admins.len() == 1 && self.admins.contains(&user);
        if last_admin && !roles.contains(&Role::Admin) {
            return Err(MetaRejectCode::LastAdmin);
        }
        if roles.is_empty() {
            return Err(MetaRejectCode::LastRole);
        }
        if roles == account.roles {
            return Err(MetaRejectCode::RolesUnchanged);
        }
        account.roles = roles.clone();
        if account.is_active() && account.is_admin() {
            self.admins.insert(user);
        } else {
            self.admins.remove(&user);
        }
        let kind = MetaEventKind::RolesChanged {
            user,
            roles: roles.clone(),
            by,
        };
        emit(&mut self.seq, now, kind, events);
        Ok(MetaAccepted::RolesChanged { user, roles })
    }

    pub(super) fn suspend_user(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        user: UserId,
        reason: &Reason,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        let by = self.require_admin(actor)?;
        let account = self
            .accounts
            .get_mut(&user)
            .ok_or(MetaRejectCode::UserNotFound)?;
        if self.admins.len() == 1 && self.admins.contains(&user) {
            return Err(MetaRejectCode::LastAdmin);
        }
        if !account.is_active() {
            return Err(MetaRejectCode::UserAlreadySuspended);
        }
        account.status = AccountStatus::Suspended {
            reason: reason.clone(),
            by,
            at: now,
        };
        let sessions_revoked = account.revoke_all();
        self.admins.remove(&user);
        let kind = MetaEventKind::UserSuspended {
            user,
            reason: reason.clone(),
            by,
        };
        emit(&mut self.seq, now, kind, events);
        Ok(MetaAccepted::UserSuspended {
            user,
            sessions_revoked,
        })
    }

    pub(super) fn reinstate_user(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        user: UserId,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        let by = self.require_admin(actor)?;
        let account = self
            .accounts
            .get_mut(&user)
            .ok_or(MetaRejectCode::UserNotFound)?;
        if account.is_active() {
            return Err(MetaRejectCode::UserNotSuspended);
        }
        account.status = AccountStatus::Active;
        if account.is_admin() {
            self.admins.insert(user);
        }
        let kind = MetaEventKind::UserReinstated { user, by };
        emit(&mut self.seq, now, kind, events);
        Ok(MetaAccepted::UserReinstated { user })
    }
}
