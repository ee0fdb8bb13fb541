//! Durability, isolation, determinism and snapshot tests of the RocksDB store.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use martelo_raft_store::types::Entry;
use martelo_raft_store::{EventLogError, EventRecord, StoreConfig, TypeConfig};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::TypeConfigExt;
use openraft::{RaftLogReader, testing};
use support::*;

fn vote(term: u64, node: u64) -> martelo_raft_store::types::Vote {
    openraft::impls::Vote::new(term, node)
}

async fn read_all(log: &mut martelo_raft_store::LogStore) -> Vec<Entry> {
    log.try_get_log_entries(..).await.expect("read log")
}

/// What a replica that applied `entries` from scratch ends up with: digest and events.
async fn replay(entries: &[Entry]) -> (martelo_engine::StateDigest, Vec<EventRecord>) {
    let dir = tempfile::tempdir().unwrap();
    let store = must_open(dir.path(), test_config());
    let (_, mut state_machine) = must_group(&store, 1).await;
    must_apply(&mut state_machine, entries.to_vec()).await;
    let events = state_machine.event_log().read_from(0, 4096).unwrap();
    (digest(&state_machine), events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_mid_stream_keeps_every_durable_entry_and_no_half_apply() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        checkpoint_interval_entries: 7,
        ..test_config()
    };
    let mut workload = Workload::new(11, 5);
    let all_entries = workload.entries(1, 1, 2000);
    let durable = Arc::new(AtomicU64::new(0));
    let applied_before;
    {
        let store = must_open(dir.path(), config.clone());
        let (mut log, mut state_machine) = must_group(&store, 1).await;
        log.save_vote(&vote(1, 1)).await.unwrap();
        let writer = {
            let durable = Arc::clone(&durable);
            let entries = all_entries.clone();
            tokio::spawn(async move {
                for (position, chunk) in entries.chunks(10).enumerate() {
                    let last = chunk.last().unwrap().index();
                    let (tx, rx) = TypeConfig::oneshot();
                    log.append(chunk.to_vec(), IOFlushed::signal(tx))
                        .await
                        .unwrap();
                    let durable = Arc::clone(&durable);
                    let record = async move {
                        if let Ok(Ok(())) = rx.await {
                            durable.fetch_max(last, Ordering::SeqCst);
                        }
                    };
                    // Mostly pipelined like openraft does; every fourth append waits, so the
                    // stream is paced by fsyncs and still running when the store is dropped.
                    if position % 4 == 3 {
                        record.await;
                    } else {
                        tokio::spawn(record);
                    }
                }
            })
        };
        // Apply a prefix in batches of 5 while the appends run, then drop everything
        // mid-stream. With a checkpoint interval of 7, checkpoints land after 10, 20, ... 1230.
        for part in all_entries[..1234].chunks(5) {
            must_apply(&mut state_machine, part.to_vec()).await;
        }
        applied_before = 1234;
        writer.abort();
        let _ = writer.await;
        drop(state_machine);
        drop(store);
    }
    let reported = durable.load(Ordering::SeqCst);
    assert!(reported > 0, "some appends were reported durable");

    let store = must_open(dir.path(), config);
    let (mut log, mut state_machine) = must_group(&store, 1).await;
    assert_eq!(log.read_vote().await.unwrap(), Some(vote(1, 1)));
    let entries = read_all(&mut log).await;
    assert!(
        entries.len() as u64 >= reported,
        "entries up to {reported} survive"
    );
    for (position, entry) in entries.iter().enumerate() {
        assert_eq!(entry.index(), position as u64 + 1, "no hole in the log");
        assert_eq!(
            entry,
            &all_entries[position],
            "entry {} intact",
            entry.index()
        );
    }

    // The state machine reopens at its last checkpoint, exactly at a batch boundary, with the
    // state it had there: nothing half-applied.
    let (applied, _) = state_machine.applied_state().await.unwrap();
    let applied = applied.map_or(0, |id| id.index());
    assert_eq!(applied, 1230, "last checkpoint before {applied_before}");
    assert_eq!(digest(&state_machine), replay(&all_entries[..1230]).await.0);

    // Re-applying from there (openraft re-applies committed entries from the log, or the
    // leader resends them) reaches the same state and the same event log as a replica that
    // never stopped.
    must_apply(&mut state_machine, all_entries[1230..].to_vec()).await;
    let (full_digest, full_events) = replay(&all_entries).await;
    assert_eq!(digest(&state_machine), full_digest);
    assert_eq!(
        state_machine.event_log().read_from(0, 4096).unwrap(),
        full_events
    );
}

#[tokio::test]
async fn groups_interleaved_in_one_database_keep_logs_votes_and_state_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = must_open(dir.path(), test_config());
    let mut groups = Vec::new();
    for group in [1u64, 2, 3] {
        groups.push(must_group(&store, group).await);
    }
    let mut workloads: Vec<_> = (0..3).map(|g| Workload::new(100 + g, 3)).collect();
    let mut written: Vec<Vec<Entry>> = vec![Vec::new(); 3];
    // Interleave: each round, each group appends a different number of entries.
    for round in 0..20u64 {
        for (g, (log, state_machine)) in groups.iter_mut().enumerate() {
            let count = 1 + (round + g as u64) % 4;
            let from = written[g].len() as u64 + 1;
            let entries = workloads[g].entries(1 + g as u64, from, count);
            must_append_durable(log, entries.clone()).await;
            must_apply(state_machine, entries.clone()).await;
            written[g].extend(entries);
        }
    }
    for (g, (log, _)) in groups.iter_mut().enumerate() {
        log.save_vote(&vote(10 + g as u64, g as u64)).await.unwrap();
    }
    // Truncating and purging one group touches no other.
    let (log_1, _) = &mut groups[1];
    log_1
        .truncate_after(Some(written[1][9].log_id()))
        .await
        .unwrap();
    log_1.purge(written[1][4].log_id()).await.unwrap();

    for (g, (log, state_machine)) in groups.iter_mut().enumerate() {
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(vote(10 + g as u64, g as u64))
        );
        let expected: Vec<Entry> = if g == 1 {
            written[g][5..10].to_vec()
        } else {
            written[g].clone()
        };
        assert_eq!(read_all(log).await, expected, "log of group {g}");
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, expected.last().map(|e| e.log_id()));
        assert_eq!(
            digest(state_machine),
            replay(&written[g]).await.0,
            "state of group {g}"
        );
        let events = state_machine.event_log().read_from(0, 10_000).unwrap();
        assert!(!events.is_empty(), "group {g} has events");
        assert!(
            events
                .iter()
                .all(|r| r.log_index as usize <= written[g].len())
        );
    }
}

#[tokio::test]
async fn two_stores_fed_the_same_entries_reach_the_same_digest() {
    let entries = Workload::new(5, 8).entries(1, 1, 1500);
    let mut digests = Vec::new();
    // Different checkpoint intervals and batch shapes must not change the result.
    for (interval, chunk) in [(1u64, 1usize), (1024, 100), (3, 17)] {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            checkpoint_interval_entries: interval,
            apply_batch_entries_max: 64,
            ..test_config()
        };
        let store = must_open(dir.path(), config);
        let (_, mut state_machine) = must_group(&store, 1).await;
        for part in entries.chunks(chunk) {
            must_apply(&mut state_machine, part.to_vec()).await;
        }
        let events = state_machine.event_log().read_from(0, 4096).unwrap();
        digests.push((digest(&state_machine), events));
    }
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[0], digests[2]);
}

#[tokio::test]
async fn snapshot_build_install_and_continue_equals_applying_the_whole_log() {
    let mut workload = Workload::new(9, 6);
    let entries = workload.entries(1, 1, 1200);
    let (head, tail) = entries.split_at(700);

    let leader_dir = tempfile::tempdir().unwrap();
    let leader = must_open(leader_dir.path(), test_config());
    let (_, mut leader_sm) = must_group(&leader, 4).await;
    let membership = testing::membership_ent::<TypeConfig>(1, 1, 0, vec![[1u64, 2, 3].into()]);
    let mut with_membership = vec![membership];
    with_membership.extend_from_slice(head);
    must_apply(&mut leader_sm, with_membership.clone()).await;
    let mut builder = leader_sm.get_snapshot_builder().await;
    let snapshot = builder.build_snapshot().await.unwrap();
    assert!(
        snapshot.snapshot.chunk_count() > 1,
        "snapshot spans several chunks"
    );
    assert_eq!(
        snapshot.meta.last_log_id,
        Some(head.last().unwrap().log_id())
    );

    // Move it chunk by chunk into another node's database, as the network would.
    let follower_dir = tempfile::tempdir().unwrap();
    let follower = must_open(follower_dir.path(), test_config());
    let (_, mut follower_sm) = must_group(&follower, 4).await;
    let mut receiver = follower_sm.snapshot_receiver();
    for chunk in 0..snapshot.snapshot.chunk_count() {
        receiver
            .push_chunk(&snapshot.snapshot.read_chunk(chunk).unwrap())
            .unwrap();
    }
    let received = receiver.finish().unwrap();
    follower_sm
        .install_snapshot(&snapshot.meta, received)
        .await
        .unwrap();
    assert_eq!(
        follower_sm.applied_state().await.unwrap(),
        leader_sm.applied_state().await.unwrap()
    );

    // Events before the snapshot were never seen by the follower: reads there say so.
    let trimmed = follower_sm.event_log().read_from(1, 10).unwrap_err();
    assert!(matches!(
        trimmed,
        EventLogError::Trimmed {
            first_available: 701,
            ..
        }
    ));

    must_apply(&mut leader_sm, tail.to_vec()).await;
    must_apply(&mut follower_sm, tail.to_vec()).await;
    let full = replay(&entries).await.0;
    assert_eq!(digest(&leader_sm), full);
    assert_eq!(digest(&follower_sm), full);
    assert_eq!(
        follower_sm.event_log().read_from(701, 4096).unwrap(),
        leader_sm.event_log().read_from(701, 4096).unwrap()
    );

    // After a restart the follower starts from the installed snapshot (newer than any
    // checkpoint it wrote) and the log tail brings it back to the same state.
    let current = follower_sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("snapshot");
    assert_eq!(current.meta, snapshot.meta);
    drop((follower_sm, current));
    drop(follower);
    let follower = must_open(follower_dir.path(), test_config());
    let (_, mut follower_sm) = must_group(&follower, 4).await;
    let (applied, _) = follower_sm.applied_state().await.unwrap();
    let applied = applied.map_or(0, |id| id.index()) as usize;
    assert!(applied >= 700);
    must_apply(&mut follower_sm, entries[applied..].to_vec()).await;
    assert_eq!(digest(&follower_sm), full);
}

#[tokio::test]
async fn event_log_reads_from_any_index_and_trims_only_below_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let store = must_open(dir.path(), test_config());
    let (_, mut state_machine) = must_group(&store, 1).await;
    let entries = Workload::new(3, 2).entries(1, 1, 300);
    must_apply(&mut state_machine, entries).await;
    let events = state_machine.event_log();
    let all = events.read_from(0, 4096).unwrap();
    assert!(all.windows(2).all(|w| w[0].log_index < w[1].log_index));
    let from_150 = events.read_from(150, 4096).unwrap();
    assert_eq!(
        from_150.as_slice(),
        &all[all.iter().position(|r| r.log_index >= 150).unwrap()..]
    );
    assert_eq!(events.read_from(0, 5).unwrap().len(), 5);

    assert_eq!(events.trim_below(100).unwrap(), 100);
    match events.read_from(99, 10) {
        Err(EventLogError::Trimmed {
            first_available: 100,
            requested: 99,
            ..
        }) => {}
        other => panic!("expected Trimmed, got {other:?}"),
    }
    assert_eq!(
        events.read_from(100, 4096).unwrap().first(),
        from_at(&all, 100)
    );
    // A lower watermark never un-trims; a watermark past the applied index is capped.
    assert_eq!(events.trim_below(50).unwrap(), 100);
    assert_eq!(events.trim_below(10_000).unwrap(), 301);

    // The trim point survives a restart.
    drop((events, state_machine));
    drop(store);
    let store = must_open(dir.path(), test_config());
    let (_, state_machine) = must_group(&store, 1).await;
    assert_eq!(state_machine.event_log().first_available(), 301);
}

fn from_at(
    all: &[martelo_raft_store::EventRecord],
    index: u64,
) -> Option<&martelo_raft_store::EventRecord> {
    all.iter().find(|r| r.log_index >= index)
}

#[tokio::test]
async fn corrupt_and_unknown_version_values_give_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = must_open(dir.path(), test_config());
        let (mut log, _) = must_group(&store, 1).await;
        must_append_durable(&mut log, Workload::new(1, 1).entries(1, 1, 3)).await;
        log.save_vote(&vote(3, 1)).await.unwrap();
    }
    let tamper = |cf: &str, key: Vec<u8>, edit: &dyn Fn(&mut Vec<u8>)| {
        let cfs = martelo_raft_store::keys::ALL_COLUMN_FAMILIES;
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), cfs).unwrap();
        let handle = db.cf_handle(cf).unwrap();
        let mut value = db.get_cf(handle, &key).unwrap().unwrap();
        edit(&mut value);
        db.put_cf(handle, &key, value).unwrap();
    };
    let mut entry_2 = 1u64.to_be_bytes().to_vec();
    entry_2.extend_from_slice(&2u64.to_be_bytes());
    tamper("log", entry_2, &|value| value[0] = 42);
    let mut vote_key = 1u64.to_be_bytes().to_vec();
    vote_key.push(1);
    tamper("raft_meta", vote_key, &|value| {
        let middle = value.len() / 2;
        value[middle] ^= 0x04;
    });

    let store = must_open(dir.path(), test_config());
    let (mut log, _) = must_group(&store, 1).await;
    let error = log.try_get_log_entries(1..4).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        error.to_string().contains("unknown format version 42"),
        "{error}"
    );
    // Entries the damage does not touch still read.
    assert_eq!(log.try_get_log_entries(3..4).await.unwrap().len(), 1);
    let error = log.read_vote().await.unwrap_err();
    assert!(error.to_string().contains("corrupt"), "{error}");
}

#[tokio::test]
async fn a_group_in_another_database_is_unaffected_by_a_fresh_group_id() {
    // The state machine of a new group starts empty even when other groups have state.
    let dir = tempfile::tempdir().unwrap();
    let store = must_open(dir.path(), test_config());
    let (_, mut one) = must_group(&store, 1).await;
    must_apply(&mut one, Workload::new(1, 2).entries(1, 1, 50)).await;
    let (_, mut two) = must_group(&store, 2).await;
    assert_eq!(two.applied_state().await.unwrap().0, None);
    assert_eq!(digest(&two), martelo_engine::State::new().digest());
    assert_ne!(digest(&one), digest(&two));
}
