//! Test fixture: clusters of real `icsd` processes on loopback.

#![allow(dead_code)]

pub mod federation;

use ics_kernel::{Algorithm, SigningKey, SubjectRef};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ics_node::client::{self, Client};
use ics_node::keyfile;
use ics_proto::core_v1 as pb;

/// A port no other node of this test process was given, below the kernel's
/// ephemeral range (32768-60999 on Linux): a port picked by binding port 0
/// could be taken by a concurrent test's outgoing connection before the node
/// binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id() * 97 % COUNT;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + n) % COUNT) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + COUNT);
}

/// GET over plain HTTP/1.1; the body.
/// The `icsctl` binary of this build (built with the workspace's tests).
pub fn icsctl() -> PathBuf {
    let icsd = std::path::Path::new(env!("CARGO_BIN_EXE_icsd"));
    let path = icsd.with_file_name("icsctl");
    assert!(
        path.exists(),
        "{} is not built: run the workspace's tests",
        path.display()
    );
    path
}

/// A GET over plain HTTP: the status line and the body.
pub async fn http_request(addr: &str, path: &str) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect HTTP");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&out[..split]);
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, out[split + 4..].to_vec())
}

pub async fn http_get(addr: &str, path: &str) -> String {
    let (status, body) = http_request(addr, path).await;
    assert!(status.starts_with("HTTP/1.1 200"), "GET {path}: {status}");
    String::from_utf8_lossy(&body).into_owned()
}

/// One counter or gauge of a node's `/metrics` (at `http`), e.g.
/// `ics_events_appended_total`.
pub async fn metric(http: &str, name: &str) -> u64 {
    let text = http_get(http, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The machine-readable reason of an error (`google.rpc.ErrorInfo`).
pub fn reason_of(err: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let info = err
        .get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo on {err:?}"));
    assert_eq!(info.domain, "ics");
    info.reason
}

pub struct TestNode {
    pub id: u64,
    pub dir: PathBuf,
    pub grpc: String,
    /// The plain loopback HTTP listener (`http_plain_listen`): metrics and
    /// readiness for the harness, plain HKP for stock tools.
    pub http: String,
    /// The HTTPS listener (`http_listen`).
    pub https: String,
    /// The TLS directory clients of this node use: the party CA and, where
    /// the cluster has one, an operator certificate.
    pub client_tls: PathBuf,
    /// The peer listener (mutual TLS): what membership names.
    pub peer: String,
    /// The node's own TLS directory (where its device CA material is, if any).
    pub tls_dir: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
}

impl TestNode {
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .expect("open node log");
        let child = Command::new(env!("CARGO_BIN_EXE_icsd"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("ICS_LOG", "info,openraft=warn,ics_node=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn icsd");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Waits for the process to exit by itself; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.child.as_mut()?.try_wait().expect("poll icsd");
            if let Some(status) = status {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// The TLS a client of this node uses (see `client_tls`).
    pub fn tls(&self) -> client::ClientTls {
        client::ClientTls::from_dir(&self.client_tls).expect("client TLS material")
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.grpc, &self.tls()).expect("client")
    }

    pub async fn status(&self) -> Option<pb::StatusResponse> {
        // A single node makes its TLS material on first start.
        let tls = client::ClientTls::from_dir(&self.client_tls).ok()?;
        let mut c = Client::connect(&self.grpc, &tls).ok()?;
        tokio::time::timeout(Duration::from_secs(2), c.status())
            .await
            .ok()?
            .ok()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub nodes: Vec<TestNode>,
    /// Nodes the cluster started with.
    initial_size: usize,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Keep the data dirs and logs of a failed test for a post-mortem.
        if std::thread::panicking() {
            let keep = std::env::temp_dir().join(format!("ics-failed-{}", std::process::id()));
            let _ = std::fs::rename(self._dir.path(), &keep);
            eprintln!("node data and logs kept in {}", keep.display());
        }
    }
}

/// The party every test cluster runs.
pub const PARTY: &str = "acme-maintenance";

/// One node's ports: gRPC API, HTTPS, plain loopback HTTP, peer listener.
#[derive(Clone, Copy)]
struct Ports {
    grpc: u16,
    https: u16,
    http: u16,
    peer: u16,
}

impl Ports {
    fn pick() -> Ports {
        Ports {
            grpc: free_port(),
            https: free_port(),
            http: free_port(),
            peer: free_port(),
        }
    }
}

/// `tls_dir`: the node's TLS directory, unless the extra TOML names one (a
/// single node makes its own when none is given).
fn node_config(
    party: &str,
    dir: &Path,
    id: u64,
    ports: Ports,
    peers_line: &str,
    tls_dir: Option<&Path>,
    extra_toml: &str,
) -> TestNode {
    let node_dir = dir.join(format!("node{id}"));
    std::fs::create_dir_all(&node_dir).expect("node dir");
    let config = node_dir.join("icsd.toml");
    let Ports {
        grpc,
        https,
        http,
        peer,
    } = ports;
    // A private ICS serves nothing in plain text (the config refuses it).
    let plain = if extra_toml.contains("clients = \"required\"") {
        String::new()
    } else {
        format!("http_plain_listen = \"127.0.0.1:{http}\"\n")
    };
    let mut text = format!(
        "party = \"{party}\"\nnode_id = {id}\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{grpc}\"\nhttp_listen = \"127.0.0.1:{https}\"\n{plain}peer_listen = \"127.0.0.1:{peer}\"\n{peers_line}\n",
        node_dir.join("data").display()
    );
    let mut extra = extra_toml.to_string();
    if let Some(tls) = tls_dir.filter(|_| !extra.contains("dir =")) {
        let line = format!("dir = \"{}\"\n", tls.display());
        if extra.contains("[tls]\n") {
            extra = extra.replacen("[tls]\n", &format!("[tls]\n{line}"), 1);
        } else {
            extra.push_str(&format!("\n[tls]\n{line}"));
        }
    }
    // Checkpoints are events: a test that counts events before and after a
    // refusal must not see one land between. Unless a test asks for them
    // (`[tlog]` in its TOML), the nodes sign none within a test's life.
    if !extra.contains("[tlog]") {
        extra.push_str(
            "\n[tlog]\ncheckpoint_interval_ms = 86400000\ncheckpoint_max_events = 1000000000\n",
        );
    }
    // The node's TLS directory: given, named in the extra TOML, or the one
    // a single node makes in its data dir. Its clients use the party's
    // operator material beside it when there is one.
    let node_tls = extra
        .lines()
        .find_map(|l| l.trim().strip_prefix("dir = "))
        .map(|d| PathBuf::from(d.trim_matches('"')))
        .or_else(|| tls_dir.map(Path::to_path_buf))
        .unwrap_or_else(|| node_dir.join("data/tls"));
    let operator = node_tls
        .parent()
        .map(|p| p.join("operator-admin"))
        .filter(|d| d.exists());
    text.push_str(&extra);
    std::fs::write(&config, text).expect("write config");
    TestNode {
        id,
        dir: node_dir,
        grpc: format!("127.0.0.1:{grpc}"),
        http: format!("127.0.0.1:{http}"),
        https: format!("127.0.0.1:{https}"),
        client_tls: operator.unwrap_or_else(|| node_tls.clone()),
        tls_dir: node_tls,
        peer: format!("127.0.0.1:{peer}"),
        config,
        child: None,
    }
}

/// Extra TOML appended to every node's config.
pub fn start_cluster(size: usize, extra_toml: &str) -> Cluster {
    start_cluster_with(size, |_| extra_toml.to_string())
}

/// Extra TOML appended to each node's config, by node id. A cluster of more
/// than one node gets its TLS material from `icsd tls init`'s library
/// function, in `<dir>/tls/node-<id>` (the CA in `<dir>/tls/ca`).
pub fn start_cluster_with(size: usize, extra_toml: impl Fn(u64) -> String) -> Cluster {
    start_party_with(PARTY, size, extra_toml)
}

/// One node of another party than the tests' own.
pub fn start_party(party: &str, extra_toml: &str) -> Cluster {
    start_party_with(party, 1, |_| extra_toml.to_string())
}

fn start_party_with(party: &str, size: usize, extra_toml: impl Fn(u64) -> String) -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let ports: Vec<Ports> = (0..size).map(|_| Ports::pick()).collect();
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("\"{}=127.0.0.1:{}\"", i + 1, p.peer))
        .collect();
    let tls_root = dir.path().join("tls");
    let role = extra_toml(1)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("role = ")
                .map(|r| r.trim_matches('"').to_string())
        })
        .and_then(|r| ics_kernel::Role::from_name(&r))
        .unwrap_or(ics_kernel::Role::Maintenance);
    let purpose = ics_node::device_ca::purpose_of(role);
    if size > 1 {
        let nodes: Vec<(u64, ics_pki::LeafNames)> =
            (1..=size as u64).map(|id| (id, loopback_names())).collect();
        ics_node::tls::init_party(
            party,
            &tls_root,
            &nodes,
            &["admin".to_string()],
            client::now_ms(),
            Duration::from_secs(7 * 24 * 3600),
        )
        .expect("TLS material");
        if let Some(purpose) = purpose {
            let ids: Vec<u64> = (1..=size as u64).collect();
            ics_node::device_ca::init_party(&tls_root, party, purpose, &ids, client::now_ms())
                .expect("device CA material");
        }
    }
    let mut nodes = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let id = i as u64 + 1;
        let (peers_line, tls) = if size > 1 {
            (
                format!("peers = [{}]", peers.join(", ")),
                Some(tls_root.join(format!("node-{id}"))),
            )
        } else {
            (String::new(), None)
        };
        let mut node = node_config(
            party,
            dir.path(),
            id,
            *p,
            &peers_line,
            tls.as_deref(),
            &extra_toml(id),
        );
        node.start();
        nodes.push(node);
    }
    Cluster {
        nodes,
        initial_size: size,
        _dir: dir,
    }
}

pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn loopback_names() -> ics_pki::LeafNames {
    ics_pki::LeafNames {
        dns_names: vec!["localhost".into()],
        ip_addresses: vec!["127.0.0.1".parse().expect("an address")],
    }
}

impl Cluster {
    /// Starts one more node that waits to be added (bootstrap = manual).
    pub fn start_extra_node(&mut self, id: u64) -> &TestNode {
        let tls = self.node_tls(id);
        let mut node = node_config(
            PARTY,
            self._dir.path(),
            id,
            Ports::pick(),
            "bootstrap = \"manual\"",
            Some(&tls),
            "",
        );
        node.start();
        self.nodes.push(node);
        self.nodes.last().expect("just pushed")
    }

    /// Where `icsd tls init` put the cluster's material (`ca/`, `node-<id>/`).
    pub fn tls_root(&self) -> PathBuf {
        self._dir.path().join("tls")
    }

    /// Node `id`'s TLS directory in the cluster's material, issued by the
    /// party CA now if the cluster has no such node (a certificate of a
    /// non-member).
    pub fn node_tls(&self, id: u64) -> PathBuf {
        let dir = self.tls_root().join(format!("node-{id}"));
        if !dir.exists() {
            ics_node::tls::add_node(
                &self.tls_root().join("ca"),
                PARTY,
                id,
                &loopback_names(),
                &dir,
                client::now_ms(),
                Duration::from_secs(24 * 3600),
            )
            .expect("a node certificate");
        }
        dir
    }

    /// A Raft transport client to `target`'s peer listener, presenting node
    /// `as_node`'s certificate from the cluster's material.
    pub fn peer_client(
        &self,
        as_node: u64,
        target: &TestNode,
    ) -> ics_proto::core_v1::raft_transport_client::RaftTransportClient<tonic::transport::Channel>
    {
        peer_client_from(&self.node_tls(as_node), as_node, target)
    }

    /// Stops a node and forgets it.
    pub fn drop_node(&mut self, id: u64) {
        self.nodes.retain(|n| n.id != id);
    }

    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut TestNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    /// The end of every node's log, for failure messages.
    pub fn logs_tail(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let log = n.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!("--- node {} ---\n", n.id));
            for l in tail.iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// The TLS every client of the cluster uses (the party CA, the operator).
    pub fn client_tls(&self) -> client::ClientTls {
        self.nodes[0].tls()
    }

    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.grpc.clone()).collect()
    }

    /// The leader agreed by a running node, once the party genesis is applied.
    pub async fn wait_ready(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            for n in self.nodes.iter().filter(|n| n.is_running()) {
                if let Some(s) = n.status().await
                    && s.current_leader != 0
                    && !s.party.is_empty()
                    && self.node(s.current_leader).is_running()
                    && self.pki_recorded(n).await
                {
                    return s.current_leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no ready leader within {timeout:?}\n{}",
                self.logs_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the log holds the party's TLS CA, a certificate of every
    /// node the cluster started with, and its device CA where it runs one: the nodes append these in the
    /// background after the genesis, and tests that count events start after.
    async fn pki_recorded(&self, n: &TestNode) -> bool {
        let count = |kind: &str| {
            let mut c = n.client();
            let kind = kind.to_string();
            async move {
                c.log
                    .list_subjects(pb::ListSubjectsRequest {
                        kind,
                        page_size: 1000,
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner().subjects.len())
                    .unwrap_or(0)
            }
        };
        count("tls-ca").await >= 1
            && count("tls-cert").await >= self.initial_size
            && (!n.tls_dir.join("device-ca.crt").exists() || count("device-ca").await >= 2)
    }

    /// The events node `id` applied.
    pub async fn event_count(&self, id: u64) -> u64 {
        self.node(id).status().await.expect("status").event_count
    }

    /// The party root key, created by node 1 when it appended the genesis.
    pub fn root_key(&self) -> SigningKey {
        keyfile::read(&self.node(1).dir.join("data").join("root.key")).expect("root key")
    }

    /// Registers a fresh author key allowed to write devices.
    pub async fn device_author(&self) -> SigningKey {
        register_author(&mut self.node(1).client(), &self.root_key(), device_kinds()).await
    }

    /// Waits until every running node has applied the same log.
    pub async fn wait_converged(&self, timeout: Duration) -> Vec<pb::StatusResponse> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut all = Vec::new();
            for n in &self.nodes {
                if let Some(s) = n.status().await {
                    all.push(s);
                }
            }
            let same = all.len() == self.nodes.len()
                && all.windows(2).all(|w| {
                    w[0].event_count == w[1].event_count
                        && w[0].log_hash == w[1].log_hash
                        && w[0].raft_applied_index == w[1].raft_applied_index
                });
            if same {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "replicas did not converge: {:?}",
                all.iter()
                    .map(|s| (s.node_id, s.event_count, s.raft_applied_index))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Registers a fresh device (no OpenPGP) through `c`; returns its subject.
/// A Raft transport client to `target`'s peer listener with the node
/// certificate in `tls_dir` (of node `as_node`).
pub fn peer_client_from(
    tls_dir: &Path,
    as_node: u64,
    target: &TestNode,
) -> ics_proto::core_v1::raft_transport_client::RaftTransportClient<tonic::transport::Channel> {
    let tls = ics_node::peer::NodeTls::load(tls_dir, PARTY, as_node).expect("peer TLS material");
    let channel = ics_node::peer::channel(&tls, target.id, &target.peer, Duration::from_secs(2))
        .expect("peer channel");
    ics_proto::core_v1::raft_transport_client::RaftTransportClient::new(channel)
        .max_decoding_message_size(8 << 20)
        .max_encoding_message_size(8 << 20)
}

pub async fn register_device(c: &mut Client, author: &SigningKey, serial: &str) -> SubjectRef {
    register_device_at(c, author, serial).await.0
}

/// Registers a device; its subject and the log index of its registration.
pub async fn register_device_at(
    c: &mut Client,
    author: &SigningKey,
    serial: &str,
) -> (SubjectRef, u64) {
    let device = SigningKey::generate(Algorithm::Ed25519).public_key();
    let appended = c
        .append(vec![client::register_device(
            author,
            serial,
            &device,
            vec![],
        )])
        .await
        .expect("register a device");
    (
        SubjectRef::new(ics_identity::DEVICE, device.id().to_hex()),
        appended[0].index,
    )
}

pub fn device_kinds() -> BTreeSet<String> {
    BTreeSet::from([
        "device-registered".to_string(),
        "device-status-changed".to_string(),
    ])
}

pub async fn register_author(
    c: &mut Client,
    root: &SigningKey,
    kinds: BTreeSet<String>,
) -> SigningKey {
    let author = SigningKey::generate(Algorithm::Ed25519);
    let env = client::register_author(
        root,
        &author.public_key(),
        "test",
        kinds,
        client::now_ms() + 86_400_000,
    );
    c.append(vec![env]).await.expect("register author");
    author
}

pub fn data_dir(node: &TestNode) -> &Path {
    &node.dir
}

/// Runs `icsctl --json ARGS` against `node`; its stdout, or its stderr as
/// the error.
pub fn icsctl_at(node: &TestNode, args: &[&str]) -> Result<String, String> {
    let out = Command::new(icsctl())
        .arg("--json")
        .arg("--server")
        .arg(&node.grpc)
        .arg("--tls-dir")
        .arg(&node.client_tls)
        .args(args)
        .output()
        .expect("run icsctl");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub fn json_of(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Runs a stock tool (`openssl`, `curl`) in `dir`: whether it succeeded, and
/// its stdout and stderr.
pub fn run_tool(dir: &Path, program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `run_tool`, which must succeed: its output.
pub fn tool_ok(dir: &Path, program: &str, args: &[&str]) -> String {
    let (done, out) = run_tool(dir, program, args);
    assert!(done, "{program} {args:?}:\n{out}");
    out
}

/// How many subjects of `kind` this party's records at `node` hold.
pub async fn count_subjects(node: &TestNode, kind: &str) -> usize {
    node.client()
        .log
        .list_subjects(pb::ListSubjectsRequest {
            kind: kind.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list subjects")
        .into_inner()
        .subjects
        .len()
}
