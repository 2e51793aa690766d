//! Unit tests of the pure core: every refusal leaves the projection unchanged.

use std::collections::BTreeSet;

use super::event::*;
use super::keys::*;
use super::projection::*;
use super::refusal::*;
use crate::codec;

const T0: i64 = 1_700_000_000_000;

struct Party {
    root: SigningKey,
    proj: Projection,
    limits: EventLimits,
}

fn event(body: &EventBody, keys: &[&SigningKey]) -> Event {
    let env = codec::sign(body, keys);
    codec::parse_event(env, &EventLimits::default()).expect("test event parses")
}

fn body(
    subject: SubjectRef,
    sequence: u64,
    previous: Option<EventId>,
    author: KeyId,
    payload: Payload,
) -> EventBody {
    EventBody {
        schema_version: SCHEMA_VERSION,
        subject,
        sequence,
        previous,
        author,
        time_ms: T0 + 1_000,
        payload,
    }
}

impl Party {
    fn new() -> Self {
        Self::with_role("maintenance")
    }

    fn with_role(role: &str) -> Self {
        let root = SigningKey::generate(Algorithm::Ed25519);
        let mut p = Party {
            root,
            proj: Projection::default(),
            limits: EventLimits::default(),
        };
        let mut genesis = body(
            SubjectRef::new(SubjectKind::Party, "acme"),
            0,
            None,
            p.root.key_id(),
            Payload::PartyGenesis {
                party_name: "acme".into(),
                role: role.into(),
                root_key: p.root.public_key(),
            },
        );
        genesis.time_ms = T0;
        let e = event(&genesis, &[&p.root]);
        p.apply(&e).expect("genesis accepted");
        p
    }

    fn apply(&mut self, e: &Event) -> Result<Vec<Appended>, Refusal> {
        self.proj.apply_batch(std::slice::from_ref(e), &self.limits)
    }

    /// Applies `e` expecting a refusal, and checks nothing changed.
    fn refuse(&mut self, e: &Event) -> Refusal {
        let before = (self.proj.event_count(), self.proj.state_hash());
        let err = self.apply(e).expect_err("event must be refused");
        assert_eq!(
            before,
            (self.proj.event_count(), self.proj.state_hash()),
            "state changed on {err}"
        );
        err
    }

    fn register_author(
        &mut self,
        alg: Algorithm,
        kinds: &[EventKind],
        not_after_ms: i64,
    ) -> SigningKey {
        let key = SigningKey::generate(alg);
        let mut b = body(
            SubjectRef::new(SubjectKind::AuthorKey, key.key_id().to_hex()),
            0,
            None,
            self.root.key_id(),
            Payload::AuthorKeyRegistered {
                key: key.public_key(),
                label: "ops".into(),
                allowed_kinds: kinds.iter().copied().collect::<BTreeSet<_>>(),
                not_after_ms,
            },
        );
        b.time_ms = T0 + 100;
        self.apply(&event(&b, &[&self.root]))
            .expect("author registered");
        key
    }

    fn device_body(&self, author: &SigningKey, serial: &str) -> (EventBody, SubjectRef) {
        let device = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let subject = SubjectRef::new(SubjectKind::Device, device.key_id().to_hex());
        let b = body(
            subject.clone(),
            0,
            None,
            author.key_id(),
            Payload::DeviceRegistered {
                serial: serial.into(),
                device_key: device.public_key(),
                attributes: vec![("model".into(), "thermo-3".into())],
                openpgp: None,
            },
        );
        (b, subject)
    }

    fn last(&self, s: &SubjectRef) -> (u64, Option<EventId>) {
        let st = self.proj.subject(s).expect("subject exists");
        (st.next_sequence, Some(st.last_event))
    }

    fn status_body(&self, author: &SigningKey, s: &SubjectRef, status: DeviceStatus) -> EventBody {
        let (seq, prev) = self.last(s);
        body(
            s.clone(),
            seq,
            prev,
            author.key_id(),
            Payload::DeviceStatusChanged {
                status,
                reason: "test".into(),
                openpgp_revocation: None,
            },
        )
    }
}

const DEVICE_KINDS: &[EventKind] = &[EventKind::DeviceRegistered, EventKind::DeviceStatusChanged];

#[test]
fn device_lifecycle_with_both_algorithms() {
    for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
        let mut p = Party::new();
        let author = p.register_author(alg, DEVICE_KINDS, T0 + 10_000_000);
        let (b, subject) = p.device_body(&author, "SN-1");
        let out = p.apply(&event(&b, &[&author])).unwrap();
        assert_eq!(out[0].index, 3);
        for status in [
            DeviceStatus::InUse,
            DeviceStatus::Stolen,
            DeviceStatus::InUse,
            DeviceStatus::Retired,
        ] {
            p.apply(&event(
                &p.status_body(&author, &subject, status),
                &[&author],
            ))
            .unwrap();
        }
        let st = p.proj.subject(&subject).unwrap();
        assert_eq!(st.next_sequence, 5);
        assert_eq!(st.history, vec![3, 4, 5, 6, 7]);
        assert!(matches!(
            st.detail,
            SubjectDetail::Device {
                status: DeviceStatus::Retired,
                ..
            }
        ));
        assert_eq!(p.proj.name_owner(&serial_key("SN-1")), Some(&subject));
    }
}

#[test]
fn duplicate_event_returns_original_index() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, _) = p.device_body(&author, "SN-1");
    let e = event(&b, &[&author]);
    let first = p.apply(&e).unwrap()[0];
    let hash = p.proj.state_hash();
    let again = p.apply(&e).unwrap()[0];
    assert!(again.duplicate);
    assert_eq!(again.index, first.index);
    assert_eq!(hash, p.proj.state_hash());
}

#[test]
fn refuses_missing_and_bad_signatures() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, _) = p.device_body(&author, "SN-1");
    let mut e = event(&b, &[&author]);
    e.envelope.signatures.clear();
    assert_eq!(p.refuse(&e), Refusal::MissingSignature);

    let mut e = event(&b, &[&author]);
    e.envelope.signatures[0].bytes[0] ^= 0xff;
    assert!(matches!(p.refuse(&e), Refusal::BadSignature(_)));

    // Signed by the root instead of the named author.
    let e = event(&b, &[&p.root]);
    assert!(matches!(p.refuse(&e), Refusal::MissingAuthorSignature(_)));

    // A stranger's signature on an otherwise good event.
    let stranger = SigningKey::generate(Algorithm::Ed25519);
    let e = event(&b, &[&author, &stranger]);
    assert!(matches!(p.refuse(&e), Refusal::UnknownKey(_)));
}

#[test]
fn refuses_unknown_revoked_expired_and_unallowed_authors() {
    let mut p = Party::new();
    let stranger = SigningKey::generate(Algorithm::Ed25519);
    let (b, _) = p.device_body(&stranger, "SN-1");
    assert!(matches!(
        p.refuse(&event(&b, &[&stranger])),
        Refusal::UnknownKey(_)
    ));

    let short = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 500);
    let (b, _) = p.device_body(&short, "SN-2");
    assert!(matches!(
        p.refuse(&event(&b, &[&short])),
        Refusal::AuthorExpired { .. }
    ));

    let status_only = p.register_author(
        Algorithm::Ed25519,
        &[EventKind::DeviceStatusChanged],
        T0 + 10_000_000,
    );
    let (b, _) = p.device_body(&status_only, "SN-3");
    assert!(matches!(
        p.refuse(&event(&b, &[&status_only])),
        Refusal::AuthorNotAllowed { .. }
    ));

    let revoked = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let subject = SubjectRef::new(SubjectKind::AuthorKey, revoked.key_id().to_hex());
    let (seq, prev) = p.last(&subject);
    let rb = body(
        subject,
        seq,
        prev,
        p.root.key_id(),
        Payload::AuthorKeyRevoked {
            reason: "left".into(),
        },
    );
    p.apply(&event(&rb, &[&p.root])).unwrap();
    let (b, _) = p.device_body(&revoked, "SN-4");
    assert!(matches!(
        p.refuse(&event(&b, &[&revoked])),
        Refusal::AuthorRevoked(_)
    ));
    // Revoking twice is refused as well.
    let subject = SubjectRef::new(SubjectKind::AuthorKey, revoked.key_id().to_hex());
    let (seq, prev) = p.last(&subject);
    let rb = body(
        subject,
        seq,
        prev,
        p.root.key_id(),
        Payload::AuthorKeyRevoked {
            reason: "again".into(),
        },
    );
    assert!(matches!(
        p.refuse(&event(&rb, &[&p.root])),
        Refusal::AlreadyRevoked(_)
    ));
}

#[test]
fn concurrent_writers_to_one_subject_conflict() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, s) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    // Both writers read the same chain head.
    let first = p.status_body(&author, &s, DeviceStatus::InUse);
    let mut second = p.status_body(&author, &s, DeviceStatus::Lost);
    second.reason_marker();
    p.apply(&event(&first, &[&author])).unwrap();
    assert!(matches!(
        p.refuse(&event(&second, &[&author])),
        Refusal::ChainConflict { .. }
    ));

    // Wrong previous id at the right sequence.
    let mut wrong_prev = p.status_body(&author, &s, DeviceStatus::Lost);
    wrong_prev.previous = Some(EventId([7; 32]));
    assert!(matches!(
        p.refuse(&event(&wrong_prev, &[&author])),
        Refusal::ChainConflict { .. }
    ));

    // Registering the same device again is a conflict at sequence 0.
    let again = EventBody {
        time_ms: b.time_ms + 1,
        ..b
    };
    assert!(matches!(
        p.refuse(&event(&again, &[&author])),
        Refusal::ChainConflict { .. }
    ));
}

trait ReasonMarker {
    fn reason_marker(&mut self);
}

impl ReasonMarker for EventBody {
    /// Makes two otherwise equal bodies differ, so they get different ids.
    fn reason_marker(&mut self) {
        self.time_ms += 1;
    }
}

#[test]
fn refuses_invalid_status_transitions() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, s) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    p.apply(&event(
        &p.status_body(&author, &s, DeviceStatus::Destroyed),
        &[&author],
    ))
    .unwrap();
    for next in DeviceStatus::ALL {
        let e = event(&p.status_body(&author, &s, next), &[&author]);
        assert!(
            matches!(p.refuse(&e), Refusal::InvalidTransition { .. }),
            "destroyed -> {next:?}"
        );
    }
    assert!(!DeviceStatus::Planned.may_become(DeviceStatus::Planned));
    assert!(DeviceStatus::Stolen.may_become(DeviceStatus::InUse));
    assert!(!DeviceStatus::Retired.may_become(DeviceStatus::InUse));
}

#[test]
fn refuses_taken_serial_and_over_cap_subjects() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, s) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    let (b2, _) = p.device_body(&author, "SN-1");
    assert!(matches!(
        p.refuse(&event(&b2, &[&author])),
        Refusal::SerialTaken { .. }
    ));

    p.limits.max_records_per_subject = 2;
    p.apply(&event(
        &p.status_body(&author, &s, DeviceStatus::InUse),
        &[&author],
    ))
    .unwrap();
    let e = event(&p.status_body(&author, &s, DeviceStatus::Lost), &[&author]);
    assert!(matches!(p.refuse(&e), Refusal::TooManyRecords { .. }));
}

#[test]
fn batch_is_all_or_nothing_and_sees_its_own_events() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, s) = p.device_body(&author, "SN-1");
    let reg = event(&b, &[&author]);
    // The second event chains on the first, inside the same batch.
    let in_use = event(
        &body(
            s.clone(),
            1,
            Some(reg.id),
            author.key_id(),
            Payload::DeviceStatusChanged {
                status: DeviceStatus::InUse,
                reason: String::new(),
                openpgp_revocation: None,
            },
        ),
        &[&author],
    );
    let bad = event(
        &body(
            s.clone(),
            2,
            Some(in_use.id),
            author.key_id(),
            Payload::DeviceStatusChanged {
                status: DeviceStatus::Planned,
                reason: String::new(),
                openpgp_revocation: None,
            },
        ),
        &[&author],
    );
    let before = (p.proj.event_count(), p.proj.state_hash());
    let err = p
        .proj
        .apply_batch(&[reg.clone(), in_use.clone(), bad], &p.limits)
        .unwrap_err();
    assert!(matches!(err, Refusal::InvalidTransition { .. }));
    assert_eq!(before, (p.proj.event_count(), p.proj.state_hash()));
    let out = p.proj.apply_batch(&[reg, in_use], &p.limits).unwrap();
    assert_eq!(out.iter().map(|a| a.index).collect::<Vec<_>>(), vec![3, 4]);
}

#[test]
fn refuses_second_genesis_and_events_before_genesis() {
    let mut p = Party::new();
    let other = SigningKey::generate(Algorithm::Ed25519);
    let g = body(
        SubjectRef::new(SubjectKind::Party, "evil"),
        0,
        None,
        other.key_id(),
        Payload::PartyGenesis {
            party_name: "evil".into(),
            role: "maintenance".into(),
            root_key: other.public_key(),
        },
    );
    assert_eq!(p.refuse(&event(&g, &[&other])), Refusal::GenesisExists);

    let mut empty = Projection::default();
    let (b, _) = p.device_body(&p.root, "SN-1");
    let err = empty
        .apply_batch(&[event(&b, &[&p.root])], &EventLimits::default())
        .unwrap_err();
    assert!(matches!(err, Refusal::UnknownKey(_)));
}

#[test]
fn codec_refuses_garbage_unknown_payload_schema_and_size() {
    let limits = EventLimits::default();
    let garbage = Envelope {
        body: vec![0xff, 0xff, 0xff, 0x01, 0x02],
        signatures: vec![],
    };
    assert!(matches!(
        codec::parse_event(garbage, &limits),
        Err(Refusal::Malformed(_))
    ));

    let key = SigningKey::generate(Algorithm::Ed25519);
    let mut b = body(
        SubjectRef::new(SubjectKind::Party, "acme"),
        0,
        None,
        key.key_id(),
        Payload::AuthorKeyRevoked {
            reason: String::new(),
        },
    );
    b.schema_version = 2;
    let env = codec::sign(&b, &[&key]);
    assert_eq!(
        codec::parse_event(env, &limits),
        Err(Refusal::UnsupportedSchema(2))
    );

    // A body whose payload field number this build does not know.
    let mut bytes = codec::encode_body(&EventBody {
        schema_version: 1,
        ..b
    });
    // The empty AuthorKeyRevoked payload is the last field: tag 12, length 0.
    assert_eq!(bytes[bytes.len() - 2..], [0x62, 0x00]);
    bytes.truncate(bytes.len() - 2);
    bytes.extend_from_slice(&[0xfa, 0x01, 0x00]); // field 31, length 0
    let env = Envelope {
        body: bytes,
        signatures: vec![],
    };
    assert_eq!(
        codec::parse_event(env, &limits),
        Err(Refusal::UnknownPayload)
    );

    let big = Envelope {
        body: vec![0; limits.max_body_bytes + 1],
        signatures: vec![],
    };
    assert!(matches!(
        codec::parse_event(big, &limits),
        Err(Refusal::BodyTooLarge { .. })
    ));
}

const CODE_KINDS: &[EventKind] = &[EventKind::CodeReleased, EventKind::CodeStatusChanged];

fn code_body(
    author: &SigningKey,
    name: &str,
    version: &str,
    artifact: &[u8],
) -> (EventBody, SubjectRef) {
    let identity = crate::client::code_identity(
        name,
        version,
        artifact,
        Some("https://example.test/suit/1".into()),
    );
    let subject = SubjectRef::new(SubjectKind::Code, hex::encode(identity.blake3));
    (
        body(
            subject.clone(),
            0,
            None,
            author.key_id(),
            Payload::CodeReleased(identity),
        ),
        subject,
    )
}

#[test]
fn developer_releases_code_and_moves_it_through_its_lifecycle() {
    let mut p = Party::with_role("developer");
    let author = p.register_author(Algorithm::EcdsaP256Sha256, CODE_KINDS, T0 + 10_000_000);
    let (b, subject) = code_body(&author, "thermo-fw", "1.2.0", b"firmware image");
    p.apply(&event(&b, &[&author])).unwrap();
    let status = |p: &Party, to: CodeStatus| {
        let (seq, prev) = p.last(&subject);
        body(
            subject.clone(),
            seq,
            prev,
            author.key_id(),
            Payload::CodeStatusChanged {
                status: to,
                reason: String::new(),
            },
        )
    };
    for to in [
        CodeStatus::Deprecated,
        CodeStatus::Released,
        CodeStatus::Withdrawn,
    ] {
        p.apply(&event(&status(&p, to), &[&author])).unwrap();
    }
    // Withdrawn is final.
    let e = event(&status(&p, CodeStatus::Released), &[&author]);
    assert!(matches!(p.refuse(&e), Refusal::InvalidTransition { .. }));
    assert!(
        p.proj
            .subject(&subject)
            .unwrap()
            .summary()
            .contains("status=withdrawn")
    );

    // The same name and version cannot name a second artifact.
    let (b2, _) = code_body(&author, "thermo-fw", "1.2.0", b"another image");
    assert!(matches!(
        p.refuse(&event(&b2, &[&author])),
        Refusal::CodeVersionTaken { .. }
    ));

    // The subject id must be the artifact's blake3 digest.
    let (mut b3, _) = code_body(&author, "thermo-fw", "1.3.0", b"third image");
    b3.subject.id = "00".repeat(32);
    assert!(matches!(
        p.refuse(&event(&b3, &[&author])),
        Refusal::InvalidSubject { .. }
    ));
}

#[test]
fn the_party_role_decides_which_records_it_authors() {
    // A maintenance party cannot release code, even with a key allowed to.
    let mut m = Party::new();
    let author = m.register_author(Algorithm::Ed25519, CODE_KINDS, T0 + 10_000_000);
    let (b, _) = code_body(&author, "fw", "1", b"x");
    assert_eq!(
        m.refuse(&event(&b, &[&author])),
        Refusal::RoleMayNotAuthor {
            role: "maintenance".into(),
            kind: "code-released".into()
        }
    );
    // A developer party cannot register devices.
    let mut d = Party::with_role("developer");
    let author = d.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, _) = d.device_body(&author, "SN-1");
    assert!(matches!(
        d.refuse(&event(&b, &[&author])),
        Refusal::RoleMayNotAuthor { .. }
    ));
}

#[test]
fn genesis_with_an_unknown_role_is_refused() {
    let root = SigningKey::generate(Algorithm::Ed25519);
    let g = body(
        SubjectRef::new(SubjectKind::Party, "x"),
        0,
        None,
        root.key_id(),
        Payload::PartyGenesis {
            party_name: "x".into(),
            role: "overlord".into(),
            root_key: root.public_key(),
        },
    );
    let mut proj = Projection::default();
    let err = proj
        .apply_batch(&[event(&g, &[&root])], &EventLimits::default())
        .unwrap_err();
    assert!(
        matches!(err, Refusal::InvalidField { ref field, .. } if field == "role"),
        "{err}"
    );
    assert_eq!(proj.event_count(), 0);
}

#[test]
fn search_pages_through_attributes_and_finds_by_serial_digest_and_fingerprint() {
    use super::query::{SearchQuery, parse_page_token};
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let mut devices = Vec::new();
    for i in 0..5 {
        let device = SigningKey::generate(Algorithm::Ed25519);
        let subject = SubjectRef::new(SubjectKind::Device, device.key_id().to_hex());
        let model = if i < 3 { "thermo-3" } else { "valve-1" };
        let b = body(
            subject.clone(),
            0,
            None,
            author.key_id(),
            Payload::DeviceRegistered {
                serial: format!("SN-{i}"),
                device_key: device.public_key(),
                attributes: vec![("model".into(), model.into())],
                openpgp: None,
            },
        );
        p.apply(&event(&b, &[&author])).unwrap();
        devices.push((device, subject));
    }
    let q = SearchQuery::Attribute {
        name: "model".into(),
        value: "thermo-3".into(),
    };
    let first = p.proj.search(&q, None, 2);
    assert_eq!(first.subjects.len(), 2);
    let token = first.next.clone().expect("a second page").to_string();
    let after = parse_page_token(&token).unwrap();
    let second = p.proj.search(&q, Some(&after), 2);
    assert_eq!(second.subjects.len(), 1);
    assert!(second.next.is_none());

    let by_serial = p.proj.search(&SearchQuery::Serial("SN-4".into()), None, 10);
    assert_eq!(by_serial.subjects[0].0, &devices[4].1);
    let by_fpr = p.proj.search(
        &SearchQuery::KeyFingerprint(devices[1].0.key_id()),
        None,
        10,
    );
    assert_eq!(by_fpr.subjects[0].0, &devices[1].1);
    assert!(
        p.proj
            .search(&SearchQuery::Serial("nope".into()), None, 10)
            .subjects
            .is_empty()
    );
}

#[test]
fn verify_says_why_a_key_or_digest_is_trusted_or_not() {
    use super::query::VerifyTarget;
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, subject) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    let device_key = match &p.proj.subject(&subject).unwrap().detail {
        SubjectDetail::Device { device_key, .. } => device_key.id(),
        other => panic!("{other:?}"),
    };
    let t = p.proj.verify(&VerifyTarget::Key(device_key), T0 + 2_000);
    assert!(t.trusted, "{t:?}");
    assert_eq!(t.registered_by, Some(author.key_id()));
    assert_eq!(t.registered_at_index, Some(3));
    assert!(t.reason.contains("status planned"), "{}", t.reason);

    p.apply(&event(
        &p.status_body(&author, &subject, DeviceStatus::Stolen),
        &[&author],
    ))
    .unwrap();
    let t = p.proj.verify(&VerifyTarget::Key(device_key), T0 + 2_000);
    assert!(!t.trusted);
    assert_eq!(t.status, Some("stolen"));

    // An author key is trusted until it expires.
    let t = p
        .proj
        .verify(&VerifyTarget::Key(author.key_id()), T0 + 2_000);
    assert!(t.trusted, "{t:?}");
    let t = p
        .proj
        .verify(&VerifyTarget::Key(author.key_id()), T0 + 20_000_000);
    assert!(!t.trusted && t.reason.contains("expired"), "{t:?}");

    // The root key, and a key nobody registered.
    assert!(
        p.proj
            .verify(&VerifyTarget::Key(p.root.key_id()), T0)
            .trusted
    );
    let stranger = SigningKey::generate(Algorithm::Ed25519).key_id();
    let t = p.proj.verify(&VerifyTarget::Key(stranger), T0);
    assert!(!t.trusted && t.reason.contains("not registered"));

    // Code by either digest.
    let mut d = Party::with_role("developer");
    let dev = d.register_author(Algorithm::Ed25519, CODE_KINDS, T0 + 10_000_000);
    let (b, _) = code_body(&dev, "fw", "2.0.0", b"image-2");
    d.apply(&event(&b, &[&dev])).unwrap();
    let id = crate::client::code_identity("fw", "2.0.0", b"image-2", None);
    for digest in [id.blake3, id.sha256] {
        let t = d.proj.verify(&VerifyTarget::CodeDigest(digest), T0);
        assert!(t.trusted && t.reason.contains("fw@2.0.0"), "{t:?}");
    }
}

impl Party {
    /// Recognizes another party by its root key.
    fn recognize(&mut self, name: &str, role: &str) -> SigningKey {
        let root = SigningKey::generate(Algorithm::Ed25519);
        let mut b = body(
            SubjectRef::new(SubjectKind::Party, name),
            0,
            None,
            self.root.key_id(),
            Payload::PartyRecognized {
                role: role.into(),
                root_key: root.public_key(),
            },
        );
        b.time_ms = T0 + 200;
        self.apply(&event(&b, &[&self.root]))
            .expect("party recognized");
        root
    }

    fn on_subject(&self, s: &SubjectRef, signer: &SigningKey, payload: Payload) -> Event {
        let (seq, prev) = self.last(s);
        event(
            &body(s.clone(), seq, prev, signer.key_id(), payload),
            &[signer],
        )
    }
}

fn grant(party: &str, kinds: &[EventKind]) -> Payload {
    Payload::AccessGranted {
        party: party.into(),
        kinds: kinds.iter().copied().collect(),
    }
}

fn endorse(kind: EndorsementKind, scope: &str) -> Payload {
    Payload::Endorsed {
        kind,
        scope: scope.into(),
        not_after_ms: T0 + 5_000_000,
        openpgp_certification: None,
    }
}

#[test]
fn other_parties_attach_only_what_the_registrant_granted() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, device) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    let tuv = p.recognize("tuv", "certifier");
    let evil = p.recognize("evil", "certifier");

    // Nothing is open by default.
    let e = p.on_subject(
        &device,
        &tuv,
        endorse(EndorsementKind::TrustLabel, "medical"),
    );
    assert!(matches!(p.refuse(&e), Refusal::NoGrant { ref party, .. } if party == "tuv"));

    // A foreign party cannot hand out rights, nor create subjects.
    let e = p.on_subject(&device, &tuv, grant("tuv", &[EventKind::Endorsed]));
    assert!(matches!(p.refuse(&e), Refusal::NoGrant { .. }));
    let (b, _) = p.device_body(&tuv, "SN-2");
    assert!(matches!(
        p.refuse(&event(&b, &[&tuv])),
        Refusal::NoGrant { .. }
    ));

    // Grants name recognized parties and attachable kinds only.
    let e = p.on_subject(&device, &p.root, grant("nobody", &[EventKind::Endorsed]));
    assert!(matches!(p.refuse(&e), Refusal::InvalidField { ref field, .. } if field == "party"));
    let e = p.on_subject(
        &device,
        &p.root,
        grant("tuv", &[EventKind::DeviceRegistered]),
    );
    assert!(matches!(p.refuse(&e), Refusal::InvalidField { ref field, .. } if field == "kinds"));

    // The registrant grants; the certifier endorses; Verify says so.
    for party in ["tuv", "evil"] {
        let e = p.on_subject(
            &device,
            &p.root,
            grant(
                party,
                &[EventKind::Endorsed, EventKind::EndorsementWithdrawn],
            ),
        );
        p.apply(&e).unwrap();
    }
    let label = p.on_subject(
        &device,
        &tuv,
        endorse(EndorsementKind::TrustLabel, "medical"),
    );
    p.apply(&label).unwrap();
    let key = match &p.proj.subject(&device).unwrap().detail {
        SubjectDetail::Device { device_key, .. } => device_key.id(),
        other => panic!("{other:?}"),
    };
    let t = p
        .proj
        .verify(&super::query::VerifyTarget::Key(key), T0 + 2_000);
    assert!(
        t.reason.contains("trust-label by tuv (medical)"),
        "{}",
        t.reason
    );

    // Only the endorsing party withdraws, once.
    let withdraw = |p: &Party, signer: &SigningKey| {
        p.on_subject(
            &device,
            signer,
            Payload::EndorsementWithdrawn {
                endorsement: label.id,
                reason: "expired audit".into(),
                openpgp_revocation: None,
            },
        )
    };
    let e = withdraw(&p, &evil);
    assert!(matches!(p.refuse(&e), Refusal::NotWithdrawable { .. }));
    p.apply(&withdraw(&p, &tuv)).unwrap();
    let e = withdraw(&p, &tuv);
    assert!(
        matches!(p.refuse(&e), Refusal::NotWithdrawable { ref reason, .. } if reason.contains("already withdrawn"))
    );
    let t = p
        .proj
        .verify(&super::query::VerifyTarget::Key(key), T0 + 2_000);
    assert!(!t.reason.contains("endorsed"), "{}", t.reason);
}

#[test]
fn a_maintainer_reports_a_manufacturers_device_stolen_when_granted() {
    let mut m = Party::with_role("manufacturer");
    let author = m.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, device) = m.device_body(&author, "SN-9");
    m.apply(&event(&b, &[&author])).unwrap();
    let maintainer = m.recognize("acme-maintenance", "maintenance");
    let stolen = Payload::DeviceStatusChanged {
        status: DeviceStatus::Stolen,
        reason: "site report".into(),
        openpgp_revocation: None,
    };
    let e = m.on_subject(&device, &maintainer, stolen.clone());
    assert!(matches!(m.refuse(&e), Refusal::NoGrant { .. }));
    m.apply(&m.on_subject(
        &device,
        &m.root,
        grant("acme-maintenance", &[EventKind::DeviceStatusChanged]),
    ))
    .unwrap();
    m.apply(&m.on_subject(&device, &maintainer, stolen))
        .unwrap();
    assert_eq!(m.proj.subject(&device).unwrap().status(), Some("stolen"));
    // The report is the maintainer's: its signature, in the device's chain.
    assert_eq!(m.proj.subject(&device).unwrap().next_sequence, 3);
}

// OpenPGP: signatures made by the key holders travel in the events; the
// rules check each against the event, and refusals change nothing.

mod openpgp_rules {
    use sequoia_openpgp as sq;
    use sq::parse::Parse;
    use sq::policy::StandardPolicy;

    use super::*;
    use crate::domain::openpgp::{self, DeviceSignatures};
    use crate::domain::query::{OpenPgpExport, openpgp_export};

    const T: i64 = T0 + 1_000;

    fn attrs() -> Vec<(String, String)> {
        vec![
            ("manu".into(), "ACME".into()),
            ("model".into(), "thermo-3".into()),
            ("color".into(), "grey".into()),
        ]
    }

    fn registration(
        author: &SigningKey,
        device: &SigningKey,
        serial: &str,
        signatures: DeviceSignatures,
    ) -> (Event, SubjectRef) {
        let subject = SubjectRef::new(SubjectKind::Device, device.key_id().to_hex());
        let b = body(
            subject.clone(),
            0,
            None,
            author.key_id(),
            Payload::DeviceRegistered {
                serial: serial.into(),
                device_key: device.public_key(),
                attributes: attrs(),
                openpgp: Some(signatures),
            },
        );
        (event(&b, &[author]), subject)
    }

    fn certificate(p: &Party, s: &SubjectRef) -> (Vec<u8>, bool) {
        match openpgp_export(p.proj.subject(s).unwrap()) {
            Some(OpenPgpExport::Certificate {
                binary, revoked, ..
            }) => (binary, revoked),
            other => panic!("{other:?}"),
        }
    }

    fn refused_field(r: Refusal) -> String {
        match r {
            Refusal::OpenPgp { field, reason } => format!("{field}: {reason}"),
            other => panic!("expected an OpenPGP refusal, got {other}"),
        }
    }

    fn target(p: &Party, s: &SubjectRef) -> openpgp::CertificationTarget {
        openpgp::CertificationTarget::from_certificate(&certificate(p, s).0).unwrap()
    }

    #[test]
    fn device_certificate_is_checked_assembled_and_revoked_on_stolen() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            let mut p = Party::new();
            let author = p.register_author(alg, DEVICE_KINDS, T0 + 10_000_000);
            let device = SigningKey::generate(alg);
            let (sigs, escrow) =
                openpgp::sign_device(&device, &author, "SN-1", &attrs(), T).unwrap();
            let (e, s) = registration(&author, &device, "SN-1", sigs);
            p.apply(&e).unwrap();

            let (binary, revoked) = certificate(&p, &s);
            assert!(!revoked);
            let cert = sq::Cert::from_bytes(&binary).unwrap();
            let policy = StandardPolicy::new();
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs((T / 1000) as u64 + 1);
            let valid = cert.with_policy(&policy, at).expect("valid certificate");
            let uid = valid.userids().next().expect("the serial User ID");
            assert_eq!(uid.userid().value(), b"SN-1");
            // The manufacturer's certification: by the author key, with the draft's notations only.
            let certs: Vec<_> = uid.certifications().collect();
            assert_eq!(certs.len(), 1);
            let issuer = openpgp::party_key(&author.public_key());
            certs[0]
                .clone()
                .verify_userid_binding(&issuer, cert.primary_key().key(), uid.userid())
                .expect("manufacturer certification verifies");
            let names: Vec<_> = certs[0]
                .notation_data()
                .filter(|n| n.flags().human_readable())
                .map(|n| n.name().to_string())
                .collect();
            assert_eq!(names, ["manu", "model"]);

            // A stolen report publishes the escrowed "compromised" revocation
            // (the retired one, or bytes the registration did not commit to, are refused);
            // recovery does not take it back.
            let report = |p: &Party, status: DeviceStatus, revocation: &[u8]| {
                p.on_subject(
                    &s,
                    &author,
                    Payload::DeviceStatusChanged {
                        status,
                        reason: "".into(),
                        openpgp_revocation: Some(revocation.to_vec()),
                    },
                )
            };
            let why = refused_field(p.refuse(&report(&p, DeviceStatus::Stolen, &escrow.retired)));
            assert!(
                why.contains("the compromised revocation, not the retired"),
                "{why}"
            );
            let mut forged = escrow.compromised.clone();
            *forged.last_mut().unwrap() ^= 1;
            let why = refused_field(p.refuse(&report(&p, DeviceStatus::Stolen, &forged)));
            assert!(why.contains("not one of the revocations"), "{why}");
            let why =
                refused_field(p.refuse(&report(&p, DeviceStatus::InUse, &escrow.compromised)));
            assert!(why.contains("publishes no revocation"), "{why}");
            assert!(!certificate(&p, &s).1, "nothing published by refusals");
            p.apply(&report(&p, DeviceStatus::Stolen, &escrow.compromised))
                .unwrap();
            let (binary, revoked) = certificate(&p, &s);
            assert!(revoked);
            let cert = sq::Cert::from_bytes(&binary).unwrap();
            assert!(matches!(
                cert.revocation_status(&policy, at),
                sq::types::RevocationStatus::Revoked(_)
            ));
            let recovered = p.on_subject(
                &s,
                &author,
                Payload::DeviceStatusChanged {
                    status: DeviceStatus::InUse,
                    reason: "found".into(),
                    openpgp_revocation: None,
                },
            );
            p.apply(&recovered).unwrap();
            assert!(certificate(&p, &s).1, "a published revocation stays");
        }
    }

    #[test]
    fn forged_or_mismatched_device_signatures_are_refused() {
        let mut p = Party::new();
        let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
        let device = SigningKey::generate(Algorithm::Ed25519);
        let (good, _) = openpgp::sign_device(&device, &author, "SN-1", &attrs(), T).unwrap();
        let refused = |p: &mut Party, serial: &str, sigs: DeviceSignatures| {
            refused_field(p.refuse(&registration(&author, &device, serial, sigs).0))
        };

        // A certification by some other key than the registrant's.
        let forger = SigningKey::generate(Algorithm::Ed25519);
        let (forged, _) = openpgp::sign_device(&device, &forger, "SN-1", &attrs(), T).unwrap();
        let sigs = DeviceSignatures {
            certification: forged.certification,
            ..good.clone()
        };
        let why = refused(&mut p, "SN-1", sigs);
        assert!(
            why.starts_with("openpgp.certification: does not verify"),
            "{why}"
        );

        // Notations that are not the event's attributes.
        let other_attrs = vec![("model".to_string(), "valve-1".to_string())];
        let (wrong, _) = openpgp::sign_device(&device, &author, "SN-1", &other_attrs, T).unwrap();
        let sigs = DeviceSignatures {
            certification: wrong.certification,
            ..good.clone()
        };
        let why = refused(&mut p, "SN-1", sigs);
        assert!(why.contains("do not match the event's"), "{why}");

        // A binding by another device's key, or for another serial.
        let other = SigningKey::generate(Algorithm::Ed25519);
        let (theirs, _) = openpgp::sign_device(&other, &author, "SN-1", &attrs(), T).unwrap();
        let sigs = DeviceSignatures {
            self_signature: theirs.self_signature,
            ..good.clone()
        };
        let why = refused(&mut p, "SN-1", sigs);
        assert!(
            why.starts_with("openpgp.self_signature: does not verify"),
            "{why}"
        );
        let why = refused(&mut p, "SN-2", good.clone());
        assert!(why.contains("does not verify"), "{why}");

        // Signatures made at another time than the event's.
        let (late, _) =
            openpgp::sign_device(&device, &author, "SN-1", &attrs(), T + 5_000).unwrap();
        let why = refused(&mut p, "SN-1", late);
        assert!(why.contains("creation time"), "{why}");

        // Not a packet at all, or two packets.
        let sigs = DeviceSignatures {
            self_signature: b"not openpgp".to_vec(),
            ..good.clone()
        };
        let why = refused(&mut p, "SN-1", sigs);
        assert!(why.starts_with("openpgp.self_signature:"), "{why}");
        let mut doubled = good.self_signature.clone();
        doubled.extend_from_slice(&good.self_signature);
        let sigs = DeviceSignatures {
            self_signature: doubled,
            ..good.clone()
        };
        let why = refused(&mut p, "SN-1", sigs);
        assert!(why.contains("Excess data after packet"), "{why}");

        // The genuine set is accepted after all that.
        p.apply(&registration(&author, &device, "SN-1", good).0)
            .unwrap();
    }

    #[test]
    fn endorsement_certifications_and_their_withdrawal() {
        let mut p = Party::new();
        let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
        let device = SigningKey::generate(Algorithm::Ed25519);
        let (sigs, _) = openpgp::sign_device(&device, &author, "SN-1", &attrs(), T).unwrap();
        let (e, s) = registration(&author, &device, "SN-1", sigs);
        p.apply(&e).unwrap();
        let tuv = p.recognize("tuv", "certifier");
        let evil = p.recognize("evil", "certifier");
        let kinds = [EventKind::Endorsed, EventKind::EndorsementWithdrawn];
        for party in ["tuv", "evil"] {
            let e = p.on_subject(&s, &p.root, grant(party, &kinds));
            p.apply(&e).unwrap();
        }
        let not_after = T0 + 5_000_000;
        let t = target(&p, &s);
        let certified = |signer: &SigningKey, scope: &str| Payload::Endorsed {
            kind: EndorsementKind::TrustLabel,
            scope: "medical".into(),
            not_after_ms: not_after,
            openpgp_certification: Some(
                openpgp::certify_endorsement(
                    signer,
                    &t,
                    EndorsementKind::TrustLabel,
                    scope,
                    T,
                    not_after,
                )
                .unwrap(),
            ),
        };

        // Certified by another party's key, or with another scope: refused.
        let e = p.on_subject(&s, &tuv, certified(&evil, "medical"));
        assert!(refused_field(p.refuse(&e)).contains("does not verify"));
        let e = p.on_subject(&s, &tuv, certified(&tuv, "automotive"));
        assert!(refused_field(p.refuse(&e)).contains("notations"));

        let label = p.on_subject(&s, &tuv, certified(&tuv, "medical"));
        p.apply(&label).unwrap();
        let cert = sq::Cert::from_bytes(&certificate(&p, &s).0).unwrap();
        let uid = cert.userids().next().unwrap();
        assert_eq!(uid.certifications().count(), 2, "manufacturer and tuv");

        // Withdrawal needs a certification revocation by the certifying key.
        let withdraw = |revocation: Option<Vec<u8>>| Payload::EndorsementWithdrawn {
            endorsement: label.id,
            reason: "audit lapsed".into(),
            openpgp_revocation: revocation,
        };
        let e = p.on_subject(&s, &tuv, withdraw(None));
        assert!(matches!(p.refuse(&e), Refusal::NotWithdrawable { .. }));
        let by_evil = openpgp::revoke_endorsement(&evil, &t, "x", T).unwrap();
        let e = p.on_subject(&s, &tuv, withdraw(Some(by_evil)));
        assert!(refused_field(p.refuse(&e)).contains("certifying key"));
        let revocation = openpgp::revoke_endorsement(&tuv, &t, "audit lapsed", T).unwrap();
        p.apply(&p.on_subject(&s, &tuv, withdraw(Some(revocation.clone()))))
            .unwrap();
        let cert = sq::Cert::from_bytes(&certificate(&p, &s).0).unwrap();
        let uid = cert.userids().next().unwrap();
        assert_eq!(uid.other_revocations().count(), 1);

        // A withdrawn endorsement is not withdrawn (or reused) again.
        let e = p.on_subject(&s, &tuv, withdraw(Some(revocation)));
        assert!(matches!(p.refuse(&e), Refusal::NotWithdrawable { .. }));
    }

    #[test]
    fn certified_endorsements_have_one_live_per_key_a_real_expiry_and_a_live_certificate() {
        let mut p = Party::new();
        let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
        let integrator = p.register_author(
            Algorithm::Ed25519,
            &[EventKind::Endorsed, EventKind::EndorsementWithdrawn],
            T0 + 10_000_000,
        );
        let device = SigningKey::generate(Algorithm::Ed25519);
        let (sigs, escrow) = openpgp::sign_device(&device, &author, "SN-1", &attrs(), T).unwrap();
        let (e, s) = registration(&author, &device, "SN-1", sigs);
        p.apply(&e).unwrap();
        let t = target(&p, &s);
        let endorse_until = |not_after: i64| Payload::Endorsed {
            kind: EndorsementKind::IntegratorApproval,
            scope: String::new(),
            not_after_ms: not_after,
            openpgp_certification: Some(
                openpgp::certify_endorsement(
                    &integrator,
                    &t,
                    EndorsementKind::IntegratorApproval,
                    "",
                    T,
                    not_after,
                )
                .unwrap(),
            ),
        };

        // Expiring within the event's second would be "never expires" in OpenPGP.
        let e = p.on_subject(&s, &integrator, endorse_until(T + 500));
        assert!(refused_field(p.refuse(&e)).contains("at least a second"));
        let first = p.on_subject(&s, &integrator, endorse_until(T0 + 5_000_000));
        p.apply(&first).unwrap();
        // A second live certification by the same key would fall with the first's revocation.
        let e = p.on_subject(&s, &integrator, endorse_until(T0 + 6_000_000));
        assert!(refused_field(p.refuse(&e)).contains("already has a live"));

        // Once the certifying key is revoked, the party withdraws without a revocation.
        let withdraw = |p: &Party| {
            p.on_subject(
                &s,
                &p.root,
                Payload::EndorsementWithdrawn {
                    endorsement: first.id,
                    reason: "integrator changed".into(),
                    openpgp_revocation: None,
                },
            )
        };
        let e = withdraw(&p);
        assert!(matches!(p.refuse(&e), Refusal::NotWithdrawable { .. }));
        let revoke = {
            let subject = SubjectRef::new(SubjectKind::AuthorKey, integrator.key_id().to_hex());
            p.on_subject(
                &subject,
                &p.root,
                Payload::AuthorKeyRevoked {
                    reason: "laptop lost".into(),
                },
            )
        };
        p.apply(&revoke).unwrap();
        let e = withdraw(&p);
        p.apply(&e).unwrap();

        // A revoked certificate takes no new certifications.
        let stolen = p.on_subject(
            &s,
            &author,
            Payload::DeviceStatusChanged {
                status: DeviceStatus::Stolen,
                reason: String::new(),
                openpgp_revocation: Some(escrow.compromised.clone()),
            },
        );
        p.apply(&stolen).unwrap();
        let tuv = p.recognize("tuv", "certifier");
        let g = p.on_subject(&s, &p.root, grant("tuv", &[EventKind::Endorsed]));
        p.apply(&g).unwrap();
        let late = Payload::Endorsed {
            kind: EndorsementKind::TrustLabel,
            scope: String::new(),
            not_after_ms: T0 + 5_000_000,
            openpgp_certification: Some(
                openpgp::certify_endorsement(
                    &tuv,
                    &t,
                    EndorsementKind::TrustLabel,
                    "",
                    T,
                    T0 + 5_000_000,
                )
                .unwrap(),
            ),
        };
        let e = p.on_subject(&s, &tuv, late);
        assert!(refused_field(p.refuse(&e)).contains("revoked or its key rotated out"));
    }

    #[test]
    fn device_rotation_may_publish_either_escrowed_revocation() {
        let mut p = Party::new();
        let author = p.register_author(
            Algorithm::Ed25519,
            &[
                EventKind::DeviceRegistered,
                EventKind::DeviceStatusChanged,
                EventKind::KeyRotated,
            ],
            T0 + 10_000_000,
        );
        let device = SigningKey::generate(Algorithm::Ed25519);
        let (sigs, escrow) = openpgp::sign_device(&device, &author, "SN-1", &attrs(), T).unwrap();
        let (e, s) = registration(&author, &device, "SN-1", sigs);
        p.apply(&e).unwrap();
        let new = SigningKey::generate(Algorithm::Ed25519);
        let rotate = |p: &Party, revocation: Vec<u8>| {
            rotation(p, &s, &author, &new, &[&author, &new], Some(revocation))
        };
        let why = refused_field(p.refuse(&rotate(&p, b"junk".to_vec())));
        assert!(why.contains("not one of the revocations"), "{why}");
        p.apply(&rotate(&p, escrow.compromised.clone())).unwrap();
        let (binary, revoked) = certificate(&p, &s);
        assert!(revoked);
        let cert = sq::Cert::from_bytes(&binary).unwrap();
        let policy = StandardPolicy::new();
        assert!(matches!(
            cert.revocation_status(&policy, None),
            sq::types::RevocationStatus::Revoked(_)
        ));
    }

    #[test]
    fn code_release_signature_must_carry_the_artifact_digest() {
        let mut p = Party::with_role("developer");
        let author = p.register_author(Algorithm::Ed25519, CODE_KINDS, T0 + 10_000_000);
        let release = |identity: CodeIdentity| {
            let subject = SubjectRef::new(SubjectKind::Code, hex::encode(identity.blake3));
            event(
                &body(
                    subject,
                    0,
                    None,
                    author.key_id(),
                    Payload::CodeReleased(identity),
                ),
                &[&author],
            )
        };
        let mut identity = crate::client::code_identity("fw", "1.0.0", b"firmware", None);
        let other = crate::client::code_identity("fw", "1.0.0", b"other firmware", None);
        identity.openpgp_signature = Some(openpgp::sign_code(&author, &other, T).unwrap());
        let why = refused_field(p.refuse(&release(identity.clone())));
        assert!(why.contains("hash notation"), "{why}");
        identity.openpgp_signature = Some(openpgp::sign_code(&author, &identity, T).unwrap());
        p.apply(&release(identity.clone())).unwrap();
        let subject = SubjectRef::new(SubjectKind::Code, hex::encode(identity.blake3));
        assert!(matches!(
            openpgp_export(p.proj.subject(&subject).unwrap()),
            Some(OpenPgpExport::Signature { .. })
        ));
    }
}

/// A key rotation of `s`, signed by `signers`, maybe publishing a revocation.
fn rotation(
    p: &Party,
    s: &SubjectRef,
    author: &SigningKey,
    new: &SigningKey,
    signers: &[&SigningKey],
    openpgp_revocation: Option<Vec<u8>>,
) -> Event {
    let (seq, prev) = p.last(s);
    let b = body(
        s.clone(),
        seq,
        prev,
        author.key_id(),
        Payload::KeyRotated {
            new_key: new.public_key(),
            reason: "scheduled".into(),
            openpgp_revocation,
        },
    );
    event(&b, signers)
}

mod services_and_rotation {
    use super::*;
    use crate::domain::query::VerifyTarget;

    const SERVICE_KINDS: &[EventKind] = &[
        EventKind::ServiceRegistered,
        EventKind::KeyRotated,
        EventKind::DeviceRegistered,
    ];

    fn service(author: &SigningKey, key: &SigningKey, name: &str, endpoints: &[&str]) -> Event {
        let b = body(
            SubjectRef::new(SubjectKind::Service, key.key_id().to_hex()),
            0,
            None,
            author.key_id(),
            Payload::ServiceRegistered {
                name: name.into(),
                service_key: key.public_key(),
                endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
                owner: "acme-maintenance".into(),
            },
        );
        event(&b, &[author])
    }

    #[test]
    fn services_register_with_unique_names_and_uri_endpoints() {
        let mut p = Party::new();
        let author = p.register_author(Algorithm::Ed25519, SERVICE_KINDS, T0 + 10_000_000);
        let key = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        for (endpoints, why) in [
            (&[][..], "endpoints"),
            (&["not a uri"][..], "endpoints"),
            (&["https://"][..], "endpoints"),
        ] {
            let e = service(&author, &key, "telemetry", endpoints);
            assert!(
                matches!(p.refuse(&e), Refusal::InvalidField { ref field, .. } if field == why),
                "{endpoints:?}"
            );
        }
        p.apply(&service(
            &author,
            &key,
            "telemetry",
            &["https://telemetry.acme.test:8443"],
        ))
        .unwrap();
        let other = SigningKey::generate(Algorithm::Ed25519);
        let e = service(&author, &other, "telemetry", &["https://t2.acme.test"]);
        assert!(matches!(p.refuse(&e), Refusal::ServiceNameTaken { .. }));
        // A developer party does not register services.
        let mut dev = Party::with_role("developer");
        let a = dev.register_author(Algorithm::Ed25519, SERVICE_KINDS, T0 + 10_000_000);
        let e = service(&a, &other, "x", &["https://x.test"]);
        assert!(matches!(dev.refuse(&e), Refusal::RoleMayNotAuthor { .. }));

        let t = p.proj.verify(&VerifyTarget::Key(key.key_id()), T0 + 2_000);
        assert!(t.trusted, "{t:?}");
        assert!(
            t.reason
                .contains("service telemetry run by acme-maintenance"),
            "{}",
            t.reason
        );
    }

    #[test]
    fn rotation_needs_the_new_key_and_retires_the_old_one() {
        let mut p = Party::new();
        let author = p.register_author(Algorithm::Ed25519, SERVICE_KINDS, T0 + 10_000_000);
        let old = SigningKey::generate(Algorithm::Ed25519);
        p.apply(&service(
            &author,
            &old,
            "telemetry",
            &["https://t.acme.test"],
        ))
        .unwrap();
        let s = SubjectRef::new(SubjectKind::Service, old.key_id().to_hex());
        let new = SigningKey::generate(Algorithm::Ed25519);

        // Without the new key's signature: no proof of possession.
        let e = rotation(&p, &s, &author, &new, &[&author], None);
        assert!(matches!(p.refuse(&e), Refusal::MissingNewKeySignature(_)));
        // A foreign party cannot rotate, even when granted other kinds, and
        // rotation is not a kind a grant may name.
        let tuv = p.recognize("tuv", "certifier");
        let e = p.on_subject(&s, &p.root, grant("tuv", &[EventKind::KeyRotated]));
        assert!(
            matches!(p.refuse(&e), Refusal::InvalidField { ref field, .. } if field == "kinds")
        );
        let e = p.on_subject(&s, &p.root, grant("tuv", &[EventKind::Endorsed]));
        p.apply(&e).unwrap();
        let e = rotation(&p, &s, &tuv, &new, &[&tuv, &new], None);
        assert!(matches!(p.refuse(&e), Refusal::NoGrant { .. }));

        p.apply(&rotation(&p, &s, &author, &new, &[&author, &new], None))
            .unwrap();
        let t_old = p.proj.verify(&VerifyTarget::Key(old.key_id()), T0 + 2_000);
        assert!(!t_old.trusted);
        assert!(
            t_old.reason.contains("replaced by rotation"),
            "{}",
            t_old.reason
        );
        let t_new = p.proj.verify(&VerifyTarget::Key(new.key_id()), T0 + 2_000);
        assert!(t_new.trusted, "{t_new:?}");

        // The new key is now taken: another rotation to it is refused.
        let again = rotation(&p, &s, &author, &new, &[&author, &new], None);
        assert!(matches!(p.refuse(&again), Refusal::KeyTaken { .. }));
    }
}

#[test]
fn one_key_identifies_one_thing() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    // A device registered with the author's own key is refused.
    let b = body(
        SubjectRef::new(SubjectKind::Device, author.key_id().to_hex()),
        0,
        None,
        author.key_id(),
        Payload::DeviceRegistered {
            serial: "SN-X".into(),
            device_key: author.public_key(),
            attributes: vec![],
            openpgp: None,
        },
    );
    assert!(matches!(
        p.refuse(&event(&b, &[&author])),
        Refusal::KeyTaken { .. }
    ));
}
