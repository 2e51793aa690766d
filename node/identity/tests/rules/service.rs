//! Services and key rotation.

use crate::fixture::*;

pub(crate) const SERVICE_KINDS: &[&str] =
    &["service-registered", "key-rotated", "device-registered"];

pub(crate) fn service(
    author: &SigningKey,
    key: &SigningKey,
    name: &str,
    endpoints: &[&str],
) -> Event {
    let b = body(
        SubjectRef::new(SERVICE, key.key_id().to_hex()),
        0,
        None,
        author.key_id(),
        IdentityPayload::ServiceRegistered {
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
    assert_eq!(p.refuse(&e).reason(), "SERVICE_NAME_TAKEN");
    // A developer party does not register services.
    let mut dev = Party::with_role("developer");
    let a = dev.register_author(Algorithm::Ed25519, SERVICE_KINDS, T0 + 10_000_000);
    let e = service(&a, &other, "x", &["https://x.test"]);
    assert!(matches!(dev.refuse(&e), Refusal::RoleMayNotAuthor { .. }));

    let t = query::verify(&p.proj, &VerifyTarget::Key(key.key_id()), T0 + 2_000);
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
    let s = SubjectRef::new(SERVICE, old.key_id().to_hex());
    let new = SigningKey::generate(Algorithm::Ed25519);

    // Without the new key's signature: no proof of possession.
    let e = rotation(&p, &s, &author, &new, &[&author], None);
    assert_eq!(p.refuse(&e).reason(), "MISSING_NEW_KEY_SIGNATURE");
    // A foreign party cannot rotate, even when granted other kinds, and
    // rotation is not a kind a grant may name.
    let tuv = p.recognize("tuv", "certifier");
    let e = p.on_subject(&s, &p.root, grant("tuv", &["key-rotated"]));
    assert!(matches!(p.refuse(&e), Refusal::InvalidField { ref field, .. } if field == "kinds"));
    let e = p.on_subject(&s, &p.root, grant("tuv", &["endorsed"]));
    p.apply(&e).unwrap();
    let e = rotation(&p, &s, &tuv, &new, &[&tuv, &new], None);
    assert!(matches!(p.refuse(&e), Refusal::NoGrant { .. }));

    p.apply(&rotation(&p, &s, &author, &new, &[&author, &new], None))
        .unwrap();
    let t_old = query::verify(&p.proj, &VerifyTarget::Key(old.key_id()), T0 + 2_000);
    assert!(!t_old.trusted);
    assert!(
        t_old.reason.contains("replaced by rotation"),
        "{}",
        t_old.reason
    );
    let t_new = query::verify(&p.proj, &VerifyTarget::Key(new.key_id()), T0 + 2_000);
    assert!(t_new.trusted, "{t_new:?}");

    // The new key is now taken: another rotation to it is refused.
    let again = rotation(&p, &s, &author, &new, &[&author, &new], None);
    assert!(matches!(p.refuse(&again), Refusal::KeyTaken { .. }));
}

#[test]
fn a_service_moves_to_new_endpoints() {
    let mut p = Party::new();
    let author = p.register_author(
        Algorithm::Ed25519,
        &[
            "service-registered",
            "service-endpoints-changed",
            "device-registered",
        ],
        T0 + 10_000_000,
    );
    let key = SigningKey::generate(Algorithm::Ed25519);
    p.apply(&service(
        &author,
        &key,
        "telemetry",
        &["https://t1.acme.test"],
    ))
    .unwrap();
    let s = SubjectRef::new(SERVICE, key.key_id().to_hex());
    let moved = |p: &Party, endpoints: &[&str]| {
        p.on_subject(
            &s,
            &author,
            IdentityPayload::ServiceEndpointsChanged {
                endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            },
        )
    };
    // Given a registered service, when it moves, then Verify names the new endpoints.
    p.apply(&moved(
        &p,
        &["https://t2.acme.test", "grpc://t2.acme.test:7400"],
    ))
    .unwrap();
    let t = query::verify(&p.proj, &VerifyTarget::Key(key.key_id()), T0 + 2_000);
    assert!(
        t.trusted
            && t.reason
                .contains("https://t2.acme.test grpc://t2.acme.test:7400"),
        "{t:?}"
    );
    // Refused, with nothing changed: no endpoint, one that is no URI.
    for endpoints in [&[][..], &["t3.acme.test"][..]] {
        let why = p.refuse(&moved(&p, endpoints));
        assert!(
            matches!(&why, Refusal::InvalidField { field, .. } if field == "endpoints"),
            "{why}"
        );
    }
    // Only on a service.
    let (b, device) = p.device_body(&author, "SN-1");
    p.apply(&event(&b, &[&author])).unwrap();
    let e = p.on_subject(
        &device,
        &author,
        IdentityPayload::ServiceEndpointsChanged {
            endpoints: vec!["https://x.test".into()],
        },
    );
    assert_eq!(p.refuse(&e).reason(), "INVALID_SUBJECT");
}
