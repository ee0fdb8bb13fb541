//! Test support (feature `testing`): [`TestDb`], a fresh Postgres database per test on the
//! machine's server (`postgres://postgres@127.0.0.1:5432`, trust auth), dropped at the end
//! even when the test panics. `MARTELO_TEST_POSTGRES` overrides the server URL (without a
//! database).
//!
//! [`wait_for_match`] waits until the sink's rows match the engine (the I6 checker,
//! [`crate::verify`]).
//!
//! Used by this crate's tests (`tests/support`), the node's multi-process tests and the fault
//! suite, so every test database is made and removed one way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use martelo_engine::AuctionView;

use sqlx::postgres::PgPool;
use sqlx::{Connection as _, PgConnection};

/// The server tests use when `MARTELO_TEST_POSTGRES` is not set.
pub const TEST_POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432";

/// The test server's URL, without a database.
pub fn server_url() -> String {
    std::env::var("MARTELO_TEST_POSTGRES").unwrap_or_else(|_| TEST_POSTGRES_DEFAULT.to_owned())
}

/// One test's database. Its name is unique across processes and calls (pid, time, counter).
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    server: String,
}

impl TestDb {
    /// Creates a new database on [`server_url`].
    ///
    /// # Panics
    /// When the server cannot be reached or refuses the `CREATE DATABASE`: in a test that is
    /// the clearest failure.
    pub async fn create() -> TestDb {
        TestDb::create_on(&server_url()).await
    }

    /// Creates a new database on `server` (a URL without a database, e.g. a
    /// `PrivatePostgres`'s).
    ///
    /// # Panics
    /// As [`TestDb::create`].
    pub async fn create_on(server: &str) -> TestDb {
        let name = unique_name();
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap_or_else(|error| panic!("connect to the test Postgres at {server}: {error}"));
        // The name is ours (a fixed prefix and hex digits): safe to splice in.
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("create the test database {name}: {error}"));
        let _ = admin.close().await;
        TestDb {
            url: format!("{server}/{name}"),
            name,
            server: server.to_owned(),
        }
    }

    /// A lazy pool on the database, as the sink opens it ([`crate::connect`]).
    ///
    /// # Panics
    /// Never for the URLs this type makes.
    pub fn pool(&self) -> PgPool {
        crate::connect(&self.url).expect("a pool on the test database")
    }

    /// The database's URL, e.g. for a node's `--postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    /// `DROP DATABASE … WITH (FORCE)` (it ends the sessions still open on it), from a thread
    /// with its own runtime: `Drop` runs outside async, perhaps inside a runtime that must
    /// not be blocked on, and perhaps while a panic unwinds.
    fn drop(&mut self) {
        let name = self.name.clone();
        let server = self.server.clone();
        let dropping = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&format!("{server}/postgres")).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        });
        // Nothing useful can be done with an error while dropping.
        let _ = dropping.join();
    }
}

/// Polls [`crate::verify::violations`] every `poll` until there are none or `timeout` has
/// passed (the sink is asynchronous: it converges after the engine). Returns the last
/// verdict, empty when Postgres caught up. A query error counts as "not yet" until the
/// deadline (Postgres may be restarting); then it is returned.
pub async fn wait_for_match(
    pool: &PgPool,
    views: &[AuctionView],
    timeout: Duration,
    poll: Duration,
) -> Result<Vec<crate::verify::Violation>, crate::verify::VerifyError> {
    let deadline = Instant::now() + timeout;
    loop {
        let verdict = crate::verify::violations(pool, views).await;
        let done = matches!(&verdict, Ok(found) if found.is_empty());
        if done || Instant::now() >= deadline {
            return verdict;
        }
        tokio::time::sleep(poll).await;
    }
}

/// `martelo_test_<pid>_<nanos>_<counter>`: unique within the process (counter) and across
/// processes running at once (pid), short of Postgres's 63-byte limit.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    format!(
        "martelo_test_{:x}_{nanos:x}_{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_database_names_are_unique_identifiers_within_postgres_limits() {
        let (a, b) = (unique_name(), unique_name());
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
    }
}
