//! Every refusal over gRPC: the status code, a message naming the problem,
//! and a log that did not grow.

mod common;

use ics_identity::IdentityPayload;
use ics_identity::payload::DeviceStatus;
use ics_kernel::capability::{Payload, payload_bytes};
use ics_kernel::{Algorithm, Envelope, EventBody, EventId, SigningKey, SubjectRef};
use std::time::Duration;

use common::*;
use ics_node::client::{self, ChainHead, Client};
use ics_node::codec;
use ics_proto::core_v1 as pb;
use tonic::Code;

async fn event_count(c: &mut Client) -> (u64, Vec<u8>) {
    let s = c.status().await.expect("status");
    (s.event_count, s.state_hash)
}

/// Sends `events`, expects the code and machine-readable reason, with
/// `needle` in the message, and checks the log and the projections did not
/// change.
async fn refused(
    c: &mut Client,
    events: Vec<pb::SignedEvent>,
    (code, reason): (Code, &str),
    needle: &str,
) {
    let before = event_count(c).await;
    let err = c
        .log
        .append(pb::AppendRequest {
            events,
            ..Default::default()
        })
        .await
        .expect_err("append must be refused");
    assert_eq!(err.code(), code, "{}", err.message());
    assert_eq!(reason_of(&err), reason, "{}", err.message());
    assert!(
        err.message().contains(needle),
        "message {:?} does not name {needle:?}",
        err.message()
    );
    assert_eq!(
        before,
        event_count(c).await,
        "state changed after refusal: {}",
        err.message()
    );
}

fn pb_of(env: &Envelope) -> pb::SignedEvent {
    codec::envelope_to_pb(env)
}

fn device_body(
    author: &SigningKey,
    head: ChainHead,
    subject: &SubjectRef,
    payload: impl Payload,
) -> EventBody {
    client::body(author, subject.clone(), head, &payload, client::now_ms())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_names_the_problem_and_appends_nothing() {
    let cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = cluster.node(1).client();
    let root = cluster.root_key();
    let author = register_author(&mut c, &root, device_kinds()).await;

    // A registered device to chain status changes on.
    let subject = register_device(&mut c, &author, "SN-1").await;
    let head = c.chain_head(&subject).await.unwrap();
    let in_use = IdentityPayload::DeviceStatusChanged {
        status: DeviceStatus::InUse,
        reason: String::new(),
        openpgp_revocation: None,
    };

    // Bad signature.
    let mut env = ics_kernel::envelope::sign(
        &device_body(&author, head, &subject, in_use.clone()),
        &[&author],
    );
    env.signatures[0].bytes[5] ^= 1;
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::Unauthenticated, "BAD_SIGNATURE"),
        "does not verify",
    )
    .await;

    // Missing signature.
    let mut env = ics_kernel::envelope::sign(
        &device_body(&author, head, &subject, in_use.clone()),
        &[&author],
    );
    env.signatures.clear();
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::InvalidArgument, "MISSING_SIGNATURE"),
        "no signature",
    )
    .await;

    // Author key unknown to the party.
    let stranger = SigningKey::generate(Algorithm::Ed25519);
    let env = ics_kernel::envelope::sign(
        &device_body(&stranger, head, &subject, in_use.clone()),
        &[&stranger],
    );
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::PermissionDenied, "UNKNOWN_KEY"),
        "is not a key of this party",
    )
    .await;

    // Author key not allowed to sign this kind.
    let status_only = register_author(
        &mut c,
        &root,
        ["device-status-changed".to_string()].into_iter().collect(),
    )
    .await;
    let other = SigningKey::generate(Algorithm::Ed25519).public_key();
    let env = client::register_device(&status_only, "SN-2", &other, vec![]);
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::PermissionDenied, "AUTHOR_NOT_ALLOWED"),
        "may not sign device-registered",
    )
    .await;

    // Expired author key: its validity ended before the event's time.
    let short = SigningKey::generate(Algorithm::Ed25519);
    let now = client::now_ms();
    c.append(vec![client::register_author(
        &root,
        &short.public_key(),
        "short",
        device_kinds(),
        now + 1_000,
    )])
    .await
    .unwrap();
    let mut late = device_body(&short, head, &subject, in_use.clone());
    late.time_ms = now + 2_000;
    let env = ics_kernel::envelope::sign(&late, &[&short]);
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::PermissionDenied, "AUTHOR_EXPIRED"),
        "expired",
    )
    .await;

    // Revoked author key.
    let revoked = register_author(&mut c, &root, device_kinds()).await;
    let rk = SubjectRef::new(ics_kernel::authority::AUTHOR_KEY, revoked.key_id().to_hex());
    let rhead = c.chain_head(&rk).await.unwrap();
    c.append(vec![client::revoke_author(
        &root,
        &revoked.key_id().to_hex(),
        rhead,
        "left",
    )])
    .await
    .unwrap();
    let env = ics_kernel::envelope::sign(
        &device_body(&revoked, head, &subject, in_use.clone()),
        &[&revoked],
    );
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::PermissionDenied, "AUTHOR_REVOKED"),
        "is revoked",
    )
    .await;

    // Broken chain: wrong sequence, then wrong previous id.
    let wrong_seq = ChainHead {
        sequence: head.sequence + 1,
        previous: head.previous,
    };
    let env = ics_kernel::envelope::sign(
        &device_body(&author, wrong_seq, &subject, in_use.clone()),
        &[&author],
    );
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::Aborted, "CHAIN_CONFLICT"),
        "expected sequence 1",
    )
    .await;
    let wrong_prev = ChainHead {
        sequence: head.sequence,
        previous: Some(EventId([9; 32])),
    };
    let env = ics_kernel::envelope::sign(
        &device_body(&author, wrong_prev, &subject, in_use.clone()),
        &[&author],
    );
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::Aborted, "CHAIN_CONFLICT"),
        "expected sequence 1 after event",
    )
    .await;

    // Two concurrent writers to one subject: one wins, the loser gets a conflict.
    let a = client::change_status(&author, &subject.id, head, DeviceStatus::InUse, "a");
    let b = client::change_status(&author, &subject.id, head, DeviceStatus::Lost, "b");
    let (mut c1, mut c2) = (c.clone(), c.clone());
    let (ra, rb) = tokio::join!(c1.append(vec![a]), c2.append(vec![b]));
    let (ok, err) = match (ra, rb) {
        (Ok(ok), Err(err)) | (Err(err), Ok(ok)) => (ok, err),
        other => panic!("exactly one concurrent writer must win: {other:?}"),
    };
    assert_eq!(ok.len(), 1);
    assert_eq!(err.code(), Code::Aborted, "{}", err.message());
    assert_eq!(reason_of(&err), "CHAIN_CONFLICT");
    assert!(
        err.message().contains("expected sequence 2"),
        "{}",
        err.message()
    );

    // Invalid status transition (in-use or lost → planned).
    let head = c.chain_head(&subject).await.unwrap();
    let env = client::change_status(&author, &subject.id, head, DeviceStatus::Planned, "");
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::FailedPrecondition, "INVALID_TRANSITION"),
        "may not become planned",
    )
    .await;

    // Unknown payload kind: a payload message no capability of this build owns.
    let mut body = device_body(&author, head, &subject, in_use.clone());
    body.payload.message = "ics.nosuch.v1.Thing".to_string();
    let bytes = body.encode();
    let sig = author.sign_event(&bytes);
    let env = pb::SignedEvent {
        body: bytes,
        signatures: vec![pb::Signature {
            key_id: author.key_id().0.to_vec(),
            algorithm: pb::SignatureAlgorithm::Ed25519 as i32,
            signature: sig,
        }],
    };
    refused(
        &mut c,
        vec![env],
        (Code::InvalidArgument, "UNKNOWN_PAYLOAD"),
        "payload kind \"ics.nosuch.v1.Thing\" is unknown",
    )
    .await;

    // Unknown schema version.
    let mut body = device_body(&author, head, &subject, in_use.clone());
    body.schema_version = 7;
    let env = ics_kernel::envelope::sign(&body, &[&author]);
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::InvalidArgument, "UNSUPPORTED_SCHEMA"),
        "schema version 7",
    )
    .await;

    // Body over the size limit (default 64 KiB).
    let mut body = device_body(&author, head, &subject, in_use.clone());
    body.payload = payload_bytes(&IdentityPayload::DeviceStatusChanged {
        status: DeviceStatus::Lost,
        reason: "x".repeat(70 * 1024),
        openpgp_revocation: None,
    });
    let env = ics_kernel::envelope::sign(&body, &[&author]);
    refused(
        &mut c,
        vec![pb_of(&env)],
        (Code::ResourceExhausted, "BODY_TOO_LARGE"),
        "over the limit of 65536",
    )
    .await;

    // Garbage bytes.
    let env = pb::SignedEvent {
        body: vec![0xff; 40],
        signatures: vec![],
    };
    refused(
        &mut c,
        vec![env],
        (Code::InvalidArgument, "MALFORMED"),
        "not decodable",
    )
    .await;

    // A batch with one bad event appends none of them.
    let d2 = SigningKey::generate(Algorithm::Ed25519).public_key();
    let good = client::register_device(&author, "SN-3", &d2, vec![]);
    let bad = client::change_status(&author, &subject.id, head, DeviceStatus::Planned, "");
    refused(
        &mut c,
        vec![pb_of(&good), pb_of(&bad)],
        (Code::FailedPrecondition, "INVALID_TRANSITION"),
        "may not become planned",
    )
    .await;

    // A genesis through the API (F4): only the node's own bootstrap appends one.
    let evil_root = SigningKey::generate(Algorithm::Ed25519);
    let genesis = client::signed(
        &evil_root,
        SubjectRef::new(ics_kernel::authority::PARTY, "evil"),
        ChainHead::default(),
        ics_kernel::authority::PartyPayload::Genesis {
            party_name: "evil".to_string(),
            role: ics_kernel::Role::Maintenance,
            root_key: evil_root.public_key(),
            rules: ics_node::capabilities::genesis_rules(Default::default()),
        },
    );
    refused(
        &mut c,
        vec![pb_of(&genesis)],
        (Code::PermissionDenied, "GENESIS_FROM_API"),
        "only by the node's own bootstrap",
    )
    .await;

    // Display spoofing (F14): a bidi override in free text, and one
    // attribute name given twice.
    let d3 = SigningKey::generate(Algorithm::Ed25519).public_key();
    let bidi = client::register_device(
        &author,
        "SN-4",
        &d3,
        vec![("model".to_string(), "safe\u{202E}live".to_string())],
    );
    refused(
        &mut c,
        vec![pb_of(&bidi)],
        (Code::InvalidArgument, "INVALID_FIELD"),
        "format character U+202E",
    )
    .await;
    let twice = client::register_device(
        &author,
        "SN-4",
        &d3,
        vec![
            ("model".to_string(), "safe".to_string()),
            ("model".to_string(), "evil".to_string()),
        ],
    );
    refused(
        &mut c,
        vec![pb_of(&twice)],
        (Code::InvalidArgument, "INVALID_FIELD"),
        "\"model\" is given more than once",
    )
    .await;

    // Bytes that are not an AppendRequest at all (F15): the caller's error.
    let before = event_count(&mut c).await;
    let err = raw_grpc_call(cluster.node(1), "/ics.core.v1.EventLog/Append", &[0xff; 64])
        .await
        .expect_err("garbage must be refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert_eq!(reason_of(&err), "MALFORMED_REQUEST");
    assert!(
        err.message().contains("malformed AppendRequest"),
        "{}",
        err.message()
    );
    assert_eq!(before, event_count(&mut c).await);

    // And a duplicate is idempotent: same index, nothing new, and not
    // counted as appended (F15).
    let first = c.append(vec![good.clone()]).await.unwrap()[0].clone();
    let before = event_count(&mut c).await;
    let counted = appended_total(&cluster.node(1).http).await;
    let again = c.append(vec![good]).await.unwrap()[0].clone();
    assert!(again.duplicate);
    assert_eq!(again.index, first.index);
    assert_eq!(before, event_count(&mut c).await);
    assert_eq!(counted, appended_total(&cluster.node(1).http).await);
}

/// `ics_events_appended_total` from the node's metrics.
async fn appended_total(http: &str) -> u64 {
    metric(http, "ics_events_appended_total").await
}

/// A unary gRPC call with `body` as the message bytes, whatever they are.
async fn raw_grpc_call(node: &TestNode, path: &str, body: &[u8]) -> Result<Vec<u8>, tonic::Status> {
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    #[derive(Default)]
    struct Raw;
    struct RawCoder;
    impl Encoder for RawCoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            bytes::BufMut::put_slice(buf, &item);
            Ok(())
        }
    }
    impl Decoder for RawCoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            let n = bytes::Buf::remaining(buf);
            Ok(Some(bytes::Buf::copy_to_bytes(buf, n).to_vec()))
        }
    }
    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = RawCoder;
        type Decoder = RawCoder;
        fn encoder(&mut self) -> RawCoder {
            RawCoder
        }
        fn decoder(&mut self) -> RawCoder {
            RawCoder
        }
    }
    let channel = node.tls().channel(&node.grpc).unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(body.to_vec()),
        path.parse().unwrap(),
        Raw,
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_over_the_rate_limit_are_refused_and_not_written() {
    let cluster = start_cluster(
        1,
        "[limits]\nmax_appends_per_second = 1\nappend_burst = 2\n",
    );
    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = cluster.node(1).client();
    let root = cluster.root_key();
    // The bucket holds two; the genesis append came from inside the node and
    // the author registration takes one.
    let author = register_author(&mut c, &root, device_kinds()).await;
    let mut refused = None;
    for i in 0..5 {
        let key = SigningKey::generate(Algorithm::Ed25519).public_key();
        let before = event_count(&mut c).await;
        match c
            .append(vec![client::register_device(
                &author,
                &format!("R-{i}"),
                &key,
                vec![],
            )])
            .await
        {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(
                    before,
                    event_count(&mut c).await,
                    "a refused append wrote something"
                );
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("a burst of five appends must hit a limit of one per second");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(reason_of(&err), "RATE_LIMITED");
    assert!(
        err.message()
            .contains("this node's clients are over the append limit of 1 per second"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_on_a_readable_root_key_or_another_partys_log() {
    use std::os::unix::fs::PermissionsExt;
    let mut cluster = start_cluster(1, "");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let root_path = cluster.node(1).dir.join("data/root.key");
    let node = cluster.node_mut(1);
    node.kill();

    // A root key that group or others can read (F13), checked on every start.
    std::fs::set_permissions(&root_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    node.start();
    let exit = node
        .wait_exit(Duration::from_secs(20))
        .expect("the node must stop");
    assert!(!exit.success());
    assert!(node.log().contains("mode 644"), "{}", node.log());
    std::fs::set_permissions(&root_path, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A config naming another party than the log's genesis.
    let config = std::fs::read_to_string(&node.config).unwrap();
    let other = config.replace("party = \"", "party = \"other-");
    assert_ne!(config, other, "the test config names the party");
    std::fs::write(&node.config, &other).unwrap();
    node.start();
    let exit = node
        .wait_exit(Duration::from_secs(20))
        .expect("the node must stop");
    assert!(!exit.success());
    // Refused by whichever check meets it first: the applied log's party, or
    // the TLS material made for the log's party.
    let log = node.log();
    assert!(
        log.contains("but this node is configured for party \"other-")
            || log.contains(
                "of party \"acme-maintenance\", not node 1 of \"other-acme-maintenance\""
            ),
        "{log}"
    );

    // Put right, it serves the same log, with a warning that the root key
    // is still on the node.
    std::fs::write(&node.config, &config).unwrap();
    node.start();
    cluster.wait_ready(Duration::from_secs(30)).await;
    assert!(
        cluster
            .node(1)
            .log()
            .contains("the party root key is on this node")
    );
}

/// F12: watch streams are capped per node; the one over the cap is refused
/// with a reason, and a closed stream frees its place.
#[tokio::test]
async fn watch_streams_over_the_cap_are_refused_until_one_closes() {
    let cluster = start_cluster(1, "[limits]\nmax_watchers = 2\n");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let node = cluster.node(1);
    let watch = || async {
        node.client()
            .log
            .watch(pb::WatchRequest { from_index: 1 })
            .await
    };
    let first = watch().await.expect("first watch");
    let _second = watch().await.expect("second watch");
    let err = watch().await.expect_err("a third watch");
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert_eq!(reason_of(&err), "WATCHERS_FULL");
    assert!(
        err.message().contains("2 watch streams"),
        "{}",
        err.message()
    );
    drop(first);
    wait_until(
        "a closed watch frees its place",
        Duration::from_secs(10),
        || async { watch().await.is_ok() },
    )
    .await;
}

/// F9: the HTTP listener holds a bounded number of connections, closes one
/// over the cap at once, and closes a connection that sends no request
/// headers in time (an idle one too); then it serves again.
#[tokio::test]
async fn idle_http_connections_are_capped_and_closed() {
    use tokio::io::AsyncReadExt;
    let cluster = start_cluster(
        1,
        "[limits]\nmax_http_connections = 4\nhttp_header_timeout_ms = 2000\n",
    );
    cluster.wait_ready(Duration::from_secs(30)).await;
    let http = cluster.node(1).http.clone();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(&http).await.unwrap());
    }
    // Over the cap: closed without an answer.
    let mut over = tokio::net::TcpStream::connect(&http).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), over.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "a connection over the cap was served");
    // The idle ones are closed once the header timeout passes.
    let started = std::time::Instant::now();
    for mut c in idle {
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("an idle connection is closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(http_get(&http, "/readyz").await.starts_with("ready"));
}

/// F8: a junk flood from one client spends that client's budget, charged
/// once a request decodes; a legitimate writer beside it (another identity:
/// an operator certificate) keeps every append, at its usual latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_junk_flood_spends_its_senders_budget_not_a_writers_beside_it() {
    let cluster = start_cluster(
        1,
        "[limits]\nmax_appends_per_second = 400\nappend_burst = 100\n\
         max_appends_per_client_per_second = 100\nappend_client_burst = 20\n",
    );
    cluster.wait_ready(Duration::from_secs(30)).await;
    let node = cluster.node(1);
    let author = cluster.device_author().await;
    let before = node.status().await.unwrap().event_count;

    // The flood: four connections without a certificate (charged to their
    // address), each sending well-formed events by a key that is no author.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for f in 0..4 {
        let mut c = Client::connect(&node.grpc, &node.tls().anonymous()).unwrap();
        let stop = stop.clone();
        flooders.push(tokio::spawn(async move {
            let stranger = SigningKey::generate(Algorithm::Ed25519);
            let (mut limited, mut other) = (0u32, 0u32);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let key = SigningKey::generate(Algorithm::Ed25519).public_key();
                let junk = client::register_device(&stranger, &format!("J-{f}-{i}"), &key, vec![]);
                match c.append(vec![junk]).await {
                    Ok(_) => panic!("junk was appended"),
                    Err(e) if reason_of(&e) == "RATE_LIMITED" => {
                        assert!(e.message().contains("address 127.0.0.1"), "{}", e.message());
                        limited += 1
                    }
                    Err(_) => other += 1,
                }
            }
            (limited, other)
        }));
    }

    // The writer: 150 appends at about 50 a second, under its own certificate.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut writer = node.client();
    let mut latencies = Vec::new();
    let mut failed = Vec::new();
    for i in 0..150 {
        let key = SigningKey::generate(Algorithm::Ed25519).public_key();
        let env = client::register_device(&author, &format!("W-{i}"), &key, vec![]);
        let t = std::time::Instant::now();
        match writer.append(vec![env]).await {
            Ok(_) => latencies.push(t.elapsed()),
            Err(e) => failed.push(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut limited, mut other) = (0, 0);
    for f in flooders {
        let (l, o) = f.await.unwrap();
        limited += l;
        other += o;
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "junk flood: {limited} refused RATE_LIMITED, {other} refused by the rules; writer: {}/150 appended, \
         p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        p(0.5),
        p(0.99),
        latencies.last().unwrap()
    );
    assert!(failed.is_empty(), "the writer was refused: {failed:?}");
    assert!(
        limited > 100,
        "the flood was not limited: {limited} limited, {other} other"
    );
    // The flood's refused events wrote nothing; the writer's all landed.
    assert_eq!(node.status().await.unwrap().event_count, before + 150);
}
