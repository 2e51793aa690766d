//! Multi-node tests against real `icsd` processes on loopback: leader kill
//! under load, catch-up by log and by snapshot, SIGKILL mid-write.

mod common;

use ics_identity::payload::DeviceStatus;
use ics_kernel::{Algorithm, Envelope, EventId, SigningKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ics_node::client::{self, ChainHead, Client};
use ics_proto::core_v1 as pb;
use tonic::Code;

/// Appends with retries across nodes, the way a client rides out a leader
/// change: the same signed bytes are resent, so a retry of an event that did
/// commit comes back as a duplicate with its original index.
async fn append_retrying(
    clients: &mut [Client],
    start: usize,
    env: &Envelope,
) -> pb::AppendedEvent {
    let mut i = start;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let c = &mut clients[i % clients.len()];
        match tokio::time::timeout(Duration::from_secs(10), c.append(vec![env.clone()])).await {
            Ok(Ok(mut out)) => return out.remove(0),
            Ok(Err(e)) => {
                let refusal = matches!(
                    e.code(),
                    Code::InvalidArgument
                        | Code::PermissionDenied
                        | Code::Unauthenticated
                        | Code::FailedPrecondition
                        | Code::AlreadyExists
                        | Code::Aborted
                );
                assert!(
                    !refusal,
                    "event refused during the run: {:?} {}",
                    e.code(),
                    e.message()
                );
            }
            Err(_) => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "append did not succeed within 120 s"
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One client's workload: devices registered and moved through statuses,
/// each event chained on the client's own previous one.
async fn client_workload(
    addrs: Vec<String>,
    tls: client::ClientTls,
    me: usize,
    author: Arc<SigningKey>,
    events: usize,
    acked: Arc<Mutex<Vec<(EventId, u64)>>>,
) {
    let mut clients: Vec<Client> = addrs
        .iter()
        .map(|a| Client::connect(a, &tls).expect("client"))
        .collect();
    let mut device = String::new();
    let mut head = ChainHead::default();
    for i in 0..events {
        let env = if i % 5 == 0 {
            let key = SigningKey::generate(Algorithm::Ed25519).public_key();
            device = key.id().to_hex();
            head = ChainHead::default();
            client::register_device(&author, &format!("c{me}-d{i}"), &key, vec![])
        } else {
            let status = if i % 2 == 1 {
                DeviceStatus::InUse
            } else {
                DeviceStatus::Lost
            };
            client::change_status(&author, &device, head, status, "load")
        };
        let id = EventId::of_body(&env.body);
        let out = append_retrying(&mut clients, me, &env).await;
        assert_eq!(out.event_id, id.0.to_vec());
        head = ChainHead {
            sequence: head.sequence + 1,
            previous: Some(id),
        };
        acked.lock().unwrap().push((id, out.index));
    }
}

async fn check_every_node_has(cluster: &Cluster, acked: &[(EventId, u64)]) {
    for n in &cluster.nodes {
        let mut c = n.client();
        for (id, index) in acked {
            let e = c
                .log
                .get_event(pb::GetEventRequest {
                    event_id: id.0.to_vec(),
                    consistency: pb::ReadConsistency::Stale as i32,
                })
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "node {} lacks acknowledged event {id}: {}",
                        n.id,
                        e.message()
                    )
                })
                .into_inner();
            assert_eq!(
                e.index, *index,
                "node {} has event {id} at another index",
                n.id
            );
        }
    }
}

fn assert_same_state(statuses: &[pb::StatusResponse]) {
    for s in statuses {
        assert_eq!(
            s.event_count, statuses[0].event_count,
            "event count differs on node {}",
            s.node_id
        );
        assert_eq!(
            s.log_hash, statuses[0].log_hash,
            "log order differs on node {}",
            s.node_id
        );
        assert_eq!(
            s.state_hash, statuses[0].state_hash,
            "projection differs on node {}",
            s.node_id
        );
        // The transparency log's tree: built entry by entry, rebuilt at a
        // snapshot install, or read back from disk after a restart, the same.
        assert_eq!(s.tree_root.len(), 32);
        assert_eq!(
            s.tree_root, statuses[0].tree_root,
            "transparency log root differs on node {}",
            s.node_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_sigkill_under_eight_clients_loses_no_acknowledged_event() {
    let mut cluster = start_cluster(3, "");
    let leader = cluster.wait_ready(Duration::from_secs(30)).await;
    let author = Arc::new(cluster.device_author().await);
    // The genesis, the party's TLS record and the author registration.
    let base = cluster.event_count(leader).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (clients, per_client) = (8, 125);
    let mut tasks = Vec::new();
    for me in 0..clients {
        tasks.push(tokio::spawn(client_workload(
            cluster.addresses(),
            cluster.client_tls(),
            me,
            author.clone(),
            per_client,
            acked.clone(),
        )));
    }
    let count = || acked.lock().unwrap().len();
    let t0 = std::time::Instant::now();
    wait_until(
        "250 acknowledged appends",
        Duration::from_secs(120),
        || async { count() >= 250 },
    )
    .await;
    eprintln!(
        "250 acked after {:?}; killing leader {leader}",
        t0.elapsed()
    );
    cluster.node_mut(leader).kill();
    let killed_at = count();
    let new_leader = cluster.wait_ready(Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader, "a surviving node must lead");
    eprintln!("node {new_leader} leads after {:?}", t0.elapsed());
    wait_until(
        "appends after the kill",
        Duration::from_secs(120),
        || async { count() >= killed_at + 250 },
    )
    .await;
    eprintln!(
        "{} acked after {:?}; restarting node {leader}",
        count(),
        t0.elapsed()
    );
    cluster.node_mut(leader).start();
    for t in tasks {
        t.await.expect("client task");
    }
    eprintln!("clients done after {:?}", t0.elapsed());
    let statuses = cluster.wait_converged(Duration::from_secs(60)).await;
    eprintln!("converged after {:?}", t0.elapsed());
    assert_same_state(&statuses);
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), clients * per_client);
    let distinct: HashMap<EventId, u64> = acked.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        acked.len(),
        "an event was acknowledged twice"
    );
    let mut indexes: Vec<u64> = acked.iter().map(|a| a.1).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), acked.len(), "two events share an index");
    // What was there before, then exactly the acknowledged events.
    assert_eq!(statuses[0].event_count, acked.len() as u64 + base);
    check_every_node_has(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_follower_catches_up_by_log_then_by_snapshot() {
    let mut cluster = start_cluster(
        3,
        "[raft]\nsnapshot_after_entries = 20\nentries_kept_after_snapshot = 5\n",
    );
    let leader = cluster.wait_ready(Duration::from_secs(30)).await;
    let author = Arc::new(cluster.device_author().await);
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let addrs: Vec<String> = (1..=3)
        .filter(|&i| i != follower)
        .map(|i| cluster.node(i).grpc.clone())
        .collect();
    let acked = Arc::new(Mutex::new(Vec::new()));

    // By log: a few entries, under the snapshot threshold.
    cluster.node_mut(follower).kill();
    client_workload(
        addrs.clone(),
        cluster.client_tls(),
        0,
        author.clone(),
        3,
        acked.clone(),
    )
    .await;
    cluster.node_mut(follower).start();
    assert_same_state(&cluster.wait_converged(Duration::from_secs(60)).await);
    assert!(!cluster.node(follower).log().contains("snapshot installed"));

    // By snapshot: enough single-event entries that the leader snapshots and
    // purges the log the follower would need.
    let behind = cluster
        .node(follower)
        .status()
        .await
        .unwrap()
        .raft_log_index;
    cluster.node_mut(follower).kill();
    client_workload(
        addrs,
        cluster.client_tls(),
        1,
        author.clone(),
        80,
        acked.clone(),
    )
    .await;
    wait_until(
        "the leader to purge past the stopped follower",
        Duration::from_secs(60),
        || async {
            let s = cluster.node(leader).status().await;
            s.is_some_and(|s| s.raft_purged_index > behind)
        },
    )
    .await;
    cluster.node_mut(follower).start();
    let statuses = cluster.wait_converged(Duration::from_secs(60)).await;
    assert_same_state(&statuses);
    assert!(
        cluster.node(follower).log().contains("snapshot installed"),
        "the follower should have caught up by snapshot"
    );
    let acked = acked.lock().unwrap().clone();
    check_every_node_has(&cluster, &acked).await;

    // And the follower reopens from its installed snapshot's state image,
    // deciding again only the events after it.
    cluster.node_mut(follower).kill();
    cluster.node_mut(follower).start();
    assert_same_state(&cluster.wait_converged(Duration::from_secs(60)).await);
    let log = cluster.node(follower).log();
    let reopened = log
        .lines()
        .rfind(|l| l.contains("state machine opened"))
        .expect("the follower logged its start");
    let from_image: u64 = reopened
        .split("from_image=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no from_image field in {reopened:?}"));
    assert!(
        from_image > 0,
        "the follower should restart from its state image: {reopened}"
    );
}

/// A follower behind by more entries than one message carries catches up by
/// log: the leader sends what fits and goes on from there (the transport
/// cuts openraft's append requests to the message limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_behind_by_more_than_a_message_catches_up() {
    let mut cluster = start_cluster(3, "");
    let leader = cluster.wait_ready(Duration::from_secs(30)).await;
    let author = cluster.device_author().await;
    let base = cluster.event_count(leader).await;
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    cluster.node_mut(follower).kill();
    let mut c = cluster.node(leader).client();
    // 160 batches of 100 registrations: about 5 MiB of entries, over the
    // 4 MiB a message may carry by default.
    for b in 0..160 {
        let batch: Vec<Envelope> = (0..100)
            .map(|i| {
                let key = SigningKey::generate(Algorithm::Ed25519).public_key();
                client::register_device(&author, &format!("big-{b}-{i}"), &key, vec![])
            })
            .collect();
        c.append(batch).await.expect("batch appended");
    }
    cluster.node_mut(follower).start();
    let statuses = cluster.wait_converged(Duration::from_secs(60)).await;
    assert_same_state(&statuses);
    assert!(statuses.iter().all(|s| s.event_count == base + 16_000));
    assert!(
        !cluster.node(follower).log().contains("snapshot installed"),
        "the follower should have caught up by log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_dir_survives_sigkill_mid_write() {
    let mut cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let author = Arc::new(cluster.device_author().await);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let addr = cluster.node(1).grpc.clone();
    let tls = cluster.client_tls();
    // Four writers; the node dies under them.
    let mut tasks = Vec::new();
    for me in 0..4 {
        let (addr, author, acked) = (addr.clone(), author.clone(), acked.clone());
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&addr, &tls).unwrap();
            for i in 0..10_000 {
                let key = SigningKey::generate(Algorithm::Ed25519).public_key();
                let env = client::register_device(&author, &format!("w{me}-{i}"), &key, vec![]);
                match c.append(vec![env.clone()]).await {
                    Ok(out) => acked
                        .lock()
                        .unwrap()
                        .push((EventId::of_body(&env.body), out[0].index)),
                    Err(_) => return,
                }
            }
        }));
    }
    let count = || acked.lock().unwrap().len();
    wait_until(
        "200 acknowledged appends",
        Duration::from_secs(60),
        || async { count() >= 200 },
    )
    .await;
    cluster.node_mut(1).kill();
    for t in tasks {
        t.await.unwrap();
    }
    cluster.node_mut(1).start();
    cluster.wait_ready(Duration::from_secs(30)).await;
    let acked = acked.lock().unwrap().clone();
    check_every_node_has(&cluster, &acked).await;
    let s = cluster.node(1).status().await.unwrap();
    assert!(s.event_count >= acked.len() as u64 + 2);
    // It still takes writes after reopening.
    let key = SigningKey::generate(Algorithm::Ed25519).public_key();
    cluster
        .node(1)
        .client()
        .append(vec![client::register_device(
            &author,
            "after-restart",
            &key,
            vec![],
        )])
        .await
        .expect("append after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_a_node_through_membership_changes() {
    let mut cluster = start_cluster(3, "");
    let leader = cluster.wait_ready(Duration::from_secs(30)).await;
    let author = Arc::new(cluster.device_author().await);
    let acked = Arc::new(Mutex::new(Vec::new()));
    client_workload(
        cluster.addresses(),
        cluster.client_tls(),
        0,
        author.clone(),
        10,
        acked.clone(),
    )
    .await;

    // Node 4 starts empty and waits; a follower is asked to add it (forwarded to the leader).
    let new_addr = cluster.start_extra_node(4).peer.clone();
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let members = cluster
        .node(follower)
        .client()
        .cluster
        .add_node(pb::AddNodeRequest {
            id: 4,
            address: new_addr,
            learner_only: false,
        })
        .await
        .expect("add node 4")
        .into_inner()
        .members;
    assert_eq!(members.iter().filter(|m| m.voter).count(), 4, "{members:?}");
    assert_same_state(&cluster.wait_converged(Duration::from_secs(60)).await);

    // Remove a follower that is not node 4, then stop it.
    let gone = (1..=3)
        .find(|&i| i != leader && i != follower)
        .unwrap_or(follower);
    let members = cluster
        .node(leader)
        .client()
        .cluster
        .remove_node(pb::RemoveNodeRequest {
            id: gone,
            force: false,
        })
        .await
        .expect("remove node")
        .into_inner()
        .members;
    assert!(members.iter().all(|m| m.id != gone), "{members:?}");
    cluster.drop_node(gone);

    // The three remaining voters keep taking writes and agree.
    client_workload(
        cluster.addresses(),
        cluster.client_tls(),
        1,
        author,
        10,
        acked.clone(),
    )
    .await;
    assert_same_state(&cluster.wait_converged(Duration::from_secs(60)).await);
    let acked = acked.lock().unwrap().clone();
    check_every_node_has(&cluster, &acked).await;

    // Removing a node that is not a member names it.
    let err = cluster
        .node(leader)
        .client()
        .cluster
        .remove_node(pb::RemoveNodeRequest {
            id: 99,
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("node 99"));
}
