//! `martelo-jepsen run --net iptables`: partitions made with iptables in a private network
//! namespace. Needs root, `ip` and `iptables`, and `MARTELO_BIN` naming a `martelo` that has
//! `--source-address`; otherwise the run test prints why and passes without running.
//!
//! ```sh
//! MARTELO_BIN=/path/to/martelo cargo test -p martelo-jepsen --test netns_partition -- --nocapture
//! ```

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{jepsen_run, must_read_summary, text};

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// Why the iptables run cannot happen here, or the `martelo` binary to run it with.
fn prerequisites() -> Result<PathBuf, String> {
    if !is_root() {
        return Err("not running as root".to_owned());
    }
    if !succeeds("ip", &["-V"]) || !succeeds("iptables", &["--version"]) {
        return Err("`ip` or `iptables` is missing (apt-get install iproute2 iptables)".to_owned());
    }
    let Some(binary) = std::env::var_os("MARTELO_BIN").map(PathBuf::from) else {
        return Err("MARTELO_BIN is not set".to_owned());
    };
    let binary_text = binary.display().to_string();
    if !succeeds(
        &binary_text,
        &["node", "--source-address", "127.0.0.1", "--help"],
    ) {
        return Err(format!("{binary_text} has no --source-address"));
    }
    Ok(binary)
}

#[test]
fn an_iptables_run_cuts_links_in_its_own_namespace_and_passes() {
    let binary = match prerequisites() {
        Ok(binary) => binary,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("run");
    let child = jepsen_run(&binary, &out, "7")
        .args(["--net", "iptables"])
        .args(["--nodes", "3", "--shards", "2", "--clients", "6"])
        .args(["--duration", "32", "--nemesis", "partition"])
        .args(["--nemesis-interval", "6", "--fault-duration", "4"])
        // A ring of 3 nodes cuts nothing (each node's two neighbours are everyone).
        .args(["--partition", "majority-minority,isolated-leader,bridge"])
        .args(["--window-min", "4", "--window-max", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("martelo-jepsen runs");
    let namespace = format!("martelo-jepsen-{}", child.id());
    let output = child.wait_with_output().expect("martelo-jepsen ends");
    let (code, summary) = must_read_summary(&out, &output);
    assert_eq!(summary["valid"], true, "{}", text(&summary));
    assert_eq!(code, 0);
    assert_eq!(summary["run"]["net"], "iptables", "{}", text(&summary));

    // Every partition was made, and probed: a cut link's TCP connect from the dialing node's
    // address timed out while a kept link's connected.
    let events = summary["run"]["nemesis"].as_array().expect("timeline");
    let partitions: Vec<&Value> = events
        .iter()
        .filter(|event| event["kind"] == "partition")
        .collect();
    assert!(partitions.len() >= 3, "{}", text(&summary));
    for event in &partitions {
        let detail = event["detail"].as_str().unwrap_or("");
        assert!(event["error"].is_null(), "{}", text(&summary));
        assert!(event["end_ns"].is_u64(), "{}", text(&summary));
        assert!(
            detail.contains("dropped") && !detail.contains("NOT") && detail.contains("open"),
            "{detail}"
        );
    }
    let bids = &summary["counts"]["bid"];
    assert!(bids["ok"].as_u64().unwrap_or(0) > 20, "{}", text(&summary));

    // The namespace is gone.
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list
            .lines()
            .any(|line| line.split_whitespace().next() == Some(&namespace)),
        "{namespace} still exists:\n{list}"
    );
}

#[test]
fn iptables_mode_refuses_to_run_without_root() {
    // As root, drop to nobody with setpriv when it exists; otherwise this process is not root.
    let jepsen = env!("CARGO_BIN_EXE_martelo-jepsen");
    let mut command = if is_root() {
        if !succeeds("setpriv", &["--version"]) {
            println!("skipped: running as root and setpriv is missing");
            return;
        }
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", jepsen]);
        command
    } else {
        Command::new(jepsen)
    };
    let output = command
        .args(["run", "--net", "iptables", "--martelo-bin", "/bin/true"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("Permission denied") {
        println!("skipped: nobody cannot run {jepsen}: {stderr}");
        return;
    }
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--net iptables needs root"),
        "unexpected stderr: {stderr}"
    );
}
