//! # martelo-jepsen: the fault suite
//!
//! Two halves. The library half needs no cluster: the history a run records, the model it is
//! judged against, and the checkers that judge it. The runner half (`martelo-jepsen run`)
//! starts real `martelo node` processes behind fault-injecting proxies, drives a client
//! workload under a nemesis schedule, collects every replica's log and digest, checks, and
//! writes a run directory with a report. See issue 5 and docs/TESTING.md.
//!
//! ```text
//!   runner::run ─► LocalCluster (martelo node × N, --test-dial-override via proxy::LinkProxies)
//!        ├─► workload (C clients, K auctions) ──► history.jsonl (workload::Recorder)
//!        ├─► nemesis (kill, pause, partition, clock, membership, transfer, postgres; healed)
//!        └─► heal all ─► final reads ─► collect (Subscribe + Status digests) ─► final.json
//!                                   └─► with --sink: catch-up wait + I6 compare ─► sink.json
//!                                                     │
//!                        checker::check_all ◄─────────┘ ─► report (summary, report.html)
//! ```
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
//! - the runner: [`runner`] (orchestration, run directory), [`workload`] (clients and how
//!   answers become records), [`nemesis`] (faults and their heals), [`proxy`] (per-link TCP
//!   proxies for partitions), [`netns`] (root only: a private network namespace and
//!   iptables rules instead of the proxies, `--net iptables`), [`api`] (how a client reaches
//!   the cluster: gRPC, or HTTP through [`gateway`] processes with `--via gateway`, which
//!   [`gateway_faults`] starts and kills),
//!   [`collect`] (final state from the replicas), [`sink`] (`--sink`: the run's Postgres,
//!   the sink's catch-up and the I6 comparison behind [`checker::sink`]), [`report`]
//!   (summary and HTML/SVG). A new fault is a [`nemesis::NemesisKind`] with an inject and a
//!   heal; a new operation type needs the history format, the model and the workload.
//!
//! How to run the tests and the 100,000-operation timing is in `jepsen/README.md`.

pub mod checker;
pub mod generate;
pub mod history;
pub mod model;
pub mod replicas;

// The runner: a real cluster under faults.
pub mod api;
pub mod collect;
pub mod gateway;
pub mod gateway_faults;
pub mod nemesis;
pub mod netns;
pub mod proxy;
pub mod report;
pub mod runner;
pub mod sink;
pub mod workload;
