//! `martelo dev`: a local cluster in the foreground, on embedded defaults.
//!
//! The nodes' Postgres sink: `DATABASE_URL` when set; otherwise a private Postgres in the
//! dev directory (`DIR/postgres`, on a free loopback port, trust auth, database `martelo`)
//! when `initdb` and `pg_ctl` are found on PATH or under `/usr/lib/postgresql/*/bin` (run as
//! the `postgres` user through `runuser` when `martelo dev` runs as root, since `initdb`
//! refuses root); otherwise no sink, said once. See [`dev_postgres`]; the server itself is
//! martelo-devkit's `PrivatePostgres`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use martelo_devkit::{
    InitOutcome, LocalCluster, LocalClusterConfig, LocalError, PrivatePostgres, postgres_bin_dir,
};
use martelo_types::NodeId;

/// `martelo dev`: run a local cluster in the foreground until Ctrl-C.
#[derive(Clone, Debug, clap::Args)]
pub struct DevArgs {
    /// Where the data dirs and logs live. Default: a new temporary directory, kept after
    /// exit. Run again with the same dir to restart that cluster from its data.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Number of nodes.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub nodes: usize,
    /// Number of auction shards (Raft groups besides the meta group), fixed at init.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub shard_count: u32,
    /// Node N listens on this port + N - 1.
    #[arg(long, value_name = "PORT", default_value_t = 7001)]
    pub base_port: u16,
    /// Node N serves Prometheus metrics on this port + N - 1.
    #[arg(long, value_name = "PORT", default_value_t = 9101)]
    pub metrics_base_port: u16,
    /// The `martelo` binary to run the nodes with. Default: this executable.
    #[arg(long, value_name = "PATH", hide = true)]
    pub binary: Option<PathBuf>,
    /// Where the gateway (HTTP API, WebSocket, API docs) listens.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub gateway_listen: std::net::SocketAddr,
    /// Run the nodes only, without a gateway.
    #[arg(long)]
    pub no_gateway: bool,
}

/// Runs `martelo dev`: starts (or restarts) the cluster, initializes it, prints where
/// everything is, then waits for Ctrl-C or SIGTERM and stops every node cleanly.
pub async fn run_dev(args: DevArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};

    // Installed first: a Ctrl-C during startup must reach us, not end the process before
    // `Drop` can kill the nodes (they run in their own process group).
    let mut interrupt = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;

    let binary = match args.binary {
        Some(binary) => binary,
        None => std::env::current_exe().context("finding the martelo executable")?,
    };
    let dir = match args.dir {
        Some(dir) => dir,
        None => tempfile::Builder::new()
            .prefix("martelo-dev-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep(),
    };
    let mut config = LocalClusterConfig::new(binary, &dir);
    config.nodes = args.nodes;
    config.shard_count = args.shard_count;
    config.base_port = Some(args.base_port);
    config.metrics = true;
    config.metrics_base_port = Some(args.metrics_base_port);
    config.own_process_group = true;
    // Children see no inherited `MARTELO_*` variable (see `spawn_node`); the log format is
    // the one a developer may well set in their shell, so it is passed on on purpose.
    if let Some(format) = std::env::var_os("MARTELO_LOG_FORMAT").and_then(|f| f.into_string().ok())
    {
        config.env.push(("MARTELO_LOG_FORMAT".to_owned(), format));
    }
    let postgres = dev_postgres(&dir).await;
    println!("{}", postgres.describe());
    if let Some(url) = postgres.url() {
        config
            .extra_args
            .extend(["--postgres".to_owned(), url.to_owned()]);
    }

    println!(
        "martelo dev: starting {} nodes in {}",
        config.nodes,
        dir.display()
    );
    let cluster = tokio::select! {
        started = LocalCluster::start(config) => started?,
        _ = interrupt.recv() => {
            println!("interrupted while starting; the nodes were killed");
            return Ok(());
        }
        _ = terminate.recv() => {
            println!("terminated while starting; the nodes were killed");
            return Ok(());
        }
    };
    let initialized = tokio::select! {
        outcome = cluster.init() => Some(outcome),
        _ = interrupt.recv() => None,
        _ = terminate.recv() => None,
    };
    match initialized {
        Some(Ok(InitOutcome::Initialized(layout))) => println!(
            "cluster initialized: {} groups (the meta group and {} auction shards)",
            layout.groups.len(),
            layout.groups.len().saturating_sub(1)
        ),
        Some(Ok(InitOutcome::AlreadyInitialized)) => println!(
            "cluster already initialized in {}: the nodes restarted from their data dirs",
            dir.display()
        ),
        Some(Err(error)) => {
            println!("the cluster did not become healthy: {error}");
            println!("node logs: {}", dir.join("node-*.log").display());
            report_stop(&cluster.stop_all().await);
            return Err(error.into());
        }
        None => {
            println!("interrupted while initializing; stopping the nodes");
            return stop_and_report(&cluster).await;
        }
    }

    let (stop_gateway, gateway_stopped) = tokio::sync::watch::channel(false);
    let mut gateway = if args.no_gateway {
        None
    } else {
        match start_gateway(
            &cluster,
            &dir,
            args.gateway_listen,
            postgres.url(),
            gateway_stopped,
        )
        .await
        {
            Ok(started) => Some(started),
            Err(error) => {
                println!("the gateway did not start: {error:#}");
                return stop_and_report(&cluster).await;
            }
        }
    };

    print_dev_summary(&cluster, &dir, gateway.as_ref());

    let mut reported_exits = BTreeSet::new();
    let mut watch = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            ended = async { (&mut gateway.as_mut()?.serving).await.ok() },
                if gateway.is_some() => {
                let outcome = match ended {
                    Some(Ok(())) => "stopped".to_owned(),
                    Some(Err(error)) => format!("failed: {error}"),
                    None => "stopped unexpectedly".to_owned(),
                };
                println!("the gateway {outcome}; see {}", dir.join(GATEWAY_LOG).display());
                gateway = None;
            }
            _ = watch.tick() => {
                for id in cluster.node_ids() {
                    if !cluster.is_running(id) && reported_exits.insert(id) {
                        let status = cluster
                            .exit_status(id)
                            .map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                        let log = cluster.node(id).map(|info| info.log_path).unwrap_or_default();
                        println!("node {id} exited ({status}); see {}", log.display());
                    }
                }
            }
        }
    }
    if let Some(gateway) = gateway {
        println!("stopping the gateway");
        let _ = stop_gateway.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), gateway.serving).await;
        if let Some(exporter) = gateway.exporter {
            exporter.shutdown();
        }
    }
    println!("stopping the nodes");
    stop_and_report(&cluster).await?;
    println!(
        "data kept in {}; run `martelo dev --dir {}` to start this cluster again",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Where `martelo dev`'s nodes write their sink.
#[derive(Debug)]
pub enum DevPostgres {
    /// `DATABASE_URL`, used as it is.
    External(martelo_sink::PostgresUrl),
    /// A Postgres this process started in the dev directory (database `martelo`), stopped
    /// when this value is dropped: after the nodes, since `cluster` is declared later.
    Private {
        postgres: PrivatePostgres,
        url: String,
    },
    /// No sink, and why.
    Off(String),
}

impl DevPostgres {
    /// The URL to give the nodes, if the sink is on.
    pub fn url(&self) -> Option<&str> {
        match self {
            DevPostgres::External(url) => Some(url.expose()),
            DevPostgres::Private { url, .. } => Some(url),
            DevPostgres::Off(_) => None,
        }
    }

    /// One line for the developer.
    pub fn describe(&self) -> String {
        match self {
            DevPostgres::External(url) => format!("sink: Postgres from DATABASE_URL ({url})"),
            DevPostgres::Private { postgres, url } => format!(
                "sink: a private Postgres in {} at {url}",
                postgres.data_dir().display()
            ),
            DevPostgres::Off(why) => format!("sink off: {why}; running without the Postgres sink"),
        }
    }
}

impl Drop for DevPostgres {
    /// Says that a private Postgres stops: its own `Drop` (fast shutdown) runs right after
    /// this, when the variant's fields are dropped.
    fn drop(&mut self) {
        if let DevPostgres::Private { postgres, .. } = self
            && postgres.is_running()
        {
            println!(
                "stopping the private Postgres (log {})",
                postgres.log_path().display()
            );
        }
    }
}

/// The dev cluster's Postgres database.
const DEV_DATABASE: &str = "martelo";

/// Picks the dev cluster's Postgres: `DATABASE_URL`, else a private one in `dir/postgres`
/// when `initdb` and `pg_ctl` are found, else none.
pub async fn dev_postgres(dir: &Path) -> DevPostgres {
    if let Some(url) = std::env::var_os("DATABASE_URL").and_then(|url| url.into_string().ok()) {
        return match martelo_sink::PostgresUrl::try_from(url.clone()) {
            Ok(url) => DevPostgres::External(url),
            Err(error) => DevPostgres::Off(format!(
                "DATABASE_URL ({}) is not usable: {error}",
                martelo_sink::redact(&url)
            )),
        };
    }
    let Some(bin) = postgres_bin_dir() else {
        return DevPostgres::Off(
            "no DATABASE_URL, and no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin \
             (install PostgreSQL or set DATABASE_URL to turn it on)"
                .to_owned(),
        );
    };
    let data_dir = dir.join("postgres");
    let started = match PrivatePostgres::start_with(data_dir.clone(), bin).await {
        Ok(postgres) => postgres
            .create_database(DEV_DATABASE)
            .await
            .map(|url| DevPostgres::Private { postgres, url }),
        Err(error) => Err(error),
    };
    started.unwrap_or_else(|error| {
        DevPostgres::Off(format!(
            "the private Postgres did not start ({error}); see {}",
            data_dir
                .join(martelo_devkit::postgres::SERVER_LOG)
                .display()
        ))
    })
}

/// The gateway's log file in the dev directory.
const GATEWAY_LOG: &str = "gateway.log";
/// The token key file in the dev directory (kept, so sessions survive a restart).
const GATEWAY_KEYS: &str = "gateway-keys.toml";
/// The first admin's username.
const DEV_ADMIN: &str = "admin";

/// The gateway `martelo dev` runs in its own process, beside the nodes.
struct DevGateway {
    address: std::net::SocketAddr,
    /// The gateway's span exporter, when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    exporter: Option<martelo_trace::Exporter>,
    serving: tokio::task::JoinHandle<Result<(), martelo_gateway::error::GatewayError>>,
    /// The first admin's password, when this start created the admin (printed once).
    admin_password: Option<String>,
}

/// Creates the first admin if the cluster has none, then starts the gateway on `listen`,
/// logging to `dir/gateway.log` as JSON lines, with the sink's database (when there is one)
/// for its history and audit routes.
async fn start_gateway(
    cluster: &LocalCluster,
    dir: &Path,
    listen: std::net::SocketAddr,
    postgres: Option<&str>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<DevGateway> {
    use anyhow::Context as _;

    let seeds = cluster.api_addresses();
    let admin_password = create_dev_admin(&seeds).await?;
    let keys = dir.join(GATEWAY_KEYS);
    if !keys.exists() {
        martelo_gateway::auth::keys::KeyRing::create_file(&keys)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(GATEWAY_LOG))
        .context("opening the gateway log")?;
    // Spans go where the nodes' go: OTEL_EXPORTER_OTLP_ENDPOINT, which the nodes inherit.
    let otlp = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|endpoint| !endpoint.is_empty())
        .map(|endpoint| martelo_trace::OtlpConfig::new(&endpoint, "martelo-gateway", 1.0))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let exporter =
        crate::node::telemetry::init_json_logs_to(std::sync::Mutex::new(log), otlp.as_ref())?;
    martelo_gateway::server::install_metrics_recorder()?;
    let mut config = martelo_gateway::GatewayConfig {
        cluster: seeds,
        listen,
        ..martelo_gateway::GatewayConfig::default()
    };
    config.tokens.key_file = Some(keys);
    if let Some(url) = postgres {
        config.set_postgres(url)?;
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (use --gateway-listen)"))?;
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let (address, serving) = martelo_gateway::server::serve_on(config, listener, shutdown).await?;
    Ok(DevGateway {
        address,
        exporter,
        serving: tokio::spawn(serving),
        admin_password,
    })
}

/// Creates the account `admin` with a random password if the cluster has no admin yet;
/// returns the password then, `None` if an admin existed (a restarted dev cluster).
async fn create_dev_admin(seeds: &[String]) -> anyhow::Result<Option<String>> {
    use base64::Engine as _;

    let password =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>());
    let roles = [martelo_engine::Role::Admin].into_iter().collect();
    let admin = martelo_client::admin::Admin::default();
    let registered = super::user::register_as_operator(
        &admin,
        seeds,
        DEV_ADMIN,
        "Administrator",
        &password,
        &roles,
    )
    .await?;
    match registered {
        Ok(_) => Ok(Some(password)),
        Err(code) if matches!(code.as_str(), "admin_exists" | "username_taken") => Ok(None),
        Err(code) => anyhow::bail!("creating the first admin: {}", code.as_str()),
    }
}

fn print_dev_summary(cluster: &LocalCluster, dir: &Path, gateway: Option<&DevGateway>) {
    println!();
    println!("martelo dev cluster is up (directory {})", dir.display());
    for info in cluster.nodes() {
        println!("  node {}", info.id);
        println!("    address   {}", info.address);
        if let Some(url) = info.metrics_url() {
            println!("    metrics   {url}");
        }
        println!("    data dir  {}", info.data_dir.display());
        println!("    log       {}", info.log_path.display());
    }
    let first = cluster
        .api_addresses()
        .into_iter()
        .next()
        .unwrap_or_default();
    println!();
    println!("try:");
    println!("  martelo status --addr {first}");
    // `--addr` defaults to 127.0.0.1:7001, the default base port.
    if first == "127.0.0.1:7001" {
        println!("  martelo auction show 1");
    } else {
        println!("  martelo auction show 1 --addr {first}");
    }
    if let Some(gateway) = gateway {
        let url = format!("http://{}", gateway.address);
        println!();
        println!("gateway (log {})", dir.join(GATEWAY_LOG).display());
        println!("  web UI    {url}/");
        println!("  API docs  {url}/v1/docs");
        println!("  WebSocket ws://{}/v1/ws", gateway.address);
        match &gateway.admin_password {
            Some(password) => {
                println!("  first admin: username {DEV_ADMIN}, password {password}");
                println!("  (shown once: the cluster stores only its hash)");
            }
            None => println!(
                "  an admin exists already: its password was shown when this cluster first started"
            ),
        }
    }
    println!();
    println!("press Ctrl-C to stop every node cleanly");
}

async fn stop_and_report(cluster: &LocalCluster) -> anyhow::Result<()> {
    let results = cluster.stop_all().await;
    if report_stop(&results) {
        Ok(())
    } else {
        anyhow::bail!("some nodes did not stop cleanly; their logs say why")
    }
}

/// Prints one line per node; true when every node stopped cleanly.
fn report_stop(results: &BTreeMap<NodeId, Result<bool, LocalError>>) -> bool {
    let mut all_clean = true;
    for (id, result) in results {
        match result {
            Ok(true) => println!("node {id} stopped cleanly"),
            Ok(false) => {
                all_clean = false;
                println!("node {id} did not exit cleanly (killed or non-zero exit)");
            }
            Err(error) => {
                all_clean = false;
                println!("node {id}: {error}");
            }
        }
    }
    all_clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_args_default_to_three_nodes_eight_shards_port_7001_and_metrics_9101() {
        use clap::Parser;

        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            dev: DevArgs,
        }
        let defaults = Cli::parse_from(["martelo-dev"]).dev;
        assert_eq!(defaults.dir, None);
        assert_eq!(defaults.nodes, 3);
        assert_eq!(defaults.shard_count, 8);
        assert_eq!(defaults.base_port, 7001);
        assert_eq!(defaults.metrics_base_port, 9101);
        assert_eq!(defaults.binary, None);
        assert_eq!(defaults.gateway_listen.to_string(), "127.0.0.1:8080");
        assert!(!defaults.no_gateway);
        let given = Cli::parse_from(["martelo-dev", "--dir", "/tmp/d", "--nodes", "5"]).dev;
        assert_eq!(given.dir.as_deref(), Some(Path::new("/tmp/d")));
        assert_eq!(given.nodes, 5);
    }
}
