//! Certifier → maintenance, the seed's trust labels: a developer (devco)
//! releases code and grants a certification body (cert) endorsements on
//! it; cert pulls devco's code, labels it in devco's namespace under that
//! grant, and the maintainer, importing devco's code from devco and only
//! endorsements from cert, takes the label into its records — the exact
//! event cert signed, checked by devco's rules and grant.

mod common;

use std::time::Duration;

use common::federation::*;
use common::*;
use ics_identity::IdentityPayload;
use ics_identity::payload::{CodeIdentity, EndorsementKind};
use ics_kernel::authority::PartyPayload;
use ics_kernel::{EventId, Role, SubjectRef};
use ics_node::client::{self, ChainHead};

fn fast(role: &str, federation: &str) -> String {
    format!(
        "role = \"{role}\"\nfederation_listen = \"{federation}\"\n[tlog]\ncheckpoint_interval_ms = 100\n[federation]\npull_interval_ms = 100\n"
    )
}

fn peer(name: &str, endpoint: Option<&str>, ca: &str) -> String {
    let endpoints = endpoint.map(|e| format!("\"{e}\"")).unwrap_or_default();
    format!(
        "[[peer]]\nname = \"{name}\"\nendpoints = [{endpoints}]\ntls_ca = \"\"\"\n{ca}\"\"\"\n\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certifiers_trust_label_reaches_the_maintainer_under_the_developers_grant() {
    let devco_fed = format!("127.0.0.1:{}", free_port());
    let cert_fed = format!("127.0.0.1:{}", free_port());
    let devco = start_party("devco", &fast("developer", &devco_fed));
    let cert = start_party("cert", &fast("certifier", &cert_fed));
    let maint = start_cluster(
        1,
        "[tlog]\ncheckpoint_interval_ms = 100\n[federation]\npull_interval_ms = 100\n",
    );
    for c in [&devco, &cert, &maint] {
        c.wait_ready(Duration::from_secs(60)).await;
    }
    recognize(&maint, &devco, "devco", Role::Developer, true).await;
    recognize(&maint, &cert, "cert", Role::Certifier, true).await;
    recognize(&cert, &devco, "devco", Role::Developer, true).await;
    recognize(&cert, &maint, PARTY, Role::Maintenance, false).await;
    recognize(&devco, &maint, PARTY, Role::Maintenance, false).await;
    recognize(&devco, &cert, "cert", Role::Certifier, false).await;
    let (devco_ca, cert_ca, maint_ca) = (ca_pem(&devco), ca_pem(&cert), ca_pem(&maint));
    publish_policy(
        &devco,
        format!(
            "party = \"devco\"\nversion = 1\n\n{}{}[[domain]]\nname = \"code\"\nsubjects = [\"code\"]\n\n\
             [[read]]\npeer = \"{PARTY}\"\ndomain = \"code\"\nkinds = [\"*\"]\n\n\
             [[read]]\npeer = \"cert\"\ndomain = \"code\"\nkinds = [\"*\"]\n",
            peer(PARTY, None, &maint_ca),
            peer("cert", None, &cert_ca)
        ),
    )
    .await;
    publish_policy(
        &cert,
        format!(
            "party = \"cert\"\nversion = 1\n\n{}{}[[domain]]\nname = \"devco-code\"\nsubjects = [\"code\"]\nnamespace = \"devco\"\n\n\
             [[import]]\npeer = \"devco\"\ndomain = \"devco-code\"\nkinds = [\"*\"]\n\n\
             [[read]]\npeer = \"{PARTY}\"\ndomain = \"devco-code\"\nkinds = [\"endorsed\"]\n",
            peer("devco", Some(&devco_fed), &devco_ca),
            peer(PARTY, None, &maint_ca)
        ),
    )
    .await;
    publish_policy(
        &maint,
        format!(
            "party = \"{PARTY}\"\nversion = 1\n\n{}{}[[domain]]\nname = \"devco-code\"\nsubjects = [\"code\"]\nnamespace = \"devco\"\n\n\
             [[import]]\npeer = \"devco\"\ndomain = \"devco-code\"\nkinds = [\"*\"]\n\n\
             [[import]]\npeer = \"cert\"\ndomain = \"devco-code\"\nkinds = [\"endorsed\"]\n",
            peer("devco", Some(&devco_fed), &devco_ca),
            peer("cert", Some(&cert_fed), &cert_ca)
        ),
    )
    .await;

    // devco releases firmware and grants cert endorsements on it.
    let mut d = devco.node(1).client();
    let developer = register_author(
        &mut d,
        &devco.root_key(),
        ["code-released".to_string()].into(),
    )
    .await;
    let fw = CodeIdentity::of_artifact("thermo-fw", "1.0.0", b"firmware 1.0.0", None);
    let release = client::release_code(&developer, fw.clone()).unwrap();
    d.append(vec![release.clone()]).await.expect("release");
    let code = SubjectRef::new(ics_identity::CODE, hex::encode(fw.blake3));
    let grant = client::signed(
        &devco.root_key(),
        code.clone(),
        ChainHead {
            sequence: 1,
            previous: Some(EventId::of_body(&release.body)),
        },
        PartyPayload::AccessGranted {
            party: "cert".into(),
            kinds: ["endorsed".to_string()].into(),
        },
    );
    d.append(vec![grant.clone()])
        .await
        .expect("grant cert endorsements");

    // cert holds devco's code, then labels it in devco's namespace.
    let c = cert.node(1).client();
    verify_until(&c, Asked::Code(&fw.sha256), "devco's code at cert", |v| {
        v.trusted
    })
    .await;
    let label = client::signed(
        &cert.root_key(),
        code.clone(),
        ChainHead {
            sequence: 2,
            previous: Some(EventId::of_body(&grant.body)),
        },
        IdentityPayload::Endorsed {
            kind: EndorsementKind::TrustLabel,
            scope: "IEC 62443-4-2 SL2".into(),
            not_after_ms: client::now_ms() + 365 * 86_400_000,
            openpgp_certification: None,
        },
    );
    let mut c = c;
    let mut appended = c.append_in("devco", vec![label.clone()]).await;
    for _ in 0..100 {
        if appended.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        appended = c.append_in("devco", vec![label.clone()]).await;
    }
    appended.expect("cert labels devco's code under devco's grant");

    // The maintainer takes the label from cert, as the event cert signed,
    // in devco's namespace; from cert nothing else of devco's.
    let label_id = EventId::of_body(&label.body).0.to_vec();
    let m = maint.node(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let imported = loop {
        let imported = imported_records(m).await;
        if imported.iter().any(|(_, id)| *id == label_id) {
            break imported;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the trust label never reached the maintainer: {imported:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let via_cert: Vec<_> = imported
        .iter()
        .filter(|(i, _)| i.namespace == "devco" && i.via == "cert")
        .collect();
    assert_eq!(
        via_cert.len(),
        1,
        "only the label came from cert: {via_cert:?}"
    );
    assert_eq!(via_cert[0].1, label_id);
    let v = verify_code(&mut maint.node(1).client(), &fw.sha256).await;
    assert!(v.trusted && v.party == "devco", "{v:?}");
}
