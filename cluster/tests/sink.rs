//! The Postgres sink with real `martelo node` processes and the real Postgres on
//! 127.0.0.1:5432 (I6): after mixed commands, and again after the leader is killed and
//! another takes over, Postgres holds exactly what the engine holds: no missing row, no row
//! the engine lacks, no duplicate. The checker is shown to catch planted damage.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use martelo_engine::{AuctionResult, AuctionView, SaleKind, UnsoldReason};
use martelo_types::NodeId;
use sqlx::{Connection, PgConnection, PgPool, Row};
use support::*;

fn server_url() -> String {
    std::env::var("MARTELO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database of its own for one test, dropped at the end (even on panic).
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    async fn create() -> TestDb {
        let name = format!("martelo_sink_cluster_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("connect to the test Postgres at 127.0.0.1:5432");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let url = format!("{}/{name}", server_url());
        TestDb { name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) =
                    PgConnection::connect(&format!("{}/postgres", server_url())).await
                {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}

/// What Postgres should hold, compared with what it holds: every difference, named.
async fn sink_violations(pool: &PgPool, views: &[AuctionView]) -> Vec<String> {
    let mut violations = Vec::new();
    let ids: Vec<i64> = views.iter().map(|view| view.id.0 as i64).collect();
    let extra: Vec<i64> =
        sqlx::query_scalar("SELECT auction_id FROM auctions WHERE NOT auction_id = ANY($1)")
            .bind(&ids)
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    for id in extra {
        violations.push(format!("auction {id} is in Postgres, not in the engine"));
    }
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT auction_id, seq FROM events WHERE auction_id IS NOT NULL \
         GROUP BY auction_id, seq HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(-1);
    if duplicates != 0 {
        violations.push(format!("{duplicates} auction events are in Postgres twice"));
    }
    for view in views {
        check_auction(pool, view, &mut violations).await;
    }
    violations
}

/// An `outcomes` row: result, winner, price, and how it sold or why it did not.
type OutcomeRow = (String, Option<i64>, Option<i64>, Option<String>);

async fn check_auction(pool: &PgPool, view: &AuctionView, violations: &mut Vec<String>) {
    let id = view.id.0 as i64;
    let micros = |column: &str| format!("(extract(epoch from {column}) * 1000000)::bigint");
    let row = sqlx::query(&format!(
        "SELECT seller_id, status, current_price, leader_id, seq, {} AS end_micros \
         FROM auctions WHERE auction_id = $1",
        micros("effective_end_at")
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .ok()
    .flatten();
    let Some(row) = row else {
        violations.push(format!("auction {id}: missing in Postgres"));
        return;
    };
    let status = match view.closed.as_ref().map(|closed| &closed.result) {
        None => "open",
        Some(AuctionResult::Sold { .. }) => "sold",
        Some(AuctionResult::Unsold { .. }) => "unsold",
        Some(AuctionResult::Cancelled { .. }) => "cancelled",
    };
    let expected = (
        view.seller.0 as i64,
        status.to_owned(),
        view.price.map(|price| price.0 as i64),
        view.leading_bidder.map(|user| user.0 as i64),
        view.seq as i64,
        view.end.0 as i64,
    );
    let found: (i64, String, Option<i64>, Option<i64>, i64, i64) = (
        row.get("seller_id"),
        row.get("status"),
        row.get("current_price"),
        row.get("leader_id"),
        row.get("seq"),
        row.get("end_micros"),
    );
    if found != expected {
        violations.push(format!(
            "auction {id}: Postgres has {found:?}, the engine {expected:?}"
        ));
    }
    let seqs: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM events WHERE auction_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    if seqs != (1..=view.seq as i64).collect::<Vec<_>>() {
        violations.push(format!(
            "auction {id}: event seqs in Postgres are not exactly 1..={} ({} rows)",
            view.seq,
            seqs.len()
        ));
    }
    let bids: Vec<(i32, i64, i64, i64, i64, bool)> = sqlx::query_as(&format!(
        "SELECT bid_id, bidder_id, amount, {}, log_index, voided FROM bids \
         WHERE auction_id = $1 ORDER BY bid_id",
        micros("at")
    ))
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let engine_bids: Vec<(i32, i64, i64, i64, i64, bool)> = view
        .bids
        .iter()
        .enumerate()
        .map(|(index, bid)| {
            (
                index as i32,
                bid.bidder.0 as i64,
                bid.amount.0 as i64,
                bid.at.0 as i64,
                bid.log_index as i64,
                bid.voided,
            )
        })
        .collect();
    if bids != engine_bids {
        violations.push(format!(
            "auction {id}: bids differ: Postgres {} rows, engine {}; first difference {:?}",
            bids.len(),
            engine_bids.len(),
            bids.iter()
                .zip(&engine_bids)
                .find(|(a, b)| a != b)
                .map(|(a, b)| (*a, *b))
        ));
    }
    let outcome: Vec<OutcomeRow> = sqlx::query_as(
        "SELECT result, winner_id, price, coalesce(sale_kind, unsold_reason) FROM outcomes \
         WHERE auction_id = $1",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let expected_outcome: Vec<OutcomeRow> = match view.closed.as_ref().map(|closed| &closed.result)
    {
        None => vec![],
        Some(AuctionResult::Sold { winner, price, via }) => vec![(
            "sold".into(),
            Some(winner.0 as i64),
            Some(price.0 as i64),
            Some(
                match via {
                    SaleKind::Bidding => "bidding",
                    SaleKind::BuyNow => "buy_now",
                }
                .into(),
            ),
        )],
        Some(AuctionResult::Unsold { reason }) => vec![(
            "unsold".into(),
            None,
            None,
            Some(
                match reason {
                    UnsoldReason::NoBids => "no_bids",
                    UnsoldReason::ReserveNotMet => "reserve_not_met",
                }
                .into(),
            ),
        )],
        Some(AuctionResult::Cancelled { .. }) => vec![("cancelled".into(), None, None, None)],
    };
    if outcome != expected_outcome {
        violations.push(format!(
            "auction {id}: outcome in Postgres {outcome:?}, engine {expected_outcome:?}"
        ));
    }
}

async fn views(test: &TestCluster, auctions: &[u64]) -> Vec<AuctionView> {
    let mut all = Vec::new();
    for auction in auctions {
        all.push(read(&test.client, *auction).await);
    }
    all
}

/// Waits until Postgres matches the engine (the sink is asynchronous), or fails with the
/// last differences and the nodes' logs.
async fn must_converge(test: &TestCluster, pool: &PgPool, auctions: &[u64]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let views = views(test, auctions).await;
        let violations = sink_violations(pool, &views).await;
        if violations.is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            test.dump_logs();
            panic!("the sink did not converge in 30 s: {violations:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn leader_of(test: &TestCluster, group: u64, not: Option<NodeId>) -> NodeId {
    eventually(Duration::from_secs(15), "a leader", || async {
        for node in test.cluster.node_ids() {
            if Some(node) == not || !test.cluster.is_running(node) {
                continue;
            }
            let status = test.cluster.status(node).await.ok()?;
            let group_status = status.groups.iter().find(|g| g.group_id == group)?;
            if group_status.role() == martelo_proto::RaftRole::Leader {
                return Some(node);
            }
        }
        None
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_converges_to_the_engine_through_bids_a_close_and_a_leader_kill() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let test = TestCluster::start_with(3, 2, |config| {
        config.extra_args.extend(["--postgres".to_owned(), url]);
    })
    .await;
    let pool = martelo_sink::connect(&db.url).expect("pool");

    // Mixed commands: three auctions (one closes soon), bids from several bidders, a
    // rejected bid (no row), and the close.
    let auctions = [1u64, 2, 3];
    create_auction(&test.client, 1, Duration::from_secs(600)).await;
    create_auction(&test.client, 2, Duration::from_secs(600)).await;
    create_auction(&test.client, 3, Duration::from_secs(4)).await;
    must_bid(&test.client, 3, 11, 100, "b-3-0").await;
    let mut amount = 100;
    for round in 0..10u64 {
        for auction in [1u64, 2] {
            must_bid(
                &test.client,
                auction,
                10 + round % 3,
                amount,
                &format!("b-{auction}-{round}"),
            )
            .await;
        }
        amount += 20;
    }
    let low = bid(&test.client, 1, 12, 1, "too-low")
        .await
        .expect("decided");
    assert!(low.reply.rejection().is_some(), "{:?}", low.reply);
    eventually(Duration::from_secs(20), "auction 3 closed", || async {
        read(&test.client, 3).await.closed.map(|_| ())
    })
    .await;
    must_converge(&test, &pool, &auctions).await;

    // The checker catches damage: a missing bid, then a duplicated event.
    let views_now = views(&test, &auctions).await;
    sqlx::query("CREATE TABLE planted AS SELECT * FROM bids WHERE auction_id = 1 AND bid_id = 3")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM bids WHERE auction_id = 1 AND bid_id = 3")
        .execute(&pool)
        .await
        .unwrap();
    let missing = sink_violations(&pool, &views_now).await;
    assert!(
        missing.iter().any(|v| v.contains("auction 1: bids differ")),
        "{missing:?}"
    );
    // The schema refuses a second row for one event: (group, log_index, position) is unique.
    sqlx::query(
        "INSERT INTO bids (auction_id, bid_id, group_id, log_index, position, seq, bidder_id, \
         amount, price_after, leader_after, at) SELECT auction_id, 3, group_id, log_index, \
         position, seq, bidder_id, amount, price_after, leader_after, at FROM bids \
         WHERE auction_id = 1 AND bid_id = 2",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    sqlx::query(
        "INSERT INTO events (group_id, log_index, position, at, kind, seq, auction_id, payload) \
         SELECT group_id, log_index, position + 100, at, kind, seq, auction_id, payload \
         FROM events WHERE auction_id = 2 AND seq = 2",
    )
    .execute(&pool)
    .await
    .unwrap();
    let doubled = sink_violations(&pool, &views_now).await;
    assert!(doubled.iter().any(|v| v.contains("twice")), "{doubled:?}");
    // Repair what was planted (the sink never rewrites history), then go on.
    sqlx::query("DELETE FROM events WHERE position >= 100")
        .execute(&pool)
        .await
        .unwrap();
    for repair in [
        "INSERT INTO bids SELECT * FROM planted",
        "DROP TABLE planted",
    ] {
        sqlx::query(repair).execute(&pool).await.unwrap();
    }
    assert_eq!(
        sink_violations(&pool, &views_now).await,
        Vec::<String>::new()
    );

    // Kill the leader of auction 1's group; another node takes over, its sink resumes from
    // the cursor, and more bids arrive.
    let group = test.client.group_of(martelo_engine::AuctionId(1));
    let old = leader_of(&test, group.0, None).await;
    test.cluster.kill(old).expect("kill -9 the leader");
    let new = leader_of(&test, group.0, Some(old)).await;
    assert_ne!(new, old);
    for round in 0..10u64 {
        must_bid(
            &test.client,
            1,
            20 + round % 2,
            amount,
            &format!("after-{round}"),
        )
        .await;
        amount += 20;
    }
    must_converge(&test, &pool, &auctions).await;

    let cursors: BTreeMap<i64, i64> =
        sqlx::query_as::<_, (i64, i64)>("SELECT group_id, applied_index FROM sink_cursor")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert!(
        cursors
            .get(&(group.0 as i64))
            .is_some_and(|index| *index > 0),
        "{cursors:?}"
    );
}

/// `martelo db migrate` (needs the `db` subcommand wired into the CLI tree): two runs at
/// once both succeed, the schema is there, a bad URL is refused without showing a password.
#[tokio::test(flavor = "multi_thread")]
async fn martelo_db_migrate_applies_the_schema_twice_at_once_and_refuses_bad_urls() {
    let db = TestDb::create().await;
    let args = ["db", "migrate", "--postgres", db.url.as_str()];
    let (first, second) = tokio::join!(martelo(&args), martelo(&args));
    for run in [&first, &second] {
        run.must_exit(0)
            .must_print(&["sink applied", "schema up to date"]);
    }
    let pool = martelo_sink::connect(&db.url).expect("pool");
    let cursor_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sink_cursor")
        .fetch_one(&pool)
        .await
        .expect("the sink's tables exist");
    assert_eq!(cursor_rows, 0);
    martelo(&["db", "migrate", "--postgres", "mysql://root:s3cret@db/x"])
        .await
        .must_exit(1)
        .must_say(&["postgres://"])
        .must_not_say(&["s3cret"]);
}
