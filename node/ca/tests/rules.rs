//! The device CA rules case by case — every refusal with its reason and the
//! state unchanged — the conformance suite on them, and Verify's verdicts.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ics_ca::payload::ISSUING_KEY_KINDS;
use ics_ca::x509::{self, DeviceCertSpec, DeviceIssuer, Distribution};
use ics_ca::*;
use ics_identity::payload::DeviceStatus;
use ics_identity::{DEVICE, Identity, IdentityPayload};
use ics_kernel::authority::{AUTHOR_KEY, PARTY, PartyPayload};
use ics_kernel::capability::payload_bytes;
use ics_kernel::testing::{Scenario, check_scenarios};
use ics_kernel::*;
use ics_pki::ParsedCert;

const T0: i64 = 1_700_000_000_000;
const DAY: Duration = Duration::from_secs(86_400);
const YEAR: Duration = Duration::from_secs(365 * 86_400);

fn rules() -> &'static Arc<Rules> {
    static RULES: OnceLock<Arc<Rules>> = OnceLock::new();
    RULES.get_or_init(|| Arc::new(Rules::builder().add::<Identity>().add::<DeviceCa>().build()))
}

fn p256(key: &SigningKey) -> &p256::ecdsa::SigningKey {
    match key {
        SigningKey::P256(k) => k,
        SigningKey::Ed25519(_) => panic!("a CA or device key here is P-256"),
    }
}

fn copy(key: &SigningKey) -> SigningKey {
    SigningKey::from_secret(key.algorithm(), &key.secret_bytes()).unwrap()
}

/// A party under test: its root key, its device root CA (key offline, not an
/// author key) and an issuing CA whose key is an author key.
struct Party {
    name: &'static str,
    root: SigningKey,
    root_ca_key: SigningKey,
    root_ca: Vec<u8>,
    issuing_key: SigningKey,
    issuing_ca: Vec<u8>,
    purpose: Purpose,
    s: Scenario,
}

impl Party {
    fn new(name: &'static str, role: Role, purpose: Purpose) -> Party {
        let root = SigningKey::generate(Algorithm::Ed25519);
        let root_ca_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let root_ca = x509::issue_root(name, p256(&root_ca_key), T0, 25 * YEAR).unwrap();
        let issuing_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let issuing_ca = x509::issue_issuing(
            name,
            purpose,
            &ParsedCert::parse(&root_ca).unwrap(),
            p256(&root_ca_key),
            p256(&issuing_key).verifying_key(),
            T0,
            20 * YEAR,
        )
        .unwrap();
        let s = Scenario::genesis(rules().clone(), &root, name, role, T0);
        Party {
            name,
            root,
            root_ca_key,
            root_ca,
            issuing_key,
            issuing_ca,
            purpose,
            s,
        }
    }

    fn body(&self, subject: SubjectRef, author: &SigningKey, payload: impl Payload) -> EventBody {
        let previous = self.s.proj.entry(&subject);
        EventBody {
            schema_version: SCHEMA_VERSION,
            subject,
            sequence: previous.map_or(0, |e| e.next_sequence),
            previous: previous.map(|e| e.last_event),
            author: author.key_id(),
            time_ms: T0 + 1_000,
            payload: payload_bytes(&payload),
        }
    }

    fn accept(&mut self, what: &str, b: &EventBody, k: &SigningKey) {
        let event = self.s.event(b, &[k]);
        self.s.accept(what, vec![event]);
    }

    fn refuse(&mut self, what: &str, b: &EventBody, k: &SigningKey, reason: &'static str) {
        let event = self.s.event(b, &[k]);
        self.s.refuse(what, vec![event], reason);
    }

    fn register_author(&mut self, key: &SigningKey, kinds: &[&str]) {
        let root = copy(&self.root);
        let b = self.body(
            SubjectRef::new(AUTHOR_KEY, key.key_id().to_hex()),
            &root,
            PartyPayload::AuthorKeyRegistered {
                key: key.public_key(),
                label: "device ca".into(),
                allowed_kinds: kinds.iter().map(|k| k.to_string()).collect(),
                not_after_ms: T0 + 3650 * 86_400_000,
            },
        );
        self.accept("author key", &b, &root);
    }

    fn bind_body(
        &self,
        cert: &[u8],
        key: &SigningKey,
        purpose: Purpose,
        issuer: &str,
    ) -> EventBody {
        self.body(
            SubjectRef::new(DEVICE_CA, key.key_id().to_hex()),
            &self.root,
            CaPayload::CaBound {
                certificate: cert.to_vec(),
                purpose,
                issuer: issuer.into(),
            },
        )
    }

    /// Root and issuing CA bound, the issuing key registered.
    fn bind_both(&mut self) {
        let root = copy(&self.root);
        let b = self.bind_body(&self.root_ca, &self.root_ca_key, Purpose::Root, "");
        self.accept("root CA bound", &b, &root);
        let issuing = copy(&self.issuing_key);
        self.register_author(&issuing, &ISSUING_KEY_KINDS);
        let b = self.bind_body(
            &self.issuing_ca,
            &self.issuing_key,
            self.purpose,
            &self.root_ca_key.key_id().to_hex(),
        );
        self.accept("issuing CA bound", &b, &root);
    }

    fn register_device(&mut self, serial: &str, key: &SigningKey) -> String {
        let root = copy(&self.root);
        let id = key.key_id().to_hex();
        let b = self.body(
            SubjectRef::new(DEVICE, id.clone()),
            &root,
            IdentityPayload::DeviceRegistered {
                serial: serial.into(),
                device_key: key.public_key(),
                attributes: vec![],
                openpgp: None,
            },
        );
        self.accept("device registered", &b, &root);
        id
    }

    fn set_status(&mut self, device: &str, status: DeviceStatus) {
        let root = copy(&self.root);
        let b = self.body(
            SubjectRef::new(DEVICE, device.to_string()),
            &root,
            IdentityPayload::DeviceStatusChanged {
                status,
                reason: "reported".into(),
                openpgp_revocation: None,
            },
        );
        self.accept("status changed", &b, &root);
    }

    fn issuer(&self) -> (ParsedCert, String) {
        (
            ParsedCert::parse(&self.issuing_ca).unwrap(),
            self.issuing_key.key_id().to_hex(),
        )
    }

    /// A certificate for `csr`'s key naming `namespace/device`, signed by `signer`.
    fn cert(&self, namespace: &str, device: &str, csr: &[u8], signer: &SigningKey) -> Vec<u8> {
        let (ca_cert, ca_id) = self.issuer();
        let issuer = DeviceIssuer {
            party: self.name,
            ca_cert: &ca_cert,
            ca_id: &ca_id,
            ca_key: p256(signer),
        };
        let lifetime = match self.purpose {
            Purpose::Factory => 15 * YEAR,
            _ => 90 * DAY,
        };
        let request = x509::Csr::parse(csr).unwrap();
        issuer
            .issue(
                &DeviceCertSpec {
                    namespace,
                    device,
                    serial: request.common_name.as_deref().unwrap(),
                    distribution: &Distribution {
                        base_url: Some("http://ca.example:8080".into()),
                    },
                },
                &request,
                T0,
                lifetime,
            )
            .unwrap()
    }

    fn issue_body(&self, cert: &[u8], csr: &[u8], namespace: &str, device: &str) -> EventBody {
        let serial = ParsedCert::parse(cert).unwrap().serial;
        self.body(
            SubjectRef::new(DEVICE_CERT, serial),
            &self.issuing_key,
            CaPayload::CertIssued {
                certificate: cert.to_vec(),
                csr: csr.to_vec(),
                device_namespace: namespace.into(),
                device: device.into(),
                authenticated_by: String::new(),
                renews: String::new(),
            },
        )
    }

    fn ca(&self) -> &CapState<DeviceCa> {
        self.s.proj.capability::<DeviceCa>()
    }
}

fn csr(key: &SigningKey, cn: &str) -> Vec<u8> {
    x509::make_csr(p256(key), cn).unwrap()
}

fn serial_of(cert: &[u8]) -> SubjectRef {
    SubjectRef::new(DEVICE_CERT, ParsedCert::parse(cert).unwrap().serial)
}

/// A manufacturer binding its CAs and issuing factory certificates.
fn manufacturer() -> Party {
    let mut p = Party::new("acme", Role::Manufacturer, Purpose::Factory);
    let root = copy(&p.root);

    // Binding: the root key only, the root first, a purpose the role runs.
    let stranger = SigningKey::generate(Algorithm::Ed25519);
    p.register_author(&stranger, &["device-ca-bound"]);
    let mut b = p.bind_body(&p.root_ca, &p.root_ca_key, Purpose::Root, "");
    b.author = stranger.key_id();
    p.refuse("bound by an author key", &b, &stranger, "NOT_ROOT_KEY");
    let issuing_first = p.bind_body(
        &p.issuing_ca,
        &p.issuing_key,
        Purpose::Factory,
        &p.root_ca_key.key_id().to_hex(),
    );
    p.refuse(
        "issuing CA before its root",
        &issuing_first,
        &root,
        "CA_NOT_BOUND",
    );
    let operational = p.bind_body(&p.root_ca, &p.root_ca_key, Purpose::Operational, "");
    p.refuse(
        "an operational CA at a manufacturer",
        &operational,
        &root,
        "WRONG_PURPOSE",
    );
    let not_self_signed = p.bind_body(&p.issuing_ca, &p.issuing_key, Purpose::Root, "");
    p.refuse(
        "a root that is not self-signed",
        &not_self_signed,
        &root,
        "BAD_CERTIFICATE",
    );
    let misplaced = p.bind_body(&p.root_ca, &p.issuing_key, Purpose::Root, "");
    p.refuse(
        "at another key's subject",
        &misplaced,
        &root,
        "INVALID_SUBJECT",
    );
    let b = p.bind_body(&p.root_ca, &p.root_ca_key, Purpose::Root, "");
    p.accept("root CA bound", &b, &root);
    let not_author = p.bind_body(
        &p.issuing_ca,
        &p.issuing_key,
        Purpose::Factory,
        &p.root_ca_key.key_id().to_hex(),
    );
    p.refuse(
        "issuing key not an author key",
        &not_author,
        &root,
        "CA_KEY_NOT_AUTHOR",
    );
    let issuing = copy(&p.issuing_key);
    p.register_author(&issuing, &ISSUING_KEY_KINDS);
    p.accept("issuing CA bound", &not_author, &root);

    // Factory certificates: for a registered device, from its own key's request.
    let device_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let device = p.register_device("SN-0001", &device_key);
    let good_csr = csr(&device_key, "SN-0001");
    let cert = p.cert("acme", &device, &good_csr, &issuing);

    let mut bad_sig = good_csr.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01;
    let b = p.issue_body(&cert, &bad_sig, "", &device);
    p.refuse("request signature broken", &b, &issuing, "BAD_CSR");

    let other_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let other_csr = csr(&other_key, "SN-0001");
    let other_cert = p.cert("acme", &device, &other_csr, &issuing);
    let b = p.issue_body(&other_cert, &other_csr, "", &device);
    p.refuse(
        "request key not the device's",
        &b,
        &issuing,
        "CSR_KEY_MISMATCH",
    );
    let b = p.issue_body(&cert, &other_csr, "", &device);
    p.refuse(
        "certificate key not the request's",
        &b,
        &issuing,
        "CSR_KEY_MISMATCH",
    );

    let wrong_cn = csr(&device_key, "SN-9999");
    let wrong_cn_cert = p.cert("acme", &device, &wrong_cn, &issuing);
    let b = p.issue_body(&wrong_cn_cert, &wrong_cn, "", &device);
    p.refuse(
        "request names another serial",
        &b,
        &issuing,
        "CSR_SUBJECT_MISMATCH",
    );

    let unknown_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let unknown = unknown_key.key_id().to_hex();
    let unknown_csr = csr(&unknown_key, "SN-0002");
    let unknown_cert = p.cert("acme", &unknown, &unknown_csr, &issuing);
    let b = p.issue_body(&unknown_cert, &unknown_csr, "", &unknown);
    p.refuse("unknown device", &b, &issuing, "UNKNOWN_DEVICE");

    let forged = p.cert("acme", &device, &good_csr, &p.root_ca_key);
    let b = p.issue_body(&forged, &good_csr, "", &device);
    p.refuse("signed by another key", &b, &issuing, "BAD_CERTIFICATE");

    let for_other_device = p.cert("acme", &unknown, &good_csr, &issuing);
    let b = p.issue_body(&for_other_device, &good_csr, "", &device);
    p.refuse(
        "names another device than the event",
        &b,
        &issuing,
        "BAD_CERTIFICATE",
    );

    let mut by_root_key = p.issue_body(&cert, &good_csr, "", &device);
    by_root_key.author = root.key_id();
    p.refuse(
        "issued by the party root key",
        &by_root_key,
        &root,
        "CA_NOT_BOUND",
    );

    let b = p.issue_body(&cert, &good_csr, "", &device);
    p.accept("factory certificate issued", &b, &issuing);
    let subject = serial_of(&cert);

    // A stolen device gets nothing more.
    let stolen_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let stolen = p.register_device("SN-0003", &stolen_key);
    p.set_status(&stolen, DeviceStatus::Stolen);
    let stolen_csr = csr(&stolen_key, "SN-0003");
    let stolen_cert = p.cert("acme", &stolen, &stolen_csr, &issuing);
    let b = p.issue_body(&stolen_cert, &stolen_csr, "", &stolen);
    p.refuse("stolen device", &b, &issuing, "DEVICE_NOT_ENROLLABLE");

    // Attributes beside the certificate, and the route it must follow.
    let ops = SigningKey::generate(Algorithm::Ed25519);
    p.register_author(
        &ops,
        &[
            "cert-attributes-set",
            "trace-route-set",
            "trace-station-recorded",
            "device-cert-revoked",
        ],
    );
    let set = |set: &[(&str, &str)], removed: &[&str]| CaPayload::AttributesSet {
        set: set
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        removed: removed.iter().map(|s| s.to_string()).collect(),
    };
    let b = p.body(subject.clone(), &ops, set(&[], &["ingest"]));
    p.refuse("remove an attribute never set", &b, &ops, "INVALID_FIELD");
    let b = p.body(
        subject.clone(),
        &ops,
        set(&[("ingest", "allowed"), ("site", "plant-7")], &[]),
    );
    p.accept("attributes set", &b, &ops);
    let b = p.body(subject.clone(), &ops, set(&[("ingest", "x")], &["ingest"]));
    p.refuse("one name twice", &b, &ops, "INVALID_FIELD");

    let station = |s: &str| CaPayload::StationRecorded { station: s.into() };
    let b = p.body(subject.clone(), &ops, station("factory"));
    p.refuse("a station before any route", &b, &ops, "NO_ROUTE");
    let route = CaPayload::RouteSet {
        stations: ["factory", "truck", "customs", "ship"]
            .map(String::from)
            .to_vec(),
    };
    let b = p.body(subject.clone(), &ops, route);
    p.accept("route set", &b, &ops);
    let b = p.body(subject.clone(), &ops, station("airport"));
    p.refuse("a station off the route", &b, &ops, "UNKNOWN_STATION");
    let b = p.body(subject.clone(), &ops, station("factory"));
    p.accept("at the factory", &b, &ops);
    let b = p.body(subject.clone(), &ops, station("truck"));
    p.accept("on the truck", &b, &ops);

    // Revocation: by the issuing CA or the root key, once.
    let b = p.body(
        subject.clone(),
        &ops,
        CaPayload::CertRevoked {
            reason: RevocationReason::KeyCompromise,
            comment: "stolen".into(),
        },
    );
    p.refuse("revoked by an operator key", &b, &ops, "NOT_ISSUER");
    let revoke = p.body(
        subject.clone(),
        &issuing,
        CaPayload::CertRevoked {
            reason: RevocationReason::KeyCompromise,
            comment: "stolen".into(),
        },
    );
    p.accept("revoked by its CA", &revoke, &issuing);
    let again = p.body(
        subject.clone(),
        &root,
        CaPayload::CertRevoked {
            reason: RevocationReason::Unspecified,
            comment: "again".into(),
        },
    );
    p.refuse("revoked twice", &again, &root, "ALREADY_REVOKED");
    p
}

#[test]
fn manufacturer_binds_issues_and_revokes() {
    let p = manufacturer();
    let ca = p.ca();
    assert_eq!(query::bound_cas(ca).len(), 2);
    let (_, issuing) = query::issuing_ca(ca, Purpose::Factory).expect("a factory CA");
    assert_eq!(issuing.certificate, p.issuing_ca);
    let revoked = &ca.index().revoked[&p.issuing_key.key_id().to_hex()];
    assert_eq!(revoked.len(), 1);
}

#[test]
fn verify_checks_revocation_attributes_and_trace() {
    let mut p = Party::new("acme", Role::Manufacturer, Purpose::Factory);
    p.bind_both();
    let issuing = copy(&p.issuing_key);
    let root = copy(&p.root);
    let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let device = p.register_device("SN-7", &key);
    let request = csr(&key, "SN-7");
    let cert = p.cert("acme", &device, &request, &issuing);
    let b = p.issue_body(&cert, &request, "", &device);
    p.accept("issued", &b, &issuing);
    let subject = serial_of(&cert);
    let fingerprint = ics_pki::cert::fingerprint_hex(&cert);
    let want = vec![("ingest".to_string(), "allowed".to_string())];
    let now = T0 + 2_000;

    let v = query::verify(p.ca(), &fingerprint, &[], now);
    assert!(v.passes(), "{:?}", v.problems);
    let v = query::verify(p.ca(), &fingerprint, &want, now);
    assert_eq!(reasons(&v), ["ATTRIBUTE_MISMATCH"]);

    let b = p.body(
        subject.clone(),
        &root,
        CaPayload::AttributesSet {
            set: want.clone(),
            removed: vec![],
        },
    );
    p.accept("ingest allowed", &b, &root);
    assert!(query::verify(p.ca(), &fingerprint, &want, now).passes());
    // Instant revocation by attribute: no reissue, no CRL wait.
    let b = p.body(
        subject.clone(),
        &root,
        CaPayload::AttributesSet {
            set: vec![("ingest".into(), "blocked".into())],
            removed: vec![],
        },
    );
    p.accept("ingest blocked", &b, &root);
    let v = query::verify(p.ca(), &fingerprint, &want, now);
    assert_eq!(reasons(&v), ["ATTRIBUTE_MISMATCH"]);
    assert_eq!(
        v.problems[0].to_string(),
        "attribute ingest is \"blocked\", not \"allowed\""
    );

    // Way stations: step 3 before step 2 is recorded and flagged.
    let b = p.body(
        subject.clone(),
        &root,
        CaPayload::RouteSet {
            stations: vec!["factory".into(), "truck".into(), "customs".into()],
        },
    );
    p.accept("route", &b, &root);
    for (station, what) in [("factory", "first"), ("customs", "third before second")] {
        let b = p.body(
            subject.clone(),
            &root,
            CaPayload::StationRecorded {
                station: station.into(),
            },
        );
        p.accept(what, &b, &root);
    }
    let v = query::verify(p.ca(), &fingerprint, &[], now);
    assert_eq!(reasons(&v), ["TRACE_OUT_OF_ORDER"]);
    assert!(
        v.problems[0]
            .to_string()
            .contains("\"customs\" when \"truck\" was due"),
        "{}",
        v.problems[0]
    );

    // Expiry, revocation, and bytes this CA never issued.
    let late = T0 + 16 * 365 * 86_400_000;
    assert!(reasons(&query::verify(p.ca(), &fingerprint, &[], late)).contains(&"EXPIRED"));
    let b = p.body(
        subject,
        &issuing,
        CaPayload::CertRevoked {
            reason: RevocationReason::KeyCompromise,
            comment: String::new(),
        },
    );
    p.accept("revoked", &b, &issuing);
    assert!(reasons(&query::verify(p.ca(), &fingerprint, &[], now)).contains(&"REVOKED"));
    let v = query::verify(p.ca(), &"00".repeat(32), &[], now);
    assert_eq!(reasons(&v), ["NOT_ISSUED_HERE"]);
}

fn reasons(v: &query::Verdict<'_>) -> Vec<&'static str> {
    v.problems.iter().map(query::Problem::reason).collect()
}

/// A maintainer issuing operational certificates: a fresh key or the
/// device's own; another party's device only if that party is recognized.
fn maintainer() -> Party {
    let mut p = Party::new("maint", Role::Maintenance, Purpose::Operational);
    let root = copy(&p.root);
    let factory = p.bind_body(&p.issuing_ca, &p.issuing_key, Purpose::Factory, "x");
    p.refuse(
        "a factory CA at a maintainer",
        &factory,
        &root,
        "WRONG_PURPOSE",
    );
    p.bind_both();
    let issuing = copy(&p.issuing_key);

    let device_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let device = p.register_device("GW-1", &device_key);
    let fresh = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let request = csr(&fresh, "GW-1");
    let cert = p.cert("maint", &device, &request, &issuing);
    let b = p.issue_body(&cert, &request, "", &device);
    p.accept("operational certificate, fresh key", &b, &issuing);

    // A key that identifies another device is not fresh.
    let other_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    p.register_device("GW-2", &other_key);
    let taken = csr(&other_key, "GW-1");
    let taken_cert = p.cert("maint", &device, &taken, &issuing);
    let b = p.issue_body(&taken_cert, &taken, "", &device);
    p.refuse("another device's key", &b, &issuing, "KEY_NOT_FRESH");

    // Renewal keeps the attributes; it must renew the same device's certificate.
    let b = p.body(
        serial_of(&cert),
        &root,
        CaPayload::AttributesSet {
            set: vec![("ingest".into(), "allowed".into())],
            removed: vec![],
        },
    );
    p.accept("ingest allowed", &b, &root);
    let renewed_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let renewal = csr(&renewed_key, "GW-1");
    let renewed = p.cert("maint", &device, &renewal, &issuing);
    let mut b = p.issue_body(&renewed, &renewal, "", &device);
    let other_device_cert = {
        let k = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let id = p.register_device("GW-3", &k);
        let r = csr(&k, "GW-3");
        let c = p.cert("maint", &id, &r, &issuing);
        let b = p.issue_body(&c, &r, "", &id);
        p.accept("another device's certificate", &b, &issuing);
        serial_of(&c).id
    };
    b.payload = payload_bytes(&CaPayload::CertIssued {
        certificate: renewed.clone(),
        csr: renewal.clone(),
        device_namespace: String::new(),
        device: device.clone(),
        authenticated_by: String::new(),
        renews: other_device_cert,
    });
    p.refuse("renews another device's", &b, &issuing, "BAD_RENEWAL");
    b.payload = payload_bytes(&CaPayload::CertIssued {
        certificate: renewed.clone(),
        csr: renewal.clone(),
        device_namespace: String::new(),
        device: device.clone(),
        authenticated_by: "d".repeat(64),
        renews: serial_of(&cert).id,
    });
    p.accept("renewed", &b, &issuing);
    let (_, c) = query::cert_by_serial(p.ca(), &serial_of(&renewed).id).unwrap();
    assert_eq!(
        c.attributes.get("ingest").map(String::as_str),
        Some("allowed")
    );

    // One operational key, one device: GW-1's key certified for GW-3 is not fresh.
    let gw3_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let gw3 = p.register_device("GW-4", &gw3_key);
    let borrowed = csr(&renewed_key, "GW-4");
    let borrowed_cert = p.cert("maint", &gw3, &borrowed, &issuing);
    let b = p.issue_body(&borrowed_cert, &borrowed, "", &gw3);
    p.refuse(
        "another device's operational key",
        &b,
        &issuing,
        "KEY_NOT_FRESH",
    );
    // The same device certifying its key again (a renewal keeping it) may.
    let again = p.cert("maint", &device, &renewal, &issuing);
    let b = p.issue_body(&again, &renewal, "", &device);
    p.accept("the same key for the same device", &b, &issuing);
    // A revoked certificate is not renewed.
    let revoke = p.body(
        serial_of(&again),
        &issuing,
        CaPayload::CertRevoked {
            reason: RevocationReason::KeyCompromise,
            comment: String::new(),
        },
    );
    p.accept("revoked", &revoke, &issuing);
    let next_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let next = csr(&next_key, "GW-1");
    let next_cert = p.cert("maint", &device, &next, &issuing);
    let mut b = p.issue_body(&next_cert, &next, "", &device);
    b.payload = payload_bytes(&CaPayload::CertIssued {
        certificate: next_cert.clone(),
        csr: next.clone(),
        device_namespace: String::new(),
        device: device.clone(),
        authenticated_by: String::new(),
        renews: serial_of(&again).id,
    });
    p.refuse("renews a revoked certificate", &b, &issuing, "BAD_RENEWAL");

    // Another party's device: only a party this one recognizes.
    let foreign_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let foreign = foreign_key.key_id().to_hex();
    let op_key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
    let request = csr(&op_key, "SN-0001");
    let foreign_cert = p.cert("acme", &foreign, &request, &issuing);
    let b = p.issue_body(&foreign_cert, &request, "acme", &foreign);
    p.refuse(
        "an unrecognized party's device",
        &b,
        &issuing,
        "UNKNOWN_DEVICE",
    );
    let acme_root = SigningKey::generate(Algorithm::Ed25519);
    let recognize = p.body(
        SubjectRef::new(PARTY, "acme"),
        &root,
        PartyPayload::Recognized {
            role: Role::Manufacturer,
            root_key: acme_root.public_key(),
        },
    );
    p.accept("acme recognized", &recognize, &root);
    let b = p.issue_body(&foreign_cert, &request, "acme", &foreign);
    p.accept("acme's device enrolled", &b, &issuing);
    p
}

#[test]
fn maintainer_issues_operational_certificates() {
    let p = maintainer();
    let acme: Vec<_> = p
        .ca()
        .index()
        .by_device
        .keys()
        .filter(|(namespace, _)| namespace == "acme")
        .collect();
    assert_eq!(acme.len(), 1, "one device of acme enrolled");
    let certs = query::certs_of_device(p.ca(), "acme", &acme[0].1);
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].1.purpose, Purpose::Operational);
}

#[test]
fn conformance() {
    let scenarios = [manufacturer().s.steps, maintainer().s.steps];
    check_scenarios::<DeviceCa>(rules().clone(), &EventLimits::default(), &scenarios);
}
