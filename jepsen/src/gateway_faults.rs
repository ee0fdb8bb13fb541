//! The gateways of a `--via gateway` run, and their own fault: kill -9 of one gateway for a
//! fault's duration, then a restart on the same port.
//!
//! The gateway faults run beside the node nemesis, offset by half an interval, and go into
//! the same timeline (kind `gateway`), so the report shows them as bands like any fault.
//! Clients whose home gateway is down retry on the next one with the same idempotency key
//! (see [`crate::gateway`]); an attempt cut off by the kill is an unknown outcome, never a
//! failure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use martelo_devkit::gateway::{GatewayProcess, write_key_file_with};
use tokio::sync::Mutex;

use crate::gateway::{GatewayPool, config_toml};
use crate::generate::Rng;
use crate::nemesis::{Nemesis, NemesisEvent, NemesisKind};
use crate::workload::Recorder;

/// The gateways in front of the cluster.
#[derive(Debug)]
pub struct Gateways {
    processes: Vec<Mutex<GatewayProcess>>,
    bases: Vec<String>,
}

impl Gateways {
    /// Writes a shared key file and the config file in `dir` and starts `count` gateways
    /// (`binary gateway`) in front of `seeds`, logging to `dir/gateway-gN.log`.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        seeds: &[String],
        count: usize,
    ) -> anyhow::Result<Gateways> {
        anyhow::ensure!(count >= 1, "--gateways: at least 1");
        let key_file = write_key_file_with(binary, dir).await?;
        let config: PathBuf = dir.join("gateway.toml");
        std::fs::write(&config, config_toml())?;
        let extra = ["--config".to_owned(), config.display().to_string()];
        let mut processes = Vec::with_capacity(count);
        let mut bases = Vec::with_capacity(count);
        for index in 1..=count {
            let name = format!("g{index}");
            let process =
                GatewayProcess::start_with(binary, dir, &name, seeds, &key_file, &extra).await?;
            bases.push(process.base.clone());
            processes.push(Mutex::new(process));
        }
        Ok(Gateways { processes, bases })
    }

    /// `http://HOST:PORT` of every gateway.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    /// Signs the workload's accounts up through the gateways.
    pub async fn sign_up(&self, bidders: usize, run_tag: &str) -> anyhow::Result<GatewayPool> {
        GatewayPool::sign_up(self.bases.clone(), bidders, run_tag).await
    }

    /// Restarts every gateway that is not running; the errors, if any.
    pub async fn heal_all(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for (index, process) in self.processes.iter().enumerate() {
            let mut process = process.lock().await;
            if !process.is_running()
                && let Err(error) = process.restart().await
            {
                errors.push(format!("restart gateway g{}: {error}", index + 1));
            }
        }
        errors
    }

    /// Kills every gateway (their logs stay).
    pub async fn stop_all(&self) {
        for process in &self.processes {
            process.lock().await.kill().await;
        }
    }
}

/// Kills one gateway for `duration` every `interval`, half an interval after the node
/// nemesis's rhythm, until `stop`; each fault goes into `nemesis`'s timeline. With one
/// gateway it does nothing (clients would have nowhere to go).
pub async fn run(
    gateways: Arc<Gateways>,
    nemesis: Arc<Nemesis>,
    interval: Duration,
    duration: Duration,
    seed: u64,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    if gateways.processes.len() < 2 {
        return;
    }
    let mut rng = Rng::new(seed ^ 0x6761_7465);
    let quiet = interval.saturating_sub(duration);
    if sleep_unless(interval / 2, &stop).await {
        return;
    }
    loop {
        if sleep_unless(quiet, &stop).await {
            return;
        }
        let index = rng.below(gateways.processes.len() as u64) as usize;
        let start_ns = recorder.elapsed_ns();
        gateways.processes[index].lock().await.kill().await;
        let position = {
            let mut timeline = nemesis.timeline.lock().unwrap_or_else(|e| e.into_inner());
            timeline.push(NemesisEvent {
                kind: NemesisKind::Gateway,
                detail: format!("kill -9 gateway g{}", index + 1),
                start_ns,
                end_ns: None,
                error: None,
            });
            timeline.len() - 1
        };
        let _stopped = sleep_unless(duration, &stop).await;
        let restarted = gateways.processes[index].lock().await.restart().await;
        {
            let mut timeline = nemesis.timeline.lock().unwrap_or_else(|e| e.into_inner());
            let event = &mut timeline[position];
            event.end_ns = Some(recorder.elapsed_ns());
            if let Err(error) = restarted {
                event.error = Some(format!("heal: {error}"));
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Sleeps `duration` in short steps; true when `stop` was set meanwhile.
async fn sleep_unless(duration: Duration, stop: &AtomicBool) -> bool {
    let step = Duration::from_millis(100);
    let mut left = duration;
    while !left.is_zero() {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        let now = left.min(step);
        tokio::time::sleep(now).await;
        left -= now;
    }
    stop.load(Ordering::SeqCst)
}
