//! The read queries (`martelo_sink::query`) against the real Postgres, on rows written by
//! the real batch writer: results, filters, keyset paging (no gap, no duplicate), cursor and
//! limit errors, CSV; and, on ~100k generated bids, that no query plan scans a big table
//! sequentially. Each test has its own database.

mod support;

#[path = "../examples/plan_data/mod.rs"]
mod plan_data;

use std::collections::BTreeSet;

use martelo_engine::meta::{DisplayName, Username};
use martelo_engine::{
    Amount, AuctionEvent, AuctionEventKind, AuctionId, AuctionResult, BidId, Currency, Description,
    Event, IncrementPolicy, Listing, MetaEvent, MetaEventKind, Reason, Role, SaleKind, Timestamp,
    Title, UnsoldReason, UserId,
};
use martelo_sink::query::{
    self, AuditFilter, AuditQuery, BidHistoryQuery, ClosedAuctionsQuery, Limit, Page, QueryError,
    ResultFilter, UserBidsQuery, UserWinsQuery,
};
use martelo_sink::{SinkRecord, migrate, read_cursor, write_batch};
use sqlx::PgPool;
use support::TestDb;

const T0: u64 = 1_800_000_000_000_000;
const SECOND: u64 = 1_000_000;
const ADMIN: u64 = 1;
/// Sellers 10 and 11; bidders 20, 21 (registered) and 22 (never registered here).
const BIDDERS: [u64; 3] = [20, 21, 22];

/// Records of one group, with log indexes and per-auction seqs handed out in order.
#[derive(Default)]
struct Log {
    records: Vec<SinkRecord>,
    index: u64,
    seqs: std::collections::BTreeMap<u64, u64>,
}

impl Log {
    fn entry(&mut self, events: Vec<Event>) {
        self.index += 1;
        self.records.push(SinkRecord {
            log_index: self.index,
            rejections: Vec::new(),
            traceparent: None,
            events,
        });
    }

    fn auction(&mut self, auction: u64, at: u64, kind: AuctionEventKind) -> Event {
        let seq = self.seqs.entry(auction).or_insert(0);
        *seq += 1;
        Event::Auction(AuctionEvent {
            auction_id: AuctionId(auction),
            seq: *seq,
            at: Timestamp(at),
            kind,
        })
    }

    fn create(&mut self, auction: u64, seller: u64, at: u64) {
        let listing = Listing {
            title: Title::try_from(format!("Lot {auction}").as_str()).unwrap(),
            description: Description::try_from("Brass.").unwrap(),
            currency: Currency::try_from("EUR").unwrap(),
            starting_price: Amount(100),
            has_reserve: false,
            buy_now_price: None,
            increment: IncrementPolicy::Fixed(Amount(10)),
            start: Timestamp(at),
            end: Timestamp(at + 3600 * SECOND),
            soft_close: None,
        };
        let event = self.auction(
            auction,
            at,
            AuctionEventKind::Created {
                seller: UserId(seller),
                listing: Box::new(listing),
            },
        );
        self.entry(vec![event]);
    }

    fn bid(&mut self, auction: u64, bid_id: u32, bidder: u64, amount: u64, at: u64) {
        let accepted = self.auction(
            auction,
            at,
            AuctionEventKind::BidAccepted {
                bid_id: BidId(bid_id),
                bidder: UserId(bidder),
                amount: Amount(amount),
                proxy: false,
                raise: false,
            },
        );
        let price = self.auction(
            auction,
            at,
            AuctionEventKind::PriceChanged {
                price: Amount(amount),
                leader: UserId(bidder),
                reserve_met: true,
            },
        );
        self.entry(vec![accepted, price]);
    }

    fn close(&mut self, auction: u64, at: u64, result: AuctionResult) {
        let event = self.auction(auction, at, AuctionEventKind::Closed { result });
        self.entry(vec![event]);
    }
}

/// Accounts in the meta group: the admin, two sellers, two of the three bidders; then the
/// admin suspends bidder 21.
fn meta_records() -> Vec<SinkRecord> {
    let meta = |seq: u64, kind: MetaEventKind| {
        Event::Meta(MetaEvent {
            seq,
            at: Timestamp(T0 + seq * SECOND),
            kind,
        })
    };
    let mut records = Vec::new();
    for (seq, (user, name)) in [
        (ADMIN, "root"),
        (10, "sam"),
        (11, "sue"),
        (20, "ada"),
        (21, "bob"),
    ]
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
                    display_name: DisplayName::try_from(format!("{name} display").as_str())
                        .unwrap(),
                    roles: BTreeSet::from([Role::Bidder]),
                },
            )],
        });
    }
    records.push(SinkRecord {
        log_index: 6,
        rejections: Vec::new(),
        traceparent: None,
        events: vec![meta(
            6,
            MetaEventKind::UserSuspended {
                user: UserId(21),
                reason: Reason::try_from("shill bidding").unwrap(),
                by: UserId(ADMIN),
            },
        )],
    });
    records
}

/// Group 1: auction 100 with 7 bids (open); auctions 1..=12 closed, some at the same
/// instant, sold / unsold / cancelled, by sellers 10 and 11.
fn auction_records() -> Log {
    let mut log = Log::default();
    log.create(100, 10, T0);
    for bid in 0..7u32 {
        let bidder = BIDDERS[bid as usize % 3];
        log.bid(
            100,
            bid,
            bidder,
            100 + u64::from(bid) * 10,
            T0 + (10 + u64::from(bid)) * SECOND,
        );
    }
    for auction in 1..=12u64 {
        let seller = if auction % 2 == 0 { 10 } else { 11 };
        log.create(auction, seller, T0 + (200 + auction) * SECOND);
        let winner = BIDDERS[auction as usize % 3];
        log.bid(auction, 0, winner, 200, T0 + (300 + auction) * SECOND);
        // Pairs of auctions close at the same instant: the keyset's tie-break is the id.
        let closed_at = T0 + (1000 + auction / 2) * SECOND;
        let result = match auction % 3 {
            0 => AuctionResult::Sold {
                winner: UserId(winner),
                price: Amount(200),
                via: SaleKind::Bidding,
            },
            1 => AuctionResult::Unsold {
                reason: UnsoldReason::ReserveNotMet,
            },
            _ => AuctionResult::Cancelled {
                by: UserId(ADMIN),
                reason: Some(Reason::try_from("fake listing").unwrap()),
            },
        };
        log.close(auction, closed_at, result);
    }
    log
}

/// A migrated database with the meta group's and group 1's records written by the writer.
async fn filled(db: &TestDb) -> PgPool {
    let pool = db.pool();
    migrate(&pool).await.expect("migrate");
    let meta = meta_records();
    read_cursor(&pool, 0).await.unwrap();
    write_batch(&pool, 0, 0, meta.len() as u64, &meta)
        .await
        .expect("meta batch");
    let log = auction_records();
    read_cursor(&pool, 1).await.unwrap();
    // Two batches, so the rows come through the writer's cursor path more than once.
    let half = log.records.len() / 2;
    let middle = log.records[half - 1].log_index;
    write_batch(&pool, 1, 0, middle, &log.records[..half])
        .await
        .expect("first batch");
    write_batch(&pool, 1, middle, log.index, &log.records[half..])
        .await
        .expect("second batch");
    pool
}

fn limit(rows: u64) -> Limit {
    Limit::page(Some(rows)).unwrap()
}

/// Every page of a paged query, following `next_cursor` until it is `None`.
async fn all_pages<T, F, Fut>(mut page_at: F) -> Vec<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, QueryError>>,
{
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = page_at(cursor).await.expect("page");
        pages.push(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
        assert!(pages.len() < 100, "paging does not end");
    }
}

#[tokio::test]
async fn an_auctions_bid_history_is_public_fields_in_seq_order_paged_without_gaps() {
    let db = TestDb::create().await;
    let pool = filled(&db).await;
    let everything =
        query::bid_history(&pool, &BidHistoryQuery::new(100, None, limit(200)).unwrap())
            .await
            .unwrap();
    assert_eq!(everything.next_cursor, None);
    let bids = &everything.items;
    assert_eq!(bids.len(), 7);
    assert_eq!(
        bids.iter().map(|bid| bid.bid_id).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    assert!(bids.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    assert_eq!(
        (
            bids[3].bidder_id,
            bids[3].amount,
            bids[3].price_after,
            bids[3].leader_after
        ),
        (20, 130, 130, 20)
    );
    assert_eq!(bids[3].at_us, (T0 + 13 * SECOND) as i64);
    assert_eq!(bids[0].bidder_name.as_deref(), Some("ada display"));
    assert_eq!(bids[2].bidder_name, None, "bidder 22 has no account here");
    let json = serde_json::to_value(&bids[0]).unwrap();
    let fields: BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        !fields.iter().any(|field| field.contains("max")),
        "no proxy maximum: {fields:?}"
    );

    let pages = all_pages(|cursor| {
        let after = cursor.map(|seq| seq.parse::<u64>().unwrap());
        let pool = pool.clone();
        async move {
            query::bid_history(&pool, &BidHistoryQuery::new(100, after, limit(3)).unwrap()).await
        }
    })
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(pages.concat(), everything.items);

    let unknown = query::bid_history(&pool, &BidHistoryQuery::new(999, None, limit(5)).unwrap())
        .await
        .unwrap();
    assert!(unknown.items.is_empty());
}

#[tokio::test]
async fn closed_auctions_are_newest_first_filtered_and_paged_across_ties() {
    let db = TestDb::create().await;
    let pool = filled(&db).await;
    let closed = |result, seller, winner, cursor: Option<String>, rows| {
        let pool = pool.clone();
        async move {
            let query =
                ClosedAuctionsQuery::new(result, seller, winner, cursor.as_deref(), limit(rows))?;
            query::closed_auctions(&pool, &query).await
        }
    };
    let everything = closed(None, None, None, None, 200).await.unwrap().items;
    assert_eq!(everything.len(), 12, "the open auction 100 is not listed");
    let keys: Vec<(i64, u64)> = everything
        .iter()
        .map(|row| (-row.closed_at_us, row.auction_id))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "closed_at DESC, auction_id ASC");
    assert_eq!(
        everything[0].auction_id, 12,
        "auction 12 alone closes last (1006 s)"
    );
    let sold = everything.iter().find(|row| row.auction_id == 3).unwrap();
    assert_eq!(
        (
            sold.result.as_str(),
            sold.winner_id,
            sold.price,
            sold.sale_kind.as_deref()
        ),
        ("sold", Some(20), Some(200), Some("bidding"))
    );
    let cancelled = everything.iter().find(|row| row.auction_id == 2).unwrap();
    assert_eq!(
        (cancelled.result.as_str(), cancelled.cancelled_by),
        ("cancelled", Some(ADMIN))
    );

    // Pages of 5 cross the ties (auctions closing at the same instant): no gap, no duplicate.
    let pages = all_pages(|cursor| closed(None, None, None, cursor, 5)).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 2]);
    assert_eq!(pages.concat(), everything);

    let ids = |rows: &[martelo_sink::query::ClosedAuctionRow]| {
        rows.iter()
            .map(|row| row.auction_id)
            .collect::<BTreeSet<_>>()
    };
    let sold = closed(Some(ResultFilter::Sold), None, None, None, 200)
        .await
        .unwrap();
    assert_eq!(ids(&sold.items), BTreeSet::from([3, 6, 9, 12]));
    let unsold = closed(Some(ResultFilter::Unsold), None, None, None, 200)
        .await
        .unwrap();
    assert_eq!(ids(&unsold.items), BTreeSet::from([1, 4, 7, 10]));
    let by_seller = closed(None, Some(10), None, None, 200).await.unwrap();
    assert_eq!(ids(&by_seller.items), BTreeSet::from([2, 4, 6, 8, 10, 12]));
    // Sold auctions 3, 6, 9, 12 were won by BIDDERS[auction % 3] = 20.
    let won = closed(None, None, Some(20), None, 200).await.unwrap();
    assert_eq!(ids(&won.items), BTreeSet::from([3, 6, 9, 12]));
    let both = closed(Some(ResultFilter::Sold), Some(11), Some(20), None, 200)
        .await
        .unwrap();
    assert_eq!(ids(&both.items), BTreeSet::from([3, 9]));
    let paged_filter = all_pages(|cursor| closed(None, Some(10), None, cursor, 4)).await;
    assert_eq!(paged_filter.concat(), by_seller.items);
}

#[tokio::test]
async fn a_users_bids_and_wins_are_theirs_newest_first_and_paged() {
    let db = TestDb::create().await;
    let pool = filled(&db).await;
    let bids_page = |user, cursor: Option<String>, rows| {
        let pool = pool.clone();
        async move {
            query::user_bids(
                &pool,
                &UserBidsQuery::new(user, cursor.as_deref(), limit(rows))?,
            )
            .await
        }
    };
    let all = bids_page(20, None, 200).await.unwrap().items;
    // Bidder 20: bids 0, 3, 6 on auction 100, and auctions 3, 6, 9, 12.
    assert_eq!(all.len(), 7);
    assert!(all.windows(2).all(|pair| pair[0].at_us >= pair[1].at_us));
    assert_eq!(all[0].auction_id, 12);
    assert_eq!(all[0].title.as_deref(), Some("Lot 12"));
    assert_eq!(all[0].auction_status.as_deref(), Some("sold"));
    assert!(all[0].leading_now);
    let on_100: Vec<_> = all.iter().filter(|bid| bid.auction_id == 100).collect();
    assert_eq!(
        on_100.iter().map(|bid| bid.bid_id).collect::<Vec<_>>(),
        [6, 3, 0]
    );
    assert!(on_100[0].leading_now, "bid 6 is the last on auction 100");
    let pages = all_pages(|cursor| bids_page(20, cursor, 2)).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2, 1]);
    assert_eq!(pages.concat(), all);

    let wins_page = |user, cursor: Option<String>, rows| {
        let pool = pool.clone();
        async move {
            query::user_wins(
                &pool,
                &UserWinsQuery::new(user, cursor.as_deref(), limit(rows))?,
            )
            .await
        }
    };
    let wins = wins_page(20, None, 200).await.unwrap().items;
    assert_eq!(
        wins.iter().map(|win| win.auction_id).collect::<Vec<_>>(),
        [12, 9, 6, 3]
    );
    assert_eq!(wins[0].price, Some(200));
    assert_eq!(wins[0].seller_id, Some(10));
    let pages = all_pages(|cursor| wins_page(20, cursor, 3)).await;
    assert_eq!(pages.concat(), wins);
    assert!(wins_page(21, None, 10).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn the_audit_search_filters_pages_and_exports_csv() {
    let db = TestDb::create().await;
    let pool = filled(&db).await;
    let search = |filter: AuditFilter, cursor: Option<String>, rows| {
        let pool = pool.clone();
        async move {
            let query = AuditQuery::new(&filter, cursor.as_deref(), limit(rows))?;
            query::search_audit(&pool, &query).await
        }
    };
    let everything = search(AuditFilter::default(), None, 200)
        .await
        .unwrap()
        .items;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(everything.len() as i64, total);
    let keys: Vec<_> = everything
        .iter()
        .map(|row| (row.at_us, row.group_id, row.log_index, row.position))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "oldest first, no duplicate");
    assert_eq!(everything[0].at, "2027-01-15T08:00:00.000000Z");
    assert_eq!(everything[0].kind, "auction_created");
    assert_eq!(everything[1].kind, "user_registered");

    // Pages of 7 over every event: no gap, no duplicate.
    let pages = all_pages(|cursor| search(AuditFilter::default(), cursor, 7)).await;
    assert_eq!(pages.concat(), everything);

    let suspended = search(
        AuditFilter {
            actor: Some(ADMIN),
            kind: Some("user_suspended".into()),
            ..AuditFilter::default()
        },
        None,
        50,
    )
    .await
    .unwrap()
    .items;
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0].user_id, Some(21));
    assert_eq!(suspended[0].group_id, 0);

    let by_admin = search(
        AuditFilter {
            actor: Some(ADMIN),
            ..AuditFilter::default()
        },
        None,
        50,
    )
    .await
    .unwrap()
    .items;
    // The suspension and the four cancellations (auctions 2, 5, 8, 11).
    assert_eq!(by_admin.len(), 5);

    let auction_100 = search(
        AuditFilter {
            auction: Some(100),
            ..AuditFilter::default()
        },
        None,
        50,
    )
    .await
    .unwrap()
    .items;
    assert_eq!(
        auction_100.len(),
        1 + 7 * 2,
        "created, then bid + price per bid"
    );
    let of_user_22 = search(
        AuditFilter {
            user: Some(22),
            kind: Some("bid_accepted".into()),
            ..AuditFilter::default()
        },
        None,
        50,
    )
    .await
    .unwrap()
    .items;
    // Bids 2 and 5 on auction 100, and one on each of auctions 2, 5, 8, 11.
    assert_eq!(of_user_22.len(), 6);
    assert!(of_user_22.iter().all(|row| row.kind == "bid_accepted"));

    // [from, to): from inclusive, to exclusive.
    let (from, to) = (T0 + 10 * SECOND, T0 + 13 * SECOND);
    let window = search(
        AuditFilter {
            from_us: Some(from),
            to_us: Some(to),
            ..AuditFilter::default()
        },
        None,
        50,
    )
    .await
    .unwrap()
    .items;
    assert_eq!(
        window.len(),
        6,
        "bids 0, 1, 2 on auction 100, two events each"
    );
    assert!(
        window
            .iter()
            .all(|row| (from as i64..to as i64).contains(&row.at_us))
    );

    let csv = query::audit_csv(&window);
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 1 + window.len());
    assert!(lines[0].starts_with("at,at_us,group_id"));
    assert!(lines[1].contains(&format!(",{from},1,")), "{}", lines[1]);
}

#[tokio::test]
async fn bad_cursors_and_limits_are_typed_errors() {
    let db = TestDb::create().await;
    let pool = filled(&db).await;
    let first = query::closed_auctions(
        &pool,
        &ClosedAuctionsQuery::new(None, None, None, None, limit(2)).unwrap(),
    )
    .await
    .unwrap();
    let closed_cursor = first.next_cursor.expect("more pages");
    // A closed-auctions cursor is not an audit cursor, nor a wins cursor.
    let error =
        AuditQuery::new(&AuditFilter::default(), Some(&closed_cursor), limit(2)).unwrap_err();
    assert!(matches!(error, QueryError::Cursor(_)), "{error}");
    assert!(UserWinsQuery::new(20, Some(&closed_cursor), limit(2)).is_err());
    for garbage in [
        "",
        "%%%",
        "c1:1",
        "c1:1:2:3",
        "c1:-1:2",
        "c1:1:99999999999999999999",
    ] {
        let error =
            ClosedAuctionsQuery::new(None, None, None, Some(garbage), limit(2)).unwrap_err();
        assert_eq!(error.code(), "invalid_cursor", "{garbage:?}");
        assert!(error.is_input());
    }
    assert_eq!(Limit::page(Some(0)).unwrap_err().code(), "invalid_limit");
    assert_eq!(Limit::page(Some(201)).unwrap_err().code(), "invalid_limit");
    assert!(Limit::export(Some(100_000)).is_ok());
    assert!(Limit::export(Some(100_001)).is_err());
    // Every id has a stored form (`martelo_sink::ids`); a seq above i64::MAX has none.
    assert!(UserBidsQuery::new(u64::MAX, None, limit(2)).is_ok());
    assert_eq!(
        BidHistoryQuery::new(1, Some(u64::MAX), limit(2))
            .unwrap_err()
            .code(),
        "invalid_filter"
    );
    // A database that is not there is a database error, not an input error.
    let nowhere =
        martelo_sink::PostgresUrl::try_from("postgres://postgres@127.0.0.1:1/nowhere".to_owned())
            .unwrap();
    let reader = query::connect_reader(&nowhere, 1).unwrap();
    let error = query::user_wins(&reader, &UserWinsQuery::new(20, None, limit(2)).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "database");
    assert!(!error.is_input());
}

#[tokio::test]
async fn the_reader_pool_cannot_write() {
    let db = TestDb::create().await;
    let pool = filled(&db).await;
    let url = martelo_sink::PostgresUrl::try_from(db.url().to_owned()).unwrap();
    let reader = query::connect_reader(&url, 1).unwrap();
    let page = query::user_wins(&reader, &UserWinsQuery::new(20, None, limit(2)).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let write = sqlx::query("DELETE FROM events").execute(&reader).await;
    assert!(write.is_err(), "read-only sessions");
    drop(pool);
}

/// On ~100k generated bids (and ~110k events, 5k auctions), every query's plan reads
/// `bids`, `events`, `outcomes` and `auctions` through an index.
#[tokio::test]
async fn no_query_plan_scans_a_big_table_sequentially() {
    let db = TestDb::create().await;
    let pool = db.pool();
    migrate(&pool).await.unwrap();
    plan_data::generate(&pool, 100_000).await.expect("generate");
    let bids: i64 = sqlx::query_scalar("SELECT count(*) FROM bids")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(bids, 100_000);
    let samples = plan_data::samples(&pool).await;
    assert!(samples.len() >= 15);
    let big = ["bids", "events", "outcomes", "auctions"];
    let mut offenders = Vec::new();
    for (name, statement) in &samples {
        let plan = query::explain(&pool, statement.as_ref(), false)
            .await
            .unwrap();
        let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
        let scans = plan_data::seq_scans(&plan);
        if scans.iter().any(|table| big.contains(&table.as_str())) {
            offenders.push(format!("{name}: {scans:?}\n{plan:#}"));
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n\n"));
}

#[test]
fn the_plan_checker_finds_a_seq_scan() {
    // The checker above, shown to catch what it looks for.
    let plan = serde_json::json!([{"Plan": {"Node Type": "Limit", "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "bids"}
    ]}}]);
    assert_eq!(plan_data::seq_scans(&plan), ["bids"]);
}
