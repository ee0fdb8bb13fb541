//! The Postgres sink with real `martelo node` processes and real Postgres (I6): Postgres
//! ends up holding exactly what the engine holds (no missing row, no row the engine lacks, no
//! duplicate), checked by `martelo_sink::verify`, after
//! - mixed commands, and a leader killed mid-load (another takes over; the checker is also
//!   shown to catch planted damage);
//! - leadership transfers and a restart of every node, under load;
//! - three sinks on every group at once (the hidden `--test-sink-every-replica` knob: every
//!   replica writes, only the cursor's compare-and-set keeps them apart);
//! - Postgres (a private server: the shared one is never stopped) down 20 s under load:
//!   bidding carries on, the sink counts errors, and catches up when it is back.
//!
//! Each test has its own database (`martelo_sink::testing::TestDb` on 127.0.0.1:5432, or a
//! `PrivatePostgres`).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use martelo_client::admin::Admin;
use martelo_devkit::PrivatePostgres;
use martelo_engine::{AuctionView, GroupId};
use martelo_sink::metric_names::ERRORS;
use martelo_sink::testing::{TestDb, wait_for_match};
use martelo_sink::verify::{Violation, ViolationClass, violations};
use sqlx::PgPool;
use support::*;

/// How long the sink may take to catch up once the load stops (it backs off up to 10 s
/// while Postgres is away).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(40);
/// How long Postgres stays down in the outage test (issue 13: 20 s).
const OUTAGE: Duration = Duration::from_secs(20);

/// Starts `nodes` nodes with 2 auction shards, metrics on, their sink on `postgres_url`, and
/// `extra` node flags.
async fn start_with_sink(nodes: usize, postgres_url: &str, extra: &[&str]) -> TestCluster {
    let url = postgres_url.to_owned();
    let extra: Vec<String> = extra.iter().map(|flag| (*flag).to_owned()).collect();
    TestCluster::start_with(nodes, 2, |config| {
        config.metrics = true;
        config.extra_args.extend(["--postgres".to_owned(), url]);
        config.extra_args.extend(extra);
    })
    .await
}

async fn views(test: &TestCluster, auctions: &[u64]) -> Vec<AuctionView> {
    let mut all = Vec::new();
    for auction in auctions {
        all.push(read(&test.client, *auction).await);
    }
    all
}

/// Reads the engine's views of `auctions` (every auction of the cluster; the engine must not
/// change any more) and waits until Postgres matches them, or fails with the last
/// differences and the nodes' logs.
async fn must_converge(test: &TestCluster, pool: &PgPool, auctions: &[u64]) -> Vec<AuctionView> {
    let views = views(test, auctions).await;
    let verdict = wait_for_match(pool, &views, CONVERGE_TIMEOUT, Duration::from_millis(200)).await;
    match verdict {
        Ok(found) if found.is_empty() => views,
        Ok(found) => {
            test.dump_logs();
            let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
            panic!(
                "the sink did not converge in {CONVERGE_TIMEOUT:?}: {} violations:\n{}",
                found.len(),
                lines.join("\n")
            );
        }
        Err(error) => {
            test.dump_logs();
            panic!("the checker failed: {error}");
        }
    }
}

async fn must_check(pool: &PgPool, views: &[AuctionView]) -> Vec<Violation> {
    violations(pool, views)
        .await
        .expect("the checker reads Postgres")
}

/// Every acknowledged bid is in the engine's final views (so, with the checker, in Postgres).
fn must_hold_acknowledged(views: &[AuctionView], acknowledged: &BTreeMap<String, Acknowledged>) {
    for (request_id, bid) in acknowledged {
        let view = views
            .iter()
            .find(|view| view.id.0 == bid.auction)
            .expect("a view of every auction");
        let found = view.bids.get(bid.bid_id as usize);
        assert!(
            found.is_some_and(|found| found.bidder.0 == bid.bidder && !found.voided),
            "acknowledged bid {request_id} ({bid:?}) is missing: {found:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_converges_to_the_engine_through_bids_a_close_and_a_leader_kill() {
    let db = TestDb::create().await;
    let test = start_with_sink(3, db.url(), &[]).await;
    let pool = db.pool();

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
    let views_now = must_converge(&test, &pool, &auctions).await;

    // The checker catches damage: a missing bid, a wrong value, a duplicated event and an
    // auction the engine does not have, each as its own typed violation.
    for damage in [
        "CREATE TABLE planted AS SELECT * FROM bids WHERE auction_id = 1 AND bid_id = 3",
        "DELETE FROM bids WHERE auction_id = 1 AND bid_id = 3",
        "UPDATE bids SET amount = amount + 1 WHERE auction_id = 2 AND bid_id = 0",
        "INSERT INTO events (group_id, log_index, position, at, kind, seq, auction_id, payload) \
         SELECT group_id, log_index, position + 100, at, kind, seq, auction_id, payload \
         FROM events WHERE auction_id = 2 AND seq = 2",
        "INSERT INTO auctions SELECT 99, group_id, seller_id, title, description, currency, \
         starting_price, has_reserve, buy_now_price, increment, soft_close, starts_at, ends_at, \
         effective_end_at, status, current_price, leader_id, reserve_met, created_at, \
         closed_at, seq FROM auctions WHERE auction_id = 1",
    ] {
        sqlx::query(damage).execute(&pool).await.expect(damage);
    }
    let found = must_check(&pool, &views_now).await;
    let caught: Vec<(ViolationClass, u64)> =
        found.iter().map(|v| (v.class(), v.auction())).collect();
    for planted in [
        (ViolationClass::Missing, 1),
        (ViolationClass::Differs, 2),
        (ViolationClass::Duplicate, 2),
        (ViolationClass::NotInEngine, 99),
    ] {
        assert!(
            caught.contains(&planted),
            "{planted:?} not caught: {found:#?}"
        );
    }
    assert!(found.contains(&Violation::BidMissing {
        auction: 1,
        bid_id: 3
    }));
    assert_eq!(found.len(), 4, "only what was planted: {found:#?}");
    // The schema refuses a second row for one bid event: (group, log_index, position) is
    // unique.
    sqlx::query(
        "INSERT INTO bids (auction_id, bid_id, group_id, log_index, position, seq, bidder_id, \
         amount, price_after, leader_after, at) SELECT auction_id, 3, group_id, log_index, \
         position, seq, bidder_id, amount, price_after, leader_after, at FROM bids \
         WHERE auction_id = 1 AND bid_id = 2",
    )
    .execute(&pool)
    .await
    .expect_err("a bid event cannot be written twice");
    // Repair what was planted (the sink never rewrites history), then go on.
    for repair in [
        "DELETE FROM events WHERE position >= 100",
        "DELETE FROM auctions WHERE auction_id = 99",
        "UPDATE bids SET amount = amount - 1 WHERE auction_id = 2 AND bid_id = 0",
        "INSERT INTO bids SELECT * FROM planted",
        "DROP TABLE planted",
    ] {
        sqlx::query(repair).execute(&pool).await.expect(repair);
    }
    assert_eq!(must_check(&pool, &views_now).await, Vec::<Violation>::new());

    // Kill the leader of auction 1's group under load; another node takes over, its sink
    // resumes from the cursor.
    let group = test.client.group_of(martelo_engine::AuctionId(1));
    let old = must_find_leader(&test, group.0, None).await;
    let load = Load::start(&test.client, &[1, 2], 2);
    load.must_accept(10, Duration::from_secs(15)).await;
    test.cluster.kill(old).expect("kill -9 the leader");
    let new = must_find_leader(&test, group.0, Some(old)).await;
    assert_ne!(new, old);
    load.must_accept(10, Duration::from_secs(15)).await;
    let acknowledged = load.stop().await;
    let views = must_converge(&test, &pool, &auctions).await;
    must_hold_acknowledged(&views, &acknowledged);

    let cursors: BTreeMap<i64, i64> =
        sqlx::query_as::<_, (i64, i64)>("SELECT group_id, applied_index FROM sink_cursor")
            .fetch_all(&pool)
            .await
            .expect("cursors")
            .into_iter()
            .collect();
    assert!(
        cursors
            .get(&(group.0 as i64))
            .is_some_and(|index| *index > 0),
        "{cursors:?}"
    );
}

/// Hands the leadership of every group (meta and shards) to another node, checking that it
/// moved.
async fn must_transfer_every_leader(test: &TestCluster, groups: u64) {
    let admin = Admin::default();
    let seeds = test.cluster.api_addresses();
    for group in 0..=groups {
        let old = must_find_leader(test, group, None).await;
        let to = test
            .cluster
            .node_ids()
            .into_iter()
            .find(|node| *node != old)
            .expect("another node");
        let led = admin
            .transfer_leader(&seeds, GroupId(group), to)
            .await
            .unwrap_or_else(|error| panic!("transfer of group {group} to {to}: {error}"));
        println!("group {group}: leader {old} -> {led} (asked for {to})");
        must_find_leader(test, group, Some(old)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leadership_transfers_and_a_full_restart_under_load_lose_and_duplicate_nothing() {
    let db = TestDb::create().await;
    let test = start_with_sink(3, db.url(), &[]).await;
    let pool = db.pool();
    let auctions = [1u64, 2, 3, 4];
    for auction in auctions {
        create_auction(&test.client, auction, Duration::from_secs(600)).await;
    }
    let load = Load::start(&test.client, &auctions, 3);
    load.must_accept(20, Duration::from_secs(15)).await;

    // Every group's leadership moves while bids go on: each sink hands over to the next
    // leader's, through the cursor.
    must_transfer_every_leader(&test, 2).await;
    load.must_accept(20, Duration::from_secs(15)).await;

    // Every node stops (SIGTERM) and starts again from its data while the bidders keep
    // trying; every sink resumes from the cursor in Postgres.
    for (node, stopped) in test.cluster.stop_all().await {
        stopped.unwrap_or_else(|error| panic!("stop node {node}: {error}"));
    }
    for node in test.cluster.node_ids() {
        test.cluster.restart(node).await.expect("restart");
    }
    test.cluster
        .wait_healthy(Duration::from_secs(30))
        .await
        .expect("healthy after the restart");
    load.must_accept(20, Duration::from_secs(30)).await;
    let acknowledged = load.stop().await;

    let views = must_converge(&test, &pool, &auctions).await;
    must_hold_acknowledged(&views, &acknowledged);
    let bids: usize = views.iter().map(|view| view.bids.len()).sum();
    assert!(bids >= 60, "only {bids} bids: the load did not run");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_sinks_racing_on_every_group_write_each_row_exactly_once() {
    let db = TestDb::create().await;
    // The test knob: every replica runs the sink of every group it holds, so three writers
    // race on each group's cursor the whole time.
    let test = start_with_sink(3, db.url(), &["--test-sink-every-replica"]).await;
    let pool = db.pool();
    let auctions = [1u64, 2, 3];
    for auction in auctions {
        create_auction(&test.client, auction, Duration::from_secs(600)).await;
    }
    let load = Load::start(&test.client, &auctions, 3);
    load.must_accept(60, Duration::from_secs(30)).await;
    let acknowledged = load.stop().await;

    let views = must_converge(&test, &pool, &auctions).await;
    must_hold_acknowledged(&views, &acknowledged);
    // They did race: writers lost the compare-and-set and rolled back their batch.
    let lost = cluster_metric_total(&test, ERRORS, "kind=\"cursor_moved\"").await;
    assert!(
        lost > 0.0,
        "no sink ever lost the cursor's compare-and-set: the writers did not race"
    );
    println!("batches rolled back by the compare-and-set: {lost}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bidding_goes_on_while_postgres_is_down_and_the_sink_catches_up_after() {
    let dir = tempfile::tempdir().expect("temp dir");
    let postgres = PrivatePostgres::start(dir.path().join("postgres"))
        .await
        .expect("a private Postgres (needs initdb and pg_ctl)");
    let url = postgres
        .create_database("sink_outage")
        .await
        .expect("database");
    let test = start_with_sink(3, &url, &[]).await;
    let pool = martelo_sink::connect(&url).expect("pool");
    let auctions = [1u64, 2, 3, 4];
    for auction in auctions {
        create_auction(&test.client, auction, Duration::from_secs(600)).await;
    }
    let load = Load::start(&test.client, &auctions, 3);
    load.must_accept(10, Duration::from_secs(15)).await;
    eventually(Duration::from_secs(20), "the sink writing", || async {
        let written: Option<i64> = sqlx::query_scalar("SELECT count(*) FROM bids")
            .fetch_one(&pool)
            .await
            .ok();
        written.filter(|count| *count > 0)
    })
    .await;
    let errors_before = cluster_metric_total(&test, ERRORS, "").await;

    postgres.stop().await.expect("stop Postgres");
    let accepted_at_stop = load.accepted();
    // Postgres stays down for the whole outage, whatever happens meanwhile; bidding must not
    // notice.
    tokio::time::sleep(OUTAGE).await;
    let accepted_during = load.accepted() - accepted_at_stop;
    let errors_during = cluster_metric_total(&test, ERRORS, "").await;
    assert!(!postgres.is_running());
    postgres.start_again().await.expect("start Postgres again");

    load.must_accept(10, Duration::from_secs(15)).await;
    let acknowledged = load.stop().await;
    println!(
        "during the {OUTAGE:?} outage: {accepted_during} bids accepted, sink errors \
         {errors_before} -> {errors_during}"
    );
    assert!(
        accepted_during >= 20,
        "bidding stalled while Postgres was down: {accepted_during} bids in {OUTAGE:?}"
    );
    assert!(
        errors_during > errors_before,
        "{ERRORS} did not rise while Postgres was down ({errors_before} -> {errors_during})"
    );
    let views = must_converge(&test, &pool, &auctions).await;
    must_hold_acknowledged(&views, &acknowledged);
}

/// `martelo db migrate` (needs the `db` subcommand wired into the CLI tree): two runs at
/// once both succeed, the schema is there, a bad URL is refused without showing a password.
#[tokio::test(flavor = "multi_thread")]
async fn martelo_db_migrate_applies_the_schema_twice_at_once_and_refuses_bad_urls() {
    let db = TestDb::create().await;
    let args = ["db", "migrate", "--postgres", db.url()];
    let (first, second) = tokio::join!(martelo(&args), martelo(&args));
    for run in [&first, &second] {
        run.must_exit(0)
            .must_print(&["sink applied", "schema up to date"]);
    }
    let pool = db.pool();
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
