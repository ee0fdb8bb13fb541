//! The node's groups and what they share: the store, the peer connections, the wall clock
//! and the clock guard, and `node.json`, the small file that says which groups live in the
//! data dir (and which removed ones still wait for their data to be deleted).
//!
//! [`Registry`] is the node's one shared object; every field is private, reached through
//! accessors. It opens and forgets groups: [`Registry::open_group`] creates a replica (or
//! wipes a removed one first, so a group added back starts clean), and, as the groups'
//! [`Host`], it records removals in `node.json` and destroys removed replicas, always under
//! the open lock so that the two never overlap. Each group's own behaviour (its timers, its
//! lifecycle) lives in `group`.

use openraft::async_runtime::WatchReceiver as _;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use anyhow::{Context, bail};
use martelo_engine::{GroupId, Micros, Timestamp};
use martelo_raft_store::{RaftStore, SnapshotReceiver};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::Raft;
use super::config::{NodeConfig, RaftSettings};
use super::group::lifecycle::{Phase, Refused, grace_left};
use super::group::{Group, GroupContext, Host};
use super::raft_transport::{GroupLookup, NetworkFactory, PeerChannels};
use crate::clock::{ClockGuard, WallClock};

/// What `node.json` records: which node this data dir belongs to, the cluster's shard count
/// once known, the groups to reopen at start, and the removed groups whose data is still
/// there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    pub node_id: u64,
    pub shard_count: Option<u32>,
    pub groups: BTreeSet<u64>,
    /// Voters per group, as `cluster init` chose (absent in data dirs from before it was
    /// recorded). `martelo status` compares each group's voters against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u32>,
    /// Groups this node was removed from, with when (Unix milliseconds): not reopened at
    /// start, and their data is deleted once the grace period has passed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub removed: BTreeMap<u64, u64>,
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
        (!registry.stopping()).then_some(registry)
    }
}

/// Everything the node's services share. Fields are private: see the accessors.
#[derive(Debug)]
pub struct Registry {
    config: NodeConfig,
    store: RaftStore,
    peers: PeerChannels,
    raft_config: Arc<openraft::Config>,
    clock: WallClock,
    /// The skew guard's verdict: false while this node's clock is off from its peers by more
    /// than the bound (I7).
    clock_guard: ClockGuard,
    /// Peers whose clocks the skew guard last found off from this node's by more than the
    /// bound: they must not be handed leadership.
    clock_disagreeing: Mutex<BTreeSet<u64>>,
    shutting_down: AtomicBool,
    meta: Mutex<NodeMeta>,
    /// Every replica this node holds, live (Open, Serving) or removed and waiting for the
    /// grace period; [`Registry::group`] and [`Registry::groups`] show only live ones.
    groups: RwLock<BTreeMap<GroupId, Arc<Group>>>,
    /// Serialises group creation and destruction, which await openraft and RocksDB.
    open_lock: tokio::sync::Mutex<()>,
    data_dir: PathBuf,
    /// This registry, for the groups' weak handle on their host.
    this: Weak<Registry>,
}

impl Registry {
    /// Opens the node's store, restarts every group recorded in its data dir, and schedules
    /// the deletion of removed groups still waiting for it.
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
        let store = RaftStore::open(data_dir.join("raft"), config.store.store_config())
            .context("cannot open the node's RocksDB")?;
        let raft_config = Arc::new(
            raft_config(&config.raft)
                .validate()
                .context("invalid openraft config from the [raft] settings")?,
        );
        let registry = Arc::new_cyclic(|this| Registry {
            peers: PeerChannels::with_source_address(
                config.id,
                config.test.dial_overrides.clone(),
                config.source_address,
            ),
            clock: WallClock::new(config.test.clock_offset_ms),
            clock_guard: ClockGuard::default(),
            clock_disagreeing: Mutex::new(BTreeSet::new()),
            shutting_down: AtomicBool::new(false),
            groups: RwLock::new(BTreeMap::new()),
            open_lock: tokio::sync::Mutex::new(()),
            meta: Mutex::new(meta.clone()),
            raft_config,
            store,
            config,
            data_dir,
            this: this.clone(),
        });
        for group in meta.groups {
            registry.open_group(GroupId(group), None).await?;
        }
        for (group, removed_at_ms) in meta.removed {
            tokio::spawn(destroy_when_due(
                Arc::downgrade(&registry),
                GroupId(group),
                removed_at_ms,
            ));
        }
        Ok(registry)
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> u64 {
        self.config.id
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Connections to the other nodes, by id.
    pub fn peers(&self) -> &PeerChannels {
        &self.peers
    }

    /// The node's one RocksDB store.
    pub fn store(&self) -> &RaftStore {
        &self.store
    }

    /// The node's wall clock (see [`WallClock`]).
    pub fn clock(&self) -> &WallClock {
        &self.clock
    }

    /// The skew guard's verdict, shared with every group's proposer.
    pub fn clock_guard(&self) -> &ClockGuard {
        &self.clock_guard
    }

    /// False while this node's clock is off from its peers by more than the bound (I7).
    pub fn clock_ok(&self) -> bool {
        self.clock_guard.may_lead()
    }

    /// Whether the node is stopping: background tasks end, the balancer stops moving groups.
    pub fn stopping(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Marks the node as stopping (the first step of a stop).
    pub fn start_stopping(&self) {
        self.shutting_down.store(true, Ordering::Release);
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

    /// A copy of what `node.json` holds.
    pub fn meta(&self) -> NodeMeta {
        self.meta
            .lock()
            .map(|meta| meta.clone())
            .unwrap_or_default()
    }

    /// The cluster's shard count, once this node knows it.
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

    /// Voters per group, as `cluster init` chose, once this node knows it.
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

    /// This node's live replica of `group` (Open or Serving); a removed one is not served.
    pub fn group(&self, group: GroupId) -> Option<Arc<Group>> {
        self.any_group(group).filter(|group| group.is_live())
    }

    /// Every live replica of this node, by group id.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .map(|groups| {
                groups
                    .values()
                    .filter(|group| group.is_live())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The replica of `group` this node holds, live or removed.
    fn any_group(&self, group: GroupId) -> Option<Arc<Group>> {
        self.groups.read().ok()?.get(&group).cloned()
    }

    /// What each group gets from the node.
    fn group_context(&self) -> GroupContext {
        GroupContext {
            node_id: self.config.id,
            peers: self.peers.clone(),
            clock: self.clock.clone(),
            clock_guard: self.clock_guard.clone(),
            removed_grace: Duration::from_millis(self.config.store.removed_group_grace_ms),
        }
    }

    /// Opens this node's replica of `group` (once). With `voters`, initializes the group with
    /// that membership; a group that is already initialized keeps its own. A replica this
    /// node was removed from (waiting for its grace period, or recorded so in `node.json`)
    /// is destroyed first: a group added back starts clean.
    pub async fn open_group(
        self: &Arc<Self>,
        group: GroupId,
        voters: Option<BTreeMap<u64, BasicNode>>,
    ) -> anyhow::Result<Arc<Group>> {
        let _guard = self.open_lock.lock().await;
        let existing = self.any_group(group);
        let opened = match existing {
            Some(live) if live.reopened() => live,
            _ => {
                if existing.is_some() || self.meta().removed.contains_key(&group.0) {
                    tracing::info!(
                        group = group.0,
                        "group opened again after this node was removed from it: its old \
                         data is deleted first"
                    );
                    self.destroy_locked(group, existing).await?;
                }
                self.create_group(group).await?
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

    /// Starts a new replica of `group` and records it in `node.json`. Under the open lock.
    async fn create_group(&self, group: GroupId) -> anyhow::Result<Arc<Group>> {
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
        if !self.clock_ok() {
            raft.runtime_config().elect(false);
        }
        // Before the group serves anything, so dashboards see its series from the start (as
        // zeros) and its first election is counted.
        super::telemetry::register_group(group);
        tokio::spawn(super::telemetry::count_leader_changes(
            group,
            raft.server_metrics(),
        ));
        let opened = Group::start(
            group,
            raft,
            reader,
            events,
            &self.group_context(),
            self.this.clone(),
        );
        self.groups
            .write()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(group, Arc::clone(&opened));
        let mut meta = self.meta.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        if meta.groups.insert(group.0) {
            meta.save(&self.data_dir)?;
        }
        tracing::info!(group = group.0, "group opened");
        Ok(opened)
    }

    /// Deletes the data of removed replica `group` and forgets it: its Raft is stopped, its
    /// records leave the store, `node.json` no longer names it. `replica` is the removed
    /// replica in the map, if there is one (none after a restart). Under the open lock.
    async fn destroy_locked(
        &self,
        group: GroupId,
        replica: Option<Arc<Group>>,
    ) -> anyhow::Result<()> {
        if let Some(replica) = &replica {
            // Stopped already when it was removed; stopping again waits for the end.
            let _ = replica.raft.shutdown().await;
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.destroy_group(group))
            .await
            .context("the task deleting a group's data failed")?
            .with_context(|| format!("cannot delete {group}'s data"))?;
        {
            let mut meta = self.meta.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let listed = meta.groups.remove(&group.0);
            if meta.removed.remove(&group.0).is_some() || listed {
                meta.save(&self.data_dir)?;
            }
        }
        if let Some(replica) = replica {
            self.groups
                .write()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .remove(&group);
            let _ = replica.destroyed();
        }
        tracing::info!(group = group.0, "group destroyed: its data is deleted");
        Ok(())
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

impl Host for Registry {
    fn stopping(&self) -> bool {
        Registry::stopping(self)
    }

    fn removed(&self, group: &Group, generation: u64, removed_at_ms: u64) -> Result<(), Refused> {
        let mut meta = self
            .meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        group.removed(generation)?;
        meta.groups.remove(&group.id.0);
        meta.removed.insert(group.id.0, removed_at_ms);
        if let Err(error) = meta.save(&self.data_dir) {
            // The replica stops all the same; a restart reopens it and finds it removed again.
            tracing::error!(
                group = group.id.0,
                error = %format!("{error:#}"),
                "cannot record the removal in node.json"
            );
        }
        Ok(())
    }

    async fn destroy(&self, group: Arc<Group>) -> anyhow::Result<()> {
        let _guard = self.open_lock.lock().await;
        let current = self.any_group(group.id);
        // Opened again meanwhile (destroyed then, and replaced): nothing of ours is left.
        if !current.is_some_and(|current| Arc::ptr_eq(&current, &group))
            || group.phase() != Phase::Removed
        {
            return Ok(());
        }
        self.destroy_locked(group.id, Some(group)).await
    }
}

/// At start: deletes the data of `group`, removed at `removed_at_ms` before the node stopped,
/// once its grace period has passed, unless the group was opened again meanwhile.
async fn destroy_when_due(registry: Weak<Registry>, group: GroupId, removed_at_ms: u64) {
    let Some(grace) = registry
        .upgrade()
        .map(|registry| Duration::from_millis(registry.config.store.removed_group_grace_ms))
    else {
        return;
    };
    tokio::time::sleep(grace_left(removed_at_ms, grace, super::group::unix_ms())).await;
    let Some(registry) = registry.upgrade() else {
        return;
    };
    let _guard = registry.open_lock.lock().await;
    if registry.stopping()
        || registry.any_group(group).is_some()
        || !registry.meta().removed.contains_key(&group.0)
    {
        return;
    }
    if let Err(error) = registry.destroy_locked(group, None).await {
        tracing::error!(
            group = group.0,
            error = %format!("{error:#}"),
            "cannot delete the removed group's data; the next start tries again"
        );
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

/// openraft settings for every group, from the node's `[raft]` settings.
///
/// With the defaults, a follower calls an election 600-800 ms after the last heartbeat, but
/// its peers refuse to vote while their leader lease (`election_timeout_max`) runs, so the
/// first election after a crash can fail and a second timeout follow: a dead leader is
/// replaced within about 2 x 800 ms, inside the 2 s the cluster promises. Heartbeats every
/// 100 ms leave 6 missed heartbeats before anyone campaigns, which rides out scheduling
/// hiccups on a busy machine. `config::check` refuses settings that break the orderings
/// these rely on. Pre-vote is always on; it is not a setting.
fn raft_config(raft: &RaftSettings) -> openraft::Config {
    openraft::Config {
        cluster_name: "martelo".into(),
        election_timeout_min: raft.election_timeout_min_ms,
        election_timeout_max: raft.election_timeout_max_ms,
        heartbeat_interval: raft.heartbeat_ms,
        install_snapshot_timeout: raft.install_snapshot_timeout_ms,
        // At most `RAFT_ENTRIES_PER_APPEND_MAX`, or a full batch of maximal commands would
        // not fit in one Raft message (checked with the settings).
        max_payload_entries: raft.entries_per_append_max,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(raft.snapshot_interval_entries),
        max_in_snapshot_log_to_keep: raft.log_kept_after_snapshot_entries,
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
            removed: BTreeMap::from([(7, 1_700_000_000_000)]),
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
        assert!(
            old.removed.is_empty(),
            "nothing removed in an old node.json"
        );
        std::fs::write(dir.path().join(META_FILE), b"{").expect("write");
        assert!(NodeMeta::load(dir.path()).is_err());
    }
}
