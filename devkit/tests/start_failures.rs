//! The failure paths of `LocalCluster::start`, with scripts standing in for the `martelo`
//! binary (they crash or hang; they are not fake nodes). Real nodes are exercised by
//! `cluster/tests/` and the fault suite.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use martelo_devkit::{LocalCluster, LocalClusterConfig, LocalError};
use martelo_types::NodeId;
use nix::sys::signal::{Signal, kill as send_signal};
use nix::unistd::Pid;

/// Not a node: a binary that fails at startup, to check that the error quotes the log
/// and that the supervisor gives up at once rather than at the ready timeout.
#[tokio::test]
async fn a_node_that_exits_at_startup_fails_start_with_its_log_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = write_script(
        dir.path(),
        "exits.sh",
        "echo \"starting $2 $3 logging $MARTELO_LOG_FORMAT\"; \
         echo 'error: address already in use' >&2; exit 3",
    );
    let mut config = LocalClusterConfig::new(binary, dir.path().join("cluster"));
    config.nodes = 1;
    config.env = vec![("MARTELO_LOG_FORMAT".to_owned(), "text".to_owned())];
    config.ready_timeout = Duration::from_secs(20);
    let started = std::time::Instant::now();
    let error = LocalCluster::start(config).await.expect_err("must fail");
    assert!(started.elapsed() < Duration::from_secs(10), "gave up late");
    let message = error.to_string();
    assert!(
        matches!(
            error,
            LocalError::ExitedBeforeReady {
                node_id: NodeId(1),
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(
        message.contains("starting --id 1 logging text"),
        "{message}"
    );
    assert!(
        message.contains("error: address already in use"),
        "{message}"
    );
}

/// Not a node: a binary that never answers, to check the ready timeout, that the error
/// carries the client's typed error of the last probe, and that a failed start leaves no
/// process behind.
#[tokio::test]
async fn a_failed_start_kills_every_node_it_spawned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_dir = dir.path().join("pids");
    fs::create_dir(&pid_dir).expect("pid dir");
    let binary = write_script(
        dir.path(),
        "hangs.sh",
        &format!("echo $$ > {}/$3; exec sleep 60", pid_dir.display()),
    );
    let mut config = LocalClusterConfig::new(binary, dir.path().join("cluster"));
    config.nodes = 2;
    config.ready_timeout = Duration::from_millis(500);
    let error = LocalCluster::start(config)
        .await
        .expect_err("must time out");
    match &error {
        LocalError::NotReady {
            node_id: NodeId(1),
            last_error,
            ..
        } => assert!(
            matches!(
                **last_error,
                martelo_client::ClientError::Unreachable { .. }
            ),
            "{last_error:?}"
        ),
        other => panic!("expected NotReady for node 1, got {other}"),
    }
    for id in ["1", "2"] {
        let pid: i32 = fs::read_to_string(pid_dir.join(id))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        // Reaped, so the pid no longer exists (ESRCH).
        assert_eq!(
            send_signal(Pid::from_raw(pid), None::<Signal>),
            Err(nix::errno::Errno::ESRCH),
            "node {id} (pid {pid}) survived"
        );
    }
}

#[tokio::test]
async fn a_missing_binary_fails_start_with_a_spawn_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = LocalClusterConfig::new(dir.path().join("no-such-binary"), dir.path());
    let error = LocalCluster::start(config).await.expect_err("must fail");
    assert!(
        matches!(
            error,
            LocalError::Spawn {
                node_id: NodeId(1),
                ..
            }
        ),
        "{error}"
    );
}

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;

    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}
