//! What a meta command produces: an accepted reply or a rejection code, and events.
//!
//! They travel inside the engine's own [`crate::Outcome`]: an accepted meta command replies
//! `Reply::Accepted(Accepted::Meta(..))`, a rejected one `Reply::Rejected(RejectCode::Meta(..))`
//! and its events are `Event::Meta(..)`. So the node, the event log and the subscribers
//! handle meta outcomes with the code they already have.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::command::Role;
use crate::meta::types::{DisplayName, FamilyId, NodeId, Username};
use crate::types::{Reason, Timestamp, UserId};

/// What an accepted meta command did.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetaAccepted {
    UserRegistered {
        user: UserId,
        username: Username,
    },
    PasswordChanged {
        user: UserId,
        sessions_revoked: u32,
    },
    /// `roles` are the user's roles after the change.
    RolesChanged {
        user: UserId,
        roles: BTreeSet<Role>,
    },
    UserSuspended {
        user: UserId,
        sessions_revoked: u32,
    },
    UserReinstated {
        user: UserId,
    },
    /// `evicted` is the family removed to stay within the per-user limit, if any.
    SessionCreated {
        user: UserId,
        family: FamilyId,
        expires_at: Timestamp,
        evicted: Option<FamilyId>,
    },
    /// `generation` counts the rotations of the family (0 at creation).
    RefreshRotated {
        user: UserId,
        family: FamilyId,
        generation: u64,
        expires_at: Timestamp,
    },
    SessionRevoked {
        user: UserId,
        family: FamilyId,
    },
    AllSessionsRevoked {
        user: UserId,
        sessions_revoked: u32,
    },
    /// Also the reply when the same shard count is set again.
    ClusterFactsSet {
        shard_count: u32,
    },
    /// Also the reply when the node was already retired.
    NodeRetired {
        node_id: NodeId,
    },
}

/// Why a meta command was rejected. Stable, machine-readable: see [`MetaRejectCode::as_str`].
/// When several rules fail, the first in this declaration order names the rejection (a rule
/// about an object, such as `not_owner`, is judged once the object is found).
///
/// Codes shared with [`crate::RejectCode`] (`request_id_reused`, `request_limit_reached`,
/// `permission_denied`) mean the same thing there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaRejectCode {
    /// The same (actor, request id) was used before with a different payload.
    RequestIdReused,
    /// Too many idempotency records are retained; not recorded, so a retry is judged again.
    RequestLimitReached,
    InvalidRoles,
    InvalidExpiry,
    InvalidShardCount,
    ActorSuspended,
    PermissionDenied,
    AdminExists,
    UserNotFound,
    UsernameTaken,
    LastAdmin,
    LastRole,
    RolesUnchanged,
    UserAlreadySuspended,
    UserNotSuspended,
    UserSuspended,
    SessionExists,
    SessionNotFound,
    NotOwner,
    SessionRevoked,
    RefreshTokenReused,
    ShardCountConflict,
    UserLimitReached,
    RetiredNodeLimitReached,
}

impl MetaRejectCode {
    pub const ALL: [MetaRejectCode; 24] = [
        MetaRejectCode::RequestIdReused,
        MetaRejectCode::RequestLimitReached,
        MetaRejectCode::InvalidRoles,
        MetaRejectCode::InvalidExpiry,
        MetaRejectCode::InvalidShardCount,
        MetaRejectCode::ActorSuspended,
        MetaRejectCode::PermissionDenied,
        MetaRejectCode::AdminExists,
        MetaRejectCode::UserNotFound,
        MetaRejectCode::UsernameTaken,
        MetaRejectCode::LastAdmin,
        MetaRejectCode::LastRole,
        MetaRejectCode::RolesUnchanged,
        MetaRejectCode::UserAlreadySuspended,
        MetaRejectCode::UserNotSuspended,
        MetaRejectCode::UserSuspended,
        MetaRejectCode::SessionExists,
        MetaRejectCode::SessionNotFound,
        MetaRejectCode::NotOwner,
        MetaRejectCode::SessionRevoked,
        MetaRejectCode::RefreshTokenReused,
        MetaRejectCode::ShardCountConflict,
        MetaRejectCode::UserLimitReached,
        MetaRejectCode::RetiredNodeLimitReached,
    ];

    /// The stable wire code. Never change one: the gateway and the CLI match on them.
    pub fn as_str(self) -> &'static str {
        match self {
            MetaRejectCode::RequestIdReused => "request_id_reused",
            MetaRejectCode::RequestLimitReached => "request_limit_reached",
            MetaRejectCode::InvalidRoles => "invalid_roles",
            MetaRejectCode::InvalidExpiry => "invalid_expiry",
            MetaRejectCode::InvalidShardCount => "invalid_shard_count",
            MetaRejectCode::ActorSuspended => "actor_suspended",
            MetaRejectCode::PermissionDenied => "permission_denied",
            MetaRejectCode::AdminExists => "admin_exists",
            MetaRejectCode::UserNotFound => "user_not_found",
            MetaRejectCode::UsernameTaken => "username_taken",
            MetaRejectCode::LastAdmin => "last_admin",
            MetaRejectCode::LastRole => "last_role",
            MetaRejectCode::RolesUnchanged => "roles_unchanged",
            MetaRejectCode::UserAlreadySuspended => "user_already_suspended",
            MetaRejectCode::UserNotSuspended => "user_not_suspended",
            MetaRejectCode::UserSuspended => "user_suspended",
            MetaRejectCode::SessionExists => "session_exists",
            MetaRejectCode::SessionNotFound => "session_not_found",
            MetaRejectCode::NotOwner => "not_owner",
            MetaRejectCode::SessionRevoked => "session_revoked",
            MetaRejectCode::RefreshTokenReused => "refresh_token_reused",
            MetaRejectCode::ShardCountConflict => "shard_count_conflict",
            MetaRejectCode::UserLimitReached => "user_limit_reached",
            MetaRejectCode::RetiredNodeLimitReached => "retired_node_limit_reached",
        }
    }

    /// A sentence for people; the code is what programs match on.
    pub fn message(self) -> &'static str {
        match self {
            MetaRejectCode::RequestIdReused => {
                "this request id was already used for another request"
            }
            MetaRejectCode::RequestLimitReached => {
                "too many requests are retained for deduplication"
            }
            MetaRejectCode::InvalidRoles => "an account needs at least one role",
            MetaRejectCode::InvalidExpiry => {
                "the expiry must be in the future and within the refresh lifetime"
            }
            MetaRejectCode::InvalidShardCount => "the shard count is outside 1..=1024",
            MetaRejectCode::ActorSuspended => "your account is suspended",
            MetaRejectCode::PermissionDenied => "you may not do this",
            MetaRejectCode::AdminExists => {
                "an admin already exists: only an admin may create another"
            }
            MetaRejectCode::UserNotFound => "no such user",
            MetaRejectCode::UsernameTaken => "this username is taken",
            MetaRejectCode::LastAdmin => "this would leave the cluster without an active admin",
            MetaRejectCode::LastRole => "an account keeps at least one role",
            MetaRejectCode::RolesUnchanged => "the user already has exactly these roles",
            MetaRejectCode::UserAlreadySuspended => "the user is already suspended",
            MetaRejectCode::UserNotSuspended => "the user is not suspended",
            MetaRejectCode::UserSuspended => "the user is suspended",
            MetaRejectCode::SessionExists => "a session with this family id already exists",
            MetaRejectCode::SessionNotFound => "no such session, or it has expired",
            MetaRejectCode::NotOwner => "the session belongs to another user",
            MetaRejectCode::SessionRevoked => "the session was revoked: sign in again",
            MetaRejectCode::RefreshTokenReused => {
                "an old refresh token was presented: the session is revoked"
            }
            MetaRejectCode::ShardCountConflict => "the shard count is already set to another value",
            MetaRejectCode::UserLimitReached => "the cluster holds the maximum number of accounts",
            MetaRejectCode::RetiredNodeLimitReached => "too many retired node ids are recorded",
        }
    }
}

impl std::fmt::Display for MetaRejectCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A committed change to the meta state, for gateways following group 0 and for the sink.
/// `seq` increases by exactly one per meta event, across all users, so a follower can tell
/// it missed one. Events never carry a password hash or a token hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetaEvent {
    pub seq: u64,
    pub at: Timestamp,
    pub kind: MetaEventKind,
}

/// What gateways act on: `UserSuspended`, `AllSessionsRevoked` and `SessionRevoked` end
/// sessions (close the sockets), `RolesChanged` changes what a user's token may do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetaEventKind {
    UserRegistered {
        user: UserId,
        username: Username,
        display_name: DisplayName,
        roles: BTreeSet<Role>,
    },
    /// Every session of the user was revoked with it (an `AllSessionsRevoked` follows when
    /// there were any).
    PasswordChanged {
        user: UserId,
        by: UserId,
    },
    RolesChanged {
        user: UserId,
        roles: BTreeSet<Role>,
        by: UserId,
    },
    /// Implies that every session of the user is revoked.
    UserSuspended {
        user: UserId,
        reason: Reason,
        by: UserId,
    },
    UserReinstated {
        user: UserId,
        by: UserId,
    },
    SessionCreated {
        user: UserId,
        family: FamilyId,
        expires_at: Timestamp,
    },
    SessionRevoked {
        user: UserId,
        family: FamilyId,
    },
    AllSessionsRevoked {
        user: UserId,
    },
    ClusterFactsSet {
        shard_count: u32,
    },
    NodeRetired {
        node_id: NodeId,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RejectCode;

    #[test]
    fn meta_reject_codes_are_unique_snake_case_and_listed_in_precedence_order() {
        let codes: BTreeSet<&str> = MetaRejectCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes.len(), MetaRejectCode::ALL.len());
        for code in &codes {
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
        }
        assert!(MetaRejectCode::ALL.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn meta_codes_that_share_an_auction_code_string_are_exactly_the_generic_ones() {
        let auction: BTreeSet<&str> = RejectCode::ALL.iter().map(|c| c.as_str()).collect();
        let shared: Vec<&str> = MetaRejectCode::ALL
            .iter()
            .map(|c| c.as_str())
            .filter(|code| auction.contains(code))
            .collect();
        assert_eq!(
            shared,
            [
                "request_id_reused",
                "request_limit_reached",
                "permission_denied"
            ]
        );
    }

    #[test]
    fn a_meta_rejection_has_the_same_code_inside_the_engines_reject_code() {
        for code in MetaRejectCode::ALL {
            assert_eq!(RejectCode::Meta(code).as_str(), code.as_str());
            assert_eq!(RejectCode::Meta(code).message(), code.message());
        }
    }
}
