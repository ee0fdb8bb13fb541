//! The Postgres sink under test (`--sink`): the run's database, the wait for the sink to
//! catch up after the run, and the I6 comparison of Postgres with the final Raft state, whose
//! result goes to `sink.json` for [`crate::checker::sink`] to judge.
//!
//! ```text
//!   --sink private ──► PrivatePostgres in <out>/postgres (free loopback port), database
//!                      martelo_jepsen; the `postgres` nemesis stops/kills and restarts it
//!   --sink URL     ──► a fresh database martelo_jepsen_<seed>_<time> on the server at URL
//!                      (never restarted; left in place for inspection)
//!        │ every node gets --postgres <database URL>
//!        ▼
//!   after heal, final reads and collection:
//!     wait_caught_up: sink_cursor.applied_index >= the leader's commit index, every group
//!     engine_views:   each auction's view, read linearizably from its group's leader
//!     compare:        martelo_sink::verify (Postgres rows against the views)
//!        ▼
//!   sink.json (SinkState) ──► checker::sink::check ──► the `sink` (I6) verdict
//! ```
//!
//! Nothing here passes silently: a sink that did not catch up in time, a database that could
//! not be read and a database with no row at all are each a failure in the verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use martelo_devkit::PrivatePostgres;
use martelo_engine::AuctionView;
use martelo_proto::ReadConsistency;
use martelo_types::ShardCount;
use serde::{Deserialize, Serialize};
use sqlx::{Connection as _, PgConnection};

use crate::collect;

/// The largest `sink.json` accepted.
pub const SINK_STATE_BYTES_MAX: u64 = 64 << 20;
/// How long the sink gets, after the final reads, to copy everything committed.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(90);
/// The database the run's nodes write into on a private Postgres.
const PRIVATE_DATABASE: &str = "martelo_jepsen";

/// `--sink`: where the nodes' sink writes, if anywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SinkMode {
    /// No `--postgres`: the sink is off and there is no I6 verdict (the default).
    #[default]
    Off,
    /// A Postgres server of the run's own, which the `postgres` nemesis may restart.
    Private,
    /// A fresh database on the server at this URL (`postgres://user@host:port`).
    Server(String),
}

impl SinkMode {
    pub fn is_on(&self) -> bool {
        *self != SinkMode::Off
    }

    /// The word recorded in `run.json`: `private`, `server` or empty (off).
    pub fn label(&self) -> &'static str {
        match self {
            SinkMode::Off => "",
            SinkMode::Private => "private",
            SinkMode::Server(_) => "server",
        }
    }
}

impl FromStr for SinkMode {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<SinkMode> {
        match text {
            "off" => Ok(SinkMode::Off),
            "private" => Ok(SinkMode::Private),
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let url = url.trim_end_matches('/');
                let without_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
                anyhow::ensure!(
                    !without_scheme.contains('/'),
                    "--sink {}: give the server's URL without a database (the run creates \
                     its own)",
                    martelo_sink::redact(url)
                );
                Ok(SinkMode::Server(url.to_owned()))
            }
            other => anyhow::bail!(
                "--sink {other:?}: expected off, private or a server URL postgres://user@host:port"
            ),
        }
    }
}

/// The run's private Postgres, as the nemesis restarts it.
#[derive(Debug)]
pub struct PrivateSinkDatabase {
    postgres: PrivatePostgres,
}

impl PrivateSinkDatabase {
    /// Takes the server down: a fast shutdown, or kill -9 of the postmaster (a crash).
    pub async fn go_down(&self, kill: bool) -> anyhow::Result<()> {
        if kill {
            self.postgres.kill().await?;
        } else {
            self.postgres.stop().await?;
        }
        Ok(())
    }

    /// Starts the server again if it is down (the heal, and the heal of everything).
    pub async fn come_back(&self) -> anyhow::Result<()> {
        if !self.postgres.is_running() {
            self.postgres.start_again().await?;
        }
        Ok(())
    }
}

/// The run's database.
#[derive(Debug)]
pub struct SinkDatabase {
    /// What the nodes get as `--postgres`.
    pub url: String,
    /// The private server, shared with the nemesis.
    pub private: Option<std::sync::Arc<PrivateSinkDatabase>>,
}

impl SinkDatabase {
    /// Starts (private) or creates (server) the run's database; `None` with the sink off.
    pub async fn start(mode: &SinkMode, out: &Path, seed: u64) -> anyhow::Result<Option<Self>> {
        match mode {
            SinkMode::Off => Ok(None),
            SinkMode::Private => {
                let postgres = PrivatePostgres::start(out.join("postgres")).await?;
                let url = postgres.create_database(PRIVATE_DATABASE).await?;
                Ok(Some(SinkDatabase {
                    url,
                    private: Some(std::sync::Arc::new(PrivateSinkDatabase { postgres })),
                }))
            }
            SinkMode::Server(server) => {
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_secs());
                let name = format!("martelo_jepsen_{:x}_{unix}", seed % 0xffff_ffff);
                let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
                // `name` is made of [a-z0-9_] above: safe to splice in.
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                Ok(Some(SinkDatabase {
                    url: format!("{server}/{name}"),
                    private: None,
                }))
            }
        }
    }

    /// Stops the private server (its data dir stays in the run directory).
    pub async fn stop(&self) {
        if let Some(private) = &self.private
            && private.postgres.is_running()
        {
            let _ = private.postgres.stop().await;
        }
    }
}

/// One group's cursor against the index it had to reach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCursor {
    pub group: u64,
    /// The group leader's commit index when the wait began.
    pub target: u64,
    /// `sink_cursor.applied_index` when the wait ended (`None`: no row for the group).
    pub cursor: Option<u64>,
}

/// `sink.json`: what the run learned about the sink, judged by [`crate::checker::sink`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkState {
    /// `private` or `server`.
    pub database: String,
    /// Every group's cursor at the end of the wait.
    pub groups: Vec<GroupCursor>,
    /// Seconds the sink took to catch up, or waited in vain.
    pub catch_up_s: f64,
    /// Why the sink is not known to have caught up (`None`: it did).
    pub not_caught_up: Option<String>,
    /// Why Postgres and Raft could not be compared (`None`: they were).
    pub unchecked: Option<String>,
    /// Auctions compared (the engine's and those found in Postgres).
    pub auctions_compared: usize,
    /// Rows in Postgres that the comparison read (`auctions`, `bids`, `outcomes` and the
    /// auctions' `events`); 0 means the sink wrote nothing.
    pub rows_compared: u64,
    /// The rows the engine's views call for in those tables.
    pub engine_rows: u64,
    /// Every difference the I6 comparison found, as `class: difference`.
    pub violations: Vec<String>,
}

impl SinkState {
    /// Reads `sink.json`, refusing more than `bytes_max` bytes.
    pub fn read(path: &Path, bytes_max: u64) -> anyhow::Result<SinkState> {
        let length = std::fs::metadata(path)?.len();
        anyhow::ensure!(
            length <= bytes_max,
            "{} is larger than {bytes_max} bytes",
            { path.display() }
        );
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    }
}

/// The groups the sink copies: the meta group and every shard.
fn sink_groups(shard_count: u32) -> Vec<u64> {
    (0..=u64::from(shard_count)).collect()
}

/// Waits until every group's cursor reaches its leader's commit index as of now, within
/// `timeout`. Returns the cursors and, when they did not all get there, why.
pub async fn wait_caught_up(
    database_url: &str,
    nodes: &BTreeMap<u64, String>,
    shard_count: u32,
    timeout: Duration,
) -> (Vec<GroupCursor>, Option<String>) {
    let groups = sink_groups(shard_count);
    let statuses = collect::statuses(nodes, false).await;
    let commits = collect::leaders_and_commits(&statuses, groups.iter().copied());
    let mut cursors: Vec<GroupCursor> = groups
        .iter()
        .map(|&group| GroupCursor {
            group,
            target: commits.get(&group).map_or(0, |&(_, committed)| committed),
            cursor: None,
        })
        .collect();
    let leaderless: Vec<u64> = groups
        .iter()
        .copied()
        .filter(|group| !commits.contains_key(group))
        .collect();
    if !leaderless.is_empty() {
        return (
            cursors,
            Some(format!(
                "groups {leaderless:?} have no leader: no index for the sink to reach"
            )),
        );
    }
    let deadline = Instant::now() + timeout;
    let mut last_error;
    loop {
        match read_cursors(database_url).await {
            Ok(found) => {
                for cursor in &mut cursors {
                    cursor.cursor = found.get(&cursor.group).copied();
                }
                let behind: Vec<&GroupCursor> = cursors
                    .iter()
                    .filter(|cursor| cursor.cursor.is_none_or(|at| at < cursor.target))
                    .collect();
                if behind.is_empty() {
                    return (cursors, None);
                }
                last_error = format!("behind: {behind:?}");
            }
            Err(error) => last_error = format!("reading sink_cursor: {error:#}"),
        }
        if Instant::now() >= deadline {
            return (
                cursors,
                Some(format!(
                    "the sink did not catch up within {timeout:?}: {last_error}"
                )),
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn read_cursors(database_url: &str) -> anyhow::Result<BTreeMap<u64, u64>> {
    let mut connection = PgConnection::connect(database_url).await?;
    let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT group_id, applied_index FROM sink_cursor")
        .fetch_all(&mut connection)
        .await?;
    connection.close().await?;
    Ok(rows
        .into_iter()
        .map(|(group, index)| (group.max(0) as u64, index.max(0) as u64))
        .collect())
}

/// The auction ids in Postgres (`auctions`, `bids` and `outcomes`), so that a row for an
/// auction the workload never heard of is compared too.
async fn postgres_auctions(connection: &mut PgConnection) -> anyhow::Result<BTreeSet<u64>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT auction_id FROM auctions UNION SELECT auction_id FROM bids \
         UNION SELECT auction_id FROM outcomes",
    )
    .fetch_all(connection)
    .await?;
    // Stored ids are the engine's u64 bits (`martelo_sink::ids`): an id above i64::MAX is a
    // negative BIGINT, and must be asked about as the id it is.
    Ok(ids
        .into_iter()
        .map(martelo_sink::ids::from_bigint)
        .collect())
}

/// The engine's view of every auction in `auctions`, read linearizably from each group's
/// leader. An auction the engine does not know is absent from the result.
pub async fn engine_views(
    nodes: &BTreeMap<u64, String>,
    shard_count: u32,
    auctions: &BTreeSet<u64>,
) -> anyhow::Result<Vec<AuctionView>> {
    let shards = ShardCount::try_from(shard_count)
        .map_err(|_| anyhow::anyhow!("shard count {shard_count} out of range"))?;
    let by_group = collect::auctions_by_group(auctions, shards);
    let statuses = collect::statuses(nodes, false).await;
    let leaders = collect::leaders_and_commits(&statuses, by_group.keys().copied());
    let mut views = Vec::new();
    for (group, auctions) in by_group {
        let (leader, _) = leaders
            .get(&group)
            .ok_or_else(|| anyhow::anyhow!("group {group} has no leader"))?;
        let address = nodes
            .get(leader)
            .ok_or_else(|| anyhow::anyhow!("no address for node {leader}"))?;
        let read =
            collect::read_views(address, group, auctions, ReadConsistency::Linearizable).await?;
        views.extend(read.into_values());
    }
    Ok(views)
}

/// Everything after the run: the wait, the engine's views, the comparison. `auctions` are
/// the workload's; those found only in Postgres are added.
pub async fn check_sink(
    database: &SinkDatabase,
    label: &str,
    nodes: &BTreeMap<u64, String>,
    shard_count: u32,
    auctions: &BTreeSet<u64>,
) -> SinkState {
    let started = Instant::now();
    let (groups, not_caught_up) =
        wait_caught_up(&database.url, nodes, shard_count, CATCH_UP_TIMEOUT).await;
    let mut state = SinkState {
        database: label.to_owned(),
        groups,
        catch_up_s: started.elapsed().as_secs_f64(),
        not_caught_up,
        ..SinkState::default()
    };
    // Compare even when the sink is behind: the differences say what is missing.
    if let Err(error) = compare_into(database, nodes, shard_count, auctions, &mut state).await {
        state.unchecked = Some(format!("{error:#}"));
    }
    state
}

async fn compare_into(
    database: &SinkDatabase,
    nodes: &BTreeMap<u64, String>,
    shard_count: u32,
    auctions: &BTreeSet<u64>,
    state: &mut SinkState,
) -> anyhow::Result<()> {
    let mut connection = PgConnection::connect(&database.url).await?;
    let mut all = auctions.clone();
    all.extend(postgres_auctions(&mut connection).await?);
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM auctions) + (SELECT count(*) FROM bids) \
         + (SELECT count(*) FROM outcomes) \
         + (SELECT count(*) FROM events WHERE auction_id IS NOT NULL AND seq IS NOT NULL)",
    )
    .fetch_one(&mut connection)
    .await?;
    connection.close().await?;
    let views = engine_views(nodes, shard_count, &all).await?;
    let pool = martelo_sink::connect(&database.url)?;
    let found = martelo_sink::verify::violations(&pool, &views).await;
    pool.close().await;
    state.auctions_compared = all.len();
    state.rows_compared = rows.max(0) as u64;
    state.engine_rows = views.iter().map(engine_rows).sum();
    state.violations = found?
        .iter()
        .map(|violation| format!("{:?}: {violation}", violation.class()))
        .collect();
    Ok(())
}

/// The rows one auction's view calls for: its `auctions` row, a `bids` row per accepted
/// bid, an `outcomes` row once closed, an `events` row per auction event (its seq).
fn engine_rows(view: &AuctionView) -> u64 {
    1 + view.bids.len() as u64 + u64::from(view.closed.is_some()) + view.seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_modes_parse_and_a_url_with_a_database_is_refused() {
        assert_eq!("off".parse::<SinkMode>().expect("off"), SinkMode::Off);
        assert_eq!(
            "private".parse::<SinkMode>().expect("private"),
            SinkMode::Private
        );
        assert_eq!(
            "postgres://postgres@127.0.0.1:5432/"
                .parse::<SinkMode>()
                .expect("server"),
            SinkMode::Server("postgres://postgres@127.0.0.1:5432".into())
        );
        let refused = "postgres://u:secret@127.0.0.1:5432/db"
            .parse::<SinkMode>()
            .expect_err("has a database");
        assert!(!refused.to_string().contains("secret"), "{refused}");
        assert!("mysql://x".parse::<SinkMode>().is_err());
        assert!(!SinkMode::Off.is_on() && SinkMode::Private.is_on());
    }

    #[test]
    fn sink_groups_are_the_meta_group_and_every_shard() {
        assert_eq!(sink_groups(3), vec![0, 1, 2, 3]);
    }
}
