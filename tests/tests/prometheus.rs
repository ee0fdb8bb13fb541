//! The shipped Prometheus configuration and alerting rules (`cluster/deploy/prometheus/`)
//! against the real thing: a real 3-node cluster (metrics on, its sink writing a database of
//! the test's own on the local Postgres) and a real `martelo gateway` process, scraped by the
//! real Prometheus (Debian's package) with the shipped configuration, in which only the
//! targets and the intervals are changed to the test's.
//!
//! After some traffic (an account, an auction, a WebSocket watcher, a bid) it asks
//! Prometheus' HTTP API that:
//! - every node and the gateway are scraped (`up` is 1), each with `martelo_` series under its
//!   own `instance`;
//! - every shipped rule loaded and evaluates with no error (health `ok`), and none fires on
//!   this healthy cluster;
//! - every `martelo_` series the rules and the Grafana dashboard (`cluster/deploy/grafana/`)
//!   name is one that some process exports (a typo in a rule, which promtool cannot see,
//!   fails here), except the few that appear only with their first failure, listed in
//!   [`FIRST_FAILURE_ONLY`] with the source file that records them;
//! - every query of the dashboard is PromQL that Prometheus accepts.
//!
//! Needs, besides the `martelo` binary and the local Postgres: Prometheus at
//! `/usr/bin/prometheus` (`apt-get install -y prometheus`; or set `MARTELO_PROMETHEUS`). A
//! missing one fails the test with that command, never a silent skip. The test's
//! Prometheus listens on a free loopback port, so the Debian service on 9090 does not
//! matter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use martelo_sink::testing::TestDb;
use martelo_tests::{GatewayProcess, must_write_key_file, spawn_cluster_with_metrics};
use serde_json::Value;

/// How long Prometheus may take to be ready, to scrape every target, to evaluate every rule
/// and to see the series the traffic creates (each of these waits separately).
const PROMETHEUS_DEADLINE: Duration = Duration::from_secs(30);

/// Series the rules or the dashboard name that a process registers only when the thing they
/// count first happens (no failure, no series), with the file that records each. The test
/// checks the name is still spelled there, so a rename cannot hide behind this list.
const FIRST_FAILURE_ONLY: &[(&str, &str)] = &[
    ("martelo_sink_errors_total", "sink/src/metric_names.rs"),
    (
        "martelo_gateway_fanout_conflated_total",
        "gateway/src/telemetry.rs",
    ),
    (
        "martelo_gateway_rate_limited_total",
        "gateway/src/telemetry.rs",
    ),
    ("martelo_client_retries_total", "client/src/telemetry.rs"),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds tests/")
        .to_path_buf()
}

fn deploy() -> PathBuf {
    workspace().join("cluster/deploy")
}

fn prometheus_bin() -> PathBuf {
    std::env::var_os("MARTELO_PROMETHEUS")
        .map_or_else(|| "/usr/bin/prometheus".into(), PathBuf::from)
}

/// Fails with the install command when Prometheus is missing.
fn must_have_prometheus() {
    assert!(
        prometheus_bin().exists(),
        "no Prometheus at {}: apt-get install -y prometheus (then `service prometheus stop` if \
         you do not want its service on :9090), or set MARTELO_PROMETHEUS",
        prometheus_bin().display()
    );
}

/// `text` with `from` replaced by `to`, which must occur exactly once: the shipped file
/// changed shape if not, and this test must follow it.
fn must_replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the shipped prometheus.yml should hold {from:?} once"
    );
    text.replacen(from, to, 1)
}

/// The shipped configuration with this test's targets, 1-second intervals, and its rules file
/// copied beside it (the configuration names it relative to its own directory).
fn must_write_config(dir: &Path, nodes: &[String], gateway: &str) -> PathBuf {
    let shipped = std::fs::read_to_string(deploy().join("prometheus/prometheus.yml"))
        .expect("cluster/deploy/prometheus/prometheus.yml");
    let mut config = must_replace_once(&shipped, "scrape_interval: 15s", "scrape_interval: 1s");
    config = must_replace_once(
        &config,
        "evaluation_interval: 15s",
        "evaluation_interval: 1s",
    );
    let node_targets: Vec<String> = nodes
        .iter()
        .map(|address| format!("          - {address}"))
        .collect();
    config = must_replace_once(
        &config,
        "          - 127.0.0.1:9101\n          - 127.0.0.1:9102\n          - 127.0.0.1:9103\n",
        &format!("{}\n", node_targets.join("\n")),
    );
    config = must_replace_once(
        &config,
        "          - 127.0.0.1:8080\n",
        &format!("          - {gateway}\n"),
    );
    std::fs::copy(
        deploy().join("prometheus/alerts.yml"),
        dir.join("alerts.yml"),
    )
    .expect("alerts.yml copied");
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).expect("prometheus.yml written");
    path
}

/// A `prometheus` child on a free loopback port, killed when dropped.
#[derive(Debug)]
struct Prometheus {
    child: tokio::process::Child,
    base: String,
    log: PathBuf,
}

impl Prometheus {
    async fn must_start(dir: &Path, config: &Path) -> Prometheus {
        let port = martelo_devkit::pick_free_ports(1).expect("a free port")[0];
        let log = dir.join("prometheus.log");
        let output = std::fs::File::create(&log).expect("log file");
        let child = tokio::process::Command::new(prometheus_bin())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let mut prometheus = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = http
                .get(format!("{}/-/ready", prometheus.base))
                .send()
                .await
                .is_ok_and(|answer| answer.status().is_success());
            if ready {
                return prometheus;
            }
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", prometheus.log_text());
            }
            assert!(
                started.elapsed() < PROMETHEUS_DEADLINE,
                "prometheus not ready within {PROMETHEUS_DEADLINE:?}:\n{}",
                prometheus.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `data` of an API answer; panics on an HTTP or API error, with the log.
    async fn must_get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let answer: Value = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"))
            .json()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: not JSON: {error}"));
        assert_eq!(
            answer["status"],
            "success",
            "GET {path} {query:?}: {answer}\nprometheus log:\n{}",
            self.log_text()
        );
        answer["data"].clone()
    }

    /// The result vector of an instant query.
    async fn must_query(&self, query: &str) -> Vec<Value> {
        let data = self.must_get("/api/v1/query", &[("query", query)]).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Every metric name Prometheus holds.
    async fn names(&self) -> BTreeSet<String> {
        let data = self.must_get("/api/v1/label/__name__/values", &[]).await;
        data.as_array()
            .expect("a list of names")
            .iter()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect()
    }
}

/// Each rule group's name and the time of its last evaluation, as Prometheus prints it.
async fn rule_group_evaluations(prometheus: &Prometheus) -> BTreeMap<String, String> {
    let data = prometheus.must_get("/api/v1/rules", &[]).await;
    data["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|group| {
            let text = |key: &str| group[key].as_str().unwrap_or_default().to_owned();
            (text("name"), text("lastEvaluation"))
        })
        .collect()
}

/// Polls `check` every 250 ms until it returns `Ok`, failing with its last `Err` after
/// [`PROMETHEUS_DEADLINE`].
async fn must_eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if started.elapsed() > PROMETHEUS_DEADLINE => {
                panic!("{what}: not within {PROMETHEUS_DEADLINE:?}: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Every distinct `martelo_…` word in `text`: the series names a rule or query uses.
fn martelo_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("martelo_") {
        let word: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // Skip the tail of a longer word (`x_martelo_y` is not a name of ours).
        let preceded = rest[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !preceded && word.len() > "martelo_".len() {
            names.insert(word.clone());
        }
        rest = &rest[start + word.len().max(1)..];
    }
    names
}

/// Every PromQL query of the dashboard (panel targets), with Grafana's variables replaced by
/// values Prometheus accepts.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn collect(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    out.push(expr.clone());
                }
                map.values().for_each(|value| collect(value, out));
            }
            Value::Array(items) => items.iter().for_each(|value| collect(value, out)),
            _ => {}
        }
    }
    let mut queries = Vec::new();
    collect(dashboard, &mut queries);
    queries
        .into_iter()
        .map(|query| {
            let mut query = query
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "15s")
                .replace("$__range", "5m");
            // The dashboard's own variables (`$group`, `$route`, ...) only appear inside
            // `=~"..."` matchers: match everything.
            for variable in ["group", "route", "instance", "gateway"] {
                query = query
                    .replace(&format!("${{{variable}}}"), ".*")
                    .replace(&format!("${variable}"), ".*");
            }
            assert!(
                !query.contains('$'),
                "a dashboard query uses a variable this test does not know: {query}"
            );
            query
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_process_with_the_shipped_config_and_rules() {
    must_have_prometheus();
    let dir = tempfile::Builder::new()
        .prefix("martelo-prometheus-")
        .tempdir()
        .expect("temp dir");
    println!("data and logs: {}", dir.path().display());
    let db = TestDb::create().await;
    let postgres = vec!["--postgres".to_owned(), db.url().to_owned()];
    let cluster = spawn_cluster_with_metrics(dir.path(), 3, 2, &postgres).await;
    let nodes: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|node| node.metrics_address.clone().expect("metrics are on"))
        .collect();
    let keys = must_write_key_file(dir.path()).await;
    let gateway = GatewayProcess::start(dir.path(), "one", &cluster.api_addresses(), &keys, &[])
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    // The series of the write path, the fan-out and the sink exist once a bid went through
    // and a watcher received it.
    martelo_tests::must_bid_while_watching(&gateway, None).await;

    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir(&prometheus_dir).expect("prometheus dir");
    let config = must_write_config(&prometheus_dir, &nodes, &gateway.address);
    let prometheus = Prometheus::must_start(&prometheus_dir, &config).await;

    // Every node and the gateway are up, in their jobs, each with martelo_ series.
    let mut expected: BTreeSet<(String, String)> = nodes
        .iter()
        .map(|node| ("martelo-node".to_owned(), node.clone()))
        .collect();
    expected.insert(("martelo-gateway".to_owned(), gateway.address.clone()));
    let prometheus = &prometheus;
    let expected_up = &expected;
    must_eventually("every martelo target scraped and up", || async move {
        let up: BTreeSet<(String, String)> = prometheus
            .must_query(r#"up{job=~"martelo-.*"} == 1"#)
            .await
            .iter()
            .map(|sample| {
                let labels = &sample["metric"];
                let label = |name: &str| labels[name].as_str().unwrap_or_default().to_owned();
                (label("job"), label("instance"))
            })
            .collect();
        if &up == expected_up {
            Ok(())
        } else {
            Err(format!("up: {up:?}, expected {expected_up:?}"))
        }
    })
    .await;
    let instances: BTreeSet<String> = prometheus
        .must_query(r#"count by (instance) ({__name__=~"martelo_.+"})"#)
        .await
        .iter()
        .map(|sample| {
            sample["metric"]["instance"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let expected_instances: BTreeSet<String> = expected
        .iter()
        .map(|(_, instance)| instance.clone())
        .collect();
    assert_eq!(
        instances, expected_instances,
        "instances with martelo_ series"
    );

    // Every `martelo_` series that the rules and the dashboard name is exported.
    let rules_text =
        std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).expect("alerts.yml");
    let dashboard_text = std::fs::read_to_string(deploy().join("grafana/martelo.json"))
        .expect("cluster/deploy/grafana/martelo.json");
    let dashboard: Value = serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");
    let mut referenced = martelo_names(&rules_text);
    referenced.extend(martelo_names(&dashboard_text));
    assert!(
        referenced.len() > 20,
        "the rules and dashboard name only {referenced:?}"
    );
    for (name, source) in FIRST_FAILURE_ONLY {
        let text = std::fs::read_to_string(workspace().join(source)).expect(source);
        assert!(
            text.contains(&format!("\"{name}\"")),
            "{name} is no longer named in {source}: update FIRST_FAILURE_ONLY"
        );
    }
    let referenced = &referenced;
    let exported = must_eventually("every series the rules and dashboard name", || async move {
        let exported = prometheus.names().await;
        // A histogram's or summary's own name (a rule's comment, a description) counts when
        // its `_count` series is exported.
        let missing: Vec<&String> = referenced
            .iter()
            .filter(|name| {
                !exported.contains(*name)
                    && !exported.contains(&format!("{name}_count"))
                    && !FIRST_FAILURE_ONLY.iter().any(|(listed, _)| listed == name)
            })
            .collect();
        if missing.is_empty() {
            Ok(exported)
        } else {
            Err(format!("not exported by any process: {missing:?}"))
        }
    })
    .await;
    println!(
        "{} martelo_ series names scraped; the rules and dashboard use {}",
        exported
            .iter()
            .filter(|name| name.starts_with("martelo_"))
            .count(),
        referenced.len()
    );

    // Every shipped alerting rule is loaded, has been evaluated, and evaluates cleanly.
    let rule_count = rules_text.matches("- alert: ").count();
    let rules: Vec<Value> = must_eventually("every rule evaluated", || async move {
        let data = prometheus.must_get("/api/v1/rules", &[]).await;
        let rules: Vec<Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let unevaluated: Vec<&Value> = rules
            .iter()
            .filter(|rule| rule["health"] == "unknown")
            .map(|rule| &rule["name"])
            .collect();
        if rules.len() == rule_count && unevaluated.is_empty() {
            Ok(rules)
        } else {
            Err(format!(
                "{} of {rule_count} rules loaded; not evaluated yet: {unevaluated:?}",
                rules.len()
            ))
        }
    })
    .await;
    for rule in &rules {
        assert_eq!(rule["type"], "alerting", "{rule}");
        assert_eq!(
            rule["health"], "ok",
            "rule {} evaluates with an error: {rule}",
            rule["name"]
        );
        assert_eq!(rule["lastError"].as_str().unwrap_or_default(), "", "{rule}");
    }
    // A healthy cluster fires none of them, once they have evaluated over a few scrapes (a
    // rule over `increase(...)` sees nothing in the first one).
    must_eventually("five scrapes of every target", || async move {
        let counts = prometheus
            .must_query(r#"min(count_over_time(up{job=~"martelo-.*"}[1m]))"#)
            .await;
        let scrapes = counts
            .first()
            .and_then(|sample| sample["value"][1].as_str()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        if scrapes >= 5.0 {
            Ok(())
        } else {
            Err(format!("{scrapes} scrapes"))
        }
    })
    .await;
    let evaluated = &rule_group_evaluations(prometheus).await;
    must_eventually("every rule group evaluated again", || async move {
        let now = rule_group_evaluations(prometheus).await;
        let again = now
            .iter()
            .all(|(group, at)| evaluated.get(group).is_some_and(|before| before != at));
        if again && now.len() == evaluated.len() {
            Ok(())
        } else {
            Err(format!("before {evaluated:?}, now {now:?}"))
        }
    })
    .await;
    let firing = prometheus
        .must_query(r#"ALERTS{alertname=~"Martelo.*", alertstate="firing"}"#)
        .await;
    assert!(
        firing.is_empty(),
        "alerts fire on a healthy cluster: {firing:?}"
    );

    // Every dashboard query is valid PromQL (an error answer fails `must_query`).
    let queries = dashboard_queries(&dashboard);
    assert!(
        queries.len() > 20,
        "the dashboard has only {} queries",
        queries.len()
    );
    for query in &queries {
        prometheus.must_query(query).await;
    }
}
