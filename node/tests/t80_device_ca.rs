//! The device CA on a running node, checked with stock `openssl`: a
//! manufacturer's single node makes and binds its CA on first start, issues a
//! factory certificate from a request `openssl` made with the device's key,
//! serves the chain, the CRL and an OCSP responder; a revocation shows in
//! both at once; attributes kept beside the certificate change Verify
//! without reissuing. Every refusal names its reason and issues nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use ics_kernel::{Algorithm, SigningKey, SubjectRef};
use ics_node::client;
use ics_proto::ca_v1 as pb;

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    run_tool(dir, "openssl", args)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    tool_ok(dir, "openssl", args)
}

/// A device key made by openssl, registered (P-256) by the manufacturer.
async fn device(
    c: &mut client::Client,
    author: &SigningKey,
    dir: &Path,
    serial: &str,
) -> (SubjectRef, String) {
    let key = format!("{serial}.key");
    ok(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &key,
        ],
    );
    let spki = format!("{serial}.spki");
    ok(
        dir,
        &[
            "ec", "-in", &key, "-pubout", "-outform", "DER", "-out", &spki,
        ],
    );
    // A P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point.
    let spki = std::fs::read(dir.join(&spki)).unwrap();
    let public =
        ics_kernel::PublicKey::new(Algorithm::EcdsaP256Sha256, spki[spki.len() - 65..].to_vec())
            .unwrap();
    c.append(vec![client::register_device(
        author,
        serial,
        &public,
        vec![],
    )])
    .await
    .expect("register the device");
    let subject = SubjectRef::new(ics_identity::DEVICE, public.id().to_hex());
    let csr = format!("{serial}.csr");
    ok(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={serial}"),
            "-out",
            &csr,
        ],
    );
    (subject, csr)
}

/// The chain the node serves, split into `issuing.pem` and `root.pem` (and
/// whole in `chain.pem`) in `dir`; the issuing CA's PEM.
async fn fetch_chain(node: &TestNode, dir: &Path) -> String {
    let chain = http_get(&node.http, "/ca/chain.pem").await;
    std::fs::write(dir.join("chain.pem"), &chain).unwrap();
    let blocks: Vec<&str> = chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    assert_eq!(blocks.len(), 2, "issuing CA then root:\n{chain}");
    std::fs::write(dir.join("issuing.pem"), blocks[0]).unwrap();
    std::fs::write(dir.join("root.pem"), blocks[1]).unwrap();
    blocks[0].to_string()
}

fn issue(node: &TestNode, csr: &Path, device: &str, out: &Path) -> Result<String, String> {
    icsctl_at(
        node,
        &[
            "ca",
            "issue",
            "--csr",
            csr.to_str().unwrap(),
            "--device",
            device,
            "--out",
            out.to_str().unwrap(),
            "--chain-out",
            out.with_extension("chain.pem").to_str().unwrap(),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manufacturer_issues_factory_certificates_and_openssl_sees_their_status() {
    let cluster = start_party(
        "acme",
        "role = \"manufacturer\"\n[ca]\nbase_url = \"http://ca.acme.example\"\n",
    );
    cluster.wait_ready(Duration::from_secs(60)).await;
    let node = cluster.node(1);
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let author = cluster.device_author().await;
    let mut c = node.client();

    // The chain, as any relying party fetches it.
    let issuing_pem = fetch_chain(node, d).await;

    let (sn1, csr1) = device(&mut c, &author, d, "SN-0001").await;
    let out = issue(node, &d.join(&csr1), &sn1.id, &d.join("sn1.pem")).expect("issued");
    let issued = json_of(&out);
    let serial = issued["serial"].as_str().unwrap().to_string();
    let verified = ok(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "sn1.pem",
        ],
    );
    assert!(verified.contains("sn1.pem: OK"), "{verified}");
    let text = ok(d, &["x509", "-in", "sn1.pem", "-noout", "-text"]);
    assert!(text.contains("CN = SN-0001"), "{text}");
    assert!(
        text.contains(&format!("serialNumber = {}", sn1.id)),
        "{text}"
    );
    assert!(
        text.contains("OCSP - URI:http://ca.acme.example/ocsp"),
        "{text}"
    );

    // OCSP over HTTP, as openssl asks it: good.
    let ocsp = |dir: &Path| {
        ok(
            dir,
            &[
                "ocsp",
                "-url",
                &format!("http://{}/ocsp", node.http),
                "-issuer",
                "issuing.pem",
                "-cert",
                "sn1.pem",
                "-CAfile",
                "root.pem",
            ],
        )
    };
    let answer = ocsp(d);
    assert!(answer.contains("Response verify OK"), "{answer}");
    assert!(answer.contains("sn1.pem: good"), "{answer}");

    // Verify against the log, and an attribute that stops the device at once.
    let v = icsctl_at(node, &["ca", "verify", d.join("sn1.pem").to_str().unwrap()]).expect("valid");
    assert_eq!(json_of(&v)["valid"], true, "{v}");
    let ops = register_author(
        &mut c,
        &cluster.root_key(),
        ["cert-attributes-set".to_string()].into(),
    )
    .await;
    let ops_file = d.join("ops.key");
    ics_node::keyfile::write(&ops_file, &ops).unwrap();
    icsctl_at(
        node,
        &[
            "ca",
            "attributes",
            "--signer",
            ops_file.to_str().unwrap(),
            "--serial",
            &serial,
            "--set",
            "ingest=allowed",
        ],
    )
    .expect("attributes set");
    let sn1_pem = d.join("sn1.pem");
    let sn1_pem = sn1_pem.to_str().unwrap();
    let expect_ingest = ["ca", "verify", sn1_pem, "--expect", "ingest=allowed"];
    icsctl_at(node, &expect_ingest).expect("passes with ingest=allowed");
    icsctl_at(
        node,
        &[
            "ca",
            "attributes",
            "--signer",
            ops_file.to_str().unwrap(),
            "--serial",
            &serial,
            "--set",
            "ingest=blocked",
        ],
    )
    .expect("attributes set");
    let err = icsctl_at(node, &expect_ingest).expect_err("ingest blocked");
    assert!(err.contains("ATTRIBUTE_MISMATCH"), "{err}");

    // Refusals: each names its reason, and the log is as it was.
    let before = cluster.event_count(1).await;
    let csr1_der = {
        let (done, _) = openssl(
            d,
            &[
                "req",
                "-in",
                &csr1,
                "-outform",
                "DER",
                "-out",
                "sn1.csr.der",
            ],
        );
        assert!(done);
        std::fs::read(d.join("sn1.csr.der")).unwrap()
    };
    let refuse = |req: pb::IssueRequest| {
        let mut c = node.client();
        async move { c.ca.issue(req).await.expect_err("refused") }
    };
    let unknown = SigningKey::generate(Algorithm::EcdsaP256Sha256)
        .key_id()
        .to_hex();
    let e = refuse(pb::IssueRequest {
        csr: csr1_der.clone(),
        device: unknown,
        ..Default::default()
    })
    .await;
    assert_eq!(reason_of(&e), "UNKNOWN_DEVICE", "{e:?}");
    let mut bad = csr1_der.clone();
    let n = bad.len();
    bad[n - 3] ^= 0xff;
    let e = refuse(pb::IssueRequest {
        csr: bad,
        device: sn1.id.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(reason_of(&e), "BAD_CSR", "{e:?}");
    let (sn2, csr2) = device(&mut c, &author, d, "SN-0002").await;
    let csr2_der = {
        ok(
            d,
            &[
                "req",
                "-in",
                &csr2,
                "-outform",
                "DER",
                "-out",
                "sn2.csr.der",
            ],
        );
        std::fs::read(d.join("sn2.csr.der")).unwrap()
    };
    // SN-0002's request for SN-0001: the subject names another serial.
    let e = refuse(pb::IssueRequest {
        csr: csr2_der.clone(),
        device: sn1.id.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(reason_of(&e), "CSR_SUBJECT_MISMATCH", "{e:?}");
    // The same serial but another key than the registered one.
    ok(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "other.key",
        ],
    );
    ok(
        d,
        &[
            "req",
            "-new",
            "-key",
            "other.key",
            "-subj",
            "/CN=SN-0002",
            "-outform",
            "DER",
            "-out",
            "other.csr.der",
        ],
    );
    let e = refuse(pb::IssueRequest {
        csr: std::fs::read(d.join("other.csr.der")).unwrap(),
        device: sn2.id.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(reason_of(&e), "CSR_KEY_MISMATCH", "{e:?}");
    // A stolen device gets nothing.
    let head = c.chain_head(&sn2).await.unwrap();
    c.append(vec![client::report_status(
        &author,
        &sn2.id,
        head,
        ics_identity::payload::DeviceStatus::Stolen,
        "gone",
        None,
    )])
    .await
    .unwrap();
    let before_stolen = cluster.event_count(1).await;
    let e = refuse(pb::IssueRequest {
        csr: csr2_der,
        device: sn2.id.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(reason_of(&e), "DEVICE_NOT_ENROLLABLE", "{e:?}");
    assert_eq!(cluster.event_count(1).await, before_stolen);
    assert_eq!(
        before + 2,
        before_stolen,
        "only the registration and the report"
    );
    // Without an operator certificate: refused before anything is signed.
    let anonymous = client::ClientTls::load(&node.client_tls.join("ca.crt"), None).unwrap();
    let mut anon = client::Client::connect(&node.grpc, &anonymous).unwrap();
    let e = anon
        .ca
        .issue(pb::IssueRequest {
            csr: csr1_der.clone(),
            device: sn1.id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("needs an operator");
    assert_eq!(reason_of(&e), "OPERATOR_REQUIRED", "{e:?}");
    assert_eq!(cluster.event_count(1).await, before_stolen);

    // Revoked: the CRL lists it and OCSP says so, at once.
    icsctl_at(
        node,
        &[
            "ca",
            "revoke",
            "--serial",
            &serial,
            "--reason",
            "key-compromise",
        ],
    )
    .expect("revoked");
    let answer = ocsp(d);
    assert!(answer.contains("sn1.pem: revoked"), "{answer}");
    assert!(answer.contains("Reason: keyCompromise"), "{answer}");
    let ca_id = ics_kernel::PublicKey::new(
        Algorithm::EcdsaP256Sha256,
        ics_pki::ParsedCert::parse(
            &ics_ca::encoding::der_from_pem_or_der(issuing_pem.as_bytes(), "CERTIFICATE").unwrap(),
        )
        .unwrap()
        .public_key,
    )
    .unwrap()
    .id()
    .to_hex();
    let (status, crl) = http_request(&node.http, &format!("/ca/{ca_id}.crl")).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    std::fs::write(d.join("crl.der"), &crl).unwrap();
    let listed = ok(
        d,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-CAfile",
            "chain.pem",
            "-noout",
            "-text",
        ],
    );
    assert!(listed.contains("verify OK"), "{listed}");
    assert!(listed.contains(&serial.to_uppercase()), "{listed}");
    ok(
        d,
        &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"],
    );
    let (passed, out) = openssl(
        d,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-CRLfile",
            "crl.pem",
            "sn1.pem",
        ],
    );
    assert!(!passed && out.contains("certificate revoked"), "{out}");
    let err = icsctl_at(node, &["ca", "verify", d.join("sn1.pem").to_str().unwrap()])
        .expect_err("revoked");
    assert!(err.contains("REVOKED"), "{err}");

    // A production run in one batch, all or none.
    let (sn3, csr3) = device(&mut c, &author, d, "SN-0003").await;
    let (sn4, csr4) = device(&mut c, &author, d, "SN-0004").await;
    let certs = || count_subjects(node, ics_ca::DEVICE_CERT);
    let before = certs().await;
    let der = |csr: &str| {
        let out = format!("{csr}.der");
        ok(d, &["req", "-in", csr, "-outform", "DER", "-out", &out]);
        std::fs::read(d.join(out)).unwrap()
    };
    let e = node
        .client()
        .ca
        .issue_batch(pb::IssueBatchRequest {
            requests: vec![
                pb::IssueRequest {
                    csr: der(&csr3),
                    device: sn3.id.clone(),
                    ..Default::default()
                },
                pb::IssueRequest {
                    csr: der(&csr4),
                    device: SigningKey::generate(Algorithm::EcdsaP256Sha256)
                        .key_id()
                        .to_hex(),
                    ..Default::default()
                },
            ],
        })
        .await
        .expect_err("one request names an unknown device");
    assert_eq!(reason_of(&e), "UNKNOWN_DEVICE", "{e:?}");
    assert!(e.message().starts_with("request 1:"), "{e:?}");
    assert_eq!(certs().await, before, "nothing of the batch was issued");
    std::fs::write(
        d.join("run.txt"),
        format!("{csr3} {}\n{csr4} {}\n", sn3.id, sn4.id),
    )
    .unwrap();
    let out = icsctl_at(
        node,
        &[
            "ca",
            "issue-batch",
            "--list",
            d.join("run.txt").to_str().unwrap(),
            "--out-dir",
            d.join("run").to_str().unwrap(),
            "--x5bag",
            d.join("run.x5bag").to_str().unwrap(),
        ],
    )
    .expect("batch issued");
    let indices: Vec<u64> = out
        .lines()
        .map(|l| json_of(l)["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices.len(), 2, "{out}");
    assert_eq!(indices[1], indices[0] + 1, "one append: {out}");
    assert_eq!(certs().await, before + 2);
    let bag =
        ics_ca::encoding::read_x5bag(&std::fs::read(d.join("run.x5bag")).unwrap(), 10).unwrap();
    assert_eq!(bag.len(), 2);
    let issued = format!("run/{}.pem", sn3.id);
    let verified = ok(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            &issued,
        ],
    );
    assert!(verified.contains(": OK"), "{verified}");

    // The responder's own refusals: not an OCSP request, the wrong media type.
    let (status, body) = http_request(&node.http, "/ocsp/bm90IGFuIE9DU1AgcmVxdWVzdA==").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(
        body,
        ics_ca::ocsp::error_response(ics_ca::ocsp::ResponseStatus::MalformedRequest)
    );
    let (status, _) = http_request(&node.http, "/ca/0000.crl").await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_report_revokes_the_devices_certificates_on_its_own() {
    // A maintainer: operational certificates for a fresh key.
    let cluster = start_party("maint", "");
    cluster.wait_ready(Duration::from_secs(60)).await;
    let node = cluster.node(1);
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let author = cluster.device_author().await;
    let mut c = node.client();
    fetch_chain(node, d).await;

    let (gw, _) = device(&mut c, &author, d, "GW-7").await;
    ok(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "op.key",
        ],
    );
    ok(
        d,
        &[
            "req", "-new", "-key", "op.key", "-subj", "/CN=GW-7", "-out", "op.csr",
        ],
    );
    let out = issue(node, &d.join("op.csr"), &gw.id, &d.join("op.pem")).expect("issued");
    let serial = json_of(&out)["serial"].as_str().unwrap().to_string();
    let status_url = format!("http://{}/ocsp", node.http);
    let ocsp = || {
        ok(
            d,
            &[
                "ocsp",
                "-url",
                &status_url,
                "-issuer",
                "issuing.pem",
                "-cert",
                "op.pem",
                "-CAfile",
                "root.pem",
            ],
        )
    };
    assert!(ocsp().contains("op.pem: good"));

    let head = c.chain_head(&gw).await.unwrap();
    c.append(vec![client::report_status(
        &author,
        &gw.id,
        head,
        ics_identity::payload::DeviceStatus::Stolen,
        "van broken into",
        None,
    )])
    .await
    .unwrap();
    let reported = std::time::Instant::now();
    let mut answer = ocsp();
    while !answer.contains("op.pem: revoked") {
        assert!(
            reported.elapsed() < Duration::from_secs(10),
            "not revoked 10 s after the report: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        answer = ocsp();
    }
    eprintln!(
        "stolen report acknowledged → OCSP revoked: {:?}",
        reported.elapsed()
    );
    assert!(answer.contains("Reason: keyCompromise"), "{answer}");
    let v = icsctl_at(node, &["ca", "verify", d.join("op.pem").to_str().unwrap()])
        .expect_err("revoked");
    assert!(v.contains("REVOKED"), "{v}");
    let record = c
        .subject(&SubjectRef::new(ics_ca::DEVICE_CERT, serial))
        .await
        .unwrap();
    assert_eq!(record.status, "revoked");
}
