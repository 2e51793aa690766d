//! The client side over TLS: the gRPC API and HTTPS speak TLS 1.3 only with
//! the node's certificate (stock `openssl` and `curl` check it), plain text
//! is refused, a private ICS requires a client certificate, and
//! administration requires an operator certificate (F3, F16).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use ics_node::client::{Client, ClientTls};
use ics_proto::core_v1 as pb;
use tonic::Code;

/// `openssl s_client` against `addr`, trusting `ca`; its whole output.
fn s_client(addr: &str, ca: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-CAfile"])
        .arg(ca)
        .arg("-showcerts")
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl (is it installed?)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `curl` over HTTPS; the exit status, HTTP code and body.
fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Sends a plain HTTP request to `addr`; what came back before the close.
async fn plain_request(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = s
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_listeners_speak_tls13_with_the_node_certificate_and_refuse_plain_text() {
    let cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let node = cluster.node(1);
    let ca = node.client_tls.join("ca.crt");

    for (addr, alpn) in [(&node.grpc, "h2"), (&node.https, "http/1.1")] {
        let (ok, text) = s_client(addr, &ca, &["-alpn", alpn]);
        assert!(ok, "{addr}: {text}");
        assert!(text.contains("TLSv1.3"), "{text}");
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        assert!(text.contains(&format!("ALPN protocol: {alpn}")), "{text}");
        assert!(text.contains("CN = node 1 of acme-maintenance"), "{text}");
        assert!(text.contains("CN = acme-maintenance TLS CA"), "{text}");
        // TLS 1.2 is not offered.
        let (ok, text) = s_client(addr, &ca, &["-tls1_2"]);
        assert!(!ok, "TLS 1.2 was accepted on {addr}: {text}");
    }

    // curl checks the chain and the name; the HTTP side answers over TLS.
    let (ok, text) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        &format!(
            "https://localhost:{}/readyz",
            node.https.rsplit(':').next().unwrap()
        ),
    ]);
    assert!(
        ok && text.starts_with("ready") && text.ends_with("\n200"),
        "{text}"
    );
    // Without the party CA it is not trusted.
    let (ok, text) = curl(&[&format!("https://{}/readyz", node.https)]);
    assert!(!ok, "{text}");

    // Plain text gets no answer on either TLS port, and is counted.
    let refused = |listener: &str| {
        let name = format!("ics_connections_refused_total{{listener=\"{listener}\"}}");
        let http = node.http.clone();
        async move {
            let text = http_get(&http, "/metrics").await;
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .map_or(0, |v| v.trim().parse::<u64>().unwrap())
        }
    };
    let (http_before, grpc_before) = (refused("http").await, refused("grpc").await);
    let answer = plain_request(&node.https).await;
    assert!(
        !answer.contains("HTTP/1.1"),
        "plain HTTP was answered: {answer}"
    );
    let plain_grpc = tonic::transport::Endpoint::from_shared(format!("http://{}", node.grpc))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let err = ics_proto::core_v1::cluster_client::ClusterClient::new(plain_grpc)
        .status(pb::StatusRequest {})
        .await
        .expect_err("plain gRPC was answered");
    assert_ne!(err.code(), Code::Ok);
    wait_until("both refusals counted", Duration::from_secs(10), || async {
        refused("http").await > http_before && refused("grpc").await > grpc_before
    })
    .await;
    // The node goes on serving.
    node.client().status().await.expect("status over TLS");
}

/// A fleet reconnecting at once: more clients handshake at the same moment
/// than the listener runs handshakes in parallel (`MAX_HANDSHAKES`, 32). The
/// ones beyond wait their turn; every one is served, none refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_new_connections_beyond_the_handshake_slots_is_served() {
    const CLIENTS: usize = 200;
    let cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let node = cluster.node(1);
    let refused_name = "ics_connections_refused_total{listener=\"grpc\"}";
    let accepted_name = "ics_connections_accepted_total{listener=\"grpc\"}";
    // Absent until a first refusal.
    let refused = || async {
        let text = http_get(&node.http, "/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{refused_name} ")))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap())
    };
    let refused_before = refused().await;
    let accepted_before = metric(&node.http, accepted_name).await;
    let tls = node.tls();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        // One client each: its own connection, its own handshake.
        let mut client = Client::connect(&node.grpc, &tls).expect("client");
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            client.status().await
        }));
    }
    for t in tasks {
        let status = t
            .await
            .unwrap()
            .expect("every client of the burst is served");
        assert_eq!(status.party, "acme-maintenance");
    }
    assert_eq!(refused().await, refused_before);
    assert!(metric(&node.http, accepted_name).await >= accepted_before + CLIENTS as u64);
}

/// A TLS 1.3 server refuses a client certificate after the client thinks
/// the handshake is done: the client sees an alert or the connection
/// closed, never an answer of the API.
fn refused_by_tls(err: &tonic::Status) -> bool {
    let transport = format!("{err:?}");
    matches!(
        err.code(),
        Code::Unavailable | Code::Cancelled | Code::Unknown
    ) && (transport.contains("CertificateRequired")
        || transport.contains("connection closed")
        || transport.contains("BadCertificate")
        || transport.contains("UnknownCA")
        || transport.contains("transport error"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ics_serves_only_holders_of_a_party_certificate() {
    let cluster = start_cluster(1, "[tls]\nclients = \"required\"\n");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let node = cluster.node(1);
    let with_operator = node.tls();

    // No client certificate: the handshake fails, nothing is served.
    let mut anonymous = Client::connect(&node.grpc, &with_operator.anonymous()).unwrap();
    let err = anonymous
        .status()
        .await
        .expect_err("served without a certificate");
    assert!(refused_by_tls(&err), "{err:?}");
    let ca = node.client_tls.join("ca.crt");
    let url = format!("https://{}/readyz", node.https);
    let (ok, text) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
    assert!(!ok, "HTTPS without a certificate: {text}");

    // With one of the party's, both answer.
    let mut operator = Client::connect(&node.grpc, &with_operator).unwrap();
    operator.status().await.expect("status with a certificate");
    let (cert, key) = (
        node.client_tls.join("operator.crt"),
        node.client_tls.join("operator.key"),
    );
    let (ok, text) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        &url,
    ]);
    assert!(ok && text.ends_with("\n200"), "{text}");

    // A certificate of another party's CA is refused too.
    let other = tempfile::tempdir().unwrap();
    ics_node::tls::init_party(
        "someone-else",
        other.path(),
        &[],
        &["admin".to_string()],
        ics_node::client::now_ms(),
        Duration::from_secs(3600),
    )
    .unwrap();
    let foreign = ClientTls::load(
        &ca,
        Some((
            &other.path().join("operator-admin/operator.crt"),
            &other.path().join("operator-admin/operator.key"),
        )),
    )
    .unwrap();
    let err = Client::connect(&node.grpc, &foreign)
        .unwrap()
        .status()
        .await
        .expect_err("served another party's certificate");
    assert!(refused_by_tls(&err), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administration_needs_an_operator_certificate() {
    let cluster = start_cluster(3, "");
    let leader = cluster.wait_ready(Duration::from_secs(30)).await;
    let operator_tls = cluster.client_tls();
    let node_tls = ClientTls::load(
        &cluster.tls_root().join("ca/ca.crt"),
        Some((
            &cluster.tls_root().join("node-2/node.crt"),
            &cluster.tls_root().join("node-2/node.key"),
        )),
    )
    .unwrap();
    let before = cluster.node(leader).status().await.unwrap();
    assert_eq!(before.members.len(), 3, "an operator sees the members");

    for (who, tls, names) in [
        (
            "no certificate",
            operator_tls.anonymous(),
            "the connection has none",
        ),
        ("a node's certificate", node_tls, "node 2's"),
    ] {
        // On the leader and on a follower (which must not forward it).
        for target in [leader, leader % 3 + 1] {
            let mut c = Client::connect(&cluster.node(target).grpc, &tls).unwrap();
            let calls = [
                c.cluster
                    .remove_node(pb::RemoveNodeRequest { id: 3, force: true })
                    .await
                    .map(|_| ()),
                c.cluster
                    .add_node(pb::AddNodeRequest {
                        id: 9,
                        address: "127.0.0.1:9".into(),
                        learner_only: true,
                    })
                    .await
                    .map(|_| ()),
                c.cluster
                    .initialize(pb::InitializeRequest { members: vec![] })
                    .await
                    .map(|_| ()),
            ];
            for call in calls {
                let err = call.expect_err(&format!("administration with {who}"));
                assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
                assert_eq!(reason_of(&err), "OPERATOR_REQUIRED");
                assert!(err.message().contains(names), "{}", err.message());
                assert!(err.message().contains("--cert"), "{}", err.message());
            }
            // Status answers, without the Raft details (F16).
            let s = c.status().await.expect("status");
            assert!(s.ready && s.event_count > 0, "{s:?}");
            assert!(
                s.members.is_empty() && s.term == 0 && s.raft_log_index == 0,
                "{s:?}"
            );
            assert!(s.leader_address.is_empty(), "{s:?}");
        }
    }

    // Nothing changed, and the cluster works.
    let after = cluster.wait_converged(Duration::from_secs(20)).await;
    for s in &after {
        assert_eq!(s.members, before.members);
        assert_eq!(s.event_count, before.event_count);
    }
    let author = cluster.device_author().await;
    register_device(&mut cluster.node(leader).client(), &author, "SN-ADMIN-1").await;

    // An operator may: a removal through a follower is forwarded and done.
    let follower = leader % 3 + 1;
    let removed = 6 - leader - follower;
    let mut c = Client::connect(&cluster.node(follower).grpc, &operator_tls).unwrap();
    let members = c
        .cluster
        .remove_node(pb::RemoveNodeRequest {
            id: removed,
            force: true,
        })
        .await
        .expect("an operator removes a node")
        .into_inner()
        .members;
    assert!(members.iter().all(|m| m.id != removed), "{members:?}");
}

/// `icsctl` next to `icsd` in the target directory (built with the workspace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icsctl_finds_the_ca_and_the_operator_certificate_in_the_data_dir() {
    let cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let node = cluster.node(1);
    // A working directory whose ./ics-data is the node's data dir, as after
    // `icsd serve` on its embedded default.
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(node.dir.join("data"), work.path().join("ics-data")).unwrap();
    let out = Command::new(icsctl())
        .args(["--server", &node.grpc, "cluster", "status"])
        .current_dir(work.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    // The operator certificate went along: the members are shown.
    assert!(
        text.contains(&format!("node 1 at {} (voter)", node.peer)),
        "{text}"
    );

    // Elsewhere it says what it misses.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(icsctl())
        .args(["--server", &node.grpc, "cluster", "status"])
        .current_dir(empty.path())
        .env_remove("ICS_TLS_DIR")
        .env_remove("ICS_CA")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no party CA certificate at ics-data/tls/ca.crt"),
        "{err}"
    );

    // An explicit CA without a certificate: status without the members.
    let out = Command::new(icsctl())
        .args(["--server", &node.grpc, "--ca"])
        .arg(node.client_tls.join("ca.crt"))
        .args(["--tls-dir", "/nonexistent", "--json", "cluster", "status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(v["node_id"], 1, "{v}");
    assert!(v["members"].as_array().is_none_or(|m| m.is_empty()), "{v}");
}
