//! `martelo auction list` and `auction show --bids` against a real three-node cluster: the
//! binary pages through auctions spread over every group exactly once, its filters keep the
//! right auctions, and its JSON parses.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use martelo_engine::{Accepted, Action, AuctionId, Reply, Role};
use support::*;

/// The test's seven auctions, spread over the three groups, and the roles some of them play.
struct Auctions {
    ids: [u64; 7],
    /// Ends within ten minutes; every other auction ends in an hour.
    ending_soon: u64,
    /// Cancelled by its seller: closed.
    cancelled: u64,
    /// Takes three bids.
    bid_on: u64,
}

impl Auctions {
    /// The smallest ids that put at least two auctions in each of the three groups (by the
    /// shard hash), so that a listing must cross every group.
    fn spread(client: &martelo_client::Client) -> Auctions {
        let mut by_group: [Vec<u64>; 3] = Default::default();
        for id in 1.. {
            let group = client.group_of(AuctionId(id)).0;
            let slot = &mut by_group[usize::try_from(group - 1).expect("small group")];
            if slot.len() < 3 {
                slot.push(id);
            }
            if by_group.iter().all(|ids| ids.len() == 3) {
                break;
            }
        }
        let [one, two, three] = by_group;
        let ids = [one[0], two[0], three[0], one[1], two[1], three[1], one[2]];
        Auctions {
            ids,
            ending_soon: three[0],
            cancelled: two[1],
            bid_on: two[0],
        }
    }
}

/// Runs `martelo` with `args` against the cluster and returns its stdout; fails with its
/// stderr if it exits unsuccessfully.
async fn must_run_martelo(addresses: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_martelo"))
        .args(args)
        .args(["--addr", addresses])
        .output()
        .await
        .expect("run martelo");
    assert!(
        output.status.success(),
        "martelo {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// One page of `martelo auction list --json` with `args`.
async fn must_list_json(addresses: &str, args: &[&str]) -> serde_json::Value {
    let mut argv = vec!["auction", "list", "--json"];
    argv.extend_from_slice(args);
    let stdout = must_run_martelo(addresses, &argv).await;
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

fn ids_of(page: &serde_json::Value) -> Vec<u64> {
    page["auctions"]
        .as_array()
        .expect("an auctions array")
        .iter()
        .map(|auction| auction["auction_id"].as_u64().expect("an auction id"))
        .collect()
}

/// Seven auctions over three groups; one ends soon, one is cancelled, one has three bids.
async fn must_create_the_auctions(test: &TestCluster) -> Auctions {
    let client = &test.client;
    let auctions = Auctions::spread(client);
    for id in auctions.ids {
        let open_for = if id == auctions.ending_soon {
            Duration::from_secs(300)
        } else {
            Duration::from_secs(3600)
        };
        create_auction(client, id, open_for).await;
    }
    let cancel = Action::CancelAuction {
        auction_id: AuctionId(auctions.cancelled),
        reason: None,
    };
    let cancelled = client
        .propose(request(SELLER, Role::Seller, "cancel", cancel))
        .await
        .expect("cancel proposed");
    assert!(
        matches!(
            cancelled.reply,
            Reply::Accepted(Accepted::AuctionCancelled { .. })
        ),
        "{:?}",
        cancelled.reply
    );
    for (round, amount) in [100, 200, 300].into_iter().enumerate() {
        let user = 10 + round as u64 % 2;
        let placed = bid(
            client,
            auctions.bid_on,
            user,
            amount,
            &format!("bid-{round}"),
        )
        .await
        .expect("bid decided");
        assert!(
            accepted_price(&placed.reply).is_some(),
            "{:?}",
            placed.reply
        );
    }
    auctions
}

#[tokio::test(flavor = "multi_thread")]
async fn auction_list_pages_through_every_group_once_and_filters_by_status() {
    let test = TestCluster::start(3, 3).await;
    let auctions = must_create_the_auctions(&test).await;
    let ids = auctions.ids;
    let addresses = test.cluster.api_addresses().join(",");

    // Pages of three, following the printed cursor, visit every auction exactly once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= ids.len() + 3, "the listing does not end: {seen:?}");
        let mut args = vec!["--limit", "3"];
        if let Some(cursor) = after.as_deref() {
            args.extend(["--after", cursor]);
        }
        let page = must_list_json(&addresses, &args).await;
        let ids = ids_of(&page);
        assert!(ids.len() <= 3, "{page:#}");
        for auction in page["auctions"].as_array().expect("auctions") {
            let id = auction["auction_id"].as_u64().expect("id");
            let group = test.client.group_of(AuctionId(id)).0;
            assert_eq!(auction["group_id"].as_u64(), Some(group), "{auction:#}");
            assert_eq!(auction["summary"]["title"], "Test lot", "{auction:#}");
        }
        seen.extend(ids);
        match page["next_after"].as_str() {
            Some(cursor) => after = Some(cursor.to_owned()),
            None => break,
        }
    }
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(
        seen.len(),
        unique.len(),
        "an auction was listed twice: {seen:?}"
    );
    assert_eq!(unique, BTreeSet::from(ids), "{seen:?}");
    assert!(
        pages >= 3,
        "seven auctions in pages of three take three pages"
    );

    // Filters.
    let closed = must_list_json(&addresses, &["--status", "closed"]).await;
    assert_eq!(ids_of(&closed), vec![auctions.cancelled]);
    assert_eq!(closed["auctions"][0]["status"], "cancelled");
    assert_eq!(closed["next_after"], serde_json::Value::Null);
    let open: BTreeSet<u64> = ids_of(&must_list_json(&addresses, &["--status", "open"]).await)
        .into_iter()
        .collect();
    let expected_open: BTreeSet<u64> = ids
        .into_iter()
        .filter(|&id| id != auctions.cancelled)
        .collect();
    assert_eq!(open, expected_open);
    let soon = must_list_json(
        &addresses,
        &["--status", "closing-soon", "--closing-within", "10m"],
    )
    .await;
    assert_eq!(ids_of(&soon), vec![auctions.ending_soon], "{soon:#}");
    assert_eq!(soon["auctions"][0]["status"], "open");
    let none_soon = must_list_json(&addresses, &["--closing-within", "1m"]).await;
    assert_eq!(ids_of(&none_soon), Vec::<u64>::new(), "{none_soon:#}");
    let bids = must_list_json(&addresses, &["--status", "open", "--consistency", "local"]).await;
    let with_bids = bids["auctions"]
        .as_array()
        .expect("auctions")
        .iter()
        .find(|auction| auction["auction_id"] == auctions.bid_on)
        .expect("the auction with bids");
    assert_eq!(with_bids["summary"]["bid_count"], 3, "{with_bids:#}");

    // The table: a header, one row per auction, and the cursor of the next page.
    let table = must_run_martelo(&addresses, &["auction", "list", "--limit", "3"]).await;
    println!("{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(lines[0].starts_with("AUCTION  GROUP  STATUS"), "{table}");
    assert!(lines[4].starts_with("next page: --after "), "{table}");
    let last = must_run_martelo(&addresses, &["auction", "list", "--limit", "500"]).await;
    assert!(last.ends_with("end of the list\n"), "{last}");
    assert!(last.contains(" cancelled "), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn auction_show_prints_only_the_most_recent_bids_it_is_asked_for() {
    let test = TestCluster::start(3, 3).await;
    let auctions = must_create_the_auctions(&test).await;
    let addresses = test.cluster.api_addresses().join(",");
    let id = auctions.bid_on.to_string();
    let text = must_run_martelo(&addresses, &["auction", "show", &id, "--bids", "2"]).await;
    let bid_lines: Vec<&str> = text
        .lines()
        .filter(|line| line.trim_start().starts_with('#'))
        .collect();
    assert_eq!(bid_lines.len(), 2, "{text}");
    assert!(bid_lines[0].trim_start().starts_with("#1 "), "{text}");
    assert!(bid_lines[1].contains(" 300 EUR"), "{text}");
    println!("{text}");
    assert!(
        text.contains("  bids:         3 (the last 2 below"),
        "{text}"
    );
    let all = must_run_martelo(&addresses, &["auction", "show", &id, "--bids", "all"]).await;
    assert_eq!(all.matches("    #").count(), 3, "{all}");
    let json = must_run_martelo(
        &addresses,
        &["auction", "show", &id, "--bids", "1", "--json"],
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(json["bid_count"], 3, "{json:#}");
    assert_eq!(json["auction"]["bids"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["auction"]["bids"][0]["amount"], 300);

    // A page larger than the protocol allows is a usage error; nothing is sent.
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_martelo"))
        .args(["auction", "list", "--limit", "501", "--addr", &addresses])
        .output()
        .await
        .expect("run martelo");
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
}
