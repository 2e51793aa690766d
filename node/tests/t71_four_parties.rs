//! The ICS network of the seed with four parties on loopback, each its own
//! `icsd` cluster: a manufacturer (acme), a developer (devco), the
//! maintainer (three nodes) and an infield gateway (gw). Each flow the
//! policies allow converges; what they deny never arrives; a stolen report
//! at the maintainer reaches the manufacturer and the gateway; the gateway,
//! cut off, keeps answering and says how stale it is, then "unknown", and
//! catches up after the heal; restarts resume without duplicates; a
//! narrowed then widened policy delivers what the wider one allows, older
//! events included.

mod common;

use std::time::Duration;

use common::federation::*;
use common::*;
use ics_identity::payload::{CodeIdentity, DeviceStatus};
use ics_kernel::authority::PartyPayload;
use ics_kernel::{Algorithm, EventId, Role, SigningKey, SubjectRef};
use ics_node::client::{self, ChainHead};

fn fast(contact_ms: u64) -> String {
    format!(
        "[tlog]\ncheckpoint_interval_ms = 100\n[federation]\npull_interval_ms = 100\ncontact_interval_ms = {contact_ms}\n"
    )
}

fn peer(name: &str, endpoints: &[String], ca: &str, extra: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[[peer]]\nname = \"{name}\"\nendpoints = [{}]\ntls_ca = \"\"\"\n{ca}\"\"\"\n{extra}\n",
        endpoints.join(", ")
    )
}

fn rule(section: &str, peer: &str, domain: &str, kinds: &str) -> String {
    format!("[[{section}]]\npeer = \"{peer}\"\ndomain = \"{domain}\"\nkinds = [{kinds}]\n\n")
}

/// The maintainer's policy: it takes acme's devices and devco's code,
/// shares its status reports with acme, and shares with the gateway the
/// devices of site plant-7 and (when `code_to_gw`) all code.
fn maint_policy(
    version: u64,
    acme: (&[String], &str),
    devco: (&[String], &str),
    gw_ca: &str,
    code_to_gw: bool,
) -> String {
    let mut doc = format!("party = \"{PARTY}\"\nversion = {version}\n\n");
    doc += &peer("acme", acme.0, acme.1, "");
    doc += &peer("devco", devco.0, devco.1, "");
    doc += &peer("gw", &[], gw_ca, "");
    doc += "[[domain]]\nname = \"acme-devices\"\nsubjects = [\"device\"]\nnamespace = \"acme\"\nmanufacturer = \"acme\"\n\n";
    doc += "[[domain]]\nname = \"devco-code\"\nsubjects = [\"code\"]\nnamespace = \"devco\"\n\n";
    doc += "[[domain]]\nname = \"plant-7\"\nsubjects = [\"device\"]\nsite = \"plant-7\"\n\n";
    doc += "[[domain]]\nname = \"code\"\nsubjects = [\"code\"]\n\n";
    doc += &rule("read", "acme", "acme-devices", "\"device-status-changed\"");
    doc += &rule("read", "gw", "plant-7", "\"*\"");
    if code_to_gw {
        doc += &rule("read", "gw", "code", "\"*\"");
    }
    doc += &rule("import", "acme", "acme-devices", "\"*\"");
    doc += &rule("import", "devco", "devco-code", "\"*\"");
    doc
}

/// A device registered at acme with its site; its key, subject and event.
fn acme_device(
    factory: &SigningKey,
    serial: &str,
    site: &str,
) -> (ics_kernel::PublicKey, SubjectRef, ics_kernel::Envelope) {
    let (key, subject, event, _) = acme_device_with_openpgp(factory, serial, site);
    (key, subject, event)
}

/// `acme_device` with an OpenPGP certificate, and its revocation escrow.
fn acme_device_with_openpgp(
    factory: &SigningKey,
    serial: &str,
    site: &str,
) -> (
    ics_kernel::PublicKey,
    SubjectRef,
    ics_kernel::Envelope,
    ics_identity::openpgp::RevocationEscrow,
) {
    let device = SigningKey::generate(Algorithm::Ed25519);
    let key = device.public_key();
    let subject = SubjectRef::new(ics_identity::DEVICE, key.id().to_hex());
    let (event, escrow) = client::register_device_with_openpgp(
        factory,
        serial,
        &device,
        vec![("manu".into(), "acme".into()), ("site".into(), site.into())],
    )
    .expect("an OpenPGP registration");
    (key, subject, event, escrow)
}

/// The HKP index entry (machine-readable) of the device with `serial`.
async fn hkp_index(node: &TestNode, serial: &str) -> (String, String) {
    let (status, body) = http_request(
        &node.http,
        &format!("/pks/lookup?op=index&options=mr&search={serial}"),
    )
    .await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn after(event: &ics_kernel::Envelope, sequence: u64) -> ChainHead {
    ChainHead {
        sequence,
        previous: Some(EventId::of_body(&event.body)),
    }
}

fn no_duplicates(what: &str, events: &[(String, Vec<u8>)]) {
    let mut ids: Vec<&Vec<u8>> = events.iter().map(|(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "{what}: no event imported twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_parties_sync_what_their_policies_allow_and_nothing_else() {
    let acme_fed = format!("127.0.0.1:{}", free_port());
    let devco_fed = format!("127.0.0.1:{}", free_port());
    let maint_fed: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let acme = start_party(
        "acme",
        &format!(
            "role = \"manufacturer\"\nfederation_listen = \"{acme_fed}\"\n{}",
            fast(1000)
        ),
    );
    let devco = start_party(
        "devco",
        &format!(
            "role = \"developer\"\nfederation_listen = \"{devco_fed}\"\n{}",
            fast(1000)
        ),
    );
    let mut maint = start_cluster_with(3, |id| {
        format!(
            "federation_listen = \"{}\"\n{}",
            maint_fed[id as usize - 1],
            fast(1000)
        )
    });
    let mut gw = start_party("gw", &format!("role = \"infield\"\n{}", fast(300)));
    for c in [&acme, &devco, &maint, &gw] {
        c.wait_ready(Duration::from_secs(60)).await;
    }
    // The gateway reaches the maintainer through proxies: the partition.
    let mut proxies = Vec::new();
    for address in &maint_fed {
        proxies.push(Proxy::to(address.clone()).await);
    }
    let via_proxies: Vec<String> = proxies.iter().map(|p| p.address.clone()).collect();

    // Who recognizes whom, and whose log each pulls from.
    recognize(&maint, &acme, "acme", Role::Manufacturer, true).await;
    recognize(&maint, &devco, "devco", Role::Developer, true).await;
    recognize(&maint, &gw, "gw", Role::Infield, false).await;
    recognize(&acme, &maint, PARTY, Role::Maintenance, true).await;
    recognize(&devco, &maint, PARTY, Role::Maintenance, false).await;
    recognize(&gw, &maint, PARTY, Role::Maintenance, true).await;
    // The gateway keeps acme's and devco's records too, in their namespaces.
    recognize(&gw, &acme, "acme", Role::Manufacturer, false).await;
    recognize(&gw, &devco, "devco", Role::Developer, false).await;

    let (acme_ca, devco_ca, maint_ca, gw_ca) =
        (ca_pem(&acme), ca_pem(&devco), ca_pem(&maint), ca_pem(&gw));
    let acme_endpoints = [acme_fed.clone()];
    let devco_endpoints = [devco_fed.clone()];
    publish_policy(
        &acme,
        format!(
            "party = \"acme\"\nversion = 1\n\n{}[[domain]]\nname = \"acme-devices\"\nsubjects = [\"device\"]\nmanufacturer = \"acme\"\n\n{}{}",
            peer(PARTY, &maint_fed, &maint_ca, ""),
            rule("read", PARTY, "acme-devices", "\"*\""),
            rule("import", PARTY, "acme-devices", "\"device-status-changed\""),
        ),
    )
    .await;
    publish_policy(
        &devco,
        format!(
            "party = \"devco\"\nversion = 1\n\n{}[[domain]]\nname = \"firmware\"\nsubjects = [\"code\"]\n\n{}",
            peer(PARTY, &[], &maint_ca, ""),
            rule("read", PARTY, "firmware", "\"*\""),
        ),
    )
    .await;
    let maint_v = |version, code_to_gw| {
        maint_policy(
            version,
            (&acme_endpoints, &acme_ca),
            (&devco_endpoints, &devco_ca),
            &gw_ca,
            code_to_gw,
        )
    };
    publish_policy(&maint, maint_v(1, true)).await;
    publish_policy(
        &gw,
        format!(
            "party = \"gw\"\nversion = 1\n\n{}[[domain]]\nname = \"plant-7\"\nsubjects = [\"device\"]\nsite = \"plant-7\"\n\n[[domain]]\nname = \"code\"\nsubjects = [\"code\"]\n\n{}{}",
            peer(PARTY, &via_proxies, &maint_ca, "max_staleness_seconds = 3"),
            rule("import", PARTY, "plant-7", "\"*\""),
            rule("import", PARTY, "code", "\"*\""),
        ),
    )
    .await;

    // Records at their sources.
    let mut a = acme.node(1).client();
    let mut d = devco.node(1).client();
    let mut m = maint.node(1).client();
    let mut g = gw.node(1).client();
    let factory = register_author(&mut a, &acme.root_key(), device_kinds()).await;
    // d1's owner, the maintainer, was handed its revocation escrow.
    let (k1, d1, reg1, d1_escrow) = acme_device_with_openpgp(&factory, "SN-1", "plant-7");
    let (k2, _, reg2) = acme_device(&factory, "SN-2", "plant-9");
    let (k3, d3, reg3) = acme_device(&factory, "SN-3", "plant-7");
    a.append(vec![reg1.clone(), reg2, reg3.clone()])
        .await
        .expect("register");
    let grant = client::signed(
        &acme.root_key(),
        d1.clone(),
        after(&reg1, 1),
        PartyPayload::AccessGranted {
            party: PARTY.into(),
            kinds: ["device-status-changed".to_string()].into(),
        },
    );
    a.append(vec![grant.clone()]).await.expect("grant reports");
    let developer = register_author(
        &mut d,
        &devco.root_key(),
        [
            "code-released".to_string(),
            "code-status-changed".to_string(),
        ]
        .into(),
    )
    .await;
    let fw1 = CodeIdentity::of_artifact("thermo-fw", "1.0.0", b"firmware 1.0.0", None);
    d.append(vec![client::release_code(&developer, fw1.clone()).unwrap()])
        .await
        .expect("release");

    // manufacturer -> maintainer, developer -> maintainer.
    for key in [&k1, &k2] {
        let v = verify_until(&m, Asked::Key(key), "acme's devices at maint", |v| {
            v.trusted
        })
        .await;
        assert_eq!(v.party, "acme");
    }
    let v = verify_until(&m, Asked::Code(&fw1.sha256), "devco's code at maint", |v| {
        v.trusted
    })
    .await;
    assert_eq!(v.party, "devco");
    assert!(v.reason.contains("thermo-fw@1.0.0"), "{}", v.reason);

    // maintainer -> gateway: its site's devices and the code, as the
    // records of the parties that made them; the other site's never.
    let v = verify_until(&g, Asked::Key(&k1), "d1 at gw", |v| v.trusted).await;
    assert_eq!((v.party.as_str(), v.synced_via.as_str()), ("acme", PARTY));
    assert!(!v.stale && v.synced_ms > 0, "{v:?}");
    verify_until(&g, Asked::Key(&k3), "d3 at gw", |v| v.trusted).await;
    let v = verify_until(&g, Asked::Code(&fw1.sha256), "code at gw", |v| v.trusted).await;
    assert_eq!(v.party, "devco");

    // maintainer -> manufacturer and gateway: a stolen report made at the
    // maintainer, in acme's namespace under acme's grant.
    let report = client::report_status(
        &maint.root_key(),
        &d1.id,
        after(&grant, 2),
        DeviceStatus::Stolen,
        "van broken into",
        Some(d1_escrow.compromised.clone()),
    );
    let mut appended = m.append_in("acme", vec![report.clone()]).await;
    for _ in 0..300 {
        if appended.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        appended = m.append_in("acme", vec![report.clone()]).await;
    }
    appended.expect("maint reports d1 stolen in acme's namespace");
    for (who, c) in [("acme", &a), ("gw", &g)] {
        let v = verify_until(
            c,
            Asked::Key(&k1),
            &format!("the stolen report at {who}"),
            |v| v.status == "stolen",
        )
        .await;
        assert!(!v.trusted, "{who}: {v:?}");
    }
    // The gateway's subject and history of d1: acme's record, its events
    // as stored here (imported, in acme's namespace).
    let state = json_of(
        &icsctl_at(gw.node(1), &["subject", &format!("device/{}", d1.id)]).expect("subject"),
    );
    assert_eq!(state["namespace"], "acme", "{state}");
    let positions: Vec<u64> = state["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|p| p.as_u64().expect("a position"))
        .collect();
    assert_eq!(positions.len(), 3, "registration, grant, report: {state}");
    let mut history = g
        .log
        .history(ics_proto::core_v1::HistoryRequest {
            subject: Some(client::codec::subject_to_pb(&d1)),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    let mut seen = Vec::new();
    while let Some(e) = history.message().await.expect("an event") {
        assert_eq!(
            e.imported.as_ref().map(|i| i.namespace.as_str()),
            Some("acme")
        );
        seen.push(e.index);
    }
    assert_eq!(seen, positions, "history streams this log's positions");
    // ... and their HKP keyservers serve d1's certificate revoked: acme's
    // from its own records, the gateway's from those it imported.
    for (who, node) in [("acme", acme.node(1)), ("gw", gw.node(1))] {
        let (status, index) = hkp_index(node, "SN-1").await;
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "{who}: {status} {index}"
        );
        let pub_line = index
            .lines()
            .find(|l| l.starts_with("pub:"))
            .unwrap_or_default();
        assert!(pub_line.ends_with(":r"), "{who}: revoked in HKP: {index}");
    }
    // The other site's device never reached the gateway: by now everything
    // before the report has.
    let v = verify_key(&mut g, &k2).await;
    assert!(
        v.subject.is_none() && !v.trusted,
        "plant-9's device is not the gateway's: {v:?}"
    );

    // The partition: the gateway keeps answering, says how stale its view
    // is, and once past the policy's staleness answers "unknown".
    let before_cut = verify_key(&mut g, &k3).await;
    assert!(before_cut.trusted && !before_cut.stale, "{before_cut:?}");
    for p in &proxies {
        p.cut();
    }
    let d3_stolen = client::change_status(
        &factory,
        &d3.id,
        after(&reg3, 1),
        DeviceStatus::Stolen,
        "lost in transit",
    );
    a.append(vec![d3_stolen])
        .await
        .expect("acme reports d3 stolen");
    verify_until(&m, Asked::Key(&k3), "d3 stolen at maint", |v| {
        v.status == "stolen"
    })
    .await;
    let v = verify_until(&g, Asked::Key(&k3), "the gateway to go stale", |v| v.stale).await;
    assert!(!v.trusted, "{v:?}");
    assert_eq!(v.status, "unknown");
    assert!(v.reason.contains("max_staleness_seconds 3"), "{}", v.reason);
    // HKP will not serve a certificate that may have been revoked since.
    let (status, why) = hkp_index(gw.node(1), "SN-1").await;
    assert!(status.starts_with("HTTP/1.1 503"), "{status} {why}");
    assert!(why.contains("max_staleness_seconds"), "{why}");
    assert_eq!(v.synced_via, PARTY);
    assert!(client::now_ms() - v.synced_ms > 3000, "{v:?}");
    let status =
        json_of(&icsctl_at(gw.node(1), &["federation", "status"]).expect("federation status"));
    let maint_status = &status["peers"][0];
    assert_eq!(maint_status["party"], PARTY);
    assert_eq!(maint_status["stale"], true, "{status}");
    assert!(
        maint_status["consecutive_failures"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert!(
        !maint_status["last_error"].as_str().unwrap().is_empty(),
        "{status}"
    );
    // The gateway's own view of what it had stays: d1 was stolen before.
    assert_eq!(verify_key(&mut g, &k1).await.status, "unknown");

    // The heal: the gateway catches up, fresh again.
    for p in &proxies {
        p.heal();
    }
    let v = verify_until(&g, Asked::Key(&k3), "the gateway to catch up", |v| {
        v.status == "stolen" && !v.stale
    })
    .await;
    assert!(!v.trusted);
    let status =
        json_of(&icsctl_at(gw.node(1), &["federation", "status"]).expect("federation status"));
    assert_eq!(status["peers"][0]["stale"], false, "{status}");
    assert_eq!(status["peers"][0]["last_error"], "", "{status}");

    // Restarts: the maintainer's leader, the gateway and the manufacturer;
    // sync resumes from the replicated cursors, nothing imported twice.
    let leader = maint.wait_ready(Duration::from_secs(60)).await;
    maint.node_mut(leader).kill();
    maint.node_mut(leader).start();
    gw.node_mut(1).kill();
    gw.node_mut(1).start();
    let mut acme = acme;
    acme.node_mut(1).kill();
    acme.node_mut(1).start();
    for c in [&acme, &maint, &gw] {
        c.wait_ready(Duration::from_secs(60)).await;
    }
    let mut a = acme.node(1).client();
    let mut g = gw.node(1).client();
    let (k4, _, reg4) = acme_device(&factory, "SN-4", "plant-7");
    a.append(vec![reg4])
        .await
        .expect("register after the restarts");
    verify_until(&g, Asked::Key(&k4), "d4 at gw after the restarts", |v| {
        v.trusted
    })
    .await;
    for node in &maint.nodes {
        no_duplicates("maint", &imported(node).await);
    }
    no_duplicates("gw", &imported(gw.node(1)).await);
    no_duplicates("acme", &imported(acme.node(1)).await);

    // Narrowing: the maintainer stops sharing code with the gateway; a new
    // release reaches the maintainer, not the gateway.
    publish_policy(&maint, maint_v(2, false)).await;
    let fw2 = CodeIdentity::of_artifact("thermo-fw", "2.0.0", b"firmware 2.0.0", None);
    d.append(vec![client::release_code(&developer, fw2.clone()).unwrap()])
        .await
        .expect("release 2.0.0");
    verify_until(&m, Asked::Code(&fw2.sha256), "fw2 at maint", |v| v.trusted).await;
    let (k5, _, reg5) = acme_device(&factory, "SN-5", "plant-7");
    a.append(vec![reg5]).await.expect("register d5");
    verify_until(&g, Asked::Key(&k5), "d5 at gw", |v| v.trusted).await;
    let v = verify_code(&mut g, &fw2.sha256).await;
    assert!(
        v.subject.is_none(),
        "narrowed: fw2 must not reach the gateway: {v:?}"
    );
    assert!(
        verify_code(&mut g, &fw1.sha256).await.trusted,
        "what arrived before stays"
    );

    // Widening: code is shared again, and the gateway pulls again from the
    // start once, so the release it missed arrives too.
    publish_policy(&maint, maint_v(3, true)).await;
    let v = verify_until(
        &g,
        Asked::Code(&fw2.sha256),
        "fw2 at gw after widening",
        |v| v.trusted,
    )
    .await;
    assert_eq!(v.party, "devco");
    no_duplicates("gw after the re-pull", &imported(gw.node(1)).await);
    let v = verify_key(&mut g, &k2).await;
    assert!(v.subject.is_none(), "still not the gateway's: {v:?}");
}
