//! The device CA end to end with stock clients. A manufacturer registers
//! devices and issues their factory certificates; the identities and
//! certificates sync to the maintainer by policy; each device enrolls over
//! EST with `curl` (its factory certificate as TLS client certificate) and
//! `openssl` (its keys, requests, the PKCS#7 answer); `openssl verify`
//! accepts the operational certificate against the served chain; the device
//! sends data to the ingestion endpoint once an attribute lets it; it
//! re-enrolls. Then one device is reported stolen at the maintainer, the
//! other at the manufacturer (arriving by sync): each is revoked in the CRL
//! and by OCSP on its own, and ingestion refuses it. Every refusal on the
//! way names its reason and issues nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::federation::*;
use common::*;
use ics_identity::payload::DeviceStatus;
use ics_kernel::authority::PartyPayload;
use ics_kernel::{Algorithm, PublicKey, SubjectRef};
use ics_node::client;

fn run(dir: &Path, program: &str, args: &[&str]) -> (bool, String) {
    run_tool(dir, program, args)
}

fn ok(dir: &Path, program: &str, args: &[&str]) -> String {
    tool_ok(dir, program, args)
}

/// `curl` over HTTPS to the device listener: (HTTP status, body). `cert`:
/// the client certificate and key files, if any.
fn curl(
    dir: &Path,
    url: &str,
    cert: Option<(&str, &str)>,
    body: Option<(&str, &str)>,
) -> (u16, String) {
    let mut args: Vec<String> = vec![
        "-sS".into(),
        "--cacert".into(),
        "party-ca.pem".into(),
        "-o".into(),
        "body.out".into(),
        "-w".into(),
        "%{http_code}".into(),
    ];
    if let Some((c, k)) = cert {
        args.extend(["--cert".into(), c.into(), "--key".into(), k.into()]);
    }
    if let Some((content_type, file)) = body {
        args.extend([
            "-H".into(),
            format!("Content-Type: {content_type}"),
            "--data-binary".into(),
            format!("@{file}"),
        ]);
    }
    args.push(url.into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let status = ok(dir, "curl", &refs);
    let body = std::fs::read_to_string(dir.join("body.out")).unwrap_or_default();
    (status.trim().parse().unwrap_or(0), body)
}

/// A device key and request made by openssl; the key's public half.
fn device_key(dir: &Path, name: &str, serial: &str) -> PublicKey {
    ok(
        dir,
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &format!("{name}.key"),
        ],
    );
    new_request(dir, name, serial);
    ok(
        dir,
        "openssl",
        &[
            "ec",
            "-in",
            &format!("{name}.key"),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            &format!("{name}.spki"),
        ],
    );
    let spki = std::fs::read(dir.join(format!("{name}.spki"))).unwrap();
    PublicKey::new(Algorithm::EcdsaP256Sha256, spki[spki.len() - 65..].to_vec()).unwrap()
}

/// `{name}.csr` (PEM) and `{name}.b64` (base64 DER, as EST sends it) for
/// the key `{name}.key`, naming `serial`.
fn new_request(dir: &Path, name: &str, serial: &str) {
    ok(
        dir,
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={serial}"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    ok(
        dir,
        "openssl",
        &[
            "req",
            "-in",
            &format!("{name}.csr"),
            "-outform",
            "DER",
            "-out",
            &format!("{name}.der"),
        ],
    );
    ok(
        dir,
        "openssl",
        &[
            "base64",
            "-in",
            &format!("{name}.der"),
            "-out",
            &format!("{name}.b64"),
        ],
    );
}

/// The certificate of an EST certs-only answer (base64 PKCS#7) as PEM.
fn certs_only_to_pem(dir: &Path, body: &str, out: &str) {
    std::fs::write(dir.join("answer.b64"), body).unwrap();
    ok(
        dir,
        "openssl",
        &["base64", "-d", "-in", "answer.b64", "-out", "answer.p7"],
    );
    ok(
        dir,
        "openssl",
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "answer.p7",
            "-print_certs",
            "-out",
            out,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_enroll_over_est_and_a_stolen_report_revokes_them_everywhere() {
    let federation = format!("127.0.0.1:{}", free_port());
    let est_port = free_port();
    let acme = start_party(
        "acme",
        &format!(
            "role = \"manufacturer\"\nfederation_listen = \"{federation}\"\n[tlog]\ncheckpoint_interval_ms = 100\n"
        ),
    );
    let maint = start_cluster(
        1,
        &format!(
            "device_listen = \"127.0.0.1:{est_port}\"\n[tlog]\ncheckpoint_interval_ms = 100\n[federation]\npull_interval_ms = 100\n"
        ),
    );
    for c in [&acme, &maint] {
        c.wait_ready(Duration::from_secs(60)).await;
    }
    // Both ways: devices and certificates to the maintainer; status reports
    // about them back to the manufacturer.
    let policy = |party: &str,
                  peer: &str,
                  peer_ca: &str,
                  endpoint: &str,
                  rule: &str,
                  kinds: &str| {
        format!(
            "party = \"{party}\"\nversion = 1\n\n[[peer]]\nname = \"{peer}\"\nendpoints = [{endpoint}]\ntls_ca = \"\"\"\n{peer_ca}\"\"\"\n\n[[domain]]\nname = \"acme-devices\"\nsubjects = [\"device\", \"device-cert\"]\nmanufacturer = \"acme\"\n\n[[{rule}]]\npeer = \"{peer}\"\ndomain = \"acme-devices\"\nkinds = [{kinds}]\n"
        )
    };
    recognize(&acme, &maint, PARTY, ics_kernel::Role::Maintenance, false).await;
    publish_policy(
        &acme,
        policy("acme", PARTY, &ca_pem(&maint), "", "read", "\"*\""),
    )
    .await;
    recognize(&maint, &acme, "acme", ics_kernel::Role::Manufacturer, true).await;
    publish_policy(
        &maint,
        policy(
            PARTY,
            "acme",
            &ca_pem(&acme),
            &format!("\"{federation}\""),
            "import",
            "\"*\"",
        ),
    )
    .await;

    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    std::fs::write(d.join("party-ca.pem"), ca_pem(&maint)).unwrap();
    let est = |path: &str| format!("https://127.0.0.1:{est_port}/.well-known/est/{path}");
    let ingest_url = format!("https://127.0.0.1:{est_port}/ingest");

    // The manufacturer: two devices, their factory certificates.
    let a = acme.node(1);
    let factory = register_author(&mut a.client(), &acme.root_key(), device_kinds()).await;
    let mut devices = Vec::new();
    for (name, serial) in [("d1", "SN-1"), ("d2", "SN-2")] {
        let key = device_key(d, name, serial);
        let registration =
            client::register_device(&factory, serial, &key, vec![("manu".into(), "acme".into())]);
        a.client()
            .append(vec![registration.clone()])
            .await
            .expect("register");
        let id = key.id().to_hex();
        icsctl_at(
            a,
            &[
                "ca",
                "issue",
                "--csr",
                d.join(format!("{name}.csr")).to_str().unwrap(),
                "--device",
                &id,
                "--out",
                d.join(format!("{name}-factory.pem")).to_str().unwrap(),
            ],
        )
        .expect("factory certificate");
        devices.push((name, serial, id, registration));
    }
    // acme lets the maintainer report d1's status in its records.
    let d1 = SubjectRef::new(ics_identity::DEVICE, devices[0].2.clone());
    let grant = client::signed(
        &acme.root_key(),
        d1.clone(),
        client::ChainHead {
            sequence: 1,
            previous: Some(ics_kernel::EventId::of_body(&devices[0].3.body)),
        },
        PartyPayload::AccessGranted {
            party: PARTY.into(),
            kinds: ["device-status-changed".to_string()].into(),
        },
    );
    a.client().append(vec![grant.clone()]).await.expect("grant");

    // The chain, as a device fetches it (no client certificate needed).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = curl(d, &est("cacerts"), None, None);
    assert_eq!(status, 200, "{body}");
    certs_only_to_pem(d, &body, "chain.pem");
    let chain = std::fs::read_to_string(d.join("chain.pem")).unwrap();
    let blocks: Vec<String> = chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("BEGIN"))
        .map(|b| b[b.find("-----BEGIN").unwrap()..].to_string())
        .collect();
    assert_eq!(blocks.len(), 2, "{chain}");
    // The issuing CA is the one its root signed (certs-only is a set).
    let issuing = blocks
        .iter()
        .find(|b| {
            let der = ics_ca::encoding::der_from_pem_or_der(b.as_bytes(), "CERTIFICATE").unwrap();
            let c = ics_pki::ParsedCert::parse(&der).unwrap();
            c.issuer != c.subject
        })
        .expect("an issuing CA")
        .clone();
    std::fs::write(d.join("issuing.pem"), &issuing).unwrap();
    let (status, body) = curl(d, &est("csrattrs"), None, None);
    assert_eq!(status, 200, "{body}");

    // Refusals before any enrollment: each names its reason, nothing issued.
    // What enrollment writes: certificate records (checkpoints and sync
    // records come and go beside them).
    let count = || count_subjects(maint.node(1), ics_ca::DEVICE_CERT);
    std::fs::write(d.join("garbage.b64"), "bm90IGEgcmVxdWVzdA==\n").unwrap();
    // Wait for the factory certificates to arrive (enrollment needs them):
    // until then the certificate is unknown here.
    loop {
        let (status, body) = curl(
            d,
            &est("simpleenroll"),
            Some(("d2-factory.pem", "d2.key")),
            Some(("application/pkcs10", "garbage.b64")),
        );
        if status != 403 || !body.contains("NOT_ISSUED_HERE") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "d2's factory certificate never arrived: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = count().await;
    refused(
        d,
        &est("simpleenroll"),
        None,
        ("application/pkcs10", "d1.b64"),
        401,
        "no_client_certificate",
    );
    refused(
        d,
        &est("simpleenroll"),
        Some(("d1-factory.pem", "d1.key")),
        ("text/plain", "d1.b64"),
        415,
        "bad_media_type",
    );
    let (status, body) = curl(
        d,
        &est("simpleenroll"),
        Some(("d1-factory.pem", "d1.key")),
        Some(("application/pkcs10", "garbage.b64")),
    );
    assert_eq!((status, body.contains("BAD_CSR")), (400, true), "{body}");
    // A factory certificate of a manufacturer this party imports nothing from.
    ok(
        d,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "rogue.key",
            "-subj",
            "/CN=SN-1/O=globex",
            "-days",
            "30",
            "-out",
            "rogue.pem",
        ],
    );
    refused(
        d,
        &est("simpleenroll"),
        Some(("rogue.pem", "rogue.key")),
        ("application/pkcs10", "d1.b64"),
        403,
        "NOT_ISSUED_HERE",
    );
    assert_eq!(count().await, before, "nothing was issued");

    // Enrollment with a fresh operational key, factory certificate as client certificate.
    for (name, serial, _, _) in &devices {
        let op = format!("{name}-op");
        ok(
            d,
            "openssl",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &format!("{op}.key"),
            ],
        );
        new_request(d, &op, serial);
        let (status, body) = curl(
            d,
            &est("simpleenroll"),
            Some((&format!("{name}-factory.pem"), &format!("{name}.key"))),
            Some(("application/pkcs10", &format!("{op}.b64"))),
        );
        assert_eq!(status, 200, "{name}: {body}");
        certs_only_to_pem(d, &body, &format!("{op}.pem"));
        let verified = ok(
            d,
            "openssl",
            &["verify", "-CAfile", "chain.pem", &format!("{op}.pem")],
        );
        assert!(verified.contains(": OK"), "{verified}");
    }

    // Ingestion: deny by default; an attribute beside the certificate lets it in.
    let ingest = |name: &str| {
        std::fs::write(d.join("reading.json"), "{\"temperature\": 21.5}").unwrap();
        curl(
            d,
            &ingest_url,
            Some((&format!("{name}-op.pem"), &format!("{name}-op.key"))),
            Some(("application/json", "reading.json")),
        )
    };
    let (status, body) = ingest("d1");
    assert_eq!(
        (status, body.contains("ATTRIBUTE_MISMATCH")),
        (403, true),
        "{body}"
    );
    let ops = register_author(
        &mut maint.node(1).client(),
        &maint.root_key(),
        [
            "cert-attributes-set".to_string(),
            "trace-route-set".to_string(),
            "trace-station-recorded".to_string(),
        ]
        .into(),
    )
    .await;
    let ops_file = d.join("ops.key");
    ics_node::keyfile::write(&ops_file, &ops).unwrap();
    for (name, _, _, _) in &devices {
        let serial = ics_pki::ParsedCert::parse(&read_pem(d, &format!("{name}-op.pem")))
            .unwrap()
            .serial;
        icsctl_at(
            maint.node(1),
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
        .expect("let it in");
        let (status, body) = ingest(name);
        assert_eq!(status, 202, "{name}: {body}");
    }

    // Track and trace: d1 must pass factory, truck, customs in order; seen at
    // customs before the truck, it is flagged and ingestion refuses it.
    let d1_serial = ics_pki::ParsedCert::parse(&read_pem(d, "d1-op.pem"))
        .unwrap()
        .serial;
    let ops_arg = ops_file.to_str().unwrap();
    icsctl_at(
        maint.node(1),
        &[
            "ca",
            "route",
            "--signer",
            ops_arg,
            "--serial",
            &d1_serial,
            "--stations",
            "factory,truck,customs",
        ],
    )
    .expect("route");
    for station in ["factory", "customs"] {
        icsctl_at(
            maint.node(1),
            &[
                "ca",
                "station",
                "--signer",
                ops_arg,
                "--serial",
                &d1_serial,
                "--station",
                station,
            ],
        )
        .expect("recorded");
    }
    let (status, body) = ingest("d1");
    assert_eq!(
        (status, body.contains("TRACE_OUT_OF_ORDER")),
        (403, true),
        "{body}"
    );

    // Re-enrollment with the operational certificate: a new one, same attributes.
    ok(
        d,
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "d2-op2.key",
        ],
    );
    new_request(d, "d2-op2", "SN-2");
    let (status, body) = curl(
        d,
        &est("simplereenroll"),
        Some(("d2-op.pem", "d2-op.key")),
        Some(("application/pkcs10", "d2-op2.b64")),
    );
    assert_eq!(status, 200, "{body}");
    certs_only_to_pem(d, &body, "d2-op2.pem");
    std::fs::copy(d.join("d2-op2.pem"), d.join("d2-renewed.pem")).unwrap();
    let (status, body) = curl(
        d,
        &ingest_url,
        Some(("d2-op2.pem", "d2-op2.key")),
        Some(("application/json", "reading.json")),
    );
    assert_eq!(
        status, 202,
        "the renewed certificate kept ingest=allowed: {body}"
    );
    // The factory certificate does not re-enroll.
    refused(
        d,
        &est("simplereenroll"),
        Some(("d1-factory.pem", "d1.key")),
        ("application/pkcs10", "d1-op.b64"),
        403,
        "wrong_client_certificate",
    );

    // An expired certificate does not re-enroll (nor is anything issued).
    ok(
        d,
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "d1-short.key",
        ],
    );
    new_request(d, "d1-short", "SN-1");
    let short = maint
        .node(1)
        .client()
        .ca
        .issue(ics_proto::ca_v1::IssueRequest {
            csr: std::fs::read(d.join("d1-short.der")).unwrap(),
            device: devices[0].2.clone(),
            device_namespace: "acme".into(),
            lifetime_secs: 1,
        })
        .await
        .expect("a one-second certificate")
        .into_inner();
    std::fs::write(
        d.join("d1-short.pem"),
        ics_ca::encoding::pem("CERTIFICATE", &short.certificate),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = count().await;
    let (status, body) = curl(
        d,
        &est("simplereenroll"),
        Some(("d1-short.pem", "d1-short.key")),
        Some(("application/pkcs10", "d1-short.b64")),
    );
    assert_eq!((status, body.contains("EXPIRED")), (403, true), "{body}");
    assert_eq!(count().await, before, "nothing was issued");

    // The device simulator: a third device gets its factory certificate
    // from the manufacturer, enrolls once it has reached the maintainer,
    // sends readings and re-enrolls.
    let d3_key = ics_kernel::SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let d3_file = d.join("d3.key");
    ics_node::keyfile::write(&d3_file, &d3_key).unwrap();
    a.client()
        .append(vec![client::register_device(
            &factory,
            "SN-3",
            &d3_key.public_key(),
            vec![("manu".into(), "acme".into())],
        )])
        .await
        .expect("register d3");
    let simulate = || {
        let out = std::process::Command::new(icsctl())
            .args(["--json", "device", "simulate", "--key"])
            .arg(&d3_file)
            .args(["--serial", "SN-3", "--factory-cert"])
            .arg(d.join("d3-factory.pem"))
            .args(["--manufacturer", &a.grpc, "--manufacturer-tls-dir"])
            .arg(&a.client_tls)
            .args(["--est", &format!("127.0.0.1:{est_port}"), "--est-ca"])
            .arg(d.join("party-ca.pem"))
            .arg("--out-dir")
            .arg(d.join("d3"))
            .args(["--readings", "2", "--reenroll"])
            .output()
            .expect("run icsctl device simulate");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (mut done, mut out, mut err) = simulate();
    assert!(
        d.join("d3-factory.pem").exists(),
        "the factory certificate was issued: {out}{err}"
    );
    let started = Instant::now();
    while !done {
        assert!(
            err.contains("NOT_ISSUED_HERE") && started.elapsed() < Duration::from_secs(30),
            "{out}{err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        (done, out, err) = simulate();
    }
    let steps: Vec<serde_json::Value> = out.lines().map(json_of).collect();
    let step = |name: &str| steps.iter().filter(|s| s["step"] == name).count();
    assert_eq!(
        (step("enroll"), step("reenroll"), step("reading")),
        (1, 1, 4),
        "{out}"
    );
    // Readings are refused until the maintainer lets the device in.
    assert!(
        steps
            .iter()
            .filter(|s| s["step"] == "reading")
            .all(|s| s["status"] == 403),
        "{out}"
    );
    // The device's key is rotated at the manufacturer: its factory
    // certificate certifies a key it no longer has, and enrolls no more.
    let d3_subject = SubjectRef::new(ics_identity::DEVICE, d3_key.key_id().to_hex());
    let rotated = ics_kernel::SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let head = a.client().chain_head(&d3_subject).await.unwrap();
    a.client()
        .append(vec![client::rotate_key(
            &acme.root_key(),
            d3_subject,
            head,
            &rotated,
            "reprovisioned",
            None,
        )])
        .await
        .expect("rotate d3's key");
    let started = Instant::now();
    loop {
        let (done, out, err) = simulate();
        if !done && err.contains("factory_key_replaced") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the rotation never stopped enrollment: {out}{err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Stolen, case 1: reported at the maintainer, in acme's records under its grant.
    let maint_client = || maint.node(1).client();
    let report = client::report_status(
        &maint.root_key(),
        &d1.id,
        client::ChainHead {
            sequence: 2,
            previous: Some(ics_kernel::EventId::of_body(&grant.body)),
        },
        DeviceStatus::Stolen,
        "van broken into",
        None,
    );
    let mut appended = maint_client().append_in("acme", vec![report.clone()]).await;
    for _ in 0..300 {
        if appended.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        appended = maint_client().append_in("acme", vec![report.clone()]).await;
    }
    appended.expect("maint reports d1 stolen in acme's namespace");
    let reported = Instant::now();
    let ocsp = |cert: &str| {
        run(
            d,
            "openssl",
            &[
                "ocsp",
                "-url",
                &format!("http://{}/ocsp", maint.node(1).http),
                "-issuer",
                "issuing.pem",
                "-cert",
                cert,
                "-CAfile",
                "chain.pem",
            ],
        )
        .1
    };
    wait_revoked(&ocsp, "d1-op.pem", reported, "at the maintainer");
    let (status, body) = ingest("d1");
    assert_eq!((status, body.contains("REVOKED")), (403, true), "{body}");
    refused(
        d,
        &est("simplereenroll"),
        Some(("d1-op.pem", "d1-op.key")),
        ("application/pkcs10", "d1-op.b64"),
        403,
        "REVOKED",
    );

    // Stolen, case 2: reported at the manufacturer, arriving by sync.
    let d2 = SubjectRef::new(ics_identity::DEVICE, devices[1].2.clone());
    let head = a.client().chain_head(&d2).await.unwrap();
    a.client()
        .append(vec![client::report_status(
            &factory,
            &d2.id,
            head,
            DeviceStatus::Stolen,
            "lost in transit",
            None,
        )])
        .await
        .expect("acme reports d2 stolen");
    let reported = Instant::now();
    wait_revoked(
        &ocsp,
        "d2-renewed.pem",
        reported,
        "by sync from the manufacturer",
    );
    assert!(ocsp("d2-op.pem").contains("d2-op.pem: revoked"));

    // The CRL lists all three, and openssl refuses them with it.
    let ca_id = {
        let der = read_pem(d, "issuing.pem");
        let parsed = ics_pki::ParsedCert::parse(&der).unwrap();
        PublicKey::new(Algorithm::EcdsaP256Sha256, parsed.public_key)
            .unwrap()
            .id()
            .to_hex()
    };
    let (status, crl) = http_request(&maint.node(1).http, &format!("/ca/{ca_id}.crl")).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    std::fs::write(d.join("crl.der"), &crl).unwrap();
    ok(
        d,
        "openssl",
        &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"],
    );
    let listed = ok(
        d,
        "openssl",
        &[
            "crl",
            "-in",
            "crl.pem",
            "-CAfile",
            "chain.pem",
            "-noout",
            "-text",
        ],
    );
    assert!(listed.contains("verify OK"), "{listed}");
    for cert in ["d1-op.pem", "d2-op.pem", "d2-renewed.pem"] {
        let serial = ics_pki::ParsedCert::parse(&read_pem(d, cert))
            .unwrap()
            .serial;
        assert!(
            listed.contains(&serial.to_uppercase()),
            "{cert} not in\n{listed}"
        );
        let (passed, out) = run(
            d,
            "openssl",
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                "chain.pem",
                "-CRLfile",
                "crl.pem",
                cert,
            ],
        );
        assert!(!passed && out.contains("certificate revoked"), "{out}");
    }
    let (status, body) = curl(
        d,
        &ingest_url,
        Some(("d2-op2.pem", "d2-op2.key")),
        Some(("application/json", "reading.json")),
    );
    assert_eq!((status, body.contains("REVOKED")), (403, true), "{body}");
}

/// A POST (`curl`) the device listener must refuse with `code`, naming
/// `reason` in its answer.
fn refused(
    dir: &Path,
    url: &str,
    cert: Option<(&str, &str)>,
    body: (&str, &str),
    code: u16,
    reason: &str,
) {
    let (status, answer) = curl(dir, url, cert, Some(body));
    assert_eq!(
        (status, answer.contains(reason)),
        (code, true),
        "{url}: {answer}"
    );
}

fn read_pem(dir: &Path, file: &str) -> Vec<u8> {
    ics_ca::encoding::der_from_pem_or_der(&std::fs::read(dir.join(file)).unwrap(), "CERTIFICATE")
        .unwrap()
}

fn wait_revoked(ocsp: &dyn Fn(&str) -> String, cert: &str, since: Instant, how: &str) {
    let mut answer = ocsp(cert);
    while !answer.contains(&format!("{cert}: revoked")) {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "{cert} not revoked {how}: {answer}"
        );
        std::thread::sleep(Duration::from_millis(20));
        answer = ocsp(cert);
    }
    eprintln!(
        "{cert}: stolen report acknowledged → OCSP revoked {how}: {:?}",
        since.elapsed()
    );
}
