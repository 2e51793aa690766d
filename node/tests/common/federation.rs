//! Parties that sync: recognition, log key binding, policies, Verify, and a
//! TCP proxy that cuts and heals the path between two parties.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ics_kernel::authority::PartyPayload;
use ics_kernel::{PublicKey, SubjectRef};
use ics_node::client;
use ics_proto::core_v1 as pb;

use super::{Cluster, TestNode, icsctl_at, json_of};

/// The party CA of `c` (PEM), as a peer's policy names it.
pub fn ca_pem(c: &Cluster) -> String {
    let dir = if c.tls_root().join("ca").exists() {
        c.tls_root().join("ca")
    } else {
        c.node(1).dir.join("data/tls")
    };
    ics_node::tls::pem(&ics_node::tls::read_cert(&dir.join("ca.crt")).expect("the party CA"))
}

/// `c`'s root key recognizing `other` as party `name` of `role`.
pub fn recognition(
    c: &Cluster,
    other: &Cluster,
    name: &str,
    role: ics_kernel::Role,
) -> ics_kernel::Envelope {
    client::signed(
        &c.root_key(),
        SubjectRef::new(ics_kernel::authority::PARTY, name),
        client::ChainHead::default(),
        PartyPayload::Recognized {
            role,
            root_key: other.root_key().public_key(),
        },
    )
}

/// `me` recognizes `other` as `name` of `role`; with `pull`, it also binds
/// `other`'s log key (it verifies `other`'s checkpoints).
pub async fn recognize(
    me: &Cluster,
    other: &Cluster,
    name: &str,
    role: ics_kernel::Role,
    pull: bool,
) {
    me.node(1)
        .client()
        .append(vec![recognition(me, other, name, role)])
        .await
        .expect("recognize");
    if !pull {
        return;
    }
    let vkey =
        json_of(&icsctl_at(other.node(1), &["log", "checkpoint"]).expect("a checkpoint"))["vkey"]
            .as_str()
            .expect("a vkey")
            .to_string();
    let root_file = me.node(1).dir.join("data/root.key");
    icsctl_at(
        me.node(1),
        &[
            "log",
            "peer",
            "--signer",
            root_file.to_str().expect("a path"),
            "--party",
            name,
            "--vkey",
            &vkey,
        ],
    )
    .expect("bind the peer's log key");
}

/// `c`'s policy descriptor of `version`, signed by its root key.
pub fn publish(c: &Cluster, version: u64, document: String) -> ics_kernel::Envelope {
    client::signed(
        &c.root_key(),
        ics_policies::policy_subject(version),
        client::ChainHead::default(),
        ics_policies::PolicyPayload::Published { document },
    )
}

/// Publishes `document` (whose `version` it reads) at `c`.
pub async fn publish_policy(c: &Cluster, document: String) {
    let version = ics_policies::Descriptor::parse(&document)
        .expect("a valid descriptor")
        .version;
    c.node(1)
        .client()
        .append(vec![publish(c, version, document)])
        .await
        .expect("publish the policy");
}

/// A Verify of an Ed25519 key.
pub async fn verify_key(c: &mut client::Client, key: &PublicKey) -> pb::VerifyResponse {
    verify(
        c,
        pb::verify_request::What::PublicKey(pb::PublicKey {
            algorithm: pb::SignatureAlgorithm::Ed25519 as i32,
            key: key.bytes().to_vec(),
        }),
    )
    .await
}

/// A Verify of a code digest (SHA-256).
pub async fn verify_code(c: &mut client::Client, sha256: &[u8; 32]) -> pb::VerifyResponse {
    verify(c, pb::verify_request::What::CodeDigest(sha256.to_vec())).await
}

async fn verify(c: &mut client::Client, what: pb::verify_request::What) -> pb::VerifyResponse {
    c.log
        .verify(pb::VerifyRequest {
            what: Some(what),
            ..Default::default()
        })
        .await
        .expect("verify")
        .into_inner()
}

/// What a Verify asks about.
#[derive(Clone, Copy)]
pub enum Asked<'a> {
    Key(&'a PublicKey),
    Code(&'a [u8; 32]),
}

/// Asks `c` to Verify `asked` until `done` holds of the answer (at most a
/// minute, the time a sync across parties may take on a loaded machine).
pub async fn verify_until(
    c: &client::Client,
    asked: Asked<'_>,
    what: &str,
    done: impl Fn(&pb::VerifyResponse) -> bool,
) -> pb::VerifyResponse {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut c = c.clone();
    loop {
        let v = match asked {
            Asked::Key(k) => verify_key(&mut c, k).await,
            Asked::Code(d) => verify_code(&mut c, d).await,
        };
        if done(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events of `node`'s log that were imported, as (namespace, event id).
pub async fn imported(node: &TestNode) -> Vec<(String, Vec<u8>)> {
    imported_records(node)
        .await
        .into_iter()
        .map(|(i, id)| (i.namespace, id))
        .collect()
}

/// The events of `node`'s log that were imported, with where each belongs
/// and came from.
pub async fn imported_records(node: &TestNode) -> Vec<(pb::Imported, Vec<u8>)> {
    let mut c = node.client();
    let count = node.status().await.expect("status").event_count;
    let mut stream = c
        .log
        .watch(pb::WatchRequest { from_index: 1 })
        .await
        .expect("watch")
        .into_inner();
    let mut out = Vec::new();
    for _ in 0..count {
        let e = stream.message().await.expect("an event").expect("the log");
        if let Some(i) = e.imported {
            out.push((i, e.event_id));
        }
    }
    out
}

/// A TCP proxy to one address that can be cut (every connection dropped,
/// new ones refused) and healed: a partition between two parties.
pub struct Proxy {
    pub address: String,
    open: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn to(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a proxy");
        let address = listener.local_addr().expect("an address").to_string();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            Default::default();
        let accept = {
            let (open, connections) = (open.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    let mut all = connections.lock().unwrap();
                    all.retain(|t| !t.is_finished());
                    all.push(task);
                }
            })
        };
        Proxy {
            address,
            open,
            connections,
            accept,
        }
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for t in self.connections.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    pub fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
