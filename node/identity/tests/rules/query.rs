//! Search and Verify over the identity state.

use crate::fixture::*;

#[test]
fn search_pages_through_attributes_and_finds_by_serial_digest_and_fingerprint() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let mut devices = Vec::new();
    for i in 0..5 {
        let device = SigningKey::generate(Algorithm::Ed25519);
        let subject = SubjectRef::new(DEVICE, device.key_id().to_hex());
        let model = if i < 3 { "thermo-3" } else { "valve-1" };
        let b = body(
            subject.clone(),
            0,
            None,
            author.key_id(),
            IdentityPayload::DeviceRegistered {
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
    let first = query::search(&p.proj, &q, None, 2);
    assert_eq!(first.subjects.len(), 2);
    let token = first.next.clone().expect("a second page").to_string();
    let after = SubjectRef::parse(&token).unwrap();
    let second = query::search(&p.proj, &q, Some(&after), 2);
    assert_eq!(second.subjects.len(), 1);
    assert!(second.next.is_none());

    let by_serial = query::search(&p.proj, &SearchQuery::Serial("SN-4".into()), None, 10);
    assert_eq!(by_serial.subjects[0].subject, &devices[4].1);
    let by_fpr = query::search(
        &p.proj,
        &SearchQuery::KeyId(devices[1].0.key_id()),
        None,
        10,
    );
    assert_eq!(by_fpr.subjects[0].subject, &devices[1].1);
    assert!(
        query::search(&p.proj, &SearchQuery::Serial("nope".into()), None, 10)
            .subjects
            .is_empty()
    );
}

#[test]
fn verify_says_why_a_key_or_digest_is_trusted_or_not() {
    let mut p = Party::new();
    let author = p.register_author(Algorithm::Ed25519, DEVICE_KINDS, T0 + 10_000_000);
    let (b, subject) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    let device_key = match &p.state(&subject).detail {
        Detail::Device { device_key, .. } => device_key.id(),
        other => panic!("{other:?}"),
    };
    let t = query::verify(&p.proj, &VerifyTarget::Key(device_key), T0 + 2_000);
    assert!(t.trusted, "{t:?}");
    assert_eq!(t.registered_by, Some(author.key_id()));
    assert_eq!(t.registered_at, Some(3));
    assert!(t.reason.contains("status planned"), "{}", t.reason);

    p.apply(&event(
        &p.status_body(&author, &subject, DeviceStatus::Stolen),
        &[&author],
    ))
    .unwrap();
    let t = query::verify(&p.proj, &VerifyTarget::Key(device_key), T0 + 2_000);
    assert!(!t.trusted);
    assert_eq!(t.status, Some("stolen"));

    // An author key is trusted until it expires.
    let t = query::verify(&p.proj, &VerifyTarget::Key(author.key_id()), T0 + 2_000);
    assert!(t.trusted, "{t:?}");
    let t = query::verify(
        &p.proj,
        &VerifyTarget::Key(author.key_id()),
        T0 + 20_000_000,
    );
    assert!(!t.trusted && t.reason.contains("expired"), "{t:?}");

    // The root key, and a key nobody registered.
    assert!(query::verify(&p.proj, &VerifyTarget::Key(p.root.key_id()), T0).trusted);
    let stranger = SigningKey::generate(Algorithm::Ed25519).key_id();
    let t = query::verify(&p.proj, &VerifyTarget::Key(stranger), T0);
    assert!(!t.trusted && t.reason.contains("not registered"));

    // Code by either digest.
    let mut d = Party::with_role("developer");
    let dev = d.register_author(Algorithm::Ed25519, CODE_KINDS, T0 + 10_000_000);
    let (b, _) = code_body(&dev, "fw", "2.0.0", b"image-2");
    d.apply(&event(&b, &[&dev])).unwrap();
    let id = CodeIdentity::of_artifact("fw", "2.0.0", b"image-2", None);
    for digest in [id.blake3, id.sha256] {
        let t = query::verify(&d.proj, &VerifyTarget::CodeDigest(digest), T0);
        assert!(t.trusted && t.reason.contains("fw@2.0.0"), "{t:?}");
    }
}
