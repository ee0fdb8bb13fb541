//! What the admin commands print, as pure functions of what the cluster answered: the layout
//! after `cluster init`, the per-group report of `node add|remove`, one auction for
//! `auction show`, a page of auctions (table and JSON) for `auction list`, and cluster time
//! as UTC text. Nothing here does IO, so every format is tested without a cluster.
//!
//! What does not live here: the `status` table ([`super::status_table`]), the exit status a
//! report leads to ([`super::membership`], [`super::error`]), and the JSON of `status` and
//! `auction show`, which serialize the client's types as they are.

use martelo_client::admin::{Layout, MembershipReport};
use martelo_client::client::AuctionRead;
use martelo_client::listing::{AuctionList, ListedAuction};
use martelo_engine::{AuctionResult, Timestamp};

use super::auction::BidsShown;

/// What `cluster init` prints once the cluster is up.
pub fn render_layout(layout: &Layout) -> String {
    let mut out = format!(
        "cluster initialized: {} groups, every one with a leader\n",
        layout.groups.len()
    );
    for placement in &layout.groups {
        let voters: Vec<String> = placement.voters.iter().map(ToString::to_string).collect();
        let name = if placement.group_id == 0 {
            "group 0 (meta)".to_owned()
        } else {
            format!("group {}", placement.group_id)
        };
        out.push_str(&format!("  {name}: voters {}\n", voters.join(", ")));
    }
    out
}

/// What `node add` and `node remove` print: one line per group.
pub fn render_membership(report: &MembershipReport) -> String {
    let mut out = String::new();
    if report.groups.is_empty() {
        out.push_str(&format!(
            "node {} is in no group: nothing to do\n",
            report.node_id
        ));
    }
    for group in &report.groups {
        let line = match &group.error {
            None if group.unchanged => {
                let what = match group.step {
                    "promote_voter" => "is already a voter",
                    "add_learner" => "is already a learner",
                    _ => "is not a member",
                };
                format!(
                    "group {}: node {} {what}: nothing to do",
                    group.group_id, report.node_id
                )
            }
            None => {
                let voters: Vec<String> = group.voters.iter().map(ToString::to_string).collect();
                let learners: Vec<String> =
                    group.learners.iter().map(ToString::to_string).collect();
                let what = match group.step {
                    "add_learner" => format!("node {} is a caught-up learner", report.node_id),
                    "promote_voter" => format!("node {} is a voter", report.node_id),
                    "remove_node" => format!("node {} is removed", report.node_id),
                    other => format!("node {}: {other} done", report.node_id),
                };
                format!(
                    "group {}: {what} (voters: {}; learners: {}; log index {})",
                    group.group_id,
                    list_or_none(&voters),
                    list_or_none(&learners),
                    group
                        .log_index
                        .map_or_else(|| "-".to_owned(), |index| index.to_string())
                )
            }
            Some(error) => format!(
                "group {}: FAILED at {}: {}",
                group.group_id, group.step, error.message
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// What `auction show` prints, with the bids `bids` picks.
pub fn render_auction(read: &AuctionRead, bids: BidsShown) -> String {
    let view = &read.view;
    let listing = &view.listing;
    let currency = listing.currency.as_str();
    let amount = |amount: martelo_engine::Amount| format!("{} {currency}", amount.0);
    let user = |user: martelo_engine::UserId| format!("user {}", user.0);
    let mut lines = vec![
        format!(
            "auction {} (group {}, seq {}, applied index {}, served by node {})",
            view.id.0, read.group.0, read.seq, read.applied_index, read.node
        ),
        format!("  title:        {}", listing.title),
        format!("  seller:       {}", user(view.seller)),
        format!(
            "  window:       {} to {} (end with soft-close extensions: {})",
            format_timestamp(listing.start),
            format_timestamp(listing.end),
            format_timestamp(view.end)
        ),
    ];
    let state = match &view.closed {
        None => "open".to_owned(),
        Some(closed) => {
            let result = match &closed.result {
                AuctionResult::Sold { winner, price, via } => format!(
                    "sold to {} for {} ({})",
                    user(*winner),
                    amount(*price),
                    match via {
                        martelo_engine::SaleKind::Bidding => "bidding",
                        martelo_engine::SaleKind::BuyNow => "buy it now",
                    }
                ),
                AuctionResult::Unsold { reason } => format!(
                    "unsold ({})",
                    match reason {
                        martelo_engine::UnsoldReason::NoBids => "no bids",
                        martelo_engine::UnsoldReason::ReserveNotMet => "reserve not met",
                    }
                ),
                AuctionResult::Cancelled { by, reason } => format!(
                    "cancelled by {}{}",
                    user(*by),
                    reason
                        .as_ref()
                        .map_or_else(String::new, |reason| format!(": {reason}"))
                ),
            };
            format!("closed at {}: {result}", format_timestamp(closed.at))
        }
    };
    lines.push(format!("  state:        {state}"));
    lines.push(format!(
        "  price:        {}",
        view.price.map_or_else(|| "no bids yet".to_owned(), amount)
    ));
    lines.push(format!(
        "  leading:      {}",
        view.leading_bidder
            .map_or_else(|| "nobody".to_owned(), user)
    ));
    lines.push(format!("  minimum bid:  {}", amount(view.minimum_bid)));
    lines.push(format!(
        "  reserve:      {}",
        match (listing.has_reserve, view.reserve_met) {
            (false, _) => "none",
            (true, true) => "met",
            (true, false) => "not met",
        }
    ));
    lines.push(format!(
        "  buy it now:   {}",
        view.buy_now_price
            .map_or_else(|| "not available".to_owned(), amount)
    ));
    let (shown, skipped) = bids.pick(&view.bids);
    lines.push(if skipped == 0 {
        format!("  bids:         {}", view.bids.len())
    } else {
        format!(
            "  bids:         {} (the last {} below, oldest first; --bids all shows every one)",
            view.bids.len(),
            shown.len()
        )
    });
    for (index, bid) in (skipped..).zip(shown) {
        lines.push(format!(
            "    #{index:<4} {:<12} {:>16}  {}  log {}{}",
            user(bid.bidder),
            amount(bid.amount),
            format_timestamp(bid.at),
            bid.log_index,
            if bid.voided { "  VOIDED" } else { "" }
        ));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Titles longer than this many characters are cut in `auction list`'s table.
const LIST_TITLE_CHARS_MAX: usize = 32;

/// What `auction list` prints: a table, then where the next page starts.
pub fn render_auction_list(list: &AuctionList) -> String {
    let header = [
        "AUCTION",
        "GROUP",
        "STATUS",
        "TITLE",
        "PRICE",
        "BIDS",
        "ENDS (UTC)",
    ];
    // Numbers are right-aligned, text left-aligned.
    let right = [true, true, false, false, true, true, false];
    let rows: Vec<[String; 7]> = list.auctions.iter().map(auction_row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .zip(right)
            .map(|((cell, width), right)| {
                let pad = " ".repeat(width - cell.chars().count());
                if right {
                    format!("{pad}{cell}")
                } else {
                    format!("{cell}{pad}")
                }
            })
            .collect();
        let mut text = padded.join("  ").trim_end().to_owned();
        text.push('\n');
        text
    };
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no auctions on this page\n");
    } else {
        out.push_str(&line(header));
        for row in &rows {
            out.push_str(&line(row.each_ref().map(String::as_str)));
        }
    }
    match list.next {
        Some(cursor) => out.push_str(&format!("next page: --after {cursor}\n")),
        None => out.push_str("end of the list\n"),
    }
    out
}

/// One row of `auction list`'s table.
fn auction_row(listed: &ListedAuction) -> [String; 7] {
    let summary = &listed.summary;
    let title = summary.title.as_str();
    let title = if title.chars().count() > LIST_TITLE_CHARS_MAX {
        let cut: String = title.chars().take(LIST_TITLE_CHARS_MAX - 1).collect();
        format!("{cut}…")
    } else {
        title.to_owned()
    };
    let price = summary.price.map_or_else(
        || "-".to_owned(),
        |price| format!("{} {}", price.0, summary.currency.as_str()),
    );
    let mut ends = format_timestamp(summary.end);
    // Whole seconds are enough in a table: `2026-01-01T00:00:00Z`.
    if let Some(dot) = ends.find('.') {
        ends.replace_range(dot.., "Z");
    }
    [
        summary.id.0.to_string(),
        listed.group.0.to_string(),
        listed.status().to_owned(),
        title,
        price,
        summary.bid_count.to_string(),
        ends,
    ]
}

/// What `auction list --json` prints.
pub fn auction_list_json(list: &AuctionList) -> serde_json::Value {
    let auctions: Vec<serde_json::Value> = list
        .auctions
        .iter()
        .map(|listed| {
            serde_json::json!({
                "auction_id": listed.summary.id.0,
                "group_id": listed.group.0,
                "seq": listed.summary.seq,
                "status": listed.status(),
                "now_us": listed.now.0,
                "summary": listed.summary,
            })
        })
        .collect();
    serde_json::json!({
        "auctions": auctions,
        "next_after": list.next.map(|cursor| cursor.to_string()),
    })
}

/// Cluster time as UTC ISO 8601 with microseconds (`2026-01-01T00:00:00.000000Z`).
pub fn format_timestamp(timestamp: Timestamp) -> String {
    const MICROS_PER_DAY: u64 = 86_400_000_000;
    let days = timestamp.0 / MICROS_PER_DAY;
    let in_day = timestamp.0 % MICROS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let seconds = in_day / 1_000_000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        in_day % 1_000_000
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use martelo_engine::{
        Amount, AuctionId, AuctionView, Closed, Currency, Description, GroupId, IncrementPolicy,
        Listing, PublicBid, Title, UserId,
    };

    use martelo_types::NodeId;

    use super::*;

    #[test]
    fn timestamps_print_as_utc() {
        assert_eq!(
            format_timestamp(Timestamp(0)),
            "1970-01-01T00:00:00.000000Z"
        );
        // 2024-02-29T12:34:56.789012Z, a leap day.
        assert_eq!(
            format_timestamp(Timestamp(1_709_210_096_789_012)),
            "2024-02-29T12:34:56.789012Z"
        );
    }

    #[test]
    fn an_auction_prints_its_state_bids_and_result() {
        let listing = Listing {
            title: Title::try_from("Vintage bicycle").unwrap(),
            description: Description::try_from("Steel frame").unwrap(),
            currency: Currency::try_from("EUR").unwrap(),
            starting_price: Amount(1000),
            has_reserve: true,
            buy_now_price: None,
            increment: IncrementPolicy::Fixed(Amount(50)),
            start: Timestamp(0),
            end: Timestamp(3_600_000_000),
            soft_close: None,
        };
        let view = AuctionView {
            id: AuctionId(42),
            seller: UserId(9),
            listing,
            created_at: Timestamp(0),
            end: Timestamp(3_600_000_000),
            seq: 4,
            price: Some(Amount(1050)),
            leading_bidder: Some(UserId(5)),
            minimum_bid: Amount(1100),
            reserve_met: false,
            buy_now_price: None,
            bids: vec![PublicBid {
                bidder: UserId(5),
                amount: Amount(1050),
                at: Timestamp(60_000_000),
                log_index: 17,
                voided: false,
            }],
            closed: Some(Closed {
                result: AuctionResult::Unsold {
                    reason: martelo_engine::UnsoldReason::ReserveNotMet,
                },
                at: Timestamp(3_600_000_000),
            }),
        };
        let read = AuctionRead {
            view,
            group: GroupId(3),
            seq: 4,
            applied_index: 20,
            node: NodeId(1),
        };
        let text = render_auction(&read, BidsShown::All);
        assert!(
            text.starts_with("auction 42 (group 3, seq 4, applied index 20, served by node 1)\n"),
            "{text}"
        );
        assert!(text.contains("  title:        Vintage bicycle\n"), "{text}");
        assert!(
            text.contains(
                "  state:        closed at 1970-01-01T01:00:00.000000Z: unsold (reserve not met)\n"
            ),
            "{text}"
        );
        assert!(text.contains("  reserve:      not met\n"), "{text}");
        assert!(
            text.contains(
                "    #0    user 5               1050 EUR  1970-01-01T00:01:00.000000Z  log 17\n"
            ),
            "{text}"
        );
    }

    fn auction_read_with_bids(count: u64) -> AuctionRead {
        let listing = Listing {
            title: Title::try_from("Lamp").unwrap(),
            description: Description::try_from("").unwrap(),
            currency: Currency::try_from("EUR").unwrap(),
            starting_price: Amount(100),
            has_reserve: false,
            buy_now_price: None,
            increment: IncrementPolicy::Fixed(Amount(10)),
            start: Timestamp(0),
            end: Timestamp(3_600_000_000),
            soft_close: None,
        };
        let bids = (0..count)
            .map(|index| PublicBid {
                bidder: UserId(5 + index % 2),
                amount: Amount(100 + 10 * index),
                at: Timestamp(1_000_000 * (index + 1)),
                log_index: 10 + index,
                voided: false,
            })
            .collect();
        let view = AuctionView {
            id: AuctionId(7),
            seller: UserId(9),
            listing,
            created_at: Timestamp(0),
            end: Timestamp(3_600_000_000),
            seq: 1 + count,
            price: Some(Amount(100 + 10 * (count - 1))),
            leading_bidder: Some(UserId(5)),
            minimum_bid: Amount(100 + 10 * count),
            reserve_met: true,
            buy_now_price: None,
            bids,
            closed: None,
        };
        AuctionRead {
            view,
            group: GroupId(1),
            seq: 1 + count,
            applied_index: 30,
            node: NodeId(2),
        }
    }

    #[test]
    fn auction_show_prints_the_most_recent_bids_oldest_first_with_their_own_numbers() {
        let read = auction_read_with_bids(5);
        let text = render_auction(&read, BidsShown::Last(2));
        assert!(
            text.contains(
                "  bids:         5 (the last 2 below, oldest first; --bids all shows every one)\n"
            ),
            "{text}"
        );
        let numbers: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix('#'))
            .map(|rest| rest.split_whitespace().next().unwrap_or(""))
            .collect();
        assert_eq!(numbers, vec!["3", "4"], "{text}");
        let all = render_auction(&read, BidsShown::All);
        assert!(all.contains("  bids:         5\n"), "{all}");
        assert_eq!(all.matches("    #").count(), 5, "{all}");
        // Asking for more than there are shows them all, without a note.
        assert_eq!(render_auction(&read, BidsShown::Last(9)), all);
    }

    fn listed(id: u64, group: u64, title: &str, closed: bool) -> ListedAuction {
        ListedAuction {
            group: GroupId(group),
            summary: martelo_engine::AuctionSummary {
                id: AuctionId(id),
                seller: UserId(1),
                title: Title::try_from(title).unwrap(),
                currency: Currency::try_from("EUR").unwrap(),
                created_at: Timestamp(0),
                start: Timestamp(0),
                end: Timestamp(3_600_000_000),
                seq: 4,
                price: (!closed).then_some(Amount(1_250)),
                leading_bidder: (!closed).then_some(UserId(5)),
                minimum_bid: Amount(1_300),
                bid_count: if closed { 0 } else { 3 },
                has_reserve: false,
                reserve_met: !closed,
                buy_now_price: None,
                closed: closed.then_some(Closed {
                    result: AuctionResult::Cancelled {
                        by: UserId(1),
                        reason: None,
                    },
                    at: Timestamp(60_000_000),
                }),
            },
            now: Timestamp(120_000_000),
        }
    }

    #[test]
    fn an_auction_list_prints_a_table_and_the_next_cursor() {
        let list = AuctionList {
            auctions: vec![
                listed(7, 1, "Vintage bicycle", false),
                listed(1_048_577, 2, &"Lamp ".repeat(10), true),
            ],
            next: Some("2:1048577".parse().unwrap()),
        };
        let text = render_auction_list(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "AUCTION  GROUP  STATUS     TITLE                                PRICE  BIDS  \
                 ENDS (UTC)",
                "      7      1  open       Vintage bicycle                   1250 EUR     3  \
                 1970-01-01T01:00:00Z",
                "1048577      2  cancelled  Lamp Lamp Lamp Lamp Lamp Lamp L…         -     0  \
                 1970-01-01T01:00:00Z",
                "next page: --after 2:1048577",
            ],
            "{text}"
        );
        let last = AuctionList {
            auctions: Vec::new(),
            next: None,
        };
        assert_eq!(
            render_auction_list(&last),
            "no auctions on this page\nend of the list\n"
        );
        let json = auction_list_json(&list);
        assert_eq!(json["next_after"], "2:1048577");
        assert_eq!(json["auctions"][1]["auction_id"], 1_048_577);
        assert_eq!(json["auctions"][1]["status"], "cancelled");
        assert_eq!(json["auctions"][0]["summary"]["title"], "Vintage bicycle");
        assert_eq!(
            auction_list_json(&last)["next_after"],
            serde_json::Value::Null
        );
    }
}
