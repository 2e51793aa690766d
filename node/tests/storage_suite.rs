//! openraft's storage conformance suite against the store: the Raft log in
//! segment files, the vote and the state machine in sled.

use ics_node::log::TypeConfig;
use ics_node::log::store::{self, LogStore, StateMachineStore};
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = store::open(dir.path(), 8 << 20, Default::default()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_passes_openraft_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(SledBuilder).await
}
