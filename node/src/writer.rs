//! The leader's single writer: groups waiting appends into one Raft entry
//! (group commit), checks them against the applied state plus what the entry
//! already holds, and replies with what the state machine decided.

use std::sync::Arc;

use ics_kernel::{Appended, Event, EventLimits, Refusal, Staged};
use ics_tlog::tiled::TreeView;
use openraft::ReadPolicy;
use tokio::sync::{mpsc, oneshot};

use crate::codec;
use crate::log::store::{MAX_ENTRY_BYTES, Shared};
use crate::log::{LogRequest, NodeId, Raft};
use crate::metrics::{Metrics, WriteStage};

pub enum WriteError {
    Refused(Refusal),
    NotLeader(Option<(NodeId, String)>),
    Raft(String),
}

pub struct WriteJob {
    pub events: Vec<Event>,
    /// For an event about another party's subject: its namespace (one event).
    pub tag: Option<ics_federation::ImportTag>,
    pub bytes: usize,
    pub reply: oneshot::Sender<Result<Vec<Appended>, WriteError>>,
}

/// What the writer works with; it knows nothing of the gRPC edge.
pub struct Writer {
    pub raft: Raft,
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    /// The limits of events before the genesis (the replicated ones after).
    pub limits: EventLimits,
}

/// Rounds (Raft entries) the writer proposes before the first commits:
/// enough to keep the log's syncs and the followers busy, few enough that a
/// lost leadership fails a bounded number of appends.
const MAX_ROUNDS_IN_FLIGHT: usize = 4;

/// Checks each job against the applied state plus the jobs before it in
/// the round; `Some` is the refusal.
fn precheck(node: &Writer, jobs: &[WriteJob], limits: &EventLimits) -> Vec<Option<Refusal>> {
    let applied = node.shared.read();
    let tiles = node.shared.db.tiles();
    let tree = TreeView {
        tree: &applied.tree,
        tiles: &tiles,
    };
    let mut staged = Staged::precheck(&applied.projection);
    let empty = crate::capabilities::projection();
    let mut imports = ics_federation::MirrorStage::precheck(&applied.mirrors, &empty);
    jobs.iter()
        .map(|job| match (&job.tag, job.events.as_slice()) {
            (None, events) => staged.stage_batch_over(events, limits, &tree).err(),
            (Some(tag), [event]) => imports
                .stage_import(&mut staged, tag, event, job.bytes, limits, &tree)
                .err(),
            (Some(_), _) => Some(Refusal::Malformed(
                "one event per append into another party's namespace".into(),
            )),
        })
        .collect()
}

/// The leader's single writer: groups waiting appends into one Raft entry,
/// checks them against the applied state plus what the entry already holds,
/// and replies with what the state machine decided.
pub async fn run_writer(node: Writer, mut rx: mpsc::Receiver<WriteJob>) {
    let limits = node.limits.clone();
    let rounds = Arc::new(tokio::sync::Semaphore::new(MAX_ROUNDS_IN_FLIGHT));
    let mut carry: Option<WriteJob> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        // A round starts once one of the rounds in flight has committed:
        // what arrived meanwhile joins it, so under load a round holds
        // many appends and its costs (a Raft entry, a sync, an apply) are
        // shared.
        let in_flight = rounds
            .clone()
            .acquire_owned()
            .await
            .expect("the round semaphore is never closed");
        let mut bytes = first.bytes;
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            if bytes + j.bytes > MAX_ENTRY_BYTES {
                carry = Some(j);
                break;
            }
            bytes += j.bytes;
            jobs.push(j);
        }
        // A refusal is final only against current state: this node may be a
        // leader that has not applied its predecessors' entries yet, or a
        // restarted one that does not know it was deposed. So the first
        // refusal in a round costs a read-index barrier (a quorum round trip
        // that also waits for apply) and the round is checked again.
        let checking = std::time::Instant::now();
        let mut verdicts = precheck(&node, &jobs, &limits);
        node.metrics
            .write_stage(WriteStage::Precheck, checking.elapsed());
        if verdicts.iter().any(Option::is_some) {
            if let Err(e) = node.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                for job in jobs {
                    let _ = job.reply.send(Err(match e.forward_to_leader() {
                        Some(_) => WriteError::NotLeader(crate::log::leader(&node.raft)),
                        None => WriteError::Raft(e.to_string()),
                    }));
                }
                continue;
            }
            verdicts = precheck(&node, &jobs, &limits);
        }
        let mut accepted = Vec::with_capacity(jobs.len());
        for (job, verdict) in jobs.into_iter().zip(verdicts) {
            match verdict {
                None => accepted.push(job),
                Some(r) => {
                    tracing::debug!(error = %r, "writer refused a batch");
                    let _ = job.reply.send(Err(WriteError::Refused(r)));
                }
            }
        }
        if accepted.is_empty() {
            continue;
        }
        let request = LogRequest {
            batches: accepted
                .iter()
                .map(|j| {
                    j.events
                        .iter()
                        .map(|e| {
                            let envelope = codec::envelope_to_bytes(&e.envelope);
                            let stored = match &j.tag {
                                Some(tag) => tag.wrap(&envelope),
                                None => envelope,
                            };
                            crate::log::store::stored_value(&leaf_salt(), &stored)
                        })
                        .collect()
                })
                .collect(),
        };
        node.metrics.entry_written(accepted.len());
        // The next round is checked and proposed while this one commits: a
        // conflict between rounds in flight is decided by the state machine.
        let raft = node.raft.clone();
        let metrics = node.metrics.clone();
        tokio::spawn(async move {
            let proposed = std::time::Instant::now();
            commit_round(&raft, request, accepted).await;
            metrics.write_stage(WriteStage::Round, proposed.elapsed());
            drop(in_flight);
        });
    }
}

/// Proposes one round and replies to its jobs with what the state machine
/// decided for each.
async fn commit_round(raft: &Raft, request: LogRequest, accepted: Vec<WriteJob>) {
    match raft.client_write(request).await {
        Ok(resp) => {
            let mut results = resp.data.results.into_iter();
            for job in accepted {
                let r = results.next().unwrap_or_else(|| {
                    Err(Refusal::Malformed("state machine gave no result".into()))
                });
                let _ = job.reply.send(r.map_err(WriteError::Refused));
            }
        }
        Err(e) => {
            let err = || match e.forward_to_leader() {
                Some(f) => WriteError::NotLeader(
                    f.leader_id
                        .and_then(|id| f.leader_node.as_ref().map(|n| (id, n.addr.clone()))),
                ),
                None => WriteError::Raft(e.to_string()),
            };
            for job in accepted {
                let _ = job.reply.send(Err(err()));
            }
        }
    }
}

/// A fresh random salt for an event's transparency-log leaf.
pub(crate) fn leaf_salt() -> [u8; ics_tlog::SALT_BYTES] {
    let mut salt = [0u8; ics_tlog::SALT_BYTES];
    getrandom::fill(&mut salt).expect("the operating system's random source");
    salt
}
