//! Listing auctions across the cluster, the pure parts: filters, the cross-group cursor,
//! decoding a group's page and where the listing goes next. [`crate::Client::list_auctions`]
//! carries it out.
//!
//! ```text
//!   cursor (group, after) ──ListAuctions(group, after, limit - listed)──► group's page
//!        ▲                                                                   │
//!        └──── advance: same group after `next_after`, or the next group ◄───┘
//! ```
//!
//! Each group lists its own auctions in id order (`ListAuctions`); the cluster-wide order
//! is by group, then by id. A cursor names the group being listed and the last auction
//! examined in it, so it stays valid while auctions are created or closed: a page never
//! repeats an auction and never skips one that existed during the whole listing.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use martelo_engine::codec::wire::{self, WIRE_VERSION, WIRE_VERSION_OLDEST};
use martelo_engine::{AuctionId, AuctionPhase, AuctionResult, AuctionSummary, GroupId, Timestamp};
use martelo_types::{NodeId, ShardCount};

use crate::error::ClientError;

/// Most `ListAuctions` calls one [`crate::Client::list_auctions`] page makes. A filter that
/// keeps few auctions can need many calls per page (each examines a bounded number of
/// auctions); past this the page is returned short, with its cursor.
pub const LIST_CALLS_PER_PAGE_MAX: usize = 64;

/// Which auctions a listing keeps. See `AuctionFilter` in `client.proto`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ListFilter {
    /// Every auction the cluster holds (closed ones for 24 h after their close).
    #[default]
    All,
    /// Not closed yet: scheduled, open, or ended and waiting for the close.
    Open,
    /// Not closed, ending within `within` of the serving node's clock.
    ClosingSoon { within: Duration },
    /// Sold, unsold or cancelled.
    Closed,
}

impl ListFilter {
    /// The wire filter and `closing_within_us`.
    pub fn to_proto(self) -> (martelo_proto::AuctionFilter, u64) {
        use martelo_proto::AuctionFilter as Wire;
        match self {
            ListFilter::All => (Wire::All, 0),
            ListFilter::Open => (Wire::Open, 0),
            ListFilter::ClosingSoon { within } => (
                Wire::ClosingSoon,
                u64::try_from(within.as_micros()).unwrap_or(u64::MAX),
            ),
            ListFilter::Closed => (Wire::Closed, 0),
        }
    }
}

/// A position in a cluster-wide listing: the group being listed, and the last auction
/// examined in it (`None`: none yet). Written `GROUP:AUCTION` (`3:1048577`) or
/// `GROUP:start`. The group is always spelled out, so an auction id alone is refused rather
/// than read as something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListCursor {
    pub group: GroupId,
    pub after: Option<AuctionId>,
}

impl ListCursor {
    /// The start of a listing: group 1, before its first auction.
    pub const START: ListCursor = ListCursor {
        group: GroupId(1),
        after: None,
    };

    /// Refuses a cursor whose group is not an auction shard of this cluster.
    pub fn check(self, shards: ShardCount) -> Result<ListCursor, ClientError> {
        if self.group.0 == 0 || self.group.0 > u64::from(shards.get()) {
            return Err(ClientError::InvalidInput(format!(
                "cursor {self} names group {}, but the cluster's auction groups are 1..={}",
                self.group.0,
                shards.get()
            )));
        }
        Ok(self)
    }
}

impl fmt::Display for ListCursor {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.after {
            None => write!(formatter, "{}:{CURSOR_GROUP_START}", self.group.0),
            Some(after) => write!(formatter, "{}:{}", self.group.0, after.0),
        }
    }
}

impl FromStr for ListCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<ListCursor, String> {
        let bad = || {
            format!(
                "{text:?} is not a listing cursor: use what the previous page printed, \
                 GROUP:AUCTION or GROUP:{CURSOR_GROUP_START} (for example 3:1048577)"
            )
        };
        let (group, after) = text.trim().split_once(':').ok_or_else(bad)?;
        let group: u64 = group.parse().map_err(|_| bad())?;
        let after = match after {
            CURSOR_GROUP_START => None,
            after => Some(AuctionId(after.parse().map_err(|_| bad())?)),
        };
        if group == 0 {
            return Err(format!(
                "{text:?}: group 0 is the meta group; it holds no auctions"
            ));
        }
        Ok(ListCursor {
            group: GroupId(group),
            after,
        })
    }
}

/// How a cursor at the start of a group spells its auction part.
const CURSOR_GROUP_START: &str = "start";

/// Where a listing continues after `cursor.group` answered with `next_after`: further in
/// the same group, the start of the next group, or nowhere (`None`: the listing is done).
pub fn advance(
    cursor: ListCursor,
    next_after: Option<AuctionId>,
    shards: ShardCount,
) -> Option<ListCursor> {
    match next_after {
        Some(after) => Some(ListCursor {
            group: cursor.group,
            after: Some(after),
        }),
        None if cursor.group.0 < u64::from(shards.get()) => Some(ListCursor {
            group: GroupId(cursor.group.0 + 1),
            after: None,
        }),
        None => None,
    }
}

/// One auction of a listing, as a node served it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedAuction {
    pub group: GroupId,
    pub summary: AuctionSummary,
    /// The cluster time the serving node judged the filter at; [`ListedAuction::status`]
    /// is judged at it too.
    pub now: Timestamp,
}

impl ListedAuction {
    /// Where the auction stands: `scheduled`, `open`, `ended` (past its end, close
    /// pending), or its result, `sold`, `unsold` or `cancelled`.
    pub fn status(&self) -> &'static str {
        match &self.summary.closed {
            Some(closed) => match closed.result {
                AuctionResult::Sold { .. } => "sold",
                AuctionResult::Unsold { .. } => "unsold",
                AuctionResult::Cancelled { .. } => "cancelled",
            },
            None => self.summary.phase(self.now).as_str(),
        }
    }

    /// Whether the auction is closed (sold, unsold or cancelled).
    pub fn is_closed(&self) -> bool {
        self.summary.phase(self.now) == AuctionPhase::Closed
    }
}

/// One group's page, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPage {
    pub group: GroupId,
    pub auctions: Vec<ListedAuction>,
    /// Where the group's next page starts; `None` when this was its last.
    pub next_after: Option<AuctionId>,
    pub applied_index: u64,
    pub now: Timestamp,
    /// The node that served it.
    pub node: NodeId,
}

/// One page of a cluster-wide listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuctionList {
    /// By group, then by auction id.
    pub auctions: Vec<ListedAuction>,
    /// Where the next page starts; `None` when the listing is complete.
    pub next: Option<ListCursor>,
}

/// Decodes a group's page from the node at `address`, checking that it is the group asked
/// for and that every envelope agrees with its summary.
pub fn decode_page(
    address: &str,
    group: GroupId,
    node: NodeId,
    page: martelo_proto::AuctionPage,
) -> Result<GroupPage, ClientError> {
    let decode_error = |reason: String| ClientError::Decode {
        address: address.to_owned(),
        what: "auction page",
        reason,
    };
    if !wire::can_read(page.codec_version) {
        return Err(decode_error(format!(
            "codec version {} (this client reads {WIRE_VERSION_OLDEST} to {WIRE_VERSION})",
            page.codec_version
        )));
    }
    if page.group_id != group.0 {
        return Err(decode_error(format!(
            "asked for group {}, got a page of group {}",
            group.0, page.group_id
        )));
    }
    let now = Timestamp(page.now_us);
    let auctions = page
        .auctions
        .iter()
        .map(|listed| {
            let summary: AuctionSummary = wire::decode::<
                _,
                { martelo_proto::AUCTION_SUMMARY_BYTES_MAX },
            >("auction summary", &listed.summary)
            .map_err(|error| decode_error(error.to_string()))?;
            if summary.id.0 != listed.auction_id || summary.seq != listed.seq {
                return Err(decode_error(format!(
                    "the envelope says auction {} seq {}, the summary auction {} seq {}",
                    listed.auction_id, listed.seq, summary.id.0, summary.seq
                )));
            }
            Ok(ListedAuction {
                group,
                summary,
                now,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GroupPage {
        group,
        auctions,
        next_after: page.next_after_auction_id.map(AuctionId),
        applied_index: page.applied_index,
        now,
        node,
    })
}

#[cfg(test)]
mod tests {
    use martelo_engine::{Amount, Closed, Currency, Title, UnsoldReason, UserId};
    use prost::bytes::Bytes;

    use super::*;

    fn shards(count: u32) -> ShardCount {
        ShardCount::try_from(count).unwrap()
    }

    fn cursor(group: u64, after: Option<u64>) -> ListCursor {
        ListCursor {
            group: GroupId(group),
            after: after.map(AuctionId),
        }
    }

    fn summary(id: u64, closed: bool) -> AuctionSummary {
        AuctionSummary {
            id: AuctionId(id),
            seller: UserId(1),
            title: Title::try_from("Lot").unwrap(),
            currency: Currency::try_from("EUR").unwrap(),
            created_at: Timestamp(0),
            start: Timestamp(100),
            end: Timestamp(200),
            seq: 3,
            price: None,
            leading_bidder: None,
            minimum_bid: Amount(10),
            bid_count: 0,
            has_reserve: false,
            reserve_met: false,
            buy_now_price: None,
            closed: closed.then_some(Closed {
                result: AuctionResult::Unsold {
                    reason: UnsoldReason::NoBids,
                },
                at: Timestamp(250),
            }),
        }
    }

    fn wire_page(group: u64, summaries: &[AuctionSummary]) -> martelo_proto::AuctionPage {
        martelo_proto::AuctionPage {
            group_id: group,
            auctions: summaries
                .iter()
                .map(|summary| martelo_proto::AuctionSummary {
                    auction_id: summary.id.0,
                    seq: summary.seq,
                    summary: Bytes::from(
                        wire::encode("summary", summary, wire::WireVersion::CURRENT).unwrap(),
                    ),
                })
                .collect(),
            next_after_auction_id: Some(9),
            applied_index: 40,
            now_us: 150,
            codec_version: wire::WireVersion::CURRENT.codec_version(),
        }
    }

    #[test]
    fn a_cursor_names_its_group_and_an_auction_or_the_groups_start() {
        for text in ["1:start", "3:1048577", "2:0"] {
            assert_eq!(text.parse::<ListCursor>().unwrap().to_string(), text);
        }
        assert_eq!("3:17".parse::<ListCursor>().unwrap(), cursor(3, Some(17)));
        assert_eq!("2:start".parse::<ListCursor>().unwrap(), cursor(2, None));
        // An auction id alone is not a cursor.
        for bad in ["", "x", "4", "3:", "3:y", ":4", "0:start", "0:5", "1:2:3"] {
            assert!(bad.parse::<ListCursor>().is_err(), "{bad:?}");
        }
        assert!(cursor(5, None).check(shards(4)).is_err());
        assert!(cursor(4, Some(1)).check(shards(4)).is_ok());
    }

    #[test]
    fn a_listing_finishes_a_group_before_moving_to_the_next_and_ends_after_the_last() {
        let four = shards(4);
        assert_eq!(
            advance(cursor(2, None), Some(AuctionId(8)), four),
            Some(cursor(2, Some(8)))
        );
        assert_eq!(
            advance(cursor(2, Some(8)), None, four),
            Some(cursor(3, None))
        );
        assert_eq!(advance(cursor(4, Some(8)), None, four), None);
    }

    #[test]
    fn a_page_decodes_with_statuses_judged_at_the_nodes_time() {
        let page = wire_page(2, &[summary(4, false), summary(7, true)]);
        let decoded = decode_page("a:1", GroupId(2), NodeId(3), page).unwrap();
        assert_eq!(decoded.next_after, Some(AuctionId(9)));
        assert_eq!((decoded.applied_index, decoded.node), (40, NodeId(3)));
        let statuses: Vec<&str> = decoded.auctions.iter().map(ListedAuction::status).collect();
        assert_eq!(statuses, vec!["open", "unsold"]);
        assert!(decoded.auctions[1].is_closed());
        assert_eq!(decoded.auctions[0].group, GroupId(2));
    }

    #[test]
    fn a_page_of_another_group_another_codec_or_a_lying_envelope_is_refused() {
        let page = wire_page(2, &[summary(4, false)]);
        assert!(decode_page("a:1", GroupId(3), NodeId(1), page.clone()).is_err());
        let mut version = page.clone();
        version.codec_version = 99;
        assert!(decode_page("a:1", GroupId(2), NodeId(1), version).is_err());
        let mut lying = page;
        lying.auctions[0].auction_id = 5;
        let error = decode_page("a:1", GroupId(2), NodeId(1), lying).unwrap_err();
        assert_eq!(error.code().as_str(), "decode");
    }

    #[test]
    fn closing_soon_sends_its_window_in_microseconds() {
        let filter = ListFilter::ClosingSoon {
            within: Duration::from_secs(600),
        };
        assert_eq!(
            filter.to_proto(),
            (martelo_proto::AuctionFilter::ClosingSoon, 600_000_000)
        );
        assert_eq!(ListFilter::default().to_proto().1, 0);
    }
}
