//! `RaftStore::destroy_group`: a replica removed from its group leaves nothing behind, and
//! the other groups of the node are untouched.

mod support;

use martelo_raft_store::{GroupId, TypeConfig};
use openraft::storage::{RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{RaftLogReader, testing};
use support::*;

#[tokio::test]
async fn destroying_a_group_deletes_all_its_records_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = must_open(dir.path(), test_config());
    let mut workload = Workload::new(3, 4);
    let membership = testing::membership_ent::<TypeConfig>(1, 1, 0, vec![[1u64, 2, 3].into()]);
    let mut entries = vec![membership];
    entries.extend(workload.entries(1, 1, 600));

    // Group 1, to destroy: log, vote, applied state, events and a snapshot of several
    // chunks. Group 2 gets the same history and must survive.
    let (mut doomed_log, mut doomed) = must_group(&store, 1).await;
    let (mut kept_log, mut kept) = must_group(&store, 2).await;
    for (log, state_machine) in [(&mut doomed_log, &mut doomed), (&mut kept_log, &mut kept)] {
        log.save_vote(&openraft::impls::Vote::new(1, 1))
            .await
            .unwrap();
        must_append_durable(log, entries.clone()).await;
        must_apply(state_machine, entries.clone()).await;
    }
    let snapshot = doomed
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert!(snapshot.snapshot.chunk_count() > 1, "several chunks");
    let kept_digest = digest(&kept);
    let kept_events = kept.event_log().read_from(0, 4096).unwrap();
    assert!(store.holds_group(GroupId(1)).unwrap());
    drop((doomed_log, doomed));

    store.destroy_group(GroupId(1)).unwrap();

    assert!(!store.holds_group(GroupId(1)).unwrap());
    assert!(store.holds_group(GroupId(2)).unwrap());
    assert!(
        snapshot.snapshot.read_chunk(0).is_err(),
        "the snapshot's chunks are gone"
    );
    assert_eq!(digest(&kept), kept_digest);
    assert_eq!(kept.event_log().read_from(0, 4096).unwrap(), kept_events);

    // Opened again, the group starts empty, as on a node that never held it, and stays so
    // after the store restarts; the other group is as it was.
    must_be_empty(&store, 1).await;
    store.destroy_group(GroupId(7)).unwrap();
    drop((kept_log, kept, snapshot));
    drop(store);
    let store = must_open(dir.path(), test_config());
    must_be_empty(&store, 1).await;
    assert!(!store.holds_group(GroupId(1)).unwrap());
    // Group 2's state is its log (no checkpoint yet at 600 entries), which is all there.
    let (mut kept_log, _) = must_group(&store, 2).await;
    let last = kept_log.get_log_state().await.unwrap().last_log_id;
    assert_eq!(last.map(|id| id.index()), Some(600));
    assert!(kept_log.read_vote().await.unwrap().is_some());
}

async fn must_be_empty(store: &martelo_raft_store::RaftStore, group: u64) {
    let (mut log, mut state_machine) = must_group(store, group).await;
    assert_eq!(log.get_log_state().await.unwrap().last_log_id, None);
    assert_eq!(log.read_vote().await.unwrap(), None);
    let (applied, _) = state_machine.applied_state().await.unwrap();
    assert_eq!(applied, None);
    assert!(
        state_machine
            .get_current_snapshot()
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        state_machine
            .event_log()
            .read_from(0, 10)
            .unwrap()
            .is_empty()
    );
}
