//! Continuous writes and linearizable reads under faults, with a record of
//! every acknowledged write and every read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ics_identity::DEVICE;
use ics_identity::payload::DeviceStatus;
use ics_kernel::{Algorithm, Envelope, EventId, SigningKey, SubjectRef};
use ics_node::client::{self, ChainHead, Client};
use tonic::Code;

use crate::docker::Addresses;

/// An acknowledged append.
#[derive(Clone, Debug)]
pub struct Ack {
    pub writer: usize,
    pub event_id: EventId,
    pub index: u64,
    pub subject: SubjectRef,
    pub sequence: u64,
    pub acked_at: Instant,
}

/// A read whose answer must include every write acknowledged before it began.
#[derive(Clone, Debug)]
pub struct Read {
    pub subject: SubjectRef,
    /// Highest sequence acknowledged on the subject before the read began.
    pub acked_sequence: u64,
    /// What the read saw: the subject's next sequence.
    pub seen_next_sequence: u64,
}

/// A signed checkpoint a node served during the run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeenCheckpoint {
    pub note: Vec<u8>,
    pub size: u64,
    pub vkey: String,
}

#[derive(Default)]
pub struct History {
    pub acks: Mutex<Vec<Ack>>,
    pub reads: Mutex<Vec<Read>>,
    /// Every distinct checkpoint any node served, in the order first seen.
    pub checkpoints: Mutex<Vec<SeenCheckpoint>>,
    /// Events a node refused: none is expected, each is a finding.
    pub refusals: Mutex<Vec<String>>,
}

pub struct Workload {
    pub history: Arc<History>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn is_refusal(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::Aborted
    )
}

fn clients(addresses: &Addresses) -> Vec<Client> {
    addresses
        .read()
        .expect("addresses lock")
        .values()
        .filter_map(|a| Client::connect(a, &addresses.tls).ok())
        .collect()
}

/// Sends one event until some node acknowledges it. The same signed bytes
/// are resent, so an event that did commit comes back as a duplicate.
async fn append_until_acked(
    addresses: &Addresses,
    writer: usize,
    env: &Envelope,
    history: &History,
) -> Option<ics_proto::core_v1::AppendedEvent> {
    let mut attempt = writer;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut cs = clients(addresses);
        if !cs.is_empty() {
            let n = cs.len();
            let c = &mut cs[attempt % n];
            match tokio::time::timeout(Duration::from_secs(2), c.append(vec![env.clone()])).await {
                Ok(Ok(mut out)) => return Some(out.remove(0)),
                Ok(Err(e)) if is_refusal(e.code()) => {
                    history.refusals.lock().expect("lock").push(format!(
                        "writer {writer}: {:?} {}",
                        e.code(),
                        e.message()
                    ));
                    return None;
                }
                _ => {}
            }
        }
        if Instant::now() > deadline {
            history.refusals.lock().expect("lock").push(format!(
                "writer {writer}: no node acknowledged an append for 120 s"
            ));
            return None;
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn writer(
    id: usize,
    addresses: Addresses,
    author: Arc<SigningKey>,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
) {
    let mut device = SubjectRef::new(DEVICE, "");
    let mut head = ChainHead::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let env = if i.is_multiple_of(6) {
            let key = SigningKey::generate(Algorithm::Ed25519).public_key();
            device = SubjectRef::new(DEVICE, key.id().to_hex());
            head = ChainHead::default();
            client::register_device(&author, &format!("w{id}-{i}"), &key, vec![])
        } else {
            let status = if i % 2 == 1 {
                DeviceStatus::InUse
            } else {
                DeviceStatus::Lost
            };
            client::change_status(&author, &device.id, head, status, "chaos")
        };
        let event_id = EventId::of_body(&env.body);
        let Some(out) = append_until_acked(&addresses, id, &env, &history).await else {
            return;
        };
        if out.event_id != event_id.0 {
            history
                .refusals
                .lock()
                .expect("lock")
                .push(format!("writer {id}: ack names another event"));
            return;
        }
        history.acks.lock().expect("lock").push(Ack {
            writer: id,
            event_id,
            index: out.index,
            subject: device.clone(),
            sequence: head.sequence,
            acked_at: Instant::now(),
        });
        head = ChainHead {
            sequence: head.sequence + 1,
            previous: Some(event_id),
        };
        i += 1;
    }
}

/// Asks every node for its latest checkpoint, over and over, and records
/// each distinct one: the checker proves them all consistent.
async fn checkpoint_watch(addresses: Addresses, history: Arc<History>, stop: Arc<AtomicBool>) {
    let mut seen = std::collections::HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        for mut c in clients(&addresses) {
            let asked = c
                .tlog
                .checkpoint(ics_proto::tlog_v1::CheckpointRequest { size: 0 });
            let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), asked).await else {
                continue;
            };
            let r = r.into_inner();
            let cp = SeenCheckpoint {
                note: r.note,
                size: r.size,
                vkey: r.vkey,
            };
            if seen.insert(cp.clone()) {
                history.checkpoints.lock().expect("lock").push(cp);
            }
        }
    }
}

/// Reads subjects with linearizable reads and records what each saw against
/// what was acknowledged before it began.
async fn reader(seed: u64, addresses: Addresses, history: Arc<History>, stop: Arc<AtomicBool>) {
    let mut rng = crate::Rng::new(seed);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let target = {
            let acks = history.acks.lock().expect("lock");
            if acks.is_empty() {
                continue;
            }
            let pick = &acks[rng.below(acks.len() as u64) as usize];
            let subject = pick.subject.clone();
            // The highest acknowledged sequence on it, as of now (before the read).
            let acked = acks
                .iter()
                .filter(|a| a.subject == subject)
                .map(|a| a.sequence)
                .max()
                .unwrap_or(0);
            (subject, acked)
        };
        let mut cs = clients(&addresses);
        if cs.is_empty() {
            continue;
        }
        let n = cs.len() as u64;
        let c = &mut cs[rng.below(n) as usize];
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(5), c.subject(&target.0)).await
        {
            history.reads.lock().expect("lock").push(Read {
                subject: target.0,
                acked_sequence: target.1,
                seen_next_sequence: s.next_sequence,
            });
        }
    }
}

impl Workload {
    pub fn start(
        addresses: Addresses,
        author: Arc<SigningKey>,
        writers: usize,
        readers: usize,
        seed: u64,
    ) -> Workload {
        let history = Arc::new(History::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for id in 0..writers {
            tasks.push(tokio::spawn(writer(
                id,
                addresses.clone(),
                author.clone(),
                history.clone(),
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(checkpoint_watch(
            addresses.clone(),
            history.clone(),
            stop.clone(),
        )));
        for r in 0..readers {
            tasks.push(tokio::spawn(reader(
                seed.wrapping_add(r as u64 + 1),
                addresses.clone(),
                history.clone(),
                stop.clone(),
            )));
        }
        Workload {
            history,
            stop,
            tasks,
        }
    }

    pub fn acked(&self) -> usize {
        self.history.acks.lock().expect("lock").len()
    }

    /// Stops the writers and readers and returns the record.
    pub async fn finish(self) -> Arc<History> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        self.history
    }
}

/// Acknowledged writes per subject, in sequence order.
pub fn acks_by_subject(acks: &[Ack]) -> BTreeMap<SubjectRef, Vec<Ack>> {
    let mut map: BTreeMap<SubjectRef, Vec<Ack>> = BTreeMap::new();
    for a in acks {
        map.entry(a.subject.clone()).or_default().push(a.clone());
    }
    for v in map.values_mut() {
        v.sort_by_key(|a| a.sequence);
    }
    map
}
