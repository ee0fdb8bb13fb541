//! The node's groups and what they share: the store, the peer connections, the wall clock,
//! and `node.json`, the small file that says which groups live in the data dir.

use openraft::async_runtime::WatchReceiver as _;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use martelo_engine::{GroupId, Micros, Timestamp};
use martelo_raft_store::{EventLog, RaftStore, SnapshotReceiver, StateReader};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::Raft;
use super::balance::{self, Follower, GroupView};
use super::config::NodeConfig;
use super::network::{NetworkFactory, PeerChannels};
use super::propose::Proposer;
use super::transport::GroupLookup;

/// What `node.json` records: which node this data dir belongs to, the cluster's shard count
/// once known, and the groups to reopen at start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    pub node_id: u64,
    pub shard_count: Option<u32>,
    pub groups: BTreeSet<u64>,
    /// Voters per group, as `cluster init` chose (absent in data dirs from before it was
    /// recorded). `martelo status` compares each group's voters against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u32>,
}

const META_FILE: &str = "node.json";

impl NodeMeta {
    fn load(dir: &Path) -> anyhow::Result<Option<NodeMeta>> {
        let path = dir.join(META_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{} is corrupt", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Replaces the file atomically and durably: write, fsync, rename, fsync the directory.
    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(META_FILE);
        let temporary = dir.join(format!("{META_FILE}.tmp"));
        let mut file = std::fs::File::create(&temporary)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}

/// The node's wall clock, shifted by the test-only offset (fixed by `--clock-offset-ms`, or
/// changed while the node runs through `--clock-offset-file`). The only clock the node reads
/// for command timestamps; the engine never reads one.
#[derive(Clone, Debug)]
pub struct WallClock {
    offset_us: Arc<std::sync::atomic::AtomicI64>,
}

impl WallClock {
    pub fn new(offset_ms: i64) -> WallClock {
        WallClock {
            offset_us: Arc::new(std::sync::atomic::AtomicI64::new(
                offset_ms.saturating_mul(1000),
            )),
        }
    }

    /// Shifts the clock to `offset_ms` from now on (testing only).
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_us
            .store(offset_ms.saturating_mul(1000), Ordering::Relaxed);
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_us.load(Ordering::Relaxed) / 1000
    }

    pub fn now(&self) -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_micros() as i64);
        let offset_us = self.offset_us.load(Ordering::Relaxed);
        Timestamp(since_epoch.saturating_add(offset_us).max(0) as u64)
    }
}

/// Wakes a background task every period while the node runs.
#[derive(Debug)]
pub struct Ticker {
    interval: tokio::time::Interval,
    registry: std::sync::Weak<Registry>,
}

impl Ticker {
    pub fn new(registry: std::sync::Weak<Registry>, period: std::time::Duration) -> Ticker {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticker { interval, registry }
    }

    /// The registry at the next tick, or `None` once the node is stopping: the task ends.
    pub async fn next(&mut self) -> Option<Arc<Registry>> {
        self.interval.tick().await;
        let registry = self.registry.upgrade()?;
        (!registry.shutting_down.load(Ordering::Acquire)).then_some(registry)
    }
}

/// One group's replica on this node.
#[derive(Debug)]
pub struct Group {
    pub id: GroupId,
    pub raft: Raft,
    pub reader: StateReader,
    pub events: EventLog,
    pub proposer: Proposer,
}

impl Group {
    /// The leader this replica knows of, with its address, and the current term.
    pub fn leader_hint(&self) -> martelo_proto::NotLeader {
        super::propose::leader_hint(self.id, &self.raft)
    }

    /// The voters and learners of the membership this replica holds.
    pub fn members(&self) -> (BTreeSet<u64>, BTreeSet<u64>) {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        (
            membership.voter_ids().collect(),
            membership.learner_ids().collect(),
        )
    }

    /// On a leader: its last log index, and how it sees every other voter except those in
    /// `excluded` (how much of the log each holds, when each last acknowledged). A follower
    /// knows no replication progress, so its list is empty.
    fn followers(&self, excluded: &BTreeSet<u64>) -> (Option<u64>, Vec<Follower>) {
        use openraft::Instant as _;
        let metrics = self.raft.metrics().borrow_watched().clone();
        let matched = metrics.replication.clone().unwrap_or_default();
        let acked = metrics.heartbeat.clone().unwrap_or_default();
        let followers = metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| *id != metrics.id && !excluded.contains(id))
            .map(|node_id| Follower {
                node_id,
                matched_index: matched
                    .get(&node_id)
                    .and_then(|log_id| log_id.as_ref().map(|log_id| log_id.index())),
                ack_age: acked
                    .get(&node_id)
                    .and_then(|at| at.as_ref().map(|at| at.elapsed())),
            })
            .collect();
        (metrics.last_log_index, followers)
    }

    /// The voter that should take over if this leader steps away (see
    /// [`balance::handoff_target`]); `None` on a follower or when no other voter is reachable.
    pub fn handoff_target(&self, excluded: &BTreeSet<u64>) -> Option<u64> {
        let (last_log_index, followers) = self.followers(excluded);
        balance::handoff_target(last_log_index, &followers, balance::ACK_WITHIN)
    }

    /// What the leader balancer needs to know of this group. Healthy voters are those that
    /// acknowledged lately and hold the whole log, less `excluded`.
    pub fn balance_view(&self, excluded: &BTreeSet<u64>) -> GroupView {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let (last_log_index, followers) = self.followers(excluded);
        GroupView {
            group: self.id.0,
            leader: metrics.current_leader,
            voters: metrics.membership_config.membership().voter_ids().collect(),
            healthy: followers
                .iter()
                .filter(|follower| {
                    follower.reachable(balance::ACK_WITHIN) && follower.caught_up(last_log_index)
                })
                .map(|follower| follower.node_id)
                .collect(),
        }
    }

    /// Asks voter `to` to take over leadership of this group, and waits up to `wait` until
    /// this replica knows another node leads. Returns that leader, or `None` if this node is
    /// not the leader, the group's Raft has stopped, or nobody took over in time (then the
    /// group elects a leader as after any leader loss).
    pub async fn transfer_leadership(&self, to: u64, wait: Duration) -> Option<u64> {
        let me = self.raft.metrics().borrow_watched().id;
        if to == me || !self.raft.is_leader() {
            return None;
        }
        let mut metrics = self.raft.metrics();
        self.raft.trigger().transfer_leader(to).await.ok()?;
        tokio::time::timeout(wait, async {
            loop {
                let leader = metrics.borrow_watched().current_leader;
                if let Some(leader) = leader.filter(|leader| *leader != me) {
                    return Some(leader);
                }
                if metrics.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

/// Everything the node's services share.
#[derive(Debug)]
pub struct Registry {
    pub config: NodeConfig,
    pub store: RaftStore,
    pub peers: PeerChannels,
    pub raft_config: Arc<openraft::Config>,
    pub clock: WallClock,
    /// False while this node's clock is off from its peers by more than the bound (I7).
    pub clock_ok: AtomicBool,
    /// Peers whose clocks the skew guard last found off from this node's by more than the
    /// bound: they must not be handed leadership.
    clock_disagreeing: Mutex<BTreeSet<u64>>,
    pub shutting_down: AtomicBool,
    meta: Mutex<NodeMeta>,
    groups: RwLock<BTreeMap<GroupId, Arc<Group>>>,
    /// Serialises group creation, which awaits openraft.
    open_lock: tokio::sync::Mutex<()>,
    data_dir: PathBuf,
}

impl Registry {
    /// Opens the node's store and restarts every group recorded in its data dir.
    pub async fn open(config: NodeConfig) -> anyhow::Result<Arc<Registry>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
        let data_dir = config.data_dir.clone();
        let meta = match NodeMeta::load(&data_dir)? {
            Some(meta) if meta.node_id != config.id => bail!(
                "the data dir {} belongs to node {}, not {}: use that id or another dir",
                data_dir.display(),
                meta.node_id,
                config.id
            ),
            Some(meta) => meta,
            None => {
                let meta = NodeMeta {
                    node_id: config.id,
                    ..NodeMeta::default()
                };
                meta.save(&data_dir)?;
                meta
            }
        };
        let store = RaftStore::open(
            data_dir.join("raft"),
            martelo_raft_store::StoreConfig::default(),
        )
        .context("cannot open the node's RocksDB")?;
        let raft_config = Arc::new(
            raft_config()
                .validate()
                .context("invalid built-in openraft config")?,
        );
        let registry = Arc::new(Registry {
            peers: PeerChannels::with_source_address(
                config.id,
                config.dial_overrides.clone(),
                config.source_address,
            ),
            clock: WallClock::new(config.clock_offset_ms),
            clock_ok: AtomicBool::new(true),
            clock_disagreeing: Mutex::new(BTreeSet::new()),
            shutting_down: AtomicBool::new(false),
            groups: RwLock::new(BTreeMap::new()),
            open_lock: tokio::sync::Mutex::new(()),
            meta: Mutex::new(meta.clone()),
            raft_config,
            store,
            config,
            data_dir,
        });
        for group in meta.groups {
            registry.open_group(GroupId(group), None).await?;
        }
        Ok(registry)
    }

    pub fn node_id(&self) -> u64 {
        self.config.id
    }

    pub fn clock_ok(&self) -> bool {
        self.clock_ok.load(Ordering::Acquire)
    }

    /// Records which peers' clocks disagree with this node's (from the skew guard).
    pub fn set_clock_disagreeing(&self, peers: BTreeSet<u64>) {
        if let Ok(mut disagreeing) = self.clock_disagreeing.lock() {
            *disagreeing = peers;
        }
    }

    /// Nodes that must not be handed leadership: this node, and peers whose clocks disagree.
    pub fn handoff_excluded(&self) -> BTreeSet<u64> {
        let mut excluded = self
            .clock_disagreeing
            .lock()
            .map(|disagreeing| disagreeing.clone())
            .unwrap_or_default();
        excluded.insert(self.config.id);
        excluded
    }

    pub fn meta(&self) -> NodeMeta {
        self.meta
            .lock()
            .map(|meta| meta.clone())
            .unwrap_or_default()
    }

    pub fn shard_count(&self) -> Option<u32> {
        self.meta().shard_count
    }

    /// Records the cluster's shard count, refusing a different one.
    pub fn record_shard_count(&self, shard_count: u32) -> anyhow::Result<()> {
        let mut meta = self.meta.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        match meta.shard_count {
            Some(known) if known != shard_count => {
                bail!("this node belongs to a cluster of {known} shards, not {shard_count}")
            }
            Some(_) => Ok(()),
            None => {
                meta.shard_count = Some(shard_count);
                meta.save(&self.data_dir)
            }
        }
    }

    pub fn replication_factor(&self) -> Option<u32> {
        self.meta().replication_factor
    }

    /// Records the cluster's replication factor (voters per group); 0 changes nothing.
    pub fn record_replication_factor(&self, replication_factor: u32) -> anyhow::Result<()> {
        let mut meta = self.meta.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        if replication_factor == 0 || meta.replication_factor == Some(replication_factor) {
            return Ok(());
        }
        meta.replication_factor = Some(replication_factor);
        meta.save(&self.data_dir)
    }

    pub fn group(&self, group: GroupId) -> Option<Arc<Group>> {
        self.groups.read().ok()?.get(&group).cloned()
    }

    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .map(|groups| groups.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Opens this node's replica of `group` (once). With `voters`, initializes the group with
    /// that membership; a group that is already initialized keeps its own.
    pub async fn open_group(
        self: &Arc<Self>,
        group: GroupId,
        voters: Option<BTreeMap<u64, BasicNode>>,
    ) -> anyhow::Result<Arc<Group>> {
        let _guard = self.open_lock.lock().await;
        let opened = match self.group(group) {
            Some(opened) => opened,
            None => {
                let (log, state_machine) = self
                    .store
                    .group(group)
                    .await
                    .with_context(|| format!("cannot open {group}'s storage"))?;
                let reader = state_machine.reader();
                let events = state_machine.event_log();
                let network = NetworkFactory::new(group, self.peers.clone());
                let raft = Raft::new(
                    self.config.id,
                    Arc::clone(&self.raft_config),
                    network,
                    log,
                    state_machine,
                )
                .await
                .with_context(|| format!("cannot start {group}'s Raft"))?;
                if !self.clock_ok.load(Ordering::Acquire) {
                    raft.runtime_config().elect(false);
                }
                // Before the group serves anything, so dashboards see its series from the
                // start (as zeros) and its first election is counted.
                super::telemetry::register_group(group);
                tokio::spawn(super::telemetry::count_leader_changes(
                    group,
                    raft.server_metrics(),
                ));
                let proposer = Proposer::start(group, raft.clone(), reader.clone(), self);
                let opened = Arc::new(Group {
                    id: group,
                    raft,
                    reader,
                    events,
                    proposer,
                });
                self.groups
                    .write()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .insert(group, Arc::clone(&opened));
                let mut meta = self.meta.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                if meta.groups.insert(group.0) {
                    meta.save(&self.data_dir)?;
                }
                tracing::info!(group = group.0, "group opened");
                opened
            }
        };
        if let Some(voters) = voters
            && !opened.raft.is_initialized().await.unwrap_or(true)
        {
            match opened.raft.initialize(voters).await {
                Ok(()) => tracing::info!(group = group.0, "group initialized"),
                // Already initialized (a concurrent init, or a vote arrived first): fine.
                Err(openraft::errors::RaftError::APIError(
                    openraft::errors::InitializeError::NotAllowed(_),
                )) => {}
                Err(error) => bail!("cannot initialize {group}: {error}"),
            }
        }
        Ok(opened)
    }

    /// Every node this node knows of, by id: the members of all its groups, and itself.
    pub fn address_book(&self) -> BTreeMap<u64, String> {
        let mut book = BTreeMap::new();
        for group in self.groups() {
            let metrics = group.raft.metrics().borrow_watched().clone();
            for (id, node) in metrics.membership_config.membership().nodes() {
                book.insert(*id, node.addr.clone());
            }
        }
        book.insert(self.config.id, self.config.advertise.clone());
        book
    }

    /// The timestamp for a new command: never before the clock's reading, and the group's
    /// hybrid clock keeps it after the last applied one.
    pub fn wall_now(&self) -> Timestamp {
        self.clock.now()
    }

    /// How far this node's clock may drift from its peers.
    pub fn skew_bound(&self) -> Micros {
        Micros(self.config.max_clock_skew.as_micros() as u64)
    }
}

impl GroupLookup for Registry {
    fn node_id(&self) -> u64 {
        self.config.id
    }

    fn raft(&self, group: GroupId) -> Option<Raft> {
        self.group(group).map(|group| group.raft.clone())
    }

    fn snapshot_receiver(&self, group: GroupId) -> Option<SnapshotReceiver> {
        self.group(group)
            .map(|_| self.store.snapshot_receiver(group))
    }
}

/// openraft settings for every group.
///
/// A follower calls an election 600-800 ms after the last heartbeat, but its peers refuse to
/// vote while their leader lease (`election_timeout_max`) runs, so the first election after
/// a crash can fail and a second timeout follow: a dead leader is replaced within about
/// 2 x 800 ms, inside the 2 s the cluster promises. Heartbeats every 100 ms leave 6 missed
/// heartbeats before anyone campaigns, which rides out scheduling hiccups on a busy machine.
fn raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "martelo".into(),
        election_timeout_min: 600,
        election_timeout_max: 800,
        heartbeat_interval: 100,
        install_snapshot_timeout: 10_000,
        max_payload_entries: martelo_proto::RAFT_ENTRIES_PER_APPEND_MAX as u64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(100_000),
        max_in_snapshot_log_to_keep: 10_000,
        enable_pre_vote: Some(true),
        ..openraft::Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_meta_survives_a_save_and_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(NodeMeta::load(dir.path()).expect("load"), None);
        let meta = NodeMeta {
            node_id: 3,
            shard_count: Some(8),
            groups: BTreeSet::from([0, 2, 5]),
            replication_factor: Some(3),
        };
        meta.save(dir.path()).expect("save");
        assert_eq!(NodeMeta::load(dir.path()).expect("load"), Some(meta));
        // A node.json written before the replication factor was recorded still loads.
        std::fs::write(
            dir.path().join(META_FILE),
            br#"{"node_id": 3, "shard_count": 8, "groups": [0]}"#,
        )
        .expect("write");
        let old = NodeMeta::load(dir.path()).expect("load").expect("present");
        assert_eq!(old.replication_factor, None);
        std::fs::write(dir.path().join(META_FILE), b"{").expect("write");
        assert!(NodeMeta::load(dir.path()).is_err());
    }

    #[test]
    fn the_wall_clock_offset_shifts_readings() {
        let plain = WallClock::new(0).now();
        let ahead = WallClock::new(60_000).now();
        assert!(ahead.0 >= plain.0 + 59_000_000, "{ahead:?} vs {plain:?}");
    }
}
