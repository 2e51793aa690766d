//! The transparency log from outside: a Python checker that shares no code
//! with ours (its own RFC 6962 hashing, and `pymerkle`) reads the tiles of a
//! running 3-node cluster over HTTPS and recomputes the root every node
//! reports.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use ics_kernel::SubjectRef;
use ics_node::client;

/// A Python with `pymerkle`, in a virtual environment under `target/`
/// (made on first use; pip reaches PyPI).
fn python_with_pymerkle() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/py-tlog");
    let python = venv.join("bin/python");
    let ready = || {
        Command::new(&python)
            .args(["-c", "import pymerkle, cryptography"])
            .status()
            .is_ok_and(|s| s.success())
    };
    // Tests of this binary run at once: one makes the environment, the
    // others wait for it.
    let lock = venv.with_extension("lock");
    std::fs::create_dir_all(venv.parent().expect("target/")).expect("create target/");
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while !ready() {
        let mine = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => panic!("create {}: {e}", lock.display()),
        };
        if !mine {
            assert!(
                std::time::Instant::now() < deadline,
                "{} held for 10 minutes: remove it if no test runs",
                lock.display()
            );
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .expect("run python3 (is it installed?)");
        let installed = made.success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "pymerkle==7.0.0", "cryptography==46.0.3"])
                .status()
                .expect("run pip")
                .success();
        std::fs::remove_file(&lock).ok();
        assert!(
            installed,
            "python3 -m venv (python3-venv installed?) or pip install pymerkle cryptography failed"
        );
    }
    assert!(ready(), "pymerkle is not importable in {}", venv.display());
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymerkle_recomputes_every_nodes_root_from_the_served_tiles() {
    let python = python_with_pymerkle();
    let cluster = start_cluster(3, "");
    cluster.wait_ready(Duration::from_secs(60)).await;
    let author = cluster.device_author().await;
    let mut c = cluster.node(1).client();
    // More than a full tile of leaves, so full and partial tiles are read.
    for i in 0..300 {
        register_device(&mut c, &author, &format!("SN-T{i:03}")).await;
    }
    let statuses = cluster.wait_converged(Duration::from_secs(60)).await;
    let root = &statuses[0].tree_root;
    assert_eq!(root.len(), 32);
    assert!(statuses.iter().all(|s| &s.tree_root == root));
    for node in &cluster.nodes {
        let report = python_check(
            &python,
            "tlog_tiles.py",
            node,
            &[&statuses[0].event_count.to_string(), &hex::encode(root)],
        );
        assert_eq!(report["pymerkle_root"], hex::encode(root));
        assert_eq!(report["tampered_rejected"], true);
    }

    // Proofs from a follower, through icsctl (which checks them itself),
    // checked again by the Python verifier written from RFC 9162.
    let size = statuses[0].event_count;
    let ids = event_ids(cluster.node(2), size).await;
    let follower = cluster.node(2);
    let run = |args: &[String]| {
        let out = Command::new(icsctl())
            .arg("--json")
            .arg("--server")
            .arg(&follower.grpc)
            .arg("--tls-dir")
            .arg(&follower.client_tls)
            .arg("log")
            .args(args)
            .output()
            .expect("run icsctl");
        assert!(
            out.status.success(),
            "icsctl log {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mut lines = String::new();
    for (index, tree_size) in [
        (1, 0),
        (2, 0),
        (100, 0),
        (256, 0),
        (257, 0),
        (size, 0),
        (5, 5),
        (200, 300),
    ] {
        lines += &run(&[
            "proof".into(),
            "--event".into(),
            hex::encode(&ids[index as usize - 1]),
            "--tree-size".into(),
            tree_size.to_string(),
        ]);
    }
    for (old, new) in [
        (0, 0),
        (1, 0),
        (7, 0),
        (255, 256),
        (256, 300),
        (100, 200),
        (size, 0),
    ] {
        lines += &run(&[
            "consistency".into(),
            "--old".into(),
            old.to_string(),
            "--new".into(),
            new.to_string(),
        ]);
    }
    let mut checker = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/tlog_proofs.py"
        ))
        .arg(size.to_string())
        .arg(hex::encode(root))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the Python proof checker");
    {
        use std::io::Write;
        checker
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
    }
    let out = checker.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("proofs: {report}");
    assert!(out.status.success(), "{report}");
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(report["inclusions"], 8);
    assert_eq!(report["consistencies"], 7);
}

/// Runs the Python checker `script` against `node`'s HTTPS side (its URL,
/// the party CA, then `args`); its JSON report, which must say it passed.
fn python_check(
    python: &std::path::Path,
    script: &str,
    node: &TestNode,
    args: &[&str],
) -> serde_json::Value {
    let port = node.https.rsplit(':').next().unwrap();
    let out = Command::new(python)
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/python")
                .join(script),
        )
        .arg(format!("https://localhost:{port}"))
        .arg(node.client_tls.join("ca.crt"))
        .args(args)
        .output()
        .expect("run the Python checker");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("node {} ({script}): {report}", node.id);
    assert!(
        out.status.success(),
        "node {} ({script}): {report}{}",
        node.id,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(report.trim()).unwrap()
}

/// Runs `icsctl --json log ARGS` against `node`; its stdout, or its stderr
/// as the error.
fn icsctl_log(node: &TestNode, args: &[&str]) -> Result<String, String> {
    icsctl_at(node, &[&["log"], args].concat())
}

/// Checkpoints are signed by the leader, committed through the log and
/// served by every node; a Python checker sharing no code with ours
/// verifies each node's under the log's vkey against the tiles it serves,
/// and refuses a bent signature and a properly signed fork.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_checkpoints_verify_outside_and_a_fork_is_refused() {
    use ics_tlog::note::{self, Checkpoint, NoteVerifier};
    let python = python_with_pymerkle();
    let cluster = start_cluster(3, "[tlog]\ncheckpoint_interval_ms = 200\n");
    cluster.wait_ready(Duration::from_secs(60)).await;
    let author = cluster.device_author().await;
    let mut c = cluster.node(1).client();
    for i in 0..299 {
        register_device(&mut c, &author, &format!("SN-C{i:03}")).await;
    }
    // The log's size once the last write is in (a checkpoint never covers
    // its own leaf, so not the event count, which may end in one).
    let written = register_device_at(&mut c, &author, "SN-C299").await.1;

    // The log key every node holds, as the party's material has it.
    let material = cluster.node(1).client_tls.parent().unwrap().to_path_buf();
    let key = ics_node::tls::load_log_key(&ics_node::tls::TlsDir(material.join("node-1")))
        .expect("read the log key")
        .expect("the material has a log key");
    let ics_kernel::SigningKey::Ed25519(signer) = &key else {
        panic!("the log key is Ed25519")
    };
    let origin = ics_tlog::log_origin(PARTY);
    let vkey = NoteVerifier {
        name: origin.clone(),
        key: signer.verifying_key(),
    }
    .vkey();

    // Every node soon serves a checkpoint covering what was written,
    // verified by icsctl under the pinned key.
    let mut seen = Vec::new();
    for node in &cluster.nodes {
        let mut latest = serde_json::Value::Null;
        wait_until(
            "a checkpoint covering the writes",
            Duration::from_secs(30),
            || {
                let r = icsctl_log(node, &["checkpoint", "--vkey", &vkey]);
                let covers = r.as_ref().is_ok_and(|out| {
                    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
                    let ok = v["size"].as_u64().unwrap() >= written;
                    latest = v;
                    ok
                });
                async move { covers }
            },
        )
        .await;
        assert_eq!(latest["vkey"], vkey, "node {}: the bound key", node.id);
        assert_eq!(latest["verified"], true);
        assert_eq!(latest["vkey_pinned"], true);
        seen.push(latest["size"].as_u64().unwrap());
    }
    // A proof against the latest checkpoint, from a follower, and a key
    // that is not the log's refused.
    let ids = event_ids(cluster.node(2), 5).await;
    let proof = icsctl_log(
        cluster.node(2),
        &[
            "proof",
            "--event",
            &hex::encode(&ids[4]),
            "--checkpoint",
            "--vkey",
            &vkey,
        ],
    )
    .expect("a proof against the checkpoint");
    assert!(proof.contains("\"verified\":true"), "{proof}");
    let ics_kernel::SigningKey::Ed25519(other) =
        ics_kernel::SigningKey::generate(ics_kernel::Algorithm::Ed25519)
    else {
        unreachable!()
    };
    let stranger = NoteVerifier {
        name: origin.clone(),
        key: other.verifying_key(),
    }
    .vkey();
    let refused = icsctl_log(cluster.node(3), &["checkpoint", "--vkey", &stranger])
        .expect_err("a checkpoint under another key");
    assert!(refused.contains("does not verify"), "{refused}");

    // A fork: the same size as a served checkpoint, another root, signed
    // with the real key (as a compromised or split leader would).
    let fork_size = *seen.iter().min().unwrap();
    let fork = note::sign(
        &origin,
        signer,
        &Checkpoint {
            origin: origin.clone(),
            size: fork_size,
            root: [0x42; 32],
        }
        .text(),
    )
    .unwrap();
    let fork_file = material.join("fork.note");
    std::fs::write(&fork_file, fork.to_bytes()).unwrap();
    for node in &cluster.nodes {
        let report = python_check(
            &python,
            "tlog_checkpoint.py",
            node,
            &[&vkey, fork_file.to_str().unwrap()],
        );
        assert_eq!(report["origin"], origin.as_str());
        assert!(report["size"].as_u64().unwrap() >= fork_size);
        for check in [
            "root_matches_tiles",
            "bent_signature_refused",
            "fork_refused",
            "honest_accepted",
        ] {
            assert_eq!(report[check], true, "node {}: {check}", node.id);
        }
    }
    // The fork never entered any node: each still serves checkpoints of
    // its own tree (the checker recomputed the root from the tiles).
    let statuses = cluster.wait_converged(Duration::from_secs(30)).await;
    assert!(
        statuses
            .iter()
            .all(|s| s.tree_root == statuses[0].tree_root)
    );
}

/// A node SIGKILLed while checkpoints are being signed reopens its store:
/// the events it replays include checkpoints, each decided again over the
/// tree before it. Leader and follower both, then all agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_killed_among_checkpoints_reopen_and_agree() {
    let mut cluster = start_cluster(3, "[tlog]\ncheckpoint_interval_ms = 50\n");
    let leader = cluster.wait_ready(Duration::from_secs(60)).await;
    let author = cluster.device_author().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    for (round, victim) in [follower, leader].into_iter().enumerate() {
        let writer = (1..=3).find(|id| *id != victim).unwrap();
        let mut c = cluster.node(writer).client();
        for i in 0..39 {
            register_device(&mut c, &author, &format!("SN-K{round}-{i:02}")).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let written = register_device_at(&mut c, &author, &format!("SN-K{round}-39"))
            .await
            .1;
        let before = cluster.node(writer).status().await.expect("status");
        cluster.node_mut(victim).kill();
        cluster.node_mut(victim).start();
        cluster.wait_ready(Duration::from_secs(60)).await;
        let statuses = cluster.wait_converged(Duration::from_secs(60)).await;
        assert!(
            statuses[0].event_count >= before.event_count,
            "{statuses:?}"
        );
        assert!(
            statuses
                .iter()
                .all(|s| s.tree_root == statuses[0].tree_root)
        );
        let log = cluster.node(victim).log();
        assert!(!log.contains("does not replay"), "node {victim}: {log}");
        // Checkpointing goes on over what was written before the kill, on
        // the restarted node too (after the leader's kill, by a new leader).
        let restarted = cluster.node(victim);
        wait_until(
            "a checkpoint covering the writes",
            Duration::from_secs(30),
            || async {
                let mut c = restarted.client();
                c.tlog
                    .checkpoint(ics_proto::tlog_v1::CheckpointRequest { size: 0 })
                    .await
                    .is_ok_and(|r| r.into_inner().size >= written)
            },
        )
        .await;
    }
}

/// The ids of the first `count` applied events, in order.
async fn event_ids(node: &TestNode, count: u64) -> Vec<Vec<u8>> {
    use futures::StreamExt;
    let mut stream = node
        .client()
        .log
        .watch(ics_proto::core_v1::WatchRequest { from_index: 1 })
        .await
        .expect("watch")
        .into_inner();
    let mut ids = Vec::new();
    while (ids.len() as u64) < count {
        let e = stream.next().await.expect("more events").expect("event");
        assert_eq!(e.index, ids.len() as u64 + 1);
        ids.push(e.event_id);
    }
    ids
}

/// Proof requests the log cannot answer are refused with a reason, and
/// change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_the_log_cannot_give_are_refused_with_a_reason() {
    use ics_proto::tlog_v1 as tpb;
    let cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let node = cluster.node(1);
    // The genesis and the node's TLS records at least.
    wait_until("three events", Duration::from_secs(30), || async {
        node.status().await.is_some_and(|s| s.event_count >= 3)
    })
    .await;
    let before = node.status().await.expect("status");
    let ids = event_ids(node, before.event_count).await;
    let mut c = node.client();
    let cases = [
        (
            tpb::InclusionProofRequest {
                event_id: vec![7; 32],
                tree_size: 0,
            },
            tonic::Code::NotFound,
            "EVENT_NOT_FOUND",
        ),
        (
            tpb::InclusionProofRequest {
                event_id: vec![7; 5],
                tree_size: 0,
            },
            tonic::Code::InvalidArgument,
            "MALFORMED_REQUEST",
        ),
        (
            tpb::InclusionProofRequest {
                event_id: ids[2].clone(),
                tree_size: before.event_count + 1,
            },
            tonic::Code::OutOfRange,
            "TREE_SIZE_AHEAD",
        ),
        (
            tpb::InclusionProofRequest {
                event_id: ids[2].clone(),
                tree_size: 2,
            },
            tonic::Code::OutOfRange,
            "LEAF_BEYOND_TREE",
        ),
    ];
    for (req, code, reason) in cases {
        let err = c.tlog.inclusion_proof(req).await.expect_err(reason);
        assert_eq!(
            (err.code(), reason_of(&err).as_str()),
            (code, reason),
            "{}",
            err.message()
        );
    }
    let err = c
        .tlog
        .consistency_proof(tpb::ConsistencyProofRequest {
            old_size: 4,
            new_size: 3,
        })
        .await
        .expect_err("old beyond new");
    assert_eq!(reason_of(&err), "BAD_TREE_SIZES", "{}", err.message());
    assert!(err.message().contains("old_size 4 is beyond new_size 3"));
    let after = node.status().await.expect("status");
    assert_eq!(
        (after.event_count, &after.tree_root),
        (before.event_count, &before.tree_root)
    );
}

/// Tile reads past a caller's budget are refused with 429 naming the limit;
/// the tiles it did get are the tree's, and a refused read changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tile_reads_over_a_callers_budget_are_refused() {
    let cluster = start_cluster(
        1,
        "[limits]\nmax_tile_reads_per_client_per_second = 1\ntile_client_burst = 2\n",
    );
    cluster.wait_ready(Duration::from_secs(30)).await;
    let node = cluster.node(1);
    let before = node.status().await.expect("status");
    let (status, first) = http_request(&node.http, "/tile/0/000.p/1").await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(first.len(), 32);
    let (status, _) = http_request(&node.http, "/tile/0/000.p/1").await;
    assert!(status.contains(" 200 "), "{status}");
    let (status, body) = http_request(&node.http, "/tile/0/000.p/1").await;
    assert!(status.contains(" 429 "), "{status}");
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("over its limit of 1 tile reads per second"),
        "{body}"
    );
    let after = node.status().await.expect("status");
    assert_eq!(
        (after.event_count, &after.tree_root),
        (before.event_count, &before.tree_root)
    );
    // A second later the budget has refilled: the same tile, the same bytes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, again) = http_request(&node.http, "/tile/0/000.p/1").await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(again, first);
}

/// A subject's history is proven event by event against the latest
/// checkpoint, and a whole downloaded copy recomputes its root; under a key
/// that is not the log's, both are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_and_a_whole_copy_verify_against_a_checkpoint() {
    use ics_tlog::note::NoteVerifier;
    let cluster = start_cluster(1, "[tlog]\ncheckpoint_interval_ms = 100\n");
    cluster.wait_ready(Duration::from_secs(60)).await;
    let author = cluster.device_author().await;
    let mut c = cluster.node(1).client();
    let mut devices = Vec::new();
    for i in 0..40 {
        devices.push(register_device(&mut c, &author, &format!("SN-V{i:02}")).await);
    }
    let device = devices[7].id.clone();
    let written = register_device_at(&mut c, &author, "SN-V40").await.1;
    let node = cluster.node(1);
    let key = ics_node::tls::load_log_key(&ics_node::tls::TlsDir(node.dir.join("data/tls")))
        .unwrap()
        .unwrap();
    let ics_kernel::SigningKey::Ed25519(signer) = &key else {
        panic!("the log key is Ed25519")
    };
    let vkey = NoteVerifier {
        name: ics_tlog::log_origin(PARTY),
        key: signer.verifying_key(),
    }
    .vkey();

    // The device's history: every event proven in the checkpoint (text mode
    // says how many and in which checkpoint).
    let out = Command::new(icsctl())
        .args(["--server", &node.grpc, "--tls-dir"])
        .arg(&node.client_tls)
        .args(["history", &device, "--verify", "--vkey", &vkey])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "1 event(s) of device/{device} proven in ics/acme-maintenance/log's checkpoint"
        )),
        "{text}"
    );

    // The whole log, downloaded and recomputed, written out as it was
    // checked, once a checkpoint covers the writes.
    wait_until(
        "a checkpoint covering the writes",
        Duration::from_secs(30),
        || {
            let r = icsctl_log(node, &["checkpoint"]);
            let ok = r.is_ok_and(|o| json_of(&o)["size"].as_u64().unwrap() >= written);
            async move { ok }
        },
    )
    .await;
    let copy = node.dir.join("copy.jsonl");
    let out = icsctl_at(
        node,
        &[
            "log",
            "verify",
            "--vkey",
            &vkey,
            "--out",
            copy.to_str().unwrap(),
        ],
    )
    .expect("the copy verifies");
    let report = json_of(&out);
    assert_eq!(report["verified"], true);
    let size = report["size"].as_u64().unwrap();
    assert!(size > 40, "{report}");
    let lines = std::fs::read_to_string(&copy).unwrap();
    assert_eq!(lines.lines().count() as u64, size);
    // The copy's leaves (salt, then SHA-256 of the envelope, hashed here)
    // give the checkpoint's root, as icsctl found.
    let leaves: Vec<Vec<u8>> = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let mut entry = hex::decode(v["salt"].as_str().unwrap()).unwrap();
            let envelope = hex::decode(v["envelope"].as_str().unwrap()).unwrap();
            use sha2::Digest;
            entry.extend_from_slice(&sha2::Sha256::digest(&envelope));
            entry
        })
        .collect();
    let mut tree = ics_tlog::merkle::MemoryTree::new();
    for l in &leaves {
        tree.append(ics_tlog::merkle::leaf_hash(l));
    }
    assert_eq!(hex::encode(tree.root()), report["root"].as_str().unwrap());

    // Another key: refused, for the history and the copy.
    let ics_kernel::SigningKey::Ed25519(other) =
        ics_kernel::SigningKey::generate(ics_kernel::Algorithm::Ed25519)
    else {
        unreachable!()
    };
    let stranger = NoteVerifier {
        name: ics_tlog::log_origin(PARTY),
        key: other.verifying_key(),
    }
    .vkey();
    let err = icsctl_at(node, &["log", "verify", "--vkey", &stranger]).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
    let err = icsctl_at(node, &["history", &device, "--verify", "--vkey", &stranger]).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
}

/// One single-node party of each name, with checkpoints; returns them with
/// their log keys' vkeys.
async fn parties(names: &[&str]) -> Vec<(Cluster, String)> {
    let mut out = Vec::new();
    for name in names {
        let extra = "[tlog]\ncheckpoint_interval_ms = 100\n";
        let cluster = if *name == PARTY {
            start_cluster(1, extra)
        } else {
            start_party(name, extra)
        };
        cluster.wait_ready(Duration::from_secs(60)).await;
        let node = cluster.node(1);
        let mut vkey = String::new();
        wait_until("a first checkpoint", Duration::from_secs(30), || {
            let r = icsctl_log(node, &["checkpoint"]);
            let ok = r.as_ref().is_ok_and(|out| {
                vkey = json_of(out)["vkey"].as_str().unwrap().to_string();
                true
            });
            async move { ok }
        })
        .await;
        out.push((cluster, vkey));
    }
    out
}

/// `party` recognizes `other` (its root key) and binds its log key.
async fn bind_peer(party: &Cluster, other: &Cluster, other_name: &str, other_vkey: &str) {
    let root = party.root_key();
    let mut c = party.node(1).client();
    c.append(vec![client::signed(
        &root,
        SubjectRef::new(ics_kernel::authority::PARTY, other_name),
        client::ChainHead::default(),
        ics_kernel::authority::PartyPayload::Recognized {
            role: ics_kernel::Role::Maintenance,
            root_key: other.root_key().public_key(),
        },
    )])
    .await
    .expect("recognize the peer");
    let root_file = party.node(1).dir.join("data/root.key");
    icsctl_log(
        party.node(1),
        &[
            "peer",
            "--signer",
            root_file.to_str().unwrap(),
            "--party",
            other_name,
            "--vkey",
            other_vkey,
        ],
    )
    .expect("bind the peer's log key");
}

/// POSTs `body` to `node`'s /add-checkpoint with `tls`.
async fn add_checkpoint(
    node: &TestNode,
    tls: &client::ClientTls,
    body: &[u8],
) -> client::HttpAnswer {
    let port = node.https.rsplit(':').next().unwrap();
    tls.https_post(
        &format!("localhost:{port}"),
        "/add-checkpoint",
        body,
        1 << 16,
    )
    .await
    .expect("an answer")
}

/// A party has its checkpoints cosigned by a peer over mutual TLS and
/// serves the cosignatures with them; the witness refuses, with the
/// tlog-witness status and nothing written, a caller without a client
/// certificate, a stale size (409 with the size it knows), a bent proof
/// (422), a forged signature (403), an unknown log (404); the log refuses a
/// bent, a duplicate and a stranger's cosignature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cosigns_checkpoints_and_refuses_what_does_not_extend_them() {
    use ics_tlog::note::{CosignatureVerifier, Note, NoteVerifier};
    use ics_tlog::witness::AddCheckpoint;
    let mut all = parties(&[PARTY, "witness-one"]).await;
    let (witness, witness_vkey) = all.pop().unwrap();
    let (log, log_vkey) = all.pop().unwrap();
    bind_peer(&witness, &log, PARTY, &log_vkey).await;
    bind_peer(&log, &witness, "witness-one", &witness_vkey).await;
    let (w, l) = (witness.node(1), log.node(1));
    let witness_tls = w.client_tls.to_str().unwrap().to_string();
    let witness_addr = format!("localhost:{}", w.https.rsplit(':').next().unwrap());

    // First cosignature: from size 0.
    let out = icsctl_log(
        l,
        &[
            "witness",
            "--witness",
            &witness_addr,
            "--witness-tls",
            &witness_tls,
        ],
    )
    .expect("cosigned");
    let first = json_of(&out);
    assert_eq!(first["witness"], "witness-one");
    let first_size = first["size"].as_u64().unwrap();
    // The log serves the checkpoint with the cosignature, which verifies
    // under the witness's key, beside the log's own signature.
    let served = json_of(
        &icsctl_log(
            l,
            &[
                "checkpoint",
                "--size",
                &first_size.to_string(),
                "--vkey",
                &log_vkey,
            ],
        )
        .unwrap(),
    );
    let note = Note::parse(served["note"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(note.signatures.len(), 2, "{served}");
    let witness_key = NoteVerifier::from_vkey(&witness_vkey).unwrap().key;
    let cosigner = CosignatureVerifier {
        name: ics_tlog::witness_name("witness-one"),
        key: witness_key,
    };
    let time = cosigner.verify(&note).expect("the cosignature verifies");
    assert!(time > 1_700_000_000, "{time}");

    // The log grows; the next round starts from 0, is told the size the
    // witness knows (409) and proves consistency from it.
    let author = log.device_author().await;
    let mut c = l.client();
    let written = register_device_at(&mut c, &author, "SN-W1").await.1;
    wait_until("a later checkpoint", Duration::from_secs(30), || {
        let r = icsctl_log(l, &["checkpoint"]);
        let ok = r.is_ok_and(|o| json_of(&o)["size"].as_u64().unwrap() >= written);
        async move { ok }
    })
    .await;
    let second = json_of(
        &icsctl_log(
            l,
            &[
                "witness",
                "--witness",
                &witness_addr,
                "--witness-tls",
                &witness_tls,
            ],
        )
        .expect("cosigned again"),
    );
    let second_size = second["size"].as_u64().unwrap();
    assert!(second_size > first_size);
    assert_eq!(
        metric(&w.http, "ics_tlog_witness_cosigned_total").await,
        2,
        "both rounds moved the witness"
    );

    // Refusals at the witness, each leaving its log as it was.
    let latest = Note::parse(
        json_of(&icsctl_log(l, &["checkpoint", "--size", &second_size.to_string()]).unwrap())
            ["note"]
            .as_str()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let own = Note {
        text: latest.text.clone(),
        signatures: latest.signatures[..1].to_vec(),
    };
    let tls = client::ClientTls::from_dir(&w.client_tls).unwrap();
    // The witness signs its own checkpoints meanwhile: what must not move is
    // its record of this log.
    let witnessed = ics_tlog::peer_subject(PARTY);
    let mut wc = w.client();
    let record_before = wc.subject(&witnessed).await.unwrap();
    let stale = AddCheckpoint {
        old: first_size,
        proof: vec![],
        checkpoint: own.clone(),
    };
    // Without a client certificate.
    let a = add_checkpoint(w, &tls.anonymous(), &stale.to_bytes()).await;
    assert_eq!(a.status, 403, "{}", String::from_utf8_lossy(&a.body));
    // A stale old size: 409 and the size the witness knows.
    let a = add_checkpoint(w, &tls, &stale.to_bytes()).await;
    assert_eq!(a.status, 409);
    assert_eq!(a.content_type, "text/x.tlog.size");
    assert_eq!(String::from_utf8_lossy(&a.body), format!("{second_size}\n"));
    // A bent proof from the size it knows to a new checkpoint.
    let next = register_device_at(&mut c, &author, "SN-W2").await.1;
    let mut newer = None;
    wait_until("a checkpoint after SN-W2", Duration::from_secs(30), || {
        let r = icsctl_log(l, &["checkpoint"]);
        let found = r
            .ok()
            .map(|o| json_of(&o))
            .filter(|v| v["size"].as_u64().unwrap() >= next);
        let ok = found.is_some();
        if ok {
            newer = found;
        }
        async move { ok }
    })
    .await;
    let newer = newer.unwrap();
    let newer_size = newer["size"].as_u64().unwrap();
    let newer_note = Note::parse(newer["note"].as_str().unwrap().as_bytes()).unwrap();
    let proof = json_of(
        &icsctl_log(
            l,
            &[
                "consistency",
                "--old",
                &second_size.to_string(),
                "--new",
                &newer_size.to_string(),
            ],
        )
        .unwrap(),
    );
    let mut hashes: Vec<[u8; 32]> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    hashes[0][0] ^= 1;
    let bent = AddCheckpoint {
        old: second_size,
        proof: hashes,
        checkpoint: newer_note.clone(),
    };
    let a = add_checkpoint(w, &tls, &bent.to_bytes()).await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    // The log's checkpoint signed by another key under its name.
    let ics_kernel::SigningKey::Ed25519(other) =
        ics_kernel::SigningKey::generate(ics_kernel::Algorithm::Ed25519)
    else {
        unreachable!()
    };
    let forged = AddCheckpoint {
        old: second_size,
        proof: vec![],
        checkpoint: ics_tlog::note::sign(&ics_tlog::log_origin(PARTY), &other, &own.text).unwrap(),
    };
    let a = add_checkpoint(w, &tls, &forged.to_bytes()).await;
    assert_eq!(a.status, 403, "{}", String::from_utf8_lossy(&a.body));
    // A log this party does not witness.
    let unknown = AddCheckpoint {
        old: 0,
        proof: vec![],
        checkpoint: ics_tlog::note::sign(
            "ics/nobody/log",
            &other,
            &own.text
                .replacen(&ics_tlog::log_origin(PARTY), "ics/nobody/log", 1),
        )
        .unwrap(),
    };
    let a = add_checkpoint(w, &tls, &unknown.to_bytes()).await;
    assert_eq!(a.status, 404, "{}", String::from_utf8_lossy(&a.body));
    // Malformed.
    let a = add_checkpoint(w, &tls, b"old x\n\nnot a note\n").await;
    assert_eq!(a.status, 400);
    assert_eq!(
        wc.subject(&witnessed).await.unwrap(),
        record_before,
        "refusals wrote nothing"
    );
    assert_eq!(metric(&w.http, "ics_tlog_witness_cosigned_total").await, 2);

    // Refusals at the log: a bent cosignature, the same witness twice, a
    // witness it has not bound.
    let mut tlog = ics_proto::tlog_v1::transparency_log_client::TransparencyLogClient::new(
        l.tls().channel(&l.grpc).unwrap(),
    );
    let line = note.signatures[1].line();
    let cosigned = ics_tlog::checkpoint_subject(first_size);
    let mut lc = l.client();
    let checkpoint_before = lc.subject(&cosigned).await.unwrap();
    let mut bent_line = note.signatures[1].clone();
    bent_line.signature[20] ^= 1;
    for (witness_name, line, reason) in [
        ("witness-one", bent_line.line(), "BAD_COSIGNATURE"),
        ("witness-one", line.clone(), "ALREADY_COSIGNED"),
        ("witness-two", line.clone(), "PEER_NOT_BOUND"),
    ] {
        let err = tlog
            .add_cosignature(ics_proto::tlog_v1::AddCosignatureRequest {
                size: first_size,
                witness: witness_name.to_string(),
                signature_line: line,
            })
            .await
            .expect_err(reason);
        assert_eq!(reason_of(&err), reason, "{err:?}");
    }
    assert_eq!(lc.subject(&cosigned).await.unwrap(), checkpoint_before);
    let after =
        json_of(&icsctl_log(l, &["checkpoint", "--size", &first_size.to_string()]).unwrap());
    assert_eq!(after["witnesses"], serde_json::json!(["witness-one"]));
}

/// A log that shows one witness one history and another witness another
/// gets both cosigned (each witness alone sees a consistent log), and is
/// caught: each witness refuses the other's view (409), and comparing the
/// two cosigned checkpoints proves the split from their signatures alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_showing_two_views_to_two_witnesses_is_caught() {
    use ics_tlog::note::{Checkpoint, Note};
    use ics_tlog::witness::AddCheckpoint;
    let mut all = parties(&[PARTY, "witness-one", "witness-two"]).await;
    let (w2, _) = all.pop().unwrap();
    let (w1, _) = all.pop().unwrap();
    let (log, log_vkey) = all.pop().unwrap();
    bind_peer(&w1, &log, PARTY, &log_vkey).await;
    bind_peer(&w2, &log, PARTY, &log_vkey).await;
    let l = log.node(1);

    // The honest checkpoint, and a fork of the same size signed with the
    // log's real key (a compromised or split log).
    let honest = json_of(&icsctl_log(l, &["checkpoint"]).unwrap());
    let honest = Note::parse(honest["note"].as_str().unwrap().as_bytes()).unwrap();
    let cp = Checkpoint::parse(&honest.text).unwrap();
    let key = ics_node::tls::load_log_key(&ics_node::tls::TlsDir(l.dir.join("data/tls")))
        .unwrap()
        .unwrap();
    let ics_kernel::SigningKey::Ed25519(signer) = &key else {
        panic!("the log key is Ed25519")
    };
    let forked = ics_tlog::note::sign(
        &cp.origin,
        signer,
        &Checkpoint {
            root: [0x5a; 32],
            ..cp.clone()
        }
        .text(),
    )
    .unwrap();
    let view = |note: &Note| {
        AddCheckpoint {
            old: 0,
            proof: vec![],
            checkpoint: note.clone(),
        }
        .to_bytes()
    };
    let tls_of = |c: &Cluster| client::ClientTls::from_dir(&c.node(1).client_tls).unwrap();
    let a = add_checkpoint(w1.node(1), &tls_of(&w1), &view(&honest)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let one = String::from_utf8(a.body).unwrap();
    let a = add_checkpoint(w2.node(1), &tls_of(&w2), &view(&forked)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let two = String::from_utf8(a.body).unwrap();

    // Each witness holds to the view it cosigned: the other's is refused.
    let cross = |note: &Note| {
        AddCheckpoint {
            old: cp.size,
            proof: vec![],
            checkpoint: note.clone(),
        }
        .to_bytes()
    };
    let a = add_checkpoint(w1.node(1), &tls_of(&w1), &cross(&forked)).await;
    assert_eq!(a.status, 409);
    let a = add_checkpoint(w2.node(1), &tls_of(&w2), &cross(&honest)).await;
    assert_eq!(a.status, 409);

    // The two cosigned checkpoints, as a monitor gathers them: comparing
    // them names the split; the honest one with itself is one history.
    let dir = l.dir.clone();
    let write = |name: &str, note: &Note, line: &str| {
        let mut bytes = note.to_bytes();
        bytes.extend_from_slice(line.as_bytes());
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let a = write("one.note", &honest, &one);
    let b = write("two.note", &forked, &two);
    let err = icsctl_log(l, &["compare", "--vkey", &log_vkey, &a, &b]).unwrap_err();
    assert!(err.contains("SPLIT VIEW"), "{err}");
    assert!(err.contains("different roots"), "{err}");
    let later = json_of(&icsctl_log(l, &["checkpoint"]).unwrap());
    let later_file = dir.join("later.note");
    std::fs::write(&later_file, later["note"].as_str().unwrap()).unwrap();
    let same = json_of(
        &icsctl_log(
            l,
            &[
                "compare",
                "--vkey",
                &log_vkey,
                &a,
                later_file.to_str().unwrap(),
            ],
        )
        .unwrap(),
    );
    assert_eq!(same["consistent"], true, "{same}");
}
