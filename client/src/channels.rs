//! One lazily connected gRPC channel per node address, shared by every clone of a client.
//!
//! A tonic `Channel` multiplexes concurrent calls over one HTTP/2 connection and reconnects
//! by itself after the connection breaks, so one per node is enough. Channels are created
//! lazily: an address costs nothing until the first call, and a node that is down fails
//! that call with a connect error (which proves the request was not sent, see
//! [`crate::decide`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use martelo_proto::admin_api_client::AdminApiClient;
use martelo_proto::channel::{self, ChannelSettings};
use martelo_proto::client_api_client::ClientApiClient;
use martelo_proto::services;
use tonic::transport::Channel;

use crate::decide::CallError;

/// Most channels one pool keeps. A cluster has far fewer nodes; the bound stops a stream of
/// bogus hints from growing the map without end.
const CHANNELS_MAX: usize = 1024;

/// The channel pool. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Channels {
    connect_timeout: Duration,
    // A std mutex is enough: it is held only to look up or insert a map entry, never across
    // an await, so it cannot block the runtime for long.
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Channels {
    pub fn new(connect_timeout: Duration) -> Channels {
        Channels {
            connect_timeout,
            channels: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The channel to `address` (`host:port`, or a full `http://` URI).
    pub fn get(&self, address: &str) -> Result<Channel, CallError> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let settings = ChannelSettings::CLIENT.with_connect_timeout(self.connect_timeout);
        let endpoint = channel::endpoint(address, &settings)
            .map_err(|error| CallError::BadAddress(error.to_string()))?;
        let channel = endpoint.connect_lazy();
        if channels.len() >= CHANNELS_MAX {
            channels.clear();
        }
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// A client API client for `address`, with martelo's message size limits.
    pub fn client_api(&self, address: &str) -> Result<ClientApiClient<Channel>, CallError> {
        self.get(address).map(services::client_api_client)
    }

    /// An admin API client for `address`, with martelo's message size limits.
    pub fn admin_api(&self, address: &str) -> Result<AdminApiClient<Channel>, CallError> {
        self.get(address).map(services::admin_api_client)
    }
}

/// A request carrying `timeout` as its `grpc-timeout`, so the server stops working on it
/// when the caller stops waiting.
pub fn request_with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// Awaits one gRPC call for at most `timeout`, and flattens the result.
pub async fn bounded<M>(
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<M>, tonic::Status>>,
) -> Result<M, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(CallError::TimedOut(timeout)),
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(CallError::Status(status)),
    }
}
