//! `martelo-jepsen run` and `check`: the cluster under test, the workload, the nemesis
//! schedule, the final reads and collection, the checkers and the run directory.
//!
//! ```text
//!   run dir/
//!     history.jsonl   every client operation (invoke + completion)
//!     final.json      every replica's applied log per auction and its digest
//!     run.json        the run's parameters, nemesis timeline and notes
//!     summary.json    verdicts, counts, checker runtime (+ run.json's content)
//!     summary.txt     the same for people
//!     report.html     latency and throughput plots with nemesis bands
//!     sink.json       with --sink: cursors, rows compared and differences (I6)
//!     postgres/       with --sink private: the run's Postgres (its log: server.log)
//!     cluster/        node-<id>.log of every node (data dirs removed unless --keep-data)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use martelo_devkit::{LocalCluster, LocalClusterConfig, pick_free_ports};
use martelo_types::NodeId;

use crate::api::Target;
use crate::checker::{self, linearizable::SearchLimits};
use crate::gateway_faults::{self, Gateways};
use crate::history::{self, ReadLimits};
use crate::nemesis::{Nemesis, NemesisKind, PartitionShape};
use crate::netns::{self, IptablesLinks, Links, NetMode};
use crate::proxy::LinkProxies;
use crate::replicas::{FINAL_STATE_BYTES_MAX, FinalState};
use crate::report::{self, RunInfo, Summary};
use crate::sink::{SINK_STATE_BYTES_MAX, SinkDatabase, SinkMode, SinkState};
use crate::workload::{self, Recorder, Workload, WorkloadConfig};

/// Everything `run` needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub binary: PathBuf,
    pub out: PathBuf,
    /// The nodes' data dirs and logs; `<out>/cluster` when `None`.
    pub data_dir: Option<PathBuf>,
    pub nodes: usize,
    pub shard_count: u32,
    pub clients: usize,
    pub auctions: usize,
    pub duration: Duration,
    pub rate: f64,
    pub nemeses: Vec<NemesisKind>,
    pub nemesis_interval: Duration,
    /// How long each fault lasts before it is healed (at most the interval).
    pub fault_duration: Duration,
    pub partition_shapes: Vec<PartitionShape>,
    pub seed: u64,
    pub window_min: Duration,
    pub window_max: Duration,
    pub read_percent: u32,
    pub resend_percent: u32,
    pub planted_bugs: Vec<String>,
    pub keep_data: bool,
    pub quiet: bool,
    /// How partitions are made. [`NetMode::Iptables`] expects this process to run inside
    /// the private network namespace `main` made for it (see [`crate::netns`]).
    pub net: NetMode,
    /// How workload clients reach the cluster.
    pub via: Via,
    /// `martelo gateway` processes in front of the cluster with [`Via::Gateway`].
    pub gateways: usize,
    /// Bidder accounts signed up through the gateways with [`Via::Gateway`]; each bids at
    /// most once per auction.
    pub gateway_bidders: usize,
    /// With [`Via::Gateway`]: also kill -9 one gateway for each fault's duration, half an
    /// interval after each node fault starts (needs two gateways or more).
    pub gateway_faults: bool,
    /// Where the nodes' Postgres sink writes (`--sink`); with it, the I6 checker runs.
    pub sink: SinkMode,
}

/// How workload clients reach the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// gRPC through `martelo-client`, straight to the nodes.
    #[default]
    Grpc,
    /// HTTP through `martelo gateway` processes, as bidders do.
    Gateway,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Grpc => "grpc",
            Via::Gateway => "gateway",
        }
    }
}

/// Whether `binary node` accepts `flag` (hidden flags do not show in `--help`, so parse a
/// command line that holds it, followed by `--help`: clap rejects an unknown flag first).
pub fn node_accepts(binary: &Path, flag: &str, value: &str) -> bool {
    std::process::Command::new(binary)
        .args(["node", flag, value, "--help"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn progress_line(quiet: bool, line: &str) {
    if !quiet {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// Runs the whole test and writes the run directory. Returns the summary.
pub async fn run(options: RunOptions) -> anyhow::Result<Summary> {
    let wall = Instant::now();
    anyhow::ensure!(
        options.binary.exists(),
        "the martelo binary {} does not exist (pass --martelo-bin or set MARTELO_BIN)",
        options.binary.display()
    );
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let cluster_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| options.out.join("cluster"));
    let mut notes = Vec::new();

    // Every node's address is known before any node starts, so proxies can sit in front.
    // With iptables, node N has its own address 127.0.0.(10+N) and dials its peers from it.
    let ports = pick_free_ports(options.nodes)?;
    let mut hosts: BTreeMap<NodeId, String> = BTreeMap::new();
    if options.net == NetMode::Iptables {
        for id in 1..=options.nodes as u64 {
            hosts.insert(NodeId(id), netns::node_ip(id)?.to_string());
        }
    }
    let targets: BTreeMap<u64, String> = ports
        .iter()
        .enumerate()
        .map(|(index, port)| {
            let id = index as u64 + 1;
            let host = hosts.get(&NodeId(id)).map_or("127.0.0.1", String::as_str);
            (id, format!("{host}:{port}"))
        })
        .collect();
    let links = Arc::new(match options.net {
        NetMode::Proxy => Links::Proxy(LinkProxies::start(&targets).await?),
        NetMode::Iptables => {
            anyhow::ensure!(
                node_accepts(&options.binary, "--source-address", "127.0.0.1"),
                "--net iptables: the node binary {} has no --source-address flag (rebuild it)",
                options.binary.display()
            );
            Links::Iptables(IptablesLinks::setup()?)
        }
    });

    let clock_supported = node_accepts(&options.binary, "--test-clock-offset-file", "/dev/null");
    let clock_files = clock_supported.then(|| {
        targets
            .keys()
            .map(|&id| (id, cluster_dir.join(format!("clock-offset-{id}"))))
            .collect::<BTreeMap<u64, PathBuf>>()
    });
    if !clock_supported && options.nemeses.contains(&NemesisKind::Clock) {
        notes.push(
            "the node has no --test-clock-offset-file: clock faults restart a node with \
             --test-clock-offset-ms instead (no strobe)"
                .to_owned(),
        );
    }
    std::fs::create_dir_all(&cluster_dir)?;
    let mut base_args: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for &id in targets.keys() {
        let mut args = match &*links {
            Links::Proxy(proxies) => proxies.dial_overrides(id),
            Links::Iptables(_) => vec![
                "--source-address".to_owned(),
                netns::node_ip(id)?.to_string(),
            ],
        };
        if let Some(files) = &clock_files {
            std::fs::write(&files[&id], "0")?;
            args.extend([
                "--test-clock-offset-file".to_owned(),
                files[&id].display().to_string(),
            ]);
        }
        base_args.insert(id, args);
    }
    let mut config = LocalClusterConfig::new(&options.binary, &cluster_dir);
    config.nodes = options.nodes;
    config.shard_count = options.shard_count;
    config.ports = ports.clone();
    config.node_args = base_args
        .iter()
        .map(|(&id, args)| (NodeId(id), args.clone()))
        .collect();
    config.hosts = hosts;
    config.env = vec![("MARTELO_LOG_FORMAT".to_owned(), "text".to_owned())];
    for bug in &options.planted_bugs {
        config
            .extra_args
            .extend(["--test-plant-bug".to_owned(), bug.clone()]);
    }
    let sink_database = SinkDatabase::start(&options.sink, &options.out, options.seed).await?;
    if let Some(database) = &sink_database {
        config
            .extra_args
            .extend(["--postgres".to_owned(), database.url.clone()]);
    }
    config.ready_timeout = Duration::from_secs(60);
    config.healthy_timeout = Duration::from_secs(60);
    progress_line(
        options.quiet,
        &format!(
            "starting {} nodes from {} in {}",
            options.nodes,
            options.binary.display(),
            cluster_dir.display()
        ),
    );
    let cluster = Arc::new(LocalCluster::start(config).await?);
    cluster.init().await?;
    let seeds = cluster.api_addresses();

    let run_tag = format!("j{:x}", options.seed % 0xffff_ffff);
    let (target, gateways) = match options.via {
        Via::Grpc => (Target::Grpc(seeds.clone()), None),
        Via::Gateway => {
            progress_line(
                options.quiet,
                &format!(
                    "starting {} gateway(s), signing up {} bidders",
                    options.gateways, options.gateway_bidders
                ),
            );
            let gateways =
                Gateways::start(&options.binary, &cluster_dir, &seeds, options.gateways).await?;
            let signing_up = Instant::now();
            let pool = gateways.sign_up(options.gateway_bidders, &run_tag).await?;
            progress_line(
                options.quiet,
                &format!(
                    "cluster up in {:.1} s; {} accounts signed up and in in {:.1} s",
                    signing_up.duration_since(wall).as_secs_f64(),
                    options.gateway_bidders + 1,
                    signing_up.elapsed().as_secs_f64()
                ),
            );
            (Target::Gateway(Arc::new(pool)), Some(Arc::new(gateways)))
        }
    };

    let start = Instant::now();
    let recorder = Arc::new(Recorder::create(&options.out.join("history.jsonl"), start)?);
    let workload = Workload::start(
        WorkloadConfig {
            clients: options.clients,
            auctions: options.auctions,
            rate: options.rate,
            seed: options.seed,
            window_min: options.window_min,
            window_max: options.window_max,
            read_percent: options.read_percent,
            resend_percent: options.resend_percent,
            deadline: Duration::from_secs(5),
            run_tag,
        },
        target,
        Arc::clone(&recorder),
    )
    .await?;
    let shared = Arc::clone(&workload.shared);

    let mut nemesis = Nemesis::new(
        Arc::clone(&cluster),
        Arc::clone(&links),
        options.shard_count,
        clock_files,
        base_args,
        options.partition_shapes.clone(),
    );
    if let Some(private) = sink_database.as_ref().and_then(|db| db.private.clone()) {
        nemesis = nemesis.with_postgres(private);
    }
    let nemesis = Arc::new(nemesis);
    let nemesis_stop = Arc::new(AtomicBool::new(false));
    let nemesis_task = {
        let nemesis = Arc::clone(&nemesis);
        let stop = Arc::clone(&nemesis_stop);
        let kinds = options.nemeses.clone();
        let recorder = Arc::clone(&recorder);
        let (interval, duration, seed) = (
            options.nemesis_interval,
            options.fault_duration.min(options.nemesis_interval),
            options.seed,
        );
        tokio::spawn(async move {
            nemesis
                .run(
                    &kinds,
                    interval,
                    duration,
                    seed,
                    || recorder.elapsed_ns(),
                    &stop,
                )
                .await;
        })
    };
    let gateway_task = match (&gateways, options.gateway_faults) {
        (Some(gateways), true) => Some(tokio::spawn(gateway_faults::run(
            Arc::clone(gateways),
            Arc::clone(&nemesis),
            options.nemesis_interval,
            options.fault_duration.min(options.nemesis_interval),
            options.seed,
            Arc::clone(&recorder),
            Arc::clone(&nemesis_stop),
        ))),
        _ => None,
    };
    let progress_stop = Arc::new(AtomicBool::new(false));
    let progress_task = {
        let recorder = Arc::clone(&recorder);
        let nemesis = Arc::clone(&nemesis);
        let stop = Arc::clone(&progress_stop);
        let quiet = options.quiet;
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let progress = &recorder.progress;
                let timeline = nemesis.timeline();
                let active = timeline
                    .last()
                    .filter(|event| event.end_ns.is_none())
                    .map(|event| format!("{}: {}", event.kind.as_str(), event.detail))
                    .unwrap_or_else(|| "no fault".to_owned());
                progress_line(
                    quiet,
                    &format!(
                        "[{:>6.1} s] ok {} fail {} info {} closes {} | {active}",
                        recorder.elapsed_ns() as f64 / 1e9,
                        progress.ok.load(Ordering::Relaxed),
                        progress.fail.load(Ordering::Relaxed),
                        progress.info.load(Ordering::Relaxed),
                        progress.closes.load(Ordering::Relaxed),
                    ),
                );
            }
        })
    };

    tokio::time::sleep(options.duration).await;
    progress_line(options.quiet, "workload done; healing every fault");
    nemesis_stop.store(true, Ordering::SeqCst);
    let _ = nemesis_task.await;
    if let Some(task) = gateway_task {
        let _ = task.await;
    }
    if let Some(gateways) = &gateways {
        for error in gateways.heal_all().await {
            notes.push(format!("heal: {error}"));
        }
    }
    shared.stop();
    for error in nemesis.heal_all().await {
        notes.push(format!("heal: {error}"));
    }
    let all_nodes: BTreeMap<u64, String> = cluster
        .nodes()
        .into_iter()
        .map(|info| (info.id.get(), info.address))
        .collect();
    if let Err(reason) =
        crate::collect::wait_groups_led(&all_nodes, options.shard_count, Duration::from_secs(60))
            .await
    {
        notes.push(format!(
            "a group has no agreed leader after healing: {reason}"
        ));
    } else if let Err(error) = cluster.wait_healthy(Duration::from_secs(5)).await {
        // Every group is led, but LocalCluster's stricter check (every replica on every
        // node names the leader) fails: typically a replica left on a removed member.
        notes.push(format!("LocalCluster health check after healing: {error}"));
    }
    // Let every open auction close and its close be observed (windows plus soft-close
    // extensions, with room for a slow leader).
    let close_deadline = Instant::now() + options.window_max * 2 + Duration::from_secs(20);
    while shared.unclosed() > 0 && Instant::now() < close_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if shared.unclosed() > 0 {
        notes.push(format!(
            "{} auction close(s) not observed before the deadline (left as info)",
            shared.unclosed()
        ));
    }
    shared.abandon_closes();
    workload.join().await;
    progress_line(options.quiet, "final reads");
    workload::final_reads(&shared, Instant::now() + Duration::from_secs(60)).await?;
    progress_stop.store(true, Ordering::SeqCst);
    let _ = progress_task.await;
    let duration_s = recorder.elapsed_ns() as f64 / 1e9;
    recorder.flush();

    progress_line(options.quiet, "collecting every replica's log and digest");
    let records = read_records(&options.out)?;
    let auctions: BTreeSet<u64> = shared.auctions().into_keys().collect();
    let nodes: BTreeMap<u64, String> = cluster
        .nodes()
        .into_iter()
        .map(|info| (info.id.get(), info.address))
        .collect();
    let final_state = crate::collect::collect(
        &nodes,
        options.shard_count,
        &auctions,
        &records,
        Duration::from_secs(60),
        &mut notes,
    )
    .await?;
    std::fs::write(
        options.out.join("final.json"),
        serde_json::to_vec(&final_state)?,
    )?;
    if final_state
        .replicas
        .values()
        .any(|replica| replica.digest.is_empty())
    {
        notes.push("some replicas reported no state digest".to_owned());
    }
    let sink_state = match &sink_database {
        Some(database) => {
            progress_line(
                options.quiet,
                "waiting for the sink to catch up; comparing Postgres with Raft (I6)",
            );
            let label = options.sink.label();
            let state =
                crate::sink::check_sink(database, label, &nodes, options.shard_count, &auctions)
                    .await;
            std::fs::write(
                options.out.join("sink.json"),
                serde_json::to_vec_pretty(&state)?,
            )?;
            Some(state)
        }
        None => None,
    };
    let timeline = nemesis.timeline();
    if let Some(gateways) = gateways {
        gateways.stop_all().await;
    }
    let stopped = cluster.stop_all().await;
    for (node, result) in stopped {
        if let Err(error) = result {
            notes.push(format!("stopping node {node}: {error}"));
        }
    }
    drop(nemesis);
    drop(cluster);
    drop(links);
    if let Some(database) = &sink_database {
        database.stop().await;
    }
    if !options.keep_data {
        for id in nodes.keys() {
            let _ = std::fs::remove_dir_all(cluster_dir.join(format!("node-{id}")));
        }
    }
    let mut run = RunInfo {
        nodes: options.nodes,
        shard_count: options.shard_count,
        clients: options.clients,
        auctions: options.auctions,
        duration_s,
        nemeses: options
            .nemeses
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect(),
        nemesis_interval_s: options.nemesis_interval.as_secs_f64(),
        seed: options.seed,
        binary: options.binary.display().to_string(),
        planted_bugs: options.planted_bugs.clone(),
        notes,
        nemesis: timeline,
        net: match options.net {
            NetMode::Proxy => "proxy".to_owned(),
            NetMode::Iptables => "iptables".to_owned(),
        },
        via: options.via.as_str().to_owned(),
        sink: options.sink.label().to_owned(),
        wall_s: 0.0,
    };
    progress_line(options.quiet, "checking");
    let summary = check_records(
        &options.out,
        &records,
        &final_state,
        sink_state.as_ref(),
        &mut run,
        wall,
    )?;
    progress_line(options.quiet, &report::render_text(&summary));
    progress_line(
        options.quiet,
        &format!("report: {}", options.out.join("report.html").display()),
    );
    Ok(summary)
}

fn read_records(dir: &Path) -> anyhow::Result<Vec<history::Record>> {
    let path = dir.join("history.jsonl");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(history::read_history(
        std::io::BufReader::new(file),
        ReadLimits::default(),
    )?)
}

/// Runs the checkers (the sink checker too when the run had a sink) and writes `run.json`,
/// `summary.*` and `report.html`.
fn check_records(
    dir: &Path,
    records: &[history::Record],
    final_state: &FinalState,
    sink_state: Option<&SinkState>,
    run: &mut RunInfo,
    wall: Instant,
) -> anyhow::Result<Summary> {
    let operations = history::pair(records)?;
    let started = Instant::now();
    let mut verdicts = checker::check_all(&operations, final_state, SearchLimits::default());
    if let Some(sink_state) = sink_state {
        verdicts.push(checker::sink::check(sink_state));
    }
    let checker_seconds = started.elapsed().as_secs_f64();
    if run.wall_s == 0.0 {
        run.wall_s = wall.elapsed().as_secs_f64();
    }
    std::fs::write(dir.join("run.json"), serde_json::to_vec_pretty(run)?)?;
    let summary = report::summarize(&operations, &verdicts, checker_seconds, run.clone());
    report::write_all(dir, &summary, &operations)?;
    Ok(summary)
}

/// `martelo-jepsen check DIR`: re-checks a run directory and rewrites its summary and report.
pub fn check_dir(dir: &Path) -> anyhow::Result<Summary> {
    let records = read_records(dir)?;
    let path = dir.join("final.json");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let final_state = FinalState::read(file, FINAL_STATE_BYTES_MAX)?;
    let mut run: RunInfo = match std::fs::read(dir.join("run.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes)?,
        Err(_) => RunInfo::default(),
    };
    // A run with a sink wrote sink.json; one that should have and did not is not a pass.
    let sink_path = dir.join("sink.json");
    let sink_state = if sink_path.exists() {
        Some(SinkState::read(&sink_path, SINK_STATE_BYTES_MAX)?)
    } else if !run.sink.is_empty() {
        Some(SinkState {
            database: run.sink.clone(),
            unchecked: Some("the run had a sink but wrote no sink.json".to_owned()),
            ..SinkState::default()
        })
    } else {
        None
    };
    let wall = Instant::now();
    check_records(
        dir,
        &records,
        &final_state,
        sink_state.as_ref(),
        &mut run,
        wall,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{GeneratorConfig, generate};
    use crate::history::HistoryWriter;

    fn write_run(dir: &Path, seed: u64) -> FinalState {
        let generated = generate(&GeneratorConfig {
            seed,
            operations: 400,
            ..GeneratorConfig::default()
        });
        let file = std::fs::File::create(dir.join("history.jsonl")).expect("history");
        let mut writer = HistoryWriter::new(file, ReadLimits::default());
        for record in generated.records {
            writer.append(record).expect("fits");
        }
        std::fs::write(
            dir.join("final.json"),
            serde_json::to_vec(&generated.final_state).expect("serializes"),
        )
        .expect("final.json");
        generated.final_state
    }

    #[test]
    fn check_dir_passes_a_correct_run_and_writes_summary_and_report() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_run(dir.path(), 7);
        let summary = check_dir(dir.path()).expect("checks");
        assert!(summary.valid, "{summary:?}");
        assert_eq!(summary.verdicts.len(), 5);
        let html = std::fs::read_to_string(dir.path().join("report.html")).expect("report");
        assert_eq!(html.matches("<svg").count(), 2);
        let text = std::fs::read_to_string(dir.path().join("summary.txt")).expect("text");
        assert!(text.starts_with("martelo-jepsen: VALID"), "{text}");
        assert!(dir.path().join("summary.json").exists());
    }

    #[test]
    fn check_dir_judges_the_sink_and_a_missing_sink_json_is_not_a_pass() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_run(dir.path(), 9);
        let run = RunInfo {
            sink: "private".into(),
            ..RunInfo::default()
        };
        std::fs::write(
            dir.path().join("run.json"),
            serde_json::to_vec(&run).expect("serializes"),
        )
        .expect("run.json");
        let sink_verdict = |summary: &Summary| {
            summary
                .verdicts
                .iter()
                .find(|verdict| verdict.checker == "sink")
                .map(|verdict| verdict.validity.clone())
        };
        let summary = check_dir(dir.path()).expect("checks");
        assert_eq!(sink_verdict(&summary).as_deref(), Some("invalid"));
        assert!(!summary.valid);
        let mut state = SinkState {
            database: "private".into(),
            rows_compared: 12,
            ..SinkState::default()
        };
        let sink_json = dir.path().join("sink.json");
        std::fs::write(&sink_json, serde_json::to_vec(&state).expect("serializes")).expect("w");
        let summary = check_dir(dir.path()).expect("checks");
        assert_eq!(sink_verdict(&summary).as_deref(), Some("valid"));
        assert!(summary.valid, "{summary:?}");
        state.violations = vec!["Missing: auction 3: bid 0 missing in Postgres".into()];
        std::fs::write(&sink_json, serde_json::to_vec(&state).expect("serializes")).expect("w");
        assert!(!check_dir(dir.path()).expect("checks").valid);
    }

    #[test]
    fn check_dir_fails_a_run_whose_replica_diverged() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut final_state = write_run(dir.path(), 8);
        let replica = final_state.replicas.values_mut().next().expect("replicas");
        replica.digest = "diverged".into();
        std::fs::write(
            dir.path().join("final.json"),
            serde_json::to_vec(&final_state).expect("serializes"),
        )
        .expect("final.json");
        let summary = check_dir(dir.path()).expect("checks");
        assert!(!summary.valid);
        let digest = summary
            .verdicts
            .iter()
            .find(|verdict| verdict.checker == "digest")
            .expect("digest verdict");
        assert_eq!(digest.validity, "invalid");
    }
}
