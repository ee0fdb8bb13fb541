//! Prints the SQL and the `EXPLAIN (ANALYZE, BUFFERS)` plan of every read query of
//! `martelo_sink::query` on 1 million generated bids: the output pasted in docs/QUERIES.md.
//!
//! ```text
//! cargo run -p martelo-sink --example explain_queries -- \
//!     --database-url postgres://postgres@127.0.0.1:5432 [--bids 1000000]
//! ```
//!
//! `--database-url` names the server (any database path is ignored): the example creates a
//! scratch database `martelo_explain_<random>` there, migrates it, generates the rows
//! (`plan_data/generate.sql`: bids, their auctions, outcomes, accounts and events, all with
//! `generate_series`), runs `ANALYZE`, prints each plan and drops the database, also when a
//! step fails.

mod plan_data;

use std::process::ExitCode;

use martelo_sink::query;
use sqlx::{Connection, PgConnection};

struct Args {
    server: String,
    bids: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut server = None;
    let mut bids = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--database-url" => server = args.next(),
            "--bids" => {
                bids = args
                    .next()
                    .and_then(|value| value.parse().ok())
                    .filter(|bids: &u64| *bids >= 2_000 && bids.is_multiple_of(2_000))
                    .ok_or("--bids takes a multiple of 2000")?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let server = server.ok_or("--database-url postgres://user@host:port is required")?;
    martelo_sink::PostgresUrl::try_from(server.clone()).map_err(|error| error.to_string())?;
    // The server part only: scheme, user-info and host up to the path.
    let after_scheme = server.find("://").map_or(0, |at| at + 3);
    let server = match server[after_scheme..].find('/') {
        Some(slash) => server[..after_scheme + slash].to_owned(),
        None => server,
    };
    Ok(Args { server, bids })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            println!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let name = format!("martelo_explain_{:016x}", rand::random::<u64>());
    let admin_url = format!("{}/postgres", args.server);
    let mut admin = match PgConnection::connect(&admin_url).await {
        Ok(admin) => admin,
        Err(error) => {
            println!(
                "error: connecting to {}: {error}",
                martelo_sink::redact(&admin_url)
            );
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
    {
        println!("error: creating {name}: {error}");
        return ExitCode::FAILURE;
    }
    let result = run(&format!("{}/{name}", args.server), args.bids).await;
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    match (result, dropped) {
        (Ok(()), Ok(_)) => ExitCode::SUCCESS,
        (Err(error), _) => {
            println!("error: {error}");
            ExitCode::FAILURE
        }
        (Ok(()), Err(error)) => {
            println!("error: dropping {name}: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str, bids: u64) -> Result<(), Box<dyn std::error::Error>> {
    let pool = martelo_sink::connect(url)?;
    martelo_sink::migrate(&pool).await?;
    let started = std::time::Instant::now();
    plan_data::generate(&pool, bids).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await?;
    println!(
        "PostgreSQL {version}; generated and analyzed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for table in ["bids", "events", "auctions", "outcomes", "accounts"] {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&pool)
            .await?;
        println!("  {table}: {rows} rows");
    }
    for (name, statement) in plan_data::samples(&pool).await {
        println!("\n### {name}\n");
        println!("```sql\n{}\n```\n", query::sql_of(statement.as_ref()));
        // Once to warm the cache, then the plan that is printed.
        query::explain(&pool, statement.as_ref(), true).await?;
        println!(
            "```text\n{}\n```",
            query::explain(&pool, statement.as_ref(), true).await?
        );
    }
    pool.close().await;
    Ok(())
}
