//! Append, apply and fdatasync benchmarks. Figures and commands: docs/PERFORMANCE.md.
//!
//! Databases live under the cargo target directory (a real disk, unlike a tmpfs /tmp), so
//! every synced append pays a real fdatasync.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use martelo_raft_store::types::Entry;
use martelo_raft_store::{LogStore, RaftStore, StoreConfig, codec};
use openraft::storage::RaftLogStorageExt;
use support::{Workload, must_apply, must_group};

fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch dir under target")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One fdatasync of a freshly written 4 KiB block: the floor under every durable commit.
fn fdatasync(c: &mut Criterion) {
    let dir = scratch_dir();
    let mut file = std::fs::File::create(dir.path().join("sync-probe")).expect("probe file");
    let block = [7u8; 4096];
    c.bench_function("fdatasync_4k", |b| {
        b.iter(|| {
            file.write_all(&block).expect("write");
            file.sync_data().expect("fdatasync");
        })
    });
}

/// A group's log plus a supply of entries with increasing indices.
struct Appender {
    log: LogStore,
    workload: Workload,
    next_index: u64,
}

impl Appender {
    fn batch(&mut self, size: u64) -> Vec<Entry> {
        let entries = self.workload.entries(1, self.next_index, size);
        self.next_index += size;
        entries
    }
}

async fn appenders(store: &RaftStore, groups: u64) -> Vec<Appender> {
    let mut out = Vec::new();
    for group in 0..groups {
        let (log, _) = must_group(store, group).await;
        out.push(Appender {
            log,
            workload: Workload::new(group, 16),
            next_index: 1,
        });
    }
    out
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let sample = Workload::new(1, 16).entries(1, 100, 64);
    let entry_bytes: usize = sample
        .iter()
        .map(|e| codec::encode("log entry", e).expect("encode").len())
        .sum::<usize>()
        / sample.len();
    println!("average encoded entry: {entry_bytes} bytes");

    let mut group = c.benchmark_group("append_synced");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(20);
    for (groups, batch) in [(1u64, 1u64), (1, 16), (1, 256), (8, 1), (8, 16), (8, 256)] {
        let dir = scratch_dir();
        let store = RaftStore::open(dir.path(), StoreConfig::default()).expect("open");
        let mut logs = rt.block_on(appenders(&store, groups));
        group.throughput(Throughput::Elements(groups * batch));
        let id = BenchmarkId::new(format!("groups_{groups}"), format!("batch_{batch}"));
        group.bench_function(id, |b| {
            b.iter_custom(|iterations| {
                // Prepare entries outside the timed part.
                let batches: Vec<Vec<Vec<Entry>>> = (0..iterations)
                    .map(|_| logs.iter_mut().map(|l| l.batch(batch)).collect())
                    .collect();
                rt.block_on(async {
                    let started = Instant::now();
                    // Every group appends concurrently, each waiting for its own durability
                    // before the next batch, as openraft does per group.
                    let mut per_group: Vec<Vec<Vec<Entry>>> = vec![Vec::new(); logs.len()];
                    for round in batches {
                        for (g, entries) in round.into_iter().enumerate() {
                            per_group[g].push(entries);
                        }
                    }
                    let tasks: Vec<_> = logs
                        .iter()
                        .zip(per_group)
                        .map(|(appender, rounds)| {
                            let mut log = appender.log.clone();
                            tokio::spawn(async move {
                                for entries in rounds {
                                    log.blocking_append(entries).await.expect("append");
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("append task");
                    }
                    started.elapsed()
                })
            })
        });
        drop(logs);
        drop(store);
    }
    group.finish();
}

fn apply(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("apply");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(20);
    // The engine alone on the same workload: the floor the store's overhead adds to.
    {
        let mut workload = Workload::new(3, 200);
        let mut state = martelo_engine::State::new();
        let mut next_index = 1;
        group.throughput(Throughput::Elements(256));
        group.bench_function(BenchmarkId::new("engine_only", "batch_256"), |b| {
            b.iter_custom(|iterations| {
                let commands: Vec<_> = (0..iterations * 256)
                    .map(|_| workload.next_command())
                    .collect();
                let started = Instant::now();
                for stamped in commands {
                    let context = martelo_engine::ApplyCtx {
                        log_index: next_index,
                        timestamp: stamped.timestamp,
                    };
                    next_index += 1;
                    std::hint::black_box(state.apply(context, &stamped.command));
                }
                started.elapsed()
            })
        });
        println!("engine_only ended at index {next_index}");
    }
    for (interval, batch) in [(16384u64, 256u64), (16384, 1), (1024, 256), (1, 256)] {
        let dir = scratch_dir();
        let config = StoreConfig {
            checkpoint_interval_entries: interval,
            ..StoreConfig::default()
        };
        let store = RaftStore::open(dir.path(), config).expect("open");
        let (_, mut state_machine) = rt.block_on(must_group(&store, 1));
        let mut workload = Workload::new(3, 200);
        let mut next_index = 1;
        group.throughput(Throughput::Elements(batch));
        let id = BenchmarkId::new(
            format!("checkpoint_every_{interval}"),
            format!("batch_{batch}"),
        );
        group.bench_function(id, |b| {
            b.iter_custom(|iterations| {
                let batches: Vec<Vec<Entry>> = (0..iterations)
                    .map(|_| {
                        let entries = workload.entries(1, next_index, batch);
                        next_index += batch;
                        entries
                    })
                    .collect();
                rt.block_on(async {
                    let started = Instant::now();
                    for entries in batches {
                        must_apply(&mut state_machine, entries).await;
                    }
                    started.elapsed()
                })
            })
        });
        // The state grows with every bid (no auction closes in this workload), so the
        // figure depends on how far the run got: print it next to the result.
        let (index, bytes) = state_machine
            .reader()
            .read(|state, last| {
                let bytes = codec::encode("state", state).map_or(0, |b| b.len());
                (last.map(|id| id.index()), bytes)
            })
            .expect("read");
        println!("state at index {index:?}: {bytes} bytes encoded");
    }
    group.finish();
}

criterion_group!(benches, fdatasync, append, apply);
criterion_main!(benches);
