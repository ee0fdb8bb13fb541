//! A fresh Postgres database per test: [`TestDb`] from the crate's `testing` feature (the
//! one home of test databases, shared with the node's and the fault suite's tests).

pub use martelo_sink::testing::TestDb;
