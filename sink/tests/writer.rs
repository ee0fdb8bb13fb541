//! The batch writer against the real Postgres: rows, the cursor's compare-and-set, replays,
//! concurrent writers and concurrent migrations. Each test has its own database.

mod support;

use std::collections::BTreeSet;

use martelo_engine::meta::{DisplayName, Username};
use martelo_engine::{
    Amount, AuctionEvent, AuctionEventKind, AuctionId, AuctionResult, BidId, Currency, Description,
    Event, IncrementPolicy, Listing, MetaEvent, MetaEventKind, Reason, Role, SaleKind, Timestamp,
    Title, UserId,
};
use martelo_sink::{CursorMoved, SinkError, SinkRecord, migrate, read_cursor, write_batch};
use sqlx::PgPool;
use support::TestDb;

const T0: u64 = 1_800_000_000_000_000;

fn auction_event(auction: u64, seq: u64, at: u64, kind: AuctionEventKind) -> Event {
    Event::Auction(AuctionEvent {
        auction_id: AuctionId(auction),
        seq,
        at: Timestamp(at),
        kind,
    })
}

fn listing() -> Listing {
    Listing {
        title: Title::try_from("A lamp").unwrap(),
        description: Description::try_from("Brass.").unwrap(),
        currency: Currency::try_from("EUR").unwrap(),
        starting_price: Amount(100),
        has_reserve: false,
        buy_now_price: Some(Amount(10_000)),
        increment: IncrementPolicy::Fixed(Amount(10)),
        start: Timestamp(T0),
        end: Timestamp(T0 + 60_000_000),
        soft_close: None,
    }
}

/// Auction `auction` created at index `first`, two bids (the second outbids the first and
/// moves the end), then sold: four records.
fn auction_life(auction: u64, first: u64) -> Vec<SinkRecord> {
    let (alice, bob) = (UserId(20), UserId(30));
    let at = |i: u64| T0 + i * 1_000;
    vec![
        SinkRecord {
            log_index: first,
            rejections: Vec::new(),
            traceparent: None,
            events: vec![auction_event(
                auction,
                1,
                at(0),
                AuctionEventKind::Created {
                    seller: UserId(10),
                    listing: Box::new(listing()),
                },
            )],
        },
        SinkRecord {
            log_index: first + 1,
            rejections: Vec::new(),
            traceparent: None,
            events: vec![
                auction_event(
                    auction,
                    2,
                    at(1),
                    AuctionEventKind::BidAccepted {
                        bid_id: BidId(0),
                        bidder: alice,
                        amount: Amount(100),
                        proxy: false,
                        raise: false,
                    },
                ),
                auction_event(
                    auction,
                    3,
                    at(1),
                    AuctionEventKind::PriceChanged {
                        price: Amount(100),
                        leader: alice,
                        reserve_met: true,
                    },
                ),
            ],
        },
        SinkRecord {
            log_index: first + 3,
            rejections: Vec::new(),
            traceparent: None,
            events: vec![
                auction_event(
                    auction,
                    4,
                    at(3),
                    AuctionEventKind::BidAccepted {
                        bid_id: BidId(1),
                        bidder: bob,
                        amount: Amount(150),
                        proxy: false,
                        raise: false,
                    },
                ),
                auction_event(
                    auction,
                    5,
                    at(3),
                    AuctionEventKind::Outbid {
                        bidder: alice,
                        by: bob,
                    },
                ),
                auction_event(
                    auction,
                    6,
                    at(3),
                    AuctionEventKind::PriceChanged {
                        price: Amount(150),
                        leader: bob,
                        reserve_met: true,
                    },
                ),
                auction_event(
                    auction,
                    7,
                    at(3),
                    AuctionEventKind::EndExtended {
                        end: Timestamp(T0 + 90_000_000),
                    },
                ),
            ],
        },
        SinkRecord {
            log_index: first + 4,
            rejections: Vec::new(),
            traceparent: None,
            events: vec![auction_event(
                auction,
                8,
                T0 + 90_000_000,
                AuctionEventKind::Closed {
                    result: AuctionResult::Sold {
                        winner: bob,
                        price: Amount(150),
                        via: SaleKind::Bidding,
                    },
                },
            )],
        },
    ]
}

async fn migrated(db: &TestDb) -> PgPool {
    let pool = db.pool();
    migrate(&pool).await.expect("migrate");
    pool
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn counts(pool: &PgPool) -> Vec<i64> {
    let mut all = Vec::new();
    for table in [
        "events",
        "auctions",
        "bids",
        "outcomes",
        "accounts",
        "admin_actions",
    ] {
        all.push(count(pool, table).await);
    }
    all
}

#[tokio::test]
async fn a_batch_writes_the_read_model_and_moves_the_cursor() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    assert_eq!(read_cursor(&pool, 1).await.unwrap(), 0);
    let written = write_batch(&pool, 1, 0, 9, &auction_life(7, 2))
        .await
        .unwrap();
    assert_eq!((written.cursor, written.events), (9, 8));
    assert_eq!(read_cursor(&pool, 1).await.unwrap(), 9);

    let (status, price, leader, end_micros): (String, i64, i64, i64) = sqlx::query_as(
        "SELECT status, current_price, leader_id, \
         (extract(epoch from effective_end_at) * 1000000)::bigint FROM auctions \
         WHERE auction_id = 7",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), price, leader), ("sold", 150, 30));
    assert_eq!(end_micros, (T0 + 90_000_000) as i64);

    let bids: Vec<(i32, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT bid_id, bidder_id, amount, price_after, leader_after, seq FROM bids \
         WHERE auction_id = 7 ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        bids,
        vec![(0, 20, 100, 100, 20, 2), (1, 30, 150, 150, 30, 4)]
    );

    let outcome: (String, Option<i64>, Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT result, winner_id, price, sale_kind FROM outcomes WHERE auction_id = 7",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        outcome,
        ("sold".into(), Some(30), Some(150), Some("bidding".into()))
    );

    let cursor_at: i64 = sqlx::query_scalar(
        "SELECT (extract(epoch from last_event_at) * 1000000)::bigint FROM sink_cursor \
         WHERE group_id = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        cursor_at,
        (T0 + 90_000_000) as i64,
        "time is the cluster's, not now()"
    );
    assert_eq!(count(&pool, "events").await, 8);
}

#[tokio::test]
async fn the_cas_loser_writes_nothing_and_gets_cursor_moved() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    read_cursor(&pool, 3).await.unwrap();
    write_batch(&pool, 3, 0, 5, &auction_life(1, 1))
        .await
        .unwrap();
    let before = counts(&pool).await;

    let stale = write_batch(&pool, 3, 0, 20, &auction_life(2, 10)).await;
    match stale {
        Err(SinkError::CursorMoved(moved)) => assert_eq!(
            moved,
            CursorMoved {
                group: 3,
                expected: 0,
                found: Some(5)
            }
        ),
        other => panic!("expected CursorMoved, got {other:?}"),
    }
    assert_eq!(
        counts(&pool).await,
        before,
        "the loser's rows were rolled back"
    );
    assert_eq!(read_cursor(&pool, 3).await.unwrap(), 5);
}

#[tokio::test]
async fn two_writers_of_one_group_at_once_commit_exactly_one_batch() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    read_cursor(&pool, 1).await.unwrap();
    let records = auction_life(4, 1);
    let other = db.pool();
    let (a, b) = tokio::join!(
        write_batch(&pool, 1, 0, 5, &records),
        write_batch(&other, 1, 0, 5, &records)
    );
    let outcomes = [a, b];
    let won = outcomes.iter().filter(|result| result.is_ok()).count();
    let lost = outcomes
        .iter()
        .filter(|result| matches!(result, Err(SinkError::CursorMoved(_))))
        .count();
    assert_eq!((won, lost), (1, 1), "{outcomes:?}");
    assert_eq!(count(&pool, "events").await, 8);
    assert_eq!(count(&pool, "bids").await, 2);
}

#[tokio::test]
async fn a_replayed_batch_changes_nothing() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    read_cursor(&pool, 1).await.unwrap();
    let records = auction_life(9, 1);
    write_batch(&pool, 1, 0, 5, &records).await.unwrap();
    let before = counts(&pool).await;
    let state: (String, i64, i64) =
        sqlx::query_as("SELECT status, current_price, seq FROM auctions WHERE auction_id = 9")
            .fetch_one(&pool)
            .await
            .unwrap();
    // A cursor put back by hand stands for any path that would replay: the keys hold.
    sqlx::query("UPDATE sink_cursor SET applied_index = 0 WHERE group_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    write_batch(&pool, 1, 0, 5, &records).await.unwrap();
    // And a replay of only the middle records (an older state) must not move it back.
    sqlx::query("UPDATE sink_cursor SET applied_index = 1 WHERE group_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    write_batch(&pool, 1, 1, 4, &records[1..3]).await.unwrap();
    assert_eq!(counts(&pool).await, before);
    let again: (String, i64, i64) =
        sqlx::query_as("SELECT status, current_price, seq FROM auctions WHERE auction_id = 9")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(again, state);
}

#[tokio::test]
async fn concurrent_migrations_both_succeed_and_apply_each_migration_once() {
    let db = TestDb::create().await;
    let (a, b) = (db.pool(), db.pool());
    let (first, second) = tokio::join!(migrate(&a), migrate(&b));
    first.expect("first migrate");
    second.expect("second migrate");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&a)
        .await
        .unwrap();
    assert_eq!(applied as usize, martelo_sink::MIGRATOR.iter().count());
    migrate(&a).await.expect("a third run is a no-op");
}

#[tokio::test]
async fn an_out_of_order_or_out_of_range_batch_is_refused_before_any_write() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    read_cursor(&pool, 1).await.unwrap();
    let mut records = auction_life(1, 1);
    records.swap(0, 1);
    let refused = write_batch(&pool, 1, 0, 10, &records).await;
    assert!(
        matches!(refused, Err(SinkError::InvalidBatch { .. })),
        "{refused:?}"
    );
    let below = write_batch(&pool, 1, 3, 10, &auction_life(1, 1)).await;
    assert!(
        matches!(below, Err(SinkError::InvalidBatch { .. })),
        "{below:?}"
    );
    assert_eq!(read_cursor(&pool, 1).await.unwrap(), 0);
    assert_eq!(count(&pool, "events").await, 0);
}

#[tokio::test]
async fn meta_events_write_public_accounts_and_admin_actions_never_a_hash() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    read_cursor(&pool, 0).await.unwrap();
    let meta = |seq: u64, kind: MetaEventKind| {
        Event::Meta(MetaEvent {
            seq,
            at: Timestamp(T0 + seq),
            kind,
        })
    };
    let (admin, user) = (UserId(1), UserId(2));
    let records = vec![
        SinkRecord {
            log_index: 1,
            rejections: Vec::new(),
            traceparent: None,
            events: vec![meta(
                1,
                MetaEventKind::UserRegistered {
                    user,
                    username: Username::try_from("ada").unwrap(),
                    display_name: DisplayName::try_from("Ada L.").unwrap(),
                    roles: BTreeSet::from([Role::Bidder]),
                },
            )],
        },
        SinkRecord {
            log_index: 2,
            rejections: Vec::new(),
            traceparent: None,
            events: vec![meta(
                2,
                MetaEventKind::RolesChanged {
                    user,
                    roles: BTreeSet::from([Role::Bidder, Role::Seller]),
                    by: admin,
                },
            )],
        },
        SinkRecord {
            log_index: 3,
            rejections: Vec::new(),
            traceparent: None,
            events: vec![
                meta(
                    3,
                    MetaEventKind::UserSuspended {
                        user,
                        reason: Reason::try_from("shill bidding").unwrap(),
                        by: admin,
                    },
                ),
                meta(4, MetaEventKind::AllSessionsRevoked { user }),
            ],
        },
    ];
    write_batch(&pool, 0, 0, 3, &records).await.unwrap();
    let account: (String, Vec<String>, String, Option<String>) = sqlx::query_as(
        "SELECT username, roles, status, suspended_reason FROM accounts WHERE user_id = 2",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        account,
        (
            "ada".into(),
            vec!["bidder".into(), "seller".into()],
            "suspended".into(),
            Some("shill bidding".into())
        )
    );
    type Action = (String, Option<i64>, Option<i64>, Option<String>);
    let actions: Vec<Action> = sqlx::query_as(
        "SELECT kind, actor_id, subject_id, reason FROM admin_actions ORDER BY log_index",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        vec![
            ("roles_changed".into(), Some(1), Some(2), None),
            (
                "user_suspended".into(),
                Some(1),
                Some(2),
                Some("shill bidding".into())
            ),
        ]
    );
    let secret_columns: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' \
         AND (column_name LIKE '%password%' OR column_name LIKE '%hash%' \
              OR column_name LIKE '%token%')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(secret_columns, 0);
}
