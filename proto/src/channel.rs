//! The one way to build a gRPC channel to a martelo node.
//!
//! The node's peer pool, the client library, the dev kit, the fault suite and the tests all
//! dial nodes through [`endpoint`], so that connect timeouts, `TCP_NODELAY`, HTTP/2 keepalive
//! and flow-control windows are set in one place. Callers pick a [`ChannelSettings`] preset
//! (or adjust one) and add what only they need (a local source address, for example).

use std::time::Duration;

use tonic::transport::Endpoint;

/// How a channel connects and keeps its connection alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSettings {
    /// Longest wait for the TCP connection; a refused or unreachable node fails fast.
    pub connect_timeout: Duration,
    /// HTTP/2 PING interval, also on idle connections when `keepalive_while_idle`.
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is dropped.
    pub keepalive_timeout: Duration,
    pub keepalive_while_idle: bool,
    /// Initial HTTP/2 flow-control windows; `None` keeps hyper's defaults.
    pub stream_window_bytes: Option<u32>,
    pub connection_window_bytes: Option<u32>,
    /// A deadline for every call on the channel; `None` leaves deadlines to the caller.
    pub request_timeout: Option<Duration>,
}

impl ChannelSettings {
    /// Programs that call a cluster (client library, CLI, gateway, bench, fault suite): a
    /// dead node is noticed within about 15 s of silence, without probing idle channels.
    pub const CLIENT: ChannelSettings = ChannelSettings {
        connect_timeout: Duration::from_secs(1),
        keepalive_interval: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(5),
        keepalive_while_idle: false,
        stream_window_bytes: None,
        connection_window_bytes: None,
        request_timeout: None,
    };

    /// Raft peers: a peer that stops answering is noticed within about 4 s even when the
    /// group is idle, and windows are large enough for append batches and snapshot chunks.
    pub const PEER: ChannelSettings = ChannelSettings {
        connect_timeout: Duration::from_secs(1),
        keepalive_interval: Duration::from_secs(1),
        keepalive_timeout: Duration::from_secs(3),
        keepalive_while_idle: true,
        stream_window_bytes: Some(4 << 20),
        connection_window_bytes: Some(16 << 20),
        request_timeout: None,
    };

    /// The same settings with `connect_timeout` replaced.
    pub const fn with_connect_timeout(self, connect_timeout: Duration) -> ChannelSettings {
        ChannelSettings {
            connect_timeout,
            ..self
        }
    }

    /// The same settings with a deadline on every call.
    pub const fn with_request_timeout(self, timeout: Duration) -> ChannelSettings {
        ChannelSettings {
            request_timeout: Some(timeout),
            ..self
        }
    }
}

/// An address that cannot be dialled, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad node address {address:?}: {reason}")]
pub struct InvalidAddress {
    pub address: String,
    pub reason: String,
}

/// The endpoint for a node at `address`: `host:port`, or a full `http://` URI. Nothing is
/// dialled until the first call (`connect_lazy`) or `connect`.
pub fn endpoint(address: &str, settings: &ChannelSettings) -> Result<Endpoint, InvalidAddress> {
    let invalid = |reason: String| InvalidAddress {
        address: address.to_owned(),
        reason,
    };
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        if address.is_empty()
            || address.contains('/')
            || address.chars().any(char::is_whitespace)
            || !address.contains(':')
        {
            return Err(invalid("expected host:port".into()));
        }
        format!("http://{address}")
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|error| invalid(error.to_string()))?
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout)
        .keep_alive_while_idle(settings.keepalive_while_idle)
        .initial_stream_window_size(settings.stream_window_bytes)
        .initial_connection_window_size(settings.connection_window_bytes);
    if let Some(timeout) = settings.request_timeout {
        endpoint = endpoint.timeout(timeout);
    }
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_port_or_uris() {
        let settings = ChannelSettings::CLIENT;
        let plain = endpoint("127.0.0.1:7001", &settings).expect("host:port");
        assert_eq!(plain.uri().to_string(), "http://127.0.0.1:7001/");
        assert!(endpoint("http://127.0.0.1:7001", &settings).is_ok());
        for bad in ["", "nowhere", "a b:1", "a/b:1"] {
            assert!(endpoint(bad, &settings).is_err(), "{bad:?} was accepted");
        }
    }
}
