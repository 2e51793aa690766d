//! The verdict on a run, once the faults are healed: nothing acknowledged is
//! missing, nothing is duplicated, every replica holds one order and one
//! projection, every chain verifies, and no read saw state older than a write
//! acknowledged before it began.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt;
use ics_kernel::{EventId, EventLimits, PublicKey};
use ics_node::client::{Client, ClientTls};
use ics_node::codec;
use ics_proto::core_v1 as pb;

use crate::workload::{History, acks_by_subject};

#[derive(Debug, Default)]
pub struct Verdict {
    pub acked: usize,
    pub reads: usize,
    pub subjects: usize,
    pub event_count: u64,
    pub problems: Vec<String>,
}

impl Verdict {
    fn problem(&mut self, p: String) {
        if self.problems.len() < 50 {
            self.problems.push(p);
        }
    }
}

/// Checks the record against every replica (`replicas`: node id → host address).
pub async fn check(
    history: &History,
    replicas: &BTreeMap<u64, String>,
    tls: &ClientTls,
    author: &PublicKey,
) -> Verdict {
    let acks = history.acks.lock().expect("lock").clone();
    let reads = history.reads.lock().expect("lock").clone();
    let mut v = Verdict {
        acked: acks.len(),
        reads: reads.len(),
        ..Verdict::default()
    };
    for r in history.refusals.lock().expect("lock").iter() {
        v.problem(format!("write refused or never acknowledged: {r}"));
    }

    // No duplicates: one index per event, one event per index.
    let mut by_id: HashMap<EventId, u64> = HashMap::new();
    let mut indexes: HashSet<u64> = HashSet::new();
    for a in &acks {
        if let Some(prev) = by_id.insert(a.event_id, a.index)
            && prev != a.index
        {
            v.problem(format!(
                "event {} acknowledged at {prev} and {}",
                a.event_id, a.index
            ));
        }
        if !indexes.insert(a.index) {
            v.problem(format!("index {} acknowledged for two events", a.index));
        }
    }

    // Linearizable reads.
    for r in &reads {
        if r.seen_next_sequence < r.acked_sequence + 1 {
            v.problem(format!(
                "stale read of {}: saw {} events after sequence {} was acknowledged",
                r.subject, r.seen_next_sequence, r.acked_sequence
            ));
        }
    }

    // Every replica: the same state at one moment. The nodes keep appending
    // their own records (certificate renewals) after the workload stops, so
    // the replicas are read together, again until they agree.
    let statuses = same_moment_statuses(replicas, tls, &mut v).await;
    // Every acknowledged event at its index on every replica.
    for (id, addr) in replicas {
        let Ok(mut c) = Client::connect(addr, tls) else {
            v.problem(format!("node {id}: no client"));
            continue;
        };
        for a in &acks {
            let got = c
                .log
                .get_event(pb::GetEventRequest {
                    event_id: a.event_id.0.to_vec(),
                    consistency: pb::ReadConsistency::Stale as i32,
                })
                .await;
            match got {
                Ok(e) if e.get_ref().index == a.index => {}
                Ok(e) => v.problem(format!(
                    "node {id}: event {} at index {} instead of {}",
                    a.event_id,
                    e.get_ref().index,
                    a.index
                )),
                Err(e) => v.problem(format!(
                    "node {id}: acknowledged event {} missing: {}",
                    a.event_id,
                    e.message()
                )),
            }
        }
    }
    if let Some(first) = statuses.first() {
        v.event_count = first.event_count;
        for s in &statuses {
            if (s.event_count, &s.log_hash, &s.state_hash, &s.tree_root)
                != (
                    first.event_count,
                    &first.log_hash,
                    &first.state_hash,
                    &first.tree_root,
                )
            {
                v.problem(format!(
                    "node {} differs from node {}: {} vs {} events, log hash {} vs {}, state hash {} vs {}, tree root {} vs {}",
                    s.node_id,
                    first.node_id,
                    s.event_count,
                    first.event_count,
                    hex(&s.log_hash),
                    hex(&first.log_hash),
                    hex(&s.state_hash),
                    hex(&first.state_hash),
                    hex(&s.tree_root),
                    hex(&first.tree_root)
                ));
            }
        }
    }

    // Every subject's chain verifies, signatures included, from one replica.
    let subjects = acks_by_subject(&acks);
    v.subjects = subjects.len();
    if let Some(addr) = replicas.values().next()
        && let Ok(mut c) = Client::connect(addr, tls)
    {
        for (subject, acked) in &subjects {
            let req = pb::HistoryRequest {
                subject: Some(codec::subject_to_pb(subject)),
                consistency: pb::ReadConsistency::Linearizable as i32,
            };
            let mut stream = match c.log.history(req).await {
                Ok(s) => s.into_inner(),
                Err(e) => {
                    v.problem(format!("history of {subject}: {}", e.message()));
                    continue;
                }
            };
            let mut expected_seq = 0;
            let mut previous: Option<EventId> = None;
            let mut seen = HashSet::new();
            while let Some(item) = stream.next().await {
                let Ok(e) = item else {
                    v.problem(format!("history of {subject} broke off"));
                    break;
                };
                let env = e.event.unwrap_or_default();
                let id = EventId::of_body(&env.body);
                let parsed = codec::envelope_from_pb(env.clone())
                    .and_then(|e| codec::parse_event(e, &EventLimits::unbounded()));
                let body = match parsed {
                    Ok(e) => e.body,
                    Err(err) => {
                        v.problem(format!("{subject}: undecodable event {id}: {err}"));
                        break;
                    }
                };
                if body.sequence != expected_seq || body.previous != previous {
                    v.problem(format!(
                        "{subject}: chain broken at sequence {}",
                        body.sequence
                    ));
                }
                let signed = env.signatures.iter().any(|s| {
                    s.key_id == author.id().0 && author.verify_event(&env.body, &s.signature)
                });
                if !signed {
                    v.problem(format!(
                        "{subject}: event {id} lacks a valid author signature"
                    ));
                }
                seen.insert(id);
                expected_seq += 1;
                previous = Some(id);
            }
            for a in acked {
                if !seen.contains(&a.event_id) {
                    v.problem(format!(
                        "{subject}: acknowledged event {} not in its history",
                        a.event_id
                    ));
                }
            }
        }
    }
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

/// The replicas' statuses read back to back, retried (for up to 20 s) until
/// they agree on event count, log hash and state hash; the last reading
/// otherwise, which the caller reports.
async fn same_moment_statuses(
    replicas: &BTreeMap<u64, String>,
    tls: &ClientTls,
    v: &mut Verdict,
) -> Vec<pb::StatusResponse> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut statuses = Vec::new();
        let mut failed = Vec::new();
        for (id, addr) in replicas {
            match Client::connect(addr, tls) {
                Ok(mut c) => match c.status().await {
                    Ok(s) => statuses.push(s),
                    Err(e) => failed.push(format!("node {id}: status: {}", e.message())),
                },
                Err(_) => failed.push(format!("node {id}: no client")),
            }
        }
        let agree = statuses.windows(2).all(|w| {
            (
                w[0].event_count,
                &w[0].log_hash,
                &w[0].state_hash,
                &w[0].tree_root,
            ) == (
                w[1].event_count,
                &w[1].log_hash,
                &w[1].state_hash,
                &w[1].tree_root,
            )
        });
        if (failed.is_empty() && agree) || std::time::Instant::now() > deadline {
            for f in failed {
                v.problem(f);
            }
            return statuses;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
