//! Rules about refresh-token families: sign-in, rotation with reuse detection, logout.

use crate::limits;
use crate::meta::account::Session;
use crate::meta::types::{FamilyId, TokenHash};
use crate::meta::users::Acting;
use crate::meta::{MetaAccepted, MetaActor, MetaEventKind, MetaRejectCode, MetaState, Rule, emit};
use crate::outcome::Event;
use crate::types::{Timestamp, UserId};

/// The fields of a `CreateSession`.
pub(super) struct NewSession {
    pub(super) user: UserId,
    pub(super) family: FamilyId,
    pub(super) token_hash: TokenHash,
    pub(super) expires_at: Timestamp,
}

/// The fields of a `RotateRefresh`.
pub(super) struct Rotation {
    pub(super) family: FamilyId,
    pub(super) presented: TokenHash,
    pub(super) new_token_hash: TokenHash,
    pub(super) new_expires_at: Timestamp,
}

/// An expiry must lie after `now` and at most `REFRESH_LIFETIME_MAX` after it.
fn check_expiry(now: Timestamp, expires_at: Timestamp) -> Rule<()> {
    if expires_at <= now || expires_at > now.plus(limits::REFRESH_LIFETIME_MAX) {
        return Err(MetaRejectCode::InvalidExpiry);
    }
    Ok(())
}

impl MetaState {
    pub(super) fn create_session(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        new: NewSession,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        check_expiry(now, new.expires_at)?;
        // Only the user signs themself in: the gateway acts as them once it has verified
        // their password. An admin cannot open a session as someone else.
        match self.acting(actor)? {
            Acting::User { id, .. } if id == new.user => {}
            _ => return Err(MetaRejectCode::PermissionDenied),
        }
        if self.families.contains_key(&new.family) {
            return Err(MetaRejectCode::SessionExists);
        }
        let account = self
            .accounts
            .get_mut(&new.user)
            .ok_or(MetaRejectCode::UserNotFound)?;
        let evicted = if account.sessions.len() >= limits::SESSIONS_PER_USER_MAX {
            account.eviction_candidate()
        } else {
            None
        };
        if let Some(family) = evicted {
            let session = account.sessions.remove(&family).expect("candidate exists");
            self.families.remove(&family);
            self.session_expiry.remove(&(session.expires_at, family));
            if !session.revoked {
                let kind = MetaEventKind::SessionRevoked {
                    user: new.user,
                    family,
                };
                emit(&mut self.seq, now, kind, events);
            }
        }
        let session = Session {
            family: new.family,
            created_at: now,
            generation: 0,
            token_hash: new.token_hash,
            expires_at: new.expires_at,
            revoked: false,
        };
        account.sessions.insert(new.family, session);
        self.families.insert(new.family, new.user);
        self.session_expiry.insert((new.expires_at, new.family));
        let kind = MetaEventKind::SessionCreated {
            user: new.user,
            family: new.family,
            expires_at: new.expires_at,
        };
        emit(&mut self.seq, now, kind, events);
        Ok(MetaAccepted::SessionCreated {
            user: new.user,
            family: new.family,
            expires_at: new.expires_at,
            evicted,
        })
    }

    /// Replaces the family's current token. Presenting any other token (an older one, or one
    /// that never belonged to the family) revokes the family: a refresh token was copied, and
    /// the thief and the user cannot be told apart, so both must sign in again.
    pub(super) fn rotate_refresh(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        rotation: Rotation,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        check_expiry(now, rotation.new_expires_at)?;
        let acting = self.acting(actor)?;
        if acting == Acting::Operator {
            return Err(MetaRejectCode::PermissionDenied);
        }
        let family = rotation.family;
        let owner = *self
            .families
            .get(&family)
            .ok_or(MetaRejectCode::SessionNotFound)?;
        if matches!(acting, Acting::User { id, .. } if id != owner) {
            return Err(MetaRejectCode::NotOwner);
        }
        let account = self.accounts.get_mut(&owner).expect("family owners exist");
        if !account.is_active() {
            return Err(MetaRejectCode::UserSuspended);
        }
        let session = account
            .sessions
            .get_mut(&family)
            .expect("indexed families exist");
        if session.revoked {
            return Err(MetaRejectCode::SessionRevoked);
        }
        debug_assert!(now < session.expires_at, "expired families left the state");
        if session.token_hash != rotation.presented {
            session.revoked = true;
            let kind = MetaEventKind::SessionRevoked {
                user: owner,
                family,
            };
            emit(&mut self.seq, now, kind, events);
            return Err(MetaRejectCode::RefreshTokenReused);
        }
        self.session_expiry.remove(&(session.expires_at, family));
        self.session_expiry
            .insert((rotation.new_expires_at, family));
        session.generation += 1;
        session.token_hash = rotation.new_token_hash;
        session.expires_at = rotation.new_expires_at;
        Ok(MetaAccepted::RefreshRotated {
            user: owner,
            family,
            generation: session.generation,
            expires_at: session.expires_at,
        })
    }

    pub(super) fn revoke_family(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        family: FamilyId,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        let acting = self.acting(actor)?;
        if !matches!(acting, Acting::User { .. }) {
            return Err(MetaRejectCode::PermissionDenied);
        }
        let owner = *self
            .families
            .get(&family)
            .ok_or(MetaRejectCode::SessionNotFound)?;
        if !acting.is_self_or_admin(owner) {
            return Err(MetaRejectCode::NotOwner);
        }
        let session = self
            .accounts
            .get_mut(&owner)
            .and_then(|account| account.sessions.get_mut(&family))
            .expect("indexed families exist");
        if session.revoked {
            return Err(MetaRejectCode::SessionRevoked);
        }
        session.revoked = true;
        let kind = MetaEventKind::SessionRevoked {
            user: owner,
            family,
        };
        emit(&mut self.seq, now, kind, events);
        Ok(MetaAccepted::SessionRevoked {
            user: owner,
            family,
        })
    }

    pub(super) fn revoke_all_sessions(
        &mut self,
        now: Timestamp,
        actor: MetaActor,
        user: UserId,
        events: &mut Vec<Event>,
    ) -> Rule<MetaAccepted> {
        if !self.acting(actor)?.is_self_or_admin(user) {
            return Err(MetaRejectCode::PermissionDenied);
        }
        let account = self
            .accounts
            .get_mut(&user)
            .ok_or(MetaRejectCode::UserNotFound)?;
        let sessions_revoked = account.revoke_all();
        if sessions_revoked > 0 {
            let kind = MetaEventKind::AllSessionsRevoked { user };
            emit(&mut self.seq, now, kind, events);
        }
        Ok(MetaAccepted::AllSessionsRevoked {
            user,
            sessions_revoked,
        })
    }
}
