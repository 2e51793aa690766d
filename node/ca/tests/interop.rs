//! The CA's wire formats checked by tools that share no code with ours:
//! `openssl` makes the device's request, verifies the chain, checks the CRL
//! and the OCSP answers and reads the EST certs-only bundle; `pkilint`
//! (PyPI, in a virtual environment under `target/`) lints the certificates,
//! the CRL and the OCSP response.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ics_ca::crl::{CrlEntry, CrlTiming};
use ics_ca::ocsp::{IssuerHashes, Status};
use ics_ca::x509::{self, DeviceCertSpec, DeviceIssuer, Distribution};
use ics_ca::{Purpose, RevocationReason, encoding, ocsp};
use ics_pki::ParsedCert;
use p256::ecdsa::SigningKey;

const YEAR: Duration = Duration::from_secs(365 * 86_400);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn run(dir: &Path, program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let (ok, text) = run(dir, "openssl", args);
    assert!(ok, "openssl {args:?} failed:\n{text}");
    text
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn random_key() -> SigningKey {
    let mut seed = [0u8; 32];
    loop {
        getrandom(&mut seed);
        if let Ok(k) = SigningKey::from_slice(&seed) {
            return k;
        }
    }
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("read /dev/urandom");
}

/// A manufacturer's root and factory CA, and a device certificate issued
/// from a request `openssl` made with the device's key.
struct Fixture {
    dir: tempfile::TempDir,
    issuing_key: SigningKey,
    root: Vec<u8>,
    issuing: Vec<u8>,
    device: Vec<u8>,
}

impl Fixture {
    /// `chain.pem` (issuing CA, root) and an OCSP request for the device
    /// made by `openssl` (`req.der`), read back.
    fn ocsp_request(&self) -> (ocsp::ParsedRequest, IssuerHashes) {
        let d = self.dir.path();
        std::fs::write(
            d.join("chain.pem"),
            pem("CERTIFICATE", &self.issuing) + &pem("CERTIFICATE", &self.root),
        )
        .unwrap();
        openssl(
            d,
            &[
                "ocsp",
                "-issuer",
                "issuing.pem",
                "-cert",
                "device.pem",
                "-reqout",
                "req.der",
            ],
        );
        let request = ocsp::parse_request(&std::fs::read(d.join("req.der")).unwrap()).unwrap();
        let issuing = ParsedCert::parse(&self.issuing).unwrap();
        (
            request,
            IssuerHashes::new(&issuing.subject, &issuing.public_key),
        )
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = now_ms();
    let root_key = random_key();
    let root = x509::issue_root("acme", &root_key, now, 25 * YEAR).unwrap();
    let issuing_key = random_key();
    let issuing = x509::issue_issuing(
        "acme",
        Purpose::Factory,
        &ParsedCert::parse(&root).unwrap(),
        &root_key,
        issuing_key.verifying_key(),
        now,
        20 * YEAR,
    )
    .unwrap();
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "device.key",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "device.key",
            "-subj",
            "/CN=SN-0001",
            "-outform",
            "DER",
            "-out",
            "device.csr",
        ],
    );
    let csr = x509::Csr::parse(&std::fs::read(d.join("device.csr")).unwrap())
        .expect("openssl's request parses and its signature verifies");
    assert_eq!(csr.common_name.as_deref(), Some("SN-0001"));
    let issuing_parsed = ParsedCert::parse(&issuing).unwrap();
    let ca_id = "ca1";
    let device = DeviceIssuer {
        party: "acme",
        ca_cert: &issuing_parsed,
        ca_id,
        ca_key: &issuing_key,
    }
    .issue(
        &DeviceCertSpec {
            namespace: "acme",
            device: "0a1b2c",
            serial: "SN-0001",
            distribution: &Distribution {
                base_url: Some("http://ca.example:8080".into()),
            },
        },
        &csr,
        now,
        15 * YEAR,
    )
    .unwrap();
    for (name, der) in [("root", &root), ("issuing", &issuing), ("device", &device)] {
        std::fs::write(d.join(format!("{name}.pem")), pem("CERTIFICATE", der)).unwrap();
        std::fs::write(d.join(format!("{name}.der")), der).unwrap();
    }
    Fixture {
        dir,
        issuing_key,
        root,
        issuing,
        device,
    }
}

#[test]
fn openssl_verifies_the_chain_and_reads_the_certs_only_bundle() {
    let f = fixture();
    let d = f.dir.path();
    let out = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "device.pem",
        ],
    );
    assert!(out.contains("device.pem: OK"), "{out}");
    let text = openssl(d, &["x509", "-in", "device.pem", "-noout", "-text"]);
    for want in [
        "TLS Web Client Authentication",
        "URI:http://ca.example:8080/ca/ca1.crl",
        "OCSP - URI:http://ca.example:8080/ocsp",
        "Subject: O = acme, serialNumber = 0a1b2c, CN = SN-0001",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let parsed = x509::device_of(&ParsedCert::parse(&f.device).unwrap()).unwrap();
    assert_eq!(parsed, ("acme".to_string(), "0a1b2c".to_string()));

    let bundle = encoding::certs_only(&[&f.issuing, &f.root]);
    let mut back = encoding::read_certs_only(&bundle).unwrap();
    back.sort();
    let mut want = vec![f.issuing.clone(), f.root.clone()];
    want.sort();
    assert_eq!(back, want, "certs-only reads back");
    assert!(encoding::read_certs_only(&bundle[..bundle.len() - 3]).is_err());
    std::fs::write(d.join("cacerts.p7"), &bundle).unwrap();
    let out = openssl(
        d,
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "cacerts.p7",
            "-print_certs",
            "-noout",
        ],
    );
    assert!(
        out.contains("subject=O = acme, CN = acme Device Root CA"),
        "{out}"
    );
    assert!(
        out.contains("subject=O = acme, CN = acme Factory CA"),
        "{out}"
    );

    let bag = encoding::x5bag(&[&f.device, &f.issuing]);
    let back = encoding::read_x5bag(&bag, 10).unwrap();
    assert_eq!(back, vec![f.device.clone(), f.issuing.clone()]);
    assert!(encoding::read_x5bag(&bag[..bag.len() - 1], 10).is_err());
    assert!(encoding::read_x5bag(&bag, 1).is_err());
}

#[test]
fn openssl_checks_the_crl_and_finds_the_device_revoked() {
    let f = fixture();
    let d = f.dir.path();
    let now = now_ms();
    let serial = ParsedCert::parse(&f.device).unwrap().serial;
    let write_crl = |entries: &[CrlEntry], name: &str| {
        let crl = ics_ca::crl::build(
            &f.issuing,
            &f.issuing_key,
            entries,
            CrlTiming::at(now, entries),
        )
        .unwrap();
        std::fs::write(d.join(name), pem("X509 CRL", &crl)).unwrap();
        crl
    };
    let empty = write_crl(&[], "empty.crl.pem");
    let entries = [CrlEntry {
        serial: serial.clone(),
        revoked_ms: now - 1_000,
        reason: RevocationReason::KeyCompromise,
    }];
    let listed = write_crl(&entries, "revoked.crl.pem");
    // The same state and period give the same bytes on every node.
    assert_eq!(
        listed,
        ics_ca::crl::build(
            &f.issuing,
            &f.issuing_key,
            &entries,
            CrlTiming::at(now, &entries)
        )
        .unwrap()
    );
    assert!(CrlTiming::at(now, &entries).number > CrlTiming::at(now, &[]).number);
    assert!(CrlTiming::at(now + 3_600_000, &[]).number > CrlTiming::at(now, &entries).number);
    std::fs::write(
        d.join("chain.pem"),
        pem("CERTIFICATE", &f.issuing) + &pem("CERTIFICATE", &f.root),
    )
    .unwrap();
    let out = openssl(
        d,
        &[
            "crl",
            "-in",
            "revoked.crl.pem",
            "-CAfile",
            "chain.pem",
            "-noout",
            "-text",
        ],
    );
    assert!(out.contains("verify OK"), "{out}");
    assert!(out.contains(&serial.to_uppercase()), "{out}");
    assert!(out.contains("Key Compromise"), "{out}");
    assert!(out.contains("X509v3 CRL Number"), "{out}");
    let _ = empty;
    let out = openssl(
        d,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-CRLfile",
            "empty.crl.pem",
            "device.pem",
        ],
    );
    assert!(out.contains("device.pem: OK"), "{out}");
    let (ok, out) = run(
        d,
        "openssl",
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-CRLfile",
            "revoked.crl.pem",
            "device.pem",
        ],
    );
    assert!(!ok && out.contains("certificate revoked"), "{out}");
}

#[test]
fn openssl_ocsp_reads_good_and_revoked_answers() {
    let f = fixture();
    let d = f.dir.path();
    let (request, hashes) = f.ocsp_request();
    assert!(request.nonce.is_some(), "openssl sends a nonce");
    assert!(hashes.names(&request.asked[0]));
    assert_eq!(
        request.asked[0].serial,
        ParsedCert::parse(&f.device).unwrap().serial
    );
    let now = now_ms();
    let answers = [
        ("good", Status::Good),
        (
            "revoked",
            Status::Revoked {
                time_ms: now - 5_000,
                reason: RevocationReason::KeyCompromise,
            },
        ),
        ("unknown", Status::Unknown),
    ];
    for (want, status) in answers {
        let resp = ocsp::respond(
            &hashes,
            &f.issuing,
            &f.issuing_key,
            &request,
            &[status],
            now,
        )
        .unwrap();
        let name = format!("resp-{want}.der");
        std::fs::write(d.join(&name), &resp).unwrap();
        // With -cert openssl makes a request of its own: the status check.
        let out = openssl(
            d,
            &[
                "ocsp",
                "-no_nonce",
                "-respin",
                &name,
                "-issuer",
                "issuing.pem",
                "-CAfile",
                "chain.pem",
                "-cert",
                "device.pem",
            ],
        );
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(out.contains(&format!("device.pem: {want}")), "{out}");
        // With the request it sent: the nonce check.
        let out = openssl(
            d,
            &[
                "ocsp", "-reqin", "req.der", "-respin", &name, "-CAfile", "root.pem",
            ],
        );
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(!out.contains("WARNING"), "nonce echoed, times sane: {out}");
    }
    let malformed = ocsp::error_response(ocsp::ResponseStatus::MalformedRequest);
    std::fs::write(d.join("malformed.der"), &malformed).unwrap();
    let (ok, out) = run(
        d,
        "openssl",
        &["ocsp", "-respin", "malformed.der", "-noverify"],
    );
    assert!(!ok && out.contains("malformedrequest"), "{out}");
    assert!(ocsp::parse_request(b"\x30\x03\x02\x01\x01").is_err());
}

/// The `pkilint` tools, in a virtual environment under `target/` (made on
/// first use; pip reaches PyPI).
fn pkilint_bin() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/py-pkilint");
    let tool = venv.join("bin/lint_crl");
    let lock = venv.with_extension("lock");
    std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while !tool.exists() {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => {
                let ok = Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()
                    .is_ok_and(|s| s.success())
                    && Command::new(venv.join("bin/pip"))
                        .args(["install", "-q", "pkilint==0.13.3"])
                        .status()
                        .is_ok_and(|s| s.success());
                std::fs::remove_file(&lock).ok();
                assert!(ok, "python3 -m venv or pip install pkilint failed");
            }
            Err(_) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} held for 10 minutes",
                    lock.display()
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    venv.join("bin")
}

fn lint(bin: &Path, dir: &Path, tool: &str, args: &[&str]) {
    let program = bin.join(tool);
    let mut all = vec!["lint", "-s", "WARNING"];
    all.extend_from_slice(args);
    let out = Command::new(&program)
        .args(&all)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    // Findings go to stdout; stderr carries the tool's own deprecation noise.
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.trim().is_empty(),
        "{tool} {args:?} found problems:\n{out}"
    );
}

#[test]
fn pkilint_finds_nothing_in_certificates_crl_and_ocsp_response() {
    let bin = pkilint_bin();
    let f = fixture();
    let d = f.dir.path();
    for name in ["root.pem", "issuing.pem", "device.pem"] {
        lint(&bin, d, "lint_pkix_cert", &[name]);
    }
    let now = now_ms();
    let entries = [CrlEntry {
        serial: ParsedCert::parse(&f.device).unwrap().serial,
        revoked_ms: now - 1_000,
        reason: RevocationReason::KeyCompromise,
    }];
    let crl = ics_ca::crl::build(
        &f.issuing,
        &f.issuing_key,
        &entries,
        CrlTiming::at(now, &entries),
    )
    .unwrap();
    std::fs::write(d.join("crl.pem"), pem("X509 CRL", &crl)).unwrap();
    lint(&bin, d, "lint_crl", &["-t", "CRL", "-p", "PKIX", "crl.pem"]);

    let (request, hashes) = f.ocsp_request();
    let resp = ocsp::respond(
        &hashes,
        &f.issuing,
        &f.issuing_key,
        &request,
        &[Status::Revoked {
            time_ms: now - 1_000,
            reason: RevocationReason::KeyCompromise,
        }],
        now,
    )
    .unwrap();
    std::fs::write(d.join("resp.der"), &resp).unwrap();
    lint(&bin, d, "lint_ocsp_response", &["resp.der"]);
}
