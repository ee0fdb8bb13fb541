//! One bid is one trace, across processes, in a real trace backend.
//!
//! A real 3-node cluster (its sink writing a database of the test's own on the local
//! Postgres) and a real `martelo gateway` process all export spans over OTLP to a real Arize
//! Phoenix (PyPI `arize-phoenix`), which answers span queries over HTTP. A WebSocket watcher
//! subscribes to an auction, then a bid goes in over HTTP with a `traceparent` header whose
//! trace id the test chose. The test then asks Phoenix for that trace and checks that it
//! holds a span from every hop, each the child of the one before:
//!
//! ```text
//! caller (the test's traceparent)
//! └─ http                 gateway: the HTTP request
//!    └─ client.propose    gateway: the client library's proposal
//!       └─ client.attempt gateway: one attempt (retries would be siblings)
//!          └─ node.propose  leader: the client API's handler
//!             ├─ raft.batch   leader: the batch the proposal went in
//!             ├─ raft.apply   every replica: three, one per node process
//!             ├─ ws.fanout    gateway: the event's fan-out to WebSocket watchers
//!             └─ sink.write   the sink's Postgres write (on the leader)
//! ```
//!
//! (That log lines inside such spans carry `trace_id` and `span_id` is the node's unit test,
//! `node::telemetry`.)
//!
//! Needs, besides the `martelo` binary and the local Postgres: Phoenix, at
//! `/var/cache/martelo/phoenix-venv/bin/phoenix` (`.ci/run` installs it:
//! `python3 -m venv /var/cache/martelo/phoenix-venv && /var/cache/martelo/phoenix-venv/bin/pip
//! install -r tests/tracing/requirements.txt`), or where `MARTELO_PHOENIX` says. A missing
//! one fails the test with that command, never a silent skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use martelo_sink::testing::TestDb;
use martelo_tests::{GatewayProcess, must_write_key_file, spawn_cluster_with};
use serde_json::Value;

/// Phoenix starts in a few seconds on an idle machine and in up to a minute on a busy one.
const PHOENIX_START_DEADLINE: Duration = Duration::from_secs(120);
/// How long the spans may take to reach Phoenix (the exporters batch every 5 s).
const SPANS_DEADLINE: Duration = Duration::from_secs(60);
/// The trace the test's "caller" starts: sampled (`-01`), so every process records it.
const TRACE_ID: &str = "7a3f0c1d2e4b5a6978877665544332ab";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

fn phoenix_bin() -> PathBuf {
    std::env::var_os("MARTELO_PHOENIX").map_or_else(
        || "/var/cache/martelo/phoenix-venv/bin/phoenix".into(),
        PathBuf::from,
    )
}

/// A `phoenix serve` child on free loopback ports, killed when dropped.
#[derive(Debug)]
struct Phoenix {
    _child: tokio::process::Child,
    base: String,
    otlp: String,
    log: PathBuf,
}

impl Phoenix {
    async fn must_start(dir: &Path) -> Phoenix {
        let binary = phoenix_bin();
        assert!(
            binary.exists(),
            "no Phoenix at {}: python3 -m venv /var/cache/martelo/phoenix-venv && \
             /var/cache/martelo/phoenix-venv/bin/pip install -r tests/tracing/requirements.txt \
             (or set MARTELO_PHOENIX)",
            binary.display()
        );
        let ports = martelo_devkit::pick_free_ports(2).expect("free ports");
        let log = dir.join("phoenix.log");
        let output = std::fs::File::create(&log).expect("log file");
        let work = dir.join("phoenix");
        std::fs::create_dir_all(&work).expect("phoenix dir");
        let child = tokio::process::Command::new(&binary)
            .arg("serve")
            .env("PHOENIX_WORKING_DIR", &work)
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", ports[0].to_string())
            .env("PHOENIX_GRPC_PORT", ports[1].to_string())
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .expect("phoenix starts");
        let phoenix = Phoenix {
            _child: child,
            base: format!("http://127.0.0.1:{}", ports[0]),
            otlp: format!("http://127.0.0.1:{}", ports[1]),
            log,
        };
        let started = Instant::now();
        let http = reqwest::Client::new();
        loop {
            let ready = http
                .get(format!("{}/healthz", phoenix.base))
                .send()
                .await
                .is_ok_and(|answer| answer.status().is_success());
            if ready {
                return phoenix;
            }
            assert!(
                started.elapsed() < PHOENIX_START_DEADLINE,
                "phoenix not ready within {PHOENIX_START_DEADLINE:?}:\n{}",
                std::fs::read_to_string(&phoenix.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every span Phoenix holds of `trace_id` (its REST API, newest first, paged).
    async fn spans_of(&self, trace_id: &str) -> Vec<Value> {
        let http = reqwest::Client::new();
        let mut spans = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = http
                .get(format!("{}/v1/projects/default/spans", self.base))
                .query(&[("limit", "1000")]);
            if let Some(cursor) = &cursor {
                request = request.query(&[("cursor", cursor.as_str())]);
            }
            let Ok(answer) = request.send().await else {
                return spans;
            };
            let page: Value = answer.json().await.unwrap_or(Value::Null);
            spans.extend(
                page["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|span| span["context"]["trace_id"] == trace_id)
                    .cloned(),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return spans,
            }
        }
    }
}

/// The spans of one trace by name, and lookups on them.
struct Trace {
    spans: Vec<Value>,
}

impl Trace {
    fn named(&self, name: &str) -> Vec<&Value> {
        self.spans
            .iter()
            .filter(|span| span["name"] == name)
            .collect()
    }

    fn one(&self, name: &str) -> &Value {
        let found = self.named(name);
        assert_eq!(found.len(), 1, "one {name} span: {}", self.summary());
        found[0]
    }

    fn summary(&self) -> String {
        let lines: Vec<String> = self
            .spans
            .iter()
            .map(|span| {
                format!(
                    "{} {} parent {}",
                    span["name"], span["context"]["span_id"], span["parent_id"]
                )
            })
            .collect();
        lines.join("\n")
    }

    /// Whether `want` holds: the names still missing otherwise.
    fn missing(&self, want: &BTreeMap<&str, usize>) -> Vec<String> {
        want.iter()
            .filter(|(name, count)| self.named(name).len() < **count)
            .map(|(name, count)| format!("{name} (want {count}, have {})", self.named(name).len()))
            .collect()
    }
}

fn span_id(span: &Value) -> &str {
    span["context"]["span_id"].as_str().expect("a span id")
}

fn assert_child(trace: &Trace, child: &Value, parent: &Value) {
    assert_eq!(
        child["parent_id"].as_str(),
        Some(span_id(parent)),
        "{} should be a child of {}:\n{}",
        child["name"],
        parent["name"],
        trace.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bid_is_one_trace_from_the_gateway_through_every_replica_to_the_sink() {
    let dir = tempfile::Builder::new()
        .prefix("martelo-tracing-")
        .tempdir()
        .expect("temp dir");
    println!("data and logs: {}", dir.path().display());
    let phoenix = Phoenix::must_start(dir.path()).await;
    let db = TestDb::create().await;
    let node_args = vec![
        "--postgres".to_owned(),
        db.url().to_owned(),
        "--otlp-endpoint".to_owned(),
        phoenix.otlp.clone(),
    ];
    // One auction group: the bid's group is known, and its three replicas are the nodes.
    let cluster = spawn_cluster_with(dir.path(), 3, 1, &node_args).await;
    let keys = must_write_key_file(dir.path()).await;
    let gateway_args = vec!["--otlp-endpoint".to_owned(), phoenix.otlp.clone()];
    let gateway = GatewayProcess::start(
        dir.path(),
        "one",
        &cluster.api_addresses(),
        &keys,
        &gateway_args,
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"));

    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    martelo_tests::must_bid_while_watching(&gateway, Some(&caller)).await;

    let want: BTreeMap<&str, usize> = [
        ("http", 1),
        ("client.propose", 1),
        ("client.attempt", 1),
        ("node.propose", 1),
        ("raft.batch", 1),
        ("raft.apply", 3),
        ("ws.fanout", 1),
        ("sink.write", 1),
    ]
    .into_iter()
    .collect();
    let started = Instant::now();
    let trace = loop {
        let trace = Trace {
            spans: phoenix.spans_of(TRACE_ID).await,
        };
        let missing = trace.missing(&want);
        if missing.is_empty() {
            break trace;
        }
        assert!(
            started.elapsed() < SPANS_DEADLINE,
            "spans missing from trace {TRACE_ID} after {SPANS_DEADLINE:?}: {missing:?}\n{}",
            trace.summary()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("trace {TRACE_ID}:\n{}", trace.summary());

    let http = trace.one("http");
    assert_eq!(
        http["parent_id"], CALLER_SPAN_ID,
        "the caller's span is the root's parent"
    );
    let propose = trace.one("client.propose");
    assert_child(&trace, propose, http);
    let attempt = trace.one("client.attempt");
    assert_child(&trace, attempt, propose);
    let node = trace.one("node.propose");
    assert_child(&trace, node, attempt);
    assert_child(&trace, trace.one("raft.batch"), node);
    let applies = trace.named("raft.apply");
    for apply in &applies {
        assert_child(&trace, apply, node);
    }
    assert_child(&trace, trace.one("ws.fanout"), node);
    assert_child(&trace, trace.one("sink.write"), node);
}
