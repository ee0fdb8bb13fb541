//! The node's checks of client-API requests (`cluster/src/node/client_api/checks.rs`),
//! compiled here from the cluster's own source file: the module is pure (it does no IO and
//! names only the engine, proto, types and tonic crates), but its crate links RocksDB, which
//! the fuzz targets must not. So the targets call the node's real code, not a copy.
//!
//! If that file starts to use something of its crate beyond `super::LIST_SCANNED_AUCTIONS_MAX`
//! this stops compiling: then give it what it needs here, or move the checks into a crate
//! without RocksDB.

/// `cluster/src/node/client_api/mod.rs`'s value (the checks read it through `super::`).
const LIST_SCANNED_AUCTIONS_MAX: usize = 4096;

#[path = "../../cluster/src/node/client_api/checks.rs"]
#[allow(dead_code, unused_imports, clippy::all)]
mod checks;

pub use checks::{
    UserLookup, check_list, check_list_users, check_meta_actor, check_propose, check_read_user,
    grpc_timeout,
};

/// The node's parse of a request's `traceparent` field (empty: no trace).
pub fn trace_id(traceparent: &str) -> Result<Option<String>, martelo_proto::ApiError> {
    checks::trace_id(traceparent)
}
