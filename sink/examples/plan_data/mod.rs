//! Shared by `examples/explain_queries.rs` and `tests/query.rs`: the synthetic rows the
//! query plans are taken on, and one sample of every read query (each filter, first and
//! second page).

#![allow(dead_code)]

use martelo_sink::query::{
    self, AuditFilter, AuditQuery, BidHistoryQuery, ClosedAuctionsQuery, Limit, ResultFilter,
    Statement, UserBidsQuery, UserWinsQuery,
};
use sqlx::PgPool;

/// Bids per auction in the generated data.
pub const BIDS_PER_AUCTION: u64 = 20;
/// Bids per user (on average) in the generated data.
pub const BIDS_PER_USER: u64 = 100;

/// The script that fills a migrated, empty database with `bids` bids (a multiple of 2000),
/// then `ANALYZE`s it.
pub fn generate_sql(bids: u64) -> String {
    include_str!("generate.sql")
        .replace("{BIDS}", &bids.to_string())
        .replace("{AUCTIONS}", &(bids / BIDS_PER_AUCTION).to_string())
        .replace("{USERS}", &(bids / BIDS_PER_USER).to_string())
}

/// Runs [`generate_sql`] on `pool`.
pub async fn generate(pool: &PgPool, bids: u64) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(&generate_sql(bids)).execute(pool).await?;
    Ok(())
}

/// One named sample of each query, as the gateway and the CLI run them, on the generated
/// data: user 8 has bids and wins, auction 42 has 20 bids, user 1 is the admin who
/// suspends. Second pages use the cursor the first page returned.
pub async fn samples(pool: &PgPool) -> Vec<(String, Box<dyn Statement>)> {
    let page = Limit::page(Some(50)).expect("limit");
    let mut samples: Vec<(String, Box<dyn Statement>)> = Vec::new();
    let mut add = |name: &str, statement: Box<dyn Statement>| {
        samples.push((name.to_owned(), statement));
    };
    add(
        "auction bid history, first page",
        Box::new(BidHistoryQuery::new(42, None, page).expect("query")),
    );
    add(
        "auction bid history, after seq 20",
        Box::new(BidHistoryQuery::new(42, Some(20), page).expect("query")),
    );
    let closed = ClosedAuctionsQuery::new(None, None, None, None, page).expect("query");
    let next = query::closed_auctions(pool, &closed)
        .await
        .expect("first page")
        .next_cursor;
    add("closed auctions, first page", Box::new(closed));
    add(
        "closed auctions, second page",
        Box::new(ClosedAuctionsQuery::new(None, None, None, next.as_deref(), page).expect("query")),
    );
    add(
        "closed auctions, result = cancelled",
        Box::new(
            ClosedAuctionsQuery::new(Some(ResultFilter::Cancelled), None, None, None, page)
                .expect("query"),
        ),
    );
    add(
        "closed auctions, seller = 7",
        Box::new(ClosedAuctionsQuery::new(None, Some(7), None, None, page).expect("query")),
    );
    add(
        "closed auctions, winner = 8",
        Box::new(ClosedAuctionsQuery::new(None, None, Some(8), None, page).expect("query")),
    );
    let bids = UserBidsQuery::new(8, None, page).expect("query");
    let next = query::user_bids(pool, &bids)
        .await
        .expect("first page")
        .next_cursor;
    add("user's bids, first page", Box::new(bids));
    add(
        "user's bids, second page",
        Box::new(UserBidsQuery::new(8, next.as_deref(), page).expect("query")),
    );
    add(
        "user's wins",
        Box::new(UserWinsQuery::new(8, None, page).expect("query")),
    );
    let everything = AuditQuery::new(&AuditFilter::default(), None, page).expect("query");
    let next = query::search_audit(pool, &everything)
        .await
        .expect("first page")
        .next_cursor;
    add("audit, no filter, first page", Box::new(everything));
    add(
        "audit, no filter, second page",
        Box::new(AuditQuery::new(&AuditFilter::default(), next.as_deref(), page).expect("query")),
    );
    let filters = [
        (
            "audit, user = 8",
            AuditFilter {
                user: Some(8),
                ..AuditFilter::default()
            },
        ),
        (
            "audit, actor = 1",
            AuditFilter {
                actor: Some(1),
                ..AuditFilter::default()
            },
        ),
        (
            "audit, auction = 42",
            AuditFilter {
                auction: Some(42),
                ..AuditFilter::default()
            },
        ),
        (
            "audit, kind = user_suspended",
            AuditFilter {
                kind: Some("user_suspended".to_owned()),
                ..AuditFilter::default()
            },
        ),
        (
            "audit, one hour from 2027-01-02",
            AuditFilter {
                from_us: Some(1_798_848_000_000_000),
                to_us: Some(1_798_851_600_000_000),
                ..AuditFilter::default()
            },
        ),
        (
            "audit, kind = auction_closed and user = 8",
            AuditFilter {
                kind: Some("auction_closed".to_owned()),
                user: Some(8),
                ..AuditFilter::default()
            },
        ),
    ];
    for (name, filter) in filters {
        add(
            name,
            Box::new(AuditQuery::new(&filter, None, page).expect("query")),
        );
    }
    samples
}

/// The tables a plan reads with a sequential scan, from `EXPLAIN (FORMAT JSON)` output.
pub fn seq_scans(plan: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(plan, &mut found);
    found
}

fn walk(node: &serde_json::Value, found: &mut Vec<String>) {
    match node {
        serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
        serde_json::Value::Object(fields) => {
            if fields.get("Node Type").and_then(|kind| kind.as_str()) == Some("Seq Scan") {
                let relation = fields
                    .get("Relation Name")
                    .and_then(|name| name.as_str())
                    .unwrap_or("?");
                found.push(relation.to_owned());
            }
            fields.values().for_each(|value| walk(value, found));
        }
        _ => {}
    }
}
