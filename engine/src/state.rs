//! The state of one Raft group's auctions and the rules that change it.
//!
//! ```text
//!   apply(ctx, command)
//!     │  assert log index increases; now = max(ctx.timestamp, last timestamp)
//!     ├─ expire: drop closed auctions and idempotency records whose retention ran out
//!     ├─ Close ───────────────► close_auction      (no idempotency: the leader may repeat it)
//!     └─ Request ─► dedupe by (user, request id)
//!                     ├─ seen, same payload ──► stored reply, replayed = true, no events
//!                     ├─ seen, other payload ─► request_id_reused (not recorded)
//!                     └─ new ─► execute ─► record the reply ─► reply + events
//! ```

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
        if self.requests.contains_key(&key) {
            return None;
        }
        let auction = self.auctions.get(auction_id)?;
        if auction.requests.contains_key(&key)
            || auction.records.len() >= self.capacity.requests_per_auction_max
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
        // A key lives in at most one place: the group-level records (the request named no
        // existing auction when it was applied) or its auction's records.
        if let Some(record) = self.requests.get(&key) {
            return record.answer_repeat(fingerprint);
        }
        // Reserve the record's slot in the auction's index with a single search: this is the
        // hot path of every bid. Executing never touches an auction's records.
        let capacity = self.capacity;
        let reserved = match auction_id.and_then(|id| self.auctions.get_mut(&id)) {
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
            None if self.requests.len() >= capacity.group_requests_max => {
                return RequestRecord::limit_reached();
            }
            None => false,
        };
        let mut events = Vec::with_capacity(4);
        let reply = to_reply(self.execute(now, log_index, request, &mut events));
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

    fn execute(
        &mut self,
        now: Timestamp,
        log_index: u64,
        request: &Request,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let actor = request.actor;
        match &request.action {
            Action::CreateAuction { auction_id, spec } => {
                self.create_auction(now, actor, *auction_id, spec, events)
            }
            Action::EditAuction { auction_id, spec } => {
                self.edit_auction(now, actor, *auction_id, spec, events)
            }
            Action::CancelAuction { auction_id, reason } => {
                self.cancel_auction(now, actor, *auction_id, reason.as_ref(), events)
            }
            Action::PlaceBid {
                auction_id,
                amount,
                max,
            } => {
                let bid = BidRequest {
                    amount: *amount,
                    max: *max,
                    log_index,
                };
                self.place_bid(now, actor, *auction_id, bid, events)
            }
            Action::BuyNow { auction_id } => self.buy_now(now, actor, *auction_id, events),
            Action::VoidBid {
                auction_id,
                bid_id,
                reason,
            } => self.void_bid(now, actor, *auction_id, *bid_id, reason, events),
            Action::SuspendBidder { user, reason } => {
                require_role(actor, Role::Admin)?;
                if !self.suspended.insert(*user) {
                    return Err(RejectCode::BidderAlreadySuspended);
                }
                events.push(Event::BidderSuspended {
                    user: *user,
                    reason: reason.clone(),
                    at: now,
                });
                Ok(Accepted::BidderSuspended { user: *user })
            }
            Action::ReinstateBidder { user } => {
                require_role(actor, Role::Admin)?;
                if !self.suspended.remove(user) {
                    return Err(RejectCode::BidderNotSuspended);
                }
                events.push(Event::BidderReinstated {
                    user: *user,
                    at: now,
                });
                Ok(Accepted::BidderReinstated { user: *user })
            }
        }
    }

    fn create_auction(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        spec: &AuctionSpec,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        require_role(actor, Role::Seller)?;
        spec.check(now)?;
        if self.auctions.contains_key(&auction_id) {
            return Err(RejectCode::AuctionExists);
        }
        if self.auctions.len() >= self.capacity.auctions_max {
            return Err(RejectCode::AuctionLimitReached);
        }
        let mut auction = Auction {
            id: auction_id,
            seller: actor.user,
            spec: spec.clone(),
            created_at: now,
            end: spec.end,
            seq: 0,
            price: None,
            leader: None,
            bids: Vec::new(),
            closed: None,
            requests: BTreeMap::new(),
            records: Vec::new(),
        };
        let listing = Box::new(Listing::from(spec));
        auction.emit(
            now,
            AuctionEventKind::Created {
                seller: actor.user,
                listing,
            },
            events,
        );
        let seq = auction.seq;
        self.open_by_end.insert((auction.end, auction_id));
        self.auctions.insert(auction_id, auction);
        Ok(Accepted::AuctionCreated { auction_id, seq })
    }

    fn edit_auction(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        spec: &AuctionSpec,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        spec.check(now)?;
        let auction = self.open_auction_mut(auction_id)?;
        if auction.seller != actor.user {
            return Err(RejectCode::NotSeller);
        }
        if !auction.bids.is_empty() {
            return Err(RejectCode::HasBids);
        }
        let old_end = auction.end;
        auction.spec = spec.clone();
        auction.end = spec.end;
        auction.emit(
            now,
            AuctionEventKind::Edited {
                listing: Box::new(Listing::from(spec)),
            },
            events,
        );
        let seq = auction.seq;
        self.open_by_end.remove(&(old_end, auction_id));
        self.open_by_end.insert((spec.end, auction_id));
        Ok(Accepted::AuctionEdited { auction_id, seq })
    }

    fn cancel_auction(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        reason: Option<&Reason>,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let auction = self.open_auction_mut(auction_id)?;
        let seller_may = auction.seller == actor.user && auction.bids.is_empty();
        if !seller_may {
            if actor.role == Role::Admin {
                if reason.is_none() {
                    return Err(RejectCode::ReasonRequired);
                }
            } else if auction.seller != actor.user {
                return Err(RejectCode::NotSeller);
            } else {
                return Err(RejectCode::HasBids);
            }
        }
        let result = AuctionResult::Cancelled {
            by: actor.user,
            reason: reason.cloned(),
        };
        let seq = self.finish(now, auction_id, result, events);
        Ok(Accepted::AuctionCancelled { auction_id, seq })
    }

    fn place_bid(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        bid: BidRequest,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let max = check_bid_amounts(bid.amount, bid.max)?;
        let suspended = self.suspended.contains(&actor.user);
        let bids_max = self.capacity.bids_per_auction_max;
        let auction = self
            .auctions
            .get_mut(&auction_id)
            .ok_or(RejectCode::AuctionNotFound)?;
        let amount = auction.bid_amount(now, actor.user, suspended, bids_max, bid.amount, max)?;
        let bid_id = BidId(u32::try_from(auction.bids.len()).expect("bids are bounded"));
        let placed = Bid {
            bidder: actor.user,
            amount,
            max,
            at: now,
            log_index: bid.log_index,
            voided: false,
        };
        auction.bids.push(placed);
        let before = (auction.price, auction.leader.map(|leader| leader.bidder));
        let kind = AuctionEventKind::BidAccepted {
            bid_id,
            bidder: actor.user,
            amount,
        };
        auction.emit(now, kind, events);
        let change = fold_bid(
            &auction.spec,
            &mut auction.leader,
            &mut auction.price,
            &placed,
        );
        if let Some((bidder, by)) = change.outbid {
            auction.emit(now, AuctionEventKind::Outbid { bidder, by }, events);
        }
        let after = (auction.price, auction.leader.map(|leader| leader.bidder));
        let old_end = auction.end;
        if before != after {
            auction.emit_price(now, events);
            auction.soft_close(now, events);
        }
        let (new_end, price) = (auction.end, auction.price.expect("a bid was folded in"));
        let accepted = Accepted::Bid {
            auction_id,
            bid_id,
            seq: auction.seq,
            price,
            leading: auction
                .leader
                .is_some_and(|leader| leader.bidder == actor.user),
            reserve_met: auction.reserve_met(),
            end: new_end,
        };
        if new_end != old_end {
            self.open_by_end.remove(&(old_end, auction_id));
            self.open_by_end.insert((new_end, auction_id));
        }
        Ok(accepted)
    }

    fn buy_now(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let suspended = self.suspended.contains(&actor.user);
        let auction = self.open_auction_mut(auction_id)?;
        auction.check_may_buy_or_bid(now, actor.user, suspended)?;
        let price = auction
            .buy_now_price()
            .ok_or(RejectCode::BuyNowUnavailable)?;
        let result = AuctionResult::Sold {
            winner: actor.user,
            price,
            via: SaleKind::BuyNow,
        };
        let seq = self.finish(now, auction_id, result, events);
        Ok(Accepted::BoughtNow {
            auction_id,
            seq,
            price,
        })
    }

    fn void_bid(
        &mut self,
        now: Timestamp,
        actor: Actor,
        auction_id: AuctionId,
        bid_id: BidId,
        reason: &Reason,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        require_role(actor, Role::Admin)?;
        let auction = self.open_auction_mut(auction_id)?;
        let bid = auction
            .bids
            .get_mut(bid_id.0 as usize)
            .ok_or(RejectCode::BidNotFound)?;
        if bid.voided {
            return Err(RejectCode::BidAlreadyVoided);
        }
        bid.voided = true;
        let before = (auction.price, auction.leader);
        (auction.leader, auction.price) = auction.recompute();
        let kind = AuctionEventKind::BidVoided {
            bid_id,
            reason: reason.clone(),
        };
        auction.emit(now, kind, events);
        if before != (auction.price, auction.leader) {
            auction.emit_price(now, events);
        }
        Ok(Accepted::BidVoided {
            auction_id,
            seq: auction.seq,
        })
    }

    fn close_when_ended(
        &mut self,
        now: Timestamp,
        auction_id: AuctionId,
        events: &mut Vec<Event>,
    ) -> Rule<Accepted> {
        let auction = self.open_auction_mut(auction_id)?;
        if now < auction.end {
            return Err(RejectCode::AuctionNotEnded);
        }
        let result = match auction.leader {
            None => AuctionResult::Unsold {
                reason: UnsoldReason::NoBids,
            },
            Some(_) if !auction.reserve_met() => AuctionResult::Unsold {
                reason: UnsoldReason::ReserveNotMet,
            },
            Some(leader) => AuctionResult::Sold {
                winner: leader.bidder,
                price: auction.price.expect("a leader implies a price"),
                via: SaleKind::Bidding,
            },
        };
        let seq = self.finish(now, auction_id, result.clone(), events);
        Ok(Accepted::Closed {
            auction_id,
            seq,
            result,
        })
    }

    /// Records the auction's one result and schedules its removal from the state.
    fn finish(
        &mut self,
        now: Timestamp,
        auction_id: AuctionId,
        result: AuctionResult,
        events: &mut Vec<Event>,
    ) -> u64 {
        let auction = self
            .auctions
            .get_mut(&auction_id)
            .expect("caller found the auction");
        assert!(
            auction.closed.is_none(),
            "auction {auction_id:?} closed twice"
        );
        auction.closed = Some(Closed {
            result: result.clone(),
            at: now,
        });
        auction.emit(now, AuctionEventKind::Closed { result }, events);
        self.open_by_end.remove(&(auction.end, auction_id));
        self.closed_expiry
            .insert((now.plus(limits::CLOSED_RETENTION), auction_id));
        auction.seq
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
            self.auctions.remove(&auction_id);
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
        self.meta.validate()?;
        Ok(())
    }
}

impl Auction {
    pub fn id(&self) -> AuctionId {
        self.id
    }

    pub fn seller(&self) -> UserId {
        self.seller
    }

    /// The full spec, including the secret reserve: for the seller and admins only.
    pub fn spec(&self) -> &AuctionSpec {
        &self.spec
    }

    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// The effective end, soft-close extensions included.
    pub fn end(&self) -> Timestamp {
        self.end
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn price(&self) -> Option<Amount> {
        self.price
    }

    /// The leader and their secret maximum: for admins and audit only.
    pub fn leader(&self) -> Option<Leader> {
        self.leader
    }

    pub fn bids(&self) -> &[Bid] {
        &self.bids
    }

    pub fn closed(&self) -> Option<&Closed> {
        self.closed.as_ref()
    }

    /// The smallest bid a non-leading bidder may place now.
    pub fn minimum_bid(&self) -> Amount {
        match self.price {
            None => self.spec.starting_price,
            Some(price) => plus_increment(&self.spec, price),
        }
    }

    /// Public: whether the current price meets the reserve (true when there is none but a
    /// leader exists).
    pub fn reserve_met(&self) -> bool {
        match self.price {
            None => false,
            Some(price) => self
                .spec
                .reserve_price
                .is_none_or(|reserve| price >= reserve),
        }
    }

    /// The buy-it-now price while it can still be used. Following eBay, it disappears with
    /// the first bid, unless the reserve is still unmet; it comes back if every bid is voided.
    pub fn buy_now_price(&self) -> Option<Amount> {
        let price = self.spec.buy_now_price?;
        let available = self.leader.is_none() || !self.reserve_met();
        (available && self.price.is_none_or(|current| current < price)).then_some(price)
    }

    /// Every check of a bid that reads the auction, in the engine's order: open, may bid,
    /// room for another bid, then the price rule. Returns the amount the bid history records
    /// (a leader raising their maximum is committed to the current price).
    fn bid_amount(
        &self,
        now: Timestamp,
        user: UserId,
        suspended: bool,
        bids_max: usize,
        amount: Amount,
        max: Amount,
    ) -> Rule<Amount> {
        if crate::planted::active(crate::planted::Bug::BidAfterClose) {
            // Planted bug: closed and ended auctions take bids.
            if self.seller == user {
                return Err(RejectCode::OwnAuction);
            }
        } else {
            if self.closed.is_some() {
                return Err(RejectCode::AuctionClosed);
            }
            self.check_may_buy_or_bid(now, user, suspended)?;
        }
        if self.bids.len() >= bids_max {
            return Err(RejectCode::BidLimitReached);
        }
        match (self.leader, self.price) {
            (Some(leader), Some(price)) if leader.bidder == user => {
                if max <= leader.max {
                    return Err(RejectCode::MaxNotRaised);
                }
                // The leader only raises their maximum; what they are committed to is the
                // current price, and that is what the bid history records, so a later
                // recomputation (after a void) never sees an amount below a valid bid.
                Ok(price)
            }
            _ if amount < self.minimum_bid() => Err(RejectCode::BidTooLow),
            _ => Ok(amount),
        }
    }

    fn check_may_buy_or_bid(&self, now: Timestamp, user: UserId, suspended: bool) -> Rule<()> {
        if self.seller == user {
            return Err(RejectCode::OwnAuction);
        }
        if suspended {
            return Err(RejectCode::BidderSuspended);
        }
        if now < self.spec.start || now >= self.end {
            return Err(RejectCode::AuctionNotOpen);
        }
        Ok(())
    }

    fn emit(&mut self, at: Timestamp, kind: AuctionEventKind, events: &mut Vec<Event>) {
        self.seq += 1;
        let event = AuctionEvent {
            auction_id: self.id,
            seq: self.seq,
            at,
            kind,
        };
        events.push(Event::Auction(event));
    }

    fn emit_price(&mut self, at: Timestamp, events: &mut Vec<Event>) {
        let kind = match (self.price, self.leader) {
            (Some(price), Some(leader)) => AuctionEventKind::PriceChanged {
                price,
                leader: leader.bidder,
                reserve_met: self.reserve_met(),
            },
            _ => AuctionEventKind::PriceCleared,
        };
        self.emit(at, kind, events);
    }

    /// Extends the end if a price-changing bid at `now` fell in the soft-close window.
    fn soft_close(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        let Some(policy) = self.spec.soft_close else {
            return;
        };
        if self.end.since(now) > policy.window {
            return;
        }
        let proposed = match policy.mode {
            SoftCloseMode::AddToEnd(span) => self.end.plus(span),
            SoftCloseMode::ResetRemaining(span) => now.plus(span),
        };
        let capped = proposed.min(self.spec.end.plus(policy.total_cap()));
        if capped > self.end {
            self.end = capped;
            self.emit(now, AuctionEventKind::EndExtended { end: capped }, events);
        }
    }

    /// Leader and price from the non-voided bids, folded in log order.
    fn recompute(&self) -> (Option<Leader>, Option<Amount>) {
        let (mut leader, mut price) = (None, None);
        for bid in self.bids.iter().filter(|bid| !bid.voided) {
            fold_bid(&self.spec, &mut leader, &mut price, bid);
        }
        (leader, price)
    }

    fn validate(&self) -> Result<(), InvariantViolation> {
        let fail = |what: &str| Err(InvariantViolation(format!("auction {:?}: {what}", self.id)));
        if self.price.is_some() != self.leader.is_some() {
            return fail("price and leader disagree");
        }
        if let (Some(price), Some(leader)) = (self.price, self.leader)
            && (price > leader.max || price < self.spec.starting_price)
        {
            return fail("price outside [starting price, leader's maximum]");
        }
        if self.end < self.spec.end || self.end > self.spec.latest_end() {
            return fail("effective end outside the soft-close bounds");
        }
        if self.seq == 0 {
            return fail("no creation event");
        }
        if self.recompute() != (self.leader, self.price) {
            return fail("leader and price differ from the folded bid history");
        }
        if self
            .bids
            .windows(2)
            .any(|pair| pair[0].log_index >= pair[1].log_index)
        {
            return fail("bids out of log order");
        }
        let mut positions: Vec<u32> = self.requests.values().copied().collect();
        positions.sort_unstable();
        if !positions.iter().copied().eq(0..self.records.len() as u32) {
            return fail("request index does not cover the records exactly once");
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct BidRequest {
    amount: Amount,
    max: Option<Amount>,
    log_index: u64,
}

struct FoldChange {
    /// `(bidder who lost the lead or was immediately outbid, bidder who leads)`.
    outbid: Option<(UserId, UserId)>,
}

/// eBay proxy bidding, one accepted bid at a time.
///
/// Only the leader's maximum matters: every other bidder's maximum is at most the current
/// price (a losing bid sets the price to at least its own maximum). So a new bid competes with
/// the leader alone:
/// - no leader: the bidder leads at their amount;
/// - the leader again: their maximum rises, the price stays;
/// - a higher maximum: the newcomer leads at the old maximum plus one increment, capped at
///   their own maximum, and at least their amount;
/// - an equal or lower maximum: the leader stays (earlier in log order wins ties) at the
///   newcomer's maximum plus one increment, capped at the leader's maximum.
///
/// Then, if the leader's maximum meets the reserve, the price rises to at least the reserve.
fn fold_bid(
    spec: &AuctionSpec,
    leader: &mut Option<Leader>,
    price: &mut Option<Amount>,
    bid: &Bid,
) -> FoldChange {
    let mut outbid = None;
    match leader {
        None => {
            *leader = Some(Leader {
                bidder: bid.bidder,
                max: bid.max,
            });
            *price = Some(bid.amount);
        }
        Some(current) if current.bidder == bid.bidder => {
            current.max = current.max.max(bid.max);
        }
        Some(current) if bid.max > current.max => {
            let challenge = plus_increment(spec, current.max).min(bid.max);
            *price = Some(challenge.max(bid.amount));
            outbid = Some((current.bidder, bid.bidder));
            *current = Leader {
                bidder: bid.bidder,
                max: bid.max,
            };
        }
        Some(current) => {
            let challenge = plus_increment(spec, bid.max).min(current.max);
            *price = Some(challenge.max(price.unwrap_or(challenge)));
            outbid = Some((bid.bidder, current.bidder));
        }
    }
    if let (Some(reserve), Some(current), Some(visible)) = (spec.reserve_price, *leader, *price)
        && current.max >= reserve
        && visible < reserve
    {
        *price = Some(reserve);
    }
    FoldChange { outbid }
}

fn plus_increment(spec: &AuctionSpec, price: Amount) -> Amount {
    let increment = spec.increment.increment_at(price);
    // Both terms are at most AMOUNT_MAX, whose double fits in u64 (see limits.rs).
    price
        .checked_add(increment)
        .expect("bounded amounts cannot overflow")
}

fn require_role(actor: Actor, role: Role) -> Rule<()> {
    if actor.role >= role {
        Ok(())
    } else {
        Err(RejectCode::PermissionDenied)
    }
}

/// The amount checks that need no state; returns the bid's maximum (`amount` without one).
fn check_bid_amounts(amount: Amount, max: Option<Amount>) -> Rule<Amount> {
    let max = max.unwrap_or(amount);
    if !amount.in_range() || !max.in_range() {
        return Err(RejectCode::AmountOutOfRange);
    }
    if max < amount {
        return Err(RejectCode::MaxBelowAmount);
    }
    Ok(max)
}

fn to_reply(rule: Rule<Accepted>) -> Reply {
    match rule {
        Ok(accepted) => Reply::Accepted(accepted),
        Err(code) => Reply::Rejected(code),
    }
}
