//! openraft's own storage conformance suite, run against the RocksDB store.

mod support;

use martelo_raft_store::{GroupId, LogStore, RaftStore, StateMachine, StoreConfig, TypeConfig};
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;

struct Builder {
    config: StoreConfig,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let error = |e: String| StorageError::write(TypeConfig::err_from_string(e));
        let dir = tempfile::tempdir().map_err(|e| error(e.to_string()))?;
        let store =
            RaftStore::open(dir.path(), self.config.clone()).map_err(|e| error(e.to_string()))?;
        // A group id other than 0 so that key prefixes are exercised.
        let (log, state_machine) = store
            .group(GroupId(7))
            .await
            .map_err(|e| error(e.to_string()))?;
        Ok((dir, log, state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_with_a_checkpoint_every_apply() {
    let config = StoreConfig {
        checkpoint_interval_entries: 1,
        ..support::test_config()
    };
    Suite::test_all(Builder { config })
        .await
        .expect("openraft storage suite");
}
