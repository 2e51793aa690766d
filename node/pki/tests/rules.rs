//! The PKI rules case by case, the capability conformance suite on them,
//! and the issued chain checked by stock `openssl verify`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ics_kernel::authority::{AUTHOR_KEY, PARTY, PartyPayload};
use ics_kernel::capability::payload_bytes;
use ics_kernel::testing::{Step, check_scenarios};
use ics_kernel::*;
use ics_pki::cert::{Issuer, issue_ca};
use ics_pki::payload::CA_KEY_KINDS;
use ics_pki::*;

const T0: i64 = 1_700_000_000_000;
const DAY: Duration = Duration::from_secs(86_400);

fn rules() -> &'static Arc<Rules> {
    static RULES: OnceLock<Arc<Rules>> = OnceLock::new();
    RULES.get_or_init(|| Arc::new(Rules::builder().add::<Pki>().build()))
}

fn body(
    subject: SubjectRef,
    previous: Option<(u64, EventId)>, // (next sequence, last event)
    author: KeyId,
    payload: impl Payload,
) -> EventBody {
    EventBody {
        schema_version: SCHEMA_VERSION,
        subject,
        sequence: previous.map_or(0, |(s, _)| s),
        previous: previous.map(|(_, id)| id),
        author,
        time_ms: T0 + 1_000,
        payload: payload_bytes(&payload),
    }
}

fn p256(key: &SigningKey) -> &p256::ecdsa::SigningKey {
    match key {
        SigningKey::P256(k) => k,
        SigningKey::Ed25519(_) => panic!("a CA key is P-256"),
    }
}

/// A party "acme" with its root key, a CA key registered as author key and
/// its CA certificate (not yet bound).
struct Party {
    root: SigningKey,
    ca_key: SigningKey,
    ca_cert: Vec<u8>,
    proj: Projection,
    steps: Vec<Step>,
}

impl Party {
    fn new(name: &str) -> Party {
        let root = SigningKey::generate(Algorithm::Ed25519);
        let ca_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let ca_cert = issue_ca(name, p256(&ca_key), T0, 3650 * DAY).unwrap();
        let mut p = Party {
            root,
            ca_key,
            ca_cert,
            proj: Projection::new(rules().clone()),
            steps: Vec::new(),
        };
        let mut genesis = body(
            SubjectRef::new(PARTY, name),
            None,
            p.root.key_id(),
            PartyPayload::Genesis {
                party_name: name.into(),
                role: Role::Maintenance,
                root_key: p.root.public_key(),
                rules: ActiveRules {
                    limits: EventLimits::default(),
                    capabilities: rules().versions(),
                },
            },
        );
        genesis.time_ms = T0;
        p.accept("genesis", &genesis, &[&p.root.clone_key()]);
        p
    }

    fn register_author(&mut self, key: &SigningKey, kinds: &[&str]) {
        let b = body(
            SubjectRef::new(AUTHOR_KEY, key.key_id().to_hex()),
            None,
            self.root.key_id(),
            PartyPayload::AuthorKeyRegistered {
                key: key.public_key(),
                label: "tls ca".into(),
                allowed_kinds: kinds.iter().map(|k| k.to_string()).collect(),
                not_after_ms: T0 + 3650 * 86_400_000,
            },
        );
        let root = self.root.clone_key();
        self.accept("author key", &b, &[&root]);
    }

    fn bind_body(&self, cert: &[u8], key: &SigningKey) -> EventBody {
        body(
            SubjectRef::new(TLS_CA, key.key_id().to_hex()),
            None,
            self.root.key_id(),
            PkiPayload::TlsCaBound {
                certificate: cert.to_vec(),
            },
        )
    }

    fn leaf(&self, holder: &Holder, lifetime: Duration) -> Vec<u8> {
        leaf("acme", &self.ca_cert, &self.ca_key, holder, lifetime)
    }

    fn issue_body(&self, cert: &[u8], author: &SigningKey) -> (EventBody, SubjectRef) {
        let serial = ParsedCert::parse(cert).unwrap().serial;
        let subject = SubjectRef::new(TLS_CERT, serial);
        let b = body(
            subject.clone(),
            None,
            author.key_id(),
            PkiPayload::TlsCertIssued {
                certificate: cert.to_vec(),
            },
        );
        (b, subject)
    }

    fn revoke_body(&self, subject: &SubjectRef, author: &SigningKey) -> EventBody {
        let entry = self.proj.entry(subject).expect("issued");
        body(
            subject.clone(),
            Some((entry.next_sequence, entry.last_event)),
            author.key_id(),
            PkiPayload::TlsCertRevoked {
                reason: "node removed".into(),
            },
        )
    }

    fn event(body: &EventBody, keys: &[&SigningKey]) -> Event {
        rules()
            .parse(envelope::sign(body, keys), &EventLimits::default())
            .expect("test event parses")
    }

    fn accept(&mut self, what: &str, body: &EventBody, keys: &[&SigningKey]) {
        let e = Self::event(body, keys);
        self.proj
            .apply_batch(std::slice::from_ref(&e), &EventLimits::default())
            .unwrap_or_else(|r| panic!("{what}: {r}"));
        self.steps.push(Step::accepted(what, vec![e.envelope]));
    }

    /// Refused with `reason`, and nothing changed.
    fn refuse(&mut self, what: &str, body: &EventBody, keys: &[&SigningKey], reason: &'static str) {
        let e = Self::event(body, keys);
        let before = (self.proj.event_count(), self.proj.state_hash());
        let refusal = self
            .proj
            .apply_batch(std::slice::from_ref(&e), &EventLimits::default())
            .expect_err(what);
        assert_eq!(refusal.reason(), reason, "{what}: {refusal}");
        assert_eq!(
            (self.proj.event_count(), self.proj.state_hash()),
            before,
            "{what}"
        );
        self.steps
            .push(Step::refused(what, vec![e.envelope], reason));
    }

    fn cert_state(&self, subject: &SubjectRef) -> &CertState {
        match self.proj.capability::<Pki>().subject(subject) {
            Some(PkiState::Cert(c)) => c,
            other => panic!("{subject}: {other:?}"),
        }
    }
}

/// A certificate for a fresh key, issued at T0 by `ca_cert`'s key.
fn leaf(
    party: &str,
    ca_cert: &[u8],
    ca_key: &SigningKey,
    holder: &Holder,
    lifetime: Duration,
) -> Vec<u8> {
    let ca = ParsedCert::parse(ca_cert).unwrap();
    let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    Issuer {
        party,
        ca_cert: &ca,
        ca_key: p256(ca_key),
    }
    .issue_leaf(
        holder,
        &LeafNames {
            dns_names: vec!["localhost".into()],
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        },
        p256(&key).verifying_key(),
        T0,
        lifetime,
    )
    .unwrap()
}

trait CloneKey {
    fn clone_key(&self) -> SigningKey;
}

impl CloneKey for SigningKey {
    fn clone_key(&self) -> SigningKey {
        SigningKey::from_secret(self.algorithm(), &self.secret_bytes()).unwrap()
    }
}

/// The whole life of a party's TLS PKI, with every refusal in place.
fn scenario() -> Party {
    let mut p = Party::new("acme");
    let ca_key = p.ca_key.clone_key();
    let root = p.root.clone_key();

    // The root binds only a CA whose key is an author key allowed to issue.
    let bind = p.bind_body(&p.ca_cert.clone(), &ca_key);
    p.refuse(
        "CA key not yet an author key",
        &bind,
        &[&root],
        "CA_KEY_NOT_AUTHOR",
    );
    p.register_author(&ca_key, &CA_KEY_KINDS);
    let other = SigningKey::generate(Algorithm::Ed25519);
    p.register_author(
        &other,
        &["tls-ca-bound", "tls-cert-issued", "tls-cert-revoked"],
    );
    let mut by_other = bind.clone();
    by_other.author = other.key_id();
    p.refuse(
        "bound by an author key",
        &by_other,
        &[&other],
        "NOT_ROOT_KEY",
    );
    let mut garbage = p.bind_body(b"not a certificate", &ca_key);
    garbage.time_ms = bind.time_ms;
    p.refuse("not a certificate", &garbage, &[&root], "BAD_CERTIFICATE");
    p.accept("CA bound", &bind, &[&root]);

    // Node and operator certificates, issued by the CA key.
    let node = p.leaf(&Holder::Node(1), 7 * DAY);
    let (b, node_subject) = p.issue_body(&node, &ca_key);
    p.refuse(
        "issued by another author key",
        &{
            let mut b = b.clone();
            b.author = other.key_id();
            b
        },
        &[&other],
        "CA_NOT_BOUND",
    );
    p.accept("node certificate issued", &b, &[&ca_key]);
    let operator = p.leaf(&Holder::Operator("alice".into()), 7 * DAY);
    let (b, operator_subject) = p.issue_body(&operator, &ca_key);
    p.accept("operator certificate issued", &b, &[&ca_key]);

    // Certificates the rules refuse.
    let long = p.leaf(&Holder::Node(2), 90 * DAY);
    let (b, _) = p.issue_body(&long, &ca_key);
    p.refuse("valid for 90 days", &b, &[&ca_key], "BAD_CERTIFICATE");
    let stranger = Party::new("evil");
    let foreign = leaf(
        "acme",
        &stranger.ca_cert,
        &stranger.ca_key,
        &Holder::Node(3),
        DAY,
    );
    let (b, _) = p.issue_body(&foreign, &ca_key);
    p.refuse("issued by another CA", &b, &[&ca_key], "BAD_CERTIFICATE");
    let other_party = leaf("evil", &p.ca_cert, &ca_key, &Holder::Node(4), DAY);
    let (b, _) = p.issue_body(&other_party, &ca_key);
    p.refuse("names another party", &b, &[&ca_key], "BAD_CERTIFICATE");
    let (mut b, _) = p.issue_body(&node, &ca_key);
    b.subject = SubjectRef::new(TLS_CERT, "00ff");
    p.refuse(
        "subject is not the serial",
        &b,
        &[&ca_key],
        "INVALID_SUBJECT",
    );

    // Revocation: by the issuing CA key or the root, once.
    let b = p.revoke_body(&node_subject, &other);
    p.refuse("revoked by a stranger key", &b, &[&other], "NOT_ISSUER");
    let b = p.revoke_body(&node_subject, &ca_key);
    p.accept("node certificate revoked", &b, &[&ca_key]);
    let b = p.revoke_body(&node_subject, &root);
    p.refuse("revoked twice", &b, &[&root], "ALREADY_REVOKED");
    let b = p.revoke_body(&operator_subject, &root);
    p.accept("operator certificate revoked by the root", &b, &[&root]);
    p
}

#[test]
fn the_pki_kinds_pass_the_capability_conformance_suite() {
    let p = scenario();
    check_scenarios::<Pki>(rules().clone(), &EventLimits::default(), &[p.steps]);
}

#[test]
fn queries_find_certificates_by_fingerprint_and_holder() {
    let p = scenario();
    let pki = p.proj.capability::<Pki>();
    assert_eq!(query::bound_cas(pki), vec![p.ca_cert.as_slice()]);
    let certs = query::certs_of(pki, &Holder::Node(1));
    assert_eq!(certs.len(), 1);
    let (serial, cert) = certs[0];
    assert!(cert.revoked.is_some());
    assert!(!cert.is_current(T0 + 1_000));
    let found = query::cert_by_fingerprint(pki, &cert.fingerprint).unwrap();
    assert_eq!(found, p.cert_state(&SubjectRef::new(TLS_CERT, serial)));
    assert!(pki.index().revoked.contains(&cert.fingerprint));
    assert!(
        query::certs_of(pki, &Holder::Node(2)).is_empty(),
        "refused certs are not kept"
    );
}

#[test]
fn holder_uris_round_trip_and_refuse_other_forms() {
    for (party, holder) in [
        ("acme", Holder::Node(7)),
        ("a:b.c", Holder::Operator("alice".into())),
    ] {
        let uri = holder.uri(party);
        assert_eq!(Holder::parse_uri(&uri), Some((party.to_string(), holder)));
    }
    assert_eq!(Holder::Node(1).uri("a:b"), "ics://a%3Ab/node/1");
    for bad in [
        "ics://acme/node/",
        "ics://acme/node/01",
        "ics://acme/node/x",
        "ics://acme/operator/",
        "ics://acme/operator/a b",
        "ics://acme/admin/x",
        "https://acme/node/1",
    ] {
        assert_eq!(Holder::parse_uri(bad), None, "{bad}");
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    use der::pem::LineEnding;
    der::pem::encode_string(label, LineEnding::LF, der).unwrap()
}

/// Stock openssl accepts the chain for TLS servers and clients, and reads
/// the holder URI; it refuses a certificate of another CA.
#[test]
fn openssl_verifies_the_issued_chain() {
    let p = Party::new("acme");
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let ca_cert = issue_ca("acme", p256(&p.ca_key), now_ms, 365 * DAY).unwrap();
    let ca = ParsedCert::parse(&ca_cert).unwrap();
    let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let leaf = Issuer {
        party: "acme",
        ca_cert: &ca,
        ca_key: p256(&p.ca_key),
    }
    .issue_leaf(
        &Holder::Node(1),
        &LeafNames {
            dns_names: vec!["localhost".into()],
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        },
        p256(&key).verifying_key(),
        now_ms,
        DAY,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), pem("CERTIFICATE", &ca_cert)).unwrap();
    std::fs::write(dir.path().join("leaf.pem"), pem("CERTIFICATE", &leaf)).unwrap();
    let stranger = Party::new("acme");
    std::fs::write(
        dir.path().join("other.pem"),
        pem("CERTIFICATE", &stranger.ca_cert),
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    for purpose in ["sslserver", "sslclient"] {
        let (ok, out) = openssl(&[
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            "ca.pem",
            "leaf.pem",
        ]);
        assert!(ok, "{purpose}: {out}");
    }
    let (ok, out) = openssl(&[
        "x509",
        "-in",
        "leaf.pem",
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(
        ok && out.contains("URI:ics://acme/node/1") && out.contains("DNS:localhost"),
        "{out}"
    );
    let (ok, out) = openssl(&["verify", "-CAfile", "other.pem", "leaf.pem"]);
    assert!(!ok, "a certificate of another CA verified: {out}");
}
