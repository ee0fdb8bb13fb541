//! [`PrivatePostgres`]: a Postgres server of our own in a given data directory, on a free
//! loopback port, for `martelo dev` and for tests that stop, restart or crash Postgres (the
//! machine's shared server on 5432 must never be stopped by a test).
//!
//! ```text
//!   data_dir/            initdb'd once (reused when it holds PG_VERSION)
//!     server.log         the server's log, appended by every start
//!     .s.PGSQL.<port>    the Unix socket (the socket dir is the data dir)
//!
//!   start ──initdb (first time)──▶ pg_ctl start -w -o "-p PORT -c listen_addresses=127.0.0.1 -k DIR"
//!   stop  ──▶ pg_ctl stop -m fast -w            (the port is kept)
//!   start_again ──▶ pg_ctl start, same port and data
//!   kill  ──▶ SIGKILL to the postmaster (pid from postmaster.pid): a crash
//! ```
//!
//! `initdb` and `pg_ctl` are found on PATH or under `/usr/lib/postgresql/<version>/bin`
//! (the newest) by [`postgres_bin_dir`]. When we run as root they run as the `postgres`
//! user through `runuser`, since `initdb` and `postgres` refuse root. Authentication is
//! `trust` for the user `postgres`, which is safe only because the server listens on
//! 127.0.0.1 alone.
//!
//! Dropping a [`PrivatePostgres`] stops its server (fast shutdown, then SIGKILL if that
//! fails), so a panicking test leaves no server behind.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use nix::sys::signal::{Signal, kill as send_signal};
use nix::unistd::Pid;

use crate::config::LOCAL_HOST;
use crate::logs::read_log_tail;
use crate::ports::pick_free_ports;

/// How long `pg_ctl start` and `pg_ctl stop` may wait for the server (`-t`).
pub const POSTGRES_WAIT_SECONDS: u32 = 30;
/// How long [`PrivatePostgres::kill`] waits for the postmaster to be gone.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Attempts at `pg_ctl start` in [`PrivatePostgres::start_again`]: after a SIGKILL the old
/// backends may hold the shared memory for a moment, and the start fails until they exit.
const START_ATTEMPTS_MAX: u32 = 5;
const START_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Postgres identifiers are at most 63 bytes.
pub const DATABASE_NAME_BYTES_MAX: usize = 63;
/// How many lines of the server log an error quotes.
const LOG_TAIL_LINES: usize = 20;
/// The server's log file inside the data dir.
pub const SERVER_LOG: &str = "server.log";
/// The superuser `initdb` creates, and the user the server runs as when we are root.
const POSTGRES_USER: &str = "postgres";

/// What went wrong while running a private Postgres. Messages are self-contained.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("no initdb and pg_ctl on PATH or under /usr/lib/postgresql/*/bin (install PostgreSQL)")]
    NotFound,
    #[error("{action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("could not pick a free port on {LOCAL_HOST}: {0}")]
    FreePort(io::Error),
    /// A program (`initdb`, `pg_ctl start`, …) failed; quotes its stderr and the server log.
    #[error("{command} failed ({status}): {stderr}; last lines of {}:\n{log_tail}", log_path.display())]
    Command {
        command: &'static str,
        status: String,
        stderr: String,
        log_path: PathBuf,
        log_tail: String,
    },
    #[error("the postmaster (pid {pid}) was still alive {timeout:?} after SIGKILL")]
    StillAlive { pid: u32, timeout: Duration },
    #[error("sending {signal} to the postmaster (pid {pid}): {error}")]
    Signal {
        pid: u32,
        signal: Signal,
        error: io::Error,
    },
    #[error("the Postgres server in {} is not running", data_dir.display())]
    NotRunning { data_dir: PathBuf },
    #[error(
        "invalid database name {0:?}: use 1 to {DATABASE_NAME_BYTES_MAX} of a-z, 0-9 and _, \
         starting with a letter"
    )]
    DatabaseName(String),
    #[error("{action} at {url}: {error}")]
    Sql {
        action: &'static str,
        url: String,
        error: sqlx::Error,
    },
}

/// A Postgres server in its own data dir on a loopback port, stopped on drop. Every method
/// takes `&self`, so a test can share it (in an `Arc`) with a nemesis task.
#[derive(Debug)]
pub struct PrivatePostgres {
    data_dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    /// We are root: `initdb`, `pg_ctl` and the server run as `postgres` through `runuser`.
    as_postgres_user: bool,
}

impl PrivatePostgres {
    /// Initializes `data_dir` unless it already holds a cluster, then starts the server on
    /// a free port of 127.0.0.1 and waits until it accepts connections. A server left
    /// running in `data_dir` by an earlier process is stopped first and started again on
    /// the new port.
    pub async fn start(data_dir: impl Into<PathBuf>) -> Result<PrivatePostgres, PostgresError> {
        let bin_dir = postgres_bin_dir().ok_or(PostgresError::NotFound)?;
        PrivatePostgres::start_with(data_dir.into(), bin_dir).await
    }

    /// [`PrivatePostgres::start`] with the directory that holds `initdb` and `pg_ctl`.
    pub async fn start_with(
        data_dir: PathBuf,
        bin_dir: PathBuf,
    ) -> Result<PrivatePostgres, PostgresError> {
        let as_postgres_user = running_as_root();
        let port = pick_free_ports(1)
            .map_err(PostgresError::FreePort)?
            .first()
            .copied()
            .ok_or_else(|| PostgresError::FreePort(io::Error::other("no port offered")))?;
        let postgres = PrivatePostgres {
            data_dir,
            bin_dir,
            port,
            as_postgres_user,
        };
        if !postgres.data_dir.join("PG_VERSION").exists() {
            postgres.initdb().await?;
        }
        if postgres.pg_ctl_status().await {
            postgres.pg_ctl_stop().await?;
        }
        postgres.pg_ctl_start().await?;
        Ok(postgres)
    }

    /// The server's URL without a database: `postgres://postgres@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("postgres://{POSTGRES_USER}@{LOCAL_HOST}:{}", self.port)
    }

    /// The URL of one database on this server.
    pub fn database_url(&self, name: &str) -> String {
        format!("{}/{name}", self.url())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's log, for a failure message.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join(SERVER_LOG)
    }

    /// Creates database `name` unless it exists; returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, PostgresError> {
        use sqlx::Connection as _;

        check_database_name(name)?;
        let admin_url = self.database_url("postgres");
        let sql_error = |action| {
            let url = admin_url.clone();
            move |error| PostgresError::Sql { action, url, error }
        };
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .map_err(sql_error("connecting"))?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&mut admin)
                .await
                .map_err(sql_error("looking up the database"))?;
        if !exists {
            // The name is checked above: it is a plain identifier, safe to splice in.
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .map_err(sql_error("creating the database"))?;
        }
        admin.close().await.map_err(sql_error("disconnecting"))?;
        Ok(self.database_url(name))
    }

    /// Stops the server (`pg_ctl stop -m fast`: open connections are cut, nothing committed
    /// is lost). The port and data are kept for [`PrivatePostgres::start_again`].
    pub async fn stop(&self) -> Result<(), PostgresError> {
        if !self.is_running() {
            return Err(PostgresError::NotRunning {
                data_dir: self.data_dir.clone(),
            });
        }
        self.pg_ctl_stop().await
    }

    /// Starts the server again on the same port with the same data, after
    /// [`PrivatePostgres::stop`] or [`PrivatePostgres::kill`] (crash recovery runs then).
    pub async fn start_again(&self) -> Result<(), PostgresError> {
        let mut attempt = 1;
        loop {
            match self.pg_ctl_start().await {
                Ok(()) => return Ok(()),
                Err(error) if attempt >= START_ATTEMPTS_MAX => return Err(error),
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(START_RETRY_DELAY).await;
                }
            }
        }
    }

    /// SIGKILL to the postmaster, then waits until it is gone: a crash, without shutdown
    /// checkpoint. Its backends notice and exit on their own.
    pub async fn kill(&self) -> Result<(), PostgresError> {
        let pid = self
            .postmaster_pid()
            .filter(|&pid| process_alive(pid))
            .ok_or_else(|| PostgresError::NotRunning {
                data_dir: self.data_dir.clone(),
            })?;
        signal_pid(pid, Signal::SIGKILL).map_err(|error| PostgresError::Signal {
            pid,
            signal: Signal::SIGKILL,
            error,
        })?;
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        while process_alive(pid) {
            if tokio::time::Instant::now() >= deadline {
                return Err(PostgresError::StillAlive {
                    pid,
                    timeout: KILL_WAIT,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Whether the postmaster named in `postmaster.pid` is alive.
    pub fn is_running(&self) -> bool {
        self.postmaster_pid().is_some_and(process_alive)
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    async fn initdb(&self) -> Result<(), PostgresError> {
        let io_error = |action, path: &Path| {
            let path = path.to_owned();
            move |error| PostgresError::Io {
                action,
                path,
                error,
            }
        };
        tokio::fs::create_dir_all(&self.data_dir)
            .await
            .map_err(io_error("creating the Postgres data dir", &self.data_dir))?;
        if self.as_postgres_user {
            // The data belongs to `postgres`, which must also be able to reach it through
            // its parent (a 0700 temporary dir of root's, typically).
            if let Some(parent) = self.data_dir.parent() {
                allow_traversal(parent).map_err(io_error("opening for postgres", parent))?;
            }
            let mut chown = tokio::process::Command::new("chown");
            chown.arg(format!("{POSTGRES_USER}:")).arg(&self.data_dir);
            self.run_checked(chown, "chown postgres DATA_DIR").await?;
        }
        let mut init = self.command("initdb");
        init.arg("-D").arg(&self.data_dir).args([
            "-U",
            POSTGRES_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        ]);
        self.run_checked(init, "initdb").await
    }

    async fn pg_ctl_start(&self) -> Result<(), PostgresError> {
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", &POSTGRES_WAIT_SECONDS.to_string(), "-o"])
            .arg(format!(
                "-p {} -c listen_addresses={LOCAL_HOST} -k {}",
                self.port,
                self.data_dir.display()
            ))
            .arg("start");
        self.run_checked(start, "pg_ctl start").await
    }

    async fn pg_ctl_stop(&self) -> Result<(), PostgresError> {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D").arg(&self.data_dir).args([
            "-m",
            "fast",
            "-w",
            "-t",
            &POSTGRES_WAIT_SECONDS.to_string(),
            "stop",
        ]);
        self.run_checked(stop, "pg_ctl stop").await
    }

    async fn pg_ctl_status(&self) -> bool {
        let mut status = self.command("pg_ctl");
        status.arg("-D").arg(&self.data_dir).arg("status");
        status
            .output()
            .await
            .is_ok_and(|output| output.status.success())
    }

    /// `bin_dir/program`, run as `postgres` through `runuser` when we are root.
    fn command(&self, program: &str) -> tokio::process::Command {
        let std = postgres_command(&self.bin_dir.join(program), self.as_postgres_user);
        let mut command = tokio::process::Command::from(std);
        command.kill_on_drop(true);
        command
    }

    async fn run_checked(
        &self,
        mut command: tokio::process::Command,
        what: &'static str,
    ) -> Result<(), PostgresError> {
        let output = command
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|error| PostgresError::Io {
                action: what,
                path: self.data_dir.clone(),
                error,
            })?;
        self.check_output(output, what)
    }

    fn check_output(&self, output: Output, what: &'static str) -> Result<(), PostgresError> {
        if output.status.success() {
            return Ok(());
        }
        let log_path = self.log_path();
        Err(PostgresError::Command {
            command: what,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            log_tail: read_log_tail(&log_path, LOG_TAIL_LINES),
            log_path,
        })
    }
}

impl Drop for PrivatePostgres {
    /// Stops the server (fast shutdown), or kills it if that fails: no server outlives a
    /// test. Blocking, since `Drop` cannot await.
    fn drop(&mut self) {
        if !self.is_running() {
            return;
        }
        let mut stop = postgres_command(&self.bin_dir.join("pg_ctl"), self.as_postgres_user);
        stop.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t", "10", "stop"])
            .stdin(std::process::Stdio::null());
        let stopped = stop.output().is_ok_and(|output| output.status.success());
        if !stopped && let Some(pid) = self.postmaster_pid() {
            // Nothing useful can be done with an error while dropping.
            let _ = signal_pid(pid, Signal::SIGKILL);
        }
    }
}

/// A directory holding both `initdb` and `pg_ctl`: PATH first, then the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let holds_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|dir| holds_both(dir))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| holds_both(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A database name we splice into `CREATE DATABASE`: a plain lowercase identifier.
fn check_database_name(name: &str) -> Result<(), PostgresError> {
    let valid = !name.is_empty()
        && name.len() <= DATABASE_NAME_BYTES_MAX
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(PostgresError::DatabaseName(name.to_owned()))
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Adds search (x) permission for everyone to `dir`, so `postgres` can reach a data dir
/// inside it.
fn allow_traversal(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut permissions = std::fs::metadata(dir)?.permissions();
    permissions.set_mode(permissions.mode() | 0o711);
    std::fs::set_permissions(dir, permissions)
}

/// A command that runs `program` as this user, or as `postgres` through `runuser` (root).
fn postgres_command(program: &Path, as_postgres_user: bool) -> std::process::Command {
    if as_postgres_user {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", POSTGRES_USER, "--"]).arg(program);
        command
    } else {
        std::process::Command::new(program)
    }
}

/// Whether `pid` is a live process. A zombie (state `Z`, dead but not yet reaped by its
/// parent) counts as dead: the postmaster is not our child, and pid 1 may reap it late.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name, which may itself hold ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn signal_pid(pid: u32, signal: Signal) -> io::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| io::Error::other(format!("pid {pid} overflows")))?;
    send_signal(Pid::from_raw(raw), signal).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_plain_lowercase_identifiers() {
        assert!(check_database_name("martelo").is_ok());
        assert!(check_database_name("sink_test_01").is_ok());
        assert!(check_database_name(&"a".repeat(DATABASE_NAME_BYTES_MAX)).is_ok());
        for bad in ["", "1abc", "Martelo", "a-b", "a;drop", "a b"] {
            assert!(
                matches!(
                    check_database_name(bad),
                    Err(PostgresError::DatabaseName(_))
                ),
                "{bad:?} must be refused"
            );
        }
        assert!(check_database_name(&"a".repeat(DATABASE_NAME_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn this_process_is_alive_and_a_missing_pid_is_not() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX - 1));
    }
}
