//! # martelo-proto (not built yet)
//!
//! Will hold the protobuf definitions (Raft transport, client API, admin API) compiled with
//! tonic and prost. Tracked by the cluster issue; this crate deliberately contains no code
//! until then.
