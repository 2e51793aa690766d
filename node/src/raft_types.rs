//! The openraft type configuration and what a log entry carries.

use serde::{Deserialize, Serialize};

use ics_kernel::{Appended, Refusal};

/// One Raft log entry: the atomic batches of the clients it groups, each a
/// list of envelope bytes exactly as received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    pub batches: Vec<Vec<Vec<u8>>>,
}

impl std::fmt::Display for LogRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let events: usize = self.batches.iter().map(Vec::len).sum();
        write!(
            f,
            "LogRequest({} batches, {events} events)",
            self.batches.len()
        )
    }
}

/// What applying an entry did to each of its batches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogResponse {
    pub results: Vec<Result<Vec<Appended>, Refusal>>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = LogRequest,
        R = LogResponse,
        Node = openraft::BasicNode,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig, crate::store::StateMachineStore>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;
