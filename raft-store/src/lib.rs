//! # martelo-raft-store (not built yet)
//!
//! Will hold openraft's log store and state machine on one RocksDB instance per node, shared
//! by every Raft group of that node, applying entries through `martelo-engine`.
//! Tracked by the raft-store issue; this crate deliberately contains no code until then.
