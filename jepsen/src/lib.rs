//! # martelo-jepsen: the fault suite's history format and checkers
//!
//! Today this crate holds the half of the fault suite that needs no cluster: the history a
//! run records, the model it is judged against, and the checkers that judge it. The runner
//! (processes, nemeses, workload, report) comes with the cluster; see issue 5.
//!
//! ```text
//!   clients ──► history.jsonl ──► history::read_history ──► history::pair ──► [Operation]
//!   replicas (after healing) ──► final.json ──► replicas::FinalState            │
//!                                                       │                         │
//!                                                       └──► checker::check_all ◄─┘
//!                                                                  │
//!                                         Report { linearizable, lost, duplicate, close, digest }
//! ```
//!
//! Where code goes:
//! - the on-disk formats: [`history`] (`history.jsonl`, one event per line) and [`replicas`]
//!   (what is collected from each replica at the end);
//! - the sequential auction model used by the linearizability checker: [`model`]. Keep it
//!   simple and independent of `martelo-engine`; its rules are listed there;
//! - a new checker: a module under [`checker`], its anomalies in [`checker::Anomaly`], and a
//!   line in [`checker::check_all`];
//! - generated workloads for tests and benchmarks: [`generate`];
//! - the runner (cluster under test, nemeses, client workload, HTML report): new modules and
//!   a binary, when the cluster exists.
//!
//! How to run the tests and the 100,000-operation timing is in `jepsen/README.md`.

pub mod checker;
pub mod generate;
pub mod history;
pub mod model;
pub mod replicas;

// The runner: a real cluster under faults.
pub mod collect;
pub mod nemesis;
pub mod proxy;
pub mod report;
pub mod runner;
pub mod workload;
