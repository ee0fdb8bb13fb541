//! `martelo audit` (the real binary) against the real Postgres, on rows written by the sink's
//! real batch writer: table, `--json`, `--csv`, filters, paging with `--cursor`, and errors
//! that never show the database password.
//! Each test has its own database (`martelo_sink::testing::TestDb`).

mod support;

use std::collections::BTreeSet;

use martelo_engine::meta::{DisplayName, Username};
use martelo_engine::{
    Amount, AuctionEvent, AuctionEventKind, AuctionId, BidId, Currency, Description, Event,
    IncrementPolicy, Listing, MetaEvent, MetaEventKind, Reason, Role, Timestamp, Title, UserId,
};
use martelo_sink::SinkRecord;
use martelo_sink::testing::TestDb;
use support::martelo;

const T0: u64 = 1_800_000_000_000_000;
const SECOND: u64 = 1_000_000;

fn meta(seq: u64, kind: MetaEventKind) -> Event {
    Event::Meta(MetaEvent {
        seq,
        at: Timestamp(T0 + seq * SECOND),
        kind,
    })
}

fn on_auction(seq: u64, kind: AuctionEventKind) -> Event {
    Event::Auction(AuctionEvent {
        auction_id: AuctionId(5),
        seq,
        at: Timestamp(T0 + (100 + seq) * SECOND),
        kind,
    })
}

/// Writes, through the sink's writer: users 1 (admin), 20 and 21 registered, 21 suspended by
/// 1 (group 0); auction 5 created by 20 with 4 bids by 21 (group 1).
async fn fill(url: &str) {
    let pool = martelo_sink::connect(url).expect("pool");
    martelo_sink::migrate(&pool).await.expect("migrate");
    let mut records = Vec::new();
    for (seq, (user, name)) in [(1u64, "root"), (20, "sam"), (21, "bob")]
        .into_iter()
        .enumerate()
    {
        let seq = seq as u64 + 1;
        records.push(SinkRecord {
            log_index: seq,
            rejections: Vec::new(),
            traceparent: None,
            events: vec![meta(
                seq,
                MetaEventKind::UserRegistered {
                    user: UserId(user),
                    username: Username::try_from(name).unwrap(),
                    display_name: DisplayName::try_from(name).unwrap(),
                    roles: BTreeSet::from([Role::Bidder]),
                },
            )],
        });
    }
    records.push(SinkRecord {
        log_index: 4,
        rejections: Vec::new(),
        traceparent: None,
        events: vec![meta(
            4,
            MetaEventKind::UserSuspended {
                user: UserId(21),
                reason: Reason::try_from("shill, \"bidding\"").unwrap(),
                by: UserId(1),
            },
        )],
    });
    martelo_sink::read_cursor(&pool, 0).await.unwrap();
    martelo_sink::write_batch(&pool, 0, 0, 4, &records)
        .await
        .expect("meta batch");

    let listing = Listing {
        title: Title::try_from("A lamp").unwrap(),
        description: Description::try_from("Brass.").unwrap(),
        currency: Currency::try_from("EUR").unwrap(),
        starting_price: Amount(100),
        has_reserve: false,
        buy_now_price: None,
        increment: IncrementPolicy::Fixed(Amount(10)),
        start: Timestamp(T0),
        end: Timestamp(T0 + 3600 * SECOND),
        soft_close: None,
    };
    let mut records = vec![SinkRecord {
        log_index: 1,
        rejections: Vec::new(),
        traceparent: None,
        events: vec![on_auction(
            1,
            AuctionEventKind::Created {
                seller: UserId(20),
                listing: Box::new(listing),
            },
        )],
    }];
    for bid in 0..4u64 {
        records.push(SinkRecord {
            log_index: 2 + bid,
            rejections: Vec::new(),
            traceparent: None,
            events: vec![on_auction(
                2 + bid,
                AuctionEventKind::BidAccepted {
                    bid_id: BidId(bid as u32),
                    bidder: UserId(21),
                    amount: Amount(100 + bid * 10),
                    proxy: false,
                    raise: false,
                },
            )],
        });
    }
    martelo_sink::read_cursor(&pool, 1).await.unwrap();
    martelo_sink::write_batch(&pool, 1, 0, 5, &records)
        .await
        .expect("auction batch");
    pool.close().await;
}

#[tokio::test]
async fn audit_prints_a_table_json_and_csv_and_pages_with_cursors() {
    let db = TestDb::create().await;
    fill(db.url()).await;
    let url = db.url();

    martelo(&["audit", "--postgres", url, "--kind", "user_suspended"])
        .await
        .must_exit(0)
        .must_print(&["AT", "KIND", "user_suspended", "1 events"])
        .must_not_print(&["bid_accepted", "more rows"]);

    let json = martelo(&["audit", "--postgres", url, "--actor", "1", "--json"]).await;
    json.must_exit(0);
    let document: serde_json::Value = serde_json::from_str(&json.stdout).expect("one JSON");
    let items = document["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["kind"], "user_suspended");
    assert_eq!(items[0]["user_id"], 21);
    assert_eq!(items[0]["group_id"], 0);
    assert!(document["next_cursor"].is_null());

    let csv = martelo(&["audit", "--postgres", url, "--auction", "5", "--csv"]).await;
    csv.must_exit(0);
    let lines: Vec<&str> = csv.stdout.trim_end().split("\r\n").collect();
    assert!(
        lines[0].starts_with("at,at_us,group_id,log_index"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 1 + 5, "created and four bids");
    assert!(lines[1].contains("auction_created"));

    // Pages of 2 over bidder 21's events: registration, suspension, four bids.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut args = vec![
            "audit",
            "--postgres",
            url,
            "--user",
            "21",
            "--limit",
            "2",
            "--json",
        ];
        if let Some(cursor) = &cursor {
            args.extend(["--cursor", cursor.as_str()]);
        }
        let run = martelo(&args).await;
        run.must_exit(0);
        let page: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        for item in page["items"].as_array().expect("items") {
            seen.push((item["group_id"].as_i64(), item["log_index"].as_i64()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(unique.len(), 6, "no duplicate across pages");

    martelo(&["audit", "--postgres", url, "--limit", "2"])
        .await
        .must_exit(0)
        .must_print(&["more rows: continue with --cursor e1:"]);
}

#[tokio::test]
async fn audit_refuses_bad_input_and_never_shows_the_password() {
    let db = TestDb::create().await;
    fill(db.url()).await;
    martelo(&["audit", "--postgres", db.url(), "--cursor", "c1:1:2"])
        .await
        .must_exit(1)
        .must_say(&["invalid cursor"]);
    martelo(&["audit", "--postgres", db.url(), "--limit", "201"])
        .await
        .must_exit(1)
        .must_say(&["1..=200"]);
    martelo(&[
        "audit",
        "--postgres",
        db.url(),
        "--from",
        "20",
        "--to",
        "10",
    ])
    .await
    .must_exit(1)
    .must_say(&["later than from"]);
    martelo(&[
        "audit",
        "--postgres",
        "postgres://reader:s3cret@127.0.0.1:1/nowhere",
        "--kind",
        "bid_accepted",
    ])
    .await
    .must_exit(1)
    .must_say(&["reader:***@127.0.0.1:1"])
    .must_not_say(&["s3cret"]);
}
