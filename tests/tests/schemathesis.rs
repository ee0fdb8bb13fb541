//! The gateway against its own OpenAPI document: a real 3-node cluster (with its Postgres
//! sink), a real `martelo gateway` process reading that database for the history routes,
//! and [schemathesis](https://schemathesis.readthedocs.io) generating requests for every
//! operation of `/v1/openapi.json`, valid and invalid, signed in as an admin, a seller and a
//! bidder (`tests/schema/hooks.py` picks the account per route).
//!
//! Every answer must pass these checks:
//! - `not_a_server_error`: no 5xx;
//! - `status_code_conformance`: the status is one the document lists for the operation;
//! - `content_type_conformance`: the `Content-Type` is one the document lists for it;
//! - `response_schema_conformance`: the body fits the document's schema for that status;
//! - `problem_json_errors` (ours, in `hooks.py`): every 4xx and 5xx is
//!   `application/problem+json` with `type`, `title`, `status`, `detail` and a `code`.
//!
//! The run is bounded: `MARTELO_SCHEMA_MAX_TIME` seconds (default 120) and
//! `MARTELO_SCHEMA_MAX_EXAMPLES` cases per operation and phase (default 25);
//! `MARTELO_SCHEMA_SEED` replays a run (its seed is printed). docs/TESTING.md, "API schema
//! testing", gives the long run's command.
//!
//! Needs, besides the `martelo` binary and the local Postgres: schemathesis for Python
//! (`pip install -r tests/schema/requirements.txt`). Without it the test fails with that
//! command, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use martelo_sink::testing::TestDb;
use martelo_tests::{
    GatewayProcess, must_create_admin, must_import, must_write_key_file, python, spawn_cluster_with,
};
use serde_json::{Value, json};

const ADMIN: &str = "schema-admin";
/// Every account of the run shares this password (8 to 128 characters).
const PASSWORD: &str = "the schema tests' password";
/// The accounts signed up over HTTP (`MARTELO_SCHEMA_ACCOUNTS`): name, roles.
const ACCOUNTS: [(&str, &[&str]); 4] = [
    ("seller", &["seller"]),
    ("bidder", &["bidder"]),
    ("leaver", &["bidder"]),
    ("victim", &["bidder"]),
];
const MAX_TIME_SECS_DEFAULT: u64 = 120;
const MAX_EXAMPLES_DEFAULT: u64 = 25;
/// What `hooks.py` checks besides schemathesis's own checks.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,problem_json_errors";

fn schema_suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema")
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|text| {
            text.parse()
                .unwrap_or_else(|_| panic!("{name} must be a whole number, not {text:?}"))
        })
        .unwrap_or(default)
}

fn now_us() -> u64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(elapsed.as_micros()).expect("microseconds fit in u64")
}

/// Fails with the install command when schemathesis is missing.
async fn must_have_schemathesis() {
    must_import(
        "schemathesis",
        "schemathesis (the API schema test needs it)",
        &schema_suite().join("requirements.txt"),
    )
    .await;
}

/// Sends `request` (JSON `body` unless null) and asserts the status: the JSON answer.
async fn must_call(request: reqwest::RequestBuilder, body: &Value, status: u16) -> Value {
    let request = if body.is_null() {
        request
    } else {
        request.json(body)
    };
    let answer = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("the gateway did not answer: {error}"));
    let got = answer.status().as_u16();
    let text = answer.text().await.unwrap_or_default();
    assert_eq!(got, status, "expected {status}, got {got}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Signs `username` in: (user id, access token).
async fn must_sign_in(http: &reqwest::Client, base: &str, username: &str) -> (u64, String) {
    let session = must_call(
        http.post(format!("{base}/v1/sessions")),
        &json!({"username": username, "password": PASSWORD}),
        201,
    )
    .await;
    let id = session["user"]["id"].as_u64().expect("user id");
    let token = session["access_token"].as_str().expect("token").to_owned();
    (id, token)
}

/// The gateway's configuration: rate limits far above what one schemathesis worker sends
/// (the limits have their own tests), and two password hashes at a time for the sign-ups
/// and sign-ins it generates.
fn write_gateway_config(dir: &Path) -> PathBuf {
    let path = dir.join("gateway-schema.toml");
    std::fs::write(
        &path,
        "[rate]\nper_ip_per_sec = 100000\nper_ip_burst = 100000\nper_user_per_sec = 100000\n\
         per_user_burst = 100000\nlogin_failures_burst = 100000\n\n\
         [limits]\npassword_hash_concurrency = 2\n",
    )
    .expect("gateway config written");
    path
}

/// Signs up the accounts, opens the fixture auctions with a bid each: the value of
/// `MARTELO_SCHEMA_ACCOUNTS` and the auction ids.
async fn must_prepare(base: &str) -> (Value, Vec<u64>) {
    let http = reqwest::Client::new();
    let mut accounts = serde_json::Map::new();
    let mut tokens = std::collections::BTreeMap::new();
    for (name, roles) in ACCOUNTS {
        let username = format!("schema-{name}");
        must_call(
            http.post(format!("{base}/v1/accounts")),
            &json!({"username": username, "display_name": name, "password": PASSWORD,
                    "roles": roles}),
            201,
        )
        .await;
        let (id, token) = must_sign_in(&http, base, &username).await;
        tokens.insert(name, token);
        accounts.insert(
            name.to_owned(),
            json!({"username": username, "password": PASSWORD, "id": id}),
        );
    }
    let (admin_id, _) = must_sign_in(&http, base, ADMIN).await;
    accounts.insert(
        "admin".to_owned(),
        json!({"username": ADMIN, "password": PASSWORD, "id": admin_id}),
    );
    let mut auctions = Vec::new();
    let start = now_us();
    // One auction per increment rule: each is shown differently in an auction's read.
    let increments = [
        json!({"fixed": 10}),
        json!("ebay"),
        json!({"bands": [{"from": 0, "increment": 10}, {"from": 1000, "increment": 50}]}),
    ];
    for (index, increment) in increments.iter().enumerate() {
        let created = must_call(
            http.post(format!("{base}/v1/auctions"))
                .bearer_auth(&tokens["seller"])
                .header("idempotency-key", format!("schema-fixture-{index}")),
            &json!({"title": format!("Fixture {index}"), "currency": "EUR",
                    "starting_price": 100, "buy_now_price": 100_000,
                    "increment": increment, "start_us": start,
                    "end_us": start + 3_600_000_000}),
            201,
        )
        .await;
        let auction = created["auction"].as_u64().expect("auction id");
        must_call(
            http.post(format!("{base}/v1/auctions/{auction}/bids"))
                .bearer_auth(&tokens["bidder"])
                .header("idempotency-key", format!("schema-fixture-bid-{index}")),
            &json!({"amount": 150, "max": 500}),
            201,
        )
        .await;
        auctions.push(auction);
    }
    (Value::Object(accounts), auctions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_as_its_openapi_document_says() {
    must_have_schemathesis().await;
    let max_time = env_u64("MARTELO_SCHEMA_MAX_TIME", MAX_TIME_SECS_DEFAULT);
    let max_examples = env_u64("MARTELO_SCHEMA_MAX_EXAMPLES", MAX_EXAMPLES_DEFAULT);
    let dir = tempfile::tempdir().expect("tempdir");
    // The nodes' sink and the gateway's history routes share a database of the test's own.
    let db = TestDb::create().await;
    let postgres = vec!["--postgres".to_owned(), db.url().to_owned()];
    let cluster = spawn_cluster_with(dir.path(), 3, 2, &postgres).await;
    let seeds = cluster.api_addresses();
    let key_file = must_write_key_file(dir.path()).await;
    let mut gateway_args = postgres.clone();
    gateway_args.push("--config".to_owned());
    gateway_args.push(write_gateway_config(dir.path()).display().to_string());
    let gateway = GatewayProcess::start(dir.path(), "schema", &seeds, &key_file, &gateway_args)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    must_create_admin(&seeds, ADMIN, PASSWORD).await;
    let (accounts, auctions) = must_prepare(&gateway.base).await;

    let stdout_path = dir.path().join("schemathesis.out");
    let mut command = tokio::process::Command::new(python());
    command
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("{}/v1/openapi.json", gateway.base))
        .args(["--checks", CHECKS])
        .args(["--max-examples", &max_examples.to_string()])
        .args(["--max-time", &max_time.to_string()])
        .args(["--workers", "1", "--request-timeout", "30"])
        .args(["--generation-database", "none", "--no-color"]);
    if let Ok(seed) = std::env::var("MARTELO_SCHEMA_SEED") {
        command.args(["--seed", &seed]);
    }
    let mut run = command
        .env("PYTHONPATH", schema_suite())
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("MARTELO_URL", &gateway.base)
        .env("MARTELO_SCHEMA_ACCOUNTS", accounts.to_string())
        .env(
            "MARTELO_SCHEMA_AUCTIONS",
            auctions
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        // Reports and caches go to the test's temporary directory, not the source tree.
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("schemathesis starts");
    // schemathesis stops generating at --max-time; the rest is the last cases and shrinking.
    let deadline = Duration::from_secs(max_time + max_time / 2 + 120);
    let status = tokio::time::timeout(deadline, run.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "schemathesis ran past {deadline:?}; so far:\n{}",
                std::fs::read_to_string(&stdout_path).unwrap_or_default()
            )
        })
        .expect("schemathesis status");
    let output = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    println!("{output}");
    let gateway_log = std::fs::read_to_string(&gateway.log).unwrap_or_default();
    assert!(
        status.success(),
        "schemathesis found failures ({status}); see above.\n--- gateway log (tail) ---\n{}",
        martelo_devkit::read_log_tail(&gateway.log, 60)
    );
    assert!(
        output.contains("Tested:") && !output.contains("Tested: 0"),
        "schemathesis tested no operation:\n{output}"
    );
    assert!(
        !gateway_log.contains("panicked"),
        "the gateway panicked during the run:\n{}",
        martelo_devkit::read_log_tail(&gateway.log, 60)
    );
}
