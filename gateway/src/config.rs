//! [`GatewayConfig`]: what a gateway needs to know, from a TOML file and flags, with every
//! limit explicit and defaulted.
//!
//! Precedence: built-in defaults < the TOML file (`--config`) < flags. The CLI (`martelo
//! gateway`, in the cluster crate) parses flags and calls [`GatewayConfig::load`]. The token
//! signing keys are never in this struct's `Debug` or in logs: the file holds a path to the
//! key ring, and [`crate::auth`] reads it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything a gateway is configured with.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where the HTTP and WebSocket server listens.
    pub listen: SocketAddr,
    /// Seed addresses of cluster nodes (`HOST:PORT`); the client learns the rest.
    pub cluster: Vec<String>,
    /// Origins allowed to open WebSockets and to use cookie sessions, exactly as browsers
    /// send them (`http://127.0.0.1:8080`). The gateway's own origin is always allowed.
    pub allowed_origins: Vec<String>,
    pub tokens: TokenConfig,
    pub limits: LimitConfig,
    pub rate: RateConfig,
    /// The sink's Postgres database, for the history and audit routes (`--postgres`, env
    /// `MARTELO_POSTGRES` or `DATABASE_URL`). Without one those routes answer 503
    /// `history_unavailable`; everything else works. `Debug` and logs never show its password.
    #[serde(deserialize_with = "postgres_url")]
    pub postgres: Option<martelo_sink::PostgresUrl>,
}

/// Reads `postgres = "postgres://…"` from the file, checked as a [`martelo_sink::PostgresUrl`].
fn postgres_url<'de, D>(deserializer: D) -> Result<Option<martelo_sink::PostgresUrl>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let url = Option::<String>::deserialize(deserializer)?;
    url.map(|url| {
        martelo_sink::PostgresUrl::try_from(url).map_err(|error| {
            serde::de::Error::custom(format!("postgres: {error} ({})", error.code()))
        })
    })
    .transpose()
}

/// Access and refresh tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// The `iss` claim of access tokens this gateway issues and accepts.
    pub issuer: String,
    /// The `aud` claim of access tokens this gateway issues and accepts.
    pub audience: String,
    /// Access token lifetime, seconds.
    pub access_ttl_secs: u64,
    /// Refresh token lifetime, seconds (each rotation starts a new lifetime).
    pub refresh_ttl_secs: u64,
    /// The key ring file (TOML: `current = "kid"` and `[keys] kid = "base64 secret"`), which
    /// must not be readable by other users. `None` draws an ephemeral key at start (a
    /// development setting: tokens die with the process, and gateways do not share them);
    /// the gateway logs a warning then.
    pub key_file: Option<PathBuf>,
    /// Mark cookies `Secure` (HTTPS only). Off by default because the development setup is
    /// plain HTTP on loopback; turn it on behind TLS.
    pub secure_cookies: bool,
}

/// Size, count and time limits: every input has one.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitConfig {
    /// Largest HTTP request body, bytes.
    pub body_bytes_max: usize,
    /// Largest WebSocket message from a client, bytes.
    pub ws_message_bytes_max: usize,
    /// Most auctions one WebSocket connection may subscribe to.
    pub ws_subscriptions_max: usize,
    /// Messages queued for one WebSocket client before it is treated as slow and gets a
    /// conflated snapshot instead of the backlog.
    pub ws_send_queue: usize,
    /// Events kept per auction for resuming clients (`after_seq`).
    pub replay_events_per_auction: usize,
    /// Auctions with a replay buffer at once; the least recently used is dropped first.
    pub replay_auctions_max: usize,
    /// Every HTTP request's deadline, milliseconds.
    pub request_timeout_ms: u64,
    /// Password hashes computed at once (each takes ~19 MiB and tens of milliseconds of a
    /// core); others wait, up to `password_queue_max`, then get `busy`.
    pub password_hash_concurrency: usize,
    /// Sign-ins and sign-ups waiting for a hashing slot before new ones are refused.
    pub password_queue_max: usize,
    /// Open WebSocket connections at once.
    pub ws_connections_max: usize,
    /// Postgres connections the history and audit routes share (the read pool).
    pub history_connections_max: u32,
}

/// Rate limits (token buckets).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Sustained requests per second per client IP.
    pub per_ip_per_sec: u32,
    /// Burst per client IP.
    pub per_ip_burst: u32,
    /// Sustained requests per second per signed-in user.
    pub per_user_per_sec: u32,
    /// Burst per signed-in user.
    pub per_user_burst: u32,
    /// Failed sign-ins allowed per account and per IP before they are slowed.
    pub login_failures_burst: u32,
    /// Seconds for one failed-sign-in allowance to come back.
    pub login_failure_recovery_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cluster: vec!["127.0.0.1:7001".to_owned()],
            allowed_origins: Vec::new(),
            tokens: TokenConfig::default(),
            limits: LimitConfig::default(),
            rate: RateConfig::default(),
            postgres: None,
        }
    }
}

impl Default for TokenConfig {
    fn default() -> TokenConfig {
        TokenConfig {
            issuer: "martelo".to_owned(),
            audience: "martelo-api".to_owned(),
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            key_file: None,
            secure_cookies: false,
        }
    }
}

impl Default for LimitConfig {
    fn default() -> LimitConfig {
        LimitConfig {
            body_bytes_max: 16 * 1024,
            ws_message_bytes_max: 4 * 1024,
            ws_subscriptions_max: 64,
            ws_send_queue: 256,
            replay_events_per_auction: 256,
            replay_auctions_max: 10_000,
            request_timeout_ms: 10_000,
            password_hash_concurrency: 1,
            password_queue_max: 64,
            ws_connections_max: 15_000,
            history_connections_max: 4,
        }
    }
}

impl Default for RateConfig {
    fn default() -> RateConfig {
        RateConfig {
            per_ip_per_sec: 200,
            per_ip_burst: 400,
            per_user_per_sec: 50,
            per_user_burst: 100,
            login_failures_burst: 5,
            login_failure_recovery_secs: 60,
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the gateway config {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("the gateway config {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("gateway setting {setting}: {reason}")]
    Setting {
        setting: &'static str,
        reason: String,
    },
}

/// Largest config file read, bytes.
const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;

impl GatewayConfig {
    /// The defaults, overlaid by the TOML file at `path` if one is given. Flags are applied
    /// by the caller afterwards, then [`GatewayConfig::validate`].
    pub fn load(path: Option<&Path>) -> Result<GatewayConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(GatewayConfig::default());
        };
        let unreadable = |reason: String| ConfigError::Unreadable {
            path: path.to_owned(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|error| unreadable(error.to_string()))?
            .len();
        if size > CONFIG_FILE_BYTES_MAX {
            return Err(unreadable(format!(
                "{size} bytes, more than the {CONFIG_FILE_BYTES_MAX} allowed"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|error| unreadable(error.to_string()))?;
        toml::from_str(&text).map_err(|error| ConfigError::Invalid {
            path: path.to_owned(),
            reason: error.to_string(),
        })
    }

    /// Refuses settings that cannot work (zero limits, no cluster, lifetimes out of range).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let setting = |setting: &'static str, reason: &str| {
            Err(ConfigError::Setting {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.cluster.is_empty() {
            return setting("cluster", "name at least one node address");
        }
        let limits = &self.limits;
        let positive = [
            ("limits.body_bytes_max", limits.body_bytes_max),
            ("limits.ws_message_bytes_max", limits.ws_message_bytes_max),
            ("limits.ws_subscriptions_max", limits.ws_subscriptions_max),
            ("limits.ws_send_queue", limits.ws_send_queue),
            (
                "limits.replay_events_per_auction",
                limits.replay_events_per_auction,
            ),
            ("limits.replay_auctions_max", limits.replay_auctions_max),
            (
                "limits.password_hash_concurrency",
                limits.password_hash_concurrency,
            ),
            ("limits.ws_connections_max", limits.ws_connections_max),
        ];
        for (name, value) in positive {
            if value == 0 {
                return setting(name, "must be at least 1");
            }
        }
        if !(1..=64).contains(&limits.history_connections_max) {
            return setting("limits.history_connections_max", "between 1 and 64");
        }
        if limits.body_bytes_max > 1024 * 1024 {
            return setting("limits.body_bytes_max", "at most 1 MiB");
        }
        if limits.request_timeout_ms == 0 {
            return setting("limits.request_timeout_ms", "must be at least 1");
        }
        let tokens = &self.tokens;
        if !(10..=24 * 3600).contains(&tokens.access_ttl_secs) {
            return setting("tokens.access_ttl_secs", "between 10 s and 24 h");
        }
        if tokens.refresh_ttl_secs < tokens.access_ttl_secs
            || tokens.refresh_ttl_secs > 365 * 24 * 3600
        {
            return setting(
                "tokens.refresh_ttl_secs",
                "at least the access lifetime, at most a year",
            );
        }
        let rate = &self.rate;
        if rate.per_ip_per_sec == 0 || rate.per_user_per_sec == 0 || rate.login_failures_burst == 0
        {
            return setting("rate", "every rate must be at least 1");
        }
        Ok(())
    }

    /// Sets the history database from a flag or the environment (the CLI's `--postgres`),
    /// refusing a URL that is not a Postgres URL; the error shows it without its password.
    pub fn set_postgres(&mut self, url: &str) -> Result<(), ConfigError> {
        let url = martelo_sink::PostgresUrl::try_from(url.to_owned()).map_err(|error| {
            ConfigError::Setting {
                setting: "postgres",
                reason: format!("{}: {error}", martelo_sink::redact(url)),
            }
        })?;
        self.postgres = Some(url);
        Ok(())
    }

    /// Every HTTP request's deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        GatewayConfig::default().validate().expect("valid defaults");
    }

    #[test]
    fn a_postgres_flag_is_checked_and_never_shown_with_its_password() {
        let mut config = GatewayConfig::default();
        let error = config
            .set_postgres("mysql://u:hidden@h/db")
            .expect_err("not postgres");
        assert!(!error.to_string().contains("hidden"), "{error}");
        config
            .set_postgres("postgres://u:hidden@127.0.0.1/db")
            .expect("postgres");
        assert!(!format!("{config:?}").contains("hidden"));
        assert!(config.postgres.is_some());
    }

    #[test]
    fn a_zero_limit_is_refused_with_its_name() {
        let mut config = GatewayConfig::default();
        config.limits.ws_send_queue = 0;
        let error = config.validate().expect_err("zero queue");
        assert!(
            error.to_string().contains("limits.ws_send_queue"),
            "{error}"
        );
    }

    #[test]
    fn a_file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gateway.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\ncluster = [\"127.0.0.1:1\"]\n[limits]\nws_send_queue = 7\n",
        )
        .expect("write");
        let config = GatewayConfig::load(Some(&path)).expect("loads");
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.limits.ws_send_queue, 7);
        assert_eq!(config.limits.body_bytes_max, 16 * 1024, "untouched default");
        std::fs::write(
            &path,
            "postgres = \"postgres://reader:s3cret@127.0.0.1:5432/martelo\"\n",
        )
        .expect("write");
        let config = GatewayConfig::load(Some(&path)).expect("loads");
        let shown = format!("{config:?}");
        assert!(shown.contains("reader:***@127.0.0.1"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        std::fs::write(&path, "postgres = \"mysql://x\"\n").expect("write");
        let error = GatewayConfig::load(Some(&path)).expect_err("not postgres");
        assert!(error.to_string().contains("postgres_url_scheme"), "{error}");
        std::fs::write(&path, "listen_on = \"127.0.0.1:1\"\n").expect("write");
        let error = GatewayConfig::load(Some(&path)).expect_err("unknown key");
        assert!(error.to_string().contains("listen_on"), "{error}");
    }
}
