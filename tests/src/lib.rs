//! # martelo-tests (not built yet)
//!
//! Will hold cross-crate tests against real multi-process clusters (`spawn_cluster()` and
//! `must_*` helpers). This crate deliberately contains no code until the cluster exists.
