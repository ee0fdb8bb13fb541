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
use crate::meta::types::{DisplayName, FamilyId, NodeId, PasswordHash, Username};
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

/// One page of accounts. Serde, so the node sends it to clients as one wire payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// What the gateway needs to sign a user in: the account's summary and its password hash,
/// which it verifies a presented password against. Never the refresh-token hashes: those do
/// not leave the meta group. The hash's `Debug` is redacted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Credentials {
    pub summary: UserSummary,
    pub password_hash: PasswordHash,
}

impl Account {
    /// The account's [`Credentials`]: its summary and password hash.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            summary: self.summary(),
            password_hash: self.password_hash.clone(),
        }
    }

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

    /// The [`Credentials`] of the account whose username `input` folds to.
    pub fn credentials_by_username(&self, input: &str) -> Option<Credentials> {
        self.user_by_username(input).map(Account::credentials)
    }

    /// The [`Credentials`] of account `user`.
    pub fn credentials_by_id(&self, user: UserId) -> Option<Credentials> {
        self.user(user).map(Account::credentials)
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

#[cfg(test)]
mod tests {
    use crate::command::Role;
    use crate::meta::types::{DisplayName, PasswordHash, Username};
    use crate::meta::{MetaAction, MetaActor, MetaCommand, MetaState};
    use crate::types::{RequestId, Timestamp, UserId};

    fn registered(names: &[&str]) -> MetaState {
        let mut state = MetaState::default();
        for (n, name) in names.iter().enumerate() {
            let command = MetaCommand {
                actor: MetaActor::Anonymous,
                request_id: RequestId::try_from(format!("r-{n}")).unwrap(),
                action: MetaAction::RegisterUser {
                    username: Username::fold(name).unwrap(),
                    display_name: DisplayName::try_from(*name).unwrap(),
                    password_hash: PasswordHash::try_from(format!("$argon2id$h{n}")).unwrap(),
                    roles: [Role::Bidder].into_iter().collect(),
                },
            };
            let outcome = state.apply(Timestamp(1_000 + n as u64), &command);
            assert!(outcome.reply.is_accepted(), "{:?}", outcome.reply);
        }
        state
    }

    #[test]
    fn credentials_carry_the_summary_and_the_password_hash_by_username_or_id() {
        let state = registered(&["alice", "bob"]);
        let by_name = state.credentials_by_username("BOB").expect("bob, folded");
        assert_eq!(by_name.summary.username.as_str(), "bob");
        assert_eq!(by_name.password_hash.as_phc(), "$argon2id$h1");
        let by_id = state.credentials_by_id(by_name.summary.id).expect("by id");
        assert_eq!(by_id, by_name);
        assert_eq!(state.credentials_by_username("carol"), None);
        assert_eq!(state.credentials_by_username("no spaces allowed"), None);
        assert_eq!(state.credentials_by_id(UserId(99)), None);
    }
}
