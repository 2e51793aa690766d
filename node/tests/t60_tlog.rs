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
            .args(["-c", "import pymerkle"])
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
            .args(["install", "-q", "pymerkle==7.0.0"])
            .status()
            .expect("run pip");
        assert!(installed.success(), "pip install pymerkle failed");
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
        let port = node.https.rsplit(':').next().unwrap();
        let out = Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/tlog_tiles.py"
            ))
            .arg(format!("https://localhost:{port}"))
            .arg(node.client_tls.join("ca.crt"))
            .arg(statuses[0].event_count.to_string())
            .arg(hex::encode(root))
            .output()
            .expect("run the Python checker");
        let report = String::from_utf8_lossy(&out.stdout);
        eprintln!("node {}: {report}", node.id);
        assert!(
            out.status.success(),
            "node {}: {report}{}",
            node.id,
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
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
