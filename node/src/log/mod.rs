//! The replicated log: openraft's type configuration, what a log entry
//! carries, the sled store (`store`), snapshots (`snapshot`) and the Raft
//! transport (`network`).

pub mod network;
pub mod segments;
pub mod snapshot;
pub mod store;

use serde::{Deserialize, Serialize};

use ics_kernel::{Appended, Refusal};

/// One Raft log entry: the atomic batches of the clients it groups, each a
/// list of events in their stored form (`store::stored_value`: the salt the
/// leader drew for the event's transparency-log leaf, then the envelope bytes
/// exactly as received).
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
pub type Raft = openraft::Raft<TypeConfig, store::StateMachineStore>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, snapshot::SnapshotData>;

/// A snapshot of the Raft metrics.
pub fn raft_metrics(raft: &Raft) -> openraft::RaftMetrics<TypeConfig> {
    use openraft::async_runtime::WatchReceiver;
    raft.metrics().borrow_watched().clone()
}

/// The leader's id and address, if one is known (possibly this node).
pub fn leader(raft: &Raft) -> Option<(NodeId, String)> {
    let m = raft_metrics(raft);
    let id = m.current_leader?;
    let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
    Some((id, addr))
}

/// When this node last took an append from a leader, and from which: a
/// follower is ready only while it hears from its leader.
#[derive(Default)]
pub struct LeaderContact(std::sync::Mutex<Option<(NodeId, std::time::Instant)>>);

impl LeaderContact {
    pub fn heard_from(&self, leader: NodeId) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((leader, std::time::Instant::now()));
    }

    /// How long ago `leader` was last heard from, if ever.
    pub fn since(&self, leader: NodeId) -> Option<std::time::Duration> {
        match *self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((id, at)) if id == leader => Some(at.elapsed()),
            _ => None,
        }
    }
}
