//! `martelo gateway` child processes in front of a local cluster, for the whole-product tests,
//! the bench's gateway target and the fault suite's gateway workload.
//!
//! A [`GatewayProcess`] is one `martelo gateway` process on a free loopback port, logging JSON
//! lines to `dir/gateway-NAME.log` (appended across restarts). It is ready when `GET /healthz`
//! answers 2xx. Dropping it kills the process. [`write_key_file`] makes the token key file that
//! every gateway of one deployment shares, so a token issued by one is accepted by the others.
//!
//! What does not live here: the gateway itself (`martelo-gateway`), and the nodes' supervisor
//! ([`crate::LocalCluster`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::error::LocalError;
use crate::{POLL_INTERVAL_MAX, martelo_bin, ports};

/// How long a gateway may take to answer `/healthz` after it is spawned.
pub const GATEWAY_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variables the gateway reads, removed from the child so that the caller's shell
/// cannot change what a test or a bench starts. The Postgres ones would give every gateway a
/// history database; a caller that wants one passes it in the gateway's config file.
const GATEWAY_ENV: [&str; 5] = [
    "MARTELO_CLUSTER",
    "MARTELO_GATEWAY_LISTEN",
    "MARTELO_GATEWAY_CONFIG",
    "MARTELO_POSTGRES",
    "DATABASE_URL",
];

/// A `martelo gateway` child process; killed when dropped.
#[derive(Debug)]
pub struct GatewayProcess {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// Its log file (JSON lines on stderr, appended across restarts).
    pub log: PathBuf,
    command: Vec<std::ffi::OsString>,
    binary: PathBuf,
    /// Whether the child runs in a process group of its own, so that Ctrl-C in the caller's
    /// terminal does not reach it (the caller decides when it stops).
    own_process_group: bool,
    child: Option<tokio::process::Child>,
}

impl GatewayProcess {
    /// Starts [`martelo_bin`]'s `gateway` against `seeds` (node client addresses) with the
    /// token key file `key_file` and any `extra_args` (e.g. `--config FILE`), and waits until
    /// `/healthz` answers.
    pub async fn start(
        dir: &Path,
        name: &str,
        seeds: &[String],
        key_file: &Path,
        extra_args: &[String],
    ) -> Result<Self, LocalError> {
        Self::start_with(&martelo_bin(), dir, name, seeds, key_file, extra_args).await
    }

    /// [`GatewayProcess::start`] with the `martelo` binary given, e.g. `current_exe()` in
    /// `martelo bench`.
    pub async fn start_with(
        binary: &Path,
        dir: &Path,
        name: &str,
        seeds: &[String],
        key_file: &Path,
        extra_args: &[String],
    ) -> Result<Self, LocalError> {
        Self::start_configured(binary, dir, name, seeds, key_file, extra_args, false).await
    }

    /// [`GatewayProcess::start_with`], with the child in a process group of its own: Ctrl-C
    /// in the caller's terminal (SIGINT to the foreground group) does not kill it, so a
    /// caller that handles Ctrl-C itself (`martelo bench`) stops it when it is done.
    pub async fn start_in_own_group(
        binary: &Path,
        dir: &Path,
        name: &str,
        seeds: &[String],
        key_file: &Path,
        extra_args: &[String],
    ) -> Result<Self, LocalError> {
        Self::start_configured(binary, dir, name, seeds, key_file, extra_args, true).await
    }

    async fn start_configured(
        binary: &Path,
        dir: &Path,
        name: &str,
        seeds: &[String],
        key_file: &Path,
        extra_args: &[String],
        own_process_group: bool,
    ) -> Result<Self, LocalError> {
        let port = ports::pick_free_ports(1).map_err(LocalError::FreePort)?[0];
        let address = format!("{}:{port}", crate::config::LOCAL_HOST);
        let mut command: Vec<std::ffi::OsString> = vec![
            "gateway".into(),
            "--cluster".into(),
            seeds.join(",").into(),
            "--listen".into(),
            address.clone().into(),
            "--key-file".into(),
            key_file.into(),
        ];
        command.extend(extra_args.iter().map(Into::into));
        let mut gateway = GatewayProcess {
            base: format!("http://{address}"),
            address,
            log: dir.join(format!("gateway-{name}.log")),
            command,
            binary: binary.to_path_buf(),
            own_process_group,
            child: None,
        };
        gateway.spawn().await?;
        Ok(gateway)
    }

    async fn spawn(&mut self) -> Result<(), LocalError> {
        let io_error = |action, error| LocalError::Io {
            action,
            path: self.log.clone(),
            error,
        };
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|error| io_error("opening the gateway log", error))?;
        let mut command = tokio::process::Command::new(&self.binary);
        command.args(&self.command);
        for variable in GATEWAY_ENV {
            command.env_remove(variable);
        }
        if self.own_process_group {
            command.process_group(0);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| LocalError::Io {
                action: "spawning a gateway from",
                path: self.binary.clone(),
                error,
            })?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), LocalError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|error| LocalError::Config(format!("building an HTTP client: {error}")))?;
        let url = format!("{}/healthz", self.base);
        let deadline = tokio::time::Instant::now() + GATEWAY_READY_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(self.not_ready(format!("it exited ({status})")));
            }
            let last_error = match http.get(&url).send().await {
                Ok(answer) if answer.status().is_success() => return Ok(()),
                Ok(answer) => format!("/healthz answered {}", answer.status()),
                Err(error) => error.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(self.not_ready(format!(
                    "no healthy answer within {GATEWAY_READY_TIMEOUT:?} (last: {last_error})"
                )));
            }
            tokio::time::sleep(POLL_INTERVAL_MAX).await;
        }
    }

    fn not_ready(&self, why: String) -> LocalError {
        LocalError::GatewayNotReady {
            address: self.address.clone(),
            why,
            log_path: self.log.clone(),
            log_tail: crate::read_log_tail(&self.log, crate::logs::LOG_TAIL_LINES_MAX),
        }
    }

    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exit_status().is_none()
    }

    /// Kills the process (SIGKILL) and reaps it. Killing a stopped gateway does nothing.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error here means it has already exited, which is what we want.
            let _ = child.kill().await;
        }
    }

    /// Starts the gateway again on the same port with the same arguments (killing it first
    /// if it still runs), and waits until it is ready.
    pub async fn restart(&mut self) -> Result<(), LocalError> {
        self.kill().await;
        self.spawn().await
    }
}

/// Writes a new token key file `dir/gateway-keys.toml` with `martelo gateway --new-key-file`
/// (mode 0600), to be shared by every gateway of one deployment.
pub async fn write_key_file(dir: &Path) -> Result<PathBuf, LocalError> {
    write_key_file_with(&martelo_bin(), dir).await
}

/// [`write_key_file`] with the `martelo` binary given.
pub async fn write_key_file_with(binary: &Path, dir: &Path) -> Result<PathBuf, LocalError> {
    let path = dir.join("gateway-keys.toml");
    let output = tokio::process::Command::new(binary)
        .arg("gateway")
        .arg("--new-key-file")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|error| LocalError::Io {
            action: "running `martelo gateway --new-key-file` from",
            path: binary.to_path_buf(),
            error,
        })?;
    if !output.status.success() {
        return Err(LocalError::Config(format!(
            "`martelo gateway --new-key-file {}` failed ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(path)
}
