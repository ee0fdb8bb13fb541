//! The I6 checker (`verify::violations`) against the real Postgres, without a cluster: the
//! engine applies a run of commands, the writer copies its events, the checker finds
//! nothing; then each kind of planted damage is reported as its own typed violation.

mod support;

use martelo_engine::outcome::Rejection;
use martelo_engine::{
    Action, Actor, Amount, ApplyCtx, AuctionId, AuctionSpec, AuctionView, Command, Currency,
    Description, IncrementPolicy, Request, RequestId, Role, State, Timestamp, Title, UserId,
};
use martelo_sink::query::{
    self, AuditFilter, AuditQuery, BidHistoryQuery, ClosedAuctionsQuery, Limit, Page, QueryError,
    UserBidsQuery, UserWinsQuery,
};
use martelo_sink::verify::{Violation, ViolationClass, violations};
use martelo_sink::{SinkError, SinkRecord, migrate, read_cursor, write_batch};
use sqlx::PgPool;
use support::TestDb;

const T0: u64 = 1_800_000_000_000_000;

/// A valid W3C traceparent whose trace id is `index` in hex.
fn traceparent(index: u64) -> String {
    format!("00-{index:032x}-00f067aa0ba902b7-01")
}
const GROUP: u64 = 1;

fn request(user: u64, role: Role, id: &str, action: Action) -> Command {
    Command::Request(Request {
        actor: Actor {
            user: UserId(user),
            role,
        },
        request_id: RequestId::try_from(id).expect("request id"),
        action,
    })
}

fn create(auction: u64, end: u64) -> Command {
    create_by(1, auction, end)
}

fn create_by(seller: u64, auction: u64, end: u64) -> Command {
    let spec = AuctionSpec {
        title: Title::try_from("A lamp").expect("title"),
        description: Description::try_from("Brass.").expect("description"),
        currency: Currency::try_from("EUR").expect("currency"),
        starting_price: Amount(100),
        reserve_price: None,
        buy_now_price: None,
        increment: IncrementPolicy::Fixed(Amount(10)),
        start: Timestamp(T0),
        end: Timestamp(end),
        soft_close: None,
    };
    let action = Action::CreateAuction {
        auction_id: AuctionId(auction),
        spec,
    };
    request(seller, Role::Seller, &format!("create-{auction}"), action)
}

fn place_bid(auction: u64, bidder: u64, amount: u64, id: &str) -> Command {
    let action = Action::PlaceBid {
        auction_id: AuctionId(auction),
        amount: Amount(amount),
        max: None,
    };
    request(bidder, Role::Bidder, id, action)
}

/// Applies `commands` at log indexes 1.. (1 ms apart), returning the records the sink
/// would read and the engine's views of `auctions`.
fn run(commands: &[Command], auctions: &[u64]) -> (Vec<SinkRecord>, Vec<AuctionView>) {
    let mut state = State::new();
    let mut records = Vec::new();
    for (index, command) in commands.iter().enumerate() {
        let log_index = index as u64 + 1;
        let ctx = ApplyCtx {
            log_index,
            timestamp: Timestamp(T0 + log_index * 1_000),
        };
        let outcome = state.apply(ctx, command);
        // As the state machine records them: the events, the rejection, the traceparent.
        let rejections: Vec<Rejection> = Rejection::of(command, ctx.timestamp, &outcome)
            .into_iter()
            .collect();
        if !outcome.events.is_empty() || !rejections.is_empty() {
            records.push(SinkRecord {
                log_index,
                events: outcome.events,
                rejections,
                traceparent: Some(traceparent(log_index)),
            });
        }
    }
    let views = auctions
        .iter()
        .map(|id| state.auction(AuctionId(*id)).expect("auction").view())
        .collect();
    (records, views)
}

async fn must_check(pool: &PgPool, views: &[AuctionView]) -> Vec<Violation> {
    violations(pool, views)
        .await
        .expect("the checker reads Postgres")
}

async fn execute(pool: &PgPool, statement: &str) {
    sqlx::query(statement)
        .execute(pool)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

#[tokio::test]
async fn the_checker_finds_nothing_after_a_faithful_copy_and_names_each_planted_damage() {
    let db = TestDb::create().await;
    let pool = db.pool();
    migrate(&pool).await.expect("migrate");
    // Auction 1 stays open with three bids; auction 2 gets a bid and closes (sold).
    let commands = [
        create(1, T0 + 600_000_000),
        create(2, T0 + 5_000),
        place_bid(1, 10, 100, "a"),
        place_bid(2, 11, 100, "b"),
        place_bid(1, 12, 150, "c"),
        place_bid(1, 10, 1, "too-low"),
        place_bid(1, 10, 200, "d"),
        Command::Close {
            auction_id: AuctionId(2),
        },
    ];
    let (records, views) = run(&commands, &[1, 2]);
    assert!(views[1].closed.is_some(), "auction 2 closed");
    assert_eq!(views[0].bids.len(), 3);
    let last = records.last().expect("records").log_index;
    assert_eq!(read_cursor(&pool, GROUP).await.expect("cursor"), 0);
    write_batch(&pool, GROUP, 0, last, &records)
        .await
        .expect("write");
    assert_eq!(must_check(&pool, &views).await, Vec::<Violation>::new());

    // The engine has what Postgres lacks: a view with one more bid than was copied.
    let (_, ahead) = run(
        &[commands.as_slice(), &[place_bid(1, 12, 300, "e")]].concat(),
        &[1, 2],
    );
    let found = must_check(&pool, &ahead).await;
    assert!(
        found.contains(&Violation::BidMissing {
            auction: 1,
            bid_id: 3
        }),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::AuctionDiffers { auction: 1, .. })),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .all(|v| v.auction() == 1 && v.class() != ViolationClass::NotInEngine),
        "{found:#?}"
    );

    // Planted damage, one of each class.
    execute(
        &pool,
        "UPDATE bids SET amount = amount + 1 WHERE auction_id = 1 AND bid_id = 0",
    )
    .await;
    execute(
        &pool,
        "INSERT INTO events (group_id, log_index, position, at, kind, seq, auction_id, payload) \
         SELECT group_id, log_index, position + 100, at, kind, seq, auction_id, payload \
         FROM events WHERE auction_id = 1 AND seq = 1",
    )
    .await;
    execute(&pool, "DELETE FROM outcomes WHERE auction_id = 2").await;
    execute(
        &pool,
        "INSERT INTO outcomes (auction_id, group_id, log_index, seq, at, result) \
         VALUES (7, 1, 99, 1, now(), 'unsold')",
    )
    .await;
    let found = must_check(&pool, &views).await;
    let expected = [
        (ViolationClass::Differs, 1),
        (ViolationClass::Duplicate, 1),
        (ViolationClass::Missing, 2),
        (ViolationClass::NotInEngine, 7),
    ];
    let classes: Vec<(ViolationClass, u64)> =
        found.iter().map(|v| (v.class(), v.auction())).collect();
    for wanted in expected {
        assert!(classes.contains(&wanted), "{wanted:?} not in {found:#?}");
    }
    assert_eq!(found.len(), expected.len(), "only the planted: {found:#?}");
    assert!(found.contains(&Violation::EventDuplicated {
        auction: 1,
        seq: 1,
        copies: 2
    }));
    assert!(found.contains(&Violation::OutcomeMissing { auction: 2 }));
    assert!(found.contains(&Violation::OutcomeNotInEngine { auction: 7 }));
    // Every violation reads as a sentence naming its auction.
    for violation in &found {
        let text = violation.to_string();
        assert!(
            text.starts_with(&format!("auction {}:", violation.auction())),
            "{text}"
        );
    }
}

/// Every row of a paged query, following `next_cursor` until it is `None`.
async fn all_pages<T, F, Fut>(mut page_at: F) -> Vec<T>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, QueryError>>,
{
    let mut rows = Vec::new();
    let mut cursor = None;
    for _ in 0..100 {
        let page = page_at(cursor).await.expect("page");
        rows.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return rows,
        }
    }
    panic!("paging does not end");
}

/// Ids are opaque u64s: an auction id of `u64::MAX` or `i64::MAX + 1` (and user ids as
/// large) is written, read back through every query with the same id (filters and paging
/// cursors included), and the I6 checker agrees. Before `martelo_sink::ids` such an id
/// stopped the group's sink for good with `OutOfRange` (kind `out_of_range`).
#[tokio::test]
async fn ids_above_i64_max_are_written_read_back_and_verified() {
    const TOP: u64 = u64::MAX;
    const HALF: u64 = i64::MAX as u64 + 1;
    const SMALL: u64 = 5;
    const SELLER: u64 = u64::MAX - 1;
    const BIDDER: u64 = u64::MAX - 2;
    const RIVAL: u64 = HALF + 7;
    let db = TestDb::create().await;
    let pool = db.pool();
    migrate(&pool).await.expect("migrate");
    // Commands apply 1 ms apart: the bids land before the end, the closes after it.
    let end = T0 + 8_500;
    let commands = [
        create_by(SELLER, TOP, end),
        create_by(SELLER, HALF, end),
        create_by(SELLER, SMALL, end),
        place_bid(TOP, BIDDER, 100, "a"),
        place_bid(HALF, RIVAL, 100, "b"),
        place_bid(TOP, RIVAL, 150, "c"),
        place_bid(SMALL, BIDDER, 100, "d"),
        place_bid(HALF, BIDDER, 200, "e"),
        Command::Close {
            auction_id: AuctionId(TOP),
        },
        Command::Close {
            auction_id: AuctionId(HALF),
        },
        Command::Close {
            auction_id: AuctionId(SMALL),
        },
    ];
    let (records, views) = run(&commands, &[TOP, HALF, SMALL]);
    assert!(views.iter().all(|view| view.closed.is_some()), "all sold");
    let last = records.last().expect("records").log_index;
    read_cursor(&pool, GROUP).await.expect("cursor");
    let written = write_batch(&pool, GROUP, 0, last, &records).await;
    // The old behaviour: `SinkError::OutOfRange` ("auction id … does not fit …").
    assert!(
        !matches!(written, Err(SinkError::OutOfRange(_))),
        "{written:?}"
    );
    written.expect("the batch with ids above i64::MAX is written");
    assert_eq!(read_cursor(&pool, GROUP).await.expect("cursor"), last);
    assert_eq!(must_check(&pool, &views).await, Vec::<Violation>::new());

    // SQL shows such ids as negative BIGINTs: u64::MAX is -1, i64::MAX + 1 is i64::MIN.
    let stored: Vec<i64> = sqlx::query_scalar("SELECT auction_id FROM auctions ORDER BY 1")
        .fetch_all(&pool)
        .await
        .expect("ids");
    assert_eq!(stored, [i64::MIN, -1, SMALL as i64]);

    let limit = |rows| Limit::page(Some(rows)).expect("limit");
    let history = query::bid_history(
        &pool,
        &BidHistoryQuery::new(TOP, None, limit(10)).expect("query"),
    )
    .await
    .expect("history");
    let bidders: Vec<(u64, u64)> = history
        .items
        .iter()
        .map(|bid| (bid.bidder_id, bid.leader_after))
        .collect();
    assert_eq!(bidders, [(BIDDER, BIDDER), (RIVAL, RIVAL)]);

    // Closed auctions, one per page: the cursor carries the id and comes back to it.
    let closed = all_pages(|cursor| {
        let pool = pool.clone();
        async move {
            let query =
                ClosedAuctionsQuery::new(None, Some(SELLER), None, cursor.as_deref(), limit(1))?;
            query::closed_auctions(&pool, &query).await
        }
    })
    .await;
    let mut ids: Vec<u64> = closed.iter().map(|row| row.auction_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [SMALL, HALF, TOP]);
    assert!(closed.iter().all(|row| row.seller_id == SELLER));
    let top = closed
        .iter()
        .find(|row| row.auction_id == TOP)
        .expect("top");
    assert_eq!(top.winner_id, Some(RIVAL));
    let won = query::closed_auctions(
        &pool,
        &ClosedAuctionsQuery::new(None, None, Some(BIDDER), None, limit(10)).expect("query"),
    )
    .await
    .expect("won");
    let mut won: Vec<u64> = won.items.iter().map(|row| row.auction_id).collect();
    won.sort_unstable();
    assert_eq!(won, [SMALL, HALF]);

    // The bidder's bids and wins, one per page (cursors with ids above i64::MAX).
    let bids = all_pages(|cursor| {
        let pool = pool.clone();
        async move {
            let query = UserBidsQuery::new(BIDDER, cursor.as_deref(), limit(1))?;
            query::user_bids(&pool, &query).await
        }
    })
    .await;
    let mut on: Vec<u64> = bids.iter().map(|bid| bid.auction_id).collect();
    on.sort_unstable();
    assert_eq!(on, [SMALL, HALF, TOP]);
    let wins = all_pages(|cursor| {
        let pool = pool.clone();
        async move {
            let query = UserWinsQuery::new(BIDDER, cursor.as_deref(), limit(1))?;
            query::user_wins(&pool, &query).await
        }
    })
    .await;
    let mut won: Vec<u64> = wins.iter().map(|win| win.auction_id).collect();
    won.sort_unstable();
    assert_eq!(won, [SMALL, HALF]);
    assert!(wins.iter().all(|win| win.seller_id == Some(SELLER)));

    // The audit search by auction and by user, and its CSV, show the u64.
    let audit = |filter: AuditFilter| {
        let pool = pool.clone();
        async move {
            let query = AuditQuery::new(&filter, None, limit(200)).expect("query");
            query::search_audit(&pool, &query).await.expect("audit")
        }
    };
    let of_top = audit(AuditFilter {
        auction: Some(TOP),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(of_top.items.len() as u64, views[0].seq);
    assert!(of_top.items.iter().all(|row| row.auction_id == Some(TOP)));
    let by_rival = audit(AuditFilter {
        user: Some(RIVAL),
        kind: Some("bid_accepted".into()),
        ..AuditFilter::default()
    })
    .await;
    let mut rival_on: Vec<u64> = by_rival
        .items
        .iter()
        .filter_map(|row| row.auction_id)
        .collect();
    rival_on.sort_unstable();
    assert_eq!(rival_on, [HALF, TOP]);
    let csv = query::audit_csv(&of_top.items);
    assert!(csv.contains(&format!(",{TOP},")), "{csv}");
    assert!(!csv.contains(",-1,"), "{csv}");
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Proxy and raise flags, rejections through the log and trace ids reach Postgres once
/// and only once: a batch delivered again (the cursor put back by hand stands for any path
/// that would replay it), or in part, changes nothing.
#[tokio::test]
async fn flags_rejections_and_trace_ids_land_once_and_only_once() {
    let db = TestDb::create().await;
    let pool = db.pool();
    migrate(&pool).await.expect("migrate");
    let proxy_bid = Command::Request(Request {
        actor: Actor {
            user: UserId(10),
            role: Role::Bidder,
        },
        request_id: RequestId::try_from("p").expect("id"),
        action: Action::PlaceBid {
            auction_id: AuctionId(1),
            amount: Amount(100),
            max: Some(Amount(500)),
        },
    });
    let raise = Command::Request(Request {
        actor: Actor {
            user: UserId(10),
            role: Role::Bidder,
        },
        request_id: RequestId::try_from("r").expect("id"),
        action: Action::PlaceBid {
            auction_id: AuctionId(1),
            amount: Amount(110),
            max: Some(Amount(900)),
        },
    });
    let commands = [
        create(1, T0 + 600_000_000),
        proxy_bid,
        place_bid(1, 11, 1, "too-low"),
        raise,
        place_bid(1, 11, 300, "plain"),
        place_bid(1, 11, 1, "too-low"),
        Command::Close {
            auction_id: AuctionId(1),
        },
    ];
    let (records, views) = run(&commands, &[1]);
    // Index 3: too low; 6: the same request again (a replay, no new rejection); 7: too early.
    let rejected: Vec<u64> = records
        .iter()
        .filter(|record| !record.rejections.is_empty())
        .map(|record| record.log_index)
        .collect();
    assert_eq!(rejected, [3, 7]);
    let last = records.last().expect("records").log_index;
    read_cursor(&pool, GROUP).await.expect("cursor");
    write_batch(&pool, GROUP, 0, last, &records)
        .await
        .expect("write");

    let rows = i64::try_from(
        records
            .iter()
            .map(|record| record.events.len() + record.rejections.len())
            .sum::<usize>(),
    )
    .expect("small");
    check_flags_rejections_traces(&pool, rows).await;
    assert_eq!(must_check(&pool, &views).await, Vec::<Violation>::new());

    // Delivered again, whole and in part: nothing twice, nothing changed.
    execute(&pool, "UPDATE sink_cursor SET applied_index = 0").await;
    write_batch(&pool, GROUP, 0, last, &records)
        .await
        .expect("again");
    execute(&pool, "UPDATE sink_cursor SET applied_index = 2").await;
    let tail: Vec<SinkRecord> = records
        .iter()
        .filter(|record| record.log_index > 2)
        .cloned()
        .collect();
    write_batch(&pool, GROUP, 2, last, &tail)
        .await
        .expect("tail again");
    check_flags_rejections_traces(&pool, rows).await;
    assert_eq!(must_check(&pool, &views).await, Vec::<Violation>::new());
    // The audit search lists rejections as kind `rejected`, with their trace ids.
    let limit = Limit::page(Some(50)).expect("limit");
    let filter = AuditFilter {
        kind: Some("rejected".into()),
        ..AuditFilter::default()
    };
    let page = query::search_audit(
        &pool,
        &AuditQuery::new(&filter, None, limit).expect("query"),
    )
    .await
    .expect("audit");
    assert_eq!(page.items.len(), 2);
    let first = &page.items[0];
    assert_eq!(
        (first.auction_id, first.user_id, first.actor_id, first.seq),
        (Some(1), Some(11), Some(11), None)
    );
    assert_eq!(first.payload["code"], "bid_too_low");
    assert_eq!(first.trace_id, Some(format!("{:032x}", 3)));
    let csv = query::audit_csv(&page.items);
    let header = csv.lines().next().expect("header");
    assert!(header.ends_with(",payload,trace_id"), "{header}");
    assert!(csv.contains(&format!(",{:032x}\r\n", 3)), "{csv}");

    // The bid history shows the flags (never a maximum).
    let history = query::bid_history(&pool, &BidHistoryQuery::new(1, None, limit).expect("query"))
        .await
        .expect("history");
    let flags: Vec<(bool, bool)> = history
        .items
        .iter()
        .map(|bid| (bid.proxy, bid.raise))
        .collect();
    assert_eq!(flags, [(true, false), (true, true), (false, false)]);
}

/// A `rejections` row: log index, position, auction, actor, code, trace id.
type RejectionTuple = (i64, i32, Option<i64>, Option<i64>, String, Option<String>);

/// The rows of `flags_rejections_and_trace_ids_land_once_and_only_once`, `events` rows in
/// all (events and rejections).
async fn check_flags_rejections_traces(pool: &PgPool, events: i64) {
    let bids: Vec<(i32, bool, bool)> =
        sqlx::query_as("SELECT bid_id, proxy, raise FROM bids ORDER BY bid_id")
            .fetch_all(pool)
            .await
            .expect("bids");
    assert_eq!(bids, [(0, true, false), (1, true, true), (2, false, false)]);
    let rejections: Vec<RejectionTuple> = sqlx::query_as(
        "SELECT log_index, position, auction_id, actor_id, code, trace_id \
                 FROM rejections ORDER BY log_index",
    )
    .fetch_all(pool)
    .await
    .expect("rejections");
    assert_eq!(
        rejections,
        [
            (
                3,
                0,
                Some(1),
                Some(11),
                "bid_too_low".to_owned(),
                Some(format!("{:032x}", 3))
            ),
            (
                7,
                0,
                Some(1),
                None,
                "auction_not_ended".to_owned(),
                Some(format!("{:032x}", 7))
            ),
        ]
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM events WHERE kind = 'rejected'").await,
        2
    );
    // Every event row carries its entry's trace id (the test traces every command).
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM events \
                 WHERE trace_id IS NULL OR trace_id <> lpad(to_hex(log_index), 32, '0')"
        )
        .await,
        0
    );
    assert_eq!(count(pool, "SELECT count(*) FROM events").await, events);
}
