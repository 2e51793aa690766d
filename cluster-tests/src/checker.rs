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

use crate::workload::{History, SeenCheckpoint, acks_by_subject};

#[derive(Debug, Default)]
pub struct Verdict {
    pub acked: usize,
    pub reads: usize,
    pub subjects: usize,
    /// Distinct signed checkpoints the nodes served during the run.
    pub checkpoints: usize,
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
    agreement(&statuses, &mut v);

    let checkpoints = history.checkpoints.lock().expect("lock").clone();
    v.checkpoints = checkpoints.len();
    check_checkpoints(&checkpoints, replicas, tls, &mut v).await;

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

/// Every checkpoint served during the run is signed by the one log key, no
/// two of one size differ, and each is a prefix of the final tree (a
/// consistency proof from it to the final size verified here): so every
/// pair of them is consistent, whichever leader signed them.
async fn check_checkpoints(
    seen: &[SeenCheckpoint],
    replicas: &BTreeMap<u64, String>,
    tls: &ClientTls,
    v: &mut Verdict,
) {
    use ics_proto::tlog_v1 as tpb;
    use ics_tlog::merkle::verify_consistency;
    use ics_tlog::note::{Checkpoint, Note, NoteVerifier};
    let Some(first) = seen.first() else {
        v.problem("no node served a signed checkpoint during the run".into());
        return;
    };
    let verifier = match NoteVerifier::from_vkey(&first.vkey) {
        Ok(k) => k,
        Err(e) => return v.problem(format!("checkpoint vkey {:?}: {e}", first.vkey)),
    };
    let mut by_size: BTreeMap<u64, Checkpoint> = BTreeMap::new();
    for s in seen {
        if s.vkey != first.vkey {
            v.problem(format!("two log keys: {} and {}", first.vkey, s.vkey));
        }
        let checkpoint = Note::parse(&s.note)
            .map_err(|e| e.to_string())
            .and_then(|n| {
                verifier
                    .verify(&n)
                    .map(str::to_string)
                    .map_err(|e| e.to_string())
            })
            .and_then(|text| Checkpoint::parse(&text).map_err(|e| e.to_string()));
        let checkpoint = match checkpoint {
            Ok(c) if c.size == s.size && c.origin == verifier.name => c,
            Ok(c) => {
                v.problem(format!(
                    "checkpoint of {} at {} served as size {}",
                    c.origin, c.size, s.size
                ));
                continue;
            }
            Err(e) => {
                v.problem(format!(
                    "checkpoint of size {} does not verify: {e}",
                    s.size
                ));
                continue;
            }
        };
        if let Some(other) = by_size.get(&checkpoint.size)
            && other.root != checkpoint.root
        {
            v.problem(format!(
                "a fork: two checkpoints of size {} with roots {} and {}",
                checkpoint.size,
                hex(&other.root),
                hex(&checkpoint.root)
            ));
        }
        by_size.insert(checkpoint.size, checkpoint);
    }
    let Some(mut c) = replicas
        .values()
        .find_map(|addr| Client::connect(addr, tls).ok())
    else {
        return v.problem("no replica to prove checkpoints against".into());
    };
    let last = match c.status().await {
        Ok(s) => s.event_count,
        Err(e) => return v.problem(format!("status: {}", e.message())),
    };
    for (size, checkpoint) in &by_size {
        let proof = c
            .tlog
            .consistency_proof(tpb::ConsistencyProofRequest {
                old_size: *size,
                new_size: last,
            })
            .await;
        let verified = proof.map_err(|e| e.message().to_string()).and_then(|p| {
            let p = p.into_inner();
            let hashes: Vec<[u8; 32]> = p
                .hashes
                .iter()
                .map(|h| <[u8; 32]>::try_from(h.as_slice()).map_err(|_| "a hash not 32 bytes"))
                .collect::<Result<_, _>>()?;
            let new_root = <[u8; 32]>::try_from(p.new_root.as_slice())
                .map_err(|_| "a root not 32 bytes".to_string())?;
            verify_consistency(*size, p.new_size, &checkpoint.root, &new_root, &hashes)
                .map_err(|e| e.to_string())
        });
        if let Err(e) = verified {
            v.problem(format!(
                "checkpoint of size {size} is not a prefix of the final tree of {last}: {e}"
            ));
        }
    }
}

/// Every replica's status the same as the first's.
fn agreement(statuses: &[pb::StatusResponse], v: &mut Verdict) {
    if let Some(first) = statuses.first() {
        v.event_count = first.event_count;
        for s in statuses {
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
}

/// What may and must cross from a source party to an importer.
#[derive(Debug, Default)]
pub struct Crossing {
    /// The source's namespace at the importer.
    pub namespace: String,
    /// Acknowledged at the source and allowed by both policies: on every
    /// importer replica once.
    pub required: HashSet<EventId>,
    /// Every event of the source's log: nothing else may be imported.
    pub source_log: HashSet<EventId>,
    /// Outside the policies, acknowledged or not: never imported.
    pub forbidden: HashSet<EventId>,
}

/// The federation verdict on every importer replica: each required event
/// imported once, in the source's namespace; nothing forbidden and nothing
/// the source's log does not hold; the replicas one log and one state.
pub async fn check_federation(
    crossing: &Crossing,
    replicas: &BTreeMap<u64, String>,
    tls: &ClientTls,
) -> Verdict {
    let mut v = Verdict {
        acked: crossing.required.len(),
        ..Verdict::default()
    };
    let statuses = same_moment_statuses(replicas, tls, &mut v).await;
    agreement(&statuses, &mut v);
    for (id, addr) in replicas {
        let imported = match imported_events(addr, tls).await {
            Ok(i) => i,
            Err(e) => {
                v.problem(format!("node {id}: reading its log: {e}"));
                continue;
            }
        };
        let mut seen = HashSet::new();
        for (namespace, event) in &imported {
            if !seen.insert(*event) {
                v.problem(format!("node {id}: event {event} imported twice"));
            }
            if crossing.forbidden.contains(event) {
                v.problem(format!(
                    "node {id}: event {event}, outside the policy, crossed"
                ));
            } else if namespace == &crossing.namespace && !crossing.source_log.contains(event) {
                v.problem(format!(
                    "node {id}: imported event {event} is not in the source's log"
                ));
            }
        }
        let missing = crossing.required.difference(&seen).count();
        if missing > 0 {
            v.problem(format!(
                "node {id}: {missing} of {} required events not imported",
                crossing.required.len()
            ));
        }
    }
    v
}

/// The events a node's log holds, in order, with the namespace of each
/// imported one (`None`: its own).
pub async fn log_events(
    addr: &str,
    tls: &ClientTls,
) -> anyhow::Result<Vec<(Option<String>, EventId)>> {
    let mut c = Client::connect(addr, tls)?;
    let count = c.status().await?.event_count;
    let mut stream = c
        .log
        .watch(pb::WatchRequest { from_index: 1 })
        .await?
        .into_inner();
    let mut out = Vec::with_capacity(count as usize);
    while (out.len() as u64) < count {
        let e = stream
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("the log ended at {} of {count}", out.len()))??;
        let id = EventId(
            e.event_id
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("an event id not 32 bytes"))?,
        );
        out.push((e.imported.map(|i| i.namespace), id));
    }
    Ok(out)
}

async fn imported_events(addr: &str, tls: &ClientTls) -> anyhow::Result<Vec<(String, EventId)>> {
    Ok(log_events(addr, tls)
        .await?
        .into_iter()
        .filter_map(|(ns, id)| ns.map(|ns| (ns, id)))
        .collect())
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
