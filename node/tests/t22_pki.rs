//! The party PKI on real `icsd` processes: a single node creates its CA and
//! certificates on first start and records them in the log; a cluster's
//! material made by `icsd tls init` is bound once and every node records its
//! own certificate; certificates are renewed before expiry; a node refuses
//! material that is not its own.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use ics_node::tls::{TlsDir, read_cert};
use ics_pki::{Holder, ParsedCert};
use ics_proto::core_v1 as pb;

/// The subjects of `kind` with their summaries, read on `node`.
async fn subjects(node: &TestNode, kind: &str) -> Vec<(String, String)> {
    let mut c = node.client();
    let r = c
        .log
        .list_subjects(pb::ListSubjectsRequest {
            kind: kind.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list subjects")
        .into_inner();
    r.subjects
        .into_iter()
        .map(|s| {
            let subject = s.subject.expect("subject");
            (format!("{}/{}", subject.kind, subject.id), s.summary)
        })
        .collect()
}

fn cert_at(path: &Path) -> ParsedCert {
    ParsedCert::parse(&read_cert(path).expect("PEM certificate")).expect("certificate")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("file").permissions().mode() & 0o777
}

fn icsd(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_icsd"))
        .args(args)
        .output()
        .expect("run icsd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `icsd tls init` for party acme-maintenance into `out`, nodes as ID=NAMES.
fn tls_init(out: &str, nodes: &[&str]) -> (bool, String) {
    let mut args = vec!["tls", "init", "--party", "acme-maintenance", "--out", out];
    for n in nodes {
        args.extend(["--node", n]);
    }
    icsd(&args)
}

#[tokio::test]
async fn a_single_node_creates_its_pki_records_it_and_renews_its_certificate() {
    // A one-minute lifetime: renewal at 40 s.
    let cluster = start_cluster(1, "[tls]\ncert_lifetime_secs = 60\n");
    let node = cluster.node(1);
    cluster.wait_ready(Duration::from_secs(20)).await;
    let dir = TlsDir(node.dir.join("data/tls"));
    for (file, want) in [
        ("ca.key", 0o600),
        ("node.key", 0o600),
        ("operator.key", 0o600),
        ("ca.crt", 0o644),
        ("node.crt", 0o644),
    ] {
        assert_eq!(mode(&dir.0.join(file)), want, "{file}");
    }
    let ca = cert_at(&dir.ca_cert());
    let first = cert_at(&dir.cert(&Holder::Node(1)));
    let operator = cert_at(&dir.cert(&Holder::Operator("admin".into())));
    assert_eq!(
        first.holder().unwrap(),
        ("acme-maintenance".into(), Holder::Node(1))
    );

    // The root key binds the CA; the node records both certificates.
    wait_until(
        "the CA bound and two certificates recorded",
        Duration::from_secs(20),
        || async {
            subjects(node, "tls-ca").await.len() == 1 && subjects(node, "tls-cert").await.len() == 2
        },
    )
    .await;
    let cas = subjects(node, "tls-ca").await;
    assert!(cas[0].1.contains(&ca.fingerprint_hex()), "{cas:?}");
    let certs = subjects(node, "tls-cert").await;
    for c in [&first, &operator] {
        assert!(
            certs
                .iter()
                .any(|(s, summary)| s == &format!("tls-cert/{}", c.serial)
                    && summary.contains(&c.fingerprint_hex())),
            "{certs:?}"
        );
    }
    let metrics = http_get(&node.http, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "ics_tls_node_cert_expiry_timestamp_seconds {}",
            first.not_after_ms / 1000
        )),
        "{metrics}"
    );

    // Renewed at two thirds of its life: a new key and certificate on disk,
    // recorded in the log, the expiry gauge moved.
    wait_until(
        "the node certificate renewed and recorded",
        Duration::from_secs(90),
        || async { subjects(node, "tls-cert").await.len() == 3 },
    )
    .await;
    let renewed = cert_at(&dir.cert(&Holder::Node(1)));
    assert_ne!(renewed.fingerprint, first.fingerprint);
    assert_ne!(
        renewed.public_key, first.public_key,
        "a renewal takes a new key"
    );
    assert!(renewed.not_after_ms > first.not_after_ms);
    let certs = subjects(node, "tls-cert").await;
    assert!(
        certs
            .iter()
            .any(|(s, summary)| s == &format!("tls-cert/{}", renewed.serial)
                && summary.contains(&renewed.fingerprint_hex())),
        "{certs:?}"
    );
    wait_until(
        "the expiry gauge follows the renewal",
        Duration::from_secs(10),
        || async {
            http_get(&node.http, "/metrics").await.contains(&format!(
                "ics_tls_node_cert_expiry_timestamp_seconds {}",
                renewed.not_after_ms / 1000
            ))
        },
    )
    .await;
    let (ok, status) = icsd(&["tls", "status", "--config", node.config.to_str().unwrap()]);
    assert!(ok, "{status}");
    assert!(status.contains(&renewed.fingerprint_hex()), "{status}");
    assert!(status.contains(&ca.fingerprint_hex()), "{status}");
}

#[tokio::test]
async fn a_cluster_made_by_tls_init_binds_its_ca_once_and_each_node_records_its_certificate() {
    let out = tempfile::tempdir().unwrap();
    let out_path = out.path().to_str().unwrap().to_string();
    let (ok, text) = tls_init(
        &out_path,
        &["1=127.0.0.1,localhost", "2=127.0.0.1", "3=127.0.0.1"],
    );
    assert!(ok, "{text}");
    // A second init into the same place is refused: it would split the party's CA.
    let (ok, again) = tls_init(&out_path, &["1=127.0.0.1"]);
    assert!(!ok && again.contains("already holds a CA"), "{again}");

    let cluster = start_cluster_with(3, |id| format!("[tls]\ndir = \"{out_path}/node-{id}\"\n"));
    cluster.wait_ready(Duration::from_secs(30)).await;
    let node = cluster.node(2);
    wait_until(
        "the CA bound and three node certificates recorded",
        Duration::from_secs(30),
        || async {
            subjects(node, "tls-ca").await.len() == 1 && subjects(node, "tls-cert").await.len() == 3
        },
    )
    .await;
    let ca = cert_at(&out.path().join("ca/ca.crt"));
    assert!(
        subjects(node, "tls-ca").await[0]
            .1
            .contains(&ca.fingerprint_hex())
    );
    let certs = subjects(node, "tls-cert").await;
    for id in 1..=3 {
        let cert = cert_at(&out.path().join(format!("node-{id}/node.crt")));
        assert_eq!(cert.holder().unwrap().1, Holder::Node(id));
        assert!(
            certs
                .iter()
                .any(|(_, summary)| summary.contains(&format!("node {id} "))
                    && summary.contains(&cert.fingerprint_hex())),
            "node {id}: {certs:?}"
        );
    }
    let operator = cert_at(&out.path().join("operator-admin/operator.crt"));
    assert_eq!(
        operator.holder().unwrap().1,
        Holder::Operator("admin".into())
    );
    assert_eq!(mode(&out.path().join("operator-admin/operator.key")), 0o600);
    drop(cluster);
}

#[tokio::test]
async fn a_node_refuses_to_start_with_another_nodes_certificate() {
    let out = tempfile::tempdir().unwrap();
    let out_path = out.path().to_str().unwrap().to_string();
    let (ok, text) = tls_init(&out_path, &["1=127.0.0.1", "2=127.0.0.1"]);
    assert!(ok, "{text}");
    let mut cluster = start_cluster(1, &format!("[tls]\ndir = \"{out_path}/node-2\"\n"));
    let node = cluster.node_mut(1);
    let status = node
        .wait_exit(Duration::from_secs(10))
        .expect("the node stops");
    assert!(!status.success());
    let log = node.log();
    assert!(
        log.contains("names node 2 of party \"acme-maintenance\", not node 1"),
        "{log}"
    );
}
