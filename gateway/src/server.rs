//! Starting and stopping a gateway: [`serve`] (bind `config.listen`, install the Prometheus
//! recorder, serve until `shutdown`) and [`serve_on`] (an already bound listener, for tests
//! and embedding: returns the bound address and the serving future).
//!
//! Start-up order: validate the configuration, load the token key ring (refusing a key file
//! readable by others), connect the cluster client, start the fan-out hub and the meta
//! follower, build the router, serve with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::serve::ListenerExt;
use martelo_client::{Client, ClientOptions};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::auth::keys::KeyRing;
use crate::auth::password::Passwords;
use crate::config::GatewayConfig;
use crate::error::GatewayError;
use crate::fanout::Hub;
use crate::follow::MetaFollower;
use crate::http::limits::Limiters;
use crate::state::{AppState, Shared};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once (later calls return the same handle).
/// `serve` calls it; `serve_on` does not, so tests choose.
pub fn install_metrics_recorder() -> Result<PrometheusHandle, GatewayError> {
    if let Some(handle) = PROMETHEUS.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| GatewayError::Io {
            address: "metrics recorder".to_owned(),
            reason: error.to_string(),
        })?;
    Ok(PROMETHEUS.get_or_init(|| handle).clone())
}

/// The installed recorder's handle, if any.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS.get()
}

/// Builds the shared state: key ring, cluster client, fan-out hub, meta follower, limits.
pub async fn build_state(config: GatewayConfig) -> Result<AppState, GatewayError> {
    config.validate()?;
    let keys = KeyRing::load(config.tokens.key_file.as_deref())?;
    let client = Client::connect(&config.cluster, ClientOptions::default()).await?;
    let hub = Hub::new(client.clone(), &config.limits);
    let meta = MetaFollower::start(client.clone());
    // Lazy: the gateway starts while Postgres is down, and the history routes answer 503
    // until it is back.
    let history = match &config.postgres {
        Some(url) => Some(
            martelo_sink::query::connect_reader(url, config.limits.history_connections_max)
                .map_err(|error| crate::config::ConfigError::Setting {
                    setting: "postgres",
                    reason: format!("{url}: {error}"),
                })?,
        ),
        None => None,
    };
    Ok(AppState::new(Shared {
        history,
        passwords: Passwords::new(&config.limits),
        limiters: Limiters::new(&config.rate),
        keys,
        hub,
        meta,
        client,
        config,
    }))
}

/// Serves on `listener` until `shutdown` resolves. Returns the bound address and the
/// serving future (spawn or await it).
pub async fn serve_on(
    config: GatewayConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<
    (
        SocketAddr,
        impl Future<Output = Result<(), GatewayError>> + Send + 'static,
    ),
    GatewayError,
> {
    let address = listener.local_addr().map_err(|error| GatewayError::Io {
        address: "listener".to_owned(),
        reason: error.to_string(),
    })?;
    let state = build_state(config).await?;
    let app = crate::http::router(state);
    // Every response and WebSocket frame is one small write that should leave at once:
    // with Nagle's algorithm on, a write that follows another not yet acknowledged waits for
    // the client's delayed ACK (up to 40 ms on Linux), which is the fan-out's tail.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on an accepted connection");
        }
    });
    let serving = async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|error| GatewayError::Io {
            address: address.to_string(),
            reason: error.to_string(),
        })
    };
    Ok((address, serving))
}

/// Binds `config.listen`, installs the Prometheus recorder and serves until `shutdown`.
pub async fn serve(
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    install_metrics_recorder()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| GatewayError::Io {
            address: config.listen.to_string(),
            reason: error.to_string(),
        })?;
    let (address, serving) = serve_on(config, listener, shutdown).await?;
    tracing::info!(%address, "gateway listening");
    serving.await
}
