//! The security review's attacks on the Raft transport, replayed over real
//! sockets against a running 3-node cluster: each forged message is refused
//! with a clear error, the state does not change, and the cluster stays
//! healthy.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use ics_node::log::{LogId, SnapshotMeta, Vote};
use ics_pki::Holder;
use ics_proto::core_v1 as pb;
use ics_proto::core_v1::raft_transport_client::RaftTransportClient;
use tonic::Code;

/// The transfer form of a snapshot: the image frame, then one frame per
/// event in its stored form (its leaf's salt, then its envelope). The forger
/// does not know the salts the leader drew: it sends zeros.
fn transfer(image: &[u8], events: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(image.len() as u32).to_be_bytes());
    out.extend_from_slice(image);
    for event in events {
        out.extend_from_slice(&((16 + event.len()) as u32).to_be_bytes());
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(event);
    }
    out
}

/// Every applied event's envelope bytes, as `Watch` gives them.
async fn log_events(node: &TestNode, count: u64) -> Vec<Vec<u8>> {
    use prost::Message;
    let mut c = node.client();
    let mut stream = c
        .log
        .watch(pb::WatchRequest { from_index: 1 })
        .await
        .expect("watch")
        .into_inner();
    let mut out = Vec::new();
    while (out.len() as u64) < count {
        let e = stream.next().await.expect("more events").expect("event");
        out.push(e.event.expect("envelope").encode_to_vec());
    }
    out
}

/// Streams a snapshot to a peer listener as the node whose certificate
/// `client` presents.
async fn send_snapshot(
    mut client: RaftTransportClient<tonic::transport::Channel>,
    vote: &Vote,
    meta: &SnapshotMeta,
    data: Vec<u8>,
) -> Result<(), tonic::Status> {
    let header = postcard::to_stdvec(&(vote, meta)).unwrap();
    let mut chunks = vec![pb::SnapshotChunk {
        header,
        ..Default::default()
    }];
    for c in data.chunks(1 << 20) {
        chunks.push(pb::SnapshotChunk {
            data: c.to_vec(),
            ..Default::default()
        });
    }
    chunks.push(pb::SnapshotChunk {
        last: true,
        ..Default::default()
    });
    client
        .install_snapshot(futures::stream::iter(chunks))
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_snapshots_are_refused_before_install_and_change_nothing() {
    let cluster = start_cluster(3, "[limits]\nmax_snapshot_bytes = 2097152\n");
    cluster.wait_ready(Duration::from_secs(60)).await;
    let mut c = cluster.node(1).client();
    let author = cluster.device_author().await;
    for i in 0..5 {
        register_device(&mut c, &author, &format!("SN-{i}")).await;
    }
    let statuses = cluster.wait_converged(Duration::from_secs(30)).await;
    let leader = statuses[0].current_leader;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let target = cluster.node(follower);
    let before = target.status().await.expect("status");
    let events = log_events(target, before.event_count).await;
    assert_eq!(events.len() as u64, before.event_count);

    // Sent with the leader's own certificate: what a compromised leader
    // could do. The review's rollback: a vote of a higher term from a
    // member, the current membership, a prefix of the genuine log.
    let as_leader = || cluster.peer_client(leader, target);
    let term = before.term + 5;
    let vote: Vote = serde_json::from_value(serde_json::json!({
        "leader_id": {"term": term, "node_id": leader},
        "committed": true
    }))
    .unwrap();
    let last_log_id = |term: u64, index: u64| -> LogId {
        serde_json::from_value(serde_json::json!({
            "leader_id": {"term": term, "node_id": leader},
            "index": index
        }))
        .unwrap()
    };
    let membership = serde_json::json!({
        "log_id": null,
        "membership": {
            "configs": [[1, 2, 3]],
            "nodes": before.members.iter().map(|m| (m.id.to_string(), serde_json::json!({"addr": m.address}))).collect::<serde_json::Map<_, _>>()
        }
    });
    let meta = |last: LogId| -> SnapshotMeta {
        serde_json::from_value(serde_json::json!({
            "last_log_id": last,
            "last_membership": membership,
            "snapshot_id": "forged"
        }))
        .unwrap()
    };
    let far = before.raft_log_index + 1000;
    let prefix = transfer(b"image", &events[..2]);
    let err = send_snapshot(as_leader(), &vote, &meta(last_log_id(term, far)), prefix)
        .await
        .expect_err("a prefix of the log is a rollback");
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert_eq!(reason_of(&err), "SNAPSHOT_REFUSED");
    assert!(
        err.message().contains("roll the log back"),
        "{}",
        err.message()
    );

    // Empty: no events at all (the review's party wipe).
    let err = send_snapshot(
        as_leader(),
        &vote,
        &meta(last_log_id(term, far)),
        transfer(b"image", &[]),
    )
    .await
    .expect_err("an empty snapshot wipes the party");
    assert!(
        err.message().contains("roll the log back"),
        "{}",
        err.message()
    );

    // As many events as ours, but not ours: history rewritten.
    let mut swapped = events.clone();
    swapped.swap(1, 2);
    let err = send_snapshot(
        as_leader(),
        &vote,
        &meta(last_log_id(term, far)),
        transfer(b"image", &swapped),
    )
    .await
    .expect_err("other events");
    assert!(
        err.message().contains("rewrite history"),
        "{}",
        err.message()
    );

    // The very events, in order, but other salts: the transparency log's
    // leaves would change under the checkpoints already signed.
    let err = send_snapshot(
        as_leader(),
        &vote,
        &meta(last_log_id(term, far)),
        transfer(b"image", &events),
    )
    .await
    .expect_err("other leaves");
    assert!(
        err.message().contains("rewrite history"),
        "{}",
        err.message()
    );

    // Vote-inconsistent (F5): a last log id beyond the vote would trip an
    // assertion in openraft and stop the Raft core.
    let err = send_snapshot(
        as_leader(),
        &vote,
        &meta(last_log_id(term + 1, far)),
        transfer(b"image", &events),
    )
    .await
    .expect_err("beyond its vote");
    assert!(
        err.message().contains("beyond its sender's vote"),
        "{}",
        err.message()
    );

    // A stale vote is refused on the header, before any data is read.
    let stale: Vote = serde_json::from_value(serde_json::json!({
        "leader_id": {"term": 0, "node_id": leader},
        "committed": true
    }))
    .unwrap();
    let err = send_snapshot(
        as_leader(),
        &stale,
        &meta(last_log_id(0, far)),
        transfer(b"image", &events),
    )
    .await
    .expect_err("stale");
    assert!(
        err.message().contains("older than this node's vote"),
        "{}",
        err.message()
    );

    // A sender that is not a member.
    let stranger: Vote = serde_json::from_value(serde_json::json!({
        "leader_id": {"term": term, "node_id": 99},
        "committed": true
    }))
    .unwrap();
    let err = send_snapshot(
        cluster.peer_client(99, target),
        &stranger,
        &meta(
            serde_json::from_value(
                serde_json::json!({"leader_id": {"term": term, "node_id": 99}, "index": far}),
            )
            .unwrap(),
        ),
        transfer(b"image", &events),
    )
    .await
    .expect_err("not a member");
    assert_eq!(reason_of(&err), "NOT_A_MEMBER", "{}", err.message());

    // A stream that ends before its last chunk is a cut transfer, not a
    // forged snapshot: dropped without an alarm (the leader resends).
    let header = postcard::to_stdvec(&(vote, meta(last_log_id(term, far)))).unwrap();
    let cut = as_leader()
        .install_snapshot(futures::stream::iter(vec![pb::SnapshotChunk {
            header,
            data: transfer(b"image", &events),
            last: false,
        }]))
        .await
        .expect_err("cut short");
    assert_eq!(reason_of(&cut), "SNAPSHOT_INCOMPLETE", "{}", cut.message());

    // Oversized concurrent streams (F7): one stream at a time, and none
    // over the limit, spooled to disk rather than held.
    let big = vec![7u8; 3 << 20];
    let slow = {
        let mut client = as_leader();
        let (vote, meta) = (vote, meta(last_log_id(term, far)));
        tokio::spawn(async move {
            let header = postcard::to_stdvec(&(vote, meta)).unwrap();
            let chunks = futures::stream::iter(vec![pb::SnapshotChunk {
                header,
                data: vec![0; 1024],
                last: false,
            }])
            .chain(futures::stream::pending());
            let _ =
                tokio::time::timeout(Duration::from_secs(3), client.install_snapshot(chunks)).await;
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = send_snapshot(
        as_leader(),
        &vote,
        &meta(last_log_id(term, far)),
        big.clone(),
    )
    .await
    .expect_err("busy");
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert_eq!(reason_of(&err), "SNAPSHOT_BUSY");
    slow.await.unwrap();
    let err = send_snapshot(as_leader(), &vote, &meta(last_log_id(term, far)), big)
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert_eq!(reason_of(&err), "SNAPSHOT_TOO_LARGE");
    assert!(
        !target.dir.join("data/snapshot-incoming.tmp").exists(),
        "the spool file is removed"
    );

    // Nothing changed, the refusals were alarmed, and the cluster serves.
    let after = target.status().await.expect("status");
    assert_eq!(
        (
            after.event_count,
            &after.log_hash,
            &after.state_hash,
            &after.tree_root
        ),
        (
            before.event_count,
            &before.log_hash,
            &before.state_hash,
            &before.tree_root
        )
    );
    assert_eq!(after.state, "follower");
    // Six alarms; the non-member sender is refused before the snapshot
    // checks, as every Raft message from a non-member is (NOT_A_MEMBER).
    let alarms: Vec<String> = target
        .log()
        .lines()
        .filter(|l| l.contains("ALARM"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        metric(&target.http, "ics_snapshots_refused_total").await,
        6,
        "alarms raised:\n{}",
        alarms.join("\n")
    );
    register_device(&mut c, &author, "SN-after").await;
    let statuses = cluster.wait_converged(Duration::from_secs(30)).await;
    assert_eq!(statuses[0].event_count, before.event_count + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_leaders_membership_change_is_refused_and_health_tells_the_truth() {
    let cluster = start_cluster(3, "");
    cluster.wait_ready(Duration::from_secs(60)).await;
    let before = cluster.wait_converged(Duration::from_secs(30)).await;

    // F2: one AppendEntries per node from leader 99, carrying a membership
    // entry {99} and committing it.
    for (node, status) in cluster.nodes.iter().zip(&before) {
        let term = status.term + 50;
        let log_id = |index: u64| serde_json::json!({"leader_id": {"term": term, "node_id": 99}, "index": index});
        let prev = serde_json::json!({"leader_id": {"term": status.term, "node_id": status.current_leader}, "index": status.raft_log_index});
        let rpc: openraft::raft::AppendEntriesRequest<ics_node::log::TypeConfig> =
            serde_json::from_value(serde_json::json!({
                "vote": {"leader_id": {"term": term, "node_id": 99}, "committed": true},
                "prev_log_id": prev,
                "entries": [{
                    "log_id": log_id(status.raft_log_index + 1),
                    "payload": {"Membership": {"configs": [[99]], "nodes": {"99": {"addr": "127.0.0.1:1"}}}}
                }],
                "leader_commit": log_id(status.raft_log_index + 1)
            }))
            .expect("the review's message");
        let message = pb::RaftMessage {
            payload: postcard::to_stdvec(&rpc).unwrap(),
        };
        // With a certificate the party CA issued to node 99, which is no member.
        let err = cluster
            .peer_client(99, node)
            .append_entries(message.clone())
            .await
            .expect_err("a leader that is not a member");
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        assert_eq!(reason_of(&err), "NOT_A_MEMBER");
        assert!(err.message().contains("node 99"), "{}", err.message());
        // With a member's certificate, in node 99's name.
        let member = (1..=3).find(|id| *id != node.id).unwrap();
        let err = cluster
            .peer_client(member, node)
            .append_entries(message)
            .await
            .expect_err("another node's name");
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        assert_eq!(reason_of(&err), "PEER_ID_MISMATCH");
    }
    let after = cluster.wait_converged(Duration::from_secs(30)).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.members, a.members);
        assert_eq!(a.term, b.term, "no term bump from a refused message");
        assert!(a.ready, "{a:?}");
        assert!(
            http_get(&cluster.node(a.node_id).http, "/readyz")
                .await
                .starts_with("ready")
        );
    }

    // F6: a node removed from the cluster says it is not ready, with why:
    // it may never see the change that removed it, but it no longer hears
    // from the leader.
    let leader = after[0].current_leader;
    let removed = (1..=3).find(|id| *id != leader).unwrap();
    let mut c = cluster.node(leader).client();
    // Two voters would be left: refused unless forced, and nothing changes.
    let err = c
        .cluster
        .remove_node(pb::RemoveNodeRequest {
            id: removed,
            force: false,
        })
        .await
        .expect_err("below the safe count");
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert_eq!(reason_of(&err), "UNSAFE_MEMBERSHIP");
    assert_eq!(
        cluster.node(leader).status().await.unwrap().members,
        after[0].members
    );
    c.cluster
        .remove_node(pb::RemoveNodeRequest {
            id: removed,
            force: true,
        })
        .await
        .expect("remove");
    wait_until(
        "the removed node is not ready",
        Duration::from_secs(20),
        || async {
            cluster.node(removed).status().await.is_some_and(|s| {
                !s.ready
                    && ["not a member", "not heard from leader", "no leader"]
                        .iter()
                        .any(|why| s.not_ready.contains(why))
            })
        },
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(&cluster.node(removed).http)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("not ready: "), "{answer}");

    // Its certificate was revoked through the log with its removal: every
    // remaining node refuses it at the door from then on, without a restart.
    let remaining = (1..=3).find(|id| *id != leader && *id != removed).unwrap();
    wait_until(
        "the removed node's certificate revoked everywhere",
        Duration::from_secs(20),
        || async {
            let mut c = cluster.node(remaining).client();
            let certs = c
                .log
                .list_subjects(pb::ListSubjectsRequest {
                    kind: "tls-cert".into(),
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .subjects;
            certs
                .iter()
                .any(|s| s.summary.contains(&format!("node {removed} ")) && s.status == "revoked")
        },
    )
    .await;
    let err = cluster
        .peer_client(removed, cluster.node(remaining))
        .vote(pb::RaftMessage { payload: vec![] })
        .await
        .expect_err("a removed node's certificate");
    assert_ne!(
        err.code(),
        Code::PermissionDenied,
        "refused at the door: {}",
        err.message()
    );
    wait_until("the refusal logged", Duration::from_secs(5), || async {
        cluster.node(remaining).log().contains("is revoked")
    })
    .await;
}

/// `openssl s_client` against a peer listener with a client certificate;
/// its whole output.
fn s_client(
    peer: &str,
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            peer,
            "-tls1_3",
            "-showcerts",
            "-CAfile",
        ])
        .arg(ca)
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// The peer listener admits only a current node certificate of this party
/// whose node is a member: stock openssl sees TLS 1.3 and the chain; plain
/// text, the client port, another party's, an expired, an operator's and a
/// revoked certificate are refused, and the cluster stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_listener_admits_only_current_node_certificates_of_this_party() {
    let cluster = start_cluster(3, "");
    cluster.wait_ready(Duration::from_secs(60)).await;
    let before = cluster.wait_converged(Duration::from_secs(30)).await;
    let target = cluster.node(2);
    let ca = cluster.tls_root().join("ca/ca.crt");
    let node1 = cluster.node_tls(1);

    // A node's own certificate: TLS 1.3, the chain of the party CA.
    let ok = s_client(
        &target.peer,
        &ca,
        &node1.join("node.crt"),
        &node1.join("node.key"),
    );
    assert!(ok.contains("TLSv1.3"), "{ok}");
    assert!(ok.contains("Verify return code: 0 (ok)"), "{ok}");
    assert!(ok.contains("CN = node 2 of acme-maintenance"), "{ok}");
    assert!(ok.contains("CN = acme-maintenance TLS CA"), "{ok}");

    // Plain text on the peer port gets no answer but a closed connection,
    // and the client port does not serve the Raft transport at all.
    let mut plain = RaftTransportClient::connect(format!("http://{}", target.peer))
        .await
        .expect("TCP connects");
    let vote = pb::RaftMessage { payload: vec![] };
    assert!(
        plain.vote(vote.clone()).await.is_err(),
        "plain text was answered"
    );
    let mut on_api = RaftTransportClient::new(target.tls().channel(&target.grpc).unwrap());
    let err = on_api
        .vote(vote)
        .await
        .expect_err("not served on the API port");
    assert_eq!(err.code(), Code::Unimplemented, "{}", err.message());

    // Another party's node certificate, an expired one of ours, and an
    // operator's: refused during or right after the handshake, each logged.
    let other = tempfile::tempdir().unwrap();
    ics_node::tls::init_party(
        "other-party",
        other.path(),
        &[(1, loopback_names())],
        &[],
        ics_node::client::now_ms(),
        Duration::from_secs(3600),
    )
    .unwrap();
    let expired = tempfile::tempdir().unwrap();
    let expired_dir = expired.path().join("node-7");
    ics_node::tls::add_node(
        &cluster.tls_root().join("ca"),
        PARTY,
        7,
        &loopback_names(),
        &expired_dir,
        ics_node::client::now_ms() - 3 * 3600 * 1000,
        Duration::from_secs(3600),
    )
    .unwrap();
    let operator = cluster.tls_root().join("operator-admin");
    for (what, cert, key, logged) in [
        (
            "another party's",
            other.path().join("node-1/node.crt"),
            other.path().join("node-1/node.key"),
            "UnknownIssuer",
        ),
        (
            "an expired",
            expired_dir.join("node.crt"),
            expired_dir.join("node.key"),
            "certificate expired",
        ),
        (
            "an operator's",
            operator.join("operator.crt"),
            operator.join("operator.key"),
            "not of a node",
        ),
    ] {
        let out = s_client(&target.peer, &ca, &cert, &key);
        // TLS 1.3 sends the server's verdict on the client certificate after
        // the client's side of the handshake: the node's log has it.
        let _ = out;
        wait_until(
            &format!("{what} certificate refused"),
            Duration::from_secs(5),
            || async { target.log().contains(logged) },
        )
        .await;
    }

    // A certificate the log revoked: recorded, revoked by the CA key, and
    // from then on refused at the door.
    let revoked_dir = cluster.node_tls(8);
    let cert = ics_node::tls::load_cert(
        &ics_node::tls::TlsDir(revoked_dir.clone()),
        &Holder::Node(8),
    )
    .unwrap()
    .unwrap();
    let ca_key = ics_node::keyfile::read(&cluster.tls_root().join("ca/ca.key")).unwrap();
    let subject = ics_kernel::SubjectRef::new(ics_pki::TLS_CERT, cert.serial.clone());
    let issued = ics_node::client::signed(
        &ca_key,
        subject.clone(),
        ics_node::client::ChainHead::default(),
        ics_pki::PkiPayload::TlsCertIssued {
            certificate: cert.der.clone(),
        },
    );
    let mut c = cluster.node(1).client();
    c.append(vec![issued.clone()]).await.expect("recorded");
    c.append_next(
        &ca_key,
        &subject,
        ics_pki::PkiPayload::TlsCertRevoked {
            reason: "node decommissioned".into(),
        },
    )
    .await
    .expect("revoked");
    cluster.wait_converged(Duration::from_secs(30)).await;
    let err = cluster
        .peer_client(8, target)
        .vote(pb::RaftMessage { payload: vec![] })
        .await
        .expect_err("a revoked certificate");
    assert_ne!(
        err.code(),
        Code::PermissionDenied,
        "refused before any request: {}",
        err.message()
    );
    wait_until(
        "the revoked certificate refused",
        Duration::from_secs(5),
        || async { target.log().contains("is revoked") },
    )
    .await;

    // Counted: the refusals, and the accepted handshakes (a few per peer:
    // connections are reused).
    let refused = metric(
        &target.http,
        "ics_connections_refused_total{listener=\"peer\"}",
    )
    .await;
    assert!(refused >= 5, "{refused} refused");
    let handshakes = metric(
        &target.http,
        "ics_connections_accepted_total{listener=\"peer\"}",
    )
    .await;
    assert!(handshakes >= 2, "{handshakes} handshakes");

    // The cluster did not notice.
    let after = cluster.wait_converged(Duration::from_secs(30)).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.members, a.members);
        assert!(a.ready, "{a:?}");
    }
}

/// F9 on the peer listener: 500 idle connections that never start a
/// handshake beside a healthy cluster. They hold at most the handshake
/// slots, for at most the handshake deadline; the nodes already connected go
/// on replicating, and every idle connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_idle_connections_beside_healthy_peers_change_nothing() {
    use tokio::io::AsyncReadExt;
    let cluster = start_cluster(3, "");
    let leader = cluster.wait_ready(Duration::from_secs(60)).await;
    let author = cluster.device_author().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let target = cluster.node(follower);
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(tokio::net::TcpStream::connect(&target.peer).await.unwrap());
    }
    // Writes through the flooded follower (forwarded to the leader over its
    // established peer connection) and through the leader.
    let started = std::time::Instant::now();
    let mut latencies = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 {
            target
        } else {
            cluster.node(leader)
        };
        let t = std::time::Instant::now();
        register_device(&mut node.client(), &author, &format!("SN-flood-{i}")).await;
        latencies.push(t.elapsed());
    }
    latencies.sort();
    eprintln!(
        "20 writes beside 500 idle peer connections: p50 {:?}, max {:?}, {:?} in all",
        latencies[10],
        latencies[19],
        started.elapsed()
    );
    let statuses = cluster.wait_converged(Duration::from_secs(30)).await;
    assert!(statuses.iter().all(|s| s.ready), "{statuses:?}");
    // Every idle connection is closed at the handshake deadline, whether it
    // had a handshake turn or waited for one.
    let mut buf = [0u8; 16];
    for c in idle.iter_mut() {
        let n = tokio::time::timeout(Duration::from_secs(15), c.read(&mut buf))
            .await
            .expect("an idle peer connection is closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let refused = metric(
        &target.http,
        "ics_connections_refused_total{listener=\"peer\"}",
    )
    .await;
    assert!(refused >= 500, "{refused} refused");
    register_device(&mut target.client(), &author, "SN-after-flood").await;
}
