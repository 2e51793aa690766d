//! The transparency log from outside: a Python checker that shares no code
//! with ours (its own RFC 6962 hashing, and `pymerkle`) reads the tiles of a
//! running 3-node cluster over HTTPS and recomputes the root every node
//! reports.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

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
    if !ready() {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .expect("run python3 (is it installed?)");
        assert!(
            made.success(),
            "python3 -m venv failed (python3-venv installed?)"
        );
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "pymerkle==7.0.0", "cryptography==46.0.3"])
            .status()
            .expect("run pip");
        assert!(
            installed.success(),
            "pip install pymerkle cryptography failed"
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
    let out = Command::new(icsctl())
        .arg("--json")
        .arg("--server")
        .arg(&node.grpc)
        .arg("--tls-dir")
        .arg(&node.client_tls)
        .arg("log")
        .args(args)
        .output()
        .expect("run icsctl");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
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
