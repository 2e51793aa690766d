//! Factory certificates travel with the device identity: a manufacturer
//! issues them, the maintainer's policy imports `device-cert` records of the
//! devices it imports (read as the device they certify), and the
//! maintainer's Verify then knows a factory certificate as the
//! manufacturer's; one outside the shared domain stays unknown there.

mod common;

use std::path::Path;
use std::time::Duration;

use common::federation::*;
use common::*;
use ics_kernel::{Algorithm, SigningKey, SubjectRef};
use ics_node::client;
use ics_proto::ca_v1 as pb;

/// Party `party`'s policy naming `peer` (endpoint, CA), sharing acme's
/// devices and their certificates by `rule` (read or import).
fn policy(party: &str, peer: &str, peer_ca: &str, endpoint: &str, rule: &str) -> String {
    format!(
        "party = \"{party}\"\nversion = 1\n\n[[peer]]\nname = \"{peer}\"\nendpoints = [{endpoint}]\ntls_ca = \"\"\"\n{peer_ca}\"\"\"\n\n[[domain]]\nname = \"acme-devices\"\nsubjects = [\"device\", \"device-cert\"]\nmanufacturer = \"acme\"\n\n[[{rule}]]\npeer = \"{peer}\"\ndomain = \"acme-devices\"\nkinds = [\"*\"]\n"
    )
}

/// A P-256 device registered at the manufacturer, and its factory
/// certificate issued from the device's own request (DER).
async fn factory_certificate(
    node: &TestNode,
    author: &SigningKey,
    serial: &str,
    manu: &str,
    dir: &Path,
) -> Vec<u8> {
    let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    node.client()
        .append(vec![client::register_device(
            author,
            serial,
            &key.public_key(),
            vec![("manu".into(), manu.into())],
        )])
        .await
        .expect("register");
    let ics_kernel::SigningKey::P256(p256) = &key else {
        unreachable!()
    };
    let csr = ics_ca::x509::make_csr(p256, serial).unwrap();
    let r = node
        .client()
        .ca
        .issue(pb::IssueRequest {
            csr,
            device: key.key_id().to_hex(),
            ..Default::default()
        })
        .await
        .expect("issued")
        .into_inner();
    std::fs::write(
        dir.join(format!("{serial}.pem")),
        ics_ca::encoding::pem("CERTIFICATE", &r.certificate),
    )
    .unwrap();
    r.certificate
}

async fn verify(node: &TestNode, certificate: &[u8]) -> pb::VerifyCertificateResponse {
    node.client()
        .ca
        .verify_certificate(pb::VerifyCertificateRequest {
            certificate: certificate.to_vec(),
            expect: vec![],
        })
        .await
        .expect("verify")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_certificates_federate_with_their_devices_by_policy() {
    let federation = format!("127.0.0.1:{}", free_port());
    let acme = start_party(
        "acme",
        &format!(
            "role = \"manufacturer\"\nfederation_listen = \"{federation}\"\n[tlog]\ncheckpoint_interval_ms = 100\n"
        ),
    );
    let maint = start_cluster(
        1,
        "[tlog]\ncheckpoint_interval_ms = 100\n[federation]\npull_interval_ms = 100\n",
    );
    for c in [&acme, &maint] {
        c.wait_ready(Duration::from_secs(60)).await;
    }
    recognize(&acme, &maint, PARTY, ics_kernel::Role::Maintenance, false).await;
    publish_policy(&acme, policy("acme", PARTY, &ca_pem(&maint), "", "read")).await;
    recognize(&maint, &acme, "acme", ics_kernel::Role::Manufacturer, true).await;
    publish_policy(
        &maint,
        policy(
            PARTY,
            "acme",
            &ca_pem(&acme),
            &format!("\"{federation}\""),
            "import",
        ),
    )
    .await;

    let work = tempfile::tempdir().unwrap();
    let author = acme.device_author().await;
    let shared = factory_certificate(acme.node(1), &author, "SN-1", "acme", work.path()).await;
    let private = factory_certificate(acme.node(1), &author, "SN-2", "globex", work.path()).await;
    assert!(verify(acme.node(1), &shared).await.valid);
    assert!(verify(acme.node(1), &private).await.valid);

    let mut seen = verify(maint.node(1), &shared).await;
    for _ in 0..300 {
        if seen.valid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = verify(maint.node(1), &shared).await;
    }
    assert!(
        seen.valid,
        "the factory certificate never arrived: {seen:?}"
    );
    assert_eq!(seen.issuer_party, "acme");
    assert_eq!(seen.device_namespace, "acme");
    // The certificate's record is the manufacturer's, at the maintainer.
    let record = maint
        .node(1)
        .client()
        .subject(&SubjectRef::new(ics_ca::DEVICE_CERT, seen.serial.clone()))
        .await
        .expect("imported");
    assert_eq!(record.namespace, "acme");
    // Outside the shared domain: not known here.
    let other = verify(maint.node(1), &private).await;
    assert!(!other.valid);
    assert_eq!(other.problems[0].reason, "NOT_ISSUED_HERE", "{other:?}");
}
