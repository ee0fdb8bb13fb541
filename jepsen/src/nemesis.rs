//! Nemeses: faults injected on a schedule, each healed before the next one starts, and all
//! healed before the final reads.
//!
//! | kind         | fault                                                        | heal          |
//! |--------------|--------------------------------------------------------------|---------------|
//! | `kill`       | SIGKILL a random node or a group leader                      | restart it    |
//! | `pause`      | SIGSTOP a random node or a group leader                      | SIGCONT       |
//! | `partition`  | majority/minority, isolated leader, bridge or ring           | heal links    |
//! | `clock`      | skew one or two nodes, or strobe one (offset file)           | offset 0      |
//! | `membership` | remove a follower from one group                             | add it back   |
//! | `transfer`   | move a group's leadership to another voter                   | nothing to do |
//! | `postgres`   | stop (fast shutdown) or kill -9 the run's private Postgres   | start it, 1–5 s later |
//!
//! Partitions cut directed peer links through [`Links`]: the TCP proxies of [`crate::proxy`]
//! (default), or iptables DROP rules in a private network namespace ([`crate::netns`],
//! `--net iptables`, root only), where each partition is also probed with a TCP connect.
//!
//! The `postgres` fault needs `--sink private` (the run's own Postgres, [`crate::sink`]); it
//! is in `all` only then. Its heal comes after its own random 1–5 s, not the fault duration.
//!
//! Clock faults write the node's `--test-clock-offset-file`, which the node re-reads about every
//! 50 ms. When the binary has no such flag they fall back to restarting the node with
//! `--test-clock-offset-ms` (and restarting it again without, to heal).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use martelo_client::admin::Admin;
use martelo_devkit::LocalCluster;
use martelo_engine::GroupId;
use martelo_types::NodeId;
use serde::{Deserialize, Serialize};

use crate::collect;
use crate::generate::Rng;
use crate::netns::{self, Links};
use crate::proxy::{cut_between, cut_except};
use crate::sink::PrivateSinkDatabase;

/// Declares a choice that is a command-line value and a snake_case JSON word (the nemesis
/// kinds and partition shapes), with one derive list for both.
macro_rules! choice_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            Serialize,
            Deserialize,
            clap::ValueEnum,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($body)* }
    };
}

choice_enum! {
pub enum NemesisKind {
    Kill,
    Pause,
    Partition,
    Clock,
    Membership,
    Transfer,
    /// kill -9 of a `martelo gateway` (`--via gateway`); injected by
    /// [`crate::gateway_faults`], not by [`Nemesis`], and not part of `all`.
    Gateway,
    /// Restart of the run's private Postgres (`--sink private`): fast shutdown or kill -9,
    /// down for 1 to 5 s, started again. Part of `all` only with `--sink private`.
    Postgres,
}
}

impl NemesisKind {
    pub const ALL: [NemesisKind; 6] = [
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Partition,
        NemesisKind::Clock,
        NemesisKind::Membership,
        NemesisKind::Transfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NemesisKind::Kill => "kill",
            NemesisKind::Pause => "pause",
            NemesisKind::Partition => "partition",
            NemesisKind::Clock => "clock",
            NemesisKind::Membership => "membership",
            NemesisKind::Transfer => "transfer",
            NemesisKind::Gateway => "gateway",
            NemesisKind::Postgres => "postgres",
        }
    }

    /// Parses `kill,pause,...` or `all`; `none` or an empty string is no nemesis.
    /// `private_postgres`: the run has a Postgres of its own to restart (`--sink private`),
    /// so `all` includes `postgres` and `postgres` may be named.
    pub fn parse_list(text: &str, private_postgres: bool) -> anyhow::Result<Vec<NemesisKind>> {
        let mut kinds = BTreeSet::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "all" => {
                    kinds.extend(NemesisKind::ALL);
                    if private_postgres {
                        kinds.insert(NemesisKind::Postgres);
                    }
                }
                "none" => {}
                "postgres" => {
                    anyhow::ensure!(
                        private_postgres,
                        "the postgres nemesis restarts the run's own Postgres: it needs \
                         --sink private"
                    );
                    kinds.insert(NemesisKind::Postgres);
                }
                other => {
                    let kind = NemesisKind::ALL
                        .into_iter()
                        .find(|kind| kind.as_str() == other)
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "unknown nemesis {other:?}; expected kill, pause, partition, \
                                 clock, membership, transfer, postgres, all or none"
                            )
                        })?;
                    kinds.insert(kind);
                }
            }
        }
        Ok(kinds.into_iter().collect())
    }
}

choice_enum! {
/// Partition shapes, picked at random when partitions are on (or forced).
pub enum PartitionShape {
    MajorityMinority,
    IsolatedLeader,
    Bridge,
    Ring,
}
}

/// One fault in the timeline: when it started and was healed (ns since the run's start, the
/// history's clock).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NemesisEvent {
    pub kind: NemesisKind,
    pub detail: String,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How the nemesis reaches the cluster.
#[derive(Debug)]
pub struct Nemesis {
    pub cluster: Arc<LocalCluster>,
    /// Cuts peer links: proxies, or iptables rules in a private namespace.
    pub links: Arc<Links>,
    pub nodes: BTreeMap<u64, String>,
    pub shard_count: u32,
    /// Each node's offset file, when the binary reads one.
    pub clock_files: Option<BTreeMap<u64, PathBuf>>,
    /// Each node's arguments without clock offsets (dial overrides, offset file).
    pub base_args: BTreeMap<u64, Vec<String>>,
    pub admin: Admin,
    pub timeline: Mutex<Vec<NemesisEvent>>,
    /// Partition shapes to choose from (all when empty).
    pub shapes: Vec<PartitionShape>,
    /// Membership changes not undone yet: (group, removed node, spare node added first).
    removed: Mutex<BTreeSet<(u64, u64, Option<u64>)>>,
    /// Nodes restarted with a `--test-clock-offset-ms` (fallback clock nemesis).
    offset_restarts: Mutex<BTreeSet<u64>>,
    /// The run's private Postgres, for the `postgres` fault ([`Nemesis::with_postgres`]).
    postgres: Option<Arc<PrivateSinkDatabase>>,
}

/// What must be undone.
#[derive(Debug)]
enum Heal {
    Restart(u64),
    Resume(u64),
    Links,
    Clock(Vec<u64>, Option<Arc<AtomicBool>>),
    /// Add the node back to the group, then remove the spare added for the change.
    ReAdd(u64, u64, Option<u64>),
    /// Start the private Postgres again, after it was down for this long.
    StartPostgres(Duration),
    Nothing,
}

impl Heal {
    /// How long the fault lasts before this heal: the run's fault duration, except for a
    /// Postgres restart, which draws its own downtime.
    fn after(&self, fault_duration: Duration) -> Duration {
        match self {
            Heal::StartPostgres(down) => *down,
            _ => fault_duration,
        }
    }
}

impl Nemesis {
    pub fn new(
        cluster: Arc<LocalCluster>,
        links: Arc<Links>,
        shard_count: u32,
        clock_files: Option<BTreeMap<u64, PathBuf>>,
        base_args: BTreeMap<u64, Vec<String>>,
        shapes: Vec<PartitionShape>,
    ) -> Nemesis {
        let nodes = cluster
            .nodes()
            .into_iter()
            .map(|info| (info.id.get(), info.address))
            .collect();
        Nemesis {
            cluster,
            links,
            nodes,
            shard_count,
            clock_files,
            base_args,
            admin: Admin::default(),
            timeline: Mutex::new(Vec::new()),
            shapes,
            removed: Mutex::new(BTreeSet::new()),
            offset_restarts: Mutex::new(BTreeSet::new()),
            postgres: None,
        }
    }

    /// Gives the nemesis the run's private Postgres to restart (`postgres` faults).
    pub fn with_postgres(mut self, postgres: Arc<PrivateSinkDatabase>) -> Nemesis {
        self.postgres = Some(postgres);
        self
    }

    fn node_ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    fn seeds(&self) -> Vec<String> {
        self.nodes.values().cloned().collect()
    }

    pub fn timeline(&self) -> Vec<NemesisEvent> {
        self.timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Leaders of every group, as the answering nodes report them.
    async fn leaders(&self) -> BTreeMap<u64, u64> {
        let statuses = collect::statuses(&self.nodes, false).await;
        collect::leaders(&statuses, self.shard_count)
    }

    async fn random_leader(&self, rng: &mut Rng) -> Option<(u64, u64)> {
        let leaders: Vec<(u64, u64)> = self.leaders().await.into_iter().collect();
        if leaders.is_empty() {
            return None;
        }
        Some(leaders[rng.below(leaders.len() as u64) as usize])
    }

    async fn node_or_leader(&self, rng: &mut Rng) -> (u64, String) {
        if rng.percent(50)
            && let Some((group, leader)) = self.random_leader(rng).await
        {
            return (leader, format!("node {leader} (leader of group {group})"));
        }
        let ids = self.node_ids();
        let node = ids[rng.below(ids.len() as u64) as usize];
        (node, format!("node {node}"))
    }

    /// Runs faults until `stop`: a quiet gap, then a fault of `duration`, then its heal.
    pub async fn run(
        &self,
        kinds: &[NemesisKind],
        interval: Duration,
        duration: Duration,
        seed: u64,
        now_ns: impl Fn() -> u64,
        stop: &AtomicBool,
    ) {
        if kinds.is_empty() {
            return;
        }
        let mut rng = Rng::new(seed ^ 0x6e65_6d65);
        let quiet = interval.saturating_sub(duration);
        loop {
            if sleep_unless(quiet, stop).await {
                return;
            }
            let kind = kinds[rng.below(kinds.len() as u64) as usize];
            let start_ns = now_ns();
            let (detail, heal, error) = match self.inject(kind, &mut rng, duration).await {
                Ok((detail, heal)) => (detail, heal, None),
                Err(error) => (String::new(), Heal::Nothing, Some(error.to_string())),
            };
            let index = {
                let mut timeline = self.timeline.lock().unwrap_or_else(|e| e.into_inner());
                timeline.push(NemesisEvent {
                    kind,
                    detail,
                    start_ns,
                    end_ns: None,
                    error,
                });
                timeline.len() - 1
            };
            if !matches!(heal, Heal::Nothing) {
                let _stopped = sleep_unless(heal.after(duration), stop).await;
            }
            let healed = self.heal(heal).await;
            let mut timeline = self.timeline.lock().unwrap_or_else(|e| e.into_inner());
            let event = &mut timeline[index];
            event.end_ns = Some(now_ns());
            if let Err(error) = healed {
                let note = format!("heal: {error}");
                event.error = Some(match event.error.take() {
                    Some(before) => format!("{before}; {note}"),
                    None => note,
                });
            }
        }
    }

    async fn inject(
        &self,
        kind: NemesisKind,
        rng: &mut Rng,
        duration: Duration,
    ) -> anyhow::Result<(String, Heal)> {
        match kind {
            NemesisKind::Kill => {
                let (node, detail) = self.node_or_leader(rng).await;
                self.cluster.kill(NodeId(node))?;
                Ok((format!("kill -9 {detail}"), Heal::Restart(node)))
            }
            NemesisKind::Pause => {
                let (node, detail) = self.node_or_leader(rng).await;
                self.cluster.pause(NodeId(node))?;
                Ok((format!("SIGSTOP {detail}"), Heal::Resume(node)))
            }
            NemesisKind::Gateway => {
                anyhow::bail!("gateway faults are injected by gateway_faults, not the nemesis")
            }
            NemesisKind::Postgres => {
                let postgres = self
                    .postgres
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("the run has no private Postgres"))?;
                let down = Duration::from_millis(1_000 + rng.below(4_001));
                let kill = rng.percent(50);
                postgres.go_down(kill).await?;
                let how = if kill { "kill -9" } else { "fast shutdown" };
                Ok((
                    format!("postgres {how}, down {:.1} s", down.as_secs_f64()),
                    Heal::StartPostgres(down),
                ))
            }
            NemesisKind::Partition => self.partition(rng).await,
            NemesisKind::Clock => self.clock(rng, duration).await,
            NemesisKind::Membership => self.remove_member(rng).await,
            NemesisKind::Transfer => {
                let (group, leader) = self
                    .random_leader(rng)
                    .await
                    .ok_or_else(|| anyhow::anyhow!("no group has a leader"))?;
                let statuses = collect::statuses(&self.nodes, false).await;
                let others: Vec<u64> = collect::members(&statuses, group)
                    .into_iter()
                    .filter(|&node| node != leader)
                    .collect();
                anyhow::ensure!(!others.is_empty(), "group {group} has no other member");
                let to = others[rng.below(others.len() as u64) as usize];
                let now = self
                    .admin
                    .transfer_leader(&self.seeds(), GroupId(group), NodeId(to))
                    .await?;
                Ok((
                    format!("group {group}: leader {leader} -> {to} (now led by {now})"),
                    Heal::Nothing,
                ))
            }
        }
    }

    async fn partition(&self, rng: &mut Rng) -> anyhow::Result<(String, Heal)> {
        let shapes = if self.shapes.is_empty() {
            vec![
                PartitionShape::MajorityMinority,
                PartitionShape::IsolatedLeader,
                PartitionShape::Bridge,
                PartitionShape::Ring,
            ]
        } else {
            self.shapes.clone()
        };
        let shape = shapes[rng.below(shapes.len() as u64) as usize];
        let mut nodes = self.node_ids();
        shuffle(&mut nodes, rng);
        let all = self.node_ids();
        let (cut, detail) = match shape {
            PartitionShape::MajorityMinority => {
                let minority = nodes[..nodes.len() / 2].to_vec();
                let majority = nodes[nodes.len() / 2..].to_vec();
                let detail = format!("majority {majority:?} | minority {minority:?}");
                (cut_between(&all, &[majority, minority]), detail)
            }
            PartitionShape::IsolatedLeader => {
                let (group, leader) = self
                    .random_leader(rng)
                    .await
                    .ok_or_else(|| anyhow::anyhow!("no group has a leader"))?;
                let rest: Vec<u64> = all.iter().copied().filter(|&n| n != leader).collect();
                let detail = format!("isolated leader {leader} of group {group} | {rest:?}");
                (cut_between(&all, &[vec![leader], rest]), detail)
            }
            PartitionShape::Bridge => {
                let bridge = nodes[0];
                let rest = &nodes[1..];
                let (left, right) = rest.split_at(rest.len() / 2);
                let mut allowed = Vec::new();
                for side in [left, right] {
                    for &a in side {
                        allowed.push((a, bridge));
                        for &b in side {
                            allowed.push((a, b));
                        }
                    }
                }
                let detail = format!("bridge {bridge} between {left:?} and {right:?}");
                (cut_except(&all, &allowed), detail)
            }
            PartitionShape::Ring => {
                let allowed: Vec<(u64, u64)> = (0..nodes.len())
                    .map(|i| (nodes[i], nodes[(i + 1) % nodes.len()]))
                    .collect();
                let detail = format!("ring {nodes:?}");
                (cut_except(&all, &allowed), detail)
            }
        };
        self.links.set_blocked(&cut)?;
        let detail = match &*self.links {
            Links::Iptables(_) => format!("{detail}; {}", self.check_cut(&cut).await),
            Links::Proxy(_) => detail,
        };
        Ok((detail, Heal::Links))
    }

    /// Probes one cut link and one kept link with a TCP connect from the dialing node's
    /// address (iptables mode): the cut one must time out, the kept one connect.
    async fn check_cut(&self, cut: &BTreeSet<(u64, u64)>) -> String {
        let mut checks = Vec::new();
        if let Some(&(from, to)) = cut.iter().next() {
            let reached = netns::can_connect(from, &self.nodes[&to], Duration::from_millis(500));
            checks.push(match reached.await {
                Ok(false) => format!("{from}->{to} dropped"),
                Ok(true) => format!("{from}->{to} NOT dropped"),
                Err(error) => format!("{from}->{to} unchecked ({error})"),
            });
        }
        let ids = self.node_ids();
        let kept = ids
            .iter()
            .flat_map(|&a| ids.iter().map(move |&b| (a, b)))
            .find(|&(a, b)| a != b && !cut.contains(&(a, b)));
        if let Some((from, to)) = kept {
            let reached = netns::can_connect(from, &self.nodes[&to], Duration::from_secs(2));
            checks.push(match reached.await {
                Ok(true) => format!("{from}->{to} open"),
                Ok(false) => format!("{from}->{to} NOT open"),
                Err(error) => format!("{from}->{to} unchecked ({error})"),
            });
        }
        format!("checked: {}", checks.join(", "))
    }

    async fn clock(&self, rng: &mut Rng, duration: Duration) -> anyhow::Result<(String, Heal)> {
        let mut nodes = self.node_ids();
        shuffle(&mut nodes, rng);
        let strobe = rng.percent(50);
        let offset = i64::try_from(200 + rng.below(2_800)).unwrap_or(1_000)
            * if rng.percent(50) { 1 } else { -1 };
        let Some(files) = &self.clock_files else {
            // Fallback: restart one node with a fixed offset (no strobe without the file).
            let node = nodes[0];
            let mut args = self.base_args.get(&node).cloned().unwrap_or_default();
            args.extend(["--test-clock-offset-ms".to_owned(), offset.to_string()]);
            self.cluster.set_node_args(NodeId(node), args)?;
            self.cluster.kill(NodeId(node))?;
            self.offset_restarts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(node);
            self.cluster.restart(NodeId(node)).await?;
            return Ok((
                format!("clock skew {offset:+} ms on node {node} (restart with offset)"),
                Heal::Clock(vec![node], None),
            ));
        };
        if strobe {
            let node = nodes[0];
            let path = files[&node].clone();
            let running = Arc::new(AtomicBool::new(true));
            let flag = Arc::clone(&running);
            let period = Duration::from_millis(100 + rng.below(200));
            tokio::spawn(async move {
                let mut high = true;
                let until = tokio::time::Instant::now() + duration * 2;
                while flag.load(Ordering::SeqCst) && tokio::time::Instant::now() < until {
                    let value = if high { offset } else { -offset };
                    let _ = std::fs::write(&path, value.to_string());
                    high = !high;
                    tokio::time::sleep(period).await;
                }
            });
            Ok((
                format!(
                    "clock strobe ±{} ms every {period:?} on node {node}",
                    offset.abs()
                ),
                Heal::Clock(vec![node], Some(running)),
            ))
        } else {
            let count = if nodes.len() >= 3 && rng.percent(50) {
                2
            } else {
                1
            };
            let mut detail = Vec::new();
            for (position, &node) in nodes.iter().take(count).enumerate() {
                let value = if position == 0 { offset } else { -offset };
                std::fs::write(&files[&node], value.to_string())?;
                detail.push(format!("node {node} {value:+} ms"));
            }
            Ok((
                format!("clock skew {}", detail.join(", ")),
                Heal::Clock(nodes[..count].to_vec(), None),
            ))
        }
    }

    /// Removes a follower from one group, the way an operator would: when some node holds no
    /// replica of the group, it is added first (learner, catch-up, voter) so the group keeps
    /// its size; otherwise (every node is a member) the follower is removed with `force`,
    /// leaving the group one failure from unavailability until the heal adds it back.
    async fn remove_member(&self, rng: &mut Rng) -> anyhow::Result<(String, Heal)> {
        let (group, leader) = self
            .random_leader(rng)
            .await
            .ok_or_else(|| anyhow::anyhow!("no group has a leader"))?;
        let statuses = collect::statuses(&self.nodes, false).await;
        let members = collect::members(&statuses, group);
        let followers: Vec<u64> = members
            .iter()
            .copied()
            .filter(|&node| node != leader)
            .collect();
        anyhow::ensure!(followers.len() >= 2, "group {group} has too few followers");
        let node = followers[rng.below(followers.len() as u64) as usize];
        let spares: Vec<u64> = self
            .node_ids()
            .into_iter()
            .filter(|id| !members.contains(id))
            .collect();
        let spare = (!spares.is_empty()).then(|| spares[rng.below(spares.len() as u64) as usize]);
        let mut detail = String::new();
        if let Some(spare) = spare {
            self.add_to_group(group, spare).await?;
            detail = format!("added node {spare} to group {group}, then ");
        }
        self.removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((group, node, spare));
        let removed = self
            .admin
            .remove_node(
                &self.seeds(),
                NodeId(node),
                Some(vec![GroupId(group)]),
                spare.is_none(),
            )
            .await;
        let failure = match removed {
            Ok(report) if report.all_ok() => None,
            Ok(report) => Some(format!("{report:?}")),
            Err(error) => Some(error.to_string()),
        };
        if let Some(failure) = failure {
            // Undo the spare at once rather than leave the group larger until the end.
            let undone = self.re_add(group, node, spare).await;
            anyhow::bail!("removing node {node} from group {group}: {failure} (undo: {undone:?})");
        }
        let force = if spare.is_none() { " (forced)" } else { "" };
        detail.push_str(&format!("removed node {node} from group {group}{force}"));
        Ok((detail, Heal::ReAdd(group, node, spare)))
    }

    async fn add_to_group(&self, group: u64, node: u64) -> anyhow::Result<()> {
        let info = self
            .cluster
            .node(NodeId(node))
            .ok_or_else(|| anyhow::anyhow!("no node {node}"))?;
        let report = self
            .admin
            .add_node(
                &self.seeds(),
                info.node_address(),
                Some(vec![GroupId(group)]),
                true,
            )
            .await?;
        if !report.all_ok() {
            anyhow::bail!("adding node {node} to group {group}: {report:?}");
        }
        Ok(())
    }

    async fn re_add(&self, group: u64, node: u64, spare: Option<u64>) -> anyhow::Result<()> {
        let statuses = collect::statuses(&self.nodes, false).await;
        let members = collect::members(&statuses, group);
        if !members.contains(&node) {
            self.add_to_group(group, node).await?;
        }
        if let Some(spare) = spare
            && members.contains(&spare)
        {
            let report = self
                .admin
                .remove_node(
                    &self.seeds(),
                    NodeId(spare),
                    Some(vec![GroupId(group)]),
                    false,
                )
                .await?;
            if !report.all_ok() {
                anyhow::bail!("removing spare node {spare} from group {group}: {report:?}");
            }
        }
        self.removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(group, node, spare));
        Ok(())
    }

    async fn heal(&self, heal: Heal) -> anyhow::Result<()> {
        match heal {
            Heal::Restart(node) => {
                let node = NodeId(node);
                if !self.cluster.is_running(node) {
                    self.cluster.restart(node).await?;
                }
            }
            Heal::Resume(node) => {
                let node = NodeId(node);
                if self.cluster.is_paused(node) {
                    self.cluster.resume(node)?;
                }
            }
            Heal::Links => self.links.heal()?,
            Heal::Clock(nodes, strobe) => {
                if let Some(running) = strobe {
                    running.store(false, Ordering::SeqCst);
                    // Let the strobe task see the flag before the final write.
                    tokio::time::sleep(Duration::from_millis(350)).await;
                }
                self.reset_clocks(&nodes).await?;
            }
            Heal::ReAdd(group, node, spare) => self.re_add(group, node, spare).await?,
            Heal::StartPostgres(_) => {
                if let Some(postgres) = &self.postgres {
                    postgres.come_back().await?;
                }
            }
            Heal::Nothing => {}
        }
        Ok(())
    }

    async fn reset_clocks(&self, nodes: &[u64]) -> anyhow::Result<()> {
        if let Some(files) = &self.clock_files {
            for node in nodes {
                std::fs::write(&files[node], "0")?;
            }
        }
        let restarted: Vec<u64> = {
            let mut set = self
                .offset_restarts
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let restarted = nodes.iter().copied().filter(|n| set.contains(n)).collect();
            for node in &restarted {
                set.remove(node);
            }
            restarted
        };
        for node in restarted {
            let args = self.base_args.get(&node).cloned().unwrap_or_default();
            let node = NodeId(node);
            self.cluster.set_node_args(node, args)?;
            let _ = self.cluster.kill(node);
            self.cluster.restart(node).await?;
        }
        Ok(())
    }

    /// Heals everything that may still be broken: links, paused and dead nodes, clocks,
    /// removed members. Returns what it could not heal.
    pub async fn heal_all(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if let Err(error) = self.links.heal() {
            errors.push(format!("links: {error}"));
        }
        let ids = self.node_ids();
        if let Err(error) = self.reset_clocks(&ids).await {
            errors.push(format!("clocks: {error}"));
        }
        for node in ids.iter().copied().map(NodeId) {
            if self.cluster.is_paused(node)
                && let Err(error) = self.cluster.resume(node)
            {
                errors.push(format!("resume node {node}: {error}"));
            }
            if !self.cluster.is_running(node)
                && let Err(error) = self.cluster.restart(node).await
            {
                errors.push(format!("restart node {node}: {error}"));
            }
        }
        let removed: Vec<(u64, u64, Option<u64>)> = self
            .removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        for (group, node, spare) in removed {
            if let Err(error) = self.re_add(group, node, spare).await {
                errors.push(format!("re-add node {node} to group {group}: {error}"));
            }
        }
        if let Some(postgres) = &self.postgres
            && let Err(error) = postgres.come_back().await
        {
            errors.push(format!("postgres: {error}"));
        }
        errors
    }
}

/// Sleeps `duration` in short steps; true when `stop` was set meanwhile.
async fn sleep_unless(duration: Duration, stop: &AtomicBool) -> bool {
    let until = tokio::time::Instant::now() + duration;
    while tokio::time::Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        let step = until
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_millis(100));
        tokio::time::sleep(step).await;
    }
    stop.load(Ordering::SeqCst)
}

fn shuffle(items: &mut [u64], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nemesis_lists_parse_with_all_and_none() {
        assert_eq!(
            NemesisKind::parse_list("kill, partition", false).expect("valid"),
            vec![NemesisKind::Kill, NemesisKind::Partition]
        );
        assert_eq!(
            NemesisKind::parse_list("all", false).expect("valid").len(),
            6
        );
        assert!(
            NemesisKind::parse_list("none", false)
                .expect("valid")
                .is_empty()
        );
        assert!(NemesisKind::parse_list("flood", false).is_err());
    }

    #[test]
    fn postgres_is_in_all_only_with_a_private_postgres() {
        let all = NemesisKind::parse_list("all", true).expect("valid");
        assert_eq!(all.len(), 7);
        assert!(all.contains(&NemesisKind::Postgres));
        assert!(
            !NemesisKind::parse_list("all", false)
                .expect("valid")
                .contains(&NemesisKind::Postgres)
        );
        assert_eq!(
            NemesisKind::parse_list("postgres,kill", true).expect("valid"),
            vec![NemesisKind::Kill, NemesisKind::Postgres]
        );
        let refused = NemesisKind::parse_list("postgres", false).expect_err("no private db");
        assert!(refused.to_string().contains("--sink private"), "{refused}");
    }

    #[test]
    fn a_postgres_restart_lasts_its_own_downtime() {
        let fault = Duration::from_secs(6);
        let down = Duration::from_millis(1_500);
        assert_eq!(Heal::StartPostgres(down).after(fault), down);
        assert_eq!(Heal::Links.after(fault), fault);
    }
}
