//! The auction commands: `auction show` (one auction's state) and `auction list` (a page of
//! the cluster's auctions), with the flags only they take: `--bids`, `--status`,
//! `--closing-within`, `--limit` and `--after`.
//!
//! What does not live here: the text and JSON they print ([`super::render`]); routing an
//! auction to its group and paging across groups (`martelo_client`).

use std::io::Write;

use clap::{Args, Subcommand};
use martelo_client::admin::Admin;
use martelo_client::client::ReadConsistency;
use martelo_client::error::ClientError;
use martelo_client::listing::{ListCursor, ListFilter};
use martelo_engine::AuctionId;

use super::args::{Connection, consistency_parser};
use super::error::CliError;
use super::render::{auction_list_json, render_auction, render_auction_list};

#[derive(Debug, Subcommand)]
pub enum AuctionCommand {
    /// Show one auction's state (never the reserve amount or proxy maxima).
    Show(AuctionShowArgs),
    /// List the cluster's auctions, a page at a time: group by group, by id in each group.
    ///
    /// Prints a table and, when more auctions follow, the `--after` cursor of the next page.
    /// Closed auctions are listed until they leave the state, 24 h after their close.
    List(AuctionListArgs),
}

#[derive(Debug, Args)]
pub struct AuctionShowArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The auction id.
    #[arg(value_name = "ID")]
    pub id: u64,
    /// How fresh the state must be.
    #[arg(
        long,
        default_value_t = ReadConsistency::Linearizable,
        value_parser = consistency_parser()
    )]
    pub consistency: ReadConsistency,
    /// How many bids to show: the most recent N, printed oldest first (in log order), or
    /// `all` (also 0) for every bid. Applies to --json too; `bid_count` there is the total.
    #[arg(long, value_name = "N|all", default_value = "20", value_parser = parse_bids_shown)]
    pub bids: BidsShown,
    /// Print the auction as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which of an auction's bids `auction show` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BidsShown {
    All,
    /// The most recent N (at least 1), in log order.
    Last(usize),
}

impl BidsShown {
    /// The bids to show, and how many were left out (the oldest ones).
    pub fn pick<T>(self, bids: &[T]) -> (&[T], usize) {
        match self {
            BidsShown::Last(count) if count < bids.len() => {
                let skipped = bids.len() - count;
                (&bids[skipped..], skipped)
            }
            _ => (bids, 0),
        }
    }
}

/// Parses `--bids`: a count, or `all` (0 means all too).
pub fn parse_bids_shown(text: &str) -> Result<BidsShown, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("all") {
        return Ok(BidsShown::All);
    }
    match text.parse::<usize>() {
        Ok(0) => Ok(BidsShown::All),
        Ok(count) => Ok(BidsShown::Last(count)),
        Err(_) => Err(format!("{text:?} is neither a number of bids nor `all`")),
    }
}

#[derive(Debug, Args)]
pub struct AuctionListArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Which auctions to list: `open` (not closed yet, including scheduled ones and ones
    /// past their end waiting to be closed), `closing-soon` (open, ending within
    /// --closing-within), `closed` (sold, unsold or cancelled) or `all`. [default: all, or
    /// closing-soon when --closing-within is given]
    #[arg(long, value_enum, value_name = "STATUS")]
    pub status: Option<ListStatus>,
    /// With --status closing-soon: how far ahead "soon" reaches, judged by the serving node's
    /// clock: `90s`, `10m`, `2h`, `1d`. [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = parse_closing_within)]
    pub closing_within: Option<std::time::Duration>,
    /// Most auctions on this page (1 to 500).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50,
        value_parser = clap::value_parser!(u32).range(1..=LIST_LIMIT_MAX)
    )]
    pub limit: u32,
    /// Continue a listing: the cursor the previous page printed (`GROUP:AUCTION`, or
    /// `GROUP:start` for the start of a group).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<ListCursor>,
    /// How fresh each group's page must be.
    #[arg(
        long,
        default_value_t = ReadConsistency::Linearizable,
        value_parser = consistency_parser()
    )]
    pub consistency: ReadConsistency,
    /// Print the page as JSON: `auctions` (each with `auction_id`, `group_id`, `status` and
    /// the engine's `summary`) and `next_after` (the cursor, or null after the last page).
    #[arg(long)]
    pub json: bool,
}

/// `auction list --status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListStatus {
    All,
    Open,
    ClosingSoon,
    Closed,
}

/// `auction list --limit`'s upper bound, as clap's range wants it.
const LIST_LIMIT_MAX: i64 = martelo_proto::LIST_AUCTIONS_LIMIT_MAX as i64;

/// How far ahead `--status closing-soon` looks without `--closing-within`.
const CLOSING_WITHIN_DEFAULT: std::time::Duration = std::time::Duration::from_secs(3600);

impl AuctionListArgs {
    /// The filter that `--status` and `--closing-within` ask for.
    pub fn filter(&self) -> Result<ListFilter, CliError> {
        let status = match (self.status, self.closing_within) {
            (Some(status), _) => status,
            (None, Some(_)) => ListStatus::ClosingSoon,
            (None, None) => ListStatus::All,
        };
        Ok(match status {
            ListStatus::ClosingSoon => ListFilter::ClosingSoon {
                within: self.closing_within.unwrap_or(CLOSING_WITHIN_DEFAULT),
            },
            _ if self.closing_within.is_some() => {
                return Err(CliError::Client(ClientError::InvalidInput(
                    "--closing-within applies to --status closing-soon only".to_owned(),
                )));
            }
            ListStatus::All => ListFilter::All,
            ListStatus::Open => ListFilter::Open,
            ListStatus::Closed => ListFilter::Closed,
        })
    }
}

/// Parses `--closing-within`: a positive whole number with a unit, `s`, `m`, `h` or `d`.
pub fn parse_closing_within(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a duration such as 90s, 10m, 2h or 1d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let seconds = number.checked_mul(seconds_per_unit).ok_or_else(bad)?;
    if seconds == 0 {
        return Err(format!("{text:?}: the window must be positive"));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

impl AuctionShowArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let read = admin
            .show_auction(&self.connection.addr, AuctionId(self.id), self.consistency)
            .await?;
        if self.json {
            let mut view = read.view.clone();
            let bid_count = view.bids.len();
            let (_, skipped) = self.bids.pick(&view.bids);
            view.bids.drain(..skipped);
            let json = serde_json::json!({
                "group_id": read.group.0,
                "seq": read.seq,
                "applied_index": read.applied_index,
                "node_id": read.node,
                "bid_count": bid_count,
                "auction": view,
            });
            serde_json::to_writer_pretty(&mut *out, &json).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", render_auction(&read, self.bids))?;
        }
        Ok(())
    }
}

impl AuctionListArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let filter = self.filter()?;
        let from = self.after.unwrap_or(ListCursor::START);
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let list = admin
            .list_auctions(&self.connection.addr, filter, from, limit, self.consistency)
            .await?;
        if self.json {
            serde_json::to_writer_pretty(&mut *out, &auction_list_json(&list))
                .map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", render_auction_list(&list))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Command;
    use crate::cli::tests::{TestCli, parse};

    #[test]
    fn auction_show_takes_an_id_a_consistency_and_how_many_bids() {
        let Command::Auction(AuctionCommand::Show(show)) =
            parse(&["auction", "show", "42", "--consistency", "local"])
        else {
            panic!("auction show");
        };
        assert_eq!((show.id, show.consistency), (42, ReadConsistency::Local));
        let Command::Auction(AuctionCommand::Show(show)) = parse(&["auction", "show", "7"]) else {
            panic!("auction show");
        };
        assert_eq!(show.bids, BidsShown::Last(20));
        for (flag, expected) in [
            ("2", BidsShown::Last(2)),
            ("all", BidsShown::All),
            ("0", BidsShown::All),
        ] {
            let Command::Auction(AuctionCommand::Show(show)) =
                parse(&["auction", "show", "7", "--bids", flag])
            else {
                panic!("auction show");
            };
            assert_eq!(show.bids, expected, "{flag}");
        }
        assert!(
            TestCli::try_parse_from(["martelo", "auction", "show", "7", "--bids", "x"]).is_err()
        );
    }

    #[test]
    fn auction_list_parses_status_window_limit_and_cursor() {
        let Command::Auction(AuctionCommand::List(list)) = parse(&[
            "auction",
            "list",
            "--status",
            "closing-soon",
            "--closing-within",
            "10m",
            "--limit",
            "3",
            "--after",
            "2:17",
            "--json",
        ]) else {
            panic!("auction list");
        };
        assert_eq!(
            list.filter().unwrap(),
            ListFilter::ClosingSoon {
                within: std::time::Duration::from_secs(600)
            }
        );
        assert_eq!(list.limit, 3);
        assert_eq!(list.after, Some("2:17".parse().unwrap()));
        assert!(list.json);
        let filter_of = |args: &[&str]| {
            let mut argv = vec!["auction", "list"];
            argv.extend_from_slice(args);
            let Command::Auction(AuctionCommand::List(list)) = parse(&argv) else {
                panic!("auction list");
            };
            list.filter()
        };
        assert_eq!(filter_of(&[]).unwrap(), ListFilter::All);
        assert_eq!(filter_of(&["--status", "open"]).unwrap(), ListFilter::Open);
        assert_eq!(
            filter_of(&["--status", "closed"]).unwrap(),
            ListFilter::Closed
        );
        assert_eq!(
            filter_of(&["--closing-within", "2h"]).unwrap(),
            ListFilter::ClosingSoon {
                within: std::time::Duration::from_secs(7200)
            }
        );
        assert_eq!(
            filter_of(&["--status", "closing-soon"]).unwrap(),
            ListFilter::ClosingSoon {
                within: CLOSING_WITHIN_DEFAULT
            }
        );
        assert!(filter_of(&["--status", "open", "--closing-within", "1m"]).is_err());
        for bad in [
            ["--limit", "0"],
            ["--limit", "501"],
            ["--after", "x"],
            ["--closing-within", "0s"],
        ] {
            let mut argv = vec!["martelo", "auction", "list"];
            argv.extend_from_slice(&bad);
            assert!(TestCli::try_parse_from(argv).is_err(), "{bad:?}");
        }
        assert_eq!(parse_closing_within("1d").unwrap().as_secs(), 86_400);
        assert!(parse_closing_within("10").is_err());
        assert!(parse_closing_within("5w").is_err());
    }
}
