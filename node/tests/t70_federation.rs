//! Federation over mutual TLS between two real parties on loopback: a
//! manufacturer's node serves a maintenance node's pulls on its federation
//! listener, filtered by its policy and proven complete against its signed
//! checkpoints; a node of a party its policy does not name, or a
//! certificate naming the peer under another CA, is turned away.

mod common;

use std::time::Duration;

use common::federation::*;
use common::*;
use ics_federation::{Message, Run, SourceEvent, Verifier};
use ics_kernel::authority::PartyPayload;
use ics_kernel::{Algorithm, SigningKey, SubjectRef};
use ics_node::client;
use ics_proto::federation_v1 as fpb;
use ics_tlog::merkle::Frontier;
use ics_tlog::note::{Checkpoint, Note, NoteVerifier};

/// Connections the federation listener refused.
async fn refused_federation(http: &str) -> u64 {
    let text = http_get(http, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("ics_connections_refused_total{listener=\"federation\"} "))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

/// A call that failed below gRPC (the server answered nothing).
fn refused_by_transport(err: &tonic::Status) -> bool {
    std::error::Error::source(err).is_some()
}

fn read_ca(dir: &std::path::Path) -> Vec<u8> {
    ics_node::tls::read_cert(&dir.join("ca.crt")).expect("the party CA")
}

/// A Federation client as node 1 of the party whose TLS directory is `tls_dir`.
fn puller(
    tls_dir: &std::path::Path,
    party: &str,
    source: &str,
    source_ca: &[u8],
    address: &str,
) -> fpb::federation_client::FederationClient<tonic::transport::Channel> {
    let tls = ics_node::peer::NodeTls::load(tls_dir, party, 1).expect("node TLS material");
    let channel =
        ics_node::federation::channel(&tls, source, source_ca, address, Duration::from_secs(5))
            .expect("a channel");
    fpb::federation_client::FederationClient::new(channel)
}

fn message(item: fpb::PulledItem) -> Message {
    match item.item.expect("an item") {
        fpb::pulled_item::Item::Event(e) => Message::Event(SourceEvent {
            index: e.index,
            salt: e.salt.try_into().expect("16-byte salt"),
            stored: e.stored,
        }),
        fpb::pulled_item::Item::Hidden(r) => Message::Hidden(Run {
            start: r.start,
            end: r.end,
            subtrees: r
                .subtrees
                .into_iter()
                .map(|s| (s.level as u8, s.hash.try_into().expect("32-byte hash")))
                .collect(),
        }),
    }
}

/// Pulls from `frontier` and proves every segment against its checkpoint
/// (signed by `log`); returns the events read and the new frontier.
async fn pull_verified(
    client: &mut fpb::federation_client::FederationClient<tonic::transport::Channel>,
    log: &NoteVerifier,
    frontier: Frontier,
) -> Result<(Vec<SourceEvent>, Frontier), tonic::Status> {
    pull_knowing(client, log, frontier, (0, 0)).await
}

/// `pull_verified`, saying the puller holds what the source's policy
/// version `known.1` let it read of the first `known.0` leaves.
async fn pull_knowing(
    client: &mut fpb::federation_client::FederationClient<tonic::transport::Channel>,
    log: &NoteVerifier,
    mut frontier: Frontier,
    known: (u64, u64),
) -> Result<(Vec<SourceEvent>, Frontier), tonic::Status> {
    let mut stream = client
        .pull(fpb::PullRequest {
            from_size: frontier.size(),
            max_leaves: 0,
            known_size: known.0,
            known_policy_version: known.1,
        })
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(segment) = stream.message().await? {
        let note = Note::parse(&segment.checkpoint).expect("a signed note");
        log.verify(&note).expect("signed by the source's log key");
        let checkpoint = Checkpoint::parse(&note.text).expect("a checkpoint");
        let mut v = Verifier::new(frontier);
        for item in segment.items {
            v.feed(message(item)).expect("in order");
        }
        let verified = v
            .finish(checkpoint.size, &checkpoint.root)
            .expect("the segment is complete");
        events.extend(verified.events);
        frontier = verified.frontier;
    }
    Ok((events, frontier))
}

/// `node`'s latest checkpoint once it covers `size` leaves (its JSON, as
/// `icsctl log checkpoint` prints it).
async fn checkpoint_covering(node: &TestNode, size: u64, what: &str) -> serde_json::Value {
    let mut latest = serde_json::Value::Null;
    wait_until(what, Duration::from_secs(30), || {
        let covered = icsctl_at(node, &["log", "checkpoint"]).is_ok_and(|out| {
            latest = json_of(&out);
            latest["size"].as_u64().unwrap_or(0) >= size
        });
        async move { covered }
    })
    .await;
    latest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_pulls_what_the_policy_shares_proven_complete() {
    let federation = format!("127.0.0.1:{}", free_port());
    let acme = start_party(
        "acme",
        &format!(
            "role = \"manufacturer\"\nfederation_listen = \"{federation}\"\n[tlog]\ncheckpoint_interval_ms = 100\n"
        ),
    );
    let maint = start_cluster(1, "");
    let globex = start_party("globex", "");
    for c in [&acme, &maint, &globex] {
        c.wait_ready(Duration::from_secs(60)).await;
    }
    let acme_tls = acme.node(1).dir.join("data/tls");
    let maint_tls = maint.node(1).dir.join("data/tls");
    let globex_tls = globex.node(1).dir.join("data/tls");
    let acme_ca = read_ca(&acme_tls);

    // acme recognizes maint, registers two devices, and shares its own
    // make's with maint.
    let root = acme.root_key();
    let mut c = acme.node(1).client();
    c.append(vec![client::signed(
        &root,
        SubjectRef::new(ics_kernel::authority::PARTY, PARTY),
        client::ChainHead::default(),
        PartyPayload::Recognized {
            role: ics_kernel::Role::Maintenance,
            root_key: maint.root_key().public_key(),
        },
    )])
    .await
    .expect("recognize maint");
    let factory = register_author(&mut c, &root, device_kinds()).await;
    let device = |serial: &str, manu: &str| {
        let key = SigningKey::generate(Algorithm::Ed25519).public_key();
        client::register_device(
            &factory,
            serial,
            &key,
            vec![("manu".to_string(), manu.to_string())],
        )
    };
    let shared = device("SN-1", "acme");
    let private = device("SN-2", "globex");
    c.append(vec![shared.clone(), private.clone()])
        .await
        .expect("register");
    let maint_ca_pem = ics_node::tls::pem(&read_ca(&maint_tls));
    let policy = format!(
        r#"party = "acme"
version = 1

[[peer]]
name = "{PARTY}"
endpoints = ["127.0.0.1:7600"]
tls_ca = """
{maint_ca_pem}"""

[[domain]]
name = "acme-devices"
subjects = ["device"]
manufacturer = "acme"

[[read]]
peer = "{PARTY}"
domain = "acme-devices"
kinds = ["*"]
"#
    );
    c.append(vec![client::signed(
        &root,
        ics_policies::policy_subject(1),
        client::ChainHead::default(),
        ics_policies::PolicyPayload::Published {
            document: policy.clone(),
        },
    )])
    .await
    .expect("publish the policy");

    // The source's log key, as a client reads it from its checkpoint.
    let published = acme.event_count(1).await;
    let checkpoint =
        checkpoint_covering(acme.node(1), published, "a checkpoint covering the policy").await;
    let vkey = checkpoint["vkey"].as_str().unwrap_or_default();
    let log = NoteVerifier::from_vkey(vkey).expect("a vkey");

    let mut pulling = puller(&maint_tls, PARTY, "acme", &acme_ca, &federation);
    let (events, frontier) = pull_verified(&mut pulling, &log, Frontier::new())
        .await
        .expect("maint pulls");
    let ids: Vec<ics_kernel::EventId> = events
        .iter()
        .map(|e| {
            let (_, env) = ics_federation::ImportTag::split(&e.stored).unwrap();
            ics_kernel::EventId::of_body(&client::codec::envelope_from_bytes(env).unwrap().body)
        })
        .collect();
    let id = |env: &ics_kernel::Envelope| ics_kernel::EventId::of_body(&env.body);
    assert!(ids.contains(&id(&shared)), "the shared device crossed");
    assert!(
        !ids.contains(&id(&private)),
        "the other make's device did not"
    );
    assert!(
        events.len() >= 3,
        "acme's authority came along: {}",
        events.len()
    );
    assert!(frontier.size() >= published);

    // Caught up: nothing more until acme appends; then only what is new.
    let (again, same) = pull_verified(&mut pulling, &log, frontier.clone())
        .await
        .expect("pull again");
    assert!(again.is_empty() || same.size() > frontier.size());
    let newer = device("SN-3", "acme");
    c.append(vec![newer.clone()]).await.expect("register");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut cursor = same;
    let mut fresh = Vec::new();
    while !fresh.iter().any(|e: &SourceEvent| {
        e.stored
            .ends_with(&client::codec::envelope_to_bytes(&newer))
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the new device never came"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (got, next) = pull_verified(&mut pulling, &log, cursor.clone())
            .await
            .expect("pull from the cursor");
        fresh.extend(got);
        cursor = next;
    }
    assert!(
        fresh.iter().all(|e| e.index > frontier.size()),
        "only what came after the cursor"
    );

    // acme widens its policy to every device. Pulling again from 0, a
    // puller that says what it holds (read under version 1, up to its
    // cursor) is sent only what version 2 adds there; one that says
    // nothing is sent everything again.
    let held = cursor.size();
    let every_device = policy
        .replace("version = 1", "version = 2")
        .replace("manufacturer = \"acme\"\n", "");
    c.append(vec![publish(&acme, 2, every_device.clone())])
        .await
        .expect("publish version 2");
    let widened = acme.event_count(1).await;
    checkpoint_covering(acme.node(1), widened, "a checkpoint covering version 2").await;
    let ids_of = |events: &[SourceEvent]| -> Vec<ics_kernel::EventId> {
        events
            .iter()
            .map(|e| {
                let (_, env) = ics_federation::ImportTag::split(&e.stored).unwrap();
                ics_kernel::EventId::of_body(&client::codec::envelope_from_bytes(env).unwrap().body)
            })
            .collect()
    };
    let (added, _) = pull_knowing(&mut pulling, &log, Frontier::new(), (held, 1))
        .await
        .expect("a re-pull knowing what is held");
    let added_ids = ids_of(&added);
    assert!(
        added_ids.contains(&id(&private)),
        "the newly shared device came"
    );
    assert!(
        !added_ids.contains(&id(&shared)) && !added_ids.contains(&id(&newer)),
        "nothing already held came again"
    );
    assert!(
        added.iter().filter(|e| e.index <= held).count() == 1,
        "of the held leaves, only the newly shared event: {:?}",
        added.iter().map(|e| e.index).collect::<Vec<_>>()
    );
    let (everything, _) = pull_verified(&mut pulling, &log, Frontier::new())
        .await
        .expect("a re-pull from nothing");
    let everything_ids = ids_of(&everything);
    assert!(everything_ids.contains(&id(&shared)) && everything_ids.contains(&id(&private)));
    assert!(everything.len() > added.len());

    // Version 3 lets maint pull one event per minute: once its pulls have
    // spent that, the next is refused (and counted); nothing changes here.
    c.append(vec![publish(
        &acme,
        3,
        every_device.replace(
            "version = 2\n",
            "version = 3\n\n[quotas]\nevents_per_minute = 1\n",
        ),
    )])
    .await
    .expect("publish version 3");
    let limited = acme.event_count(1).await;
    checkpoint_covering(acme.node(1), limited, "a checkpoint covering version 3").await;
    let before = acme.event_count(1).await;
    let over_quota = format!("ics_federation_pulls_over_quota_total{{peer=\"{PARTY}\"}}");
    let mut refused = None;
    for _ in 0..3 {
        if let Err(e) = pull_verified(&mut pulling, &log, Frontier::new()).await {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("a pull past the quota is refused");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert_eq!(reason_of(&refused), "PULL_QUOTA");
    assert!(refused.message().contains(PARTY), "{}", refused.message());
    assert_eq!(acme.event_count(1).await, before, "nothing appended");
    assert!(metric(&acme.node(1).http, &over_quota).await >= 1);

    // A party the policy does not name is turned away at the handshake.
    let before = refused_federation(&acme.node(1).http).await;
    let mut stranger = puller(&globex_tls, "globex", "acme", &acme_ca, &federation);
    let err = pull_verified(&mut stranger, &log, Frontier::new())
        .await
        .expect_err("globex is no peer");
    // Refused in the handshake: no gRPC answer, the transport fails (the
    // client sees the alert, a reset or a closed connection, as timing has it).
    assert!(refused_by_transport(&err), "{err:?}");
    assert_eq!(refused_federation(&acme.node(1).http).await, before + 1);
    // A certificate naming maint under another CA (maint's name, globex's
    // authority) is turned away too.
    let forged_dir = tempfile::tempdir().unwrap();
    ics_node::tls::init_party(
        PARTY,
        forged_dir.path(),
        &[(1, loopback_names())],
        &[],
        client::now_ms(),
        Duration::from_secs(3600),
    )
    .unwrap();
    let mut forged = puller(
        &forged_dir.path().join("node-1"),
        PARTY,
        "acme",
        &acme_ca,
        &federation,
    );
    let err = pull_verified(&mut forged, &log, Frontier::new())
        .await
        .expect_err("maint's name under another CA");
    assert!(refused_by_transport(&err), "{err:?}");
    let after = refused_federation(&acme.node(1).http).await;
    assert!(after >= before + 2, "refusals counted: {before} -> {after}");
}

/// A maintenance party pulls from a manufacturer on its own (the leader's
/// loop): what acme's policy shares and maint's imports lands in maint's log
/// in acme's namespace, nothing else does, and after a restart the pull
/// resumes from the replicated cursor without importing anything twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_imports_what_both_policies_allow_and_resumes_after_a_restart() {
    let federation = format!("127.0.0.1:{}", free_port());
    let acme = start_party(
        "acme",
        &format!(
            "role = \"manufacturer\"\nfederation_listen = \"{federation}\"\n[tlog]\ncheckpoint_interval_ms = 100\n"
        ),
    );
    let mut maint = start_cluster(
        1,
        "[tlog]\ncheckpoint_interval_ms = 100\n[federation]\npull_interval_ms = 100\n",
    );
    for c in [&acme, &maint] {
        c.wait_ready(Duration::from_secs(60)).await;
    }
    let acme_tls = acme.node(1).dir.join("data/tls");
    let maint_tls = maint.node(1).dir.join("data/tls");
    let policy = |party: &str, peer: &str, ca: &std::path::Path, endpoint: &str, rule: &str| {
        format!(
            "party = \"{party}\"\nversion = 1\n\n[[peer]]\nname = \"{peer}\"\nendpoints = [{endpoint}]\ntls_ca = \"\"\"\n{}\"\"\"\n\n[[domain]]\nname = \"acme-devices\"\nsubjects = [\"device\"]\nmanufacturer = \"acme\"\n\n[[{rule}]]\npeer = \"{peer}\"\ndomain = \"acme-devices\"\nkinds = [\"*\"]\n",
            ics_node::tls::pem(&read_ca(ca))
        )
    };
    let mut a = acme.node(1).client();
    a.append(vec![recognition(
        &acme,
        &maint,
        PARTY,
        ics_kernel::Role::Maintenance,
    )])
    .await
    .expect("acme recognizes maint");
    a.append(vec![publish(
        &acme,
        1,
        policy("acme", PARTY, &maint_tls, "", "read"),
    )])
    .await
    .expect("acme's policy");
    let mut m = maint.node(1).client();
    m.append(vec![recognition(
        &maint,
        &acme,
        "acme",
        ics_kernel::Role::Manufacturer,
    )])
    .await
    .expect("maint recognizes acme");
    let vkey =
        json_of(&icsctl_at(acme.node(1), &["log", "checkpoint"]).expect("a checkpoint"))["vkey"]
            .as_str()
            .unwrap()
            .to_string();
    let root_file = maint.node(1).dir.join("data/root.key");
    icsctl_at(
        maint.node(1),
        &[
            "log",
            "peer",
            "--signer",
            root_file.to_str().unwrap(),
            "--party",
            "acme",
            "--vkey",
            &vkey,
        ],
    )
    .expect("maint binds acme's log key");
    m.append(vec![publish(
        &maint,
        1,
        policy(
            PARTY,
            "acme",
            &acme_tls,
            &format!("\"{federation}\""),
            "import",
        ),
    )])
    .await
    .expect("maint's policy");

    let factory = register_author(&mut a, &acme.root_key(), device_kinds()).await;
    let device_with = |serial: &str, manu: &str, key: &ics_kernel::PublicKey| {
        client::register_device(&factory, serial, key, vec![("manu".into(), manu.into())])
    };
    let device = |serial: &str, manu: &str| {
        device_with(
            serial,
            manu,
            &SigningKey::generate(Algorithm::Ed25519).public_key(),
        )
    };
    let shared_key = SigningKey::generate(Algorithm::Ed25519).public_key();
    let shared = device_with("SN-1", "acme", &shared_key);
    let private = device("SN-2", "globex");
    a.append(vec![shared.clone(), private.clone()])
        .await
        .expect("register");
    let id = |env: &ics_kernel::Envelope| ics_kernel::EventId::of_body(&env.body).0.to_vec();

    let mut got = Vec::new();
    for _ in 0..300 {
        got = imported(maint.node(1)).await;
        if got.iter().any(|(_, e)| *e == id(&shared)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        got.iter().any(|(_, e)| *e == id(&shared)),
        "SN-1 imported: {got:?}"
    );
    assert!(
        !got.iter().any(|(_, e)| *e == id(&private)),
        "SN-2 is not shared"
    );
    assert!(
        got.iter().all(|(ns, _)| ns == "acme"),
        "in acme's namespace"
    );
    let cursor = m
        .log
        .get_subject(ics_proto::core_v1::GetSubjectRequest {
            subject: Some(ics_proto::core_v1::Subject {
                kind: ics_federation::FEDERATION_PEER.into(),
                id: "acme".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("maint's cursor in acme's log")
        .into_inner();
    assert!(
        cursor.summary.starts_with("synced with acme up to size"),
        "{}",
        cursor.summary
    );
    // maint's Verify knows acme's device, as acme's record.
    let verdict = verify_key(&mut m, &shared_key).await;
    assert!(verdict.trusted, "{}", verdict.reason);
    assert_eq!(verdict.party, "acme");
    assert!(verdict.registered_at_index > 0);

    // Restart maint, register another device: the pull resumes and nothing
    // is imported twice.
    maint.node_mut(1).kill();
    maint.node_mut(1).start();
    maint.wait_ready(Duration::from_secs(60)).await;
    let newer = device("SN-3", "acme");
    a.append(vec![newer.clone()]).await.expect("register");
    for _ in 0..300 {
        got = imported(maint.node(1)).await;
        if got.iter().any(|(_, e)| *e == id(&newer)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        got.iter().any(|(_, e)| *e == id(&newer)),
        "SN-3 imported after the restart"
    );
    let mut ids: Vec<&Vec<u8>> = got.iter().map(|(_, e)| e).collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "no event imported twice");
    let metrics = http_get(&maint.node(1).http, "/metrics").await;
    assert!(
        metrics.contains("ics_federation_cursor_size{peer=\"acme\"}"),
        "the cursor is a metric"
    );
    assert!(
        metrics.contains("ics_federation_lag{peer=\"acme\"}"),
        "the lag is a metric"
    );
}

/// The ICS flow of a stolen device: the manufacturer shares its device with
/// the maintainer and grants it status reports; the maintainer reports it
/// stolen in the manufacturer's namespace, from its own API; its own Verify
/// says so at once, and the manufacturer's Verify says so once it pulled
/// the report back, decided under the grant in its own records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_report_at_the_maintainer_reaches_the_manufacturers_verify() {
    let acme_fed = format!("127.0.0.1:{}", free_port());
    let maint_fed = format!("127.0.0.1:{}", free_port());
    let fast = "[tlog]\ncheckpoint_interval_ms = 100\n[federation]\npull_interval_ms = 100\n";
    let acme = start_party(
        "acme",
        &format!("role = \"manufacturer\"\nfederation_listen = \"{acme_fed}\"\n{fast}"),
    );
    let maint = start_cluster(1, &format!("federation_listen = \"{maint_fed}\"\n{fast}"));
    for c in [&acme, &maint] {
        c.wait_ready(Duration::from_secs(60)).await;
    }
    let mut a = acme.node(1).client();
    let mut m = maint.node(1).client();
    // Each recognizes the other and binds its log key.
    recognize(&acme, &maint, PARTY, ics_kernel::Role::Maintenance, true).await;
    recognize(&maint, &acme, "acme", ics_kernel::Role::Manufacturer, true).await;
    let policy = |party: &str, peer: &str, ca: String, endpoint: &str, read: &str, import: &str| {
        format!(
            "party = \"{party}\"\nversion = 1\n\n[[peer]]\nname = \"{peer}\"\nendpoints = [\"{endpoint}\"]\ntls_ca = \"\"\"\n{ca}\"\"\"\n\n[[domain]]\nname = \"acme-devices\"\nsubjects = [\"device\"]\nmanufacturer = \"acme\"\n\n[[read]]\npeer = \"{peer}\"\ndomain = \"acme-devices\"\nkinds = [{read}]\n\n[[import]]\npeer = \"{peer}\"\ndomain = \"acme-devices\"\nkinds = [{import}]\n"
        )
    };
    // acme shares its devices and takes status reports on them; maint
    // takes acme's devices and shares its reports on them.
    a.append(vec![publish(
        &acme,
        1,
        policy(
            "acme",
            PARTY,
            ca_pem(&maint),
            &maint_fed,
            "\"*\"",
            "\"device-status-changed\"",
        ),
    )])
    .await
    .expect("acme's policy");
    m.append(vec![publish(
        &maint,
        1,
        policy(
            PARTY,
            "acme",
            ca_pem(&acme),
            &acme_fed,
            "\"device-status-changed\"",
            "\"*\"",
        ),
    )])
    .await
    .expect("maint's policy");

    let factory = register_author(&mut a, &acme.root_key(), device_kinds()).await;
    let key = SigningKey::generate(Algorithm::Ed25519).public_key();
    let thermo = SubjectRef::new(ics_identity::DEVICE, key.id().to_hex());
    let registration =
        client::register_device(&factory, "SN-1", &key, vec![("manu".into(), "acme".into())]);
    a.append(vec![registration.clone()])
        .await
        .expect("register");
    let grant = client::signed(
        &acme.root_key(),
        thermo.clone(),
        client::ChainHead {
            sequence: 1,
            previous: Some(ics_kernel::EventId::of_body(&registration.body)),
        },
        PartyPayload::AccessGranted {
            party: PARTY.into(),
            kinds: ["device-status-changed".to_string()].into(),
        },
    );
    a.append(vec![grant.clone()])
        .await
        .expect("grant maint status reports");

    // maint learns the device, as acme's record.
    let mut verdict = verify_key(&mut m, &key).await;
    for _ in 0..300 {
        if verdict.trusted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        verdict = verify_key(&mut m, &key).await;
    }
    assert!(verdict.trusted && verdict.party == "acme", "{verdict:?}");

    // The grant must have crossed too before maint can report under it.
    let report = client::change_status(
        &maint.root_key(),
        &thermo.id,
        client::ChainHead {
            sequence: 2,
            previous: Some(ics_kernel::EventId::of_body(&grant.body)),
        },
        ics_identity::payload::DeviceStatus::Stolen,
        "van broken into",
    );
    let mut appended = m.append_in("acme", vec![report.clone()]).await;
    for _ in 0..100 {
        if appended.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        appended = m.append_in("acme", vec![report.clone()]).await;
    }
    appended.expect("maint reports acme's device stolen in acme's namespace");
    let at_maint = verify_key(&mut m, &key).await;
    assert!(
        !at_maint.trusted,
        "maint's Verify says stolen at once: {at_maint:?}"
    );
    assert_eq!(at_maint.status, "stolen");

    let mut at_acme = verify_key(&mut a, &key).await;
    for _ in 0..300 {
        if !at_acme.trusted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        at_acme = verify_key(&mut a, &key).await;
    }
    assert!(!at_acme.trusted, "acme's Verify says stolen: {at_acme:?}");
    assert_eq!(
        (at_acme.status.as_str(), at_acme.party.as_str()),
        ("stolen", "acme")
    );

    // Reports into a namespace carry one event, and only a party name.
    let two = m
        .append_in("acme", vec![report.clone(), report.clone()])
        .await
        .expect_err("two events");
    assert_eq!(reason_of(&two), "BAD_NAMESPACE_APPEND");
}
