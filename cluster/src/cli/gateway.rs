//! `martelo gateway`: runs one gateway (martelo-gateway) in the foreground.
//!
//! Settings come from the built-in defaults, then the TOML file (`--config`), then these
//! flags ([`GatewayArgs::config`]); the gateway validates the result before it listens.
//! The token keys come from a file (`--key-file`), never from a flag or the environment:
//! `--new-key-file PATH` writes one (mode 0600) and exits.
//!
//! What does not live here: the gateway itself (the `martelo-gateway` crate).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use martelo_gateway::GatewayConfig;
use martelo_gateway::auth::keys::KeyRing;

use crate::node::config::LogFormat;

/// `martelo gateway`.
#[derive(Clone, Debug, clap::Args)]
pub struct GatewayArgs {
    /// Cluster node addresses to start from (`HOST:PORT`, comma-separated); the gateway
    /// learns the rest. [default: 127.0.0.1:7001, or the config file's `cluster`]
    #[arg(
        long,
        env = "MARTELO_CLUSTER",
        value_name = "ADDR[,ADDR]",
        value_delimiter = ','
    )]
    pub cluster: Vec<String>,
    /// Where to serve HTTP and WebSocket. [default: 127.0.0.1:8080, or the config file's]
    #[arg(long, env = "MARTELO_GATEWAY_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// A TOML file of gateway settings (see docs/OPERATIONS.md, "Gateway").
    #[arg(long, env = "MARTELO_GATEWAY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The token key ring file (mode 0600). Without one, tokens are signed with an
    /// ephemeral key: fine for trying things out, wrong for more than one gateway.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// An Origin allowed to open WebSockets and use cookie sessions; repeat for several.
    /// The gateway's own origin is always allowed.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// The sink's Postgres database, for the history and audit routes
    /// (`postgres://user@host:port/db`; also `MARTELO_POSTGRES`, then `DATABASE_URL`).
    /// Without one, those routes answer 503 `history_unavailable`.
    #[arg(
        long,
        env = "MARTELO_POSTGRES",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub postgres: Option<String>,
    /// Mark session cookies `Secure` (set this when clients reach the gateway over HTTPS).
    #[arg(long)]
    pub secure_cookies: bool,
    /// Log format on stderr.
    #[arg(long, env = "MARTELO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// OTLP/gRPC endpoint that spans are exported to, `http://host:port`; without it no
    /// span leaves the gateway.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The exported spans' `service.name`.
    #[arg(
        long,
        env = "OTEL_SERVICE_NAME",
        value_name = "NAME",
        default_value = "martelo-gateway"
    )]
    pub otlp_service_name: String,
    /// Fraction of new traces exported, 0 to 1; a trace started by the caller (a
    /// `traceparent` header) follows the caller's decision.
    #[arg(
        long,
        env = "OTEL_TRACES_SAMPLER_ARG",
        value_name = "RATIO",
        default_value_t = 1.0
    )]
    pub otlp_sample_ratio: f64,
    /// Write a new token key file at PATH (one random key, mode 0600) and exit.
    #[arg(long, value_name = "PATH", exclusive = true)]
    pub new_key_file: Option<PathBuf>,
}

impl GatewayArgs {
    /// The effective configuration: defaults < `--config` file < flags. Not yet validated.
    pub fn config(&self) -> anyhow::Result<GatewayConfig> {
        let mut config = GatewayConfig::load(self.config.as_deref())?;
        if !self.cluster.is_empty() {
            config.cluster = self.cluster.clone();
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if self.key_file.is_some() {
            config.tokens.key_file = self.key_file.clone();
        }
        config
            .allowed_origins
            .extend(self.allowed_origins.iter().cloned());
        if self.secure_cookies {
            config.tokens.secure_cookies = true;
        }
        let postgres = self.postgres.clone().or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|url| !url.is_empty())
        });
        if let Some(url) = postgres {
            config.set_postgres(&url)?;
        }
        Ok(config)
    }
}

/// Runs `martelo gateway` until Ctrl-C or SIGTERM, then drains and stops.
pub async fn run_gateway(args: GatewayArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.new_key_file {
        KeyRing::create_file(path)?;
        println!("wrote a new token key file: {}", path.display());
        return Ok(());
    }
    // Before the gateway listens: see `crate::signals`.
    let stop_signals =
        crate::signals::StopSignals::install().context("installing the SIGTERM handler")?;
    let config = args.config()?;
    let otlp = args
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| {
            martelo_trace::OtlpConfig::new(
                endpoint,
                &args.otlp_service_name,
                args.otlp_sample_ratio,
            )
            .map(|mut otlp| {
                otlp.attributes.push((
                    "service.instance.id".to_owned(),
                    format!("gateway-{}", config.listen),
                ));
                otlp
            })
        })
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let exporter = crate::node::telemetry::init_logs(args.log_format, otlp.as_ref())?;
    tracing::info!(
        listen = %config.listen,
        cluster = ?config.cluster,
        "martelo gateway starting"
    );
    let served = martelo_gateway::server::serve(config, stop_signals.received())
        .await
        .context("the gateway failed");
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    served?;
    tracing::info!("martelo gateway stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        gateway: GatewayArgs,
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gateway.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ncluster = [\"127.0.0.1:7101\"]\n\
             allowed_origins = [\"http://a.example\"]\n",
        )
        .expect("write");
        let file_only = Cli::parse_from(["gw", "--config", path.to_str().expect("utf-8")])
            .gateway
            .config()
            .expect("config");
        assert_eq!(file_only.listen.port(), 9000);
        assert_eq!(file_only.cluster, ["127.0.0.1:7101"]);
        let flags = Cli::parse_from([
            "gw",
            "--config",
            path.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:9001",
            "--cluster",
            "127.0.0.1:1,127.0.0.1:2",
            "--allowed-origin",
            "http://b.example",
            "--secure-cookies",
            "--postgres",
            "postgres://reader:s3cret@127.0.0.1:5432/martelo",
        ])
        .gateway
        .config()
        .expect("config");
        assert_eq!(flags.listen.port(), 9001);
        assert_eq!(flags.cluster, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(
            flags.allowed_origins,
            ["http://a.example", "http://b.example"]
        );
        assert!(flags.tokens.secure_cookies);
        let postgres = flags.postgres.as_ref().expect("--postgres is taken");
        assert!(!format!("{postgres} {postgres:?}").contains("s3cret"));
        let defaults = Cli::parse_from(["gw"]).gateway.config().expect("config");
        assert_eq!(defaults.listen, GatewayConfig::default().listen);
    }
}
