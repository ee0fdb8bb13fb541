//! Client side: the node's pool of gRPC channels to its peers, one lazily connected channel
//! per dialled address, shared by every group (so one HTTP/2 connection per peer pair), and
//! the dial overrides the fault suite uses to put proxies on the links.
//!
//! The channel settings (connect timeout, keepalive, windows) are
//! `martelo_proto::channel::ChannelSettings::PEER`, built by `martelo_proto::channel::endpoint`,
//! the one way to dial a node. What is sent over the channels is `client.rs` and the files it
//! names.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use martelo_proto::channel::{ChannelSettings, InvalidAddress, endpoint};
use tonic::transport::Channel;

/// Most peer addresses with a cached channel. A cluster has a handful of nodes; the limit
/// only matters if addresses keep changing, and then extra channels are made per client
/// instead of cached.
const PEER_CHANNELS_MAX: usize = 1024;

/// The node's connections to its peers: one lazily connected gRPC channel per peer address,
/// shared by every group (so one HTTP/2 connection per peer pair), and the dial overrides.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct PeerChannels {
    inner: Arc<PeerChannelsInner>,
}

struct PeerChannelsInner {
    self_id: u64,
    /// Node id -> the address to dial instead of the membership address. The fault suite puts
    /// a fault-injecting proxy on each link this way.
    dial_overrides: BTreeMap<u64, String>,
    /// Dialled address -> its channel. A std mutex: it is held for a map lookup, never across
    /// an await.
    channels: Mutex<HashMap<String, Channel>>,
    /// The local address outgoing peer connections bind to (`--source-address`); `None`: the
    /// kernel picks.
    source_address: Option<std::net::IpAddr>,
}

impl fmt::Debug for PeerChannels {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let channel_count = self
            .inner
            .channels
            .lock()
            .map_or(0, |channels| channels.len());
        formatter
            .debug_struct("PeerChannels")
            .field("self_id", &self.inner.self_id)
            .field("dial_overrides", &self.inner.dial_overrides)
            .field("channel_count", &channel_count)
            .field("source_address", &self.inner.source_address)
            .finish()
    }
}

impl PeerChannels {
    pub fn new(self_id: u64, dial_overrides: BTreeMap<u64, String>) -> PeerChannels {
        PeerChannels::with_source_address(self_id, dial_overrides, None)
    }

    /// Like [`PeerChannels::new`], binding every outgoing connection to `source_address`.
    pub fn with_source_address(
        self_id: u64,
        dial_overrides: BTreeMap<u64, String>,
        source_address: Option<std::net::IpAddr>,
    ) -> PeerChannels {
        PeerChannels {
            inner: Arc::new(PeerChannelsInner {
                self_id,
                dial_overrides,
                channels: Mutex::new(HashMap::new()),
                source_address,
            }),
        }
    }

    /// This node's id, sent as `from_node_id`.
    pub fn self_id(&self) -> u64 {
        self.inner.self_id
    }

    /// The address this node dials to reach `node_id`: its dial override if it has one, else
    /// the address from the group's membership.
    pub fn dial_address<'a>(&'a self, node_id: u64, membership_address: &'a str) -> &'a str {
        self.inner
            .dial_overrides
            .get(&node_id)
            .map_or(membership_address, String::as_str)
    }

    /// The channel to `node_id`, created on first use. It connects when the first RPC needs
    /// it and reconnects after a failure by itself. The address must be `host:port`.
    ///
    /// Must be called inside a tokio runtime: the channel's worker task starts here.
    pub fn channel(
        &self,
        node_id: u64,
        membership_address: &str,
    ) -> Result<Channel, InvalidAddress> {
        let address = self.dial_address(node_id, membership_address);
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        // `endpoint` also takes full URIs; membership addresses and dial overrides
        // are `host:port`, so a URI there is a mistake, refused as before.
        if address.contains("://") {
            return Err(InvalidAddress {
                address: address.to_owned(),
                reason: "expected host:port".into(),
            });
        }
        let channel = endpoint(address, &ChannelSettings::PEER)?
            .local_address(self.inner.source_address)
            .connect_lazy();
        if channels.len() < PEER_CHANNELS_MAX {
            channels.insert(address.to_owned(), channel.clone());
        } else {
            tracing::warn!(
                peer = node_id,
                address,
                "too many peer addresses; this channel is not shared"
            );
        }
        Ok(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_override_replaces_the_membership_address_of_that_node_only() {
        let peers = PeerChannels::new(1, BTreeMap::from([(2, "127.0.0.1:9002".to_owned())]));
        assert_eq!(peers.dial_address(2, "127.0.0.1:7002"), "127.0.0.1:9002");
        assert_eq!(peers.dial_address(3, "127.0.0.1:7003"), "127.0.0.1:7003");
        assert_eq!(peers.self_id(), 1);
    }

    #[tokio::test]
    async fn one_channel_is_shared_per_dialled_address() {
        let peers = PeerChannels::new(1, BTreeMap::from([(3, "127.0.0.1:9002".to_owned())]));
        peers.channel(2, "127.0.0.1:9002").expect("valid");
        peers.channel(2, "127.0.0.1:9002").expect("valid");
        // Node 3 is dialled through an override that names the same address.
        peers.channel(3, "127.0.0.1:7003").expect("valid");
        peers.channel(4, "127.0.0.1:7004").expect("valid");
        let count = peers.inner.channels.lock().map(|c| c.len()).unwrap_or(0);
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn malformed_peer_addresses_are_errors_not_panics() {
        let peers = PeerChannels::new(1, BTreeMap::new());
        for address in [
            "",
            "no-port",
            "http://127.0.0.1:1/x",
            "http://127.0.0.1:1",
            "a b:1",
            "127.0.0.1:1/path",
        ] {
            assert!(peers.channel(2, address).is_err(), "{address:?} accepted");
        }
        for address in ["127.0.0.1:7001", "[::1]:7001", "node-1.example:7001"] {
            assert!(peers.channel(2, address).is_ok(), "{address:?} refused");
        }
        let count = peers.inner.channels.lock().map(|c| c.len()).unwrap_or(0);
        assert_eq!(count, 3, "refused addresses leave no channel behind");
    }
}
