//! The web UI in a real browser: a real 3-node cluster, a real `martelo gateway` process
//! serving the embedded UI, the first admin created by `martelo user create --admin`, and
//! the Playwright scenarios of `tests/browser/` (Python Playwright driving Debian's
//! Chromium headless) run against it. The nodes' sink writes a database of the test's own
//! on the local Postgres (127.0.0.1:5432), which the gateway reads for the history and
//! audit pages; a second gateway runs without it. Any failing scenario fails this test with the
//! suite's output and the gateway's log.
//!
//! While the suite runs, this test serves its requests to kill and restart the gateway
//! (same port, same key file): the suite touches `restart-gateway` in `MARTELO_CONTROL_DIR`
//! and waits for `gateway-restarted`.
//!
//! Needs, besides the `martelo` binary: `/usr/bin/chromium` (`apt-get install chromium`)
//! and Playwright for Python (`pip install -r tests/browser/requirements.txt`). A missing
//! one fails the test with that command, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use martelo_devkit::martelo_bin;
use martelo_sink::testing::TestDb;
use martelo_tests::{
    GatewayProcess, must_create_admin, must_import, must_start_gateway, must_write_key_file,
    python, spawn_cluster_with,
};

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "the browser tests' admin password";
/// The whole browser run is a couple of minutes; past this something hangs.
const SUITE_DEADLINE: Duration = Duration::from_secs(600);

fn chromium() -> PathBuf {
    std::env::var_os("MARTELO_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

fn browser_suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Fails with the install command when Playwright, pytest or Chromium is missing.
async fn must_have_playwright() {
    must_import(
        "playwright.sync_api, pytest",
        "Playwright for Python (the browser tests need it)",
        &browser_suite().join("requirements.txt"),
    )
    .await;
    assert!(
        chromium().exists(),
        "no Chromium at {}: apt-get install chromium (or set MARTELO_CHROMIUM)",
        chromium().display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_passes_its_browser_scenarios_against_a_real_cluster() {
    must_have_playwright().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The nodes' sink and the gateway's history routes share a database of the test's own.
    let db = TestDb::create().await;
    let postgres = vec!["--postgres".to_owned(), db.url().to_owned()];
    let cluster = spawn_cluster_with(dir.path(), 3, 2, &postgres).await;
    let seeds = cluster.api_addresses();
    let key_file = must_write_key_file(dir.path()).await;
    let mut gateway = GatewayProcess::start(dir.path(), "web", &seeds, &key_file, &postgres)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    // A second gateway without the history database, for the pages that say so.
    let no_history = must_start_gateway(dir.path(), "web-no-history", &seeds, &key_file).await;
    must_create_admin(&seeds, ADMIN, ADMIN_PASSWORD).await;

    let control = dir.path().join("control");
    std::fs::create_dir(&control).expect("control dir");
    let stdout_path = dir.path().join("pytest.out");
    let stderr_path = dir.path().join("pytest.err");
    let mut suite = tokio::process::Command::new(python())
        .args(["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"])
        .arg(browser_suite())
        .env("MARTELO_URL", &gateway.base)
        .env("MARTELO_URL_NO_HISTORY", &no_history.base)
        .env("MARTELO_ADMIN_USER", ADMIN)
        .env("MARTELO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("MARTELO_CHROMIUM", chromium())
        .env("MARTELO_CONTROL_DIR", &control)
        .env("MARTELO_BIN", martelo_bin())
        .current_dir(browser_suite())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .kill_on_drop(true)
        .spawn()
        .expect("pytest starts");
    // Serve the suite's requests to restart the gateway while it runs.
    let deadline = tokio::time::Instant::now() + SUITE_DEADLINE;
    let status = loop {
        if let Some(status) = suite.try_wait().expect("pytest status") {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the browser suite ran past {SUITE_DEADLINE:?}; so far:\n{}",
            std::fs::read_to_string(&stdout_path).unwrap_or_default()
        );
        let request = control.join("restart-gateway");
        if request.exists() {
            std::fs::remove_file(&request).expect("request consumed");
            gateway
                .restart()
                .await
                .unwrap_or_else(|error| panic!("the gateway did not restart: {error}"));
            std::fs::write(control.join("gateway-restarted"), b"").expect("answer written");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    println!("{stdout}");
    assert!(
        status.success(),
        "browser scenarios failed ({status}):\n{stdout}\n{stderr}\n--- gateway log (tail) ---\n{}",
        martelo_devkit::read_log_tail(&gateway.log, 60)
    );
    assert!(
        stdout.contains(" passed"),
        "pytest ran no scenario:\n{stdout}"
    );
}
