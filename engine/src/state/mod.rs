//! The state of one Raft group's auctions and the rules that change it.
//!
//! ```text
//!   apply(ctx, command)
//!     │  assert log index increases; now = max(ctx.timestamp, last timestamp)
//!     ├─ expire: drop closed auctions and idempotency records whose retention ran out
//!     ├─ Close ───────────────► close_auction      (no idempotency: the leader may repeat it)
//!     ├─ AdoptRules ──────────► raise the group's rules version (never lowers it)
//!     └─ Request ─► dedupe by (user, request id)
//!                     ├─ seen, same payload ──► stored reply, replayed = true, no events
//!                     ├─ seen, other payload ─► request_id_reused (not recorded)
//!                     └─ new ─► execute ─► record the reply ─► reply + events
//!                                          (rules 2: only an accepted reply is recorded)
//! ```
//!
//! ## Rules versions
//!
//! A replica applies each entry under the rules version its state holds at that point of the
//! log ([`RulesVersion`]), never under whatever its binary prefers: a log replayed from an old
//! checkpoint, or by a newer build, then gives the same state on every replica. A group
//! starts at version 1 and moves to a later one only through a committed
//! [`Command::AdoptRules`], which the group's leader proposes once it runs a build that knows
//! a later version (`cluster/src/node/timers.rs`). See `docs/ENGINE.md`, "Rules versions".

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::command::{Action, Actor, ApplyCtx, Command, Request, Role};
use crate::limits;
use crate::meta::MetaState;
use crate::outcome::{
    Accepted, AuctionEvent, AuctionEventKind, AuctionResult, Event, Listing, Outcome, RejectCode,
    Reply, SaleKind, UnsoldReason,
};
use crate::spec::{AuctionSpec, SoftCloseMode};
use crate::types::{Amount, AuctionId, BidId, Reason, RequestId, Timestamp, UserId};

mod auction;
use auction::{check_bid_amounts, to_reply};
mod rules;

/// All auctions of one group, plus suspensions and idempotency records.
///
/// Every collection is ordered (`BTreeMap`/`BTreeSet`), so serialisation, digests and event
/// order depend only on the applied commands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    capacity: Capacity,
    last_log_index: u64,
    last_timestamp: Timestamp,
    auctions: BTreeMap<AuctionId, Auction>,
    /// Open auctions by effective end: the leader's close timer reads the front.
    open_by_end: BTreeSet<(Timestamp, AuctionId)>,
    /// Closed auctions by the time they leave the state.
    closed_expiry: BTreeSet<(Timestamp, AuctionId)>,
    suspended: BTreeSet<UserId>,
    /// Idempotency records of requests that name no existing auction.
    requests: BTreeMap<RequestKey, RequestRecord>,
    requests_expiry: BTreeSet<(Timestamp, RequestKey)>,
    /// The meta group's accounts, sessions and cluster facts: empty in every group but
    /// group 0. Last, and absent from storage format 1 (see `meta::compat`).
    #[serde(default, deserialize_with = "crate::meta::compat::deserialize_meta")]
    meta: MetaState,
    /// The rules this group applies. Absent from storage formats 1-3, whose groups all ran
    /// version 1 (`codec::compat::appended_in_format_4`).
    #[serde(
        default,
        deserialize_with = "crate::codec::compat::appended_in_format_4"
    )]
    rules: RulesVersion,
    /// Ids of auctions that left the state before their listing's end, each until that end
    /// (rules 2): a stale retry of their `CreateAuction` would otherwise pass the listing's
    /// window check and bring the id back to life. After the listing's end the check itself
    /// refuses it (`invalid_window`).
    #[serde(
        default,
        deserialize_with = "crate::codec::compat::appended_in_format_4"
    )]
    retired: BTreeMap<AuctionId, Timestamp>,
    #[serde(
        default,
        deserialize_with = "crate::codec::compat::appended_in_format_4"
    )]
    retired_expiry: BTreeSet<(Timestamp, AuctionId)>,
}

/// Which version of the engine's rules a group applies. Part of the replicated state: it
/// changes only through a committed [`Command::AdoptRules`], so every replica applies every
/// entry under the same rules, whatever build it runs.
///
/// - **1**: the first rules.
/// - **2**: a rejected request leaves no idempotency record (a retry is judged again), and a
///   user holds at most [`limits::REQUESTS_PER_USER_PER_AUCTION_MAX`] records per auction;
///   admins are exempt from the record bounds; a request id is scoped to the auction its
///   request names (or to the group, for requests that name none); an edit needs the seller
///   role, and no edit, cancel or void is accepted once the auction's effective end has
///   passed; an auction id that left the state before its listing's end stays retired until
///   that end; `Close` removes the bids of suspended bidders before it decides the winner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RulesVersion(pub u16);

impl RulesVersion {
    /// The rules every group started with.
    pub const FIRST: RulesVersion = RulesVersion(1);
    /// The newest rules this build applies.
    pub const CURRENT: RulesVersion = RulesVersion(2);
    /// Rejections unrecorded, per-user record bounds, end-respecting edits, retired ids,
    /// suspended bidders' bids removed at close.
    pub const V2: RulesVersion = RulesVersion(2);
}

impl Default for RulesVersion {
    fn default() -> RulesVersion {
        RulesVersion::FIRST
    }
}

impl std::fmt::Display for RulesVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How much one group's state may hold. Part of the replicated state: a group is created with
/// its capacity and every replica enforces the same one. The defaults are the `limits`
/// constants; tests use small ones to reach every limit quickly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capacity {
    pub auctions_max: usize,
    pub bids_per_auction_max: usize,
    pub requests_per_auction_max: usize,
    pub group_requests_max: usize,
}

impl Default for Capacity {
    fn default() -> Capacity {
        Capacity {
            auctions_max: limits::AUCTIONS_PER_GROUP_MAX,
            bids_per_auction_max: limits::BIDS_PER_AUCTION_MAX,
            requests_per_auction_max: limits::REQUESTS_PER_AUCTION_MAX,
            group_requests_max: limits::GROUP_REQUESTS_MAX,
        }
    }
}

/// One auction and everything needed to decide its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auction {
    id: AuctionId,
    seller: UserId,
    spec: AuctionSpec,
    created_at: Timestamp,
    /// The effective end: the spec's end plus soft-close extensions.
    end: Timestamp,
    /// The sequence number of the auction's last event.
    seq: u64,
    /// The visible price; `Some` exactly when someone leads.
    price: Option<Amount>,
    leader: Option<Leader>,
    bids: Vec<Bid>,
    closed: Option<Closed>,
    /// Idempotency records of every request that named this auction while it existed. They
    /// leave the state with the auction.
    /// Each key maps to its record's position in `records`. Records live in a vector so
    /// that inserting into the map moves small entries, not whole records: this is the hot
    /// path of every bid.
    requests: BTreeMap<RequestKey, u32>,
    records: Vec<RequestRecord>,
}

/// The leading bidder and their (secret) proxy maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Leader {
    pub bidder: UserId,
    pub max: Amount,
}

/// An accepted bid, kept for audit and for recomputing the auction after a void.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bid {
    pub bidder: UserId,
    pub amount: Amount,
    pub max: Amount,
    pub at: Timestamp,
    pub log_index: u64,
    pub voided: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Closed {
    pub result: AuctionResult,
    pub at: Timestamp,
}

/// The index key of an idempotency record: the user and a 128-bit XXH3 hash of the request
/// id. A fixed-size key keeps the index's nodes small, its comparisons free of pointer
/// chasing and the hot path free of an allocation per bid. XXH3 is not a cryptographic hash,
/// but a collision can only involve two request ids of the same user, so at worst a user who
/// crafts one confuses their own requests (the later one is answered as a retry of, or a reuse
/// of, the earlier one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct RequestKey {
    user: UserId,
    request_hash: u128,
}

impl RequestKey {
    fn of(user: UserId, request_id: &RequestId) -> RequestKey {
        let request_hash = xxhash_rust::xxh3::xxh3_128(request_id.as_str().as_bytes());
        RequestKey { user, request_hash }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct RequestRecord {
    fingerprint: Fingerprint,
    reply: Reply,
}

impl RequestRecord {
    /// The answer to a request whose key was seen before: the stored reply if it is a retry,
    /// `request_id_reused` if the payload differs (not recorded: it changed nothing).
    fn answer_repeat(&self, fingerprint: Fingerprint) -> Outcome {
        if self.fingerprint == fingerprint {
            return Outcome {
                reply: self.reply.clone(),
                events: Vec::new(),
                replayed: true,
            };
        }
        let reply = Reply::Rejected(RejectCode::RequestIdReused);
        Outcome {
            reply,
            events: Vec::new(),
            replayed: false,
        }
    }

    /// Not recorded: nothing was applied, so a later retry may be evaluated afresh.
    fn limit_reached() -> Outcome {
        let reply = Reply::Rejected(RejectCode::RequestLimitReached);
        Outcome {
            reply,
            events: Vec::new(),
            replayed: false,
        }
    }
}

/// What a request asked for, to tell a retry from a reuse of its request id. Bids, the hot
/// path, are compared field by field; everything else by a 128-bit digest of its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Fingerprint {
    Bid {
        auction_id: AuctionId,
        amount: Amount,
        max: Option<Amount>,
    },
    Digest([u8; 16]),
}

impl Fingerprint {
    fn of(action: &Action) -> Fingerprint {
        match action {
            Action::PlaceBid {
                auction_id,
                amount,
                max,
            } => Fingerprint::Bid {
                auction_id: *auction_id,
                amount: *amount,
                max: *max,
            },
            other => {
                let digest = crate::digest::of(other);
                let mut short = [0u8; 16];
                short.copy_from_slice(&digest[..16]);
                Fingerprint::Digest(short)
            }
        }
    }
}

/// A digest of the whole state; equal states have equal digests.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateDigest(pub [u8; 32]);

impl std::fmt::Display for StateDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl std::fmt::Debug for StateDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateDigest({self})")
    }
}

/// A broken internal invariant: the state is corrupt and must not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("state invariant violated: {0}")]
pub struct InvariantViolation(pub String);

type Rule<T> = Result<T, RejectCode>;

impl State {
    pub fn new() -> State {
        State::default()
    }

    /// An empty state with a capacity other than the default. Bid ids are `u32`, so the bid
    /// capacity is clamped to `u32::MAX`.
    pub fn with_capacity(mut capacity: Capacity) -> State {
        capacity.bids_per_auction_max = capacity.bids_per_auction_max.min(u32::MAX as usize);
        capacity.requests_per_auction_max =
            capacity.requests_per_auction_max.min(u32::MAX as usize);
        State {
            capacity,
            ..State::default()
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// Applies one committed command. Deterministic: the same sequence of `(ctx, command)`
    /// gives the same outcomes and the same state on every replica.
    ///
    /// # Panics
    /// If `ctx.log_index` does not exceed the last applied index: the caller re-applied or
    /// reordered the log, and continuing would fork this replica.
    pub fn apply(&mut self, ctx: ApplyCtx, command: &Command) -> Outcome {
        assert!(
            ctx.log_index > self.last_log_index,
            "log index {} applied after {}",
            ctx.log_index,
            self.last_log_index
        );
        self.last_log_index = ctx.log_index;
        let now = ctx.timestamp.max(self.last_timestamp);
        self.last_timestamp = now;
        self.expire(now);
        let mut events = Vec::new();
        match command {
            Command::Close { auction_id } => {
                let reply = to_reply(self.close_when_ended(now, *auction_id, &mut events));
                Outcome {
                    reply,
                    events,
                    replayed: false,
                }
            }
            Command::Request(request) => self.request(now, ctx.log_index, request),
            Command::Meta(command) => self.meta.apply(now, command),
            Command::AdoptRules { version } => self.adopt_rules(*version),
        }
    }

    /// The rules version this group applies now.
    pub fn rules(&self) -> RulesVersion {
        self.rules
    }

    /// Raises the rules version to `version` (never lowers it).
    ///
    /// # Panics
    /// If `version` is newer than this build knows: applying the rest of the log under older
    /// rules would fork this replica from the ones that know them, so the replica stops
    /// instead, and runs again on a build that knows `version`.
    fn adopt_rules(&mut self, version: RulesVersion) -> Outcome {
        assert!(
            version <= RulesVersion::CURRENT,
            "the log adopts rules version {version}, and this build knows only up to {}: \
             run this node on a newer build",
            RulesVersion::CURRENT
        );
        self.rules = self.rules.max(version);
        Outcome {
            reply: Reply::Accepted(Accepted::RulesAdopted {
                version: self.rules,
            }),
            events: Vec::new(),
            replayed: false,
        }
    }

    /// Whether a leader may answer `request` with a rejection without the log: only a bid
    /// that this state, at `now`, would reject as `bid_too_low` or `max_not_raised` (every
    /// earlier check passing), and only if the state holds no record of the request (a retry
    /// of a recorded request must get its recorded reply, so it goes through the log).
    ///
    /// The caller must read a state that reflects every committed entry (a lease or
    /// read-index read on the leader): the rejection is then what the engine would answer at
    /// that point of the log, at time `now`. It changes nothing and records nothing.
    pub fn early_bid_rejection(&self, now: Timestamp, request: &Request) -> Option<RejectCode> {
        let Action::PlaceBid {
            auction_id,
            amount,
            max,
        } = &request.action
        else {
            return None;
        };
        let now = now.max(self.last_timestamp);
        let key = RequestKey::of(request.actor.user, &request.request_id);
        let v2 = self.rules >= RulesVersion::V2;
        if !v2 && self.requests.contains_key(&key) {
            return None;
        }
        let auction = self.auctions.get(auction_id)?;
        if auction.requests.contains_key(&key)
            || auction.records.len() >= self.capacity.requests_per_auction_max
            || (v2
                && auction.user_records_at_least(
                    request.actor.user,
                    limits::REQUESTS_PER_USER_PER_AUCTION_MAX,
                ))
        {
            return None;
        }
        let max = check_bid_amounts(*amount, *max).ok()?;
        let suspended = self.suspended.contains(&request.actor.user);
        let bids_max = self.capacity.bids_per_auction_max;
        match auction.bid_amount(now, request.actor.user, suspended, bids_max, *amount, max) {
            Err(code @ (RejectCode::BidTooLow | RejectCode::MaxNotRaised)) => Some(code),
            _ => None,
        }
    }

    fn request(&mut self, now: Timestamp, log_index: u64, request: &Request) -> Outcome {
        let key = RequestKey::of(request.actor.user, &request.request_id);
        let fingerprint = Fingerprint::of(&request.action);
        let auction_id = request.action.auction_id();
        if crate::planted::active(crate::planted::Bug::SkipDedupe) {
            // Planted bug: run the request again, whatever its records say.
            let mut events = Vec::with_capacity(4);
            let reply = to_reply(self.execute(now, log_index, request, &mut events));
            return Outcome {
                reply,
                events,
                replayed: false,
            };
        }
        let v2 = self.rules >= RulesVersion::V2;
        // Rules 1: a key lives in at most one place, the group-level records (the request
        // named no existing auction when it was applied) or its auction's records, and both
        // are searched. Rules 2: a request id is scoped to the auction its request names, or
        // to the group when it names none, so only that scope is searched.
        if (!v2 || auction_id.is_none())
            && let Some(record) = self.requests.get(&key)
        {
            return record.answer_repeat(fingerprint);
        }
        let capacity = self.capacity;
        // Rules 2: bidders' records never block an admin. An admin's records are bounded by
        // what admins can do to an auction (a void per bid, one cancel), so by the bid bound.
        let bounded = !(v2 && request.actor.role == Role::Admin);
        let reserved = match auction_id.and_then(|id| self.auctions.get_mut(&id)) {
            Some(auction) if v2 => {
                if let Some(&position) = auction.requests.get(&key) {
                    return auction.records[position as usize].answer_repeat(fingerprint);
                }
                let records_max = if bounded {
                    capacity.requests_per_auction_max
                } else {
                    capacity
                        .requests_per_auction_max
                        .saturating_add(capacity.bids_per_auction_max)
                        .min(u32::MAX as usize)
                };
                let user_full = bounded
                    && auction.user_records_at_least(
                        request.actor.user,
                        limits::REQUESTS_PER_USER_PER_AUCTION_MAX,
                    );
                if auction.records.len() >= records_max || user_full {
                    return RequestRecord::limit_reached();
                }
                let position = u32::try_from(auction.records.len()).expect("bounded");
                auction.requests.insert(key, position);
                true
            }
            // Rules 1. Reserve the record's slot in the auction's index with a single
            // search: this was the hot path of every bid.
            Some(auction) => match auction.requests.entry(key) {
                Entry::Occupied(entry) => {
                    return auction.records[*entry.get() as usize].answer_repeat(fingerprint);
                }
                Entry::Vacant(entry) => {
                    if auction.records.len() >= capacity.requests_per_auction_max {
                        return RequestRecord::limit_reached();
                    }
                    entry.insert(u32::try_from(auction.records.len()).expect("bounded"));
                    true
                }
            },
            // Rules 2: a request naming an auction that does not exist leaves a record only if
            // it created it, and then in the auction: the group's bound does not apply.
            None if v2 && auction_id.is_some() => false,
            None if self.requests.len() >= capacity.group_requests_max => {
                return RequestRecord::limit_reached();
            }
            None => false,
        };
        let mut events = Vec::with_capacity(4);
        let reply = to_reply(self.execute(now, log_index, request, &mut events));
        if v2 && !reply.is_accepted() {
            // Rules 2: a rejection changed nothing, so it is not recorded: a retry is judged
            // again, and rejected requests (garbage bids, unknown auctions) fill no store.
            if reserved && let Some(auction) = auction_id.and_then(|id| self.auctions.get_mut(&id))
            {
                auction.requests.remove(&key);
            }
            return Outcome {
                reply,
                events,
                replayed: false,
            };
        }
        let record = RequestRecord {
            fingerprint,
            reply: reply.clone(),
        };
        // A create that succeeded has made the auction exist: its record goes there too.
        match auction_id.and_then(|id| self.auctions.get_mut(&id)) {
            Some(auction) => {
                if !reserved {
                    let position = u32::try_from(auction.records.len()).expect("bounded");
                    auction.requests.insert(key, position);
                }
                auction.records.push(record);
            }
            None => {
                self.requests_expiry
                    .insert((now.plus(limits::REQUEST_RETENTION), key));
                self.requests.insert(key, record);
            }
        }
        Outcome {
            reply,
            events,
            replayed: false,
        }
    }

    fn open_auction_mut(&mut self, auction_id: AuctionId) -> Rule<&mut Auction> {
        let auction = self
            .auctions
            .get_mut(&auction_id)
            .ok_or(RejectCode::AuctionNotFound)?;
        if auction.closed.is_some() {
            return Err(RejectCode::AuctionClosed);
        }
        Ok(auction)
    }

    /// Drops closed auctions and group-level idempotency records whose retention has run out.
    fn expire(&mut self, now: Timestamp) {
        while let Some(&(at, auction_id)) = self.closed_expiry.first() {
            if at > now {
                break;
            }
            self.closed_expiry.pop_first();
            let removed = self.auctions.remove(&auction_id);
            if self.rules >= RulesVersion::V2
                && let Some(auction) = removed
                && auction.spec.end > now
            {
                self.retired.insert(auction_id, auction.spec.end);
                self.retired_expiry.insert((auction.spec.end, auction_id));
            }
        }
        while let Some(&(until, auction_id)) = self.retired_expiry.first() {
            if until > now {
                break;
            }
            self.retired_expiry.pop_first();
            self.retired.remove(&auction_id);
        }
        while self
            .requests_expiry
            .first()
            .is_some_and(|(at, _)| *at <= now)
        {
            let (_, key) = self.requests_expiry.pop_first().expect("checked non-empty");
            self.requests.remove(&key);
        }
    }

    // ---- queries -------------------------------------------------------------------------

    /// The last applied log index and the cluster time it carried.
    pub fn last_applied(&self) -> (u64, Timestamp) {
        (self.last_log_index, self.last_timestamp)
    }

    pub fn auction(&self, auction_id: AuctionId) -> Option<&Auction> {
        self.auctions.get(&auction_id)
    }

    pub fn auctions(&self) -> impl Iterator<Item = &Auction> {
        self.auctions.values()
    }

    /// Auctions with an id greater than `after` (all of them for `None`), in id order.
    pub(crate) fn auctions_after(
        &self,
        after: Option<AuctionId>,
    ) -> impl Iterator<Item = &Auction> + '_ {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.auctions
            .range((lower, Bound::Unbounded))
            .map(|(_, auction)| auction)
    }

    /// The meta group's state (accounts, sessions, cluster facts); empty outside group 0.
    pub fn meta(&self) -> &MetaState {
        &self.meta
    }

    pub fn is_suspended(&self, user: UserId) -> bool {
        self.suspended.contains(&user)
    }

    /// Open auctions whose effective end is at or before `now`, earliest first: the ones the
    /// leader should propose `Close` for.
    pub fn due_for_close(&self, now: Timestamp) -> impl Iterator<Item = AuctionId> + '_ {
        self.open_by_end
            .iter()
            .take_while(move |(end, _)| *end <= now)
            .map(|(_, id)| *id)
    }

    /// The earliest effective end among open auctions, for the leader's close timer.
    pub fn next_end(&self) -> Option<(Timestamp, AuctionId)> {
        self.open_by_end.first().copied()
    }

    /// A digest of the whole state, for replicas to compare cheaply.
    pub fn digest(&self) -> StateDigest {
        StateDigest(crate::digest::of(self))
    }

    /// Checks every internal invariant. Cost is linear in the state; meant for tests, snapshot
    /// install and debugging, not the hot path.
    pub fn validate(&self) -> Result<(), InvariantViolation> {
        let fail = |message: String| Err(InvariantViolation(message));
        let mut open = BTreeSet::new();
        let mut closed = BTreeSet::new();
        for (id, auction) in &self.auctions {
            if *id != auction.id {
                return fail(format!("auction {id:?} stored under another id"));
            }
            auction.validate()?;
            match &auction.closed {
                None => open.insert((auction.end, *id)),
                Some(record) => closed.insert((record.at.plus(limits::CLOSED_RETENTION), *id)),
            };
        }
        if open != self.open_by_end {
            return fail("open-auction index does not match the auctions".into());
        }
        if closed != self.closed_expiry {
            return fail("closed-auction expiry index does not match the auctions".into());
        }
        let expiring: BTreeSet<&RequestKey> = self.requests_expiry.iter().map(|(_, k)| k).collect();
        if expiring.len() != self.requests.len()
            || !self.requests.keys().all(|k| expiring.contains(k))
        {
            return fail("request expiry index does not match the request records".into());
        }
        let retired: BTreeSet<(Timestamp, AuctionId)> = self
            .retired
            .iter()
            .map(|(id, until)| (*until, *id))
            .collect();
        if retired != self.retired_expiry {
            return fail("retired-id expiry index does not match the retired ids".into());
        }
        if self.retired.keys().any(|id| self.auctions.contains_key(id)) {
            return fail("a retired auction id is also a live auction".into());
        }
        self.meta.validate()?;
        Ok(())
    }

    /// Whether `auction_id` left this group before its listing's end and may not be created
    /// again until then (rules 2).
    pub fn is_retired(&self, auction_id: AuctionId) -> bool {
        self.retired.contains_key(&auction_id)
    }
}
