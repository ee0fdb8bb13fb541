//! martelo-sink: copies what the Raft groups committed into Postgres, the read and audit
//! model (I6: the sink converges to the Raft state, with no row Raft lacks and no duplicate).
//!
//! ```text
//!   group leader's event log ──records──► plan (pure: records → rows)
//!                                             │
//!                                             ▼
//!   Postgres  ◄── write_batch: BEGIN; cursor compare-and-set; rows; COMMIT
//! ```
//!
//! - `ids`: how an engine id (`u64`) is stored as a `BIGINT`, and read back: the one home of
//!   that mapping.
//! - `record`: [`SinkRecord`], the events of one applied entry (no RocksDB type here: the
//!   node converts its event log records).
//! - `plan`: the mapping from records to rows, pure and unit-tested.
//! - `write`: [`migrate`], [`read_cursor`], [`write_batch`] against a `PgPool`.
//! - `policy`: the sink loop's decisions (how far a batch covers, back-off), pure.
//! - `url`: [`PostgresUrl`], the database URL, never displayed with its password.
//! - `metric_names`: every metric the sink records.
//!
//! The schema lives in the workspace's `migrations/` and is embedded at compile time, so
//! building needs no database; every query is a runtime query tested against real Postgres.

pub mod ids;
pub mod metric_names;
pub mod plan;
pub mod policy;
pub mod query;
mod record;
mod sql_time;
#[cfg(feature = "testing")]
pub mod testing;
mod url;
pub mod verify;
mod write;

pub use record::{SinkRecord, trace_id};
pub use url::{POSTGRES_URL_BYTES_MAX, PostgresUrl, PostgresUrlError, redact};
pub use write::{
    ACQUIRE_TIMEOUT, BatchWritten, CursorMoved, MIGRATOR, POOL_CONNECTIONS_MAX, SinkError, connect,
    connect_url, migrate, read_cursor, write_batch,
};
