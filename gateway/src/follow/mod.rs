//! [`MetaFollower`]: follows the meta group's (group 0) committed events so that
//! suspensions and revoked sessions take effect on open sockets and new bids within a
//! second, not when access tokens expire.
//!
//! One task per gateway:
//! 1. reads the meta group's applied index `A` (a linearizable account read);
//! 2. seeds the set of suspended users from a full, paged account listing (which reflects
//!    at least `A`), so a gateway that follows from "now" still knows who is suspended;
//! 3. subscribes to group 0 from `A + 1` and applies each `Event::Meta` in log order:
//!    `UserSuspended` blocks the user and broadcasts [`SessionEnd`], `UserReinstated`
//!    unblocks, `AllSessionsRevoked` and `SessionRevoked` broadcast [`SessionEnd`].
//!
//! Events in `(A, listing]` are applied again on top of the listing; each is idempotent
//! and they come in order, so the set ends where the log does. A broken stream resumes from
//! the last index + 1 with a backoff; a `Resync` or a gap in the meta `seq` starts over at
//! step 1 (and announces users the new listing shows suspended). The set holds at most the
//! cluster's accounts (`limits::USERS_MAX`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use martelo_client::{Client, ClientError, ReadConsistency, SubscribeItem, UserKey};
use martelo_engine::meta::{AccountStatus, FamilyId, UserQuery};
use martelo_engine::{Event, GroupId, MetaEvent, MetaEventKind, UserId};
use tokio::sync::broadcast;

use crate::telemetry;

/// Session-end notices kept for receivers that fall behind.
const SESSION_ENDS_CAPACITY: usize = 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Accounts per listing page when seeding.
const SEED_PAGE: usize = martelo_proto::LIST_USERS_LIMIT_MAX;

/// Why a user's sessions (or one of them) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The account was suspended: every session ends (close code 4001).
    Suspended,
    /// One session (refresh-token family) was revoked: the user signed out there.
    SignedOut,
    /// Every session of the user was revoked (close code 4002).
    AllSessionsRevoked,
}

/// A committed end of a user's sessions, for open WebSockets to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEnd {
    pub user: UserId,
    /// The refresh-token family, when only one session ended.
    pub family: Option<FamilyId>,
    pub reason: EndReason,
}

#[derive(Debug)]
struct Shared {
    blocked: RwLock<HashSet<UserId>>,
    /// Every account's display name, as far as the follower has applied the meta group.
    names: RwLock<HashMap<UserId, Arc<str>>>,
    ends: broadcast::Sender<SessionEnd>,
}

impl Shared {
    fn name(&self, user: UserId, name: &str) {
        self.names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(user, Arc::from(name));
    }

    fn block(&self, user: UserId) {
        self.blocked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(user);
    }

    fn unblock(&self, user: UserId) {
        self.blocked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&user);
    }

    fn announce(&self, user: UserId, family: Option<FamilyId>, reason: EndReason) {
        // No receiver (no open socket) is fine.
        let _ = self.ends.send(SessionEnd {
            user,
            family,
            reason,
        });
    }

    /// Applies one meta event; see the module doc.
    fn apply(&self, event: &MetaEvent) {
        match &event.kind {
            MetaEventKind::UserRegistered {
                user, display_name, ..
            } => self.name(*user, display_name.as_str()),
            MetaEventKind::UserSuspended { user, .. } => {
                self.block(*user);
                self.announce(*user, None, EndReason::Suspended);
            }
            MetaEventKind::UserReinstated { user, .. } => self.unblock(*user),
            MetaEventKind::AllSessionsRevoked { user } => {
                self.announce(*user, None, EndReason::AllSessionsRevoked);
            }
            MetaEventKind::SessionRevoked { user, family } => {
                self.announce(*user, Some(*family), EndReason::SignedOut);
            }
            _ => {}
        }
    }

    /// Replaces the set with `suspended`, announcing users that were not blocked before,
    /// and adds `names` (a listing's display names) to the names known.
    fn reseed(&self, suspended: HashSet<UserId>, names: Vec<(UserId, Arc<str>)>) {
        self.names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(names);
        let newly: Vec<UserId> = {
            let mut blocked = self
                .blocked
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let newly = suspended.difference(&blocked).copied().collect();
            *blocked = suspended;
            newly
        };
        for user in newly {
            self.announce(user, None, EndReason::Suspended);
        }
    }
}

/// What the meta group's events say about users.
#[derive(Debug)]
pub struct MetaFollower {
    shared: Arc<Shared>,
}

impl MetaFollower {
    /// Starts following group 0 from now (the task needs a Tokio runtime; without one the
    /// follower stays empty and says so in the log).
    pub fn start(client: Client) -> MetaFollower {
        let (ends, _) = broadcast::channel(SESSION_ENDS_CAPACITY);
        let shared = Arc::new(Shared {
            blocked: RwLock::new(HashSet::new()),
            names: RwLock::new(HashMap::new()),
            ends,
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(follow(Arc::downgrade(&shared), client));
            }
            Err(_) => tracing::error!(
                "no Tokio runtime: the meta follower does not run, suspensions reach open \
                 sockets only when tokens expire"
            ),
        }
        MetaFollower { shared }
    }

    /// Whether `user` is suspended as far as this gateway has applied the meta group's
    /// committed events. Cheap: one read lock on a hash set.
    pub fn is_blocked(&self, user: UserId) -> bool {
        self.shared
            .blocked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&user)
    }

    /// The display names of `users` that this gateway knows (unknown ids are left out:
    /// an account registered a moment ago may not have reached the follower yet).
    pub fn display_names(
        &self,
        users: impl IntoIterator<Item = UserId>,
    ) -> Vec<(UserId, Arc<str>)> {
        let names = self
            .shared
            .names
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        users
            .into_iter()
            .filter_map(|user| names.get(&user).map(|name| (user, Arc::clone(name))))
            .collect()
    }

    /// Session ends from now on (suspensions, sign-outs), for open WebSockets.
    pub fn session_ends(&self) -> broadcast::Receiver<SessionEnd> {
        self.shared.ends.subscribe()
    }
}

/// What a seed read: the meta group's applied index, its suspended users and every
/// account's display name.
type Seed = (u64, HashSet<UserId>, Vec<(UserId, Arc<str>)>);

/// The meta group's applied index, its suspended users and display names (a full listing).
async fn seed(client: &Client) -> Result<Seed, ClientError> {
    let applied = client
        .read_user(UserKey::Id(UserId(0)), ReadConsistency::Linearizable)
        .await?
        .applied_index;
    let mut suspended = HashSet::new();
    let mut names = Vec::new();
    let mut query = UserQuery {
        prefix: String::new(),
        after: None,
        limit: SEED_PAGE,
    };
    loop {
        let page = client
            .list_users(&query, ReadConsistency::Linearizable)
            .await?;
        suspended.extend(
            page.users
                .iter()
                .filter(|user| matches!(user.status, AccountStatus::Suspended { .. }))
                .map(|user| user.id),
        );
        names.extend(
            page.users
                .iter()
                .map(|user| (user.id, Arc::from(user.display_name.as_str()))),
        );
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => return Ok((applied, suspended, names)),
        }
    }
}

async fn follow(shared: std::sync::Weak<Shared>, client: Client) {
    let mut backoff = BACKOFF_MIN;
    // The next log index to read, once seeded.
    let mut next: Option<u64> = None;
    let mut last_seq: Option<u64> = None;
    loop {
        if shared.strong_count() == 0 {
            return;
        }
        let from = match next {
            Some(from) => from,
            None => match seed(&client).await {
                Ok((applied, suspended, names)) => {
                    let Some(shared) = shared.upgrade() else {
                        return;
                    };
                    shared.reseed(suspended, names);
                    last_seq = None;
                    next = Some(applied + 1);
                    applied + 1
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the meta group's accounts; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        let mut stream = Box::pin(client.subscribe(GroupId::META, from, Vec::new()));
        while let Some(item) = stream.next().await {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match item {
                Ok(SubscribeItem::Entry {
                    log_index, events, ..
                }) => {
                    backoff = BACKOFF_MIN;
                    if next.is_some_and(|next| log_index < next) {
                        continue;
                    }
                    let mut gap = false;
                    for (_, _, event) in &events {
                        let Event::Meta(event) = event else { continue };
                        if last_seq.is_some_and(|last| event.seq != last + 1) {
                            gap = true;
                        }
                        last_seq = Some(event.seq);
                        shared.apply(event);
                    }
                    next = Some(log_index + 1);
                    metrics::gauge!(telemetry::META_APPLIED_INDEX).set(log_index as f64);
                    if gap {
                        tracing::warn!(
                            log_index,
                            "a gap in the meta events: reading the accounts again"
                        );
                        next = None;
                        break;
                    }
                }
                Ok(SubscribeItem::Progress { applied_index }) => {
                    backoff = BACKOFF_MIN;
                    next = next.map(|next| next.max(applied_index + 1));
                    metrics::gauge!(telemetry::META_APPLIED_INDEX).set(applied_index as f64);
                }
                Ok(SubscribeItem::Resync {
                    reason,
                    first_available,
                }) => {
                    tracing::warn!(
                        ?reason,
                        first_available,
                        "the meta log was trimmed: reading the accounts again"
                    );
                    next = None;
                    break;
                }
                Err(error) => {
                    tracing::info!(%error, "the meta subscription broke; resuming");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use martelo_engine::{Reason, Timestamp};

    use super::*;

    fn shared() -> Shared {
        Shared {
            blocked: RwLock::new(HashSet::new()),
            names: RwLock::new(HashMap::new()),
            ends: broadcast::channel(16).0,
        }
    }

    fn event(seq: u64, kind: MetaEventKind) -> MetaEvent {
        MetaEvent {
            seq,
            at: Timestamp(seq),
            kind,
        }
    }

    #[test]
    fn suspensions_block_and_announce_and_reinstatements_unblock() {
        let shared = shared();
        let mut ends = shared.ends.subscribe();
        let reason = Reason::try_from("fraud").unwrap();
        shared.apply(&event(
            1,
            MetaEventKind::UserSuspended {
                user: UserId(7),
                reason,
                by: UserId(1),
            },
        ));
        assert!(shared.blocked.read().unwrap().contains(&UserId(7)));
        assert_eq!(
            ends.try_recv().unwrap(),
            SessionEnd {
                user: UserId(7),
                family: None,
                reason: EndReason::Suspended
            }
        );
        shared.apply(&event(
            2,
            MetaEventKind::UserReinstated {
                user: UserId(7),
                by: UserId(1),
            },
        ));
        assert!(!shared.blocked.read().unwrap().contains(&UserId(7)));
        shared.apply(&event(
            3,
            MetaEventKind::AllSessionsRevoked { user: UserId(8) },
        ));
        assert_eq!(
            ends.try_recv().unwrap().reason,
            EndReason::AllSessionsRevoked
        );
    }

    #[test]
    fn a_reseed_replaces_the_set_and_announces_only_new_suspensions() {
        let shared = shared();
        let mut ends = shared.ends.subscribe();
        shared.block(UserId(1));
        shared.reseed(HashSet::from([UserId(1), UserId(2)]), Vec::new());
        assert_eq!(ends.try_recv().unwrap().user, UserId(2));
        assert!(ends.try_recv().is_err());
        shared.reseed(HashSet::from([UserId(2)]), Vec::new());
        assert!(!shared.blocked.read().unwrap().contains(&UserId(1)));
    }

    #[test]
    fn display_names_come_from_the_seed_and_from_registrations() {
        let shared = shared();
        shared.reseed(HashSet::new(), vec![(UserId(1), Arc::from("Ana"))]);
        shared.apply(&event(
            1,
            MetaEventKind::UserRegistered {
                user: UserId(2),
                username: martelo_engine::meta::Username::try_from("bruno").unwrap(),
                display_name: martelo_engine::meta::DisplayName::try_from("Bruno B").unwrap(),
                roles: std::collections::BTreeSet::new(),
            },
        ));
        let follower = MetaFollower {
            shared: Arc::new(shared),
        };
        let names = follower.display_names([UserId(1), UserId(2), UserId(3)]);
        assert_eq!(
            names,
            vec![
                (UserId(1), Arc::from("Ana")),
                (UserId(2), Arc::from("Bruno B"))
            ]
        );
    }
}
