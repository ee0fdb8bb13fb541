//! # martelo-tests: tests of the whole product, across crates and processes (none yet)
//!
//! This crate is the home of the tests that check martelo as its users meet it: several real
//! `martelo node` processes, with the gateway in front of them and the Postgres sink behind
//! them, each part joining as it lands. It holds no tests today: the gateway and the sink are
//! not built yet, and every test that needs only nodes already lives with the node.
//!
//! What goes here, once those parts exist:
//! - a request's whole path: a bid sent through the gateway is applied by its group, reaches
//!   the subscribers of the gateway's event stream, and lands in Postgres through the sink;
//! - promises that only the whole product can show: the sink converging to the Raft state
//!   with no missing or duplicate rows (I6), a leader crash as a gateway client sees it,
//!   trace context flowing from the gateway through the node to the sink.
//!
//! What does not go here:
//! - tests of the node alone (one or more `martelo node` processes, the CLI): `cluster/tests/`,
//!   where cargo hands them the `martelo` binary;
//! - fault injection and the history checkers: `jepsen/`;
//! - a crate's own rules: that crate's unit tests and `tests/` folder (engine, client, ...).
//!
//! How the tests will be shaped: each test file in `tests/tests/`, the shared helpers in
//! this library; clusters started as real processes through `martelo-devkit`'s
//! `LocalCluster`, behind a `spawn_cluster()` helper; helpers named `must_*` that fail with
//! context; a fresh temporary data dir and a fresh Postgres database for every test. Cargo
//! gives `CARGO_BIN_EXE_martelo` only to the crate that builds the binary, so these tests will
//! take it from `MARTELO_BIN` or build it, as the fault suite does
//! (`jepsen/tests/fault_suite.rs`).
