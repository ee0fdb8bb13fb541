//! What anyone may see of an auction: the state without the reserve amount and the proxy
//! maxima, which only the engine may know. Reads (`ReadAuction`, `martelo auction show`,
//! the gateway) send this, never [`crate::Auction`]. Listings (`ListAuctions`, `martelo
//! auction list`) send [`AuctionSummary`] pages from [`State::list_auctions`].

use serde::{Deserialize, Serialize};

use crate::outcome::Listing;
use crate::state::{Auction, Closed, State};
use crate::types::{Amount, AuctionId, Currency, Micros, Timestamp, Title, UserId};

/// The public view of one auction at one log position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionView {
    pub id: AuctionId,
    pub seller: UserId,
    pub listing: Listing,
    pub created_at: Timestamp,
    /// The effective end, soft-close extensions included.
    pub end: Timestamp,
    /// The sequence number of the auction's last event.
    pub seq: u64,
    pub price: Option<Amount>,
    pub leading_bidder: Option<UserId>,
    /// The smallest bid a non-leading bidder may place now.
    pub minimum_bid: Amount,
    pub reserve_met: bool,
    pub buy_now_price: Option<Amount>,
    /// Accepted bids in log order, without proxy maxima.
    pub bids: Vec<PublicBid>,
    pub closed: Option<Closed>,
}

/// An accepted bid as the public sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicBid {
    pub bidder: UserId,
    pub amount: Amount,
    pub at: Timestamp,
    pub log_index: u64,
    pub voided: bool,
}

impl Auction {
    /// The public view of this auction.
    pub fn view(&self) -> AuctionView {
        AuctionView {
            id: self.id(),
            seller: self.seller(),
            listing: Listing::from(self.spec()),
            created_at: self.created_at(),
            end: self.end(),
            seq: self.seq(),
            price: self.price(),
            leading_bidder: self.leader().map(|leader| leader.bidder),
            minimum_bid: self.minimum_bid(),
            reserve_met: self.reserve_met(),
            buy_now_price: self.buy_now_price(),
            bids: self
                .bids()
                .iter()
                .map(|bid| PublicBid {
                    bidder: bid.bidder,
                    amount: bid.amount,
                    at: bid.at,
                    log_index: bid.log_index,
                    voided: bid.voided,
                })
                .collect(),
            closed: self.closed().cloned(),
        }
    }
}

/// Where an auction stands at a point in cluster time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuctionPhase {
    /// Listed, but its start is still ahead: no bids yet.
    Scheduled,
    /// Taking bids.
    Open,
    /// Its effective end has passed but the leader's `Close` has not been applied yet: it
    /// takes no bids, and its result is not known.
    Ended,
    /// Sold, unsold or cancelled; see [`Closed`].
    Closed,
}

impl AuctionPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            AuctionPhase::Scheduled => "scheduled",
            AuctionPhase::Open => "open",
            AuctionPhase::Ended => "ended",
            AuctionPhase::Closed => "closed",
        }
    }

    /// The phase of an auction with this start, effective end and close record at `now`.
    /// The same rule as the engine's bid check: bids are taken in `[start, end)`.
    fn of(start: Timestamp, end: Timestamp, closed: bool, now: Timestamp) -> AuctionPhase {
        if closed {
            AuctionPhase::Closed
        } else if now < start {
            AuctionPhase::Scheduled
        } else if now < end {
            AuctionPhase::Open
        } else {
            AuctionPhase::Ended
        }
    }
}

/// One auction in a listing: what a list shows, without the description, the increment
/// policy or the bid history, so that a page stays small whatever the auctions hold. The
/// full public state is [`AuctionView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionSummary {
    pub id: AuctionId,
    pub seller: UserId,
    pub title: Title,
    pub currency: Currency,
    pub created_at: Timestamp,
    pub start: Timestamp,
    /// The effective end, soft-close extensions included.
    pub end: Timestamp,
    /// The sequence number of the auction's last event.
    pub seq: u64,
    pub price: Option<Amount>,
    pub leading_bidder: Option<UserId>,
    /// The smallest bid a non-leading bidder may place now.
    pub minimum_bid: Amount,
    /// Accepted bids, voided ones included (as in [`AuctionView::bids`]).
    pub bid_count: u32,
    pub has_reserve: bool,
    pub reserve_met: bool,
    pub buy_now_price: Option<Amount>,
    pub closed: Option<Closed>,
}

impl AuctionSummary {
    /// Where the auction stands at `now`.
    pub fn phase(&self, now: Timestamp) -> AuctionPhase {
        AuctionPhase::of(self.start, self.end, self.closed.is_some(), now)
    }
}

/// Which auctions a listing keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuctionFilter {
    All,
    /// Not closed: scheduled, open, or ended and waiting for the close.
    Open,
    /// Not closed, with an effective end at or before `now + within`. Auctions already past
    /// their end but not yet closed are included: they are the ones closing next.
    ClosingSoon {
        within: Micros,
    },
    /// Sold, unsold or cancelled, and still held (closed auctions leave the state
    /// `CLOSED_RETENTION` after their close).
    Closed,
}

impl AuctionFilter {
    fn keeps(self, auction: &Auction, now: Timestamp) -> bool {
        let closed = auction.closed().is_some();
        match self {
            AuctionFilter::All => true,
            AuctionFilter::Open => !closed,
            AuctionFilter::ClosingSoon { within } => !closed && auction.end() <= now.plus(within),
            AuctionFilter::Closed => closed,
        }
    }
}

/// A request for one page of a group's auctions, in auction id order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuctionQuery {
    pub filter: AuctionFilter,
    /// List auctions with a greater id (exclusive cursor); `None` starts at the first.
    pub after: Option<AuctionId>,
    /// Most auctions in the page. At least 1.
    pub limit: usize,
    /// Most auctions examined, matching or not: bounds the work of one page when the filter
    /// keeps few auctions. At least 1.
    pub scan_max: usize,
    /// The time the filter is judged at. Clamped to the last applied entry's timestamp, as
    /// every engine decision is, so a reader's clock never puts the group in the past.
    pub now: Timestamp,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuctionPage {
    /// The kept auctions, in ascending id order; at most `limit`. A filtered page may be
    /// short, or empty, and still have a next page.
    pub auctions: Vec<AuctionSummary>,
    /// The cursor of the next page (pass it as `after`): the last auction examined. `None`
    /// when no auction follows it, so this is the last page.
    pub next_after: Option<AuctionId>,
    /// The time the filter was judged at (`now` after clamping).
    pub now: Timestamp,
}

impl Auction {
    /// Where this auction stands at `now`.
    pub fn phase(&self, now: Timestamp) -> AuctionPhase {
        AuctionPhase::of(self.spec().start, self.end(), self.closed().is_some(), now)
    }

    /// This auction's line in a listing.
    pub fn summary(&self) -> AuctionSummary {
        let spec = self.spec();
        AuctionSummary {
            id: self.id(),
            seller: self.seller(),
            title: spec.title.clone(),
            currency: spec.currency,
            created_at: self.created_at(),
            start: spec.start,
            end: self.end(),
            seq: self.seq(),
            price: self.price(),
            leading_bidder: self.leader().map(|leader| leader.bidder),
            minimum_bid: self.minimum_bid(),
            bid_count: u32::try_from(self.bids().len()).expect("bid ids are u32"),
            has_reserve: spec.reserve_price.is_some(),
            reserve_met: self.reserve_met(),
            buy_now_price: self.buy_now_price(),
            closed: self.closed().cloned(),
        }
    }
}

impl State {
    /// One page of this group's auctions in id order, from `query.after` (exclusive), with
    /// `query.filter` judged at `query.now`. Examines at most `query.scan_max` auctions and
    /// returns at most `query.limit`, so the work of a page is bounded however many auctions
    /// the group holds or the filter skips. Reads only: the same state and query give the
    /// same page on every replica.
    ///
    /// # Panics
    /// If `query.limit` or `query.scan_max` is 0: such a page could never move the cursor.
    pub fn list_auctions(&self, query: &AuctionQuery) -> AuctionPage {
        assert!(
            query.limit >= 1 && query.scan_max >= 1,
            "a listing page needs a positive limit and scan bound: {query:?}"
        );
        let now = query.now.max(self.last_applied().1);
        let mut candidates = self.auctions_after(query.after).peekable();
        let mut auctions = Vec::new();
        let mut last_examined = None;
        for _ in 0..query.scan_max {
            let Some(auction) = candidates.next() else {
                break;
            };
            last_examined = Some(auction.id());
            if query.filter.keeps(auction, now) {
                auctions.push(auction.summary());
                if auctions.len() == query.limit {
                    break;
                }
            }
        }
        let next_after = last_examined.filter(|_| candidates.peek().is_some());
        debug_assert!(auctions.len() <= query.limit);
        debug_assert!(auctions.windows(2).all(|pair| pair[0].id < pair[1].id));
        AuctionPage {
            auctions,
            next_after,
            now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Action, Actor, ApplyCtx, Command, Request, Role};
    use crate::spec::{AuctionSpec, IncrementPolicy};
    use crate::types::{Description, RequestId};

    const SELLER: Actor = Actor {
        user: UserId(1),
        role: Role::Seller,
    };
    const BIDDER: Actor = Actor {
        user: UserId(10),
        role: Role::Bidder,
    };

    /// Seconds after the harness's epoch.
    fn at(seconds: u64) -> Timestamp {
        Timestamp(1_000_000_000_000 + seconds * 1_000_000)
    }

    /// A group's state, fed commands with increasing log indices.
    struct Group {
        state: State,
        log_index: u64,
    }

    impl Group {
        fn new() -> Group {
            Group {
                state: State::new(),
                log_index: 0,
            }
        }

        fn apply(&mut self, seconds: u64, command: Command) {
            self.log_index += 1;
            let ctx = ApplyCtx {
                log_index: self.log_index,
                timestamp: at(seconds),
            };
            let outcome = self.state.apply(ctx, &command);
            assert!(
                outcome.reply.is_accepted(),
                "{command:?}: {:?}",
                outcome.reply
            );
        }

        fn act(&mut self, seconds: u64, actor: Actor, action: Action) {
            let request_id = RequestId::try_from(format!("r{}", self.log_index + 1)).unwrap();
            let request = Request {
                actor,
                request_id,
                action,
            };
            self.apply(seconds, Command::Request(request));
        }

        /// Creates auction `id` at time 0, open from `start` to `end` (seconds).
        fn create(&mut self, id: u64, start: u64, end: u64) {
            let spec = AuctionSpec {
                title: Title::try_from(format!("Lot {id}")).unwrap(),
                description: Description::try_from("a long description").unwrap(),
                currency: Currency::try_from("EUR").unwrap(),
                starting_price: Amount(100),
                reserve_price: Some(Amount(150)),
                buy_now_price: None,
                increment: IncrementPolicy::Fixed(Amount(10)),
                start: at(start),
                end: at(end),
                soft_close: None,
            };
            let auction_id = AuctionId(id);
            self.act(0, SELLER, Action::CreateAuction { auction_id, spec });
        }

        fn cancel(&mut self, seconds: u64, id: u64) {
            let action = Action::CancelAuction {
                auction_id: AuctionId(id),
                reason: None,
            };
            self.act(seconds, SELLER, action);
        }

        fn list(&self, filter: AuctionFilter, after: Option<u64>, limit: usize) -> AuctionPage {
            self.list_at(0, filter, after, limit, usize::MAX)
        }

        fn list_at(
            &self,
            seconds: u64,
            filter: AuctionFilter,
            after: Option<u64>,
            limit: usize,
            scan_max: usize,
        ) -> AuctionPage {
            self.state.list_auctions(&AuctionQuery {
                filter,
                after: after.map(AuctionId),
                limit,
                scan_max,
                now: at(seconds),
            })
        }

        /// Every page of a listing, following the cursor from the start.
        fn pages(&self, filter: AuctionFilter, limit: usize, scan_max: usize) -> Vec<Vec<u64>> {
            let mut pages = Vec::new();
            let mut after = None;
            loop {
                let page = self.list_at(0, filter, after, limit, scan_max);
                pages.push(page.auctions.iter().map(|auction| auction.id.0).collect());
                match page.next_after {
                    Some(next) => {
                        assert!(after.is_none_or(|after| next.0 > after), "cursor moves on");
                        after = Some(next.0);
                    }
                    None => return pages,
                }
            }
        }
    }

    fn ids(page: &AuctionPage) -> Vec<u64> {
        page.auctions.iter().map(|auction| auction.id.0).collect()
    }

    /// Seven auctions with scattered ids, all open from time 0 to time 1000.
    fn seven() -> Group {
        let mut group = Group::new();
        for id in [40, 3, 17, 0, 9, 1_000_000, 25] {
            group.create(id, 0, 1_000);
        }
        group
    }

    #[test]
    fn pages_of_three_visit_every_auction_once_in_id_order() {
        let group = seven();
        assert_eq!(
            group.pages(AuctionFilter::All, 3, usize::MAX),
            vec![vec![0, 3, 9], vec![17, 25, 40], vec![1_000_000]]
        );
    }

    #[test]
    fn the_cursor_is_exclusive_and_a_page_ending_on_the_last_auction_is_the_last_page() {
        let group = seven();
        let page = group.list(AuctionFilter::All, Some(17), 2);
        assert_eq!(
            (ids(&page), page.next_after),
            (vec![25, 40], Some(AuctionId(40)))
        );
        // The cursor need not name an auction that exists.
        let page = group.list(AuctionFilter::All, Some(26), 10);
        assert_eq!((ids(&page), page.next_after), (vec![40, 1_000_000], None));
        let page = group.list(AuctionFilter::All, Some(40), 1);
        assert_eq!((ids(&page), page.next_after), (vec![1_000_000], None));
        let page = group.list(AuctionFilter::All, Some(1_000_000), 5);
        assert_eq!((ids(&page), page.next_after), (vec![], None));
        let page = Group::new().list(AuctionFilter::All, None, 5);
        assert_eq!((ids(&page), page.next_after), (vec![], None));
    }

    #[test]
    fn filters_tell_open_closing_soon_and_closed_auctions_apart() {
        let mut group = Group::new();
        group.create(1, 0, 100); // ends at 100: ended by 150, closed below
        group.create(2, 0, 200); // closes soon after 150
        group.create(3, 0, 5_000); // open for long
        group.create(4, 300, 400); // scheduled, but ends soon enough
        group.create(5, 0, 5_000); // cancelled below
        group.create(6, 0, 120); // ended at 150, not closed yet
        group.cancel(10, 5);
        group.apply(
            110,
            Command::Close {
                auction_id: AuctionId(1),
            },
        );
        let now = 150;
        let list = |filter| ids(&group.list_at(now, filter, None, 10, usize::MAX));
        assert_eq!(list(AuctionFilter::All), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(list(AuctionFilter::Open), vec![2, 3, 4, 6]);
        assert_eq!(list(AuctionFilter::Closed), vec![1, 5]);
        let within = |seconds| AuctionFilter::ClosingSoon {
            within: Micros::from_secs(seconds),
        };
        assert_eq!(list(within(60)), vec![2, 6]);
        assert_eq!(list(within(250)), vec![2, 4, 6]);
        let page = group.list_at(now, AuctionFilter::All, None, 10, usize::MAX);
        let phases: Vec<AuctionPhase> = page
            .auctions
            .iter()
            .map(|auction| auction.phase(page.now))
            .collect();
        use AuctionPhase::{Closed as Done, Ended, Open, Scheduled};
        assert_eq!(phases, vec![Done, Open, Open, Scheduled, Done, Ended]);
    }

    #[test]
    fn the_scan_bound_limits_the_work_of_a_page_and_paging_still_finds_every_match() {
        let mut group = Group::new();
        for id in 1..=20 {
            group.create(id, 0, 1_000);
        }
        for id in [2, 3, 11, 20] {
            group.cancel(10, id);
        }
        let page = group.list_at(0, AuctionFilter::Closed, Some(3), 10, 4);
        assert_eq!((ids(&page), page.next_after), (vec![], Some(AuctionId(7))));
        let pages = group.pages(AuctionFilter::Closed, 10, 4);
        assert_eq!(
            pages,
            vec![vec![2, 3], vec![], vec![11], vec![], vec![20]],
            "five pages of at most four auctions examined"
        );
        // A page that fills up stops examining at once.
        let page = group.list_at(0, AuctionFilter::Closed, None, 1, 100);
        assert_eq!((ids(&page), page.next_after), (vec![2], Some(AuctionId(2))));
    }

    #[test]
    fn the_filter_is_judged_no_earlier_than_the_last_applied_entry() {
        let mut group = Group::new();
        group.create(1, 0, 100);
        group.create(2, 0, 500);
        // An entry at time 90: a reader whose clock says 0 still sees time 90.
        group.cancel(90, 2);
        let soon = AuctionFilter::ClosingSoon {
            within: Micros::from_secs(20),
        };
        let page = group.list_at(0, soon, None, 10, usize::MAX);
        assert_eq!((ids(&page), page.now), (vec![1], at(90)));
        let page = group.list_at(95, soon, None, 10, usize::MAX);
        assert_eq!(page.now, at(95));
    }

    #[test]
    fn a_summary_agrees_with_the_public_view_and_leaves_out_the_heavy_parts() {
        let mut group = Group::new();
        group.create(7, 0, 1_000);
        for (seconds, amount) in [(1, 100), (2, 160)] {
            let action = Action::PlaceBid {
                auction_id: AuctionId(7),
                amount: Amount(amount),
                max: None,
            };
            group.act(seconds, BIDDER, action);
        }
        let auction = group.state.auction(AuctionId(7)).unwrap();
        let (summary, view) = (auction.summary(), auction.view());
        assert_eq!(summary.id, view.id);
        assert_eq!(summary.title, view.listing.title);
        assert_eq!((summary.start, summary.end), (view.listing.start, view.end));
        assert_eq!((summary.seq, summary.price), (view.seq, view.price));
        assert_eq!(summary.leading_bidder, view.leading_bidder);
        assert_eq!(summary.minimum_bid, view.minimum_bid);
        assert_eq!(summary.bid_count as usize, view.bids.len());
        assert_eq!((summary.has_reserve, summary.reserve_met), (true, true));
        assert_eq!(summary.closed, view.closed);
        let summary_bytes = crate::codec::encode("summary", &summary).unwrap().len();
        let view_bytes = crate::codec::encode("view", &view).unwrap().len();
        assert!(
            summary_bytes < view_bytes,
            "{summary_bytes} >= {view_bytes}"
        );
    }

    #[test]
    #[should_panic(expected = "positive limit")]
    fn a_page_of_zero_auctions_is_a_caller_bug() {
        seven().list(AuctionFilter::All, None, 0);
    }
}
