//! Constructors for the generated gRPC servers and clients with martelo's size limits.
//!
//! tonic's defaults (4 MiB to decode, unlimited to encode) fit no service exactly: client
//! requests are tiny and should be refused early when they are not, while Raft messages and
//! snapshot chunks are larger. Building every server and client here keeps the limits in one
//! place; `cluster/` adds interceptors, timeouts and TLS on top.

use tonic::transport::Channel;

use crate::limits::{
    ADMIN_MESSAGE_BYTES_MAX, CLIENT_REQUEST_BYTES_MAX, CLIENT_RESPONSE_BYTES_MAX,
    RAFT_MESSAGE_BYTES_MAX,
};
use crate::v1::admin_api_client::AdminApiClient;
use crate::v1::admin_api_server::{AdminApi, AdminApiServer};
use crate::v1::client_api_client::ClientApiClient;
use crate::v1::client_api_server::{ClientApi, ClientApiServer};
use crate::v1::raft_transport_client::RaftTransportClient;
use crate::v1::raft_transport_server::{RaftTransport, RaftTransportServer};

/// The client API server: accepts requests up to [`CLIENT_REQUEST_BYTES_MAX`], sends
/// responses up to [`CLIENT_RESPONSE_BYTES_MAX`].
pub fn client_api_server<S: ClientApi>(service: S) -> ClientApiServer<S> {
    ClientApiServer::new(service)
        .max_decoding_message_size(CLIENT_REQUEST_BYTES_MAX)
        .max_encoding_message_size(CLIENT_RESPONSE_BYTES_MAX)
}

/// A client API client over `channel`, with the mirror image of the server's limits.
pub fn client_api_client(channel: Channel) -> ClientApiClient<Channel> {
    ClientApiClient::new(channel)
        .max_decoding_message_size(CLIENT_RESPONSE_BYTES_MAX)
        .max_encoding_message_size(CLIENT_REQUEST_BYTES_MAX)
}

/// The Raft transport server: [`RAFT_MESSAGE_BYTES_MAX`] in both directions.
pub fn raft_transport_server<S: RaftTransport>(service: S) -> RaftTransportServer<S> {
    RaftTransportServer::new(service)
        .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX)
}

/// A Raft transport client over `channel` (one per peer, shared by every group).
pub fn raft_transport_client(channel: Channel) -> RaftTransportClient<Channel> {
    RaftTransportClient::new(channel)
        .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX)
}

/// The admin API server: [`ADMIN_MESSAGE_BYTES_MAX`] in both directions.
pub fn admin_api_server<S: AdminApi>(service: S) -> AdminApiServer<S> {
    AdminApiServer::new(service)
        .max_decoding_message_size(ADMIN_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(ADMIN_MESSAGE_BYTES_MAX)
}

/// An admin API client over `channel`.
pub fn admin_api_client(channel: Channel) -> AdminApiClient<Channel> {
    AdminApiClient::new(channel)
        .max_decoding_message_size(ADMIN_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(ADMIN_MESSAGE_BYTES_MAX)
}
