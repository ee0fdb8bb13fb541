//! Meta commands: what a meta-group log entry asks for.
//!
//! As with auction requests, identity comes from outside the body: the gateway (or the
//! admin API) names the [`MetaActor`], the leader stamps the time, and the meta group
//! assigns user ids itself. Secrets arrive already hashed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::command::Role;
use crate::meta::types::{DisplayName, FamilyId, NodeId, PasswordHash, TokenHash, Username};
use crate::types::{Reason, RequestId, Timestamp, UserId};

/// One meta request, deduplicated by `(actor, request_id)` like an auction [`crate::Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaCommand {
    pub actor: MetaActor,
    pub request_id: RequestId,
    pub action: MetaAction,
}

/// Who asks. Unlike an auction [`crate::Actor`], no role travels with it: the meta group
/// holds the accounts, so it checks the actor's *current* roles and status itself, and a
/// demoted or suspended admin loses their rights here at once, while their access token
/// still names the old role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MetaActor {
    /// Nobody is signed in: the gateway's sign-up and refresh flows.
    Anonymous,
    /// A user the gateway authenticated (access token, or a password it just verified).
    User(UserId),
    /// The cluster operator, through the admin API (the `martelo` CLI). May bootstrap the
    /// first admin and set cluster facts; has no other rights over accounts.
    Operator,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaAction {
    /// Anonymous sign-up (roles without `Admin`), an admin creating any account, or the
    /// operator creating an account (with `Admin` only while no active admin exists). The
    /// meta group assigns the user id.
    RegisterUser {
        username: Username,
        display_name: DisplayName,
        password_hash: PasswordHash,
        roles: BTreeSet<Role>,
    },
    /// The user themself (the gateway verified the old password) or an admin. Revokes every
    /// session of the user.
    ChangePassword {
        user: UserId,
        password_hash: PasswordHash,
    },
    /// Admin: replace the user's roles.
    SetRoles { user: UserId, roles: BTreeSet<Role> },
    /// Admin: add one role.
    GrantRole { user: UserId, role: Role },
    /// Admin: remove one role.
    RevokeRole { user: UserId, role: Role },
    /// Admin: the user can no longer sign in or act; every session is revoked.
    SuspendUser { user: UserId, reason: Reason },
    /// Admin: lift a suspension. Sessions stay revoked: the user signs in again.
    ReinstateUser { user: UserId },
    /// The user themself, after the gateway verified their password: a new refresh-token
    /// family. `family` is a random 128-bit value the gateway drew.
    CreateSession {
        user: UserId,
        family: FamilyId,
        token_hash: TokenHash,
        expires_at: Timestamp,
    },
    /// Anyone holding the family's current refresh token (anonymous, or its owner): replace
    /// the token. Presenting any other token revokes the whole family.
    RotateRefresh {
        family: FamilyId,
        presented_token_hash: TokenHash,
        new_token_hash: TokenHash,
        new_expires_at: Timestamp,
    },
    /// The family's owner (logout) or an admin.
    RevokeFamily { family: FamilyId },
    /// The user themself (log out everywhere) or an admin.
    RevokeAllSessions { user: UserId },
    /// Operator: record the shard count, once. Repeating the same value is accepted.
    SetClusterFacts { shard_count: u32 },
    /// Operator: remember that `node_id` left the cluster for good. Idempotent.
    RetireNode { node_id: NodeId },
}
