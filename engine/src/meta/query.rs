//! Reads of the meta state. Pure: the same state and query give the same answer on every
//! replica. Whether a read must be linearizable is the node's choice (as for auctions).

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::command::Role;
use crate::limits;
use crate::meta::MetaState;
use crate::meta::account::{Account, AccountStatus, Session};
use crate::meta::types::{DisplayName, FamilyId, NodeId, Username};
use crate::types::{Timestamp, UserId};

/// Usernames order as their text, so the username index can be searched by a `str`.
impl Borrow<str> for Username {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// A request for one page of accounts, in username order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserQuery {
    /// Only usernames starting with this text, after folding it like a username (empty: all).
    pub prefix: String,
    /// Only usernames after this one (exclusive cursor); `None` starts at the first.
    pub after: Option<Username>,
    /// Most accounts in the page; clamped to `1..=USER_PAGE_MAX`.
    pub limit: usize,
}

/// One page of accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPage {
    /// Ascending by username; at most the query's (clamped) limit.
    pub users: Vec<UserSummary>,
    /// The cursor of the next page (pass it as `after`); `None` on the last page.
    pub next_after: Option<Username>,
}

/// An account without its secrets (password hash, token hashes): what a listing shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: UserId,
    pub username: Username,
    pub display_name: DisplayName,
    pub roles: BTreeSet<Role>,
    pub status: AccountStatus,
    pub created_at: Timestamp,
}

impl Account {
    pub fn summary(&self) -> UserSummary {
        UserSummary {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            roles: self.roles.clone(),
            status: self.status.clone(),
            created_at: self.created_at,
        }
    }
}

impl MetaState {
    pub fn user(&self, user: UserId) -> Option<&Account> {
        self.accounts.get(&user)
    }

    /// The account whose username `input` folds to (`None` if it folds to no valid name).
    pub fn user_by_username(&self, input: &str) -> Option<&Account> {
        let username = Username::fold(input).ok()?;
        let user = self.usernames.get(&username)?;
        self.accounts.get(user)
    }

    /// One page of accounts whose username starts with `query.prefix`, after
    /// `query.after`, in username order. Touches at most `limit + 1` index entries.
    pub fn list_users(&self, query: &UserQuery) -> UserPage {
        let limit = query.limit.clamp(1, limits::USER_PAGE_MAX);
        let prefix = query.prefix.to_lowercase();
        if prefix.len() > limits::USERNAME_CHARS_MAX {
            return UserPage {
                users: Vec::new(),
                next_after: None,
            };
        }
        let lower = match &query.after {
            Some(after) if after.as_str() >= prefix.as_str() => Bound::Excluded(after.as_str()),
            _ => Bound::Included(prefix.as_str()),
        };
        let mut matching = self
            .usernames
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(username, _)| username.as_str().starts_with(&prefix))
            .map(|(_, user)| &self.accounts[user]);
        let users: Vec<UserSummary> = matching
            .by_ref()
            .take(limit)
            .map(Account::summary)
            .collect();
        let next_after = match matching.next() {
            Some(_) => users.last().map(|user| user.username.clone()),
            None => None,
        };
        UserPage { users, next_after }
    }

    /// The user's refresh-token families, revoked ones included, in family id order. Empty
    /// for an unknown user. Families past their expiry leave at the next meta entry; check
    /// [`Session::is_live`].
    pub fn sessions_of(&self, user: UserId) -> Vec<Session> {
        self.accounts
            .get(&user)
            .map(|account| account.sessions().copied().collect())
            .unwrap_or_default()
    }

    /// The owner of a refresh-token family: the gateway finds the user of a presented
    /// refresh token this way.
    pub fn family_owner(&self, family: FamilyId) -> Option<UserId> {
        self.families.get(&family).copied()
    }

    pub fn user_count(&self) -> usize {
        self.accounts.len()
    }

    /// Whether an active admin exists (when none does, the operator may register one).
    pub fn admin_exists(&self) -> bool {
        !self.admins.is_empty()
    }

    /// The shard count, once `SetClusterFacts` has set it.
    pub fn shard_count(&self) -> Option<u32> {
        self.shard_count
    }

    /// Whether `node_id` was retired; the node refuses to add such an id again.
    pub fn is_retired(&self, node_id: NodeId) -> bool {
        self.retired.contains(&node_id)
    }

    pub fn retired_nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.retired.iter().copied()
    }

    /// The `seq` of the last meta event (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}
